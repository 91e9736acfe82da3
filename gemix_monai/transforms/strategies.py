"""Training-data strategies for the classifier, each one dataset plus at most one batch transform.

``build_strategy(name, real_dataset, num_classes, generator=...)`` returns a :class:`Strategy`:
``strategy.dataset`` is what the ``DataLoader`` reads (items ``{"image", "label": [K] soft, "is_synthetic"}``),
``strategy.batch_transform`` (or ``None``) is applied to each collated batch before the forward pass.

| name            | dataset                                   | batch transform         |
|-----------------|-------------------------------------------|-------------------------|
| ``real``        | real, one-hot labels                      | –                       |
| ``pixel_mixup`` | real, one-hot labels                      | ``SoftMixUpd``          |
| ``synthetic_only`` | synthetic only (``sampler`` option, default GeMix) | –             |
| ``real+synthetic`` | real + synthetic with one-hot labels   | –                       |
| ``gemix``       | real + synthetic, ``DirichletBetaSampler`` | –                      |
| ``gemix_code``  | real + synthetic, ``gemix_code_sampler``  | –                       |
| ``softmax_t``   | real + synthetic, ``TemperatureSoftmaxSampler`` | –                 |
| ``genmix``      | real, one-hot labels                      | ``GenMixd`` (partner from the generator) |
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from gemix_monai.mixing import SoftLabelSampler, build_sampler, labels_of

from .mix import GenMixd, SoftMixUpd
from .synthetic import RealSyntheticDataset, SyntheticDataset, SyntheticSource, load_generator

__all__ = ["Strategy", "StrategyOptions", "STRATEGIES", "build_strategy", "needs_generator", "strategy_sampler"]

#: strategy name -> sampler name used for its synthetic images (None: no generator needed).
STRATEGIES: dict[str, str | None] = {
    "real": None,
    "pixel_mixup": None,
    "synthetic_only": "gemix",
    "real+synthetic": "one_hot",
    "gemix": "gemix",
    "gemix_code": "gemix_code",
    "softmax_t": "softmax_t",
    "genmix": "one_hot",
}


def needs_generator(strategy: str) -> bool:
    """Whether ``strategy`` draws synthetic images (a generator or a pool): the one place that says so; ``real`` and
    ``pixel_mixup`` do not. An unknown name is a ``ValueError`` listing the strategies."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    return STRATEGIES[strategy] is not None


def _named_class_weights(name: str, real_dataset, num_classes: int) -> list[float]:
    from gemix_monai.mixing import inverse_frequency_weights

    from .teacher import deficit_class_weights

    if name == "inverse_frequency":
        return inverse_frequency_weights(labels_of(real_dataset), num_classes)
    if name == "deficit":
        return deficit_class_weights(labels_of(real_dataset), num_classes)
    raise ValueError(
        f"class_weights must be a list of {num_classes} numbers, 'inverse_frequency' or 'deficit', got {name!r}"
    )


def strategy_sampler(
    name: str,
    real_dataset,
    num_classes: int,
    *,
    sampler: str | None = None,
    sampler_kwargs: dict | None = None,
    class_weights=None,
    seed: int = 0,
) -> SoftLabelSampler:
    """The soft-label sampler of a generator strategy (its default, or ``sampler``/``sampler_kwargs``), with
    ``class_weights`` a list or a name (``"inverse_frequency"``, ``"deficit"``) computed from the real labels."""
    if STRATEGIES.get(name) is None:
        raise ValueError(f"strategy {name!r} draws no synthetic labels; expected one of the generator strategies")
    if isinstance(class_weights, str):
        class_weights = _named_class_weights(class_weights, real_dataset, num_classes)
    return build_sampler(
        sampler or STRATEGIES[name], num_classes, class_weights=class_weights, seed=seed, **(sampler_kwargs or {})
    )


@dataclass
class Strategy:
    """What a training loop needs for one strategy: the dataset and an optional per-batch transform."""

    name: str
    dataset: Dataset
    batch_transform: Callable[[dict], dict] | None = None
    sampler: SoftLabelSampler | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def set_epoch(self, epoch: int) -> None:
        """New synthetic draws for a new epoch (call before creating the epoch's iterator)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


@dataclass
class StrategyOptions:
    """How a strategy draws and mixes (every field optional; see :func:`build_strategy`).

    Args:
        sampler / sampler_kwargs: override the sampler (a name in ``gemix_monai.mixing.SAMPLERS``) and its
            parameters (e.g. ``{"temperature": 0.5}`` for ``softmax_t``).
        class_weights: per-class weights for the synthetic labels: a list, ``"inverse_frequency"`` or
            ``"deficit"`` (fill the minority classes first: ``w_k ∝ max_j n_j − n_k``), from the real labels.
        synthetic_ratio: synthetic items per real item for the ``real + synthetic`` strategies (GeMix code: 2.0).
        num_synthetic: items per epoch for ``synthetic_only`` (default: as many as real items).
        mixup_alpha: Beta(alpha, alpha) of pixel mixup; genmix_alpha / genmix_partner: see :class:`GenMix`.
        truncation_psi / generation_batch_size: the generator's ψ and images per forward pass.
        teacher, teacher_mode, teacher_weight, teacher_tolerance, teacher_tries: label (``"blend"``) or
            filter (``"filter"``) each synthetic image by a classifier trained on the real training split only
            (:class:`~gemix_monai.transforms.teacher.TeacherLabelledSynthetic`; docs/mixing.md).
    """

    sampler: str | None = None
    sampler_kwargs: dict | None = None
    class_weights: Any = None
    synthetic_ratio: float = 2.0
    num_synthetic: int | None = None
    mixup_alpha: float = 0.4
    genmix_alpha: float = 0.3
    genmix_partner: str = "synthetic"
    truncation_psi: float = 1.0
    generation_batch_size: int = 64
    teacher: Any = None
    teacher_mode: str = "blend"
    teacher_weight: float = 0.5
    teacher_tolerance: float = 0.5
    teacher_tries: int = 4

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The field names: the keyword arguments :func:`build_strategy` takes besides its own."""
        return tuple(f.name for f in dataclasses.fields(cls))


def _synthetic_pool(synthetic_pool, generator, label_sampler, real_dataset, num_classes: int):
    """The checked :class:`~gemix_monai.transforms.pool.SyntheticPool` of a strategy (or ``None``)."""
    if synthetic_pool is None:
        return None
    from .pool import SyntheticPool

    pool = synthetic_pool if isinstance(synthetic_pool, SyntheticPool) else SyntheticPool(synthetic_pool)
    if pool.c_dim != num_classes:
        raise ValueError(f"synthetic pool {pool.folder} has {pool.c_dim} classes, num_classes is {num_classes}")
    pool.check(
        generator=generator if isinstance(generator, (str, os.PathLike)) else None,
        sampler=label_sampler.params(),
        contract=getattr(real_dataset, "contract", None),
    )
    return pool


def _teacher_checked(synthetic, o: StrategyOptions, tries: int, device, info: dict):
    """``synthetic`` labelled (or filtered) by the teacher, when one is given."""
    if o.teacher is None:
        return synthetic
    from .teacher import TeacherLabelledSynthetic

    settings = dict(mode=o.teacher_mode, weight=o.teacher_weight, tolerance=o.teacher_tolerance, tries=tries)
    checkpoint = str(o.teacher) if not isinstance(o.teacher, torch.nn.Module) else "<module>"
    info["teacher"] = {"checkpoint": checkpoint, **settings}
    return TeacherLabelledSynthetic(synthetic, o.teacher, device=device, **settings)


def _genmix(real, generator, pool, label_sampler, o: StrategyOptions, num_classes, seed, device, info) -> Strategy:
    if pool is not None:
        from .pool import PoolSource

        source = PoolSource(pool, seed=seed)
    else:
        source = SyntheticSource(
            load_generator(generator, device),
            label_sampler,
            truncation_psi=o.truncation_psi,
            batch_size=o.generation_batch_size,
            device=device,
        )
    mix = GenMixd(
        keys="image",
        label_keys="label",
        alpha=o.genmix_alpha,
        partner=o.genmix_partner,
        synthetic=source,
        num_classes=num_classes,
    )
    mix.set_random_state(seed)
    info = {**info, "genmix_alpha": o.genmix_alpha, "genmix_partner": o.genmix_partner}
    return Strategy("genmix", real, mix, label_sampler, info)


def build_strategy(
    name: str,
    real_dataset: Dataset,
    num_classes: int,
    generator=None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    synthetic_pool=None,
    options: StrategyOptions | None = None,
    **kwargs,
) -> Strategy:
    """Build one of :data:`STRATEGIES` (see the module docstring).

    Args:
        real_dataset: map-style dataset of ``{"image", "label": int}`` dicts (already at the generator's resolution).
        generator: checkpoint path or Generator-like object; required by every strategy that
            :func:`needs_generator` unless a ``synthetic_pool`` is given.
        seed: seeds the synthetic stream and the batch transform.
        synthetic_pool: a pool folder (or :class:`~gemix_monai.transforms.pool.SyntheticPool`) to draw the synthetic
            items and GenMix partners from instead of running the generator (docs/mixing.md, "Synthetic pools"); it
            must come from ``generator`` (when given), this strategy's sampler and the data's contract.
        options / kwargs: :class:`StrategyOptions` (sampler, class weights, ratios, mixing, teacher); keyword
            arguments are its fields and override ``options``.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {list(STRATEGIES)}")
    unknown = sorted(set(kwargs) - set(StrategyOptions.keywords()))
    if unknown:
        raise TypeError(f"build_strategy got unknown keyword argument(s) {unknown}; see StrategyOptions")
    o = dataclasses.replace(options or StrategyOptions(), **kwargs)
    real = RealSyntheticDataset(real_dataset, None, num_classes)
    if name == "real":
        return Strategy(name, real)
    if name == "pixel_mixup":
        mix = SoftMixUpd(keys="image", label_keys="label", alpha=o.mixup_alpha, num_classes=num_classes)
        mix.set_random_state(seed)
        return Strategy(name, real, mix, info={"mixup_alpha": o.mixup_alpha})
    if generator is None and synthetic_pool is None:
        raise ValueError(
            f"strategy {name!r} needs a generator (checkpoint path or Generator object) or a synthetic pool"
        )
    label_sampler = strategy_sampler(
        name,
        real_dataset,
        num_classes,
        sampler=o.sampler,
        sampler_kwargs=o.sampler_kwargs,
        class_weights=o.class_weights,
        seed=seed,
    )
    info = {"sampler": label_sampler.params()}
    pool = _synthetic_pool(synthetic_pool, generator, label_sampler, real_dataset, num_classes)
    if pool is not None:
        info["synthetic_pool"] = pool.describe()
    if o.teacher is not None and name == "genmix":
        raise ValueError(
            "teacher labels apply to the strategies with a synthetic dataset (gemix, gemix_code, softmax_t, "
            "real+synthetic, synthetic_only), not to genmix"
        )
    if name == "genmix":
        return _genmix(real, generator, pool, label_sampler, o, num_classes, seed, device, info)
    tries = o.teacher_tries if o.teacher is not None and o.teacher_mode == "filter" else 1
    n_real = len(real_dataset)
    if name == "synthetic_only":
        n = n_real if o.num_synthetic is None else int(o.num_synthetic)
    else:
        n = int(round(o.synthetic_ratio * n_real))
    if pool is not None:
        from .pool import PoolSyntheticDataset

        synthetic = PoolSyntheticDataset(pool, n * tries, seed=seed)
    else:
        synthetic = SyntheticDataset(
            generator,
            label_sampler,
            num_images=n * tries,
            seed=seed,
            truncation_psi=o.truncation_psi,
            batch_size=o.generation_batch_size,
            device=device,
        )
    synthetic = _teacher_checked(synthetic, o, tries, device, info)
    if name == "synthetic_only":
        return Strategy(name, synthetic, None, label_sampler, info)
    return Strategy(
        name,
        RealSyntheticDataset(real_dataset, synthetic, num_classes, ratio=o.synthetic_ratio),
        None,
        label_sampler,
        {**info, "synthetic_ratio": o.synthetic_ratio},
    )
