"""Summary statistics of repeated runs: means with confidence intervals and paired differences.

Pure numpy/scipy. Every interval is an :class:`Interval`; an interval that cannot be computed
(fewer than two finite values) is **undefined**: ``lo``, ``hi`` and ``half_width`` are NaN and
``defined`` is ``False`` (``note`` says why). It is never reported as a zero-width interval. A
sample whose values are all equal does give a zero-width t-interval (its standard deviation is 0):
that is the computation, not a placeholder.

- :func:`t_interval`: ``mean ± t_{1-α/2, n-1} · s / √n`` with ``s`` the sample standard deviation
  (``ddof=1``) and ``t`` the Student quantile with ``n - 1`` degrees of freedom.
- :func:`bootstrap_interval`: percentile bootstrap of the mean (``n_resamples`` resamples of size n
  with replacement from a ``numpy.random.default_rng(seed)``; the interval is the ``α/2`` and
  ``1 - α/2`` quantiles of the resampled means; ``half_width`` is half of ``hi - lo``).
- :func:`paired_differences`: ``a[k] - b[k]`` for the keys present in both (sorted), then an interval
  of those differences (:func:`paired_interval`), with ``excludes_zero``.

**The metric's range** (docs/experiments.md, "Intervals"). Each interval function takes ``bounds=``, a
:class:`Bounds` from :func:`metric_range`: rates, AUROC, F-scores, accuracy, ECE and Dice lie in [0, 1]
and differences of two of them in [-1, 1]; HD95 in [0, ∞) and its differences in (-∞, ∞). A value
outside the range is an error (it is a bug upstream, not a measurement). The interval's ends are cut
at the range and ``clipped`` says so; ``half_width`` stays that of the computed interval (for the
t-interval, ``mean ± half_width`` are the ends before the cut). A percentile bootstrap of values in
the range never leaves it, so only a t-interval is ever clipped.

**Too few values.** ``n_too_small`` is ``True`` when n < :data:`MIN_N` (3): with n = 2 the interval is
still computed (Student's t with 1 degree of freedom, t = 12.7) but marked; with n < 2 it is undefined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = [
    "Interval",
    "Bounds",
    "metric_range",
    "MIN_N",
    "UNIT_RANGE_METRICS",
    "NON_NEGATIVE_METRICS",
    "t_interval",
    "bootstrap_interval",
    "interval",
    "paired_differences",
    "paired_interval",
    "METHODS",
    "table_head",
]

METHODS = ("t", "bootstrap")

#: An interval of fewer values than this is marked ``n_too_small`` (computed from n = 2, undefined below).
MIN_N = 3

#: Metrics (the name before any ``/<class>``) whose values lie in [0, 1]: the clinical rates and scores of
#: gemix_monai.metrics.clinical and the segmentation Dice.
UNIT_RANGE_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_f2",
    "macro_auroc",
    "ece",
    "sensitivity",
    "specificity",
    "precision",
    "fnr",
    "f1",
    "f2",
    "auroc",
    "positive_fnr",
    "positive_sensitivity",
    "positive_specificity",
    "positive_auroc",
    "dice",
)
#: Metrics whose values lie in [0, ∞): the segmentation HD95 (pixels).
NON_NEGATIVE_METRICS = ("hd95",)


@dataclass(frozen=True)
class Bounds:
    """The closed range ``[lo, hi]`` of a metric's values (``difference``: of differences of two values);
    ``name`` is the metric, for messages."""

    lo: float
    hi: float
    name: str
    difference: bool = False

    def of_differences(self) -> Bounds:
        """The range of ``a - b`` for ``a`` and ``b`` in this range (itself when it already is one)."""
        if self.difference:
            return self
        return Bounds(self.lo - self.hi, self.hi - self.lo, self.name, True)

    def text(self) -> str:
        def end(v: float) -> str:
            return "∞" if v == math.inf else "-∞" if v == -math.inf else f"{v:g}"

        return f"[{end(self.lo)}, {end(self.hi)}]"


def metric_range(name: str, *, difference: bool = False) -> Bounds:
    """The range of the metric ``name`` (``fnr/<class>`` is ``fnr``'s), or of a difference of two of its values.

    Raises ``ValueError`` naming the metric for a name whose range is not known here (add it to
    :data:`UNIT_RANGE_METRICS` or :data:`NON_NEGATIVE_METRICS`).
    """
    base = str(name).split("/", 1)[0]
    if base in UNIT_RANGE_METRICS:
        bounds = Bounds(0.0, 1.0, str(name))
    elif base in NON_NEGATIVE_METRICS:
        bounds = Bounds(0.0, math.inf, str(name))
    else:
        known = ", ".join(UNIT_RANGE_METRICS + NON_NEGATIVE_METRICS)
        raise ValueError(f"metric_range: no known range for metric {name!r}; known metrics: {known}")
    return bounds.of_differences() if difference else bounds


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval.

    ``n`` counts the finite values used. ``defined`` is ``False`` when no interval exists (n < 2);
    then ``lo``/``hi``/``half_width`` are NaN (and ``mean`` too when n = 0). ``excludes_zero`` is
    ``lo > 0 or hi < 0`` for a defined interval and ``False`` otherwise. ``bounds`` is the metric's
    range the ends were cut to (``None``: none given) and ``clipped`` whether a cut happened;
    ``n_too_small`` is ``n < MIN_N`` (module docstring).
    """

    mean: float
    lo: float
    hi: float
    half_width: float
    n: int
    confidence: float
    method: str
    defined: bool
    note: str = ""
    clipped: bool = False
    bounds: tuple[float, float] | None = None

    @property
    def excludes_zero(self) -> bool:
        return bool(self.defined and (self.lo > 0 or self.hi < 0))

    @property
    def n_too_small(self) -> bool:
        return self.n < MIN_N

    def to_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero, "n_too_small": self.n_too_small}

    def marks(self) -> str:
        """What a reader must know besides the numbers of a defined interval: ``clipped`` (its ends were cut
        at the metric's range) and ``n=2 too small``; empty otherwise."""
        if not self.defined:
            return ""
        marks = (["clipped"] if self.clipped else []) + ([f"n={self.n} too small"] if self.n_too_small else [])
        return "; ".join(marks)

    def brief(self, signed: bool = False) -> str:
        """``mean [lo, hi]`` with three decimals, for report tables; ``signed`` (a paired difference) writes
        the signs and marks an interval that excludes 0 with ``*``; an undefined interval is ``mean (n=…: no
        interval)``; :meth:`marks` follow in parentheses (``0.536 [0.000, 1.000] (clipped; n=2 too small)``)."""
        f = "{:+.3f}" if signed else "{:.3f}"
        if not self.defined:
            return f"{f.format(self.mean)} (n={self.n}: no interval)"
        star = "*" if signed and self.excludes_zero else ""
        marks = self.marks()
        return f"{f.format(self.mean)}{star} [{f.format(self.lo)}, {f.format(self.hi)}]" + (
            f" ({marks})" if marks else ""
        )


def table_head(columns: Sequence[str]) -> list[str]:
    """The first two lines of a Markdown table with these column names."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(list(values), dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check_bounds(x: np.ndarray, bounds: Bounds | None) -> None:
    if bounds is None:
        return
    if not isinstance(bounds, Bounds):
        raise TypeError(f"bounds must be a Bounds (from metric_range) or None, got {type(bounds).__name__}")
    slack = 1e-9 * max([1.0, *(abs(v) for v in (bounds.lo, bounds.hi) if math.isfinite(v))])
    outside = x[(x < bounds.lo - slack) | (x > bounds.hi + slack)]
    if outside.size:
        what = "differences of " if bounds.difference else "values of "
        raise ValueError(
            f"{what}{bounds.name} must lie in {bounds.text()}, got {outside.tolist()[:5]}: "
            "a value outside the metric's range is a bug upstream, not a measurement"
        )


def _clip(iv: Interval, bounds: Bounds | None) -> Interval:
    """``iv`` with its ends cut at ``bounds`` (and ``clipped`` set where a cut happened)."""
    if bounds is None:
        return iv
    ends = (bounds.lo, bounds.hi)
    if not iv.defined:
        return replace(iv, bounds=ends)
    lo, hi = max(iv.lo, bounds.lo), min(iv.hi, bounds.hi)
    return replace(iv, lo=lo, hi=hi, clipped=bool(lo != iv.lo or hi != iv.hi), bounds=ends)


def _undefined(x: np.ndarray, confidence: float, method: str) -> Interval:
    nan = float("nan")
    mean = float(x.mean()) if x.size else nan
    note = f"undefined: n={x.size}, an interval needs at least 2 values"
    return Interval(mean, nan, nan, nan, int(x.size), confidence, method, False, note)


def t_interval(values: Sequence[float], confidence: float = 0.95, *, bounds: Bounds | None = None) -> Interval:
    """Mean and Student-t interval ``mean ± t.ppf(1 - (1 - confidence) / 2, n - 1) * std(ddof=1) / sqrt(n)``,
    its ends cut at ``bounds`` (module docstring)."""
    from scipy import stats

    _check_confidence(confidence)
    x = _finite(values)
    _check_bounds(x, bounds)
    n = int(x.size)
    if n < 2:
        return _clip(_undefined(x, confidence, "t"), bounds)
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1)) * sem
    return _clip(Interval(mean, mean - half, mean + half, half, n, confidence, "t", True), bounds)


def bootstrap_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
    bounds: Bounds | None = None,
) -> Interval:
    """Percentile bootstrap interval of the mean; the same ``seed`` gives the same interval. ``bounds``: the
    metric's range (values outside it are an error; the interval never leaves it)."""
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    x = _finite(values)
    _check_bounds(x, bounds)
    n = int(x.size)
    if n < 2:
        return _clip(_undefined(x, confidence, "bootstrap"), bounds)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = (float(v) for v in np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return _clip(Interval(float(x.mean()), lo, hi, (hi - lo) / 2.0, n, confidence, "bootstrap", True), bounds)


def interval(
    values: Sequence[float],
    method: str = "t",
    confidence: float = 0.95,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
    bounds: Bounds | None = None,
) -> Interval:
    """:func:`t_interval` (``method="t"``) or :func:`bootstrap_interval` (``method="bootstrap"``), cut at ``bounds``."""
    if method == "t":
        return t_interval(values, confidence, bounds=bounds)
    if method == "bootstrap":
        return bootstrap_interval(values, confidence, n_resamples=n_resamples, seed=seed, bounds=bounds)
    raise ValueError(f"unknown interval method {method!r}; expected one of {list(METHODS)}")


def paired_differences(a: Mapping, b: Mapping) -> tuple[list, np.ndarray]:
    """Keys present in both ``a`` and ``b`` (sorted) and the differences ``a[k] - b[k]``.

    Keys are the matching units (e.g. ``(gan_seed, seed)``); pairs where either value is not finite
    are dropped.
    """
    keys = []
    diffs = []
    for k in sorted(set(a) & set(b)):
        d = float(a[k]) - float(b[k])
        if math.isfinite(d):
            keys.append(k)
            diffs.append(d)
    return keys, np.asarray(diffs, dtype=np.float64)


def paired_interval(
    a: Mapping, b: Mapping, method: str = "t", confidence: float = 0.95, *, bounds: Bounds | None = None, **kwargs
) -> Interval:
    """Interval of the paired differences ``a - b`` (see :func:`paired_differences`); ``n`` is the number of pairs.

    ``bounds``: the metric's range, ``metric_range(name)``; the differences are cut at the range of a
    difference (``[-1, 1]`` for a rate), whether the values' or the differences' range is given.
    """
    if bounds is not None and not bounds.difference:
        for side in (a, b):
            _check_bounds(_finite(side.values()), bounds)
    _, d = paired_differences(a, b)
    return interval(d, method, confidence, bounds=None if bounds is None else bounds.of_differences(), **kwargs)
