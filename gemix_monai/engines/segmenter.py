"""Downstream segmentation on MONAI: a 2-D U-Net trained on real, real + synthetic or mixed image–mask pairs.

Two levels, like :mod:`gemix_monai.engines.classifier`:

* ``train_segmenter(train_data, val_data, output_dir, strategy=..., ...)`` and
  ``evaluate_segmenter(network_or_checkpoint, test_data, output_dir)``: one call each.
* ``create_segmenter_trainer`` / ``create_segmenter_evaluator``: MONAI's ``SupervisedTrainer`` /
  ``SupervisedEvaluator`` wired with the handlers, for a bundle config (``bundle/configs/train_segmentation.json``).

Pairs travel as one stacked tensor (image channels, then the mask mapped to [-1, 1]:
``gemix_monai.data.masks.stack_image_mask``) so that every strategy of
:mod:`gemix_monai.transforms.strategies` applies to them unchanged: GenMix blends the stack, i.e. image *and*
mask with the same λ, and the synthetic pairs of a generator trained on ``C + M`` channels are items of the same
form. :class:`SegmentationPrepareBatch` splits the stack back into ``(image, target)`` on the device. The
strategies and the scoring rules are defined in docs/maths.md §7 and docs/segmentation.md.

Loss: MONAI's ``DiceCELoss`` — sigmoid for ``M = 1`` (binary masks), softmax over ``[background, 1..M]`` for
``M > 1`` (mutually exclusive one-hot structures). Both accept soft targets (GenMix): the sigmoid CE is
``BCEWithLogitsLoss`` on probabilities, the softmax CE is ``CrossEntropyLoss`` with class-probability targets
(MONAI passes float targets with as many channels as the logits through), and the soft Dice is
``Σ p·t / (Σ p + Σ t)``, defined for ``t`` in [0, 1].

Scores (:func:`segmentation_scores`): MONAI's ``DiceMetric`` and ``HausdorffDistanceMetric(percentile=95)``
per image and structure on binarised predictions, HD95 in pixels. Empty masks (docs/segmentation.md):
Dice of a structure whose truth is empty is undefined (MONAI's ``ignore_empty=True``) and excluded, counted in
``dice_excluded_empty_truth``, with the false alarms on such images counted in ``empty_truth_false_positive``;
HD95 is undefined when the truth or the prediction is empty and such cases are excluded and counted in
``hd95_excluded_empty_truth`` / ``hd95_excluded_empty_prediction`` — a missed lesion scores Dice 0 but has no
HD95. No mean ever silently drops a NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader
from monai.data import Dataset as MonaiDataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import HausdorffDistance, MeanDice, StatsHandler, ValidationHandler
from torch.utils.data import Dataset

from gemix_monai.data.contract import check_contract, contract_of
from gemix_monai.engines.classifier import (
    _device,
    attach_best_checkpoint,
    best_of,
    check_generator_fits,
    check_positive_int,
    training_schedule,
)
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data, plain_tensor, safe_torch_load

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

#: The strategies offered for image–mask pairs (docs/maths.md §7).
SEGMENTATION_STRATEGIES = ("real", "real+synthetic", "genmix", "gemix")
#: Classifier strategies refused for masks, and why (the error names the reason).
NOT_FOR_MASKS = {
    "pixel_mixup": "it blends two real images whose lesions sit in different places; the blended mask marks two "
    "half-weight lesions, a target no image of the data has (issue 15 offers only the generative variants)",
    "synthetic_only": "a segmenter trained without any real pair has no real anatomy to calibrate against; "
    "compare real+synthetic at a high synthetic_ratio instead",
    "gemix_code": "its label sampler only changes the class condition, which the segmenter never sees; use gemix",
    "softmax_t": "its label sampler only changes the class condition, which the segmenter never sees; use gemix",
}
#: ``build_strategy`` keyword arguments that apply to pairs (teacher labels are a classifier's and do not).
STRATEGY_KEYWORDS = (
    "synthetic_ratio",
    "genmix_alpha",
    "genmix_partner",
    "sampler",
    "sampler_kwargs",
    "class_weights",
    "truncation_psi",
    "generation_batch_size",
)
#: Synthetic pairs per real pair unless ``strategy_kwargs`` says otherwise (the classifier's default is 2.0).
DEFAULT_SYNTHETIC_RATIO = 1.0
SEGMENTER_CHECKPOINT_NAME = "model.pt"
SEGMENTER_INFO_NAME = "segmenter.json"
SEGMENTER_FORMAT = "gemix-segmenter/1"
KEY_METRIC = "val_dice"

#: name -> (MONAI class, keyword arguments). ``tiny_unet`` is the CPU budget of ``compare --task segmentation``.
SEGMENTATION_NETWORKS: dict[str, tuple[str, dict]] = {
    "tiny_unet": ("UNet", {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1}),
    "unet": ("UNet", {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2}),
    "basic_unet": ("BasicUNet", {"features": (16, 16, 32, 64, 128, 16)}),
}


# ---------------------------------------------------------------------------------------------- strategies


def check_segmentation_strategy(strategy: str) -> str:
    """``strategy`` when it is offered for masks, else a ``ValueError`` saying why not (or what exists)."""
    if strategy in SEGMENTATION_STRATEGIES:
        return strategy
    if strategy in NOT_FOR_MASKS:
        raise ValueError(
            f"strategy {strategy!r} is not offered for segmentation: {NOT_FOR_MASKS[strategy]}; "
            f"expected one of {list(SEGMENTATION_STRATEGIES)}"
        )
    raise ValueError(f"unknown segmentation strategy {strategy!r}; expected one of {list(SEGMENTATION_STRATEGIES)}")


def _item_tensor(item: Mapping, key: str, index: int, where: str) -> torch.Tensor:
    if not isinstance(item, Mapping) or key not in item:
        keys = sorted(map(str, item)) if isinstance(item, Mapping) else type(item).__name__
        hint = (
            ": segmentation needs a mask per image (a datalist with 'mask' entries, docs/segmentation.md)"
            if key == "mask"
            else ""
        )
        raise KeyError(f"{where} item {index} has no {key!r} (keys: {keys}){hint}")
    return torch.as_tensor(plain_tensor(item[key])).float()


def _check_pair(image: torch.Tensor, mask: torch.Tensor, index: int, where: str) -> None:
    if image.ndim != 3 or mask.ndim != 3 or image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"{where} item {index}: image {tuple(image.shape)} and mask {tuple(mask.shape)} must be [C, H, W] and "
            "[M, H, W] with the same H, W"
        )
    if mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)]
        raise ValueError(
            f"{where} item {index}: mask values must be 0 or 1, found {float(bad.min()):g}..{float(bad.max()):g}"
        )


class PairDataset(Dataset):
    """Real pairs as stacked items ``{"image": [C + M, H, W] in [-1, 1], "label": int}`` (``stack_image_mask``).

    ``real`` yields ``{"image": [C, H, W], "mask": [M, H, W] in {0, 1}, "label": int}``; each item is checked
    (shapes, binary mask) when read. ``class_names``, ``contract`` and ``data`` of ``real`` are passed through.
    """

    def __init__(self, real: Dataset, where: str = "train_data") -> None:
        self.real, self.where = real, where
        self.class_names = getattr(real, "class_names", None)
        self.contract = getattr(real, "contract", None)
        self.data = getattr(real, "data", None)

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, index: int) -> dict:
        from gemix_monai.data.masks import stack_image_mask

        item = self.real[index]
        image = _item_tensor(item, "image", index, self.where)
        mask = _item_tensor(item, "mask", index, self.where)
        _check_pair(image, mask, index, self.where)
        if "label" not in item:
            raise KeyError(f"{self.where} item {index} has no 'label' (the generator's class condition)")
        return {"image": stack_image_mask(image, mask), "label": item["label"]}


class BinarisedMaskGenerator:
    """A pair generator whose mask channels are binarised (``binarise_masks``) and re-stacked to {-1, +1}.

    Wraps a generator of ``C + M`` channels (the ``ConditionalGenerator`` contract); ``generate`` returns
    ``[B, C + M, R, R]`` whose last ``M`` channels are exactly -1 or +1, so ``real+synthetic``/``gemix`` train on
    binary synthetic masks and ``genmix`` blends a binary synthetic mask with a real one (docs/maths.md §7).
    """

    def __init__(self, generator, mask_channels: int) -> None:
        self.inner = generator
        self.mask_channels = int(mask_channels)
        for name in ("c_dim", "z_dim", "img_resolution", "img_channels"):
            setattr(self, name, getattr(generator, name))
        self.class_names = getattr(generator, "class_names", None)
        self.contract = getattr(generator, "contract", None)
        self.family = getattr(generator, "family", "stylegan2")

    @property
    def num_classes(self) -> int:
        return int(self.c_dim)

    @property
    def image_shape(self) -> tuple:
        return (int(self.img_channels), int(self.img_resolution), int(self.img_resolution))

    @torch.no_grad()
    def generate(self, soft_labels, seed: int | None = None, **options) -> torch.Tensor:
        from gemix_monai.data.masks import binarise_masks, split_image_mask, stack_image_mask

        stacked = self.inner.generate(soft_labels, seed=seed, **options)
        image, soft = split_image_mask(stacked, self.mask_channels)
        return stack_image_mask(image, binarise_masks(soft))


def check_pair_generator(generator, image_channels: int, mask_channels: int, where: str = "generator"):
    """The network behind ``generator`` that makes stacked pairs ``[B, C + M, R, R]``, else a ``ValueError``.

    Accepts the image view of a pair generator (``gemix_monai.generators.load_generator`` on a checkpoint trained
    with masks: ``img_channels = C``, ``mask_channels = M``, the network as ``.network``) or a raw network of
    ``C + M`` channels. A generator trained on images alone is refused, naming what the data needs.
    """
    from gemix_monai.transforms.synthetic import load_generator

    g = load_generator(generator)
    stated = getattr(g, "mask_channels", None)
    network = getattr(g, "network", None) if stated else None
    if network is not None:  # the image view of a pair generator: its network makes the stacks
        ok = int(stated) == mask_channels and int(g.img_channels) == image_channels
        ok = ok and int(getattr(network, "img_channels", -1)) == image_channels + mask_channels
        found = f"{g.img_channels} image + {stated} mask channel(s)"
    else:
        network = g
        channels = int(getattr(g, "img_channels", -1))
        ok = channels == image_channels + mask_channels and stated in (None, mask_channels)
        found = f"{channels} channel(s)" + (f" ({stated} of them mask channels)" if stated is not None else "")
    if not ok:
        raise ValueError(
            f"{where} makes {found}; the segmentation data needs image-mask pairs of {image_channels} image + "
            f"{mask_channels} mask channel(s) = {image_channels + mask_channels}: train the generator on the data "
            "with masks (gemix-monai train-gan on a datalist with masks, docs/segmentation.md)"
        )
    return network


def build_segmentation_strategy(
    name: str,
    real_dataset: Dataset,
    num_classes: int,
    generator=None,
    *,
    image_channels: int,
    mask_channels: int,
    seed: int = 0,
    device=None,
    **strategy_kwargs,
):
    """A :class:`~gemix_monai.transforms.strategies.Strategy` over stacked pairs (docs/maths.md §7).

    ``real_dataset`` yields ``{"image", "mask", "label"}``; the strategy's dataset yields stacked items (real
    ones through :class:`PairDataset`, synthetic ones from :class:`BinarisedMaskGenerator`) and its batch
    transform (``genmix``) blends whole stacks. ``strategy_kwargs``: :data:`STRATEGY_KEYWORDS` only.
    """
    from gemix_monai.transforms.strategies import build_strategy

    check_segmentation_strategy(name)
    unknown = sorted(set(strategy_kwargs) - set(STRATEGY_KEYWORDS))
    if unknown:
        raise ValueError(
            f"strategy_kwargs {unknown} do not apply to segmentation strategies; expected some of {list(STRATEGY_KEYWORDS)}"
        )
    pairs = real_dataset if isinstance(real_dataset, PairDataset) else PairDataset(real_dataset)
    if name == "real":
        if strategy_kwargs:
            raise ValueError(
                f"strategy 'real' uses no generator and takes no strategy_kwargs, got {sorted(strategy_kwargs)}"
            )
        return build_strategy("real", pairs, num_classes, seed=seed)
    if generator is None:
        raise ValueError(f"strategy {name!r} needs a generator of image-mask pairs (checkpoint path or object)")
    from gemix_monai.transforms.synthetic import load_generator

    g = check_pair_generator(load_generator(generator, device), image_channels, mask_channels)
    if name in ("real+synthetic", "gemix"):
        strategy_kwargs.setdefault("synthetic_ratio", DEFAULT_SYNTHETIC_RATIO)
    strat = build_strategy(
        name, pairs, num_classes, BinarisedMaskGenerator(g, mask_channels), seed=seed, device=device, **strategy_kwargs
    )
    strat.info["mask_channels"] = mask_channels
    return strat


# ---------------------------------------------------------------------------------------------- batches


def _target(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Loss/metric target: the mask itself (sigmoid) or ``[background, masks]`` (softmax)."""
    if mode == "sigmoid":
        return mask
    return torch.cat([(1.0 - mask.sum(dim=1, keepdim=True)).clamp_min(0.0), mask], dim=1)


def _mode(mask_channels: int) -> str:
    return "sigmoid" if int(mask_channels) == 1 else "softmax"


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
        self.mode = _mode(mask_channels)

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


# ---------------------------------------------------------------------------------------------- networks, loss


def build_segmentation_network(name: str, in_channels: int, out_channels: int) -> torch.nn.Module:
    """A 2-D MONAI network from :data:`SEGMENTATION_NETWORKS` returning logits ``[B, out_channels, H, W]``."""
    import monai.networks.nets as nets

    if name not in SEGMENTATION_NETWORKS:
        raise ValueError(f"unknown segmentation network {name!r}; expected one of {list(SEGMENTATION_NETWORKS)}")
    cls, kwargs = SEGMENTATION_NETWORKS[name]
    return getattr(nets, cls)(spatial_dims=2, in_channels=int(in_channels), out_channels=int(out_channels), **kwargs)


def build_segmentation_loss(mask_channels: int) -> torch.nn.Module:
    """``DiceCELoss``: sigmoid for ``M = 1``, softmax over ``[background, 1..M]`` otherwise (module docstring)."""
    from monai.losses import DiceCELoss

    if _mode(mask_channels) == "sigmoid":
        return DiceCELoss(sigmoid=True)
    return DiceCELoss(softmax=True, include_background=False)


def _size_multiple(network: str) -> int:
    if network not in SEGMENTATION_NETWORKS:
        return 1
    cls, kwargs = SEGMENTATION_NETWORKS[network]
    return 2 ** len(kwargs["strides"]) if cls == "UNet" else 16


# ---------------------------------------------------------------------------------------------- scores


def discretise_prediction(logits: torch.Tensor, mask_channels: int) -> torch.Tensor:
    """Binary prediction in the target's layout: ``sigmoid > 0.5`` (``M = 1``), else the one-hot argmax of the
    softmax over ``[background, 1..M]``."""
    if _mode(mask_channels) == "sigmoid":
        return (torch.sigmoid(logits.float()) > 0.5).float()
    index = logits.argmax(dim=1, keepdim=True)
    return torch.zeros_like(logits, dtype=torch.float32).scatter_(1, index, 1.0)


def segmentation_scores(prediction: torch.Tensor, truth: torch.Tensor, include_background: bool = True) -> dict:
    """Per-image and per-structure Dice and HD95 of binary masks, by MONAI's ``DiceMetric`` /
    ``HausdorffDistanceMetric(percentile=95)`` (pixels), with the undefined cases flagged.

    Args:
        prediction / truth: ``[B, M, H, W]`` in {0, 1}, same shape (``include_background=False`` drops channel 0).

    Returns:
        ``{"dice", "hd95": float64 [B, M] (NaN where undefined), "empty_truth", "empty_prediction": bool [B, M]}``.
    """
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    prediction, truth = plain_tensor(prediction).float(), plain_tensor(truth).float()
    if prediction.shape != truth.shape or prediction.ndim != 4:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and truth {tuple(truth.shape)} must both be [B, M, H, W] "
            "with the same shape"
        )
    for name, t in (("prediction", prediction), ("truth", truth)):
        if t.numel() and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must be binary (0/1); binarise it first (discretise_prediction, binarise_masks)")
    dice = DiceMetric(include_background=include_background, reduction="none", ignore_empty=True)(prediction, truth)
    hd = HausdorffDistanceMetric(include_background=include_background, percentile=95, reduction="none")
    import warnings

    with warnings.catch_warnings():  # MONAI warns per empty mask; the empties are counted and reported instead
        warnings.simplefilter("ignore")
        hd95 = hd(prediction, truth)
    start = 0 if include_background else 1
    empty_truth = truth[:, start:].flatten(2).sum(-1) == 0
    empty_pred = prediction[:, start:].flatten(2).sum(-1) == 0
    hd95 = torch.as_tensor(hd95).double()
    hd95 = torch.where(empty_truth | empty_pred | ~torch.isfinite(hd95), torch.nan, hd95)
    return {
        "dice": torch.as_tensor(dice).double(),
        "hd95": hd95,
        "empty_truth": empty_truth,
        "empty_prediction": empty_pred,
    }


def summarise_scores(scores: Mapping[str, torch.Tensor]) -> dict[str, float | int]:
    """Means over the defined cases, and how many cases each excluded (docs/segmentation.md)."""
    dice, hd95 = scores["dice"], scores["hd95"]
    empty_truth, empty_pred = scores["empty_truth"], scores["empty_prediction"]
    dice_ok, hd_ok = torch.isfinite(dice), torch.isfinite(hd95)
    return {
        "dice": float(dice[dice_ok].mean()) if bool(dice_ok.any()) else math.nan,
        "hd95": float(hd95[hd_ok].mean()) if bool(hd_ok.any()) else math.nan,
        "num_cases": int(dice.numel()),
        "dice_cases": int(dice_ok.sum()),
        "dice_excluded_empty_truth": int(empty_truth.sum()),
        "empty_truth_false_positive": int((empty_truth & ~empty_pred).sum()),
        "hd95_cases": int(hd_ok.sum()),
        "hd95_excluded_empty_truth": int(empty_truth.sum()),
        "hd95_excluded_empty_prediction": int((empty_pred & ~empty_truth).sum()),
    }


# ---------------------------------------------------------------------------------------------- factories


def metric_output_transform(mask_channels: int):
    """Ignite ``output_transform`` of the evaluator's metrics: ``(binary prediction, target)`` of a
    non-decollated output."""

    def transform(output: Mapping):
        return discretise_prediction(output["pred"], mask_channels), output["label"]

    return transform


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
    device = _device(device)
    include_bg = _mode(mask_channels) == "sigmoid"
    out = metric_output_transform(mask_channels)
    return SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=network,
        prepare_batch=SegmentationPrepareBatch(mask_channels, stacked=False),
        key_val_metric={KEY_METRIC: MeanDice(include_background=include_bg, output_transform=out)},
        additional_metrics={
            "val_hd95": HausdorffDistance(include_background=include_bg, percentile=95, output_transform=out)
        },
        val_handlers=[StatsHandler(iteration_log=False, output_transform=lambda x: None), *val_handlers],
        amp=amp and device.type == "cuda",
        decollate=False,
    )


def create_segmenter_trainer(
    network: torch.nn.Module,
    train_loader,
    mask_channels: int,
    *,
    max_epochs: int,
    strategy=None,
    num_classes: int | None = None,
    lr: float = 1e-2,
    weight_decay: float = 1e-5,
    evaluator: SupervisedEvaluator | None = None,
    val_interval: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_info: Mapping[str, Any] | None = None,
    device=None,
    amp: bool = True,
) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` with ``DiceCELoss``, AdamW and a per-iteration cosine schedule; with an
    ``evaluator`` the best network by ``val_dice`` is written atomically to ``checkpoint_path`` and
    ``segmenter.json`` beside it."""
    device = _device(device)
    check_positive_int("max_epochs", max_epochs)
    network = network.to(device)
    optimizer, handlers = training_schedule(network, None, lr, weight_decay, max_epochs, len(train_loader), strategy)
    if evaluator is not None:
        handlers.append(ValidationHandler(interval=val_interval, validator=evaluator, epoch_level=True))
        if checkpoint_path is not None:
            info = {"format": SEGMENTER_FORMAT, **dict(checkpoint_info or {})}
            attach_best_checkpoint(evaluator, network, checkpoint_path, SEGMENTER_INFO_NAME, info, KEY_METRIC)
    elif checkpoint_path is not None:
        raise ValueError("checkpoint_path needs an evaluator (the best network is chosen by validation Dice)")
    return SupervisedTrainer(
        device=device,
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=build_segmentation_loss(mask_channels),
        prepare_batch=SegmentationPrepareBatch(
            mask_channels, num_classes, strategy.batch_transform if strategy is not None else None
        ),
        train_handlers=handlers,
        amp=amp and device.type == "cuda",
        decollate=False,
    )


# ---------------------------------------------------------------------------------------------- one call


@dataclass
class SegmenterTrainingOptions:
    """The settings of :func:`train_segmenter`, checked when built.

    strategy: one of :data:`SEGMENTATION_STRATEGIES`; network: a name of :data:`SEGMENTATION_NETWORKS`;
    generator_checkpoint: a generator of ``C + M`` channels (path or object) for the synthetic strategies;
    strategy_kwargs: :data:`STRATEGY_KEYWORDS` (``synthetic_ratio`` default 1.0, ``genmix_alpha`` 0.3, ...);
    class_names / num_classes: the generator's conditioning classes (default: the training data's).
    """

    strategy: str = "real"
    network: str = "tiny_unet"
    generator_checkpoint: Any = None
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-2
    weight_decay: float = 1e-5
    seed: int = 0
    strategy_kwargs: Mapping[str, Any] | None = None
    class_names: Sequence[str] | None = None
    num_classes: int | None = None
    val_interval: int = 1
    num_workers: int = 0
    device: str | torch.device | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        check_segmentation_strategy(self.strategy)
        if self.network not in SEGMENTATION_NETWORKS:
            raise ValueError(f"unknown network {self.network!r}; expected one of {list(SEGMENTATION_NETWORKS)}")
        for name in ("epochs", "batch_size", "val_interval"):
            check_positive_int(name, getattr(self, name))
        if self.strategy != "real" and self.generator_checkpoint is None:
            raise ValueError(f"strategy {self.strategy!r} needs generator_checkpoint (a generator of image-mask pairs)")


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


def _as_dataset(data, name: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        return MonaiDataset(list(data))
    raise TypeError(f"{name} must be a Dataset or a non-empty list of {{'image', 'mask', 'label'}} dicts")


def strategy_info(strategy) -> dict:
    """A strategy's ``info`` as plain JSON values (for ``segmenter.json``)."""
    return plain_data(dict(strategy.info), "strategy info", otherwise="str")


def network_name_of(network: torch.nn.Module, name: str | None) -> str | None:
    """``name`` when ``build_segmentation_network(name, ...)`` has ``network``'s class and parameter shapes (so
    :func:`load_segmenter` can rebuild it), else ``None`` (a network of the user's own: load it yourself)."""
    if name not in SEGMENTATION_NETWORKS:
        return None
    shapes = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    first = next((v for k, v in network.state_dict().items() if v.ndim == 4), None)
    if first is None:
        return None
    try:
        out = next(v for v in reversed(list(network.state_dict().values())) if v.ndim >= 1)
        candidate = build_segmentation_network(name, int(first.shape[1]), int(out.shape[0]))
    except (StopIteration, ValueError, RuntimeError):
        return None
    same_class = type(candidate) is type(network)
    return name if same_class and shapes == {k: tuple(v.shape) for k, v in candidate.state_dict().items()} else None


def pair_channels(dataset: Dataset, name: str) -> tuple[int, int, int]:
    """``(image channels C, mask channels M, image size)`` of the first item, checked as a pair."""
    if len(dataset) == 0:
        raise ValueError(f"{name} is empty")
    item = dataset[0]
    image, mask = _item_tensor(item, "image", 0, name), _item_tensor(item, "mask", 0, name)
    _check_pair(image, mask, 0, name)
    return int(image.shape[0]), int(mask.shape[0]), int(image.shape[-1])


def train_segmenter(
    train_data, val_data, output_dir: str | os.PathLike, options: SegmenterTrainingOptions | None = None, **kwargs
) -> SegmenterTrainingResult:
    """Train a 2-D U-Net with one strategy and keep the best network by validation Dice.

    Args:
        train_data / val_data: map-style datasets (or lists) of ``{"image": [C, H, W] in [-1, 1],
            "mask": [M, H, W] in {0, 1}, "label": int}`` — ``gemix_monai.data.get_dataset`` on data with masks.
        output_dir: gets ``models/model.pt`` (best state dict, written atomically; load it with
            :func:`load_segmenter`) and ``models/segmenter.json`` (network, channels, strategy, the data contract,
            best ``val_dice`` and epoch, the validation history).
        options / kwargs: :class:`SegmenterTrainingOptions` (keyword arguments override its fields).
    """
    from monai.utils import set_determinism

    o = dataclasses.replace(options, **kwargs) if options is not None else SegmenterTrainingOptions(**kwargs)
    out = Path(output_dir)
    device = _device(o.device)
    set_determinism(seed=o.seed)
    train_ds, val_ds = _as_dataset(train_data, "train_data"), _as_dataset(val_data, "val_data")
    c, m, size = pair_channels(train_ds, "train_data")
    vc, vm, _ = pair_channels(val_ds, "val_data")
    if (vc, vm) != (c, m):
        raise ValueError(
            f"val_data has {vc} image + {vm} mask channel(s), train_data {c} + {m}: they must come from one contract"
        )
    multiple = _size_multiple(o.network)
    if size % multiple:
        raise ValueError(f"network {o.network!r} needs an image size divisible by {multiple}, got {size}")
    names = o.class_names or getattr(train_ds, "class_names", None)
    num_classes = o.num_classes or (len(names) if names else None)
    if num_classes is None:
        raise ValueError("num_classes (or class_names) is required: the generator is conditioned on the class label")
    data_contract = contract_of(train_ds)
    if o.generator_checkpoint is not None and o.strategy != "real" and names:
        check_generator_fits(o.generator_checkpoint, list(names), data_contract)
    strat = build_segmentation_strategy(
        o.strategy,
        train_ds,
        int(num_classes),
        o.generator_checkpoint if o.strategy != "real" else None,
        image_channels=c,
        mask_channels=m,
        seed=o.seed,
        device=device if o.strategy != "real" else None,
        **dict(o.strategy_kwargs or {}),
    )
    train_loader = DataLoader(
        strat.dataset,
        batch_size=o.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(o.seed),
        num_workers=o.num_workers,
        drop_last=len(strat.dataset) > o.batch_size,
    )
    val_loader = DataLoader(val_ds, batch_size=o.batch_size, shuffle=False, num_workers=o.num_workers)
    mode = _mode(m)
    net = build_segmentation_network(o.network, c, m if mode == "sigmoid" else m + 1).to(device)
    info = {
        "format": SEGMENTER_FORMAT,
        "network": o.network,
        "in_channels": c,
        "mask_channels": m,
        "out_channels": m if mode == "sigmoid" else m + 1,
        "mode": mode,
        "image_size": size,
        "class_names": list(names) if names else None,
        "strategy": o.strategy,
        "strategy_info": strategy_info(strat),
        "seed": o.seed,
        "epochs": o.epochs,
    }
    if data_contract is not None:
        info["contract"] = data_contract.to_dict()
    evaluator = create_segmenter_evaluator(net, val_loader, m, device=device, amp=o.amp)
    history: list[dict[str, float]] = []
    trainer_ref: dict[str, Engine] = {}

    def record(engine: Engine) -> None:
        epoch = trainer_ref["t"].state.epoch if "t" in trainer_ref else engine.state.epoch
        history.append({"epoch": float(epoch), **{k: float(v) for k, v in engine.state.metrics.items()}})

    evaluator.add_event_handler(Events.COMPLETED, record)
    checkpoint = out / "models" / SEGMENTER_CHECKPOINT_NAME
    trainer = create_segmenter_trainer(
        net,
        train_loader,
        m,
        max_epochs=o.epochs,
        strategy=strat,
        num_classes=int(num_classes),
        lr=o.lr,
        weight_decay=o.weight_decay,
        evaluator=evaluator,
        val_interval=o.val_interval,
        checkpoint_path=checkpoint,
        checkpoint_info=info,
        device=device,
        amp=o.amp,
    )
    trainer_ref["t"] = trainer
    trainer.run()
    best, best_epoch = best_of(evaluator)
    info_path = checkpoint.with_name(SEGMENTER_INFO_NAME)
    if info_path.is_file():  # the validation history beside the best epoch's description
        stored = json.loads(info_path.read_text(encoding="utf-8"))
        atomic_write_json(info_path, {**stored, "history": history})
    return SegmenterTrainingResult(out, checkpoint, best, best_epoch, len(strat.dataset), dict(strat.info), history)


# ---------------------------------------------------------------------------------------------- evaluation


def load_segmenter(checkpoint: str | os.PathLike, device=None) -> tuple[torch.nn.Module, dict]:
    """``(network in eval mode, segmenter.json)`` from a ``model.pt`` written by :func:`train_segmenter`."""
    path = Path(checkpoint)
    info_path = path.with_name(SEGMENTER_INFO_NAME)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter checkpoint not found: {path}")
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: a segmenter checkpoint is described by segmenter.json beside it"
        )
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("format") != SEGMENTER_FORMAT:
        raise ValueError(f"{info_path}: format {info.get('format')!r}, expected {SEGMENTER_FORMAT!r}")
    net = build_segmentation_network(info["network"], info["in_channels"], info["out_channels"])
    state = safe_torch_load(path, map_location="cpu")
    if isinstance(state, Mapping) and "model" in state and not any(k.endswith(".weight") for k in state):
        state = state["model"]
    net.load_state_dict(state)
    return net.to(_device(device)).eval(), info


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
    device = _device(device)
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
        test_data.dataset if isinstance(test_data, torch.utils.data.DataLoader) else _as_dataset(test_data, "test_data")
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
    include_bg = _mode(mask_channels) == "sigmoid"
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
