"""Clinical classification metrics on a confusion matrix and on class probabilities (docs/maths.md §4).

Every function here is plain PyTorch (float64 arithmetic, CPU) so that the Ignite metric, the report
writer and the tests share one definition. Conventions:

- ``M`` is a ``[K, K]`` integer confusion matrix, rows = truth, columns = prediction.
- A ratio whose denominator is zero (a 0/0: a class absent from the truth, a class never predicted)
  is *undefined*. The per-class functions (:func:`sensitivity`, ...) return ``0.0`` there with a
  boolean ``undefined`` mask (scikit-learn's ``zero_division=0``); the named scalars of a
  :class:`ClinicalResult` hold **NaN** there and list the name in ``undefined`` -- never 0, so no
  report or summary can average an undefined miss rate as a perfect one.
- A class absent from the truth (no sample of it in the evaluated split) has no defined sensitivity,
  FNR, F1, F2 or AUROC: these are undefined even where the count form of F_beta would give 0 (the
  class was predicted, wrongly). Its specificity and precision stay defined (they are about the
  other classes' samples). :attr:`ClinicalResult.absent_classes` names such classes.
- Per-class values equal scikit-learn's with ``labels=range(K)`` and ``zero_division=0`` wherever
  they are defined; macro averages are unweighted means over all ``K`` classes, undefined ones
  included as 0 (scikit-learn's ``average="macro"``). Balanced accuracy averages recall over the
  classes present in the truth (scikit-learn's ``balanced_accuracy_score``); macro AUROC averages the
  classes whose one-vs-rest AUROC is defined (both positives and negatives present).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

__all__ = [
    "PerClass",
    "ClinicalResult",
    "validate_class_names",
    "check_labels",
    "check_probabilities",
    "confusion_matrix",
    "classification_counts",
    "sensitivity",
    "specificity",
    "precision",
    "false_negative_rate",
    "fbeta",
    "accuracy",
    "balanced_accuracy",
    "macro_fbeta",
    "auroc",
    "macro_auroc",
    "calibration_bins",
    "expected_calibration_error",
    "summarize_clinical_metrics",
    "clinical_metrics",
    "HIGHER_IS_BETTER_EXCEPTIONS",
    "metric_higher_is_better",
]

ECE_BINS = 15


class PerClass(NamedTuple):
    """Per-class values ``[K]`` (float64) and the mask ``[K]`` (bool) of those that were 0/0."""

    value: torch.Tensor
    undefined: torch.Tensor


@dataclass(frozen=True)
class ClinicalResult:
    """Everything a clinical report needs, computed once.

    Attributes:
        scalars: stable name -> float (``accuracy``, ``macro_f1``, ``fnr/<class>``, ...); NaN for an
            undefined value.
        undefined: names of the scalars that are undefined (a 0/0, or a per-class metric of a class
            absent from the truth): NaN in ``scalars``, never 0.
        confusion_matrix: ``[K, K]`` int64, rows = truth.
        class_names: the ``K`` class names used in the scalar names.
        calibration: ``[n_bins, 3]`` float64 per-bin (count, sum of confidence, number correct),
            bins ``(i/n, (i+1)/n]`` with confidence 0 in the first bin; empty when no probabilities.
        positive_class: the class whose miss rate matters most, or ``None``.
        absent_classes: the classes with no sample in the truth (their per-class metrics are undefined).
    """

    scalars: dict[str, float]
    undefined: tuple[str, ...]
    confusion_matrix: torch.Tensor
    class_names: tuple[str, ...]
    calibration: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 3, dtype=torch.float64))
    positive_class: str | None = None
    absent_classes: tuple[str, ...] = ()

    def reported(self) -> dict[str, float | None]:
        """``scalars`` with ``None`` for an undefined value: what JSON reports write (``null``)."""
        undefined = set(self.undefined)
        return {name: (None if name in undefined else value) for name, value in self.scalars.items()}

    @property
    def num_samples(self) -> int:
        return int(self.confusion_matrix.sum())


# ----------------------------------------------------------------------------------------------
# input checks


def validate_class_names(num_classes: int, class_names: Sequence[str] | None) -> tuple[str, ...]:
    """Return ``K`` class names (default ``"0"..."K-1"``); they become parts of metric names."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 for classification metrics, got {num_classes}")
    if class_names is None:
        return tuple(str(k) for k in range(num_classes))
    names = tuple(str(n) for n in class_names)
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries, expected num_classes={num_classes}: {list(names)}")
    for n in names:
        if not n or "/" in n or n != n.strip():
            raise ValueError(f"class_names entries must be non-empty, without '/' or surrounding spaces; got {n!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {list(names)}")
    return names


def check_labels(y_true, num_classes: int, name: str = "y_true") -> torch.Tensor:
    """Integer class indices ``[N]`` in ``0..K-1`` (a ``[N, 1]`` column or a one-hot ``[N, K]`` also accepted)."""
    y = torch.as_tensor(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] == num_classes and y.shape[1] > 1:
        is_one_hot = bool(((y == 0) | (y == 1)).all()) and bool((y.sum(dim=1) == 1).all())
        if not is_one_hot:
            raise ValueError(
                f"{name} of shape {tuple(y.shape)} must be one-hot to be used as ground truth; "
                "soft labels have no single true class"
            )
        y = y.argmax(dim=1)
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be class indices of shape [N] (or [N, 1], or one-hot [N, K]), got {tuple(y.shape)}"
        )
    if y.is_floating_point():
        if not bool((y == y.round()).all()):
            raise ValueError(f"{name} must hold integer class indices, found non-integer values")
    elif y.dtype == torch.bool or y.is_complex():
        raise TypeError(f"{name} must be integer class indices, got dtype {y.dtype}")
    y = y.long().cpu()
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0].item()
        raise ValueError(
            f"{name} has label {bad} out of range: expected 0..{num_classes - 1} (num_classes={num_classes})"
        )
    return y


def check_probabilities(probs, num_classes: int, atol: float = 1e-3, name: str = "probs") -> torch.Tensor:
    """Class probabilities ``[N, K]``: finite, in [0, 1], rows summing to 1 within ``atol``."""
    p = torch.as_tensor(probs)
    if p.ndim != 2 or p.shape[1] != num_classes:
        raise ValueError(f"{name} must have shape [N, {num_classes}], got {tuple(p.shape)}")
    if not p.is_floating_point():
        raise TypeError(f"{name} must be floating point probabilities, got dtype {p.dtype}")
    p = p.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if p.numel() and (float(p.min()) < -atol or float(p.max()) > 1 + atol):
        raise ValueError(
            f"{name} must lie in [0, 1]; found values in [{float(p.min()):.4g}, {float(p.max()):.4g}] "
            "(pass logits with input_type='logits' if these are scores)"
        )
    sums = p.sum(dim=1)
    bad = (sums - 1).abs() > atol
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} rows must sum to 1 (within {atol}); row {i} sums to {float(sums[i]):.6g} "
            "(pass logits with input_type='logits' if these are scores)"
        )
    return p


def _check_cm(cm) -> torch.Tensor:
    m = torch.as_tensor(cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square [K, K], got shape {tuple(m.shape)}")
    if m.shape[0] < 2:
        raise ValueError(f"confusion matrix must have at least 2 classes, got K={m.shape[0]}")
    if bool((m < 0).any()):
        raise ValueError("confusion matrix entries must be non-negative counts")
    return m.to("cpu", torch.float64)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> PerClass:
    undefined = den == 0
    value = torch.where(undefined, torch.zeros_like(num), num / torch.where(undefined, torch.ones_like(den), den))
    return PerClass(value, undefined)


# ----------------------------------------------------------------------------------------------
# confusion-matrix metrics


def confusion_matrix(y_true, y_pred, num_classes: int) -> torch.Tensor:
    """``[K, K]`` int64 counts, ``M[t, p]`` = number of samples of true class t predicted as p."""
    validate_class_names(num_classes, None)
    t = check_labels(y_true, num_classes, "y_true")
    p = check_labels(y_pred, num_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.numel()} and {p.numel()}")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_counts(cm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-vs-rest ``(TP, FP, FN, TN)``, each ``[K]`` float64."""
    m = _check_cm(cm)
    tp = m.diagonal()
    fp = m.sum(dim=0) - tp
    fn = m.sum(dim=1) - tp
    tn = m.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _one_vs_rest(name: str, numerator: str, denominator: tuple[str, str], doc: str):
    """A per-class rate ``numerator / (sum of denominator)`` of the one-vs-rest counts (``tp``, ``fp``, ``fn``,
    ``tn``) of a confusion matrix, named ``name`` with docstring ``doc``."""

    def rate(cm) -> PerClass:
        counts = dict(zip(("tp", "fp", "fn", "tn"), classification_counts(cm)))
        return _ratio(counts[numerator], counts[denominator[0]] + counts[denominator[1]])

    rate.__name__ = rate.__qualname__ = name
    rate.__doc__ = doc
    return rate


sensitivity = _one_vs_rest(
    "sensitivity", "tp", ("tp", "fn"), "Recall TP / (TP + FN) per class; 0/0 when the class is absent from the truth."
)
specificity = _one_vs_rest(
    "specificity", "tn", ("tn", "fp"), "TN / (TN + FP) per class; 0/0 when every sample belongs to the class."
)
precision = _one_vs_rest(
    "precision", "tp", ("tp", "fp"), "TP / (TP + FP) per class; 0/0 when the class is never predicted."
)
false_negative_rate = _one_vs_rest(
    "false_negative_rate",
    "fn",
    ("tp", "fn"),
    "Miss rate FN / (TP + FN) = 1 - sensitivity; 0/0 (reported 0) when the class is absent from the truth.",
)


def fbeta(cm, beta: float) -> PerClass:
    """F_beta = (1+b²)PR / (b²P + R), computed as (1+b²)TP / ((1+b²)TP + b²FN + FP).

    The count form equals the P/R form wherever that is defined and is 0 (not 0/0) when TP = 0 but the
    class was predicted or present; it is 0/0 only for a class neither present nor predicted, as in
    scikit-learn.
    """
    if not (isinstance(beta, (int, float)) and beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    tp, fp, fn, _ = classification_counts(cm)
    b2 = float(beta) ** 2
    return _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)


def accuracy(cm) -> float:
    """trace(M) / sum(M)."""
    m = _check_cm(cm)
    total = m.sum()
    if total == 0:
        raise ValueError("accuracy needs at least one sample; the confusion matrix is empty")
    return float(m.diagonal().sum() / total)


def balanced_accuracy(cm) -> tuple[float, bool]:
    """Mean sensitivity over the classes present in the truth; ``(value, undefined)``."""
    sens = sensitivity(cm)
    present = ~sens.undefined
    if not bool(present.any()):
        return 0.0, True
    return float(sens.value[present].mean()), False


def macro_fbeta(cm, beta: float) -> tuple[float, bool]:
    """Unweighted mean of F_beta over all K classes (0/0 classes count as 0); ``(value, undefined)``."""
    f = fbeta(cm, beta)
    return float(f.value.mean()), bool(f.undefined.all())


# ----------------------------------------------------------------------------------------------
# probability metrics


def _midranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``x`` with ties given their average rank."""
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    mid = ends - (counts.to(torch.float64) - 1) / 2
    return mid[inverse]


def _labels_and_probabilities(y_true, probs, num_classes: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(labels [N] int64, probabilities [N, K] float64, K)``, checked against each other (K from ``probs`` when
    ``num_classes`` is ``None``); errors name ``y_true`` / ``probs``."""
    p0 = torch.as_tensor(probs)
    k = num_classes if num_classes is not None else (p0.shape[1] if p0.ndim == 2 else -1)
    validate_class_names(k, None)
    p = check_probabilities(p0, k)
    y = check_labels(y_true, k)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} samples but probs has {p.shape[0]}")
    return y, p, k


def auroc(y_true, probs, num_classes: int | None = None) -> PerClass:
    """One-vs-rest AUROC per class from probabilities (Mann-Whitney U with tied scores counted 1/2).

    Undefined (0, flagged) for a class with no positives or no negatives in ``y_true``.
    """
    y, p, k = _labels_and_probabilities(y_true, probs, num_classes)
    value = torch.zeros(k, dtype=torch.float64)
    undefined = torch.ones(k, dtype=torch.bool)
    for c in range(k):
        pos = y == c
        n_pos = int(pos.sum())
        n_neg = y.numel() - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = _midranks(p[:, c])
        value[c] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        undefined[c] = False
    return PerClass(value, undefined)


def macro_auroc(per_class: PerClass) -> tuple[float, bool]:
    """Mean of the defined per-class AUROCs; ``(0.0, True)`` when none is defined."""
    ok = ~per_class.undefined
    if not bool(ok.any()):
        return 0.0, True
    return float(per_class.value[ok].mean()), False


def calibration_bins(y_true, probs, n_bins: int = ECE_BINS, num_classes: int | None = None) -> torch.Tensor:
    """Per-bin ``[n_bins, 3]`` float64: (count, sum of confidence, number correct).

    Confidence is the top probability, the prediction its arg-max; bin i holds confidences in
    ``(i/n_bins, (i+1)/n_bins]`` (0 goes to bin 0). The table is additive, so it reduces across
    batches and processes by summation.
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    y, p, k = _labels_and_probabilities(y_true, probs, num_classes)
    conf, pred = p.max(dim=1)
    inner = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    idx = torch.bucketize(conf, inner, right=False)
    table = torch.zeros(n_bins, 3, dtype=torch.float64)
    table[:, 0].index_add_(0, idx, torch.ones_like(conf))
    table[:, 1].index_add_(0, idx, conf)
    table[:, 2].index_add_(0, idx, (pred == y).to(torch.float64))
    return table


def expected_calibration_error(
    y_true=None, probs=None, n_bins: int = ECE_BINS, *, bins: torch.Tensor | None = None
) -> float:
    """ECE = sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)| over equal-width confidence bins.

    Give either ``y_true`` and ``probs`` or a precomputed ``bins`` table from :func:`calibration_bins`.
    """
    if bins is None:
        if y_true is None or probs is None:
            raise ValueError("expected_calibration_error needs y_true and probs, or bins")
        bins = calibration_bins(y_true, probs, n_bins)
    bins = torch.as_tensor(bins, dtype=torch.float64)
    if bins.ndim != 2 or bins.shape[1] != 3:
        raise ValueError(f"bins must have shape [n_bins, 3], got {tuple(bins.shape)}")
    n = bins[:, 0].sum()
    if n == 0:
        raise ValueError("expected_calibration_error needs at least one sample")
    return float((bins[:, 2] - bins[:, 1]).abs().sum() / n)


# ----------------------------------------------------------------------------------------------
# everything at once


def summarize_clinical_metrics(
    cm,
    class_names: Sequence[str] | None = None,
    *,
    auroc_per_class: PerClass | None = None,
    calibration: torch.Tensor | None = None,
    positive_class: str | int | None = None,
) -> ClinicalResult:
    """Assemble the named scalars from a confusion matrix and, optionally, AUROC and calibration bins.

    Names: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``macro_f2``, ``sensitivity/<c>``,
    ``specificity/<c>``, ``precision/<c>``, ``fnr/<c>``, ``f1/<c>``, ``f2/<c>``; with probabilities also
    ``macro_auroc``, ``auroc/<c>`` and ``ece``; with a ``positive_class`` also ``positive_fnr``,
    ``positive_sensitivity``, ``positive_specificity`` (and ``positive_auroc``).
    """
    m = _check_cm(cm)
    k = m.shape[0]
    names = validate_class_names(k, class_names)
    if m.sum() == 0:
        raise ValueError("clinical metrics need at least one sample; the confusion matrix is empty")
    scalars: dict[str, float] = {}
    undefined: list[str] = []

    def put(name: str, value: float, is_undefined: bool) -> None:
        scalars[name] = math.nan if is_undefined else float(value)
        if is_undefined:
            undefined.append(name)

    absent = (m.sum(dim=1) == 0).tolist()  # no sample of the class in the truth

    put("accuracy", accuracy(m), False)
    put("balanced_accuracy", *balanced_accuracy(m))
    put("macro_f1", *macro_fbeta(m, 1.0))
    put("macro_f2", *macro_fbeta(m, 2.0))
    per_class = {
        "sensitivity": sensitivity(m),
        "specificity": specificity(m),
        "precision": precision(m),
        "fnr": false_negative_rate(m),
        "f1": fbeta(m, 1.0),
        "f2": fbeta(m, 2.0),
    }
    if auroc_per_class is not None:
        if auroc_per_class.value.shape != (k,):
            raise ValueError(f"auroc_per_class must have {k} entries, got {tuple(auroc_per_class.value.shape)}")
        put("macro_auroc", *macro_auroc(auroc_per_class))
        per_class["auroc"] = auroc_per_class
    if calibration is not None:
        put("ece", expected_calibration_error(bins=calibration), False)
    for metric, pc in per_class.items():
        needs_the_class = metric in _NEED_THE_CLASS
        for c, cname in enumerate(names):
            put(f"{metric}/{cname}", float(pc.value[c]), bool(pc.undefined[c]) or (needs_the_class and absent[c]))

    pos_name = None
    if positive_class is not None:
        if isinstance(positive_class, int) and not isinstance(positive_class, bool):
            if not 0 <= positive_class < k:
                raise ValueError(f"positive_class index {positive_class} out of range 0..{k - 1}")
            pos_name = names[positive_class]
        elif str(positive_class) in names:
            pos_name = str(positive_class)
        else:
            raise ValueError(f"positive_class {positive_class!r} is not one of class_names {list(names)}")
        for metric in ("fnr", "sensitivity", "specificity") + (("auroc",) if "auroc" in per_class else ()):
            source = f"{metric}/{pos_name}"
            put(f"positive_{metric}", scalars[source], source in undefined)

    return ClinicalResult(
        scalars=scalars,
        undefined=tuple(undefined),
        confusion_matrix=m.round().long(),
        class_names=names,
        calibration=calibration if calibration is not None else torch.zeros(0, 3, dtype=torch.float64),
        positive_class=pos_name,
        absent_classes=tuple(n for n, a in zip(names, absent) if a),
    )


#: Per-class metrics that measure how the class's own samples were found: undefined for a class absent
#: from the truth (module docstring).
_NEED_THE_CLASS = ("sensitivity", "fnr", "f1", "f2", "auroc")


def clinical_metrics(
    y_true,
    probs=None,
    *,
    y_pred=None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    positive_class: str | int | None = None,
    n_bins: int = ECE_BINS,
) -> ClinicalResult:
    """All clinical metrics for one set of predictions.

    Args:
        y_true: ``[N]`` true class indices.
        probs: ``[N, K]`` class probabilities (rows sum to 1). The prediction is their arg-max, and
            AUROC and ECE are computed from them.
        y_pred: ``[N]`` predicted class indices, when no probabilities are available (no AUROC/ECE).
        num_classes: K; inferred from ``probs`` or ``class_names`` when omitted.
        class_names: K names used in the metric names (default ``"0"..``).
        positive_class: name or index of the class whose FNR matters most.
        n_bins: calibration bins for ECE (15 by default).
    """
    if probs is None and y_pred is None:
        raise ValueError("clinical_metrics needs probs or y_pred")
    if probs is not None and y_pred is not None:
        raise ValueError("give probs or y_pred, not both: the prediction is the arg-max of probs")
    if num_classes is None:
        if probs is not None and torch.as_tensor(probs).ndim == 2:
            num_classes = int(torch.as_tensor(probs).shape[1])
        elif class_names is not None:
            num_classes = len(class_names)
        else:
            raise ValueError("num_classes is required when neither probs nor class_names give it")
    names = validate_class_names(num_classes, class_names)
    y = check_labels(y_true, num_classes, "y_true")
    if y.numel() == 0:
        raise ValueError("clinical metrics need at least one sample, got an empty y_true")
    if probs is not None:
        p = check_probabilities(probs, num_classes)
        if p.shape[0] != y.shape[0]:
            raise ValueError(f"y_true has {y.shape[0]} samples but probs has {p.shape[0]}")
        cm = confusion_matrix(y, p.argmax(dim=1), num_classes)
        return summarize_clinical_metrics(
            cm,
            names,
            auroc_per_class=auroc(y, p, num_classes),
            calibration=calibration_bins(y, p, n_bins, num_classes),
            positive_class=positive_class,
        )
    cm = confusion_matrix(y, y_pred, num_classes)
    return summarize_clinical_metrics(cm, names, positive_class=positive_class)


# Every published name is "higher is better" except these (prefix match on the part before "/").
HIGHER_IS_BETTER_EXCEPTIONS = ("fnr", "positive_fnr", "ece")


def metric_higher_is_better(name: str) -> bool:
    """Whether a larger value of the named clinical metric is better (``fnr/*`` and ``ece`` are not)."""
    return name.split("/", 1)[0] not in HIGHER_IS_BETTER_EXCEPTIONS
