"""A StyleGAN-like block built from the custom ops compiles with torch.compile(fullgraph=True)."""

import pytest
import torch

from gemix_monai.ops import bias_act, modulated_conv2d, setup_filter, upsample2d
from gemix_monai.ops._ext import get_extension

HAS_KERNELS = get_extension() is not None and all(
    hasattr(torch.ops.gemix_C, name) for name in ("bias_act", "modulate_weight", "upfirdn2d")
)


class SynthesisBlock(torch.nn.Module):
    """Modulated 3×3 conv with up=2 + noise + bias_act(lrelu, clamp), then a toRGB (1×1, no
    demodulation) added to the upsampled skip image: one layer of StyleGAN2's skip generator."""

    def __init__(self, in_channels=4, out_channels=5, w_dim=6, img_channels=1, impl=None, fused=None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.impl, self.fused = impl, fused
        self.affine = torch.nn.Parameter(torch.randn(in_channels, w_dim, generator=g) / w_dim**0.5)
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, 3, 3, generator=g))
        self.bias = torch.nn.Parameter(torch.randn(out_channels, generator=g) * 0.1)
        self.noise_strength = torch.nn.Parameter(torch.tensor(0.1))
        self.rgb_affine = torch.nn.Parameter(torch.randn(out_channels, w_dim, generator=g) / w_dim**0.5)
        self.rgb_weight = torch.nn.Parameter(torch.randn(img_channels, out_channels, 1, 1, generator=g))
        self.rgb_bias = torch.nn.Parameter(torch.zeros(img_channels))
        self.register_buffer("resample_filter", setup_filter([1, 3, 3, 1]))

    def forward(self, x, img, w, noise):
        styles = w @ self.affine.t() + 1
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise * self.noise_strength,
            up=2,
            padding=1,
            resample_filter=self.resample_filter,
            fused=self.fused,
            impl=self.impl,
        )
        x = bias_act(x, self.bias, act="lrelu", clamp=256.0, impl=self.impl)
        rgb_styles = (w @ self.rgb_affine.t()) * (self.rgb_weight.shape[1] ** -0.5)
        y = modulated_conv2d(x, self.rgb_weight, rgb_styles, demodulate=False, fused=self.fused, impl=self.impl)
        y = bias_act(y, self.rgb_bias, clamp=256.0, impl=self.impl)
        return x, upsample2d(img, self.resample_filter, impl=self.impl) + y


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 4, 4, generator=g, requires_grad=True)
    img = torch.randn(2, 1, 4, 4, generator=g)
    w = torch.randn(2, 6, generator=g)
    noise = torch.randn(2, 1, 8, 8, generator=g)
    return x, img, w, noise


def _run(block, fn):
    x, img, w, noise = _inputs()
    feat, out = fn(x, img, w, noise)
    loss = out.square().sum() + feat.square().mean()
    grads = torch.autograd.grad(loss, [x, *block.parameters()])
    return feat, out, grads


@pytest.mark.parametrize(
    "impl",
    [
        "ref",
        None,
        pytest.param(
            "cpp", marks=pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")
        ),
    ],
)
@pytest.mark.parametrize("fused", [True, False])
def test_block_compiles_without_graph_breaks_and_equals_eager(impl, fused):
    torch._dynamo.reset()
    block = SynthesisBlock(impl=impl, fused=fused)
    # aot_eager traces forward and backward through the ops' fake kernels and autograd formulas
    # exactly as inductor does, without spending minutes of C++ compilation on 2 CPU cores.
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    eager = _run(block, block)
    traced = _run(block, compiled)
    torch.testing.assert_close(traced[0], eager[0])
    torch.testing.assert_close(traced[1], eager[1])
    for a, b in zip(traced[2], eager[2]):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")
def test_compiled_graph_calls_the_custom_ops():
    torch._dynamo.reset()
    block = SynthesisBlock(impl="cpp", fused=True)
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.compile(block, fullgraph=True, backend=backend)(*_inputs())
    code = "\n".join(gm.code for gm in graphs)
    for op in ("gemix.bias_act", "gemix.modulate_weight", "gemix.upfirdn2d"):
        assert op in code, f"{op} missing from the compiled graph"


@pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")
def test_custom_ops_pass_torch_library_opcheck():
    # schema, fake kernel, autograd registration and AOT dispatch of each op, against the kernels
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    styles = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = bias_act(x, b, act="tanh", impl="cpp").detach()
    cases = [
        (torch.ops.gemix.bias_act.default, (x, b, 1, 3, 0.0, 1.0, 0.5, "cpp")),
        (torch.ops.gemix.bias_act.default, (x, b, 1, 2, 0.2, 1.41, -1.0, "cpp")),
        (torch.ops.gemix.bias_act_grad.default, (dy, x, b, None, 1, 3, 0.0, 1.0, -1.0, 1, "cpp")),
        (torch.ops.gemix.bias_act_grad.default, (dy, None, None, y, 1, 2, 0.2, 1.41, -1.0, 1, "cpp")),
        (torch.ops.gemix.modulate_weight.default, (weight, styles, True, "cpp")),
        (torch.ops.gemix.modulate_weight.default, (weight, styles, False, "cpp")),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


@pytest.fixture
def fresh_selfcheck(monkeypatch):
    from gemix_monai.ops import _selfcheck

    monkeypatch.setattr(_selfcheck, "_passed", set())
    monkeypatch.setattr(_selfcheck, "_failed", {})
    monkeypatch.delenv("GEMIX_OPS_SELFCHECK", raising=False)
    return _selfcheck


def _graph_code(block) -> str:
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    torch.compile(block, fullgraph=True, backend=backend)(*_inputs())
    return "\n".join(gm.code for gm in graphs)


@pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")
def test_the_kernels_self_check_runs_while_tracing_and_leaves_the_graph_alone(fresh_selfcheck):
    # fullgraph=True: the check may not break the graph; it runs once, eagerly, while tracing
    code = _graph_code(SynthesisBlock(impl="cpp", fused=True))
    assert fresh_selfcheck._passed == {
        ("upfirdn2d", "cpp", "cpu", torch.float32),
        ("bias_act", "cpp", "cpu", torch.float32),
        ("modulated_conv2d", "cpp", "cpu", torch.float32),
    }
    assert code == _graph_code(SynthesisBlock(impl="cpp", fused=True))  # traced again with every key passed


@pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")
def test_a_wrong_kernel_stops_torch_compile_with_the_self_check_message(fresh_selfcheck, monkeypatch):
    from gemix_monai.ops import OpSelfCheckError

    real = torch.ops.gemix_C.bias_act_grad
    monkeypatch.setattr(torch.ops.gemix_C, "bias_act_grad", lambda *args: real(*args) * 1.5)
    torch._dynamo.reset()
    block = SynthesisBlock(impl="cpp", fused=False)
    with pytest.raises(RuntimeError) as caught:
        _run(block, torch.compile(block, fullgraph=True, backend="aot_eager"))
    message = (
        "bias_act: the compiled cpp kernel (gemix_C.bias_act/gemix_C.bias_act_grad) disagrees with the pure-PyTorch "
        "reference for float32 on cpu, case gradient order 1 linear: max abs error 0.995"
    )
    assert f"OpSelfCheckError: {message}" in str(caught.value)  # dynamo wraps it, the message stays first
    with pytest.raises(OpSelfCheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        bias_act(torch.randn(2, 3), None, act="relu", impl="cpp")  # and the eager call after it
    torch._dynamo.reset()
