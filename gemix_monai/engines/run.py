"""How a training run runs, as one object: :class:`RunSettings` (docs/design.md, "Run settings").

Every trainer of this package — ``train_gan`` and ``train_generator`` (generators), ``train_classifier``,
``train_segmenter`` — and every cell of ``gemix-monai compare`` takes the same settings for *where and how* it
runs (output folder, resume, device, seed, workers, checkpoint/sample/validation intervals, tracking, progress),
separate from *what* it learns (the option objects: ``GanTrainingOptions``, ``ClassifierTrainingOptions``, ...).
A setting therefore has one name everywhere and travels as one value instead of being re-declared by every
factory.

Deprecation (docs/design.md, "Deprecated keywords"): the trainers still accept these settings as the keyword
arguments they took before (``seed=``, ``device=``, ``num_workers=``, ``checkpoint_kimg=``, ...);
:func:`merge_run_keywords` turns them into a ``RunSettings`` and warns with a ``DeprecationWarning``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from gemix_monai.utils import resolve_device

__all__ = ["RunSettings", "RUN_KEYWORDS", "resolve_device", "merge_run_keywords"]


@dataclass(frozen=True)
class RunSettings:
    """Where and how one training run runs; every field has the same meaning for every trainer.

    Args:
        output_dir: the run's folder (checkpoints, ``models/``, TensorBoard, reports); a trainer's positional
            ``output_dir`` argument fills it when this is ``None``.
        resume: ``None`` (start fresh), ``"auto"`` (continue from ``output_dir/checkpoints/latest.pt`` when present)
            or a checkpoint path. Generators resume exactly; classifiers and segmenters train from scratch and
            refuse any other value than ``None``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``, or ``None`` (CUDA when available).
        seed: network initialisation, data order and every random draw of the run (an integer in ``[0, 2**32)``).
        num_workers: ``DataLoader`` worker processes.
        checkpoint_kimg / sample_kimg: generators: checkpoint / sample-grid interval [thousands of real images]
            (``None``: a quarter of the run).
        val_interval: classifiers and segmenters: validate (and keep the best checkpoint) every N epochs.
        log_every: generators: TensorBoard scalars every N iterations.
        keep_snapshots: generators: also keep a numbered checkpoint at every checkpoint interval.
        tracking: write TensorBoard scalars (and, for the generators' audit, log to an active MLflow run).
        progress: a progress bar (rank 0).
    """

    output_dir: str | os.PathLike | None = None
    resume: str | os.PathLike | None = None
    device: str | torch.device | None = None
    seed: int = 0
    num_workers: int = 0
    checkpoint_kimg: float | None = None
    sample_kimg: float | None = None
    val_interval: int = 1
    log_every: int = 10
    keep_snapshots: bool = False
    tracking: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        from gemix_monai.mixing.samplers import check_seed

        object.__setattr__(self, "seed", check_seed(self.seed, "RunSettings.seed", allow_none=False))
        for name in ("num_workers",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"RunSettings.{name} must be an integer >= 0, got {value!r}")
        for name in ("val_interval", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RunSettings.{name} must be a positive integer, got {value!r}")
        for name in ("checkpoint_kimg", "sample_kimg"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"RunSettings.{name} must be a number > 0 or None, got {value!r}")

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def folder(self, where: str = "the trainer") -> Path:
        """``output_dir`` as a ``Path``; a ``ValueError`` naming ``where`` when it is not set."""
        if self.output_dir is None:
            raise ValueError(f"{where} needs an output folder: give output_dir (or RunSettings(output_dir=...))")
        return Path(self.output_dir)

    def replace(self, **changes) -> RunSettings:
        return dataclasses.replace(self, **changes)


#: the field names, which are also the deprecated keyword arguments of the trainers (besides ``output_dir``)
RUN_KEYWORDS = tuple(f.name for f in dataclasses.fields(RunSettings))


def merge_run_keywords(
    run: RunSettings | Mapping | None,
    keywords: dict,
    caller: str,
    *,
    output_dir=None,
    renamed: Mapping[str, str] | None = None,
    stacklevel: int = 3,
) -> RunSettings:
    """``run`` (a :class:`RunSettings`, a mapping of its fields, or ``None``) with the deprecated run keywords popped
    from ``keywords`` applied on top, and ``output_dir`` (a trainer's positional argument) when given.

    ``renamed`` maps an old keyword to its field (``{"tensorboard": "tracking"}``); ``stacklevel`` points the warning
    at the public function's caller (3: that function calls this one directly). Giving an old keyword warns once
    per call with a ``DeprecationWarning`` naming it and the replacement; an ``output_dir`` that contradicts
    ``run.output_dir`` is a ``ValueError`` naming both.
    """
    if run is None:
        run = RunSettings()
    elif isinstance(run, Mapping):
        run = RunSettings(**run)
    elif not isinstance(run, RunSettings):
        raise TypeError(f"{caller}: run must be a RunSettings (or a dict of its fields), got {type(run).__name__}")
    names = {**{k: k for k in RUN_KEYWORDS if k != "output_dir"}, **dict(renamed or {})}
    old = sorted(k for k in keywords if k in names)
    given = {names[k]: keywords.pop(k) for k in old}
    if given:
        warnings.warn(
            f"{caller}: the keyword argument(s) {old} are deprecated; pass "
            f"run=RunSettings({', '.join(f'{k}=...' for k in sorted(given))}) instead (docs/design.md)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        run = dataclasses.replace(run, **given)
    if output_dir is not None:
        if run.output_dir is not None and Path(run.output_dir) != Path(output_dir):
            raise ValueError(
                f"{caller}: output_dir={str(output_dir)!r} and run.output_dir={str(run.output_dir)!r} differ; give one"
            )
        run = dataclasses.replace(run, output_dir=output_dir)
    return run
