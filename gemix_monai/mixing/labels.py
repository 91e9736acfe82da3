"""Soft labels: hard class indices to one-hot, and the simplex check every mixed label must pass."""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = ["to_soft_label", "check_simplex", "SIMPLEX_ATOL"]

#: Tolerance on ``sum(label) == 1`` for a float32 label; float32 rounding over K <= 1000 terms stays far below it.
SIMPLEX_ATOL = 1e-4


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def check_simplex(labels: torch.Tensor, name: str = "label", atol: float = SIMPLEX_ATOL) -> torch.Tensor:
    """Raise ``ValueError`` unless every row of ``labels`` (last axis = classes) lies on the probability simplex.

    Returns ``labels`` unchanged so the call can be chained.
    """
    t = torch.as_tensor(labels)
    if not torch.is_floating_point(t):
        raise ValueError(f"{name}: a soft label must be a float tensor, got dtype {t.dtype}")
    if t.ndim == 0:
        raise ValueError(f"{name}: a soft label needs a class axis, got a scalar")
    if t.numel() == 0:
        return labels
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: soft label contains NaN or inf")
    low = t.min().item()
    if low < -atol:
        raise ValueError(f"{name}: soft label has a negative entry ({low:.6g}); expected values in [0, 1]")
    sums = t.double().sum(-1)
    worst = (sums - 1).abs().max().item()
    if worst > atol:
        raise ValueError(f"{name}: soft label rows must sum to 1 (within {atol}), found a row summing to {1 + worst:.6g} or {1 - worst:.6g}")
    return labels


def to_soft_label(label, num_classes: int):
    """Turn class indices into one-hot float32 labels; pass soft labels through after a simplex check.

    Args:
        label: an ``int``, or an integer array/tensor of class indices of any shape (``[N]`` is a batch of N,
            even for N = 1; a trailing axis of size 1 after a batch axis, ``[B, 1]``, is dropped), or a float array/tensor whose last axis has size
            ``num_classes`` (already a soft label; checked to lie on the simplex). A float array whose last
            axis is not ``num_classes`` and whose values are whole numbers is read as indices, because
            MONAI pipelines often cast labels to float.
        num_classes: K >= 2.

    Returns:
        float32 with shape ``index_shape + (K,)``: a ``torch.Tensor`` for ``int`` or tensor input (same
        device as the input), a ``numpy.ndarray`` for numpy input.
    """
    k = _check_num_classes(num_classes)
    as_numpy = isinstance(label, np.ndarray)
    if isinstance(label, bool):
        raise ValueError(f"label must be a class index or a soft label, got the bool {label!r}")
    if isinstance(label, numbers.Integral):
        t = torch.tensor(int(label))
    elif isinstance(label, (np.ndarray, torch.Tensor, list, tuple, numbers.Real)):
        t = torch.as_tensor(np.asarray(label)) if not isinstance(label, torch.Tensor) else label
        if hasattr(t, "as_tensor"):  # MetaTensor: the label's metadata is not the image's; keep plain values
            t = t.as_tensor()
    else:
        raise ValueError(f"label must be an int, numpy array or torch tensor, got {type(label).__name__}")

    if t.dtype == torch.bool:
        raise ValueError("label must hold class indices or soft labels, got a bool array")
    if torch.is_floating_point(t):
        if t.ndim >= 1 and t.shape[-1] == k:
            check_simplex(t, "label")
            out = t.to(torch.float32)
            return out.cpu().numpy() if as_numpy else out
        if t.numel() and not torch.equal(t, t.round()):
            raise ValueError(
                f"label: a float label must be a soft label with last axis of size num_classes={k} "
                f"(got shape {tuple(t.shape)}) or hold whole-number class indices"
            )
        t = t.round().long()
    else:
        t = t.long()
    if t.ndim >= 2 and t.shape[-1] == 1:
        t = t[..., 0]
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise ValueError(f"label: class index {bad} is out of range for num_classes={k} (expected 0..{k - 1})")
    out = torch.nn.functional.one_hot(t, k).to(torch.float32)
    return out.cpu().numpy() if as_numpy else out
