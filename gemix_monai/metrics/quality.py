"""Quality of a synthetic image set, functional: fidelity, coverage, diversity and memorisation.

Every function takes plain tensors (or arrays) and returns Python floats / small dataclasses, so the
audit (:mod:`gemix_monai.experiments.audit`) and the tests call the same code. Feature vectors are
``[N, D]`` (one row per image, from any network layer); images are ``[N, C, H, W]`` in the training
intensity range ``[-1, 1]``. Formulas are written out in ``docs/quality.md``.

* :func:`frechet_distance` — Fréchet distance between Gaussians fitted to two feature sets, computed by
  MONAI's :class:`monai.metrics.FIDMetric` (the "FID" formula, whatever network gave the features).
* :func:`kid` — kernel distance (the KID formula of Bińkowski et al. 2018): unbiased MMD² with the cubic
  polynomial kernel ``k(x, y) = (x·y / d + 1)^3``, averaged over random subsets drawn with a seed.
  MONAI's :class:`monai.metrics.MMDMetric` is not used: it computes the unbiased MMD² with the *linear*
  kernel ``k(x, y) = x·y`` on flattened inputs of equal batch size, which only compares the means of the
  two sets (its value equals ``||mean(x) - mean(y)||²`` up to the unbiased-diagonal correction).
* :func:`precision_recall` — k-NN manifold precision and recall (Kynkäänniemi et al. 2019).
* :func:`ms_ssim` / :func:`mean_pairwise_ms_ssim` — MS-SSIM through MONAI's
  :class:`monai.metrics.MultiScaleSSIMMetric`, with scales and kernel chosen for the resolution by
  :func:`ms_ssim_params`; the mean over pairs of one set is a diversity score (lower = more diverse).
* :func:`nearest_neighbours` — distance from each query to its nearest reference and that reference's
  index (pixel space or feature space), for memorisation checks.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "DensityCoverage",
    "KIDResult",
    "PrecisionRecall",
    "density_coverage",
    "frechet_distance",
    "kid",
    "mean_pairwise_ms_ssim",
    "mmd2_unbiased_polynomial",
    "ms_ssim",
    "ms_ssim_params",
    "nearest_neighbours",
    "polynomial_kernel",
    "precision_recall",
]

#: The standard MS-SSIM scale weights (Wang et al. 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _features(x, name: str, min_rows: int = 1) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().to(torch.float64)
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D] of feature vectors, got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (feature vectors), got {t.shape[0]}")
    if t.shape[1] < 1:
        raise ValueError(f"{name} has no feature columns (shape {tuple(t.shape)})")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _same_dim(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{na} and {nb} must have the same feature size, got {a.shape[1]} and {b.shape[1]}")


# ---------------------------------------------------------------------------------------------
# Fréchet distance


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between N(μ_a, Σ_a) and N(μ_b, Σ_b) fitted to two feature sets.

    ``FD = ||μ_a − μ_b||² + Tr(Σ_a) + Tr(Σ_b) − 2 Tr((Σ_a Σ_b)^{1/2})`` with unbiased (``N − 1``)
    covariances. Computed by MONAI's ``FIDMetric`` (float64, ``scipy.linalg.sqrtm``; it retries with
    ``1e-6`` on the diagonals when the product is singular and drops a negligible imaginary part);
    its progress print and SciPy's deprecation warning are silenced. One-dimensional features use
    the closed form ``(μ_a − μ_b)² + (σ_a − σ_b)²`` (MONAI's covariance squeezes a 1×1 matrix to a scalar).

    Both sets need at least 2 rows. With fewer rows than dimensions the covariances are singular and
    the value is dominated by estimation noise: compare numbers computed with the same set sizes.
    """
    a = _features(features_a, "features_a", 2)
    b = _features(features_b, "features_b", 2)
    _same_dim(a, b, "features_a", "features_b")
    if a.shape[1] == 1:
        return float((a.mean() - b.mean()) ** 2 + (a.std(unbiased=True) - b.std(unbiased=True)) ** 2)
    from monai.metrics import FIDMetric

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy>=1.16: sqrtm's `disp` argument, passed by MONAI
        warnings.filterwarnings("ignore", message=".*singular.*")
        # FIDMetric(y_pred, y): the formula is symmetric in its two arguments.
        value = FIDMetric()(a, b)
    return float(value)


# ---------------------------------------------------------------------------------------------
# KID


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """``k(x, y) = (x·y / d + coef0)^degree`` for all row pairs: ``[N, d] × [M, d] → [N, M]``."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased_polynomial(x, y, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² between the rows of ``x`` [m, d] and ``y`` [n, d] with :func:`polynomial_kernel`.

    ``MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn)``.
    It can be slightly negative when the two distributions are equal.
    """
    x = _features(x, "x", 2)
    y = _features(y, "y", 2)
    _same_dim(x, y, "x", "y")
    m, n = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x, degree, coef0)
    kyy = polynomial_kernel(y, y, degree, coef0)
    kxy = polynomial_kernel(x, y, degree, coef0)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


@dataclass(frozen=True)
class KIDResult:
    """KID averaged over subsets: ``mean`` (the reported value), ``std`` over subsets, and the settings."""

    mean: float
    std: float
    num_subsets: int
    subset_size: int


def kid(
    features_a,
    features_b,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
    coef0: float = 1.0,
) -> KIDResult:
    """Kernel (Inception) distance: :func:`mmd2_unbiased_polynomial` averaged over random subsets.

    Each of ``num_subsets`` rounds draws ``s = min(subset_size, N_a, N_b)`` rows of each set without
    replacement (``numpy.random.default_rng(seed)``) and computes the unbiased MMD² on them; the result
    is their mean and standard deviation. When ``s`` equals both set sizes every round sees the full
    sets and the value is the unbiased MMD² of the full sets (std 0).
    """
    a = _features(features_a, "features_a", 2)
    b = _features(features_b, "features_b", 2)
    _same_dim(a, b, "features_a", "features_b")
    if not isinstance(num_subsets, int) or num_subsets < 1:
        raise ValueError(f"num_subsets must be a positive int, got {num_subsets!r}")
    if not isinstance(subset_size, int) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}")
    s = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        ia = torch.from_numpy(rng.choice(a.shape[0], s, replace=False))
        ib = torch.from_numpy(rng.choice(b.shape[0], s, replace=False))
        values.append(mmd2_unbiased_polynomial(a[ia], b[ib], degree, coef0))
    v = np.asarray(values)
    return KIDResult(float(v.mean()), float(v.std()), num_subsets, s)


# ---------------------------------------------------------------------------------------------
# Nearest neighbours, precision / recall


def _cdist_chunks(x: torch.Tensor, y: torch.Tensor, chunk: int):
    """Exact Euclidean distances (no ``|x|² + |y|² − 2x·y`` shortcut, so a copy is at distance 0), in row chunks."""
    for start in range(0, x.shape[0], chunk):
        yield start, torch.cdist(x[start : start + chunk], y, compute_mode="donot_use_mm_for_euclid_dist")


def nearest_neighbours(queries, references, *, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the Euclidean distance to its nearest reference and that reference's index.

    ``queries`` ``[N, ...]`` and ``references`` ``[M, ...]`` are flattened per row (images ``[N, C, H, W]``
    give pixel-space L2; feature vectors ``[N, D]`` give feature-space L2). Returns ``(distances [N]
    float64, indices [N] int64)``; equally near references (up to float64 rounding) go to the lowest index.
    An exact copy is at distance 0.
    Pixel-space search over large images is the costly part: ``N · M · pixels`` multiply-adds.
    """
    q = torch.as_tensor(queries).detach().cpu()
    r = torch.as_tensor(references).detach().cpu()
    if q.ndim < 2 or r.ndim < 2:
        raise ValueError(
            f"queries and references need a leading batch axis, got shapes {tuple(q.shape)} and {tuple(r.shape)}"
        )
    if q.shape[1:] != r.shape[1:]:
        raise ValueError(
            f"queries and references must have the same item shape, got {tuple(q.shape[1:])} and {tuple(r.shape[1:])}"
        )
    if r.shape[0] == 0:
        raise ValueError("references is empty")
    q = q.reshape(q.shape[0], -1).to(torch.float64)
    r = r.reshape(r.shape[0], -1).to(torch.float64)
    idx = torch.empty(q.shape[0], dtype=torch.int64)
    for start in range(0, q.shape[0], chunk):
        # Search with the fast |a|² + |b|² − 2a·b form (float64: errors ~1e-13, far below any gap between
        # neighbours), then measure the chosen pair exactly so that a copy is at distance 0.
        d = torch.cdist(q[start : start + chunk], r, compute_mode="use_mm_for_euclid_dist")
        idx[start : start + d.shape[0]] = d.argmin(dim=1)
    dist = (q - r[idx]).norm(dim=1)
    return dist, idx


def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest *other* row of the same set."""
    radii = torch.empty(x.shape[0], dtype=torch.float64)
    for start, d in _cdist_chunks(x, x, chunk):
        # column k of the sorted row: column 0 is the point itself (distance 0)
        radii[start : start + d.shape[0]] = d.kthvalue(k + 1, dim=1).values
    return radii


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    inside = torch.empty(points.shape[0], dtype=torch.bool)
    for start, d in _cdist_chunks(points, centres, chunk):
        inside[start : start + d.shape[0]] = (d <= radii.unsqueeze(0)).any(dim=1)
    return inside


@dataclass(frozen=True)
class PrecisionRecall:
    """k-NN manifold precision (fidelity) and recall (coverage) of a generated set, each in [0, 1]."""

    precision: float
    recall: float
    k: int


def precision_recall(real_features, fake_features, k: int = 3, *, chunk: int = 256) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space.

    The real manifold is the union of balls centred on each real feature with radius its distance to
    its k-th nearest other real feature; likewise for the fake manifold.
    ``precision`` = fraction of fake features inside the real manifold (are samples realistic?),
    ``recall`` = fraction of real features inside the fake manifold (is the real variety covered?).
    Needs more than ``k`` rows in each set.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    real = _features(real_features, "real_features", k + 1)
    fake = _features(fake_features, "fake_features", k + 1)
    _same_dim(real, fake, "real_features", "fake_features")
    real_r = _kth_neighbour_radii(real, k, chunk)
    fake_r = _kth_neighbour_radii(fake, k, chunk)
    precision = _inside_any_ball(fake, real, real_r, chunk).double().mean()
    recall = _inside_any_ball(real, fake, fake_r, chunk).double().mean()
    return PrecisionRecall(float(precision), float(recall), k)


@dataclass(frozen=True)
class DensityCoverage:
    """Density (fidelity, ~1 for a faithful set, may exceed 1) and coverage (share of real variety reached, in
    [0, 1]) of a generated set (Naeem et al. 2020)."""

    density: float
    coverage: float
    k: int


def density_coverage(real_features, fake_features, k: int = 3, *, chunk: int = 256) -> DensityCoverage:
    """Density and coverage with k-NN balls built on the *real* features only (docs/quality.md).

    Each real feature j gets the radius r_j of its distance to its k-th nearest other real feature.
    ``coverage`` = fraction of real features whose ball holds at least one fake feature; ``density`` =
    (1 / (k · M)) · Σ_fakes (number of real balls holding the fake). Unlike k-NN recall, whose balls are centred on
    the fakes, a few scattered (noisy, unrealistic) fakes cannot inflate coverage: they land in no real ball.
    Needs more than ``k`` real rows and at least one fake row.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    real = _features(real_features, "real_features", k + 1)
    fake = _features(fake_features, "fake_features", 1)
    _same_dim(real, fake, "real_features", "fake_features")
    real_r = _kth_neighbour_radii(real, k, chunk)
    covered = torch.zeros(real.shape[0], dtype=torch.bool)
    hits = 0
    for start, d in _cdist_chunks(fake, real, chunk):
        inside = d <= real_r.unsqueeze(0)  # [fakes of this chunk, reals]
        covered |= inside.any(dim=0)
        hits += int(inside.sum())
    return DensityCoverage(hits / (k * fake.shape[0]), float(covered.double().mean()), k)


# ---------------------------------------------------------------------------------------------
# MS-SSIM


def ms_ssim_params(resolution: int) -> dict:
    """Scales, weights and Gaussian kernel of MS-SSIM for square images of side ``resolution``.

    The standard setting (5 scales, 11-px Gaussian kernel with σ = 1.5) needs sides above 160 px
    (MONAI checks ``side // (scales − 1)² > kernel − 1``). The rule used here:

    1. scales ``n = clamp(floor(log2(side / 8)) + 1, 2, 5)``: halve the image while the coarsest scale
       keeps at least 8 px (16 px → 2 scales, 32 → 3, 64 → 4, 128 and more → 5);
    2. kernel: the largest odd size ``k ≤ 11`` that fits MONAI's check (``k ≤ side // (n − 1)²``)
       and the coarsest scale (``k ≤ side // 2^(n−1)``), with ``σ = 1.5 · k / 11`` (the standard
       kernel shrunk in proportion); 16–128 px get ``k = 7`` (σ ≈ 0.95), 256 px gets the standard 11;
    3. weights: the first ``n`` standard weights (finest scale first), renormalised to sum to 1.

    Returns ``{"weights", "kernel_size", "kernel_sigma", "scales"}``.
    """
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 8:
        raise ValueError(f"MS-SSIM needs images of at least 8 px per side, got resolution={resolution!r}")
    n = int(min(5, max(2, math.floor(math.log2(resolution / 8)) + 1)))
    k = min(11, resolution // (n - 1) ** 2, resolution // 2 ** (n - 1))
    if k % 2 == 0:
        k -= 1
    if k < 3:
        raise ValueError(f"MS-SSIM: no kernel of 3 px or more fits {n} scales at resolution {resolution}")
    w = np.asarray(MS_SSIM_WEIGHTS[:n], dtype=np.float64)
    w = w / w.sum()
    return {"weights": tuple(float(v) for v in w), "kernel_size": int(k), "kernel_sigma": 1.5 * k / 11, "scales": n}


def _images(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().cpu().to(torch.float32)
    if t.ndim != 4:
        raise ValueError(f"{name} must be a batch of 2-D images [N, C, H, W], got shape {tuple(t.shape)}")
    return t


def _ms_ssim_metric(height: int, width: int):
    from monai.metrics import MultiScaleSSIMMetric

    if height != width:
        raise ValueError(f"MS-SSIM here expects square images, got {height}x{width}")
    p = ms_ssim_params(int(height))
    return MultiScaleSSIMMetric(
        spatial_dims=2,
        data_range=1.0,
        kernel_type="gaussian",
        kernel_size=p["kernel_size"],
        kernel_sigma=p["kernel_sigma"],
        weights=p["weights"],
        reduction="none",
    )


def ms_ssim(images_a, images_b, *, batch_size: int = 256) -> torch.Tensor:
    """MS-SSIM of each pair ``(images_a[i], images_b[i])`` → ``[N]`` float64 (1 = identical).

    Images ``[N, C, H, W]`` in ``[-1, 1]`` are mapped to ``[0, 1]`` (SSIM's luminance term assumes
    non-negative intensities) and compared with ``data_range = 1`` by MONAI's ``MultiScaleSSIMMetric``
    with :func:`ms_ssim_params` of the side; channels are averaged.
    """
    a, b = _images(images_a, "images_a"), _images(images_b, "images_b")
    if a.shape != b.shape:
        raise ValueError(f"images_a and images_b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64)
    metric = _ms_ssim_metric(a.shape[2], a.shape[3])
    out = []
    for i in range(0, a.shape[0], batch_size):
        ya = ((a[i : i + batch_size] + 1) / 2).clamp(0, 1)
        yb = ((b[i : i + batch_size] + 1) / 2).clamp(0, 1)
        out.append(metric(y_pred=ya, y=yb).reshape(-1).to(torch.float64))
    return torch.cat(out)


def mean_pairwise_ms_ssim(
    images, *, max_pairs: int | None = 2000, seed: int = 0, batch_size: int = 256
) -> tuple[float, int]:
    """Mean MS-SSIM over distinct pairs of one image set: a diversity score (lower = more diverse).

    All ``N(N−1)/2`` pairs are used when there are at most ``max_pairs`` of them, else ``max_pairs``
    pairs drawn without replacement with ``seed``. Returns ``(mean, number of pairs)``; needs N >= 2.
    """
    x = _images(images, "images")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"mean pairwise MS-SSIM needs at least 2 images, got {n}")
    ii, jj = torch.triu_indices(n, n, offset=1)
    total = ii.numel()
    if max_pairs is not None and total > max_pairs:
        pick = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(total, max_pairs, replace=False)))
        ii, jj = ii[pick], jj[pick]
    values = torch.cat(
        [
            ms_ssim(x[ii[s : s + batch_size]], x[jj[s : s + batch_size]], batch_size=batch_size)
            for s in range(0, ii.numel(), batch_size)
        ]
    )
    return float(values.mean()), int(ii.numel())
