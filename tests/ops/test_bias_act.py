"""bias_act (docs/maths.md §1.2): the reference against the table, every kernel against the reference."""

import importlib
import math

import numpy as np
import pytest
import torch

from gemix_monai.ops import ACTIVATIONS, bias_act
from gemix_monai.ops._ext import get_extension

HAS_CPP = get_extension() is not None and hasattr(torch.ops.gemix_C, "bias_act")
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="the C++ extension with the bias_act kernel is not built")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")

ACTS = sorted(ACTIVATIONS)
# Every implementation that can run here, with the device it runs on.
KERNELS = [pytest.param("cpp", "cpu", marks=requires_cpp), pytest.param("cuda", "cuda", marks=requires_cuda)]


def _numpy_act(name: str, z: np.ndarray, alpha: float) -> np.ndarray:
    """docs/maths.md §1.2's table, written out independently of torch."""
    sig = 1.0 / (1.0 + np.exp(-z))
    return {
        "linear": z,
        "relu": np.maximum(z, 0.0),
        "lrelu": np.where(z >= 0, z, alpha * z),
        "tanh": np.tanh(z),
        "sigmoid": sig,
        "elu": np.where(z >= 0, z, np.expm1(np.minimum(z, 0))),
        "selu": 1.0507009873554805 * np.where(z >= 0, z, 1.6732632423543772 * np.expm1(np.minimum(z, 0))),
        "softplus": np.log1p(np.exp(z)),
        "swish": z * sig,
    }[name]


MATHS_TABLE = {  # name: (default alpha or None, default gain)
    "linear": (None, 1.0),
    "relu": (None, math.sqrt(2)),
    "lrelu": (0.2, math.sqrt(2)),
    "tanh": (None, 1.0),
    "sigmoid": (None, 1.0),
    "elu": (None, 1.0),
    "selu": (None, 1.0),
    "softplus": (None, 1.0),
    "swish": (None, math.sqrt(2)),
}


def _data(shape, dim=1, dtype=torch.float64, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype) * 2
    b = torch.randn(shape[dim], generator=g, dtype=dtype) if bias else None
    return x, b


def test_activation_defaults_follow_the_spec_table():
    assert set(ACTIVATIONS) == set(MATHS_TABLE)
    for name, (alpha, gain) in MATHS_TABLE.items():
        assert ACTIVATIONS[name].def_gain == pytest.approx(gain)
        if alpha is not None:
            assert ACTIVATIONS[name].def_alpha == pytest.approx(alpha)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_reference_matches_the_table_in_numpy(act, clamp):
    x, b = _data((2, 3, 4, 5))
    alpha, gain = MATHS_TABLE[act]
    expected = _numpy_act(act, (x + b[None, :, None, None]).numpy(), alpha or 0.0) * gain
    if clamp is not None:
        expected = np.clip(expected, -clamp, clamp)
    y = bias_act(x, b, act=act, clamp=clamp, impl="ref")
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("act", ACTS)
def test_kernel_forward_equals_reference(impl, device, act, with_bias, clamp, dtype):
    x, b = _data((3, 5, 4, 6), dtype=dtype, bias=with_bias)
    x, b = x.to(device), (b.to(device) if b is not None else None)
    y = bias_act(x, b, act=act, clamp=clamp, impl=impl)
    ref = bias_act(x, b, act=act, clamp=clamp, impl="ref")
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(y, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", ACTS)
def test_kernel_first_and_second_order_gradients_equal_reference(impl, device, act, clamp):
    x0, b0 = _data((2, 3, 4, 4))
    grads = []
    for path in (impl, "ref"):
        x = x0.to(device).requires_grad_(True)
        b = b0.to(device).requires_grad_(True)
        y = bias_act(x, b, act=act, clamp=clamp, impl=path)
        dy = torch.linspace(-1, 1, y.numel(), dtype=y.dtype, device=device).reshape(y.shape)
        gx, gb = torch.autograd.grad(y, (x, b), dy, create_graph=True)
        # a scalar of the first-order gradients, differentiated again (what R1 regularisation does)
        # (+ 0·x keeps the penalty in the graph for activations whose gradient does not depend on x)
        penalty = (gx.square().sum() + gb.square().sum()) + (x * 0).sum()
        hx, hb = torch.autograd.grad(penalty, (x, b), allow_unused=True, materialize_grads=True)
        grads.append((y, gx, gb, hx, hb))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("act", ACTS)
def test_kernel_gradcheck_and_gradgradcheck_float64(impl, device, act):
    x, b = _data((2, 3, 3, 2))
    x = x.to(device).requires_grad_(True)
    b = b.to(device).requires_grad_(True)
    fn = lambda x, b: bias_act(x, b, act=act, clamp=3.0, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1])
@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_bias_runs_along_any_dim(impl, device, dim, act):
    x, b = _data((3, 4, 5, 6), dim=dim)
    x, b = x.to(device), b.to(device)
    torch.testing.assert_close(
        bias_act(x, b, dim=dim, act=act, impl=impl), bias_act(x, b, dim=dim, act=act, impl="ref")
    )


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("channels", [1, 3, 512])
def test_batch_sizes_and_channel_counts(impl, device, batch, channels):
    x, b = _data((batch, channels, 3, 2))
    x, b = x.to(device), b.to(device)
    torch.testing.assert_close(
        bias_act(x, b, act="lrelu", clamp=1.0, impl=impl), bias_act(x, b, act="lrelu", clamp=1.0, impl="ref")
    )


@pytest.mark.parametrize("impl,device", KERNELS)
@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
@pytest.mark.parametrize("act", ["lrelu", "tanh"])
def test_non_contiguous_and_channels_last_inputs(impl, device, layout, act):
    x0, b0 = _data((2, 6, 5, 4))
    x0, b0 = x0.to(device), b0.to(device)
    if layout == "channels_last":
        x = x0.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x0.transpose(2, 3)
    else:
        x = x0[:, :, ::2]
    x = x.detach().requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    y = bias_act(x, b0, act=act, clamp=2.0, impl=impl)
    yr = bias_act(xr, b0, act=act, clamp=2.0, impl="ref")
    torch.testing.assert_close(y, yr)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
    dy = torch.randn_like(yr)  # contiguous while x may be channels_last: the kernel aligns layouts
    torch.testing.assert_close(torch.autograd.grad(y, x, dy)[0], torch.autograd.grad(yr, xr, dy)[0])


@pytest.mark.parametrize("impl", ["ref", pytest.param("cpp", marks=requires_cpp)])
def test_alpha_and_gain_override_the_defaults(impl):
    x, b = _data((2, 3, 4, 4))
    y = bias_act(x, b, act="lrelu", alpha=0.5, gain=3.0, impl=impl)
    z = (x + b[None, :, None, None]).numpy()
    np.testing.assert_allclose(y.numpy(), np.where(z >= 0, z, 0.5 * z) * 3.0, rtol=1e-12)


@pytest.mark.parametrize("impl", ["ref", pytest.param("cpp", marks=requires_cpp)])
def test_negative_lrelu_slope_has_exact_gradients(impl):
    # alpha < 0 maps negative inputs to positive outputs: the gradient must come from x, not y
    x, b = _data((2, 3, 2, 2))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: bias_act(x, b, act="lrelu", alpha=-0.3, impl=impl), (x,))


def test_negative_clamp_means_no_clamping():
    x, b = _data((2, 3, 4, 4))
    torch.testing.assert_close(
        bias_act(x * 100, b, act="linear", clamp=-1, impl="ref"), x * 100 + b[None, :, None, None]
    )


@requires_cpp
def test_float16_on_cpu_falls_back_to_the_reference_or_refuses_when_forced():
    x = torch.randn(2, 3, 4, 4).half()
    torch.testing.assert_close(bias_act(x, act="lrelu", impl="auto"), bias_act(x, act="lrelu", impl="ref"))
    with pytest.raises(TypeError, match="dtype"):
        bias_act(x, act="lrelu", impl="cpp")


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", ACTS)
def test_cuda_half_precision_matches_reference_in_float32(dtype, act):
    x, b = _data((4, 32, 8, 8), dtype=torch.float32)
    x, b = x.cuda(), b.cuda()
    y = bias_act(x.to(dtype), b.to(dtype), act=act, clamp=1.5, impl="cuda")
    ref = bias_act(x.to(dtype).float(), b.to(dtype).float(), act=act, clamp=1.5, impl="ref")
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "kwargs,error,names",
    [
        (dict(x=torch.ones(2, 3, dtype=torch.int64)), TypeError, "x"),
        (dict(x=[1.0, 2.0]), TypeError, "x"),
        (dict(b=torch.ones(4)), ValueError, "b"),
        (dict(b=torch.ones(3, dtype=torch.int32)), TypeError, "b"),
        (dict(act="gelu"), ValueError, "act"),
        (dict(dim=2), ValueError, "dim"),
        (dict(impl="fast"), ValueError, "impl"),
        (dict(clamp="big"), TypeError, "clamp"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_named(kwargs, error, names):
    args = dict(x=torch.ones(2, 3), b=torch.ones(3), act="lrelu")
    args.update(kwargs)
    with pytest.raises(error, match=names):
        bias_act(**args)


@pytest.mark.skipif(not HAS_CPP, reason="gemix_monai._C with bias_act is not built")
@pytest.mark.parametrize(
    ("act", "clamp", "uses_kernel"),
    [
        ("lrelu", None, True),
        ("relu", None, True),
        ("linear", 256.0, True),
        ("linear", None, False),
        ("tanh", None, False),
        ("sigmoid", None, False),
        ("elu", None, False),
        ("selu", None, False),
        ("softplus", None, False),
        ("swish", None, False),
    ],
)
def test_auto_on_cpu_uses_the_fused_kernel_only_where_it_is_faster(monkeypatch, act, clamp, uses_kernel):
    module = importlib.import_module("gemix_monai.ops.bias_act")  # the package re-exports a function of that name

    calls = []
    real_op = module._bias_act_op
    monkeypatch.setattr(module, "_bias_act_op", lambda *args: calls.append(args) or real_op(*args))
    monkeypatch.setenv("GEMIX_OPS", "auto")
    x, b = torch.randn(2, 4, 5, 5), torch.randn(4)
    y = bias_act(x, b, act=act, clamp=clamp)
    assert bool(calls) == uses_kernel
    torch.testing.assert_close(
        y,
        module.bias_act_ref(
            x, b, 1, act, ACTIVATIONS[act].def_alpha, ACTIVATIONS[act].def_gain, -1.0 if clamp is None else clamp
        ),
    )


@pytest.mark.skipif(not HAS_CPP, reason="gemix_monai._C with bias_act is not built")
def test_forced_cpp_still_runs_the_kernel_for_transcendental_activations(monkeypatch):
    module = importlib.import_module("gemix_monai.ops.bias_act")  # the package re-exports a function of that name

    calls = []
    real_op = module._bias_act_op
    monkeypatch.setattr(module, "_bias_act_op", lambda *args: calls.append(args) or real_op(*args))
    bias_act(torch.randn(2, 4, 5, 5), torch.randn(4), act="tanh", impl="cpp")
    assert calls
