"""Checking that a batch of class labels is a batch of points of the probability simplex.

The generator and the discriminator are conditioned on *soft labels*: float vectors ``[K]`` with
non-negative entries summing to 1 (a one-hot vector is a hard label). Anything else would put the
label embedding outside the convex hull of the class embeddings the networks were trained on, so
it is refused with an error that names the argument and the offending row.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_soft_labels", "SIMPLEX_SUM_TOL", "SIMPLEX_NEG_TOL"]

#: A row must sum to 1 within this tolerance.
SIMPLEX_SUM_TOL = 1e-4
#: Entries down to ``-SIMPLEX_NEG_TOL`` are accepted as rounding noise of an exact 0 (e.g. ``1 - 0.7 - 0.3``).
SIMPLEX_NEG_TOL = 1e-6


def as_soft_labels(value, num_classes: int, name: str = "soft_labels", device=None, check: bool = True) -> torch.Tensor:
    """``value`` as a float32 tensor ``[N, num_classes]`` whose rows lie on the probability simplex.

    Args:
        value: a tensor, a NumPy array or a list of rows, shape ``[N, num_classes]``.
        num_classes: K, the expected row length.
        name: how the caller's argument is called in error messages (``"soft_labels"``, ``"c"``).
        device: where the result lives; default: where ``value`` is (CPU for arrays and lists).
        check: verify the simplex constraints (one device synchronisation); the shape is always checked.

    Raises:
        ValueError: wrong shape or row length, a non-finite or negative entry, or a row whose sum is
            not 1 within :data:`SIMPLEX_SUM_TOL`; the message names ``name`` and the first bad row.
        TypeError: ``value`` is not numeric.
    """
    if isinstance(value, torch.Tensor):
        labels = value
    else:
        try:
            labels = torch.as_tensor(np.asarray(value, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a [N, {num_classes}] tensor, array or list of rows of numbers, got {type(value).__name__}: {e}") from e
    if labels.dtype == torch.bool or not (labels.is_floating_point() or labels.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name} must hold real numbers, got dtype {labels.dtype}")
    if labels.ndim != 2:
        hint = " (a hard label index must first become a one-hot row, e.g. gemix_monai.mixing.to_soft_label)" if labels.ndim <= 1 else ""
        raise ValueError(f"{name} must have shape [N, {num_classes}] (one row per image), got shape {tuple(labels.shape)}{hint}")
    if labels.shape[1] != num_classes:
        raise ValueError(f"{name} rows must have length {num_classes} (the number of classes), got rows of length {labels.shape[1]}")
    labels = labels.to(device=device if device is not None else labels.device, dtype=torch.float32)
    if check and labels.shape[0] > 0:
        finite = torch.isfinite(labels).all(dim=1)
        nonneg = (labels >= -SIMPLEX_NEG_TOL).all(dim=1)
        sums = labels.sum(dim=1)
        sums_ok = (sums - 1).abs() <= SIMPLEX_SUM_TOL
        bad = ~(finite & nonneg & sums_ok)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            values = [round(v, 6) for v in labels[row].tolist()]
            if not bool(finite[row]):
                why = "has a non-finite entry"
            elif not bool(nonneg[row]):
                why = "has a negative entry"
            else:
                why = f"sums to {float(sums[row]):.6g}, not 1 (tolerance {SIMPLEX_SUM_TOL:g})"
            raise ValueError(
                f"{name} must be points of the probability simplex (entries >= 0, each row summing to 1); "
                f"row {row} {why}: {values}"
            )
    return labels
