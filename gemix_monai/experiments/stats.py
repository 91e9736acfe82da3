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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Interval",
    "t_interval",
    "bootstrap_interval",
    "interval",
    "paired_differences",
    "paired_interval",
    "METHODS",
    "table_head",
]

METHODS = ("t", "bootstrap")


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval.

    ``n`` counts the finite values used. ``defined`` is ``False`` when no interval exists (n < 2);
    then ``lo``/``hi``/``half_width`` are NaN (and ``mean`` too when n = 0). ``excludes_zero`` is
    ``lo > 0 or hi < 0`` for a defined interval and ``False`` otherwise.
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

    @property
    def excludes_zero(self) -> bool:
        return bool(self.defined and (self.lo > 0 or self.hi < 0))

    def to_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}

    def brief(self, signed: bool = False) -> str:
        """``mean [lo, hi]`` with three decimals, for report tables; ``signed`` (a paired difference) writes
        the signs and marks an interval that excludes 0 with ``*``; an undefined interval is ``mean (n=…: no
        interval)``."""
        f = "{:+.3f}" if signed else "{:.3f}"
        if not self.defined:
            return f"{f.format(self.mean)} (n={self.n}: no interval)"
        star = "*" if signed and self.excludes_zero else ""
        return f"{f.format(self.mean)}{star} [{f.format(self.lo)}, {f.format(self.hi)}]"


def table_head(columns: Sequence[str]) -> list[str]:
    """The first two lines of a Markdown table with these column names."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(list(values), dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _undefined(x: np.ndarray, confidence: float, method: str) -> Interval:
    nan = float("nan")
    mean = float(x.mean()) if x.size else nan
    note = f"undefined: n={x.size}, an interval needs at least 2 values"
    return Interval(mean, nan, nan, nan, int(x.size), confidence, method, False, note)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval ``mean ± t.ppf(1 - (1 - confidence) / 2, n - 1) * std(ddof=1) / sqrt(n)``."""
    from scipy import stats

    _check_confidence(confidence)
    x = _finite(values)
    n = int(x.size)
    if n < 2:
        return _undefined(x, confidence, "t")
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, half, n, confidence, "t", True)


def bootstrap_interval(
    values: Sequence[float], confidence: float = 0.95, *, n_resamples: int = 10000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean; the same ``seed`` gives the same interval."""
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    x = _finite(values)
    n = int(x.size)
    if n < 2:
        return _undefined(x, confidence, "bootstrap")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = (float(v) for v in np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return Interval(float(x.mean()), lo, hi, (hi - lo) / 2.0, n, confidence, "bootstrap", True)


def interval(
    values: Sequence[float], method: str = "t", confidence: float = 0.95, *, n_resamples: int = 10000, seed: int = 0
) -> Interval:
    """:func:`t_interval` (``method="t"``) or :func:`bootstrap_interval` (``method="bootstrap"``)."""
    if method == "t":
        return t_interval(values, confidence)
    if method == "bootstrap":
        return bootstrap_interval(values, confidence, n_resamples=n_resamples, seed=seed)
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


def paired_interval(a: Mapping, b: Mapping, method: str = "t", confidence: float = 0.95, **kwargs) -> Interval:
    """Interval of the paired differences ``a - b`` (see :func:`paired_differences`); ``n`` is the number of pairs."""
    _, d = paired_differences(a, b)
    return interval(d, method, confidence, **kwargs)
