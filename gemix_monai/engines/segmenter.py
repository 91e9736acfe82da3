"""Downstream segmentation on MONAI: a 2-D U-Net trained on real, real + synthetic or mixed image–mask pairs.

Two levels, like :mod:`gemix_monai.engines.classifier`, on the same training skeleton
(:mod:`gemix_monai.engines.supervised`):

* ``train_segmenter(train_data, val_data, output_dir, strategy=..., run=RunSettings(...))`` and
  ``evaluate_segmenter(network_or_checkpoint, test_data, output_dir)``: one call each.
* ``create_segmenter_trainer`` / ``create_segmenter_evaluator``: MONAI's ``SupervisedTrainer`` /
  ``SupervisedEvaluator`` wired with the handlers, for a bundle config (``bundle/configs/train_segmentation.json``).

What is segmentation-specific lives one floor down: the pairs and strategies in
:mod:`gemix_monai.transforms.segmentation`, the networks, loss and checkpoint loading in
:mod:`gemix_monai.networks.segmenters`, Dice/HD95 in :mod:`gemix_monai.metrics.segmentation` (their names stay
importable from here). :class:`SegmentationPrepareBatch` splits the stacked pairs back into ``(image, target)`` on
the device. The strategies and the scoring rules are defined in docs/maths.md §7 and docs/segmentation.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import StatsHandler

from gemix_monai.data.contract import check_contract, contract_of
from gemix_monai.engines.classifier_setup import check_generator_fits
from gemix_monai.engines.run import RunSettings, merge_run_keywords
from gemix_monai.engines.supervised import (
    SupervisedTrainerOptions,
    as_dataset,
    check_positive_int,
    create_supervised_trainer,
    fit,
)
from gemix_monai.handlers.classifier import ValidationHistory
from gemix_monai.metrics.segmentation import (  # noqa: F401  (deprecated import path of these names)
    discretise_prediction,
    hd95,
    mean_dice,
    metric_output_transform,
    segmentation_scores,
    summarise_scores,
)
from gemix_monai.networks.segmenters import (  # noqa: F401  (deprecated import path of these names)
    SEGMENTATION_NETWORKS,
    SEGMENTER_CHECKPOINT_NAME,
    SEGMENTER_FORMAT,
    SEGMENTER_INFO_NAME,
    build_segmentation_loss,
    build_segmentation_network,
    load_segmenter,
    network_name_of,
    segmentation_mode,
    segmentation_out_channels,
    size_multiple,
)
from gemix_monai.transforms.segmentation import (  # noqa: F401  (deprecated import path of these names)
    DEFAULT_SYNTHETIC_RATIO,
    NOT_FOR_MASKS,
    SEGMENTATION_STRATEGIES,
    STRATEGY_KEYWORDS,
    BinarisedMaskGenerator,
    PairDataset,
    build_segmentation_strategy,
    check_pair_generator,
    check_segmentation_strategy,
    pair_channels,
)
from gemix_monai.transforms.strategies import needs_generator
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data, plain_tensor, resolve_device

__all__ = [
    "SEGMENTATION_STRATEGIES",
    "SEGMENTATION_NETWORKS",
    "SEGMENTER_CHECKPOINT_NAME",
    "SEGMENTER_INFO_NAME",
    "PairDataset",
    "BinarisedMaskGenerator",
    "SegmentationPrepareBatch",
    "SegmenterTrainingOptions",
    "SegmenterTrainingResult",
    "check_segmentation_strategy",
    "pair_channels",
    "metric_output_transform",
    "network_name_of",
    "strategy_info",
    "segmenter_info",
    "segmentation_training_strategy",
    "check_segmentation_setup",
    "check_pair_generator",
    "build_segmentation_network",
    "build_segmentation_loss",
    "build_segmentation_strategy",
    "discretise_prediction",
    "segmentation_scores",
    "summarise_scores",
    "create_segmenter_evaluator",
    "create_segmenter_trainer",
    "train_segmenter",
    "load_segmenter",
    "evaluate_segmenter",
]

KEY_METRIC = "val_dice"


def _target(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Loss/metric target: the mask itself (sigmoid) or ``[background, masks]`` (softmax)."""
    if mode == "sigmoid":
        return mask
    return torch.cat([(1.0 - mask.sum(dim=1, keepdim=True)).clamp_min(0.0), mask], dim=1)


class SegmentationPrepareBatch:
    """MONAI ``prepare_batch``: ``(image [B, C, H, W], target)`` from a batch on the device.

    Training batches are stacks ``{"image": [B, C + M, H, W], "label"}`` (a strategy's dataset): the strategy's
    batch transform (GenMix) runs on the stack first, then it is split by ``split_image_mask`` — real and
    binarised synthetic masks come out in {0, 1}, GenMix masks soft. Evaluation batches
    (``stacked=False``) are ``{"image": [B, C, ...], "mask": [B, M, ...]}``. ``target`` is the mask (``M = 1``,
    sigmoid) or ``[background, mask_1..M]`` (softmax).
    """

    def __init__(
        self,
        mask_channels: int,
        num_classes: int | None = None,
        batch_transform: Callable[[dict], dict] | None = None,
        stacked: bool = True,
    ) -> None:
        if isinstance(mask_channels, bool) or not isinstance(mask_channels, int) or mask_channels < 1:
            raise ValueError(f"mask_channels must be a positive integer, got {mask_channels!r}")
        self.mask_channels, self.num_classes = mask_channels, num_classes
        self.batch_transform, self.stacked = batch_transform, stacked
        self.mode = segmentation_mode(mask_channels)

    def __call__(self, batchdata: Mapping, device=None, non_blocking: bool = False, **kwargs):
        from gemix_monai.data.masks import split_image_mask

        need = ("image", "label") if self.stacked else ("image", "mask")
        if not isinstance(batchdata, Mapping) or any(k not in batchdata for k in need):
            keys = sorted(map(str, batchdata)) if isinstance(batchdata, Mapping) else type(batchdata).__name__
            raise KeyError(f"segmentation batches must be dicts with {list(need)}, got {keys}")
        image = plain_tensor(batchdata["image"]).to(device=device, non_blocking=non_blocking).float()
        if self.stacked:
            if self.batch_transform is not None:
                from gemix_monai.mixing import to_soft_label

                label = torch.as_tensor(to_soft_label(plain_tensor(batchdata["label"]), self.num_classes)).float()
                out = self.batch_transform({"image": image, "label": label.to(image.device)})
                image = plain_tensor(out["image"]).float()
            image, mask = split_image_mask(image, self.mask_channels)
        else:
            mask = plain_tensor(batchdata["mask"]).to(device=device, non_blocking=non_blocking).float()
            if mask.shape[1] != self.mask_channels or mask.shape[2:] != image.shape[2:]:
                raise ValueError(
                    f"mask batch {tuple(mask.shape)} does not fit images {tuple(image.shape)} with "
                    f"{self.mask_channels} mask channel(s)"
                )
        return image, _target(mask, self.mode)


def create_segmenter_evaluator(
    network: torch.nn.Module,
    val_loader,
    mask_channels: int,
    *,
    device=None,
    amp: bool = False,
    val_handlers: Sequence = (),
) -> SupervisedEvaluator:
    """A ``SupervisedEvaluator`` publishing ``val_dice`` (key metric, MONAI ``MeanDice``; structures with an
    empty truth excluded) and ``val_hd95`` (MONAI ``HausdorffDistance``, percentile 95, pixels; cases with an
    empty side excluded). Batches: ``{"image", "mask"}``."""
    device = resolve_device(device)
    return SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=network,
        prepare_batch=SegmentationPrepareBatch(mask_channels, stacked=False),
        key_val_metric={KEY_METRIC: mean_dice(mask_channels)},
        additional_metrics={"val_hd95": hd95(mask_channels)},
        val_handlers=[StatsHandler(iteration_log=False, output_transform=lambda x: None), *val_handlers],
        amp=amp and device.type == "cuda",
        decollate=False,
    )


def create_segmenter_trainer(
    network: torch.nn.Module,
    train_loader,
    mask_channels: int,
    options: SupervisedTrainerOptions | None = None,
    *,
    num_classes: int | None = None,
    **kwargs,
) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` with ``DiceCELoss``, AdamW and a per-iteration cosine schedule (the template of
    :mod:`gemix_monai.engines.supervised`); with an ``evaluator`` the best network by ``val_dice`` is written
    atomically to ``checkpoint_path`` and ``segmenter.json`` beside it. ``options`` / ``kwargs``:
    :class:`~gemix_monai.engines.supervised.SupervisedTrainerOptions` fields (``max_epochs``, ``strategy``,
    ``lr`` default 1e-2, ``weight_decay`` default 1e-5, ``evaluator``, ``val_interval``, ``checkpoint_path``,
    ``checkpoint_info``, ``device``, ``amp``); ``num_classes``: the strategy's label space (its batch transform's)."""
    kwargs = {"lr": 1e-2, "weight_decay": 1e-5, **kwargs}
    o = dataclasses.replace(options, **kwargs) if options is not None else SupervisedTrainerOptions(**kwargs)
    if o.evaluator is None and o.checkpoint_path is not None:
        raise ValueError("checkpoint_path needs an evaluator (the best network is chosen by validation Dice)")
    o = dataclasses.replace(o, checkpoint_info={"format": SEGMENTER_FORMAT, **dict(o.checkpoint_info or {})})
    return create_supervised_trainer(
        network,
        train_loader,
        o,
        prepare_batch=lambda batch_transform: SegmentationPrepareBatch(mask_channels, num_classes, batch_transform),
        default_loss=lambda: build_segmentation_loss(mask_channels),
        info_name=SEGMENTER_INFO_NAME,
        key_metric=KEY_METRIC,
    )


@dataclass
class SegmenterTrainingOptions:
    """The settings of :func:`train_segmenter`, checked when built.

    strategy: one of :data:`SEGMENTATION_STRATEGIES`; network: a name of :data:`SEGMENTATION_NETWORKS`;
    generator_checkpoint: a generator of ``C + M`` channels (path or object) for the synthetic strategies;
    strategy_kwargs: :data:`STRATEGY_KEYWORDS` (``synthetic_ratio`` default 1.0, ``genmix_alpha`` 0.3, ...);
    class_names / num_classes: the generator's conditioning classes (default: the training data's).
    ``seed``, ``val_interval``, ``num_workers`` and ``device`` are deprecated here (``None``: not given): they are
    run settings, given as ``run=RunSettings(...)``.
    """

    strategy: str = "real"
    network: str = "tiny_unet"
    generator_checkpoint: Any = None
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 1e-5
    strategy_kwargs: Mapping[str, Any] | None = None
    class_names: Sequence[str] | None = None
    num_classes: int | None = None
    amp: bool = True
    seed: int | None = None
    val_interval: int | None = None
    num_workers: int | None = None
    device: str | torch.device | None = None

    def __post_init__(self) -> None:
        check_segmentation_strategy(self.strategy)
        if self.network not in SEGMENTATION_NETWORKS:
            raise ValueError(f"unknown network {self.network!r}; expected one of {list(SEGMENTATION_NETWORKS)}")
        for name in ("epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if needs_generator(self.strategy) and self.generator_checkpoint is None:
            raise ValueError(f"strategy {self.strategy!r} needs generator_checkpoint (a generator of image-mask pairs)")

    def run_keywords(self) -> dict:
        """The deprecated run settings given here, as :class:`RunSettings` keywords."""
        names = ("seed", "val_interval", "num_workers", "device")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


@dataclass
class SegmenterTrainingResult:
    """What ``train_segmenter`` produced."""

    output_dir: Path
    checkpoint: Path
    best_dice: float | None
    best_epoch: int | None
    num_train_items: int = 0
    strategy_info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def strategy_info(strategy) -> dict:
    """A strategy's ``info`` as plain JSON values (for ``segmenter.json``)."""
    return plain_data(dict(strategy.info), "strategy info", otherwise="str")


def segmenter_info(
    network: torch.nn.Module,
    network_name: str | None,
    *,
    in_channels: int,
    mask_channels: int,
    image_size: int,
    class_names: Sequence[str] | None,
    strategy,
    seed: int,
    contract=None,
) -> dict:
    """What ``segmenter.json`` starts from (train_segmentation.json's info and :func:`train_segmenter`'s):
    ``network`` (``network_name`` when it rebuilds ``network``, else ``None``), ``network_class``, channels,
    ``mode``, size, classes, the strategy (its name and ``strategy_info``), seed and the data's ``contract``."""
    info = {
        "format": SEGMENTER_FORMAT,
        "network": network_name_of(network, network_name),
        "network_class": f"{type(network).__module__}.{type(network).__qualname__}",
        "in_channels": int(in_channels),
        "mask_channels": int(mask_channels),
        "out_channels": segmentation_out_channels(mask_channels),
        "mode": segmentation_mode(mask_channels),
        "image_size": int(image_size),
        "class_names": list(class_names) if class_names else None,
        "strategy": strategy.name if hasattr(strategy, "dataset") else strategy,
        "seed": seed,
    }
    if hasattr(strategy, "dataset"):
        info["strategy_info"] = strategy_info(strategy)
    stored = contract_of(contract) if contract is not None else None
    if stored is not None:
        info["contract"] = stored.to_dict()
    return info


def segmentation_training_strategy(
    strategy: str,
    real_dataset,
    num_classes: int,
    generator=None,
    *,
    mask_channels: int,
    image_channels: int = 1,
    seed: int = 0,
    device=None,
    strategy_kwargs: Mapping[str, Any] | None = None,
):
    """The segmenter's strategy (train_segmentation.json's ``train#strategy``): ``generator`` (a path or object) is
    read only by the synthetic strategies, ``strategy_kwargs`` are those of :func:`build_segmentation_strategy`."""
    synthetic = needs_generator(strategy)
    return build_segmentation_strategy(
        strategy,
        real_dataset,
        int(num_classes),
        generator if synthetic else None,
        image_channels=image_channels,
        mask_channels=mask_channels,
        seed=seed,
        device=device if synthetic else None,
        **dict(strategy_kwargs or {}),
    )


def check_segmentation_setup(strategy: str, class_names: Sequence[str] | None, generator=None, contract=None) -> None:
    """What a segmenter's bundle run checks first (train_segmentation.json ``initialize``): a strategy offered for
    masks and, for the synthetic ones, a generator of the data's classes and contract."""
    check_segmentation_strategy(strategy)
    if needs_generator(strategy) and generator is not None and class_names:
        check_generator_fits(generator, list(class_names), contract_of(contract))


def _segmenter_data(train_data, val_data, o: SegmenterTrainingOptions):
    """``(train, val, C, M, size, class names, K)`` of the pairs, checked against each other and the network."""
    train_ds, _ = as_dataset(train_data, "train_data")
    val_ds, _ = as_dataset(val_data, "val_data")
    c, m, size = pair_channels(train_ds, "train_data")
    vc, vm, _ = pair_channels(val_ds, "val_data")
    if (vc, vm) != (c, m):
        raise ValueError(
            f"val_data has {vc} image + {vm} mask channel(s), train_data {c} + {m}: they must come from one contract"
        )
    multiple = size_multiple(o.network)
    if size % multiple:
        raise ValueError(f"network {o.network!r} needs an image size divisible by {multiple}, got {size}")
    names = o.class_names or getattr(train_ds, "class_names", None)
    num_classes = o.num_classes or (len(names) if names else None)
    if num_classes is None:
        raise ValueError("num_classes (or class_names) is required: the generator is conditioned on the class label")
    return train_ds, val_ds, c, m, size, names, int(num_classes)


def train_segmenter(
    train_data,
    val_data,
    output_dir: str | os.PathLike | None = None,
    options: SegmenterTrainingOptions | None = None,
    *,
    run: RunSettings | None = None,
    **kwargs,
) -> SegmenterTrainingResult:
    """Train a 2-D U-Net with one strategy and keep the best network by validation Dice.

    Args:
        train_data / val_data: map-style datasets (or lists) of ``{"image": [C, H, W] in [-1, 1],
            "mask": [M, H, W] in {0, 1}, "label": int}`` — ``gemix_monai.data.get_dataset`` on data with masks.
        output_dir: gets ``models/model.pt`` (best state dict, written atomically; load it with
            :func:`load_segmenter`) and ``models/segmenter.json`` (network, channels, strategy, the data contract,
            best ``val_dice`` and epoch, the validation history); or ``run.output_dir``.
        options / kwargs: :class:`SegmenterTrainingOptions` (keyword arguments override its fields).
        run: :class:`~gemix_monai.engines.run.RunSettings` (seed, device, workers, ``val_interval``); ``resume``
            must be ``None`` (a segmenter trains from scratch).
    """
    from monai.utils import set_determinism

    o = dataclasses.replace(options, **kwargs) if options is not None else SegmenterTrainingOptions(**kwargs)
    run = merge_run_keywords(run, o.run_keywords(), "train_segmenter", output_dir=output_dir)
    if run.resume is not None:
        raise ValueError(f"train_segmenter trains from scratch: run.resume must be None, got {run.resume!r}")
    out, device = run.folder("train_segmenter"), run.torch_device
    set_determinism(seed=run.seed)
    train_ds, val_ds, c, m, size, names, num_classes = _segmenter_data(train_data, val_data, o)
    data_contract = contract_of(train_ds)
    synthetic = needs_generator(o.strategy)
    if synthetic and names:
        check_generator_fits(o.generator_checkpoint, list(names), data_contract)
    strat = segmentation_training_strategy(
        o.strategy,
        train_ds,
        num_classes,
        o.generator_checkpoint,
        image_channels=c,
        mask_channels=m,
        seed=run.seed,
        device=device,
        strategy_kwargs=o.strategy_kwargs,
    )
    train_loader = DataLoader(
        strat.dataset,
        batch_size=o.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(run.seed),
        num_workers=run.num_workers,
        drop_last=len(strat.dataset) > o.batch_size,
    )
    val_loader = DataLoader(val_ds, batch_size=o.batch_size, shuffle=False, num_workers=run.num_workers)
    net = build_segmentation_network(o.network, c, segmentation_out_channels(m)).to(device)
    info = segmenter_info(
        net,
        o.network,
        in_channels=c,
        mask_channels=m,
        image_size=size,
        class_names=names,
        strategy=strat,
        seed=run.seed,
        contract=data_contract,
    )
    info.update(network=o.network, epochs=o.epochs)
    info.pop("network_class")
    history = ValidationHistory()
    evaluator = create_segmenter_evaluator(net, val_loader, m, device=device, amp=o.amp, val_handlers=[history])
    checkpoint = out / "models" / SEGMENTER_CHECKPOINT_NAME
    trainer = create_segmenter_trainer(
        net,
        train_loader,
        m,
        max_epochs=o.epochs,
        strategy=strat,
        num_classes=num_classes,
        lr=o.lr,
        weight_decay=o.weight_decay,
        evaluator=evaluator,
        val_interval=run.val_interval,
        checkpoint_path=checkpoint,
        checkpoint_info=info,
        device=device,
        amp=o.amp,
    )
    fitted = fit(trainer, evaluator, history)
    info_path = checkpoint.with_name(SEGMENTER_INFO_NAME)
    if info_path.is_file():  # the validation history beside the best epoch's description
        stored = json.loads(info_path.read_text(encoding="utf-8"))
        atomic_write_json(info_path, {**stored, "history": fitted.history})
    return SegmenterTrainingResult(
        out, checkpoint, fitted.best_metric, fitted.best_epoch, len(strat.dataset), dict(strat.info), fitted.history
    )


@torch.no_grad()
def evaluate_segmenter(
    network_or_checkpoint,
    test_data,
    output_dir: str | os.PathLike | None = None,
    *,
    mask_channels: int | None = None,
    batch_size: int = 32,
    device=None,
) -> dict:
    """Test Dice and HD95 (and the excluded counts, :func:`summarise_scores`) of a segmenter on ``test_data``.

    ``network_or_checkpoint``: a ``model.pt`` path (with ``segmenter.json``; its stored contract must match the
    data's) or a module (then give ``mask_channels``). With ``output_dir``, ``metrics.json`` and ``per_image.csv``
    (one row per image and structure, NaN for an undefined score) are written there.
    """
    device = resolve_device(device)
    info: dict = {}
    if isinstance(network_or_checkpoint, torch.nn.Module):
        if mask_channels is None:
            raise ValueError("evaluate_segmenter(module, ...) needs mask_channels")
        net = network_or_checkpoint.to(device).eval()
    else:
        net, info = load_segmenter(network_or_checkpoint, device)
        if mask_channels is not None and mask_channels != info["mask_channels"]:
            raise ValueError(
                f"mask_channels={mask_channels} but {network_or_checkpoint} was trained on {info['mask_channels']}"
            )
        mask_channels = int(info["mask_channels"])
    ds = (
        test_data.dataset
        if isinstance(test_data, torch.utils.data.DataLoader)
        else as_dataset(test_data, "test_data")[0]
    )
    stored = contract_of(info.get("contract")) if info.get("contract") else None
    found = contract_of(ds)
    if stored is not None and found is not None:
        check_contract(stored, found, f"segmenter {network_or_checkpoint}", "the evaluation data")
    loader = (
        test_data
        if isinstance(test_data, torch.utils.data.DataLoader)
        else DataLoader(ds, batch_size=batch_size, shuffle=False)
    )
    prepare = SegmentationPrepareBatch(mask_channels, stacked=False)
    include_bg = segmentation_mode(mask_channels) == "sigmoid"
    parts: list[dict] = []
    for batch in loader:
        image, target = prepare(batch, device)
        logits = net(image)
        if logits.shape != target.shape:
            raise ValueError(f"network output {tuple(logits.shape)} does not match the target {tuple(target.shape)}")
        parts.append(segmentation_scores(discretise_prediction(logits, mask_channels).cpu(), target.cpu(), include_bg))
    if not parts:
        raise ValueError("test_data is empty")
    scores = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    summary = summarise_scores(scores)
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            out / "metrics.json",
            {"metrics": summary, "hd95_unit": "pixels", "mask_channels": mask_channels, "num_images": len(ds)},
        )
        rows = ["image,structure,dice,hd95,empty_truth,empty_prediction"]
        for i in range(scores["dice"].shape[0]):
            for s in range(scores["dice"].shape[1]):
                rows.append(
                    f"{i},{s + 1},{float(scores['dice'][i, s])!r},{float(scores['hd95'][i, s])!r},"
                    f"{int(scores['empty_truth'][i, s])},{int(scores['empty_prediction'][i, s])}"
                )
        atomic_write_bytes(out / "per_image.csv", ("\n".join(rows) + "\n").encode(), durable=False)
    return summary
