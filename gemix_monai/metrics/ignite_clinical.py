"""``ClinicalMetrics``: an Ignite metric publishing every clinical scalar under a stable name.

MONAI's ``ConfusionMatrixMetric`` pools counts over classes (its "f1 score" is micro-F1, equal to
accuracy) or returns a per-class tensor that cannot be a key metric. This metric accumulates the
confusion matrix, the calibration table and the probabilities, reduces them across processes with
``ignite.distributed`` and writes ``macro_f1``, ``fnr/<class>``, ... into ``engine.state.metrics``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce

from gemix_monai.metrics.clinical import (
    ECE_BINS,
    ClinicalResult,
    auroc,
    calibration_bins,
    check_labels,
    check_probabilities,
    confusion_matrix,
    summarize_clinical_metrics,
    validate_class_names,
)

__all__ = ["ClinicalMetrics", "AbsentClassWarning", "pred_label_from_output"]


class AbsentClassWarning(RuntimeWarning):
    """An evaluated split holds no sample of some class: that class's per-class metrics are undefined."""


INPUT_TYPES = ("logits", "probabilities")


def pred_label_from_output(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pred [B, K], label)`` from a MONAI engine output.

    Accepts a dict with ``"pred"`` and ``"label"`` (``decollate=False``), a list of such per-sample
    dicts (``decollate=True``) or a ``(pred, label)`` pair.
    """
    if isinstance(output, Mapping):
        if "pred" not in output or "label" not in output:
            raise KeyError(f"engine output must have keys 'pred' and 'label', found {sorted(output)}")
        return output["pred"], output["label"]
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], Mapping):
        preds, labels = zip(*(pred_label_from_output(o) for o in output))
        return torch.stack([torch.as_tensor(p) for p in preds]), torch.stack([torch.as_tensor(t) for t in labels])
    if isinstance(output, (list, tuple)) and len(output) == 2:
        return output[0], output[1]
    raise TypeError(f"cannot read (pred, label) from engine output of type {type(output).__name__}")


class ClinicalMetrics(Metric):
    """Accumulate predictions over an epoch and publish the clinical metrics of docs/maths.md §4.

    Args:
        num_classes: K (at least 2).
        class_names: K names used in the published keys (``sensitivity/<name>``); default ``"0"..``.
        input_type: ``"logits"`` (softmax is applied) or ``"probabilities"`` (rows must sum to 1).
        positive_class: name or index of the disease whose miss rate matters most; adds
            ``positive_fnr``, ``positive_sensitivity``, ``positive_specificity``, ``positive_auroc``.
        key_metric: which published scalar goes under the name the metric is attached with, so the
            attached name can be an engine's key metric (checkpointing, early stopping).
        n_bins: calibration bins for ECE.
        output_transform: maps ``engine.state.output`` to ``(pred [B, K], label)``; labels are class
            indices ``[B]``/``[B, 1]`` or one-hot ``[B, K]``.
        device: where the accumulators live (``idist.device()`` in distributed runs).
        split: the evaluated split's name (``"validation"``, ``"test"``) for the warning below.

    Each ``compute()`` (one per evaluation) warns once, with an :class:`AbsentClassWarning` naming the
    split and every class with no sample in it: that class's sensitivity, FNR, F1, F2 and AUROC are
    undefined (NaN, listed in ``result.undefined``), not 0. A key metric that is undefined is an error
    (a checkpoint cannot be chosen by it).

    After ``compute()``, ``self.result`` holds the full :class:`ClinicalResult` (confusion matrix,
    calibration table, which values were 0/0) for report writers.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        *,
        input_type: str = "logits",
        positive_class: str | int | None = None,
        key_metric: str = "macro_f1",
        n_bins: int = ECE_BINS,
        output_transform: Callable = pred_label_from_output,
        device: str | torch.device = "cpu",
        split: str | None = None,
    ) -> None:
        self.split = split
        self.class_names = validate_class_names(num_classes, class_names)
        if input_type not in INPUT_TYPES:
            raise ValueError(f"input_type must be one of {INPUT_TYPES}, got {input_type!r}")
        self.num_classes = num_classes
        self.input_type = input_type
        self.positive_class = positive_class
        self.key_metric = key_metric
        self.n_bins = n_bins
        self.result: ClinicalResult | None = None
        # Checks the positive class and the key metric name now rather than at the end of an epoch.
        probe = summarize_clinical_metrics(
            torch.eye(num_classes, dtype=torch.long),
            self.class_names,
            auroc_per_class=auroc(torch.arange(num_classes), torch.eye(num_classes)),
            calibration=torch.ones(n_bins, 3, dtype=torch.float64),
            positive_class=positive_class,
        )
        if key_metric not in probe.scalars:
            raise ValueError(
                f"key_metric {key_metric!r} is not a published name; choose one of {sorted(probe.scalars)}"
            )
        super().__init__(output_transform=output_transform, device=device, skip_unrolling=True)

    @reinit__is_reduced
    def reset(self) -> None:
        k = self.num_classes
        self._cm = torch.zeros(k, k, dtype=torch.long, device=self._device)
        self._bins = torch.zeros(self.n_bins, 3, dtype=torch.float64, device=self._device)
        self._labels: list[torch.Tensor] = []
        self._probs: list[torch.Tensor] = []

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        if not isinstance(output, (list, tuple)) or len(output) != 2:
            raise TypeError("ClinicalMetrics.update expects a (pred, label) pair")
        pred, label = output
        pred = torch.as_tensor(pred).detach()
        if pred.ndim != 2 or pred.shape[1] != self.num_classes:
            raise ValueError(f"pred must have shape [B, {self.num_classes}], got {tuple(pred.shape)}")
        if self.input_type == "logits":
            probs = torch.softmax(pred.to(torch.float64), dim=1)
        else:
            probs = pred
        probs = check_probabilities(probs, self.num_classes, name="pred")
        y = check_labels(torch.as_tensor(label).detach().cpu(), self.num_classes, "label")
        if y.shape[0] != probs.shape[0]:
            raise ValueError(f"pred has {probs.shape[0]} samples but label has {y.shape[0]}")
        self._cm += confusion_matrix(y, probs.argmax(dim=1), self.num_classes).to(self._device)
        self._bins += calibration_bins(y, probs, self.n_bins, self.num_classes).to(self._device)
        self._labels.append(y)
        self._probs.append(probs)

    @sync_all_reduce("_cm", "_bins")
    def compute(self) -> dict[str, float]:
        cm, bins = self._cm.cpu(), self._bins.cpu()  # summed over processes by sync_all_reduce
        k = self.num_classes
        labels = torch.cat(self._labels).cpu() if self._labels else torch.zeros(0, dtype=torch.long)
        probs = torch.cat(self._probs).cpu() if self._probs else torch.zeros(0, k, dtype=torch.float64)
        if idist.get_world_size() > 1:
            # The processes' shards may differ in length (the last batches of a DistributedSampler without
            # padding): ignite's tensor all_gather needs one shape everywhere, its object all_gather does not.
            shards = idist.all_gather((labels, probs))
            labels = torch.cat([shard[0] for shard in shards])
            probs = torch.cat([shard[1] for shard in shards])
        if int(cm.sum()) == 0:
            raise NotComputableError("ClinicalMetrics must have at least one example before it can be computed")
        self.result = summarize_clinical_metrics(
            cm,
            self.class_names,
            auroc_per_class=auroc(labels, probs, k),
            calibration=bins,
            positive_class=self.positive_class,
        )
        if self.result.absent_classes:
            where = f"the {self.split} split" if self.split else "the evaluated data"
            absent = ", ".join(repr(c) for c in self.result.absent_classes)
            warnings.warn(
                f"{where} holds no image of class {absent} (of {int(cm.sum())} images): its sensitivity, FNR, F1, "
                "F2 and AUROC are undefined, reported as null/NaN and listed under 'undefined' (not 0); "
                "macro averages follow scikit-learn (docs/maths.md §4)",
                AbsentClassWarning,
                stacklevel=2,
            )
        return dict(self.result.scalars)

    def completed(self, engine: Engine, name: str) -> None:
        """Publish every scalar under its own name and the key metric under ``name``."""
        scalars = self.compute()
        if math.isnan(scalars[self.key_metric]):
            where = f"the {self.split} split" if self.split else "the evaluated data"
            raise ValueError(
                f"key_metric {self.key_metric!r} is undefined on {where} (classes without an image there: "
                f"{list(self.result.absent_classes)}), so no checkpoint can be chosen by it; choose a key metric "
                "that is defined there, e.g. 'macro_f1'"
            )
        for key, value in scalars.items():
            engine.state.metrics[key] = value
        engine.state.metrics[name] = scalars[self.key_metric]
