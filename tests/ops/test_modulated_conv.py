"""modulated_conv2d (docs/maths.md §1.3): modulation kernel, strategies, resampling and its border convention."""

import pytest
import torch
import torch.nn.functional as F

from gemix_monai.ops import downsample2d, modulated_conv2d, setup_filter, upsample2d
from gemix_monai.ops._ext import get_extension
from gemix_monai.ops.modulated_conv import _modulate, modulate_weight_ref

HAS_CPP = get_extension() is not None and hasattr(torch.ops.gemix_C, "modulate_weight")
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="the C++ extension with the modulation kernel is not built")
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")

IMPLS = ["ref", pytest.param("cpp", marks=requires_cpp)]
RESAMPLE = [(1, 1), (2, 1), (1, 2)]


def _data(n=2, i=3, o=4, k=3, h=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, h, h, generator=g, dtype=dtype)
    weight = torch.randn(o, i, k, k, generator=g, dtype=dtype)
    styles = torch.randn(n, i, generator=g, dtype=dtype) + 1
    return x, weight, styles


def _per_sample_conv(x, weight, styles, demodulate, padding):
    """Each sample convolved with its own modulated weight, one conv2d call per sample."""
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w / (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).sqrt()
    return torch.cat([F.conv2d(x[j : j + 1], w[j], padding=padding) for j in range(x.shape[0])])


def _composition(x, weight, styles, up, down, demodulate, padding, f):
    """docs/maths.md §1.3's reference composition: upsample2d then conv, or conv then downsample2d."""
    if up == 2:
        return _per_sample_conv(upsample2d(x, f, impl="ref"), weight, styles, demodulate, padding)
    y = _per_sample_conv(x, weight, styles, demodulate, padding)
    return downsample2d(y, f, impl="ref") if down == 2 else y


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("channels", [1, 5, 64])
def test_demodulated_weights_have_unit_norm_per_output_channel(impl, channels):
    _, weight, styles = _data(n=3, i=channels, o=6)
    w, d = _modulate(weight * 10, styles, True, impl)
    norms = w.square().sum(dim=[2, 3, 4]).sqrt()
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert d.shape == (3, 6)


@requires_cpp
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_modulation_kernel_equals_reference(demodulate, dtype):
    _, weight, styles = _data(n=3, i=7, o=5, dtype=dtype)
    w, d = _modulate(weight, styles, demodulate, "cpp")
    w_ref, d_ref = modulate_weight_ref(weight, styles, demodulate)
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(d, d_ref)


@requires_cpp
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulation_kernel_gradcheck_and_gradgradcheck(demodulate):
    _, weight, styles = _data(n=2, i=3, o=2)
    weight.requires_grad_(True)
    styles.requires_grad_(True)
    fn = lambda w, s: _modulate(w, s, demodulate, "cpp")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (weight, styles))
    assert torch.autograd.gradgradcheck(fn, (weight, styles))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
def test_plain_conv_equals_per_sample_convolution(impl, demodulate, batch):
    x, weight, styles = _data(n=batch)
    for fused in (True, False):
        y = modulated_conv2d(x, weight, styles, padding=1, demodulate=demodulate, fused=fused, impl=impl)
        torch.testing.assert_close(y, _per_sample_conv(x, weight, styles, demodulate, 1))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("up,down", RESAMPLE)
@pytest.mark.parametrize("demodulate", [True, False])
def test_fused_equals_non_fused(impl, up, down, demodulate):
    x, weight, styles = _data(n=3)
    kw = dict(up=up, down=down, padding=1, demodulate=demodulate, impl=impl)
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles, fused=True, **kw), modulated_conv2d(x, weight, styles, fused=False, **kw)
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("k,padding", [(3, 1), (1, 0), (5, 2)])
def test_resampling_is_exactly_the_composition_on_zero_extended_input(impl, up, down, fused, k, padding):
    # The border convention: x extended by zeros, conv and FIR filter without cropping in between.
    x, weight, styles = _data(k=k)
    f = setup_filter([1, 3, 3, 1]).double()
    margin = 4
    y = modulated_conv2d(
        x, weight, styles, up=up, down=down, padding=padding, resample_filter=f, fused=fused, impl=impl
    )
    ref = _composition(F.pad(x, [margin] * 4), weight, styles, up, down, True, padding, f)
    crop = margin * up // down
    torch.testing.assert_close(y, ref[:, :, crop:-crop, crop:-crop])


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
def test_resampling_equals_the_plain_composition_away_from_the_borders(up, down):
    x, weight, styles = _data(h=16)
    f = setup_filter([1, 3, 3, 1]).double()
    y = modulated_conv2d(x, weight, styles, up=up, down=down, padding=1, resample_filter=f, impl="ref")
    ref = _composition(x, weight, styles, up, down, True, 1, f)
    assert y.shape == ref.shape == (2, 4, 16 * up // down, 16 * up // down)
    border = 3
    torch.testing.assert_close(y[:, :, border:-border, border:-border], ref[:, :, border:-border, border:-border])


def test_default_resample_filter_is_the_normalised_1331():
    x, weight, styles = _data()
    f = setup_filter([1, 3, 3, 1]).double()
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles, up=2, padding=1, impl="ref"),
        modulated_conv2d(x, weight, styles, up=2, padding=1, resample_filter=f, impl="ref"),
    )


@pytest.mark.parametrize("fused", [True, False])
def test_noise_is_added_after_the_convolution(fused):
    x, weight, styles = _data()
    noise = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    y = modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused=fused, impl="ref")
    torch.testing.assert_close(y, modulated_conv2d(x, weight, styles, padding=1, fused=fused, impl="ref") + noise)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("up,down", RESAMPLE)
@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_and_gradgradcheck_every_path(impl, up, down, fused):
    h = 3 if up == 2 else 4
    x, weight, styles = _data(n=2, i=2, o=2, h=h)
    inputs = tuple(t.requires_grad_(True) for t in (x, weight, styles))
    noise = torch.randn(2, 1, h * up // down, h * up // down, dtype=torch.float64)
    fn = lambda x, w, s: modulated_conv2d(x, w, s, noise=noise, up=up, down=down, padding=1, fused=fused, impl=impl)  # noqa: E731
    # fast mode: random projections of the Jacobians (exact checks of each output are covered by
    # the full-mode checks of the modulation kernel and of bias_act)
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, inputs, fast_mode=True)


@requires_cuda
def test_float16_weights_are_prenormalised_before_demodulation():
    # Σ w² of these weights overflows float16 (max 65504); the result must stay finite and match float32.
    x, weight, styles = _data(dtype=torch.float32)
    x, weight, styles = x.cuda(), weight.cuda() * 300, styles.cuda() * 300
    y16 = modulated_conv2d(x.half(), weight.half(), styles.half(), padding=1)
    y32 = modulated_conv2d(x, weight, styles, padding=1)
    assert torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=2e-2)


@requires_cuda
@pytest.mark.parametrize("up,down", RESAMPLE)
@pytest.mark.parametrize("fused", [True, False])
def test_cuda_equals_reference(up, down, fused):
    x, weight, styles = (t.cuda().requires_grad_(True) for t in _data())
    y = modulated_conv2d(x, weight, styles, up=up, down=down, padding=1, fused=fused, impl="cuda")
    y_ref = modulated_conv2d(x, weight, styles, up=up, down=down, padding=1, fused=fused, impl="ref")
    torch.testing.assert_close(y, y_ref)
    g = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (x, weight, styles), g), torch.autograd.grad(y_ref, (x, weight, styles), g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "change,error,name",
    [
        (dict(x=torch.ones(2, 3, 8)), ValueError, "x"),
        (dict(x=torch.ones(2, 3, 8, 8, dtype=torch.int64)), TypeError, "x"),
        (dict(weight=torch.ones(4, 3, 3)), ValueError, "weight"),
        (dict(weight=torch.ones(4, 3, 3, 2)), ValueError, "weight"),
        (dict(weight=torch.ones(4, 5, 3, 3)), ValueError, "weight"),
        (dict(styles=torch.ones(2, 4)), ValueError, "styles"),
        (dict(styles=torch.ones(2, 3, 1)), ValueError, "styles"),
        (dict(styles=torch.ones(2, 3, dtype=torch.int32)), TypeError, "styles"),
        (dict(up=3), ValueError, "up"),
        (dict(up=0), ValueError, "up"),
        (dict(down=-1), ValueError, "down"),
        (dict(up=2, down=2), ValueError, "up and down"),
        (dict(noise=torch.ones(2, 8, 8)), ValueError, "noise"),
    ],
)
def test_bad_input_is_rejected_with_the_argument_named(change, error, name):
    args = dict(x=torch.ones(2, 3, 8, 8), weight=torch.ones(4, 3, 3, 3), styles=torch.ones(2, 3))
    args.update(change)
    with pytest.raises(error, match=name):
        modulated_conv2d(**args, padding=1)
