"""upfirdn2d (docs/maths.md §1.1): every implementation equals the reference, the reference equals a direct
definition, gradients are exact to second order, bad input is named, and the op compiles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from gemix_monai.ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from gemix_monai.ops._ext import get_extension, has_cuda_kernels
from gemix_monai.ops.upfirdn2d import upfirdn2d_ref

HAS_CPP = get_extension() is not None and hasattr(torch.ops.gemix_C, "upfirdn2d")
CPU_IMPLS = ["ref"] + (["cpp"] if HAS_CPP else [])
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="the C++ extension gemix_monai._C is not built")


def direct_upfirdn2d(x, f, up, down, pad, flip_filter, gain):
    """docs/maths.md §1.1 literally, in numpy: insert zeros, pad/crop, correlate with the flipped filter, keep."""
    (up_x, up_y), (down_x, down_y), (x0, x1, y0, y1) = up, down, pad
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    f2 = np.outer(f, f) if f.ndim == 1 else f
    f2 = f2 * gain  # gain ** (ndim / 2) per pass: gain once in total for either rank
    n, c, h, w = x.shape
    upsampled = np.zeros((n, c, h * up_y, w * up_x))
    upsampled[:, :, ::up_y, ::up_x] = x
    padded = np.zeros((n, c, h * up_y + y0 + y1, w * up_x + x0 + x1))
    for i in range(padded.shape[2]):
        for j in range(padded.shape[3]):
            si, sj = i - y0, j - x0
            if 0 <= si < upsampled.shape[2] and 0 <= sj < upsampled.shape[3]:
                padded[:, :, i, j] = upsampled[:, :, si, sj]
    fh, fw = f2.shape
    kernel = f2 if flip_filter else f2[::-1, ::-1]
    h_out = (h * up_y + y0 + y1 - fh + down_y) // down_y
    w_out = (w * up_x + x0 + x1 - fw + down_x) // down_x
    out = np.zeros((n, c, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = padded[:, :, i * down_y : i * down_y + fh, j * down_x : j * down_x + fw]
            out[:, :, i, j] = (window * kernel).sum(axis=(-1, -2))
    return out


def _filter(taps: int, ndim: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    shape = (taps,) if ndim == 1 else (taps, max(1, taps - 1))
    return torch.randn(shape, generator=generator, dtype=dtype)


# --- the reference against the direct definition ------------------------------------------------

REF_GRID = list(
    itertools.product(
        [(1, 1), (2, 2), (3, 1)],  # up (x, y)
        [(1, 1), (2, 2), (1, 3)],  # down (x, y)
        [(0, 0, 0, 0), (2, 1, 3, 0), (-1, 2, 1, -1)],  # padding (x0, x1, y0, y1)
        [1, 2],  # filter rank
        [False, True],  # flip_filter
    )
)


@pytest.mark.parametrize("up,down,pad,ndim,flip", REF_GRID)
def test_reference_equals_direct_definition(up, down, pad, ndim, flip):
    g = torch.Generator().manual_seed(hash((up, down, pad, ndim, flip)) % 2**31)
    x = torch.randn(2, 3, 5, 6, generator=g, dtype=torch.float64)
    f = _filter(4 if ndim == 1 else 3, ndim, g)
    expected = direct_upfirdn2d(x.numpy(), f.numpy(), up, down, pad, flip, 1.7)
    actual = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7, impl="ref")
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_output_size_formula():
    x = torch.zeros(1, 1, 7, 9)
    y = upfirdn2d(x, torch.ones(3, 5), up=(2, 3), down=(3, 2), padding=(1, 2, 3, 4), impl="ref")
    assert y.shape[2:] == ((7 * 3 + 3 + 4 - 3 + 2) // 2, (9 * 2 + 1 + 2 - 5 + 3) // 3)


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_resampling_helpers_preserve_a_constant_image(impl):
    f = setup_filter([1, 3, 3, 1])
    ones = torch.ones(1, 2, 8, 8)
    assert upsample2d(ones, f, impl=impl).shape == (1, 2, 16, 16)
    assert downsample2d(ones, f, impl=impl).shape == (1, 2, 4, 4)
    assert filter2d(ones, f, impl=impl).shape == (1, 2, 8, 8)
    torch.testing.assert_close(upsample2d(ones, f, impl=impl)[..., 2:-2, 2:-2], torch.ones(1, 2, 12, 12))
    torch.testing.assert_close(downsample2d(ones, f, impl=impl)[..., 1:-1, 1:-1], torch.ones(1, 2, 2, 2))
    torch.testing.assert_close(filter2d(ones, f, impl=impl)[..., 2:-2, 2:-2], torch.ones(1, 2, 4, 4))


def test_helpers_use_the_spec_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64)
    f = setup_filter([1, 2, 4, 2, 1])  # fw = 5
    torch.testing.assert_close(
        upsample2d(x, f, impl="ref"), upfirdn2d(x, f, up=2, padding=(3, 1, 3, 1), gain=4, impl="ref")
    )
    torch.testing.assert_close(
        downsample2d(x, f, impl="ref"), upfirdn2d(x, f, down=2, padding=(2, 1, 2, 1), impl="ref")
    )
    torch.testing.assert_close(filter2d(x, f, impl="ref"), upfirdn2d(x, f, padding=(2, 2, 2, 2), impl="ref"))


def test_setup_filter_normalises_flips_and_applies_gain():
    f = setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(f, torch.tensor([1.0, 3, 3, 1]) / 8)
    f2 = setup_filter([[1, 2], [3, 4]], normalize=False, flip_filter=True, gain=2)
    torch.testing.assert_close(f2, torch.tensor([[4.0, 3], [2, 1]]) * 2)
    assert setup_filter([1, 2], separable=False).shape == (2, 2)
    torch.testing.assert_close(setup_filter([1, 1], gain=4), torch.tensor([0.5, 0.5]) * 2)
    torch.testing.assert_close(setup_filter(None), torch.ones(1))


def test_none_filter_is_the_identity():
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(upfirdn2d(x, None, impl="ref"), x)


# --- every implementation against the reference -------------------------------------------------

KERNEL_GRID = list(
    itertools.product(
        [1, 2, 4],  # up
        [1, 2, 4],  # down
        [(0, 0, 0, 0), (3, 2, 1, 4), (-1, 2, 3, -2), (5, 5, 5, 5)],  # padding
        [(1, 1), (1, 4), (1, 7), (2, 3), (2, 12)],  # (filter rank, taps)
    )
)


def _check_against_reference(impl, x, f, up, down, pad, flip, gain, atol):
    try:
        expected = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain, impl="ref")
    except ValueError:  # the padding crops everything for this filter: nothing to compare
        return
    actual = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain, impl=impl)
    assert actual.shape == expected.shape
    assert actual.dtype == x.dtype
    assert actual.is_contiguous(memory_format=torch.channels_last) == expected.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(actual, expected, atol=atol, rtol=atol)


@requires_cpp
@pytest.mark.parametrize("up,down,pad,filt", KERNEL_GRID)
def test_cpp_equals_reference_float64(up, down, pad, filt):
    ndim, taps = filt
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 7, generator=g, dtype=torch.float64)
    f = _filter(taps, ndim, g)
    for flip, gain in ((False, 1.0), (True, 2.5)):
        _check_against_reference("cpp", x, f, up, down, pad, flip, gain, 1e-12)
        _check_against_reference("cpp", x.to(memory_format=torch.channels_last), f, up, down, pad, flip, gain, 1e-12)


@requires_cpp
@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (3, 5, 11, 13), (2, 512, 8, 8), (1, 64, 33, 17)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_cpp_equals_reference_float32_layouts(shape, layout, up, down):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(*shape, generator=g)
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    elif layout == "strided":  # a non-contiguous view
        x = torch.randn(shape[0], shape[1], shape[2], 2 * shape[3], generator=g)[..., ::2]
    f = setup_filter([1, 3, 3, 1])
    _check_against_reference("cpp", x, f, up, down, (2, 1, 1, 2), False, 1.0, 1e-5)
    _check_against_reference(
        "cpp", x, setup_filter([1, 3, 3, 1], separable=False), up, down, (1, 2, 2, 1), True, 4.0, 1e-5
    )


@requires_cpp
def test_cpp_keeps_channels_last_and_handles_single_channel():
    x = torch.randn(2, 1, 6, 6).to(memory_format=torch.channels_last)
    f = setup_filter([1, 2, 1])
    torch.testing.assert_close(upsample2d(x, f, impl="cpp"), upsample2d(x, f, impl="ref"))
    y = upsample2d(torch.randn(2, 4, 6, 6).to(memory_format=torch.channels_last), f, impl="cpp")
    assert y.is_contiguous(memory_format=torch.channels_last)


@requires_cpp
def test_cpp_rejects_half_when_forced_and_auto_falls_back():
    x = torch.randn(1, 2, 4, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="float32, float64"):
        upfirdn2d(x, setup_filter([1, 1]), impl="cpp")
    assert upfirdn2d(x, setup_filter([1, 1]).to(torch.bfloat16), impl="auto").dtype == torch.bfloat16


@requires_cuda
@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda_kernels(), reason="gemix_monai._C was built without CUDA kernels")
@pytest.mark.parametrize("up,down", list(itertools.product([1, 2, 4], [1, 2, 4])))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_cuda_equals_reference(up, down, dtype):
    g = torch.Generator().manual_seed(3)
    # 37x35 spans several 32x32 output tiles; 4-tap and 12-tap filters hit the specialised kernels
    x64 = torch.randn(2, 6, 37, 35, generator=g, dtype=torch.float64)
    atol = {torch.float64: 1e-12, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    for (_, _, pad, (ndim, taps)), flip in itertools.product(
        [c for c in KERNEL_GRID if c[:2] == (up, down)], (False, True)
    ):
        f = _filter(taps, ndim, g).cuda()
        for layout in ("contiguous", "channels_last", "strided"):
            x = x64.to("cuda", dtype)
            if layout == "channels_last":
                x = x.to(memory_format=torch.channels_last)
            elif layout == "strided":
                x = x.transpose(2, 3)
            try:
                expected = upfirdn2d(
                    x.double(), f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.5, impl="ref"
                )
            except ValueError:
                continue
            actual = upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.5, impl="cuda")
            assert actual.dtype == dtype
            scale = expected.abs().max().item() + 1
            torch.testing.assert_close(actual.double(), expected, atol=atol * scale, rtol=atol)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda_kernels(), reason="gemix_monai._C was built without CUDA kernels")
def test_cuda_gradients_are_exact():
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    f = setup_filter([1, 3, 3, 1], device="cuda").double()
    fn = lambda t: upfirdn2d(t, f, up=2, down=1, padding=(2, 1, 2, 1), impl="cuda")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", CPU_IMPLS)
@pytest.mark.parametrize(
    "up,down,pad,ndim,flip",
    [
        (1, 1, (1, 2, 2, 1), 1, False),
        (2, 1, (2, 1, 3, 0), 1, True),
        (1, 2, (1, 1, -1, 2), 2, False),
        (3, 2, (0, 2, 1, 1), 2, True),
    ],
)
def test_gradients_are_exact_to_second_order(impl, up, down, pad, ndim, flip):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 1, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f = _filter(3, ndim, g)
    fn = lambda t: upfirdn2d(t, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.3, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@requires_cpp
def test_forced_impl_is_used_in_backward(monkeypatch):
    import sys

    module = sys.modules["gemix_monai.ops.upfirdn2d"]  # the package attribute is the function
    seen = []
    original = module.upfirdn2d_ref

    def spy(*args, **kwargs):
        seen.append("ref")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "upfirdn2d_ref", spy)
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    upsample2d(x, setup_filter([1, 3, 3, 1]), impl="cpp").sum().backward()
    assert seen == []
    upsample2d(x, setup_filter([1, 3, 3, 1]), impl="ref").sum().backward()
    assert seen == ["ref", "ref"]


# --- torch.library registration and torch.compile ------------------------------------------------


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_custom_op_registration_passes_opcheck(impl):
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    torch.library.opcheck(torch.ops.gemix.upfirdn2d.default, (x, f, 2, 2, 1, 1, 2, 1, 2, 1, False, 4.0, impl))


@pytest.mark.parametrize("impl", CPU_IMPLS)
def test_module_compiles_with_fullgraph_including_backward(impl):
    class Resample(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("f", setup_filter([1, 3, 3, 1]))

        def forward(self, x):
            return downsample2d(upsample2d(x, self.f, impl=impl), self.f, impl=impl).sin()

    torch._dynamo.reset()
    model = Resample()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    compiled(x).square().sum().backward()
    grad_compiled = x.grad.clone()
    x.grad = None
    model(x).square().sum().backward()
    torch.testing.assert_close(grad_compiled, x.grad)


# --- bad input ----------------------------------------------------------------------------------

BAD_INPUTS = [
    (dict(x=torch.zeros(2, 4, 4)), ValueError, "x must be 4-D"),
    (dict(x=torch.zeros(1, 1, 4, 4, dtype=torch.int64)), TypeError, "x must be a floating-point"),
    (dict(x=[[1.0]]), TypeError, "x must be a torch.Tensor"),
    (dict(f=torch.ones(2, 2, 2)), ValueError, "f must be 1-D"),
    (dict(f=torch.ones(3, dtype=torch.int32)), TypeError, "f must be a floating-point"),
    (dict(f=torch.ones(0)), ValueError, "f must have at least one tap"),
    (dict(up=0), ValueError, "up must be >= 1"),
    (dict(down=(1, 0)), ValueError, "down must be >= 1"),
    (dict(up=(1, 2, 3)), ValueError, "up must be an int or an"),
    (dict(padding=(1, 2, 3)), ValueError, "padding must be an int"),
    (dict(padding=1.5), ValueError, "padding must be an int"),
    (dict(padding=-9), ValueError, "leaves an empty output"),
    (dict(impl="fast"), ValueError, "impl must be one of"),
]


@pytest.mark.parametrize("kwargs,error,message", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_names_the_argument(kwargs, error, message):
    args = dict(x=torch.zeros(1, 1, 4, 4), f=torch.ones(3))
    args.update(kwargs)
    with pytest.raises(error, match=message):
        upfirdn2d(**args)


@requires_cuda
def test_filter_on_another_device_is_rejected():
    with pytest.raises(ValueError, match="f must be on the same device as x"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(3, device="cuda"))


def test_filter_on_meta_device_is_rejected():
    with pytest.raises(ValueError, match="f must be on the same device as x"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(3, device="meta"))


def test_reference_function_matches_public_path():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    f = torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(
        upfirdn2d_ref(x, f, 2, 2, 1, 1, 1, 1, 1, 1, True, 2.0),
        upfirdn2d(x, f, up=2, padding=1, flip_filter=True, gain=2.0, impl="ref"),
    )
