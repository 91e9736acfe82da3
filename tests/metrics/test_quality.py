"""Synthetic-quality metrics: each against a hand computation or a case whose answer is known."""

import numpy as np
import pytest
import scipy.linalg
import torch

from gemix_monai.metrics.quality import (
    frechet_distance,
    kid,
    mean_pairwise_ms_ssim,
    mmd2_unbiased_polynomial,
    ms_ssim,
    ms_ssim_params,
    nearest_neighbours,
    precision_recall,
)


def _gaussians(seed=0, n=(40, 50), d=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n[0], d)) @ rng.normal(size=(d, d))
    b = rng.normal(loc=0.5, size=(n[1], d)) @ rng.normal(size=(d, d))
    return a, b


def _fd_by_hand(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))


def test_frechet_distance_equals_the_hand_computation():
    a, b = _gaussians()
    assert frechet_distance(a, b) == pytest.approx(_fd_by_hand(a, b), rel=1e-8)
    assert frechet_distance(torch.from_numpy(b), a) == pytest.approx(_fd_by_hand(a, b), rel=1e-8)  # symmetric


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a, _ = _gaussians()
    assert abs(frechet_distance(a, a)) < 1e-8


def test_frechet_distance_of_one_dimensional_features_is_the_closed_form():
    a, b = np.array([[0.0], [1.0], [2.0]]), np.array([[3.0], [5.0], [7.0]])
    assert frechet_distance(a, b) == pytest.approx((1 - 5) ** 2 + (1 - 2) ** 2)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "same feature size"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 rows"),
        (np.zeros((5,)), np.zeros((5, 3)), r"2-D array \[N, D\]"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
    ],
)
def test_frechet_distance_refuses_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


def _mmd_by_hand(x, y):
    d = x.shape[1]

    def k(u, v):
        return (u @ v / d + 1) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_unbiased_mmd_equals_the_hand_computation():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(loc=1.0, size=(4, 3))
    assert mmd2_unbiased_polynomial(x, y) == pytest.approx(_mmd_by_hand(x, y), rel=1e-10)


def test_kid_on_full_subsets_equals_the_hand_computation():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3)), rng.normal(loc=0.7, size=(6, 3))
    result = kid(x, y, num_subsets=3, subset_size=6)
    assert result.subset_size == 6 and result.num_subsets == 3
    assert result.mean == pytest.approx(_mmd_by_hand(x, y), rel=1e-10)  # every subset is a permutation of the full set
    assert result.std == pytest.approx(0, abs=1e-12)


def test_kid_subsets_are_seeded_and_average_to_small_values_for_one_distribution():
    rng = np.random.default_rng(3)
    x, y, far = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), rng.normal(loc=3.0, size=(60, 4))
    r1, r2 = kid(x, y, num_subsets=10, subset_size=20, seed=5), kid(x, y, num_subsets=10, subset_size=20, seed=5)
    assert r1 == r2 and r1.subset_size == 20
    assert kid(x, y, num_subsets=10, subset_size=20, seed=6).mean != r1.mean
    assert abs(r1.mean) < kid(x, far, num_subsets=10, subset_size=20).mean / 20


def test_precision_and_recall_of_identical_sets_are_one():
    x = np.random.default_rng(4).normal(size=(30, 5))
    pr = precision_recall(x, x.copy(), k=3)
    assert (pr.precision, pr.recall, pr.k) == (1.0, 1.0, 3)


def test_precision_and_recall_of_far_apart_clusters_are_zero():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(30, 5)), rng.normal(loc=100.0, size=(30, 5))
    pr = precision_recall(real, fake)
    assert pr.precision == 0.0 and pr.recall == 0.0


def test_precision_is_the_fraction_of_fakes_on_the_real_manifold():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(40, 2))
    fake = np.concatenate([real[:10] + 1e-3, rng.normal(loc=100.0, size=(30, 2))])  # 10 of 40 on the manifold
    pr = precision_recall(real, fake, k=3)
    assert pr.precision == pytest.approx(10 / 40)


def test_precision_recall_needs_more_rows_than_k():
    with pytest.raises(ValueError, match="at least 4 rows"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)), k=3)


@pytest.mark.parametrize(("side", "scales", "kernel"), [(16, 2, 7), (32, 3, 7), (64, 4, 7), (128, 5, 7), (256, 5, 11)])
def test_ms_ssim_settings_follow_the_resolution_rule(side, scales, kernel):
    p = ms_ssim_params(side)
    assert (p["scales"], p["kernel_size"], len(p["weights"])) == (scales, kernel, scales)
    assert sum(p["weights"]) == pytest.approx(1.0)


@pytest.mark.parametrize("side", [16, 32, 64])
def test_ms_ssim_of_identical_images_is_one_and_lower_for_noise(side):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
    smooth = torch.stack([torch.sin(3 * xx + k) * torch.cos(2 * yy) for k in range(3)]).unsqueeze(1) * 0.8
    assert torch.allclose(ms_ssim(smooth, smooth), torch.ones(3, dtype=torch.float64), atol=1e-5)
    noisy = (smooth + 0.5 * torch.randn(smooth.shape, generator=g)).clamp(-1, 1)
    assert bool((ms_ssim(smooth, noisy) < 0.9).all())


def test_mean_pairwise_ms_ssim_is_lower_for_a_more_diverse_set():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(1, 1, 32, 32, generator=g) * 2 - 1
    collapsed = (base + 0.02 * torch.randn(8, 1, 32, 32, generator=g)).clamp(-1, 1)
    diverse = torch.rand(8, 1, 32, 32, generator=g) * 2 - 1
    same, pairs = mean_pairwise_ms_ssim(collapsed)
    assert pairs == 28 and same > 0.9
    assert mean_pairwise_ms_ssim(diverse)[0] < same
    _, few = mean_pairwise_ms_ssim(diverse, max_pairs=5, seed=0)
    assert few == 5


def test_nearest_neighbours_finds_an_exact_copy():
    g = torch.Generator().manual_seed(2)
    train = torch.rand(20, 1, 16, 16, generator=g) * 2 - 1
    synthetic = torch.rand(5, 1, 16, 16, generator=g) * 2 - 1
    synthetic[3] = train[11]
    dist, idx = nearest_neighbours(synthetic, train)
    assert dist[3].item() == 0.0 and idx[3].item() == 11
    assert bool((dist[[0, 1, 2, 4]] > 1.0).all())
    brute = torch.cdist(synthetic.flatten(1).double(), train.flatten(1).double())
    assert torch.allclose(dist, brute.min(1).values) and torch.equal(idx, brute.argmin(1))


def test_nearest_neighbours_refuses_different_item_shapes():
    with pytest.raises(ValueError, match="same item shape"):
        nearest_neighbours(torch.zeros(2, 1, 8, 8), torch.zeros(3, 1, 16, 16))


# ---------------------------------------------------------------- density and coverage (issue 19)


def test_coverage_of_the_real_set_itself_is_one_and_density_about_one():
    from gemix_monai.metrics.quality import density_coverage

    real = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    r = density_coverage(real, real, k=3)
    assert r.coverage == 1.0 and r.density >= 1.0  # each real lies in its own ball and its neighbours'


def test_scattered_fakes_do_not_inflate_coverage_as_they_inflate_recall():
    from gemix_monai.metrics.quality import density_coverage, precision_recall

    g = torch.Generator().manual_seed(1)
    real = torch.randn(200, 8, generator=g)
    fakes = torch.randn(14, 8, generator=g) * 6  # few, far-flung samples: huge k-NN balls of their own
    assert precision_recall(real, fakes, k=3).recall > 0.9
    dc = density_coverage(real, fakes, k=3)
    assert dc.coverage < 0.1 and dc.density < 0.1


def test_coverage_counts_the_reals_reached_by_a_fake_exactly():
    from gemix_monai.metrics.quality import density_coverage

    real = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    fake = torch.tensor([[0.1], [0.2]])  # k = 1: radii 1,1,1,1,1,1; both fakes fall in the balls of reals 0 and 1
    dc = density_coverage(real, fake, k=1)
    assert dc.coverage == 2 / 6 and dc.density == 4 / 2
