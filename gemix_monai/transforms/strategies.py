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

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from gemix_monai.mixing import SoftLabelSampler, build_sampler

from .mix import GenMixd, SoftMixUpd
from .synthetic import RealSyntheticDataset, SyntheticDataset, SyntheticSource, load_generator

__all__ = ["Strategy", "STRATEGIES", "build_strategy", "strategy_sampler"]

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


def _named_class_weights(name: str, real_dataset, num_classes: int) -> list[float]:
    from gemix_monai.mixing import inverse_frequency_weights

    from .teacher import deficit_class_weights

    labels = getattr(real_dataset, "labels", None)
    if labels is None:
        labels = [
            int(torch.as_tensor(real_dataset[i]["label"]).reshape(-1).argmax())
            if torch.as_tensor(real_dataset[i]["label"]).numel() > 1
            else int(real_dataset[i]["label"])
            for i in range(len(real_dataset))
        ]
    if name == "inverse_frequency":
        return inverse_frequency_weights(labels, num_classes)
    if name == "deficit":
        return deficit_class_weights(labels, num_classes)
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


def build_strategy(
    name: str,
    real_dataset: Dataset,
    num_classes: int,
    generator=None,
    *,
    sampler: str | None = None,
    sampler_kwargs: dict | None = None,
    class_weights=None,
    synthetic_ratio: float = 2.0,
    num_synthetic: int | None = None,
    mixup_alpha: float = 0.4,
    genmix_alpha: float = 0.3,
    genmix_partner: str = "synthetic",
    seed: int = 0,
    truncation_psi: float = 1.0,
    generation_batch_size: int = 64,
    device: str | torch.device | None = None,
    teacher=None,
    teacher_mode: str = "blend",
    teacher_weight: float = 0.5,
    teacher_tolerance: float = 0.5,
    teacher_tries: int = 4,
    synthetic_pool=None,
) -> Strategy:
    """Build one of :data:`STRATEGIES` (see the module docstring).

    Args:
        real_dataset: map-style dataset of ``{"image", "label": int}`` dicts (already at the generator's resolution).
        generator: checkpoint path or Generator-like object; required by every strategy except ``real``/``pixel_mixup``.
        sampler / sampler_kwargs: override the sampler (a name in ``gemix_monai.mixing.SAMPLERS``) and its
            parameters (e.g. ``{"temperature": 0.5}`` for ``softmax_t``).
        class_weights: per-class weights for the synthetic labels: a list, ``"inverse_frequency"`` or
            ``"deficit"`` (fill the minority classes first: ``w_k ∝ max_j n_j − n_k``), from the real labels.
        synthetic_ratio: synthetic items per real item for the ``real + synthetic`` strategies (GeMix code: 2.0).
        num_synthetic: items per epoch for ``synthetic_only`` (default: as many as real items).
        mixup_alpha: Beta(alpha, alpha) of pixel mixup; genmix_alpha / genmix_partner: see :class:`GenMix`.
        seed: seeds the synthetic stream and the batch transform.
        teacher, teacher_mode, teacher_weight, teacher_tolerance, teacher_tries: label (``"blend"``) or
            filter (``"filter"``) each synthetic image by a classifier trained on the real training split only
            (:class:`~gemix_monai.transforms.teacher.TeacherLabelledSynthetic`; docs/mixing.md).
        synthetic_pool: a pool folder (or :class:`~gemix_monai.transforms.pool.SyntheticPool`) to draw the synthetic
            items and GenMix partners from instead of running the generator (docs/mixing.md, "Synthetic pools"); it
            must come from ``generator`` (when given), this strategy's sampler and the data's contract.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {list(STRATEGIES)}")
    real = RealSyntheticDataset(real_dataset, None, num_classes)
    if name == "real":
        return Strategy(name, real)
    if name == "pixel_mixup":
        mix = SoftMixUpd(keys="image", label_keys="label", alpha=mixup_alpha, num_classes=num_classes)
        mix.set_random_state(seed)
        return Strategy(name, real, mix, info={"mixup_alpha": mixup_alpha})
    if generator is None and synthetic_pool is None:
        raise ValueError(
            f"strategy {name!r} needs a generator (checkpoint path or Generator object) or a synthetic pool"
        )
    label_sampler = strategy_sampler(
        name,
        real_dataset,
        num_classes,
        sampler=sampler,
        sampler_kwargs=sampler_kwargs,
        class_weights=class_weights,
        seed=seed,
    )
    info = {"sampler": label_sampler.params()}
    pool = None
    if synthetic_pool is not None:
        from .pool import SyntheticPool

        pool = synthetic_pool if isinstance(synthetic_pool, SyntheticPool) else SyntheticPool(synthetic_pool)
        if pool.c_dim != num_classes:
            raise ValueError(f"synthetic pool {pool.folder} has {pool.c_dim} classes, num_classes is {num_classes}")
        pool.check(
            generator=generator if isinstance(generator, (str, os.PathLike)) else None,
            sampler=label_sampler.params(),
            contract=getattr(real_dataset, "contract", None),
        )
        info["synthetic_pool"] = pool.describe()
    if teacher is not None and name == "genmix":
        raise ValueError(
            "teacher labels apply to the strategies with a synthetic dataset (gemix, gemix_code, softmax_t, "
            "real+synthetic, synthetic_only), not to genmix"
        )
    tries = teacher_tries if teacher is not None and teacher_mode == "filter" else 1

    def checked(synthetic):
        if teacher is None:
            return synthetic
        from .teacher import TeacherLabelledSynthetic

        info["teacher"] = {
            "checkpoint": str(teacher) if not isinstance(teacher, torch.nn.Module) else "<module>",
            "mode": teacher_mode,
            "weight": teacher_weight,
            "tolerance": teacher_tolerance,
            "tries": tries,
        }
        return TeacherLabelledSynthetic(
            synthetic,
            teacher,
            mode=teacher_mode,
            weight=teacher_weight,
            tolerance=teacher_tolerance,
            tries=tries,
            device=device,
        )

    if name == "genmix":
        if pool is not None:
            from .pool import PoolSource

            source = PoolSource(pool, seed=seed)
        else:
            source = SyntheticSource(
                load_generator(generator, device),
                label_sampler,
                truncation_psi=truncation_psi,
                batch_size=generation_batch_size,
                device=device,
            )
        mix = GenMixd(
            keys="image",
            label_keys="label",
            alpha=genmix_alpha,
            partner=genmix_partner,
            synthetic=source,
            num_classes=num_classes,
        )
        mix.set_random_state(seed)
        return Strategy(
            name, real, mix, label_sampler, {**info, "genmix_alpha": genmix_alpha, "genmix_partner": genmix_partner}
        )
    n_real = len(real_dataset)
    if name == "synthetic_only":
        n = n_real if num_synthetic is None else int(num_synthetic)
    else:
        n = int(round(synthetic_ratio * n_real))
    if pool is not None:
        from .pool import PoolSyntheticDataset

        synthetic = checked(PoolSyntheticDataset(pool, n * tries, seed=seed))
    else:
        synthetic = checked(
            SyntheticDataset(
                generator,
                label_sampler,
                num_images=n * tries,
                seed=seed,
                truncation_psi=truncation_psi,
                batch_size=generation_batch_size,
                device=device,
            )
        )
    if name == "synthetic_only":
        return Strategy(name, synthetic, None, label_sampler, info)
    return Strategy(
        name,
        RealSyntheticDataset(real_dataset, synthetic, num_classes, ratio=synthetic_ratio),
        None,
        label_sampler,
        {**info, "synthetic_ratio": synthetic_ratio},
    )
