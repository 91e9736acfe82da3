"""Classifier training and evaluation for every augmentation strategy, on MONAI engines.

Two levels:

* ``train_classifier(train_data, val_data, output_dir, strategy=..., run=RunSettings(...))`` and
  ``evaluate_classifier(network_or_checkpoint, test_data, output_dir, ...)``: one call each.
* ``create_classifier_trainer`` / ``create_classifier_evaluator``: factories returning MONAI's
  ``SupervisedTrainer`` / ``SupervisedEvaluator`` wired with the handlers of
  :mod:`gemix_monai.handlers.classifier`, on the training skeleton of :mod:`gemix_monai.engines.supervised`.

The ``strategy`` switch is :func:`gemix_monai.transforms.strategies.build_strategy`: each strategy is
one training dataset plus at most one batch transform (written in ``gemix_monai.transforms``), and
this module only feeds them to the engine. Training uses soft-target cross-entropy, AdamW with a
per-iteration cosine schedule, AMP on CUDA; validation publishes :class:`ClinicalMetrics`; the best
network (by ``key_metric``) is written atomically to ``<output_dir>/models/model.pt`` as a plain
state dict (``torch.load(..., weights_only=True)``), described by ``models/classifier.json``.

The networks and their loading live in :mod:`gemix_monai.networks.classifiers`, the handlers in
:mod:`gemix_monai.handlers.classifier`, folder classification in :mod:`gemix_monai.engines.inference`; their
names stay importable from here (docs/design.md, "Deprecated import paths").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from monai.data import DataLoader, DistributedSampler
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import StatsHandler, TensorBoardStatsHandler

from gemix_monai.data.contract import check_class_names, check_contract, contract_of
from gemix_monai.engines import classifier_setup as _setup
from gemix_monai.engines.classifier_setup import *  # noqa: F403  (the wiring, used here and re-exported)
from gemix_monai.engines.inference import (  # noqa: F401  (deprecated import path of these names)
    DEFAULT_CLASSIFY_PREPROCESSING,
    check_classify_inputs,
    classifier_transform,
    classify_folder,
    find_images,
)
from gemix_monai.engines.run import RunSettings, merge_run_keywords
from gemix_monai.engines.supervised import (
    SupervisedTrainerOptions,
    as_dataset,
    check_positive_int,
    create_supervised_trainer,
    fit,
    training_schedule,
)
from gemix_monai.handlers.classifier import (  # noqa: F401  (deprecated import path of these names)
    ClassificationCSVWriter,
    ClassifierInfoWriter,
    KeyMetricEarlyStopping,
    StrategySetEpoch,
    ValidationHistory,
    attach_best_checkpoint,
    best_of,
    key_metric_cmp_fn,
    write_predictions_csv,
)
from gemix_monai.handlers.report import ClassificationReportWriter, evaluation_title, report_title
from gemix_monai.handlers.tsne import FeatureTSNEPlotter
from gemix_monai.metrics.clinical import ClinicalResult, validate_class_names
from gemix_monai.metrics.ignite_clinical import ClinicalMetrics
from gemix_monai.networks.classifiers import (  # noqa: F401  (deprecated import path of these names)
    CHECKPOINT_INFO_NAME,
    CHECKPOINT_NAME,
    CLASSIFIER_FORMAT,
    FEATURE_LAYERS,
    SoftTargetCrossEntropy,
    build_classifier_network,
    load_classifier,
    network_name_of,
    read_classifier_info,
)
from gemix_monai.utils import plain_tensor, resolve_device, safe_torch_load

__all__ = [
    "TrainingResult",
    "ClassifierTrainingOptions",
    "create_classifier_evaluator",
    "create_classifier_trainer",
    "train_classifier",
    "evaluate_classifier",
    # kept importable from here (docs/design.md, "Deprecated keywords and import paths")
    *_setup.__all__,
    "CHECKPOINT_NAME",
    "CHECKPOINT_INFO_NAME",
    "StrategySetEpoch",
    "KeyMetricEarlyStopping",
    "ClassifierInfoWriter",
    "ClassificationCSVWriter",
    "key_metric_cmp_fn",
    "check_positive_int",
    "training_schedule",
    "attach_best_checkpoint",
    "best_of",
    "check_classify_inputs",
    "write_predictions_csv",
    "load_classifier",
    "read_classifier_info",
    "classifier_transform",
    "find_images",
    "classify_folder",
]


# ---------------------------------------------------------------------------------------------- factories


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
    title: str | None = None,
) -> SupervisedEvaluator:
    """A ``SupervisedEvaluator`` publishing :class:`ClinicalMetrics` (``key_metric`` is its key metric).

    ``report_dir``: write the report files after each run (``epoch_<n>`` subfolders with
    ``per_epoch_reports``). ``tensorboard_dir``: every published scalar per (trainer) epoch. ``split``: the
    evaluated split's name, for the warning about a class without an image there (docs/maths.md §4). ``title``
    heads the report and its figures (default: the split's name; :func:`gemix_monai.handlers.report.report_title`).
    The metric object is available as ``evaluator.clinical_metrics`` (its ``result`` after a run).
    """
    device = resolve_device(device)
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
                metric,
                report_dir,
                per_epoch=per_epoch_reports,
                epoch_transform=global_epoch_transform,
                title=title or report_title(None, split, None),
            )
        )
    evaluator = SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=network,
        prepare_batch=_setup.eval_prepare_batch,
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
    options: SupervisedTrainerOptions | None = None,
    **kwargs,
) -> SupervisedTrainer:
    """A ``SupervisedTrainer`` for soft-label classification (the template of :mod:`gemix_monai.engines.supervised`).

    Args:
        network: returns logits ``[B, K]``; moved to ``device``.
        train_loader: yields dicts ``{"image", "label"}`` (labels: indices or ``[K]`` soft labels).
        options / kwargs: :class:`~gemix_monai.engines.supervised.SupervisedTrainerOptions` (``max_epochs``, ``lr``,
            ``weight_decay``, ``optimizer``, ``loss_function``, ``strategy`` or ``batch_transform``, ``evaluator``,
            ``val_interval``, ``checkpoint_path``, ``checkpoint_info``, ``early_stopping_patience``, ``device``,
            ``amp``, ``tensorboard_dir``, ``epoch_length``, ``train_handlers``); keyword arguments override its
            fields. The loss defaults to :class:`SoftTargetCrossEntropy`; the checkpoint is described by
            ``classifier.json``.
    """
    o = dataclasses.replace(options, **kwargs) if options is not None else SupervisedTrainerOptions(**kwargs)
    return create_supervised_trainer(
        network,
        train_loader,
        o,
        prepare_batch=lambda batch_transform: _setup.StrategyPrepareBatch(num_classes, batch_transform),
        default_loss=SoftTargetCrossEntropy,
        info_name=CHECKPOINT_INFO_NAME,
    )


# ---------------------------------------------------------------------------------------------- data


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


def _first_image_shape(dataset) -> tuple[int, ...]:
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    item = dataset[0]
    if not isinstance(item, Mapping) or "image" not in item:
        raise KeyError("training items must be dicts with an 'image' key")
    return tuple(torch.as_tensor(plain_tensor(item["image"])).shape)


#: Fields of :class:`ClassifierTrainingOptions` that are run settings, kept for a deprecation period (they now go
#: in :class:`~gemix_monai.engines.run.RunSettings`; ``tensorboard`` is its ``tracking``).
DEPRECATED_RUN_FIELDS = {"seed": "seed", "num_workers": "num_workers", "device": "device", "tensorboard": "tracking"}


@dataclass
class ClassifierTrainingOptions:
    """What :func:`train_classifier` learns (see its docstring), checked when built.

    ``seed``, ``num_workers``, ``device`` and ``tensorboard`` are deprecated here (``None``: not given): they are
    run settings, given as ``run=RunSettings(seed=..., num_workers=..., device=..., tracking=...)``.
    """

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
    key_metric: str = "macro_f1"
    positive_class: str | int | None = None
    early_stopping_patience: int | None = None
    class_weighted_sampling: bool = False
    strategy_kwargs: Mapping[str, Any] | None = None
    train_transform: Callable | None = None
    val_transform: Callable | None = None
    amp: bool = True
    final_report: bool = True
    tsne_layer: str | None = None
    tsne_max_points: int = 300
    seed: int | None = None
    num_workers: int | None = None
    device: str | torch.device | None = None
    tensorboard: bool | None = None

    def __post_init__(self) -> None:
        if self.strategy not in _setup.STRATEGY_NAMES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {list(_setup.STRATEGY_NAMES)}")
        for name in ("epochs", "batch_size"):
            check_positive_int(name, getattr(self, name))

    def run_keywords(self) -> dict:
        """The deprecated run settings given here, as :class:`RunSettings` keywords."""
        return {k: getattr(self, k) for k in DEPRECATED_RUN_FIELDS if getattr(self, k) is not None}


@dataclass
class _TrainingData:
    real: Any
    val_loader: Any
    class_names: list[str]
    num_classes: int
    in_channels: int
    contract: Any


def _training_data(train_data, val_data, o: ClassifierTrainingOptions, run: RunSettings) -> _TrainingData:
    """The real training split, a validation loader (each process validating its share), classes and channels."""
    world = idist.get_world_size()
    real_train, names_from_list = as_dataset(train_data, "train_data", transform=o.train_transform, section="training")
    if isinstance(val_data, torch.utils.data.DataLoader):
        val_loader = val_data
    else:
        val_ds, val_names = as_dataset(val_data, "val_data", transform=o.val_transform, section="validation")
        # each process validates its share; ClinicalMetrics reduces the counts over the processes
        val_sampler = DistributedSampler(val_ds, shuffle=False, even_divisible=False) if world > 1 else None
        val_loader = DataLoader(
            val_ds, batch_size=o.batch_size, shuffle=False, sampler=val_sampler, num_workers=run.num_workers
        )
    class_names = o.class_names if o.class_names is not None else names_from_list
    num_classes = o.num_classes
    if num_classes is None:
        if class_names is None:
            raise ValueError("num_classes is required when class_names are not given (nor in the datalist)")
        num_classes = len(class_names)
    names = validate_class_names(num_classes, class_names)
    if not isinstance(val_data, torch.utils.data.DataLoader):
        # validation in another class order would score (and pick the checkpoint) with the labels swapped
        train_contract, val_contract = contract_of(real_train), contract_of(val_ds)
        if train_contract is not None and val_contract is not None:
            check_contract(train_contract, val_contract, "the training data", "the validation data")
        elif val_names:
            check_class_names(list(names), val_names, "the training classes", "the validation data")
    in_channels = _first_image_shape(real_train)[0]
    return _TrainingData(real_train, val_loader, list(names), num_classes, in_channels, contract_of(real_train))


def _train_loader(strat, data: _TrainingData, o: ClassifierTrainingOptions, run: RunSettings):
    world, rank = idist.get_world_size(), idist.get_rank()
    sampler = _setup.class_weighted_sampler(
        strat, data.real, data.num_classes, run.seed, enabled=o.class_weighted_sampling
    )
    if sampler is None:
        # One seeded permutation per epoch (MONAI's workflow calls set_epoch), dealt round-robin to the processes:
        # batch i of the n processes together holds the items of batch i of a single process, whatever n is.
        sampler = DistributedSampler(strat.dataset, num_replicas=world, rank=rank, shuffle=True, seed=run.seed)
    return DataLoader(
        strat.dataset,
        batch_size=o.batch_size // world,
        shuffle=False,
        sampler=sampler,
        num_workers=run.num_workers,
        drop_last=len(strat.dataset) > o.batch_size,
    )


def _network(o: ClassifierTrainingOptions, in_channels: int, num_classes: int, device) -> tuple[Any, str | None]:
    """``(network on device, DDP-wrapped under several processes; its name or None)``."""
    if isinstance(o.network, str):
        arch, net = o.network, build_classifier_network(o.network, in_channels, num_classes)
    else:
        arch, net = None, o.network
    net = net.to(device)
    if idist.get_world_size() > 1:  # gradients averaged over the processes: one process's step with the global batch
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    return net, arch


def _tsne_layer(o: ClassifierTrainingOptions) -> str | None:
    if o.tsne_layer != "default":
        return o.tsne_layer
    if not isinstance(o.network, str):
        raise ValueError("tsne_layer='default' needs a network name; name the layer of a custom network instead")
    return FEATURE_LAYERS[o.network]


def _classifier_run(o: ClassifierTrainingOptions, run, output_dir) -> RunSettings:
    keywords = o.run_keywords()
    renamed = {"tensorboard": "tracking"}
    run = merge_run_keywords(run, keywords, "train_classifier", output_dir=output_dir, renamed=renamed, stacklevel=4)
    if run.resume is not None:
        raise ValueError(
            f"train_classifier trains from scratch: run.resume must be None, got {run.resume!r} (docs/design.md)"
        )
    return run


def train_classifier(
    train_data,
    val_data,
    output_dir: str | os.PathLike | None = None,
    options: ClassifierTrainingOptions | None = None,
    *,
    run: RunSettings | None = None,
    **kwargs,
) -> TrainingResult:
    """Train a classifier with one augmentation strategy and keep the best network on validation.

    Args:
        train_data / val_data: a map-style ``Dataset`` of ``{"image": [C, H, W], "label": int}`` (e.g.
            ``gemix_monai.data.get_dataset(source, split)``, whose ``class_names`` are used), a list
            of such dicts, or a datalist JSON path (then ``train_transform``/``val_transform`` load the
            images; sections ``training`` and ``validation``). ``val_data`` may also be a ``DataLoader``.
        output_dir: gets ``models/model.pt`` (best state dict), ``models/classifier.json``,
            ``tensorboard/``, ``val_report/`` (report of the best network on ``val_data``) and, with
            ``tsne_layer``, ``val_report/tsne.png``; or ``run.output_dir``.
        options: the settings below as one :class:`ClassifierTrainingOptions`; keyword arguments (the
            dataclass's field names) override its fields, or build it on their own.
        run: :class:`~gemix_monai.engines.run.RunSettings` (seed, device, workers, ``val_interval``, ``tracking``:
            TensorBoard); ``resume`` must be ``None`` (a classifier trains from scratch).
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
    from monai.utils import set_determinism

    o = dataclasses.replace(options, **kwargs) if options is not None else ClassifierTrainingOptions(**kwargs)
    run = _classifier_run(o, run, output_dir)
    out, device = run.folder("train_classifier"), run.torch_device
    set_determinism(seed=run.seed)
    world = idist.get_world_size()
    if o.batch_size % world:
        raise ValueError(f"batch_size={o.batch_size} (the global batch) must be divisible by the {world} processes")
    if world > 1 and o.class_weighted_sampling:
        raise ValueError("class_weighted_sampling is single-process only; train without it or in one process")
    data = _training_data(train_data, val_data, o, run)
    strat = _setup.training_strategy(
        o.strategy,
        data.real,
        data.num_classes,
        generator=o.generator_checkpoint,
        synthetic_pool=o.synthetic_pool,
        seed=run.seed,
        device=device if o.generator_checkpoint is not None else None,
        strategy_kwargs=o.strategy_kwargs,
        class_weighted_sampling=o.class_weighted_sampling,
        class_names=data.class_names,
        contract=data.contract,
    )
    train_loader = _train_loader(strat, data, o, run)
    layer = _tsne_layer(o)
    net, arch = _network(o, data.in_channels, data.num_classes, device)
    info = _setup.classifier_info(
        net, arch, data.in_channels, data.num_classes, data.class_names, o.strategy, run.seed, data.contract
    )
    info["network"] = arch  # the name given (or None for a module): what load_classifier rebuilds
    tb_dir = out / "tensorboard" if run.tracking and idist.get_rank() == 0 else None
    history = ValidationHistory()
    metric = {"key_metric": o.key_metric, "positive_class": o.positive_class}
    outputs = {"tensorboard_dir": tb_dir, "global_epoch_transform": history.epoch}
    evaluator = create_classifier_evaluator(
        net, data.val_loader, data.num_classes, data.class_names, device=device, amp=o.amp, **metric, **outputs
    )
    history.attach(evaluator)
    checkpoint = out / "models" / CHECKPOINT_NAME
    trainer = create_classifier_trainer(
        net,
        train_loader,
        data.num_classes,
        max_epochs=o.epochs,
        lr=o.lr,
        weight_decay=o.weight_decay,
        strategy=strat,
        loss_function=o.loss_function,
        evaluator=evaluator,
        val_interval=run.val_interval,
        checkpoint_path=checkpoint,
        checkpoint_info=info,
        early_stopping_patience=o.early_stopping_patience,
        device=device,
        amp=o.amp,
        tensorboard_dir=tb_dir,
    )
    fitted = fit(trainer, evaluator, history)
    report = (
        _final_report(net, checkpoint, strat, train_loader, data, o, layer, out, device) if o.final_report else None
    )
    return TrainingResult(
        out,
        checkpoint,
        fitted.best_metric,
        fitted.best_epoch,
        o.key_metric,
        len(strat.dataset),
        dict(strat.info),
        fitted.history,
        report,
    )


def _final_report(net, checkpoint, strat, train_loader, data: _TrainingData, o, layer, out: Path, device):
    """The best network's report on the validation data (``out/val_report``), with its t-SNE when asked."""
    idist.barrier()  # rank 0 wrote the checkpoint
    net = _setup.unwrap(net)
    net.load_state_dict(safe_torch_load(checkpoint, map_location=device))
    sources = None
    if layer is not None and idist.get_world_size() == 1:
        sources = _setup.strategy_feature_sources(
            strat, train_loader, data.val_loader, data.num_classes, o.tsne_max_points
        )
    tsne = {"tsne_layer": layer, "tsne_sources": sources, "tsne_max_points": o.tsne_max_points}
    title = report_title(o.strategy, "validation", out.name)
    options = {"positive_class": o.positive_class, "device": device, "amp": o.amp, "title": title, **tsne}
    return evaluate_classifier(net, data.val_loader, out / "val_report", data.class_names, **options)


# ---------------------------------------------------------------------------------------------- evaluation


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
    title: str | None = None,
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
        title: heads the report and every figure (default: the checkpoint's strategy, ``section`` and run,
            :func:`gemix_monai.handlers.report.evaluation_title`).
    """
    device = resolve_device(device)
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
        ds, names_from_list = as_dataset(test_data, "test_data", transform=transform, section=section)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    where = f"classifier {network_or_checkpoint}"
    names = _evaluation_class_names(info, loader, class_names, names_from_list, where)
    k = num_classes or info.get("num_classes") or (len(names) if names else None)
    if k is None:
        raise ValueError("evaluate_classifier needs class_names or num_classes (or a checkpoint with classifier.json)")
    names = validate_class_names(int(k), names)
    if title is None:
        checkpoint = None if isinstance(network_or_checkpoint, torch.nn.Module) else network_or_checkpoint
        title = evaluation_title(info, section, checkpoint)
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
                title=f"{title}\nt-SNE of classifier features",
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
        title=title,
    )
    evaluator.run()
    return evaluator.clinical_metrics.result


def _evaluation_class_names(info: Mapping, loader, class_names, names_from_list, where: str):
    """The class names of an evaluation, after checking the stored contract (or classes) against the data's."""
    stored = contract_of(info.get("contract"))
    data_contract = contract_of(getattr(loader, "dataset", None))
    if stored is not None and data_contract is not None:
        check_contract(stored, data_contract, where, "the evaluation data")
    elif info.get("class_names") and names_from_list:
        check_class_names(info["class_names"], names_from_list, where, "the evaluation data")
    return class_names or info.get("class_names") or names_from_list
