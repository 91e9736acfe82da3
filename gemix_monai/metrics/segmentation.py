"""Dice and HD95 of segmentations, with the undefined cases counted (docs/segmentation.md).

Scores (:func:`segmentation_scores`): MONAI's ``DiceMetric`` and ``HausdorffDistanceMetric(percentile=95)``
per image and structure on binarised predictions, HD95 in pixels. Empty masks: Dice of a structure whose truth is
empty is undefined (MONAI's ``ignore_empty=True``) and excluded, counted in ``dice_excluded_empty_truth``, with the
false alarms on such images counted in ``empty_truth_false_positive``; HD95 is undefined when the truth or the
prediction is empty and such cases are excluded and counted in ``hd95_excluded_empty_truth`` /
``hd95_excluded_empty_prediction`` — a missed lesion scores Dice 0 but has no HD95. No mean ever silently drops a
NaN (:func:`summarise_scores`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from gemix_monai.utils import plain_tensor

__all__ = [
    "discretise_prediction",
    "segmentation_scores",
    "summarise_scores",
    "metric_output_transform",
    "mean_dice",
    "hd95",
]


def discretise_prediction(logits: torch.Tensor, mask_channels: int) -> torch.Tensor:
    """Binary prediction ``[B, M(+1), H, W]`` in the target's layout from logits of the same shape: ``sigmoid > 0.5``
    (``M = 1``), else the one-hot argmax of the softmax over ``[background, 1..M]``."""
    if int(mask_channels) == 1:
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


def metric_output_transform(mask_channels: int):
    """Ignite ``output_transform`` of the evaluator's metrics: ``(binary prediction, target)`` of a
    non-decollated output."""

    def transform(output: Mapping):
        return discretise_prediction(output["pred"], mask_channels), output["label"]

    return transform


def mean_dice(mask_channels: int):
    """The evaluator's ``val_dice``: MONAI's ``MeanDice`` on binarised predictions (structures with an empty truth
    excluded; the background channel only for one mask channel, i.e. sigmoid)."""
    from monai.handlers import MeanDice

    return MeanDice(include_background=int(mask_channels) == 1, output_transform=metric_output_transform(mask_channels))


def hd95(mask_channels: int):
    """The evaluator's ``val_hd95``: MONAI's ``HausdorffDistance`` at percentile 95 [pixels] on binarised
    predictions (cases with an empty side excluded)."""
    from monai.handlers import HausdorffDistance

    return HausdorffDistance(
        include_background=int(mask_channels) == 1,
        percentile=95,
        output_transform=metric_output_transform(mask_channels),
    )
