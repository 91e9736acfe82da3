"""Soft-label samplers (docs/maths.md §3): points of the K-class simplex at which the generator is conditioned.

Every sampler draws a whole batch in one vectorised call, takes its randomness from a numpy random
state (so MONAI's ``Randomizable.R`` can drive it), and returns float32 ``[B, K]`` labels on the simplex.
``sample_with_info`` also returns the classes each label was built around, which tests and exports use.

Randomness: ``rng`` may be a ``numpy.random.Generator``, a ``numpy.random.RandomState``, an ``int`` seed,
or ``None`` (the sampler's own state, seeded by ``seed=`` at construction). The same seed always gives the
same labels.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch

from .labels import _check_num_classes

__all__ = [
    "SoftLabelSampler",
    "DirichletBetaSampler",
    "DirichletSampler",
    "TemperatureSoftmaxSampler",
    "OneHotSampler",
    "gemix_code_sampler",
    "SAMPLERS",
    "build_sampler",
    "as_rng",
    "check_seed",
    "inverse_frequency_weights",
    "CLASS_BALANCE_MODES",
    "class_balance_weights",
    "check_class_balance",
    "class_balance_shares",
]

RngLike = Union[np.random.Generator, np.random.RandomState, int, None]


def as_rng(rng: RngLike, default: np.random.Generator | np.random.RandomState | None = None):
    """Normalise ``rng`` to a numpy random state (see the module docstring)."""
    if rng is None:
        return default if default is not None else np.random.default_rng()
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    if isinstance(rng, (list, tuple)) and all(isinstance(v, numbers.Integral) for v in rng):
        return np.random.default_rng([int(v) for v in rng])
    raise TypeError(f"rng must be a numpy Generator/RandomState, an int seed or None, got {type(rng).__name__}")


#: Largest float64; the samplers' parameter bounds derive from it so that every draw stays finite.
_F64_MAX = float(np.finfo(np.float64).max)
#: Smallest normal float64: a positive parameter below it is subnormal and its reciprocal overflows.
_F64_TINY = float(np.finfo(np.float64).tiny)
#: Bound on |N(0, 1)| draws: numpy's ziggurat tail from a 53-bit uniform cannot exceed ~14, so 64 is safe.
_NORMAL_BOUND = 64.0
#: Bound on |logit| (bias + sigma * normal, and that divided by the temperature): differences stay finite.
_LOGIT_MAX = _F64_MAX / 4
#: Largest Beta(beta, beta) parameter: numpy draws it as Ga / (Ga + Gb) with Gamma draws near beta, whose sum must be finite.
_BETA_MAX = _F64_MAX / 4

_SEED_LIMIT = 2**32


def check_seed(seed, name: str = "seed", *, allow_none: bool = True) -> int | None:
    """``seed`` as an int in ``[0, 2**32)`` (``None`` passes when ``allow_none``); a ``ValueError`` naming ``name`` otherwise."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < _SEED_LIMIT:
        raise ValueError(
            f"{name} must be an integer in [0, 2**32) = [0, {_SEED_LIMIT - 1}]"
            f"{' or None' if allow_none else ''}, got {seed!r}"
        )
    return int(seed)


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _in_range(name: str, value, lo: float, hi: float, why: str = "") -> float:
    """``value`` as a float in ``[lo, hi]``, else a ``ValueError`` naming ``name`` and the range."""
    v = _real(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo:.6g}, {hi:.6g}]{why}, got {value!r}")
    return v


def _positive(name: str, value, hi: float = _F64_MAX, why: str = "", lo: float = _F64_TINY) -> float:
    """A positive parameter in ``[lo, hi]``; ``lo`` is at least the smallest normal float64 (so ``1/value`` is finite)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return _in_range(name, value, max(lo, _F64_TINY), hi, why)


def _alpha_max(k: int) -> float:
    """Largest Dirichlet concentration for K classes: a row's K Gamma draws (each near its alpha) must sum to a finite float64."""
    return _F64_MAX / (4 * k)


def _class_probabilities(class_weights, k: int) -> np.ndarray | None:
    if class_weights is None:
        return None
    w = np.asarray(
        torch.as_tensor(class_weights).detach().cpu().numpy()
        if isinstance(class_weights, torch.Tensor)
        else class_weights,
        dtype=np.float64,
    )
    if w.ndim != 1 or w.shape[0] != k:
        raise ValueError(f"class_weights must have one entry per class (length {k}), got shape {tuple(w.shape)}")
    if not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"class_weights must be finite and non-negative, got {w.tolist()}")
    if w.sum() <= 0:
        raise ValueError("class_weights must have a positive sum, got all zeros")
    return w / w.sum()


def _batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 0:
        raise ValueError(f"batch_size must be an integer >= 0, got {batch_size!r}")
    return int(batch_size)


def _uniform(rng, size) -> np.ndarray:
    return rng.random(size)


def _inverse_cdf(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise inverse-CDF draw: ``p`` [B, K] probabilities (rows sum to 1), ``u`` [B] uniforms in [0, 1)."""
    cdf = np.cumsum(p, axis=1)
    idx = np.minimum((cdf <= u[:, None]).sum(1), p.shape[1] - 1)
    # Float rounding at the top of the CDF can land on a class of zero probability; move such draws to the
    # last class that has positive probability.
    bad = p[np.arange(p.shape[0]), idx] <= 0
    if bad.any():
        last_pos = (p.shape[1] - 1) - np.argmax(p[:, ::-1] > 0, axis=1)
        idx[bad] = last_pos[bad]
    return idx.astype(np.int64)


def _choose_classes(rng, probs: np.ndarray | None, k: int, size: int) -> np.ndarray:
    """``size`` class indices drawn with probabilities ``probs`` (uniform when ``None``)."""
    p = np.broadcast_to(np.full(k, 1.0 / k) if probs is None else probs, (size, k))
    return _inverse_cdf(p, _uniform(rng, size))


def _choose_other_classes(rng, probs: np.ndarray | None, first: np.ndarray, k: int) -> np.ndarray:
    """One class per row, distinct from ``first[row]``, drawn with ``probs`` restricted to the other classes."""
    b = first.shape[0]
    p = np.broadcast_to(np.full(k, 1.0 / k) if probs is None else probs, (b, k)).copy()
    p[np.arange(b), first] = 0.0
    totals = p.sum(1, keepdims=True)
    if b and (totals <= 0).any():
        raise ValueError(
            "class_weights leave a single class with positive weight: a two-class GeMix draw needs two distinct classes"
        )
    return _inverse_cdf(p / totals, _uniform(rng, b))


def _primary_classes(primary, rng, probs, k: int, b: int) -> np.ndarray:
    if primary is None:
        return _choose_classes(rng, probs, k, b)
    arr = np.asarray(primary.cpu().numpy() if isinstance(primary, torch.Tensor) else primary)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"primary must hold integer class indices, got dtype {arr.dtype}")
    arr = np.broadcast_to(arr.astype(np.int64), (b,)).copy() if arr.ndim == 0 else arr.astype(np.int64)
    if arr.shape != (b,):
        raise ValueError(f"primary must be one class index or {b} of them (one per row), got shape {arr.shape}")
    if b and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(f"primary class indices must lie in 0..{k - 1}, got {arr.min()}..{arr.max()}")
    return arr


def _dirichlet_biased(rng, classes: np.ndarray, k: int, alpha_hi: float, alpha_lo: float) -> np.ndarray:
    """Rows ``~ Dir(alpha_lo * 1 + (alpha_hi - alpha_lo) * e_class)``, float64, via normalised Gamma draws."""
    b = classes.shape[0]
    conc = np.full((b, k), alpha_lo)
    conc[np.arange(b), classes] = alpha_hi
    g = rng.standard_gamma(conc)
    sums = g.sum(1, keepdims=True)
    # With tiny concentrations every Gamma draw can underflow to 0; the limit of such a Dirichlet is a vertex,
    # and the biased class is the most likely one.
    empty = sums[:, 0] <= 0
    if empty.any():
        g[empty] = 0.0
        g[empty, classes[empty]] = 1.0
        sums = g.sum(1, keepdims=True)
    return g / sums


def _to_label_tensor(x: np.ndarray, device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    t = t / t.sum(-1, keepdim=True).clamp_min(1e-30)  # float32 rounding: keep rows summing to 1
    return t.to(device) if device is not None else t


def _class_counts(labels, num_classes: int) -> np.ndarray:
    """Items per class ``[K]`` (float64) of integer class indices; errors name what is wrong."""
    k = _check_num_classes(num_classes)
    arr = np.asarray(labels.cpu().numpy() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if arr.size == 0:
        raise ValueError("labels is empty: cannot compute class frequencies")
    if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= k:
        raise ValueError(
            f"labels must be integer class indices in 0..{k - 1}, got dtype {arr.dtype}, range {arr.min()}..{arr.max()}"
        )
    return np.bincount(arr.astype(np.int64), minlength=k).astype(np.float64)


#: Class balance of a generator's training data (docs/generators.md, "Class balance"): the share of class k in
#: the images a generator is shown is ∝ n_k (``none``), ∝ √n_k (``sqrt``) or 1/K (``uniform``).
CLASS_BALANCE_MODES = ("none", "sqrt", "uniform")


def check_class_balance(mode, name: str = "class_balance") -> str:
    """``mode`` if it is one of :data:`CLASS_BALANCE_MODES`, else a ``ValueError`` naming ``name``."""
    if mode not in CLASS_BALANCE_MODES:
        raise ValueError(f"{name} must be one of {list(CLASS_BALANCE_MODES)}, got {mode!r}")
    return mode


def class_balance_weights(labels, num_classes: int, mode: str) -> list[float]:
    """Per-class sampling weights ``w_k`` for drawing items with probability ∝ ``w_{label}``.

    ``none``: 1 for every class; ``sqrt``: ``1/√n_k`` (class shares ∝ √n_k); ``uniform``: ``1/n_k`` (every present
    class equally often). Absent classes get 0. Weights are scaled so that the mean item weight is 1.
    """
    check_class_balance(mode)
    counts = _class_counts(labels, num_classes)
    power = {"none": 0.0, "sqrt": 0.5, "uniform": 1.0}[mode]
    w = np.where(counts > 0, np.maximum(counts, 1) ** -power, 0.0)
    w *= counts.sum() / float((w * counts).sum())
    return w.tolist()


def inverse_frequency_weights(labels, num_classes: int) -> list[float]:
    """Class weights ``w_k = N / (K * n_k)`` from the training labels (class indices), for class-balanced sampling
    (scikit-learn's "balanced" weights): the ``uniform`` weights of :func:`class_balance_weights` — the one
    computation of class weights — scaled by ``K_present / K``.

    A class absent from ``labels`` gets weight 0 (there is nothing to imitate); mean weight over the present
    classes is 1 when the classes are all present.
    """
    weights = np.asarray(class_balance_weights(labels, num_classes, "uniform"))
    return (weights * np.count_nonzero(weights) / len(weights)).tolist()


def class_balance_shares(labels, num_classes: int, mode: str) -> list[float]:
    """The expected share of each class among the items drawn with :func:`class_balance_weights` (sums to 1)."""
    share = np.asarray(class_balance_weights(labels, num_classes, mode)) * _class_counts(labels, num_classes)
    return (share / share.sum()).tolist()


class SoftLabelSampler:
    """Base class: holds K, optional class weights and the sampler's own random state.

    Subclasses implement ``_draw(b, rng, primary) -> (labels float64 [b, K], info dict)``.
    """

    name: str = "base"

    def __init__(self, num_classes: int, class_weights: Sequence[float] | None = None, seed: int | None = None):
        self.num_classes = _check_num_classes(num_classes)
        self.class_weights = (
            None if class_weights is None else [float(w) for w in np.asarray(class_weights, dtype=np.float64).ravel()]
        )
        self._probs = _class_probabilities(class_weights, self.num_classes)
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | np.random.Generator | None = None
    ):
        """Reseed the sampler's own random state (MONAI's ``Randomizable`` convention)."""
        self.rng = state if state is not None else np.random.default_rng(check_seed(seed))
        return self

    @property
    def class_probabilities(self) -> np.ndarray:
        """Probability of each class being a label's primary class ([K], sums to 1)."""
        return np.full(self.num_classes, 1.0 / self.num_classes) if self._probs is None else self._probs.copy()

    def sample(self, batch_size: int, rng: RngLike = None, primary=None, device=None) -> torch.Tensor:
        """Draw ``batch_size`` soft labels: float32 ``[B, K]``, every row on the simplex.

        ``primary`` (optional): the class (int, or B ints) each label is built around instead of a random one.
        """
        return self.sample_with_info(batch_size, rng=rng, primary=primary, device=device)[0]

    def sample_with_info(
        self, batch_size: int, rng: RngLike = None, primary=None, device=None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Like :meth:`sample`, also returning ``{"classes": [B, n] int64, ...}`` (sampler-specific extras)."""
        b = _batch_size(batch_size)
        labels, info = self._draw(b, as_rng(rng, self.rng), primary)
        # Belt and braces: the parameter bounds keep draws finite; a row that is not is never returned.
        if labels.size and (not np.all(np.isfinite(labels)) or not np.all(labels.sum(-1) > 0)):
            raise ValueError(
                f"{type(self).__name__} drew a soft label that is NaN, infinite or all zero with parameters "
                f"{self.params()}; use less extreme parameters"
            )
        return _to_label_tensor(labels, device), {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in info.items()}

    def __call__(self, batch_size: int, rng: RngLike = None, primary=None, device=None) -> torch.Tensor:
        return self.sample(batch_size, rng=rng, primary=primary, device=device)

    def _draw(self, b: int, rng, primary) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Everything that determines the distribution (written next to exported images)."""
        return {"sampler": self.name, "num_classes": self.num_classes, "class_weights": self.class_weights}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "sampler")
        return f"{type(self).__name__}({args})"


class DirichletSampler(SoftLabelSampler):
    """A single Dirichlet biased to one class: ``c ~ Dir(alpha_lo*1 + (alpha_hi-alpha_lo)*e_i)``, i drawn by weight.

    ``sample_with_info`` extras: ``classes`` [B, 1].
    """

    name = "dirichlet"

    def __init__(
        self,
        num_classes: int,
        alpha_hi: float = 2.0,
        alpha_lo: float = 1.0,
        class_weights: Sequence[float] | None = None,
        seed: int | None = None,
    ):
        super().__init__(num_classes, class_weights, seed)
        why = f" (float64: the {self.num_classes} Gamma draws of a Dirichlet row must sum to a finite number)"
        self.alpha_hi = _positive("alpha_hi", alpha_hi, _alpha_max(self.num_classes), why)
        self.alpha_lo = _positive("alpha_lo", alpha_lo, _alpha_max(self.num_classes), why)

    def _draw(self, b, rng, primary):
        i = _primary_classes(primary, rng, self._probs, self.num_classes, b)
        return _dirichlet_biased(rng, i, self.num_classes, self.alpha_hi, self.alpha_lo), {"classes": i[:, None]}

    def params(self):
        return {**super().params(), "alpha_hi": self.alpha_hi, "alpha_lo": self.alpha_lo}


class DirichletBetaSampler(DirichletSampler):
    """GeMix as the paper describes it (docs/maths.md §3).

    Draw two distinct classes i != j; ``y1 ~ Dir(alpha_lo*1 + (alpha_hi-alpha_lo)*e_i)``,
    ``y2 ~ Dir(alpha_lo*1 + (alpha_hi-alpha_lo)*e_j)``; ``lam ~ Beta(beta, beta)``;
    label ``c = lam*y1 + (1-lam)*y2``. With class weights, i is drawn with the weights and j with the
    weights restricted to the other classes.

    ``sample_with_info`` extras: ``classes`` [B, 2] (i, j), ``lam`` [B].
    """

    name = "dirichlet_beta"

    def __init__(
        self,
        num_classes: int,
        alpha_hi: float = 10.0,
        alpha_lo: float = 1.0,
        beta: float = 0.4,
        class_weights: Sequence[float] | None = None,
        seed: int | None = None,
    ):
        super().__init__(num_classes, alpha_hi, alpha_lo, class_weights, seed)  # the two Dirichlets' parameters
        self.beta = _positive(
            "beta", beta, _BETA_MAX, " (float64: the two Gamma draws of a Beta draw must sum to a finite number)"
        )
        if self._probs is not None and (self._probs > 0).sum() < 2:
            raise ValueError(
                "class_weights must give at least two classes a positive weight: a GeMix draw blends two distinct classes"
            )

    def _draw(self, b, rng, primary):
        k = self.num_classes
        i = _primary_classes(primary, rng, self._probs, k, b)
        j = _choose_other_classes(rng, self._probs, i, k)
        y1 = _dirichlet_biased(rng, i, k, self.alpha_hi, self.alpha_lo)
        y2 = _dirichlet_biased(rng, j, k, self.alpha_hi, self.alpha_lo)
        lam = rng.beta(self.beta, self.beta, size=b)
        labels = lam[:, None] * y1 + (1.0 - lam[:, None]) * y2
        return labels, {"classes": np.stack([i, j], 1), "lam": lam.astype(np.float32)}

    def params(self):
        return {**super().params(), "beta": self.beta}


def gemix_code_sampler(
    num_classes: int, class_weights: Sequence[float] | None = None, seed: int | None = None
) -> DirichletSampler:
    """The preset that reproduces the public GeMix code: one ``Dir(2, 1, ..., 1)`` biased to a random class."""
    return DirichletSampler(num_classes, alpha_hi=2.0, alpha_lo=1.0, class_weights=class_weights, seed=seed)


class TemperatureSoftmaxSampler(SoftLabelSampler):
    """Primary class c (uniform or by weight); logits ``u ~ N(0, sigma^2 I)``, ``u_c += bias``; label ``softmax(u / T)``.

    Lower ``temperature`` gives sharper labels. ``sample_with_info`` extras: ``classes`` [B, 1].
    """

    name = "temperature_softmax"

    def __init__(
        self,
        num_classes: int,
        bias: float = 2.0,
        temperature: float = 1.0,
        sigma: float = 1.0,
        class_weights: Sequence[float] | None = None,
        seed: int | None = None,
    ):
        super().__init__(num_classes, class_weights, seed)
        # float64 bounds: logits bias + sigma * N(0, 1) stay within _LOGIT_MAX, and so do they divided by the temperature
        self.bias = _in_range("bias", bias, -_LOGIT_MAX / 2, _LOGIT_MAX / 2, " (float64: logits must stay finite)")
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.sigma = _in_range(
            "sigma", sigma, 0.0, _LOGIT_MAX / (2 * _NORMAL_BOUND), " (float64: logits must stay finite)"
        )
        logit_bound = abs(self.bias) + _NORMAL_BOUND * self.sigma
        self.temperature = _positive(
            "temperature",
            temperature,
            _F64_MAX,
            f" (float64: logits up to {logit_bound:.6g} from bias={self.bias!r} and sigma={self.sigma!r} "
            "divided by the temperature must stay finite)",
            lo=logit_bound / _LOGIT_MAX,
        )

    def _draw(self, b, rng, primary):
        k = self.num_classes
        c = _primary_classes(primary, rng, self._probs, k, b)
        u = rng.normal(0.0, 1.0, size=(b, k)) * self.sigma
        u[np.arange(b), c] += self.bias
        z = u / self.temperature
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True), {"classes": c[:, None]}

    def params(self):
        return {**super().params(), "bias": self.bias, "temperature": self.temperature, "sigma": self.sigma}


class OneHotSampler(SoftLabelSampler):
    """Hard labels as one-hot vectors, class drawn uniformly or by weight (the ``real+synthetic`` strategy)."""

    name = "one_hot"

    def _draw(self, b, rng, primary):
        c = _primary_classes(primary, rng, self._probs, self.num_classes, b)
        out = np.zeros((b, self.num_classes))
        out[np.arange(b), c] = 1.0
        return out, {"classes": c[:, None]}


#: Name -> factory ``(num_classes, **kwargs) -> SoftLabelSampler``; the names the strategies use.
SAMPLERS: dict[str, Callable[..., SoftLabelSampler]] = {
    "gemix": DirichletBetaSampler,
    "gemix_code": gemix_code_sampler,
    "softmax_t": TemperatureSoftmaxSampler,
    "one_hot": OneHotSampler,
    "dirichlet": DirichletSampler,
}


def build_sampler(name: str, num_classes: int, **kwargs) -> SoftLabelSampler:
    """``SAMPLERS[name](num_classes, **kwargs)`` with an error listing the known names, or the arguments
    the sampler takes when ``kwargs`` holds one it does not (e.g. ``temperature`` for ``gemix``)."""
    import inspect

    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; expected one of {sorted(SAMPLERS)}")
    factory = SAMPLERS[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [p for p in params if p != "num_classes"]
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown:
            raise ValueError(f"sampler {name!r} does not take {unknown}; its arguments are {accepted}")
    return factory(num_classes, **kwargs)
