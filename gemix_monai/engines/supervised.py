"""The one training skeleton of the supervised networks (classifier and segmenter), on MONAI's engines.

Both trainers are the same MONAI ``SupervisedTrainer``: AdamW with a cosine learning-rate schedule to 0 stepped
per iteration, the strategy's fresh synthetic draws at each epoch start (:class:`StrategySetEpoch`), validation
every ``val_interval`` epochs by a ``SupervisedEvaluator`` whose key metric keeps the best network (atomic
``model.pt`` + its description) and, for the classifier, stops early. They differ only in the batch preparation,
the loss, the evaluator's metrics and the description file, which the callers give: ``engines/classifier.py`` and
``engines/segmenter.py`` fill in this template (docs/design.md, "One training skeleton").
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.data import Dataset as MonaiDataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler
from torch.utils.data import Dataset

from gemix_monai.handlers.classifier import (
    KeyMetricEarlyStopping,
    StrategySetEpoch,
    ValidationHistory,
    attach_best_checkpoint,
    best_of,
    loss_of,
)
from gemix_monai.utils import resolve_device

__all__ = [
    "SupervisedTrainerOptions",
    "FitResult",
    "check_positive_int",
    "training_schedule",
    "create_supervised_trainer",
    "fit",
    "as_dataset",
]


def check_positive_int(name: str, value) -> None:
    """Refuse ``value`` unless it is a positive ``int`` (not a ``bool``); the error names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def training_schedule(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    lr: float,
    weight_decay: float,
    max_epochs: int,
    iters: int,
    strategy=None,
) -> tuple[torch.optim.Optimizer, list]:
    """``(optimizer, trainer handlers)``: ``optimizer`` or AdamW(``lr``, ``weight_decay``), a cosine schedule to 0
    stepped per iteration over ``max_epochs`` epochs of ``iters`` iterations, the training loss logged and, with a
    ``strategy``, its new draws at each epoch start."""
    if optimizer is None:
        optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    if iters < 1:
        raise ValueError("the training loader is empty (no batch per epoch); check the dataset size and drop_last")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs * iters)
    handlers: list = [
        LrScheduleHandler(scheduler, print_lr=False, epoch_level=False),
        StatsHandler(tag_name="train_loss", output_transform=loss_of),
    ]
    if strategy is not None:
        handlers.append(StrategySetEpoch(strategy))
    return optimizer, handlers


@dataclass
class SupervisedTrainerOptions:
    """The settings of a supervised trainer (``create_classifier_trainer``, ``create_segmenter_trainer``).

    ``max_epochs`` [epochs]; ``lr``/``weight_decay`` of the default AdamW (or a ready ``optimizer``);
    ``loss_function`` (default: the task's); ``strategy`` (its batch transform is used and ``set_epoch`` called each
    epoch) or a bare ``batch_transform``; ``evaluator`` run every ``val_interval`` epochs, whose key metric keeps the
    best state dict at ``checkpoint_path`` (described by ``checkpoint_info``) and drives
    ``early_stopping_patience`` (validations without improvement); ``amp``: mixed precision, used on CUDA only;
    ``tensorboard_dir``: the training loss per iteration; ``epoch_length``: iterations per epoch (default the
    loader's length); ``train_handlers``: more handlers.
    """

    max_epochs: int
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: torch.optim.Optimizer | None = None
    loss_function: Callable | None = None
    batch_transform: Callable[[dict], dict] | None = None
    strategy: Any = None
    evaluator: SupervisedEvaluator | None = None
    val_interval: int = 1
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_info: Mapping[str, Any] | None = None
    early_stopping_patience: int | None = None
    device: str | torch.device | None = None
    amp: bool = True
    tensorboard_dir: str | os.PathLike | None = None
    epoch_length: int | None = None
    train_handlers: Sequence = ()

    def __post_init__(self) -> None:
        check_positive_int("max_epochs", self.max_epochs)
        if self.strategy is not None and self.batch_transform is not None:
            raise ValueError("give strategy or batch_transform, not both: the strategy carries its own batch transform")


def create_supervised_trainer(
    network: torch.nn.Module,
    train_loader: Iterable,
    options: SupervisedTrainerOptions,
    *,
    prepare_batch: Callable[[Callable | None], Callable],
    default_loss: Callable[[], Callable],
    info_name: str,
    key_metric: str | None = None,
) -> SupervisedTrainer:
    """The ``SupervisedTrainer`` of the template (module docstring).

    ``prepare_batch(batch_transform)`` builds the task's MONAI ``prepare_batch`` around the strategy's batch
    transform; ``default_loss()`` the loss when ``options.loss_function`` is ``None``; ``info_name`` is the file
    describing the best checkpoint (``classifier.json``, ``segmenter.json``); ``key_metric`` defaults to the
    evaluator's.
    """
    o = options
    device = resolve_device(o.device)
    batch_transform = o.strategy.batch_transform if o.strategy is not None else o.batch_transform
    network = network.to(device)
    iters = o.epoch_length if o.epoch_length is not None else len(train_loader)
    optimizer, handlers = training_schedule(network, o.optimizer, o.lr, o.weight_decay, o.max_epochs, iters, o.strategy)
    if o.tensorboard_dir is not None:
        handlers.append(
            TensorBoardStatsHandler(log_dir=str(o.tensorboard_dir), tag_name="train_loss", output_transform=loss_of)
        )
    if o.evaluator is not None:
        handlers.append(ValidationHandler(interval=o.val_interval, validator=o.evaluator, epoch_level=True))
        key = key_metric or o.evaluator.state.key_metric_name
        if o.checkpoint_path is not None:
            attach_best_checkpoint(o.evaluator, network, o.checkpoint_path, info_name, o.checkpoint_info or {}, key)
        if o.early_stopping_patience is not None:
            handlers.append(KeyMetricEarlyStopping(o.evaluator, o.early_stopping_patience, key))
    elif o.checkpoint_path is not None or o.early_stopping_patience is not None:
        raise ValueError("checkpoint_path and early_stopping_patience need an evaluator (they follow its key metric)")
    return SupervisedTrainer(
        device=device,
        max_epochs=o.max_epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=o.loss_function or default_loss(),
        prepare_batch=prepare_batch(batch_transform),
        epoch_length=o.epoch_length,
        train_handlers=handlers + list(o.train_handlers),
        amp=o.amp and device.type == "cuda",
        decollate=False,
    )


@dataclass
class FitResult:
    """What :func:`fit` returns: the best key metric and its epoch (``None`` before any validation) and every
    validation's scalars by trainer epoch."""

    best_metric: float | None
    best_epoch: int | None
    history: list[dict[str, float]]


def fit(trainer: SupervisedTrainer, evaluator: SupervisedEvaluator, history: ValidationHistory) -> FitResult:
    """Run ``trainer`` (which validates with ``evaluator``, whose :class:`ValidationHistory` is ``history``)."""
    history.trainer = trainer
    trainer.run()
    best, best_epoch = best_of(evaluator)
    return FitResult(best, best_epoch, history.rows)


def _read_datalist(path: Path, section: str, transform) -> tuple[MonaiDataset, list[str] | None]:
    from monai.data import load_decathlon_datalist

    if not path.is_file():
        raise FileNotFoundError(f"datalist not found: {path}")
    if transform is None:
        raise ValueError(f"a datalist ({path}) holds file paths: pass transform= to load and preprocess its images")
    with open(path, encoding="utf-8") as f:
        class_names = json.load(f).get("class_names")
    items = load_decathlon_datalist(path, is_segmentation=False, data_list_key=section, base_dir=path.parent)
    return MonaiDataset(items, transform), class_names


def as_dataset(data, name: str, *, transform=None, section: str | None = None) -> tuple[Dataset, list[str] | None]:
    """``(map-style dataset, class names or None)`` from a ``Dataset``, a non-empty list of item dicts, or (with a
    ``section``) a datalist JSON path read with ``transform``; errors name ``name`` and what it accepts."""
    if section is not None and isinstance(data, (str, os.PathLike)):
        return _read_datalist(Path(data), section, transform)
    if isinstance(data, Dataset):
        if transform is not None:
            raise ValueError(f"{name} is already a Dataset: apply transform= when building it, not here")
        names = getattr(data, "class_names", None)  # gemix_monai.data.get_dataset carries them
        return data, list(names) if names is not None else None
    if isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        return MonaiDataset(list(data), transform), None
    also = " or a datalist JSON path" if section is not None else ""
    raise TypeError(f"{name} must be a Dataset or a non-empty list of item dicts{also}, got {type(data).__name__}")
