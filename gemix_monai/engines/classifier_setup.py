"""What a classifier run sets up before it trains, for :func:`gemix_monai.engines.classifier.train_classifier` and
the bundle's ``train.json`` alike: the strategy (with the generator only where the strategy reads one), the batch
preparation (:class:`StrategyPrepareBatch`), the class-weighted sampler, the checks of classes and generator, the
``classifier.json`` description, and the batches of the feature t-SNE. One home for each, so the Python API and the
bundle cannot drift apart (docs/design.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.data import DataLoader
from torch.utils.data import WeightedRandomSampler

from gemix_monai.data.contract import check_class_names, check_contract, contract_of
from gemix_monai.mixing import labels_of, to_soft_label
from gemix_monai.mixing.samplers import inverse_frequency_weights
from gemix_monai.networks.classifiers import CLASSIFIER_FORMAT, network_definition, network_name_of
from gemix_monai.transforms.strategies import STRATEGIES, build_strategy, needs_generator
from gemix_monai.utils import plain_tensor

__all__ = [
    "STRATEGY_NAMES",
    "SourceItems",
    "TrainingData",
    "source_items",
    "declared_class_names",
    "training_data",
    "StrategyPrepareBatch",
    "eval_prepare_batch",
    "unwrap",
    "class_balanced_weights",
    "strategy_generator",
    "strategy_options",
    "training_strategy",
    "class_weighted_sampler",
    "check_num_classes",
    "check_generator_fits",
    "check_strategy",
    "check_training_setup",
    "classifier_info",
    "strategy_feature_sources",
]

logger = logging.getLogger(__name__)

#: The strategy names, in the order of :data:`gemix_monai.transforms.strategies.STRATEGIES` (their one source).
STRATEGY_NAMES = tuple(STRATEGIES)


# ---------------------------------------------------------------------------------------------- the data given


class SourceItems(list):
    """train.json's default ``train#dataset#data``: the items of ``train#source``, which they carry as ``source``.

    MONAI Label's ``BundleTrainTask`` replaces ``train#dataset#data`` with its datastore's items; :func:`training_data`
    tells the two apart by this type, so the configured source is never built (nor its preprocessing used) when the
    data comes from elsewhere."""

    def __init__(self, source) -> None:
        super().__init__(source.data)
        self.source = source


def source_items(source) -> SourceItems:
    """The items of a dataset of :func:`gemix_monai.data.get_dataset`, marked as its own (:class:`SourceItems`)."""
    return SourceItems(source)


@dataclass(frozen=True)
class TrainingData:
    """What a classifier run takes from the data it is given: classes, contract and the preprocessing to apply
    (which maps class-name labels to their indices)."""

    data: list
    class_names: list
    contract: Any
    transform: Callable


def declared_class_names(checkpoint, bundle_root) -> list[str] | None:
    """The classes a bundle declares, for data labelled by class index: those of its model (``classifier.json``
    beside ``checkpoint``) when it has one, else ``configs/metadata.json``'s output ``channel_def``; ``None`` when
    neither exists."""
    from gemix_monai.engines.inference import declared_format
    from gemix_monai.networks.classifiers import read_classifier_info

    names = read_classifier_info(checkpoint).get("class_names") if checkpoint is not None else None
    if names:
        return list(names)
    return declared_format(bundle_root).get("class_names")


def training_data(
    items,
    *,
    class_names: Sequence[str] | None = None,
    index_class_names: Sequence[str] | None = None,
    image_size: int = 32,
    channels: int = 1,
    hu_window="auto",
    intensity="auto",
    validate: str = "full",
    on_duplicate: str = "error",
):
    """train.json's ``train#data``: the classes, contract and preprocessing of the items the classifier trains on.

    ``items`` of the configured source (:class:`SourceItems`, the default) give that source itself. Items given in
    its place — MONAI Label's ``BundleTrainTask`` sets ``train#dataset#data`` to its datastore's
    ``{"image", "label"}`` items — are described from themselves: the classes are ``class_names`` (train.json's
    ``data_class_names``) when given, else the labels' own names, sorted; labels that are class indices index
    ``index_class_names`` (the classes the bundle declares, :func:`declared_class_names`: its model's, else its
    metadata's), else become ``class_0``, ``class_1``, ... with a warning; the contract is decided from the files as for a
    datalist (:func:`gemix_monai.data.get_dataset`, every image checked), and the preprocessing maps a name label to
    its index. The run's ``classifier.json`` then names the datastore's classes, not the default source's.
    """
    from gemix_monai.data import get_dataset
    from gemix_monai.data.preprocessing import CheckLabeld, DataCompose

    if isinstance(items, SourceItems):
        return items.source
    items = [dict(it) for it in items]
    if not items:
        raise ValueError("train#dataset#data is empty: no item to train on")
    labels = [it.get("label") for it in items]
    named = [lab for lab in labels if isinstance(lab, str)]
    if class_names is not None:
        names = list(class_names)
    elif named:
        if len(named) != len(labels):
            raise ValueError("train#dataset#data mixes class-name and class-index labels; give one kind")
        names = sorted(set(named))
    else:
        k = max(int(lab) for lab in labels) + 1
        if index_class_names is not None and k <= len(index_class_names):
            names = list(index_class_names)
        elif index_class_names is not None:
            raise ValueError(
                f"train#dataset#data has class index {k - 1}; the bundle declares {len(index_class_names)} classes "
                f"{list(index_class_names)}: give the data's class names as data_class_names"
            )
        else:
            names = [f"class_{i}" for i in range(k)]
            logger.warning("train#dataset#data labels are class indices without names: classes named %s", names)
    check = CheckLabeld("image", class_names=names)
    indexed = [{**it, "label": check({"label": it["label"]})["label"]} for it in items]
    dataset = get_dataset(
        {"class_names": names, "training": indexed},
        split="training",
        image_size=image_size,
        channels=channels,
        hu_window=hu_window,
        intensity=intensity,
        validate=validate,
        on_duplicate=on_duplicate,
    )
    return TrainingData(
        data=indexed,
        class_names=list(dataset.class_names),
        contract=dataset.contract,
        transform=DataCompose([check, *dataset.transform.transforms]),
    )


# ---------------------------------------------------------------------------------------------- batches


class StrategyPrepareBatch:
    """MONAI ``prepare_batch``: move a collated batch to the device, apply the strategy's batch transform.

    Returns ``(image [B, C, H, W], soft label [B, K])``. Integer labels become one-hot; soft labels
    pass through. ``batch_transform`` (e.g. ``SoftMixUpd``, ``GenMixd``) sees ``{"image", "label"}``
    on the device, so a generator-backed transform can draw its partners there.
    """

    def __init__(
        self,
        num_classes: int,
        batch_transform: Callable[[dict], dict] | None = None,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        self.num_classes = int(num_classes)
        self.batch_transform = batch_transform
        self.image_key, self.label_key = image_key, label_key

    def __call__(self, batchdata: Mapping, device=None, non_blocking: bool = False, **kwargs):
        if not isinstance(batchdata, Mapping):
            raise TypeError(
                f"expected a dict batch with {self.image_key!r} and {self.label_key!r}, got {type(batchdata).__name__}"
            )
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise KeyError(f"batch has no key {key!r} (keys: {sorted(map(str, batchdata))})")
        image = plain_tensor(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs).float()
        label = torch.as_tensor(to_soft_label(plain_tensor(batchdata[self.label_key]), self.num_classes))
        label = label.to(device=device, non_blocking=non_blocking).float()
        if label.ndim != 2 or label.shape[0] != image.shape[0]:
            raise ValueError(
                f"labels of a batch of {image.shape[0]} images must become [B, {self.num_classes}], got {tuple(label.shape)}"
            )
        if self.batch_transform is not None:
            out = self.batch_transform({self.image_key: image, self.label_key: label})
            image, label = plain_tensor(out[self.image_key]).float(), plain_tensor(out[self.label_key]).float()
        return image, label


def eval_prepare_batch(batchdata: Mapping, device=None, non_blocking: bool = False, **kwargs):
    """Evaluation batches: images to the device, labels (class indices or one-hot) kept as given."""
    if not isinstance(batchdata, Mapping) or "image" not in batchdata or "label" not in batchdata:
        keys = sorted(map(str, batchdata)) if isinstance(batchdata, Mapping) else type(batchdata).__name__
        raise KeyError(f"evaluation batches must be dicts with 'image' and 'label', got {keys}")
    image = plain_tensor(batchdata["image"]).to(device=device, non_blocking=non_blocking, **kwargs).float()
    return image, plain_tensor(batchdata["label"]).to(device=device, non_blocking=non_blocking)


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The network inside a ``DataParallel`` / ``DistributedDataParallel`` wrapper (else itself)."""
    return (
        network.module
        if isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel))
        else network
    )


def class_balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class weights ``[K]`` (float64): ``N / (K * n_k)`` (scikit-learn's "balanced" weights), 0 for an absent
    class: :func:`gemix_monai.mixing.samplers.inverse_frequency_weights` as a tensor.

    Sampling items with these weights draws every present class equally often in expectation.
    """
    return torch.tensor(inverse_frequency_weights(torch.as_tensor(labels), num_classes), dtype=torch.float64)


def strategy_generator(strategy: str, generator, synthetic_pool=None) -> Any:
    """The generator a strategy reads: ``generator`` for the synthetic strategies, ``None`` for those that
    need none (:func:`~gemix_monai.transforms.strategies.needs_generator`: ``real``, ``pixel_mixup``), so a
    missing ``generator.pt`` does not matter to them. With a ``synthetic_pool`` a generator *path* that does not
    exist is ``None`` too (the pool records its generator)."""
    if not needs_generator(strategy):
        return None
    if synthetic_pool is not None and isinstance(generator, (str, os.PathLike)) and not os.path.exists(generator):
        return None
    return generator


def strategy_options(
    strategy: str,
    strategy_kwargs: Mapping[str, Any] | None,
    real_dataset,
    num_classes: int,
    class_weighted_sampling: bool = False,
) -> dict:
    """``build_strategy`` keyword arguments: ``strategy_kwargs`` plus, with ``class_weighted_sampling`` and a
    synthetic strategy, inverse-frequency ``class_weights`` for the synthetic labels."""
    kwargs = dict(strategy_kwargs or {})
    if class_weighted_sampling and needs_generator(strategy):
        kwargs.setdefault("class_weights", inverse_frequency_weights(labels_of(real_dataset), num_classes))
    return kwargs


def training_strategy(
    strategy: str,
    real_dataset,
    num_classes: int,
    *,
    generator=None,
    synthetic_pool=None,
    seed: int = 0,
    device=None,
    strategy_kwargs: Mapping[str, Any] | None = None,
    class_weighted_sampling: bool = False,
    class_names: Sequence[str] | None = None,
    contract=None,
):
    """The classifier's :class:`~gemix_monai.transforms.strategies.Strategy` (train.json's ``train#strategy``):
    ``generator`` (a path or object) and ``synthetic_pool`` are read only by the strategies that need them
    (:func:`strategy_generator`); with ``class_names`` the generator must share the data's classes and
    ``contract`` (:func:`check_generator_fits`); ``class_weighted_sampling`` adds inverse-frequency class weights
    to the synthetic labels (:func:`strategy_options`)."""
    used = strategy_generator(strategy, generator, synthetic_pool)
    if used is not None and class_names is not None:
        check_generator_fits(used, class_names, contract)
    return build_strategy(
        strategy,
        real_dataset,
        num_classes,
        generator=used,
        synthetic_pool=strategy_generator(strategy, synthetic_pool),
        seed=seed,
        device=device,
        **strategy_options(strategy, strategy_kwargs, real_dataset, num_classes, class_weighted_sampling),
    )


def class_weighted_sampler(strategy, real_dataset, num_classes: int, seed: int = 0, *, enabled: bool = True):
    """A ``WeightedRandomSampler`` over ``strategy.dataset`` drawing real items ~ 1/class frequency (synthetic
    items weigh 1), or ``None`` when not ``enabled`` or for ``synthetic_only``."""
    if not enabled or strategy.name == "synthetic_only":
        return None
    real_labels = torch.tensor(labels_of(real_dataset), dtype=torch.long)
    per_class = class_balanced_weights(real_labels, num_classes)
    item_w = torch.ones(len(strategy.dataset), dtype=torch.float64)  # synthetic items keep weight 1
    item_w[: len(real_labels)] = per_class[real_labels]
    return WeightedRandomSampler(
        item_w, num_samples=len(strategy.dataset), replacement=True, generator=torch.Generator().manual_seed(seed)
    )


def check_num_classes(num_classes, class_names: Sequence[str], where: str = "the training data") -> int:
    """``num_classes`` as an int that matches ``class_names`` (a ``ValueError`` naming both otherwise)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got num_classes={num_classes!r}")
    if len(class_names) != num_classes:
        raise ValueError(
            f"num_classes={num_classes} does not match the {len(class_names)} classes of {where} "
            f"({list(class_names)}); leave num_classes out to take it from the data"
        )
    return num_classes


def check_generator_fits(generator, class_names: Sequence[str], data_contract) -> None:
    """A generator used for synthesis must share the training data's classes (in order) and preprocessing."""
    from gemix_monai.generators.protocol import load_generator

    where = f"generator {generator}" if isinstance(generator, (str, os.PathLike)) else "the generator"
    g = load_generator(generator) if isinstance(generator, (str, os.PathLike)) else generator
    g_names = getattr(g, "class_names", None)
    if g_names is not None:
        check_class_names(g_names, class_names, where, "the training data")
    stored = contract_of(g)  # a generator carries its contract as a dict attribute
    if stored is not None and data_contract is not None:
        check_contract(stored, data_contract, where, "the training data")


def check_strategy(strategy: str) -> str:
    """``strategy`` when it is one of :data:`STRATEGY_NAMES`, else a ``ValueError`` naming it and the choices."""
    if strategy not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(STRATEGY_NAMES)}")
    return strategy


def check_training_setup(
    strategy: str, num_classes, class_names: Sequence[str], generator=None, data_contract=None, synthetic_pool=None
) -> None:
    """What a classifier's bundle run checks before building anything (train.json ``initialize``): a known
    ``strategy``, ``num_classes`` matching ``class_names`` and, for a strategy that reads it, a generator fitting
    the data's classes and contract."""
    check_strategy(strategy)
    check_num_classes(num_classes, class_names)
    used = strategy_generator(strategy, generator, synthetic_pool)
    if used is not None:
        check_generator_fits(used, class_names, data_contract)


def classifier_info(
    network: torch.nn.Module,
    network_name: str | None,
    in_channels: int,
    num_classes: int,
    class_names: Sequence[str],
    strategy: str,
    seed: int,
    contract=None,
) -> dict:
    """The description of a trained classifier that ``classifier.json`` starts from: ``network`` (``network_name``
    when that name rebuilds ``network``, else ``None``: :func:`~gemix_monai.networks.classifiers.network_name_of`),
    ``network_def`` (for any other network, e.g. a bundle's ``network_def`` override: the literal definition that
    rebuilds it, :func:`~gemix_monai.networks.classifiers.network_definition`, else ``None``), ``network_class``,
    channels, classes, strategy, seed and the training data's ``contract`` (docs/data.md). evaluate.json,
    inference.json and ``load_classifier`` rebuild the network from it, so an override is given once, at training."""
    inner = unwrap(network)
    name = network_name_of(inner, network_name)
    info = {
        "format": CLASSIFIER_FORMAT,
        "network": name,
        "network_def": None if name is not None else network_definition(inner),
        "network_class": f"{type(inner).__module__}.{type(inner).__qualname__}",
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "class_names": list(class_names),
        "strategy": strategy,
        "seed": seed,
    }
    stored = contract_of(contract) if contract is not None else None
    if stored is not None:
        # classes + preprocessing of the training data: evaluate/classify apply and check it (docs/data.md)
        info["contract"] = stored.to_dict()
    return info


def strategy_feature_sources(strat, train_loader, val_loader, num_classes: int, max_points: int) -> dict[str, Iterable]:
    """Batches for the feature t-SNE: ``real`` (validation images), ``synthetic`` (the strategy's generated
    items, when it has any) and ``mixed`` (training batches after its mixing transform, when it has one)."""
    sources: dict[str, Iterable] = {"real": val_loader}
    ds = strat.dataset
    num_real = getattr(ds, "num_real", None)
    if num_real is not None and len(ds) > num_real:
        idx = list(range(num_real, min(len(ds), num_real + max_points)))
        sources["synthetic"] = DataLoader(torch.utils.data.Subset(ds, idx), batch_size=64)
    elif strat.name == "synthetic_only":
        sources["synthetic"] = DataLoader(
            torch.utils.data.Subset(ds, list(range(min(len(ds), max_points)))), batch_size=64
        )
    if strat.batch_transform is not None:
        prepare = StrategyPrepareBatch(num_classes, strat.batch_transform)

        def mixed():
            for batch in train_loader:
                yield prepare(batch)

        sources["mixed"] = _Reiterable(mixed)
    return sources


class _Reiterable:
    def __init__(self, make: Callable[[], Iterable]) -> None:
        self.make = make

    def __iter__(self):
        return iter(self.make())
