"""Classifier training and evaluation for every augmentation strategy, on MONAI engines.

Two levels:

* ``train_classifier(train_data, val_data, output_dir, strategy=..., ...)`` and
  ``evaluate_classifier(network_or_checkpoint, test_data, output_dir, ...)``: one call each.
* ``create_classifier_trainer`` / ``create_classifier_evaluator``: factories returning MONAI's
  ``SupervisedTrainer`` / ``SupervisedEvaluator`` wired with the handlers below, for a bundle config.

The ``strategy`` switch is :func:`gemix_monai.transforms.strategies.build_strategy`: each strategy is
one training dataset plus at most one batch transform (written in ``gemix_monai.transforms``), and
this module only feeds them to the engine. Training uses soft-target cross-entropy, AdamW with a
per-iteration cosine schedule, AMP on CUDA; validation publishes :class:`ClinicalMetrics`; the best
network (by ``key_metric``) is written atomically to ``<output_dir>/models/model.pt`` as a plain
state dict (``torch.load(..., weights_only=True)``), described by ``models/classifier.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, DistributedSampler
from monai.data import Dataset as MonaiDataset
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import EarlyStopHandler, LrScheduleHandler, StatsHandler, TensorBoardStatsHandler, ValidationHandler
from torch.utils.data import Dataset, WeightedRandomSampler

from gemix_monai.data.contract import check_class_names, check_contract, contract_of
from gemix_monai.engines.classifier_networks import (
    FEATURE_LAYERS,
    SoftTargetCrossEntropy,
    build_classifier_network,
)
from gemix_monai.handlers.checkpoint import AtomicCheckpointSaver
from gemix_monai.handlers.report import ClassificationReportWriter
from gemix_monai.handlers.tsne import FeatureTSNEPlotter
from gemix_monai.metrics.clinical import ClinicalResult, metric_higher_is_better, validate_class_names
from gemix_monai.metrics.ignite_clinical import ClinicalMetrics
from gemix_monai.mixing import to_soft_label
from gemix_monai.transforms.strategies import STRATEGIES
from gemix_monai.utils import atomic_write_json, plain_data, plain_tensor, safe_torch_load

__all__ = [
    "STRATEGY_NAMES",
    "CHECKPOINT_NAME",
    "CHECKPOINT_INFO_NAME",
    "StrategyPrepareBatch",
    "StrategySetEpoch",
    "KeyMetricEarlyStopping",
    "ClassifierInfoWriter",
    "ClassificationCSVWriter",
    "key_metric_cmp_fn",
    "check_positive_int",
    "training_schedule",
    "attach_best_checkpoint",
    "best_of",
    "eval_prepare_batch",
    "strategy_generator",
    "strategy_options",
    "class_weighted_sampler",
    "check_num_classes",
    "check_generator_fits",
    "check_classify_inputs",
    "write_predictions_csv",
    "TrainingResult",
    "ClassifierTrainingOptions",
    "class_balanced_weights",
    "create_classifier_evaluator",
    "create_classifier_trainer",
    "train_classifier",
    "evaluate_classifier",
    "load_classifier",
    "read_classifier_info",
    "classifier_transform",
    "strategy_feature_sources",
    "find_images",
    "classify_folder",
]

logger = logging.getLogger(__name__)

#: The strategy names, in the order of :data:`gemix_monai.transforms.strategies.STRATEGIES` (their one source).
STRATEGY_NAMES = tuple(STRATEGIES)
CHECKPOINT_NAME = "model.pt"
CHECKPOINT_INFO_NAME = "classifier.json"


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


# ---------------------------------------------------------------------------------------------- handlers


def _loss_of(output: Mapping) -> float:
    """The training loss from a (non-decollated) trainer output, for the stats handlers."""
    return float(output["loss"].detach())


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return (
        network.module
        if isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel))
        else network
    )


def key_metric_cmp_fn(key_metric: str) -> Callable[[float, float], bool]:
    """``metric_cmp_fn`` of a MONAI evaluator for ``key_metric``: ``>`` for higher-is-better metrics, ``<`` for
    ``fnr/*``, ``positive_fnr`` and ``ece``. MONAI starts ``state.best_metric`` at -1, which a lower-is-better
    comparison would never beat: the first validation (``best == -1``) always counts as an improvement."""
    if metric_higher_is_better(key_metric):
        return lambda current, best: current > best
    return lambda current, best: best == -1 or current < best


class StrategySetEpoch:
    """New synthetic draws each epoch (``Strategy.set_epoch``), before the epoch's batches are read."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.strategy.set_epoch(engine.state.epoch)


class KeyMetricEarlyStopping:
    """Trainer handler: MONAI's ``EarlyStopHandler`` on the evaluator's key metric, direction included.

    Attached to the trainer (``train#handlers``), it attaches an ``EarlyStopHandler(trainer=<this trainer>)`` to
    ``evaluator``: in a bundle config the evaluator's handlers cannot reference the trainer (the trainer refers
    to the evaluator through ``ValidationHandler``, and references may not form a cycle).
    """

    def __init__(self, evaluator: Engine, patience: int, key_metric: str | None = None, min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"early_stopping_patience must be a positive integer, got {patience!r}")
        self.evaluator, self.patience, self.key_metric, self.min_delta = evaluator, patience, key_metric, min_delta
        self.handler: EarlyStopHandler | None = None

    def attach(self, trainer: Engine) -> None:
        key = self.key_metric or self.evaluator.state.key_metric_name
        sign = 1.0 if metric_higher_is_better(key) else -1.0
        self.handler = EarlyStopHandler(
            patience=self.patience,
            min_delta=self.min_delta,
            trainer=trainer,
            epoch_level=True,
            score_function=lambda engine: sign * float(engine.state.metrics[key]),
        )
        self.handler.attach(self.evaluator)


class ClassifierInfoWriter:
    """Evaluator handler writing ``classifier.json`` beside the checkpoint that ``CheckpointSaver`` writes.

    ``info`` describes the network (``network``, ``in_channels``, ``num_classes``, ``class_names``, ``strategy``,
    the data ``contract``...); after each validation whose key metric improved (MONAI's ``state.best_metric`` /
    ``best_metric_epoch``), and after the first one, the file is rewritten atomically with ``key_metric``,
    ``best_metric``, ``best_epoch`` and ``checkpoint`` added. ``load_classifier``, ``classify_folder``, evaluate.json
    and inference.json read it. Attach it to the evaluator after the ``CheckpointSaver`` so both describe one epoch.
    """

    def __init__(
        self, path: str | os.PathLike, info: Mapping[str, Any], checkpoint_name: str = CHECKPOINT_NAME
    ) -> None:
        self.path = Path(path)
        self.info = {"format": "gemix-classifier/1", **plain_data(dict(info), "info")}
        self.checkpoint_name = checkpoint_name
        self.written_epoch: int | None = None

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_COMPLETED):
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        state = engine.state
        best_epoch = getattr(state, "best_metric_epoch", -1)
        if self.written_epoch is not None and best_epoch != state.epoch:
            return
        improved = best_epoch == state.epoch and best_epoch != -1
        key = getattr(state, "key_metric_name", None)
        self.written_epoch = int(state.epoch)
        atomic_write_json(
            self.path,
            {
                **self.info,
                "key_metric": key,
                "best_metric": float(state.best_metric) if improved else None,
                "best_epoch": int(best_epoch) if improved else None,
                "checkpoint": self.checkpoint_name,
            },
        )


# ---------------------------------------------------------------------------------------------- factories


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    """``(optimizer, trainer handlers)`` of the classifier and segmenter trainers: ``optimizer`` or
    AdamW(``lr``, ``weight_decay``), a cosine schedule to 0 stepped per iteration over ``max_epochs`` epochs of
    ``iters`` iterations, the training loss logged and, with a ``strategy``, its new draws at each epoch start."""
    if optimizer is None:
        optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=weight_decay)
    if iters < 1:
        raise ValueError("the training loader is empty (no batch per epoch); check the dataset size and drop_last")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs * iters)
    handlers: list = [
        LrScheduleHandler(scheduler, print_lr=False, epoch_level=False),
        StatsHandler(tag_name="train_loss", output_transform=_loss_of),
    ]
    if strategy is not None:
        handlers.append(StrategySetEpoch(strategy))
    return optimizer, handlers


def attach_best_checkpoint(
    evaluator: Engine,
    network: torch.nn.Module,
    checkpoint_path: str | os.PathLike,
    info_name: str,
    info: Mapping[str, Any],
    key_metric: str,
) -> None:
    """Keep the best network by ``key_metric``: MONAI's CheckpointSaver writes it atomically to ``checkpoint_path``
    (see gemix_monai.handlers.checkpoint) and :class:`ClassifierInfoWriter` the description ``info`` beside it, as
    ``info_name``, both on ``evaluator`` so that they describe one epoch."""
    checkpoint_path = Path(checkpoint_path)
    AtomicCheckpointSaver(
        str(checkpoint_path.parent),
        {"model": network},
        save_key_metric=True,
        key_metric_name=key_metric,
        key_metric_filename=checkpoint_path.name,
        key_metric_negative_sign=not metric_higher_is_better(key_metric),
    ).attach(evaluator)
    ClassifierInfoWriter(checkpoint_path.with_name(info_name), dict(info), checkpoint_name=checkpoint_path.name).attach(
        evaluator
    )


def best_of(evaluator: Engine) -> tuple[float | None, int | None]:
    """``(best key metric, its epoch)`` of an evaluator's run, ``(None, None)`` before any validation."""
    best_epoch = evaluator.state.best_metric_epoch if evaluator.state.best_metric_epoch != -1 else None
    return (float(evaluator.state.best_metric) if best_epoch is not None else None), best_epoch


def create_classifier_evaluator(
    network: torch.nn.Module,
    val_loader: Iterable,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    *,
    key_metric: str = "macro_f1",
    positive_class: str | int | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    report_dir: str | os.PathLike | None = None,
    per_epoch_reports: bool = False,
    tensorboard_dir: str | os.PathLike | None = None,
    global_epoch_transform: Callable[[int], int] | None = None,
    val_handlers: Sequence = (),
    split: str = "validation",
) -> SupervisedEvaluator:
    """A ``SupervisedEvaluator`` publishing :class:`ClinicalMetrics` (``key_metric`` is its key metric).

    ``report_dir``: write the report files after each run (``epoch_<n>`` subfolders with
    ``per_epoch_reports``). ``tensorboard_dir``: every published scalar per (trainer) epoch. ``split``: the
    evaluated split's name, for the warning about a class without an image there (docs/maths.md §4).
    The metric object is available as ``evaluator.clinical_metrics`` (its ``result`` after a run).
    """
    device = _device(device)
    names = validate_class_names(num_classes, class_names)
    # Accumulators live where the collective ops run: the process's device in a distributed run (NCCL
    # reduces CUDA tensors only), the CPU otherwise.
    metric_device = device if idist.get_world_size() > 1 else "cpu"
    metric = ClinicalMetrics(
        num_classes, names, key_metric=key_metric, positive_class=positive_class, device=metric_device, split=split
    )
    handlers: list = [StatsHandler(iteration_log=False, output_transform=lambda x: None)]
    if tensorboard_dir is not None:
        handlers.append(
            TensorBoardStatsHandler(
                log_dir=str(tensorboard_dir),
                iteration_log=False,
                output_transform=lambda x: None,
                global_epoch_transform=global_epoch_transform or (lambda e: e),
            )
        )
    if report_dir is not None:
        handlers.append(
            ClassificationReportWriter(
                metric, report_dir, per_epoch=per_epoch_reports, epoch_transform=global_epoch_transform
            )
        )
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=network,
        prepare_batch=eval_prepare_batch,
        key_val_metric={key_metric: metric},
        metric_cmp_fn=key_metric_cmp_fn(key_metric),
        val_handlers=handlers + list(val_handlers),
        amp=amp and device.type == "cuda",
        decollate=False,
    )
    evaluator.clinical_metrics = metric
    return evaluator


def create_classifier_trainer(
    network: torch.nn.Module,
    train_loader: Iterable,
    num_classes: int,
    *,
    max_epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: torch.optim.Optimizer | None = None,
    loss_function: Callable | None = None,
    batch_transform: Callable[[dict], dict] | None = None,
    strategy=None,
    evaluator: SupervisedEvaluator | None = None,
    val_interval: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_info: Mapping[str, Any] | None = None,
    early_stopping_patience: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
    tensorboard_dir: str | os.PathLike | None = None,
    epoch_length: int | None = None,
    train_handlers: Sequence = (),
) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` for soft-label classification.

    Args:
        network: returns logits ``[B, K]``; moved to ``device``.
        train_loader: yields dicts ``{"image", "label"}`` (labels: indices or ``[K]`` soft labels).
        batch_transform: applied to each batch on the device (a strategy's ``SoftMixUpd``/``GenMixd``).
        strategy: a :class:`~gemix_monai.transforms.strategies.Strategy`; its batch transform is used and
            ``set_epoch`` is called at each epoch start (give this or ``batch_transform``).
        optimizer / loss_function: default AdamW(lr, weight_decay) and :class:`SoftTargetCrossEntropy`.
            The learning rate follows a cosine schedule to 0 over ``max_epochs`` (per iteration).
        evaluator: run every ``val_interval`` epochs; its key metric drives ``checkpoint_path`` (best
            state dict) and ``early_stopping_patience`` (validations without improvement).
        amp: mixed precision, used on CUDA only.
    """
    device = _device(device)
    if strategy is not None and batch_transform is not None:
        raise ValueError("give strategy or batch_transform, not both: the strategy carries its own batch transform")
    if strategy is not None:
        batch_transform = strategy.batch_transform
    check_positive_int("max_epochs", max_epochs)
    network = network.to(device)
    iters = epoch_length if epoch_length is not None else len(train_loader)
    optimizer, handlers = training_schedule(network, optimizer, lr, weight_decay, max_epochs, iters, strategy)
    if tensorboard_dir is not None:
        handlers.append(
            TensorBoardStatsHandler(log_dir=str(tensorboard_dir), tag_name="train_loss", output_transform=_loss_of)
        )
    if evaluator is not None:
        handlers.append(ValidationHandler(interval=val_interval, validator=evaluator, epoch_level=True))
        key = evaluator.state.key_metric_name
        if checkpoint_path is not None:
            attach_best_checkpoint(
                evaluator, network, checkpoint_path, CHECKPOINT_INFO_NAME, checkpoint_info or {}, key
            )
        if early_stopping_patience is not None:
            handlers.append(KeyMetricEarlyStopping(evaluator, early_stopping_patience, key))
    elif checkpoint_path is not None or early_stopping_patience is not None:
        raise ValueError("checkpoint_path and early_stopping_patience need an evaluator (they follow its key metric)")
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=max_epochs,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function or SoftTargetCrossEntropy(),
        prepare_batch=StrategyPrepareBatch(num_classes, batch_transform),
        epoch_length=epoch_length,
        train_handlers=handlers + list(train_handlers),
        amp=amp and device.type == "cuda",
        decollate=False,
    )
    return trainer


# ---------------------------------------------------------------------------------------------- data


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


def _dataset_and_class_names(data, transform, section: str, name: str) -> tuple[Dataset, list[str] | None]:
    """A map-style dataset from a Dataset, a list of item dicts, or a datalist JSON path."""
    if isinstance(data, (str, os.PathLike)):
        return _read_datalist(Path(data), section, transform)
    if isinstance(data, Dataset):
        if transform is not None:
            raise ValueError(f"{name} is already a Dataset: apply transform= when building it, not here")
        names = getattr(data, "class_names", None)  # gemix_monai.data.get_dataset carries them
        return data, list(names) if names is not None else None
    if isinstance(data, Sequence) and data and isinstance(data[0], Mapping):
        return MonaiDataset(list(data), transform), None
    raise TypeError(
        f"{name} must be a Dataset, a list of {{'image', 'label'}} dicts or a datalist JSON path, got {type(data).__name__}"
    )


def _labels_of(dataset: Dataset) -> torch.Tensor:
    """Class indices of a dataset's items, from ``dataset.data`` when present (no image reads)."""
    items = getattr(dataset, "data", None)
    if (
        isinstance(items, Sequence)
        and len(items) == len(dataset)
        and items
        and isinstance(items[0], Mapping)
        and "label" in items[0]
    ):
        raw = [it["label"] for it in items]
    else:
        raw = [dataset[i]["label"] for i in range(len(dataset))]
    labels = []
    for y in raw:
        t = torch.as_tensor(plain_tensor(y)).reshape(-1)
        labels.append(int(t.argmax()) if t.numel() > 1 else int(t[0]))  # one-hot/soft label or class index
    return torch.tensor(labels, dtype=torch.long)


def class_balanced_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class weights ``[K]``: ``N / (K * n_k)`` (scikit-learn's "balanced" weights), 0 for an absent class.

    Sampling items with these weights draws every present class equally often in expectation.
    """
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    if counts.sum() == 0:
        raise ValueError("cannot weight classes of an empty dataset")
    return torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), torch.zeros_like(counts))


@dataclass
class TrainingResult:
    """What ``train_classifier`` produced."""

    output_dir: Path
    checkpoint: Path
    best_metric: float | None
    best_epoch: int | None
    key_metric: str
    num_train_items: int = 0
    strategy_info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    report: ClinicalResult | None = None


def _first_image_shape(dataset: Dataset) -> tuple[int, ...]:
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    item = dataset[0]
    if not isinstance(item, Mapping) or "image" not in item:
        raise KeyError("training items must be dicts with an 'image' key")
    return tuple(torch.as_tensor(plain_tensor(item["image"])).shape)


@dataclass
class ClassifierTrainingOptions:
    """The settings of :func:`train_classifier` (see its docstring), checked when built."""

    strategy: str = "real"
    network: str | torch.nn.Module = "resnet18"
    num_classes: int | None = None
    class_names: Sequence[str] | None = None
    generator_checkpoint: Any = None
    synthetic_pool: Any = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss_function: Callable | None = None
    seed: int = 0
    key_metric: str = "macro_f1"
    positive_class: str | int | None = None
    early_stopping_patience: int | None = None
    class_weighted_sampling: bool = False
    strategy_kwargs: Mapping[str, Any] | None = None
    train_transform: Callable | None = None
    val_transform: Callable | None = None
    num_workers: int = 0
    device: str | torch.device | None = None
    amp: bool = True
    tensorboard: bool = True
    final_report: bool = True
    tsne_layer: str | None = None
    tsne_max_points: int = 300

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {list(STRATEGY_NAMES)}")
        for name in ("epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))


def train_classifier(
    train_data,
    val_data,
    output_dir: str | os.PathLike,
    options: ClassifierTrainingOptions | None = None,
    **kwargs,
) -> TrainingResult:
    """Train a classifier with one augmentation strategy and keep the best network on validation.

    Args:
        train_data / val_data: a map-style ``Dataset`` of ``{"image": [C, H, W], "label": int}`` (e.g.
            ``gemix_monai.data.get_dataset(source, split)``, whose ``class_names`` are used), a list
            of such dicts, or a datalist JSON path (then ``train_transform``/``val_transform`` load the
            images; sections ``training`` and ``validation``). ``val_data`` may also be a ``DataLoader``.
        options: the settings below as one :class:`ClassifierTrainingOptions`; keyword arguments (the
            dataclass's field names) override its fields, or build it on their own.
        output_dir: gets ``models/model.pt`` (best state dict), ``models/classifier.json``,
            ``tensorboard/``, ``val_report/`` (report of the best network on ``val_data``) and, with
            ``tsne_layer``, ``val_report/tsne.png``.
        strategy: one of ``STRATEGY_NAMES`` (see :mod:`gemix_monai.transforms.strategies`).
        network: a name from ``CLASSIFIER_NETWORKS`` or a module returning ``[B, K]`` logits.
        loss_function: ``loss(logits [B, K], soft_labels [B, K])``; default :class:`SoftTargetCrossEntropy`.
        generator_checkpoint: generator path or object, for the strategies that synthesise images.
        synthetic_pool: a pool folder (``gemix-monai generate --format npy``) to draw synthetic images from instead
            (docs/mixing.md, "Synthetic pools").
        key_metric: validation scalar that selects the checkpoint (``fnr/*`` and ``ece``: lower is better).
        class_weighted_sampling: draw real items with probability ~ 1/class frequency and give the
            synthetic label sampler inverse-frequency class weights (rare classes get more samples).
        strategy_kwargs: forwarded to ``build_strategy`` (e.g. ``synthetic_ratio``, ``genmix_alpha``,
            ``sampler_kwargs``).
        tsne_layer: module name (or ``"default"``) for a t-SNE of real (validation), synthetic and
            mixed features of the best network.
    """
    from gemix_monai.transforms.strategies import build_strategy

    o = dataclasses.replace(options, **kwargs) if options is not None else ClassifierTrainingOptions(**kwargs)
    out = Path(output_dir)
    device = _device(o.device)
    from monai.utils import set_determinism

    set_determinism(seed=o.seed)
    world, rank = idist.get_world_size(), idist.get_rank()
    if o.batch_size % world:
        raise ValueError(f"batch_size={o.batch_size} (the global batch) must be divisible by the {world} processes")
    if world > 1 and o.class_weighted_sampling:
        raise ValueError("class_weighted_sampling is single-process only; train without it or in one process")
    real_train, names_from_list = _dataset_and_class_names(train_data, o.train_transform, "training", "train_data")
    if isinstance(val_data, torch.utils.data.DataLoader):
        val_loader = val_data
    else:
        val_ds, _ = _dataset_and_class_names(val_data, o.val_transform, "validation", "val_data")
        # each process validates its share; ClinicalMetrics reduces the counts over the processes
        val_sampler = DistributedSampler(val_ds, shuffle=False, even_divisible=False) if world > 1 else None
        val_loader = DataLoader(
            val_ds, batch_size=o.batch_size, shuffle=False, sampler=val_sampler, num_workers=o.num_workers
        )
    class_names = o.class_names if o.class_names is not None else names_from_list
    num_classes = o.num_classes
    if num_classes is None:
        if class_names is None:
            raise ValueError("num_classes is required when class_names are not given (nor in the datalist)")
        num_classes = len(class_names)
    names = validate_class_names(num_classes, class_names)
    in_channels = _first_image_shape(real_train)[0]

    data_contract = contract_of(real_train)
    if strategy_generator(o.strategy, o.generator_checkpoint, o.synthetic_pool) is not None:
        check_generator_fits(o.generator_checkpoint, names, data_contract)

    kwargs = strategy_options(o.strategy, o.strategy_kwargs, real_train, num_classes, o.class_weighted_sampling)
    strat = build_strategy(
        o.strategy,
        real_train,
        num_classes,
        generator=strategy_generator(o.strategy, o.generator_checkpoint, o.synthetic_pool),
        synthetic_pool=strategy_generator(o.strategy, o.synthetic_pool),
        seed=o.seed,
        device=device if o.generator_checkpoint is not None else None,
        **kwargs,
    )
    sampler = class_weighted_sampler(strat, real_train, num_classes, o.seed, enabled=o.class_weighted_sampling)
    if sampler is None:
        # One seeded permutation per epoch (MONAI's workflow calls set_epoch), dealt round-robin to the processes:
        # batch i of the n processes together holds the items of batch i of a single process, whatever n is.
        sampler = DistributedSampler(strat.dataset, num_replicas=world, rank=rank, shuffle=True, seed=o.seed)
    train_loader = DataLoader(
        strat.dataset,
        batch_size=o.batch_size // world,
        shuffle=False,
        sampler=sampler,
        num_workers=o.num_workers,
        drop_last=len(strat.dataset) > o.batch_size,
    )

    layer = o.tsne_layer
    if o.tsne_layer == "default":
        if not isinstance(o.network, str):
            raise ValueError("tsne_layer='default' needs a network name; name the layer of a custom network instead")
        layer = FEATURE_LAYERS[o.network]
    if isinstance(o.network, str):
        arch = o.network
        net = build_classifier_network(o.network, in_channels, num_classes)
    else:
        arch, net = None, o.network
    net = net.to(device)
    if world > 1:  # gradients averaged over the processes: the same step as one process with the global batch
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    info = {
        "format": "gemix-classifier/1",
        "network": arch,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "class_names": list(names),
        "strategy": o.strategy,
        "seed": o.seed,
    }
    if data_contract is not None:
        # classes + preprocessing of the training data: evaluate/classify apply and check it (docs/data.md)
        info["contract"] = data_contract.to_dict()

    tb_dir = out / "tensorboard" if o.tensorboard and rank == 0 else None
    trainer_ref: dict[str, Engine] = {}
    evaluator = create_classifier_evaluator(
        net,
        val_loader,
        num_classes,
        names,
        key_metric=o.key_metric,
        positive_class=o.positive_class,
        device=device,
        amp=o.amp,
        tensorboard_dir=tb_dir,
        global_epoch_transform=lambda e: trainer_ref["t"].state.epoch if "t" in trainer_ref else e,
    )
    history: list[dict[str, float]] = []
    evaluator.add_event_handler(
        Events.COMPLETED,
        lambda e: history.append({"epoch": float(e.state.epoch), **{k: float(v) for k, v in e.state.metrics.items()}}),
    )
    checkpoint = out / "models" / CHECKPOINT_NAME
    trainer = create_classifier_trainer(
        net,
        train_loader,
        num_classes,
        max_epochs=o.epochs,
        lr=o.lr,
        weight_decay=o.weight_decay,
        strategy=strat,
        loss_function=o.loss_function,
        evaluator=evaluator,
        checkpoint_path=checkpoint,
        checkpoint_info=info,
        early_stopping_patience=o.early_stopping_patience,
        device=device,
        amp=o.amp,
        tensorboard_dir=tb_dir,
    )
    trainer_ref["t"] = trainer
    trainer.run()
    best_value, best_epoch = best_of(evaluator)

    report = None
    if o.final_report:
        idist.barrier()  # rank 0 wrote the checkpoint
        net = _unwrap(net)
        net.load_state_dict(safe_torch_load(checkpoint, map_location=device))
        sources = None
        if layer is not None and world == 1:
            sources = strategy_feature_sources(strat, train_loader, val_loader, num_classes, o.tsne_max_points)
        report = evaluate_classifier(
            net,
            val_loader,
            out / "val_report",
            names,
            positive_class=o.positive_class,
            device=device,
            amp=o.amp,
            tsne_layer=layer,
            tsne_sources=sources,
            tsne_max_points=o.tsne_max_points,
        )
    return TrainingResult(
        out, checkpoint, best_value, best_epoch, o.key_metric, len(strat.dataset), dict(strat.info), history, report
    )


def strategy_generator(strategy: str, generator, synthetic_pool=None) -> Any:
    """The generator a strategy reads: ``generator`` for the synthetic strategies, ``None`` for ``real`` and
    ``pixel_mixup`` (which need no generator, so a missing ``generator.pt`` does not matter to them). With a
    ``synthetic_pool`` a generator *path* that does not exist is ``None`` too (the pool records its generator)."""
    if strategy in ("real", "pixel_mixup"):
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
    if class_weighted_sampling and strategy not in ("real", "pixel_mixup"):
        kwargs.setdefault("class_weights", class_balanced_weights(_labels_of(real_dataset), num_classes).tolist())
    return kwargs


def class_weighted_sampler(strategy, real_dataset, num_classes: int, seed: int = 0, *, enabled: bool = True):
    """A ``WeightedRandomSampler`` over ``strategy.dataset`` drawing real items ~ 1/class frequency (synthetic
    items weigh 1), or ``None`` when not ``enabled`` or for ``synthetic_only``."""
    if not enabled or strategy.name == "synthetic_only":
        return None
    real_labels = _labels_of(real_dataset)
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


# ---------------------------------------------------------------------------------------------- evaluation


def read_classifier_info(checkpoint: str | os.PathLike) -> dict:
    """``classifier.json`` beside ``model.pt`` (architecture, classes, stored contract), ``{}`` when absent."""
    path = Path(checkpoint).with_name(CHECKPOINT_INFO_NAME)
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def classifier_transform(
    checkpoint: str | os.PathLike, *, image_size=None, hu_window="auto", intensity="auto", channels=None
):
    """The preprocessing a classifier was trained with (its stored contract), for images given one by one.

    Explicit options that differ from the stored contract raise naming both; without a stored contract
    (an older model) the options are used as given, ``hu_window="auto"`` meaning no CT window.
    """
    from gemix_monai.data.contract import Preprocessing

    info = read_classifier_info(checkpoint)
    given = {
        "image_size": image_size,
        "channels": channels,
        "hu_window": None
        if hu_window in ("auto", None) or (isinstance(hu_window, str) and hu_window.lower() == "none")
        else hu_window,
        "intensity": intensity,
    }
    stored = contract_of(info.get("contract")) if info.get("contract") else None
    if stored is None:
        pp = Preprocessing(
            image_size=int(image_size or 32),
            channels=int(channels or info.get("in_channels") or 1),
            hu_window=given["hu_window"],
            intensity=intensity,
        )
        return pp.transforms(num_classes=info.get("num_classes"))
    pp = stored.preprocessing
    explicit = {k: v for k, v in given.items() if v is not None and not (k == "intensity" and v == "auto")}
    if hu_window == "auto":
        explicit.pop("hu_window", None)
    if explicit:
        wanted = Preprocessing(
            **{**{k: getattr(pp, k) for k in ("image_size", "channels", "hu_window", "intensity")}, **explicit}
        )
        if wanted != pp:
            raise ValueError(
                f"classifier {checkpoint} was trained with [{pp.describe()}]; the options given ask for "
                f"[{wanted.describe()}]: leave them out to use the stored preprocessing"
            )
    return pp.transforms(num_classes=len(stored.class_names))


def load_classifier(
    checkpoint: str | os.PathLike,
    *,
    network: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained classifier from ``model.pt`` and its ``classifier.json`` (or explicit arguments)."""
    path = Path(checkpoint)
    info_path = path.with_name(CHECKPOINT_INFO_NAME)
    info: dict = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    network = network or info.get("network")
    in_channels = in_channels or info.get("in_channels")
    num_classes = num_classes or info.get("num_classes")
    missing = [
        n for n, v in (("network", network), ("in_channels", in_channels), ("num_classes", num_classes)) if v is None
    ]
    if missing:
        raise ValueError(f"cannot rebuild the classifier of {path}: no {info_path.name} beside it; pass {missing}")
    net = build_classifier_network(network, int(in_channels), int(num_classes))
    state = safe_torch_load(path, map_location=device)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"checkpoint {path} does not fit network {network!r} (in_channels={in_channels}, "
            f"num_classes={num_classes}): {e}"
        ) from e
    return net.to(device), info


def evaluate_classifier(
    network_or_checkpoint,
    test_data,
    output_dir: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    network: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    positive_class: str | int | None = None,
    batch_size: int = 64,
    transform=None,
    section: str = "test",
    device: str | torch.device | None = None,
    amp: bool = False,
    tsne_layer: str | None = None,
    tsne_sources: Mapping[str, Iterable] | None = None,
    tsne_max_points: int = 300,
) -> ClinicalResult:
    """Evaluate a classifier and write the report directory (see :mod:`gemix_monai.handlers.report`).

    Args:
        network_or_checkpoint: a module returning logits, or a ``model.pt`` path (rebuilt with
            :func:`load_classifier`).
        test_data: ``Dataset``, list of dicts, ``DataLoader``, or datalist JSON path (``section``, ``transform``);
            ``section`` also names the split in the warning about a class with no image in it.
        class_names: K names (default: from the checkpoint info or the datalist).
        tsne_layer: also write ``tsne.png`` from this layer's features (``tsne_sources`` default:
            ``{"real": test data}``).
    """
    device = _device(device)
    info: dict = {}
    if isinstance(network_or_checkpoint, torch.nn.Module):
        net = network_or_checkpoint.to(device)
    else:
        net, info = load_classifier(
            network_or_checkpoint, network=network, in_channels=in_channels, num_classes=num_classes, device=device
        )
    if isinstance(test_data, torch.utils.data.DataLoader):
        loader, names_from_list = test_data, None
    else:
        ds, names_from_list = _dataset_and_class_names(test_data, transform, section, "test_data")
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    stored = contract_of(info.get("contract"))
    data_contract = contract_of(getattr(loader, "dataset", None))
    if stored is not None and data_contract is not None:
        check_contract(stored, data_contract, f"classifier {network_or_checkpoint}", "the evaluation data")
    elif info.get("class_names") and names_from_list:
        check_class_names(
            info["class_names"], names_from_list, f"classifier {network_or_checkpoint}", "the evaluation data"
        )
    names = class_names or info.get("class_names") or names_from_list
    k = num_classes or info.get("num_classes") or (len(names) if names else None)
    if k is None:
        raise ValueError("evaluate_classifier needs class_names or num_classes (or a checkpoint with classifier.json)")
    names = validate_class_names(int(k), names)
    handlers = []
    if tsne_layer is not None:
        handlers.append(
            FeatureTSNEPlotter(
                net,
                tsne_layer,
                dict(tsne_sources or {"real": loader}),
                Path(output_dir) / "tsne.png",
                class_names=names,
                max_points=tsne_max_points,
            )
        )
    evaluator = create_classifier_evaluator(
        net,
        loader,
        int(k),
        names,
        positive_class=positive_class,
        device=device,
        amp=amp,
        report_dir=output_dir,
        val_handlers=handlers,
        split=section,
    )
    evaluator.run()
    return evaluator.clinical_metrics.result


# ---------------------------------------------------------------------------------------------- folder classification

#: Preprocessing of :func:`classify_folder` when ``classifier.json`` records none and the caller gives none
#: (the bundle's defaults: 32 px, abdomen CT window).
DEFAULT_CLASSIFY_PREPROCESSING = {"image_size": 32, "hu_window": "abdomen", "intensity": "auto"}


def _image_suffixes() -> list[str]:
    from gemix_monai.data.transforms import IMAGE_SUFFIXES

    return sorted(s for s in IMAGE_SUFFIXES if s)  # "" (suffix-less DICOM) would match every file


def find_images(input_dir: str | os.PathLike) -> list[Path]:
    """Every image under ``input_dir``: :func:`gemix_monai.data.discover_images`, the one rule training, validation and
    classification share (recursive; suffixes of ``IMAGE_SUFFIXES`` in any letter case, ``.nii.gz`` included, and
    DICOM files of any name; hidden files and folders, the ``.img`` of an Analyze pair and a mask ``<stem>_mask.<ext>``
    beside its image ``<stem>.<ext'>`` left out; files that are not images logged; dangling links and loops refused)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder not found: {root}")
    from gemix_monai.data.discover import discover_images

    return discover_images(root)


def _classify_transform(info: Mapping, fallback: Mapping | None = None):
    """The preprocessing of :func:`classify_folder` for a classifier described by ``info`` (its classifier.json).

    ``info["preprocessing"]`` (a dict of :func:`gemix_monai.data.get_transforms` keyword arguments recorded
    at training) wins; otherwise ``fallback`` (the caller's settings, e.g. the bundle config's), otherwise
    :data:`DEFAULT_CLASSIFY_PREPROCESSING`. ``channels`` is the network's ``in_channels`` unless recorded.
    """
    from gemix_monai.data import get_transforms

    stored = contract_of(info.get("contract")) if info.get("contract") else None
    if stored is not None:  # the contract recorded at training (docs/data.md) wins over any setting
        return stored.preprocessing.transforms(num_classes=len(stored.class_names))
    recorded = info.get("preprocessing")
    if recorded is not None and not isinstance(recorded, Mapping):
        raise ValueError(
            f"classifier.json 'preprocessing' must be a dict of get_transforms arguments, got {recorded!r}"
        )
    kwargs = dict(DEFAULT_CLASSIFY_PREPROCESSING)
    kwargs.update(fallback or {})
    kwargs["channels"] = int(info["in_channels"])
    kwargs.update(recorded or {})
    return get_transforms(**kwargs)


def check_classify_inputs(checkpoint, input_dir, output_csv, *, overwrite: bool = False) -> list[Path]:
    """What folder classification needs before any work: the checkpoint and its ``classifier.json``, an output CSV
    that may be written, and at least one image under ``input_dir``; returns the images (:func:`find_images`).

    Raises ``ValueError`` for an unset argument, ``FileExistsError`` for an existing CSV without ``overwrite``,
    ``FileNotFoundError`` naming a missing folder, checkpoint or ``classifier.json``, ``ValueError`` when the
    folder holds no supported image (naming it and the suffixes looked for).
    """
    for name, value in (("checkpoint", checkpoint), ("input_dir", input_dir), ("output_csv", output_csv)):
        if value is None:
            raise ValueError(f"classify: {name} is not set (bundle: set dataset_dir, ckpt_path and predictions_csv)")
    checkpoint, output_csv = Path(checkpoint), Path(output_csv)
    if output_csv.exists() and not overwrite:
        raise FileExistsError(
            f"{output_csv} already exists; pass overwrite=True (command line: --overwrite) to replace it, "
            "or choose another output file"
        )
    if not checkpoint.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {checkpoint}")
    info_path = checkpoint.with_name(CHECKPOINT_INFO_NAME)
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: classification takes the network, class count and class names "
            f"from the {CHECKPOINT_INFO_NAME} that training writes beside {checkpoint.name}"
        )
    files = find_images(input_dir)
    if not files:
        raise ValueError(
            f"no images to classify in {input_dir} (searched recursively, any letter case, for "
            f"{', '.join(_image_suffixes())})"
        )
    return files


def write_predictions_csv(
    output_csv: str | os.PathLike,
    filenames: Sequence[str],
    probabilities: torch.Tensor,
    class_names: Sequence[str],
    *,
    where: str = "the classifier",
) -> Path:
    """Write ``filename, predicted_class, p(<class name>)...`` (one row per image, probabilities in label order)
    atomically; NaN/inf probabilities raise naming the first images concerned."""
    import csv
    import io

    from gemix_monai.utils import atomic_write_bytes

    p = torch.as_tensor(probabilities, dtype=torch.float32).reshape(len(filenames), len(class_names))
    if not torch.isfinite(p).all():
        bad = [filenames[i] for i in torch.nonzero(~torch.isfinite(p).all(1)).flatten().tolist()][:5]
        raise ValueError(f"{where} gives NaN/inf probabilities for {bad}")
    k = len(class_names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "predicted_class", *(f"p({n})" for n in class_names)])
    for name, row in zip(filenames, p.tolist()):
        writer.writerow([name, class_names[max(range(k), key=row.__getitem__)], *(f"{v:.8g}" for v in row)])
    return atomic_write_bytes(output_csv, buf.getvalue().encode())


def _filename_of(image) -> str | None:
    meta = getattr(image, "meta", None)
    name = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    return str(name) if name is not None else None


class ClassificationCSVWriter:
    """Evaluator handler (inference.json ``handlers``): the CSV of :func:`write_predictions_csv` for every image.

    Reads each item's ``pred`` (class probabilities after ``postprocessing``) from the decollated engine output
    and its file name from the ``image`` meta data of the decollated batch (``filename_or_obj``, as ``LoadImaged``
    records it); names are written relative to ``root_dir`` when given. The CSV is written atomically when the run
    completes, so an interrupted run leaves no partial file. MONAI's ``ClassificationSaver`` writes neither a header
    nor class names, hence this handler.
    """

    def __init__(
        self,
        output_csv: str | os.PathLike,
        class_names: Sequence[str],
        *,
        root_dir: str | os.PathLike | None = None,
        pred_key: str = "pred",
        image_key: str = "image",
    ) -> None:
        self.output_csv = Path(output_csv)
        self.class_names = list(class_names)
        self.root_dir = Path(root_dir) if root_dir is not None else None
        self.pred_key, self.image_key = pred_key, image_key
        self.filenames: list[str] = []
        self.probabilities: list[torch.Tensor] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.filenames, self.probabilities = [], []

    def _name(self, name: str | None, index: int) -> str:
        if name is None:
            return f"item_{index}"
        if self.root_dir is not None:
            try:
                return Path(name).resolve().relative_to(self.root_dir.resolve()).as_posix()
            except ValueError:
                pass
        return name

    def _collect(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        if isinstance(output, Mapping):  # decollate=False: one dict per batch
            preds = plain_tensor(output[self.pred_key])
            images = batch[self.image_key] if isinstance(batch, Mapping) else None
            meta = getattr(images, "meta", {}) or {}
            names = meta.get("filename_or_obj", [None] * len(preds))
            names = [names] if isinstance(names, str) else list(names)
        else:
            preds = torch.stack([plain_tensor(o[self.pred_key]).reshape(-1) for o in output])
            items = batch if isinstance(batch, (list, tuple)) else [None] * len(output)
            names = [_filename_of(b.get(self.image_key)) if isinstance(b, Mapping) else None for b in items]
        k = len(self.class_names)
        preds = preds.detach().float().cpu().reshape(len(preds), -1)
        if preds.shape[1] != k:
            raise ValueError(f"the network returns {preds.shape[1]} values per image; the classifier has {k} classes")
        start = len(self.filenames)
        self.filenames += [self._name(n, start + i) for i, n in enumerate(names)]
        self.probabilities.append(preds)

    def _write(self, engine: Engine) -> None:
        probs = torch.cat(self.probabilities) if self.probabilities else torch.zeros(0, len(self.class_names))
        write_predictions_csv(self.output_csv, self.filenames, probs, self.class_names)
        logger.info("wrote %s (%d images)", self.output_csv, len(self.filenames))


def classify_folder(
    checkpoint: str | os.PathLike,
    input_dir: str | os.PathLike,
    output_csv: str | os.PathLike,
    *,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    transform: Callable | None = None,
    preprocessing: Mapping | None = None,
) -> Path:
    """Classify every image under ``input_dir`` with ``checkpoint`` (``model.pt`` + ``classifier.json``); write a CSV.

    The CSV has a header ``filename, predicted_class, p(<class name>)...`` (one probability column per class of
    the checkpoint, softmax, in label order) and one row per image, ``filename`` relative to ``input_dir``. Images are
    found by :func:`find_images`; the class count, names, input channels and network come from ``classifier.json``.

    Args:
        transform: preprocessing of ``{"image": path}`` items; default :func:`_classify_transform` (the record in
            ``classifier.json``, else ``preprocessing`` — ``get_transforms`` keyword arguments — else the defaults).
        overwrite: replace an existing ``output_csv`` (otherwise a ``FileExistsError`` naming it).

    Raises ``FileNotFoundError`` for a missing folder, checkpoint or ``classifier.json``, ``FileExistsError`` for an
    existing CSV without ``overwrite``, ``ValueError`` when the folder holds no supported image (naming it and the
    suffixes looked for) or the checkpoint does not fit its description. Nothing is written unless every image
    was classified (the CSV is written atomically at the end).
    """
    files = check_classify_inputs(checkpoint, input_dir, output_csv, overwrite=overwrite)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    checkpoint, input_dir, output_csv = Path(checkpoint), Path(input_dir), Path(output_csv)
    info_path = checkpoint.with_name(CHECKPOINT_INFO_NAME)
    device = _device(device)
    net, info = load_classifier(checkpoint, device=device)
    k = int(info["num_classes"])
    names = validate_class_names(k, info.get("class_names"))
    tf = transform if transform is not None else _classify_transform(info, preprocessing)
    logger.info("classifying %d images under %s with %s (%d classes)", len(files), input_dir, checkpoint, k)

    # The programmatic twin of the bundle's inference.json (SupervisedEvaluator + CheckpointLoader +
    # ClassificationCSVWriter): a plain loop, the same preprocessing and the same CSV writer.
    loader = DataLoader(
        MonaiDataset([{"image": str(f)} for f in files], tf), batch_size=batch_size, shuffle=False, num_workers=0
    )
    probs = []
    net.eval()
    with torch.no_grad():
        for batch in loader:
            x = torch.as_tensor(batch["image"]).to(device=device, dtype=torch.float32)
            logits = net(x)
            if logits.ndim != 2 or logits.shape[1] != k:
                raise ValueError(
                    f"{checkpoint}: the network returns shape {tuple(logits.shape)}, expected [N, {k}] "
                    f"(num_classes in {info_path})"
                )
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
    write_predictions_csv(
        output_csv, [f.relative_to(input_dir).as_posix() for f in files], torch.cat(probs), names, where=str(checkpoint)
    )
    logger.info("wrote %s", output_csv)
    return output_csv
