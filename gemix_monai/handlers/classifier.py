"""The Ignite handlers of supervised training (classifier and segmenter) and of folder classification.

Each is a small class with ``attach(engine)``, as MONAI's and Ignite's handlers are, so a trainer is assembled
from them (docs/design.md): :class:`StrategySetEpoch` (fresh synthetic draws each epoch),
:class:`KeyMetricEarlyStopping`, :class:`ClassifierInfoWriter` (``classifier.json`` / ``segmenter.json`` beside
the best checkpoint), :class:`ValidationHistory` (every validation's scalars by trainer epoch) and
:class:`ClassificationCSVWriter` (inference.json's predictions CSV). :func:`attach_best_checkpoint` wires MONAI's
``CheckpointSaver`` (atomic) and the info writer to one evaluator so both describe one epoch.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from monai.handlers import EarlyStopHandler

from gemix_monai.handlers.checkpoint import AtomicCheckpointSaver
from gemix_monai.metrics.clinical import metric_higher_is_better
from gemix_monai.networks.classifiers import CHECKPOINT_NAME, CLASSIFIER_FORMAT
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data, plain_tensor

__all__ = [
    "StrategySetEpoch",
    "KeyMetricEarlyStopping",
    "ClassifierInfoWriter",
    "ValidationHistory",
    "ClassificationCSVWriter",
    "attach_best_checkpoint",
    "best_of",
    "key_metric_cmp_fn",
    "loss_of",
    "write_predictions_csv",
]

logger = logging.getLogger(__name__)


def loss_of(output: Mapping) -> float:
    """The training loss from a (non-decollated) trainer output, for the stats handlers."""
    return float(output["loss"].detach())


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
    """Evaluator handler writing ``classifier.json`` (or a segmenter's ``segmenter.json``) beside the checkpoint
    that ``CheckpointSaver`` writes.

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
        self.info = {"format": CLASSIFIER_FORMAT, **plain_data(dict(info), "info")}
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


class ValidationHistory:
    """Evaluator handler: every validation's scalars as ``{"epoch": trainer epoch, **metrics}`` rows in ``rows``.

    ``trainer`` (set once the trainer exists) gives the epoch; before that the evaluator's own run count is used.
    :meth:`epoch` is also the ``global_epoch_transform`` of the evaluator's TensorBoard handler, so the scalars of
    one validation share one x value everywhere.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.trainer: Engine | None = None

    def epoch(self, evaluator_epoch: int) -> int:
        return self.trainer.state.epoch if self.trainer is not None else evaluator_epoch

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.COMPLETED, self)

    def __call__(self, evaluator: Engine) -> None:
        metrics = {k: float(v) for k, v in evaluator.state.metrics.items()}
        self.rows.append({"epoch": float(self.epoch(evaluator.state.epoch)), **metrics})


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


def write_predictions_csv(
    output_csv: str | os.PathLike,
    filenames: Sequence[str],
    probabilities: torch.Tensor,
    class_names: Sequence[str],
    *,
    where: str = "the classifier",
) -> Path:
    """Write ``filename, predicted_class, p(<class name>)...`` (one row per image, probabilities ``[N, K]`` in label
    order) atomically; NaN/inf probabilities raise naming the first images concerned."""
    p = torch.as_tensor(probabilities, dtype=torch.float32).reshape(len(filenames), len(class_names))
    if not torch.isfinite(p).all():
        bad = [filenames[i] for i in torch.nonzero(~torch.isfinite(p).all(1)).flatten().tolist()][:5]
        raise ValueError(f"{where} gives NaN/inf probabilities for {bad}")
    k = len(class_names)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "predicted_class", *(f"p({n})" for n in class_names)])
    for name, row in zip(filenames, p.tolist()):
        writer.writerow(
            [printable_name(name), class_names[max(range(k), key=row.__getitem__)], *(f"{v:.8g}" for v in row)]
        )
    return atomic_write_bytes(output_csv, buf.getvalue().encode())


def printable_name(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (a name made on a Latin-1 system reaches Python as
    surrogate escapes) are written as ``\\xNN`` escapes instead of failing the whole CSV."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
