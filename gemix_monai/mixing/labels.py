"""Soft labels: the one place that turns class indices into one-hot rows and checks the probability simplex.

Every layer that takes a label (the networks' ``c``/``soft_labels``, the GAN engines' batches, the MONAI
transforms, the classifier's prepare-batch) calls these functions, so there is one tolerance
(:data:`SIMPLEX_ATOL`) and one error format: ``"<argument>: ... row <i> ..."``.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = ["to_soft_label", "as_soft_labels", "check_simplex", "labels_of", "SIMPLEX_ATOL"]

#: The one tolerance of a soft label: entries may be down to ``-SIMPLEX_ATOL`` (rounding noise of an exact 0,
#: e.g. ``1 - 0.7 - 0.3``) and each row must sum to 1 within ``SIMPLEX_ATOL``. float32 rounding over
#: K <= 1000 terms stays far below it.
SIMPLEX_ATOL = 1e-4


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def check_simplex(labels: torch.Tensor, name: str = "label", atol: float = SIMPLEX_ATOL) -> torch.Tensor:
    """Raise ``ValueError`` unless every row of ``labels`` (last axis = classes) lies on the probability simplex.

    The message names ``name``, the first bad row (index into the rows flattened to ``[-1, K]``), why it is
    bad and its values. Returns ``labels`` unchanged so the call can be chained. One device synchronisation.
    """
    t = torch.as_tensor(labels)
    if not torch.is_floating_point(t):
        raise ValueError(f"{name}: a soft label must be a float tensor, got dtype {t.dtype}")
    if t.ndim == 0:
        raise ValueError(f"{name}: a soft label needs a class axis, got a scalar")
    if t.numel() == 0:
        return labels
    rows = t.detach().reshape(-1, t.shape[-1]).double()
    finite = torch.isfinite(rows).all(dim=1)
    nonneg = (rows >= -atol).all(dim=1)
    sums = rows.sum(dim=1)
    sums_ok = (sums - 1).abs() <= atol
    bad = ~(finite & nonneg & sums_ok)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        if not bool(finite[row]):
            why = "has a non-finite entry (NaN or inf)"
        elif not bool(nonneg[row]):
            why = f"has a negative entry ({float(rows[row].min()):.6g})"
        else:
            why = f"sums to {float(sums[row]):.6g}, not 1 (tolerance {atol:g})"
        values = [round(v, 6) for v in rows[row].tolist()[:16]]
        raise ValueError(
            f"{name} must be points of the probability simplex (entries >= 0, rows sum to 1 "
            f"within {atol:g}); row {row} {why}: {values}"
        )
    return labels


def _unwrap(label) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(label)) if not isinstance(label, torch.Tensor) else label
    return t.as_tensor() if hasattr(t, "as_tensor") else t  # MetaTensor: the label's metadata is not the image's


def to_soft_label(label, num_classes: int | None, *, name: str = "label", batched: bool = False):
    """Turn class indices into one-hot float32 labels; pass soft labels through after a simplex check.

    Args:
        label: an ``int``, or an integer array/tensor of class indices of any shape (``[N]`` is a batch of N,
            even for N = 1; a trailing axis of size 1 after a batch axis, ``[B, 1]``, is dropped), or a float
            array/tensor whose last axis has size ``num_classes`` (already a soft label; checked to lie on the
            simplex). A float array whose last axis is not ``num_classes`` and whose values are whole numbers is
            read as indices, because MONAI pipelines often cast labels to float.
        num_classes: K >= 2; ``None`` accepts soft labels of any width and refuses class indices.
        name: how the caller's argument is called in error messages.
        batched: the input is a batch: a 1-D vector is always ``[B]`` class indices, even a float one of
            length K (a batch of K float indices must not be read as one soft label).

    Returns:
        float32 with shape ``index_shape + (K,)``: a ``torch.Tensor`` for ``int`` or tensor input (same
        device as the input), a ``numpy.ndarray`` for numpy input.
    """
    k = None if num_classes is None else _check_num_classes(num_classes)
    as_numpy = isinstance(label, np.ndarray)
    if isinstance(label, bool):
        raise ValueError(f"{name} must be a class index or a soft label, got the bool {label!r}")
    if isinstance(label, numbers.Integral):
        t = torch.tensor(int(label))
    elif isinstance(label, (np.ndarray, torch.Tensor, list, tuple, numbers.Real)):
        t = _unwrap(label)
    else:
        raise ValueError(f"{name} must be an int, numpy array or torch tensor, got {type(label).__name__}")

    if t.dtype == torch.bool:
        raise ValueError(f"{name} must hold class indices or soft labels, got a bool array")
    if torch.is_floating_point(t):
        soft_shape = t.ndim >= (2 if batched else 1)
        if soft_shape and (k is None or t.shape[-1] == k):
            check_simplex(t, name)
            out = t.to(torch.float32)
            return out.cpu().numpy() if as_numpy else out
        if t.numel() and not torch.equal(t, t.round()):
            width = "[N, K]" if batched else "[..., K]"
            raise ValueError(
                f"{name}: soft labels must be {width.replace('K', str(k))} (last axis = num_classes) "
                f"or hold whole-number class indices, found shape {list(t.shape)}"
            )
        t = t.round().long()
    else:
        t = t.long()
    if t.ndim >= 2 and t.shape[-1] == 1:
        t = t[..., 0]
    if k is None:
        raise ValueError(
            f"{name}: got class indices (shape {tuple(t.shape)}); pass num_classes to turn them into one-hot labels"
        )
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}: class index {bad} is out of range; expected 0..{k - 1} ({k} classes)")
    out = torch.nn.functional.one_hot(t, k).to(torch.float32)
    return out.cpu().numpy() if as_numpy else out


def as_soft_labels(value, num_classes: int, name: str = "soft_labels", device=None, check: bool = True) -> torch.Tensor:
    """``value`` as a float32 tensor ``[N, num_classes]`` whose rows lie on the probability simplex.

    The strict form the networks take (``c``, ``soft_labels``): rows only, no class indices.

    Args:
        value: a tensor, a NumPy array or a list of rows, shape ``[N, num_classes]``.
        num_classes: K, the expected row length.
        name: how the caller's argument is called in error messages (``"soft_labels"``, ``"c"``).
        device: where the result lives; default: where ``value`` is (CPU for arrays and lists).
        check: verify the simplex constraints (:func:`check_simplex`, one device synchronisation); the shape
            is always checked.

    Raises:
        ValueError: wrong shape or row length, or a row off the simplex (naming ``name`` and the first bad row).
        TypeError: ``value`` is not numeric.
    """
    if isinstance(value, torch.Tensor):
        labels = value
    else:
        try:
            labels = torch.as_tensor(np.asarray(value, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"{name} must be a [N, {num_classes}] tensor, array or list of rows of numbers, "
                f"got {type(value).__name__}: {e}"
            ) from e
    if labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {labels.dtype}")
    if labels.ndim != 2:
        hint = (
            " (a hard label index must first become a one-hot row, e.g. gemix_monai.mixing.to_soft_label)"
            if labels.ndim <= 1
            else ""
        )
        raise ValueError(
            f"{name} must have shape [N, {num_classes}] (one row per image), got shape {tuple(labels.shape)}{hint}"
        )
    if labels.shape[1] != num_classes:
        raise ValueError(
            f"{name} rows must have length {num_classes} (the number of classes), got rows of length {labels.shape[1]}"
        )
    labels = labels.to(device=device if device is not None else labels.device, dtype=torch.float32)
    if check:
        check_simplex(labels, name)
    return labels


def _class_index(value, where: str) -> int:
    t = torch.as_tensor(value.as_subclass(torch.Tensor) if torch.is_tensor(value) else np.asarray(value))
    t = t.reshape(-1)
    if t.numel() > 1:  # a one-hot or soft label: its largest entry
        return int(t.argmax())
    if t.numel() == 0:
        raise ValueError(f"{where}: empty label")
    v = t[0].item()
    if isinstance(v, float) and not float(v).is_integer():
        raise ValueError(f"{where}: label {v!r} is not a class index")
    return int(v)


def labels_of(dataset, *, load_items: bool = True) -> list[int] | None:
    """The class index of every item of ``dataset``, read without loading images where the dataset allows it: the
    one reader of a dataset's labels (docs/design.md).

    Looked up in order: a ``labels`` attribute (the data layer's datasets), the item dicts of ``dataset.data``
    (MONAI ``Dataset``) or of a plain list of dicts, a wrapped ``dataset.dataset`` (views such as the image–mask
    pairs), and only then the items themselves — or, with ``load_items=False``, ``None`` instead of loading them.
    One-hot/soft labels give their largest entry.
    """
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, (list, tuple)) and len(labels) == len(dataset):
        return [_class_index(v, f"labels[{i}]") for i, v in enumerate(labels)]
    items = getattr(dataset, "data", dataset)
    if (
        isinstance(items, (list, tuple))
        and len(items) == len(dataset)
        and all(isinstance(i, dict) and "label" in i for i in items)
    ):
        return [_class_index(it["label"], f"item {i}") for i, it in enumerate(items)]
    inner = getattr(dataset, "dataset", None)
    if inner is not None and inner is not dataset and hasattr(inner, "__len__") and len(inner) == len(dataset):
        return labels_of(inner, load_items=load_items)
    if not load_items:
        return None
    return [_class_index(dataset[i]["label"], f"item {i}") for i in range(len(dataset))]
