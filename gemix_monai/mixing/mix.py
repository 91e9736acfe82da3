"""Mixing maths (docs/maths.md §3): GenMix (synthetic with real) and pixel mixup, on images and soft labels.

Plain torch (NumPy arrays are accepted and returned as NumPy). Images are ``[B, C, *spatial]`` (or one
``[C, *spatial]`` sample with a scalar lambda);
labels are float ``[B, K]`` on the simplex. ``lam`` is the weight of the *first* pair named in each
function (the synthetic pair for GenMix), so lambda = 1 returns it unchanged and lambda = 0 the partner.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from .labels import check_simplex
from .samplers import RngLike, as_rng

__all__ = ["blend", "genmix", "pixel_mixup", "sample_genmix_lambda", "sample_mixup_lambda", "sample_permutation"]


def _alpha(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def sample_mixup_lambda(batch_size: int, alpha: float, rng: RngLike = None) -> torch.Tensor:
    """``lam ~ Beta(alpha, alpha)``, float32 ``[B]`` (pixel mixup)."""
    a = _alpha("alpha", alpha)
    return torch.from_numpy(as_rng(rng).beta(a, a, size=int(batch_size)).astype(np.float32))


def sample_genmix_lambda(batch_size: int, alpha: float = 0.3, rng: RngLike = None) -> torch.Tensor:
    """``lam ~ Beta(alpha, 1)``, float32 ``[B]``: the weight of the synthetic sample in GenMix."""
    a = _alpha("alpha", alpha)
    return torch.from_numpy(as_rng(rng).beta(a, 1.0, size=int(batch_size)).astype(np.float32))


def sample_permutation(batch_size: int, rng: RngLike = None) -> torch.Tensor:
    """A random permutation of ``0..B-1`` (int64), the partner of each sample in pixel mixup."""
    return torch.from_numpy(as_rng(rng).permutation(int(batch_size)).astype(np.int64))


def _lam_like(lam, x: torch.Tensor, batched: bool) -> torch.Tensor:
    lam_t = torch.as_tensor(lam, dtype=torch.float32)
    if batched:
        if lam_t.ndim == 0:
            lam_t = lam_t.expand(x.shape[0])
        if lam_t.shape != (x.shape[0],):
            raise ValueError(
                f"lam must be a scalar or have one value per sample ({x.shape[0]}), got shape {tuple(lam_t.shape)}"
            )
    elif lam_t.numel() != 1:
        raise ValueError(f"lam must be a scalar for a single sample, got shape {tuple(lam_t.shape)}")
    if ((lam_t < 0) | (lam_t > 1)).any():
        raise ValueError("lam must lie in [0, 1]")
    return lam_t.to(device=x.device)


def blend(
    x_a: torch.Tensor, y_a: torch.Tensor, x_b: torch.Tensor, y_b: torch.Tensor, lam
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lam*x_a + (1-lam)*x_b, lam*y_a + (1-lam)*y_b)``.

    Batched when the labels are ``[B, K]`` (``lam`` scalar or ``[B]``); a single sample when they are ``[K]``.
    The images keep ``x_a``'s floating dtype (float32 if it is an integer type); labels are float32.
    """
    as_numpy = isinstance(x_a, np.ndarray)  # NumPy in, NumPy out (the transforms' convention)
    x_a, y_a, x_b, y_b = (torch.as_tensor(v) for v in (x_a, y_a, x_b, y_b))
    if x_a.shape != x_b.shape:
        raise ValueError(f"images to mix must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    if y_a.shape != y_b.shape or y_a.ndim not in (1, 2):
        raise ValueError(f"labels to mix must both be [K] or [B, K], got {tuple(y_a.shape)} and {tuple(y_b.shape)}")
    batched = y_a.ndim == 2
    if batched and (x_a.ndim < 2 or x_a.shape[0] != y_a.shape[0]):
        raise ValueError(
            f"images [B, C, ...] and labels [B, K] must share B, got {tuple(x_a.shape)} and {tuple(y_a.shape)}"
        )
    dtype = x_a.dtype if torch.is_floating_point(x_a) else torch.float32
    lam_t = _lam_like(lam, x_a, batched)
    lx = lam_t.to(dtype).reshape((-1,) + (1,) * (x_a.ndim - 1)) if batched else lam_t.to(dtype).reshape(())
    ly = lam_t.to(device=y_a.device).reshape(-1, 1) if batched else lam_t.to(device=y_a.device).reshape(())
    x = lx * x_a.to(dtype) + (1 - lx) * x_b.to(dtype)
    y = ly * y_a.float() + (1 - ly) * y_b.float()
    return (x.numpy(), y.numpy()) if as_numpy else (x, y)


def genmix(synthetic_images, synthetic_labels, real_images, real_labels, lam) -> tuple[torch.Tensor, torch.Tensor]:
    """GenMix: ``x = lam*x_s + (1-lam)*x_r``, ``y = lam*y_s + (1-lam)*y_r`` (draw ``lam`` with :func:`sample_genmix_lambda`).

    ``lam = 0`` returns the real pair, ``lam = 1`` the synthetic pair. Labels must be soft ([.., K], on the simplex).
    """
    check_simplex(torch.as_tensor(synthetic_labels), "synthetic_labels")
    check_simplex(torch.as_tensor(real_labels), "real_labels")
    return blend(synthetic_images, synthetic_labels, real_images, real_labels, lam)


def pixel_mixup(images, labels, lam, permutation) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel mixup of a batch with itself: sample b is blended with sample ``permutation[b]``.

    ``images`` [B, C, ...], ``labels`` [B, K] soft, ``lam`` scalar or [B] (weight of sample b itself),
    ``permutation`` [B] int. Works for any B, including 1 (a sample mixed with itself is unchanged).
    """
    labels = torch.as_tensor(labels)
    check_simplex(labels, "labels")
    if labels.ndim != 2:
        raise ValueError(f"pixel_mixup needs batched soft labels [B, K], got shape {tuple(labels.shape)}")
    as_numpy = isinstance(images, np.ndarray)
    images = torch.as_tensor(images)
    perm = torch.as_tensor(permutation, dtype=torch.long, device=images.device)
    if perm.shape != (images.shape[0],):
        raise ValueError(
            f"permutation must have one index per sample ({images.shape[0]}), got shape {tuple(perm.shape)}"
        )
    x, y = blend(images, labels, images[perm], labels[perm.to(labels.device)], lam)
    return (x.numpy(), y.numpy()) if as_numpy else (x, y)
