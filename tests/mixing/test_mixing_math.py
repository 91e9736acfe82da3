import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gemix_monai.mixing import (
    blend,
    genmix,
    pixel_mixup,
    sample_genmix_lambda,
    sample_mixup_lambda,
    sample_permutation,
    to_soft_label,
)


def _pairs(b=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xr = torch.rand(b, 1, 8, 8, generator=g) * 2 - 1, torch.rand(b, 1, 8, 8, generator=g) * 2 - 1
    ys = torch.softmax(torch.randn(b, k, generator=g), 1)
    yr = to_soft_label(torch.randint(0, k, (b,), generator=g), k)
    return xs, ys, xr, yr


def test_genmix_with_lambda_zero_returns_the_real_pair():
    xs, ys, xr, yr = _pairs()
    x, y = genmix(xs, ys, xr, yr, 0.0)
    assert torch.equal(x, xr) and torch.equal(y, yr)


def test_genmix_with_lambda_one_returns_the_synthetic_pair():
    xs, ys, xr, yr = _pairs()
    x, y = genmix(xs, ys, xr, yr, torch.ones(4))
    assert torch.equal(x, xs) and torch.equal(y, ys)


def test_genmix_blends_images_and_labels_with_the_same_weight():
    xs, ys, xr, yr = _pairs()
    lam = torch.tensor([0.1, 0.5, 0.7, 0.9])
    x, y = genmix(xs, ys, xr, yr, lam)
    torch.testing.assert_close(x, lam.view(-1, 1, 1, 1) * xs + (1 - lam.view(-1, 1, 1, 1)) * xr)
    torch.testing.assert_close(y, lam.view(-1, 1) * ys + (1 - lam.view(-1, 1)) * yr)


def test_genmix_single_sample_takes_a_scalar_lambda():
    xs, ys, xr, yr = _pairs()
    x, y = genmix(xs[0], ys[0], xr[0], yr[0], 0.25)
    torch.testing.assert_close(x, 0.25 * xs[0] + 0.75 * xr[0])
    torch.testing.assert_close(y, 0.25 * ys[0] + 0.75 * yr[0])


def test_genmix_rejects_labels_off_the_simplex():
    xs, ys, xr, yr = _pairs()
    with pytest.raises(ValueError, match="synthetic_labels"):
        genmix(xs, ys * 2, xr, yr, 0.5)


@pytest.mark.parametrize("lam, match", [(torch.ones(3), "one value per sample"), (1.5, r"lam must lie in \[0, 1\]")])
def test_blend_rejects_bad_lambda(lam, match):
    xs, ys, xr, yr = _pairs()
    with pytest.raises(ValueError, match=match):
        blend(xs, ys, xr, yr, lam)


def test_blend_rejects_mismatched_shapes():
    xs, ys, xr, yr = _pairs()
    with pytest.raises(ValueError, match="same shape"):
        blend(xs, ys, xr[:, :, :4], yr, 0.5)


def test_pixel_mixup_with_identity_permutation_returns_the_batch():
    x, y, _, _ = _pairs(b=5)
    mx, my = pixel_mixup(x, y, sample_mixup_lambda(5, 0.4, 0), torch.arange(5))
    torch.testing.assert_close(mx, x)
    torch.testing.assert_close(my, y)


def test_pixel_mixup_mixes_each_sample_with_its_partner():
    x, y, _, _ = _pairs(b=5)
    perm, lam = sample_permutation(5, 1), sample_mixup_lambda(5, 0.4, 1)
    mx, my = pixel_mixup(x, y, lam, perm)
    for b in range(5):
        torch.testing.assert_close(mx[b], lam[b] * x[b] + (1 - lam[b]) * x[perm[b]])
        torch.testing.assert_close(my[b], lam[b] * y[b] + (1 - lam[b]) * y[perm[b]])


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.0])
def test_genmix_lambda_is_beta_alpha_one(alpha):
    lam = sample_genmix_lambda(100_000, alpha, 0).double().numpy()
    mean = alpha / (alpha + 1)
    var = alpha / ((alpha + 1) ** 2 * (alpha + 2))
    assert abs(lam.mean() - mean) < 5 * np.sqrt(var / len(lam))
    np.testing.assert_allclose(lam.var(), var, rtol=0.03)


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0])
def test_mixup_lambda_is_beta_alpha_alpha(alpha):
    lam = sample_mixup_lambda(100_000, alpha, 0).double().numpy()
    var = 1 / (4 * (2 * alpha + 1))
    assert abs(lam.mean() - 0.5) < 5 * np.sqrt(var / len(lam))
    np.testing.assert_allclose(lam.var(), var, rtol=0.03)


@pytest.mark.parametrize("alpha", [0, -1, float("inf")])
def test_lambda_samplers_reject_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        sample_genmix_lambda(3, alpha)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 9),
    k=st.integers(2, 6),
    spatial=st.sampled_from([(6,), (5, 7), (3, 4, 5)]),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
    device=st.sampled_from(["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]),
    seed=st.integers(0, 2**16),
)
def test_property_mix_keeps_shape_dtype_device_and_simplex(b, k, spatial, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    xs = torch.rand(b, 2, *spatial, generator=g).to(device, dtype)
    xr = torch.rand(b, 2, *spatial, generator=g).to(device, dtype)
    ys = torch.softmax(torch.randn(b, k, generator=g), 1).to(device)
    yr = to_soft_label(torch.randint(0, k, (b,), generator=g), k).to(device)
    x, y = genmix(xs, ys, xr, yr, sample_genmix_lambda(b, 0.3, seed))
    assert x.shape == xs.shape and x.dtype == dtype and x.device.type == device
    assert y.shape == (b, k) and y.dtype == torch.float32 and y.device.type == device
    torch.testing.assert_close(y.sum(1).cpu(), torch.ones(b), atol=1e-5, rtol=0)
    # A convex combination stays between its two end points.
    lo, hi = torch.minimum(xs, xr).float(), torch.maximum(xs, xr).float()
    tol = 1e-2 if dtype == torch.float16 else 1e-6
    assert (x.float() >= lo - tol).all() and (x.float() <= hi + tol).all()
