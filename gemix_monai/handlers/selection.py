"""Generator checkpoints chosen by the audit, as StyleGAN2-ADA chooses snapshots by FID (docs/generators.md,
"Checkpoints chosen by the audit").

Every ``every_kimg`` during generator training (and at the end), :class:`GeneratorSelectionHandler` draws a fixed
one-hot sample of the EMA generator (same latents every time), embeds it with the feature network of the audits (a
classifier trained on the real training split only, :func:`gemix_monai.engines.features.real_feature_network`) and
compares it with the *validation* split's features: Fréchet distance overall, precision/recall (k-NN manifolds)
overall and per class. The rows go to ``audit/selection.csv``, ``audit/selection.json``, a figure
``audit/selection.png``, TensorBoard (``Selection/*``) and, when an MLflow run is active, MLflow. The generator that
scores best on the named criterion is kept as ``models/generator/best.pt`` beside ``generator.pt`` (the latest),
with a ``selection`` entry saying why; :func:`gemix_monai.generators.protocol.preferred_generator` makes every
consumer use it and say so.

Criteria (:data:`SELECTION_CRITERIA`): ``fd`` (lowest overall Fréchet distance), ``minority_recall`` (highest recall
of the class with the fewest training images — how much of its real variety the generator covers), ``mean_recall``
(highest mean per-class recall), ``minority_fd`` (lowest Fréchet distance of that class), ``coverage`` and
``minority_coverage`` (share of the real validation images, all or of the minority class, whose k-NN ball holds a
sample: unlike recall, scattered unrealistic samples cannot raise it; docs/quality.md). Ties, frequent for recall
on small validation classes, go to the lower overall Fréchet distance, then to the earlier checkpoint.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from ignite.engine import Engine, Events

from gemix_monai.metrics import quality as Q
from gemix_monai.utils import atomic_write_bytes, atomic_write_json

from .gan import GENERATOR_SUBPATH, _EveryImagesHandler, _export_generator

__all__ = [
    "GeneratorSelection",
    "GeneratorSelectionHandler",
    "SELECTION_CRITERIA",
    "BEST_SUBPATH",
    "score_row",
    "validation_split",
    "training_selection",
]

logger = logging.getLogger(__name__)

#: The audit-chosen generator, beside ``models/generator/generator.pt`` (the latest).
BEST_SUBPATH = GENERATOR_SUBPATH.parent / "best.pt"

#: criterion -> (description, higher is better)
SELECTION_CRITERIA = {
    "fd": ("lowest Fréchet distance to the validation split", False),
    "minority_recall": ("highest recall of the minority class (fewest training images)", True),
    "minority_coverage": ("highest coverage of the minority class (share of its real images reached)", True),
    "coverage": ("highest coverage of the validation split", True),
    "mean_recall": ("highest mean per-class recall", True),
    "minority_fd": ("lowest Fréchet distance of the minority class", False),
}


@dataclass
class GeneratorSelection:
    """Settings of the training-time audit.

    Args:
        val_data: the validation split (a dataset of ``{"image", "label": int}`` at the generator's resolution);
            ``None`` switches the audit off.
        every_kimg: audit interval [kimg]; ``None``: a fifth of the run (the run's end is always audited).
        criterion: one of :data:`SELECTION_CRITERIA`.
        per_class: synthetic images per class in the fixed sample.
        k: neighbourhood size of precision/recall (lowered for small sets).
        feature_epochs / feature_network: the real-only feature classifier's epochs and architecture.
        cache_dir: where feature networks are cached (default ``feature_cache_dir()``).
        seed: latents of the fixed sample.
    """

    val_data: Any = None
    every_kimg: float | None = None
    criterion: str = "minority_recall"
    per_class: int = 64
    k: int = 3
    feature_epochs: int = 15
    feature_network: str = "tiny"
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self):
        if self.criterion not in SELECTION_CRITERIA:
            raise ValueError(f"selection criterion must be one of {list(SELECTION_CRITERIA)}, got {self.criterion!r}")
        if self.every_kimg is not None and not self.every_kimg > 0:
            raise ValueError(f"selection every_kimg must be > 0 or None, got {self.every_kimg!r}")
        for name in ("per_class", "k", "feature_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"selection {name} must be a positive integer, got {v!r}")

    @property
    def enabled(self) -> bool:
        return self.val_data is not None

    def describe(self) -> dict:
        return {
            "criterion": self.criterion,
            "every_kimg": self.every_kimg,
            "per_class": self.per_class,
            "k": self.k,
            "feature_network": self.feature_network,
            "feature_epochs": self.feature_epochs,
            "seed": self.seed,
            "reference": "validation split",
        }


def training_selection(
    val_data, select_kimg: float | None = None, criterion: str = "minority_recall", per_class: int = 64, seed: int = 0
) -> GeneratorSelection:
    """The training-time audit as train_gan.json sets it: ``select_kimg`` is the interval [kimg] (``None``: a fifth of
    the run) and ``0`` switches the audit off; ``val_data`` ``None`` (no validation split) switches it off too."""
    off = select_kimg is not None and float(select_kimg) == 0
    return GeneratorSelection(
        val_data=None if off else val_data,
        every_kimg=None if off else select_kimg,
        criterion=criterion,
        per_class=per_class,
        seed=seed,
    )


def validation_split(source, **get_dataset_options):
    """``gemix_monai.data.get_dataset(source, "validation", ...)``, or ``None`` (logged: the training-time audit is
    then off) when the data has no validation split; every other data problem is raised as usual."""
    from gemix_monai.data import get_dataset
    from gemix_monai.data.errors import DataValidationError

    try:
        return get_dataset(source, "validation", **get_dataset_options)
    except DataValidationError as e:
        problems = getattr(e, "problems", None) or []
        if problems and all(str(where).startswith("validation") and "empty" in str(why) for where, why in problems):
            logger.info("the data has no validation split: the training-time audit (best.pt) is off")
            return None
        raise


def score_row(row: dict, criterion: str) -> tuple[float, float]:
    """A sort key (lower is better) of one audit row: the criterion, then the overall Fréchet distance."""
    value = row.get(criterion)
    higher = SELECTION_CRITERIA[criterion][1]
    fd = row.get("fd")
    fd = math.inf if fd is None or not math.isfinite(fd) else fd
    if value is None or not math.isfinite(value):
        return (math.inf, fd)
    return (-value if higher else value, fd)


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


class GeneratorSelectionHandler(_EveryImagesHandler):
    """The training-time audit of :class:`GeneratorSelection` (see the module docstring); rank 0 only.

    State for an exact resume (the rows so far, the best row) is saved in the training checkpoint through
    ``engine.stateful_handlers["selection"]``; attach it before the checkpoint handler so that a checkpoint taken at
    the same step includes that step's row.
    """

    def __init__(
        self,
        output_dir,
        settings: GeneratorSelection,
        every_kimg: float,
        generate_options: dict | None = None,
        feature_space: Callable | None = None,
    ):
        """``feature_space(settings, train_data, class_names, num_classes, image_channels, device)`` returns
        ``(feature network with .features(images, device) -> [N, D], validation features [N, D], validation labels
        [N], minority class index)``; the engine floor gives it
        (:func:`gemix_monai.engines.features.selection_feature_space`), so this handler imports no engine."""
        self.feature_space = feature_space
        self.output_dir = Path(output_dir)
        self.settings = settings
        self.every_images = every_kimg * 1000
        self.generate_options = dict(generate_options or {})
        self.history: list[dict] = []
        self.best: dict | None = None
        self._saved_at = -1
        self._features = None  # (FeatureNetwork, val features [N, D], val labels [N])

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"history": [dict(r) for r in self.history], "best": dict(self.best) if self.best else None}

    def load_state_dict(self, state: dict) -> None:
        self.history = [dict(r) for r in state.get("history", [])]
        self.best = dict(state["best"]) if state.get("best") else None

    @property
    def best_path(self) -> Path:
        return self.output_dir / BEST_SUBPATH

    @property
    def audit_dir(self) -> Path:
        return self.output_dir / "audit"

    def attach(self, engine: Engine) -> None:
        engine.stateful_handlers["selection"] = self
        engine.add_event_handler(Events.STARTED, self._started)
        super().attach(engine)

    def _started(self, engine: Engine) -> None:
        if engine.rank != 0:
            return
        # a fresh run must not leave an earlier run's best.pt to be picked up
        if engine.state.iteration == 0 and not self.history:
            for stale in (self.best_path, self.audit_dir / "selection.csv", self.audit_dir / "selection.json"):
                stale.unlink(missing_ok=True)
        kept = [r for r in self.history if r["images"] <= engine.images_seen]
        if len(kept) != len(self.history):  # rows of a future this resume will recompute
            self.history = kept

    # -- the audit -------------------------------------------------------------------------------
    def _feature_space(self, engine: Engine):
        if self._features is None:
            if self.feature_space is None:
                raise ValueError(
                    "GeneratorSelectionHandler needs feature_space to audit (the training engines pass "
                    "gemix_monai.engines.features.selection_feature_space)"
                )
            fn, val_feat, val_lab, self.minority = self.feature_space(
                self.settings,
                engine.train_data,
                engine.class_names,
                engine.num_classes,
                _image_channels(engine),
                engine.device,
            )
            self._features = (fn, val_feat, val_lab)
        return self._features

    @torch.no_grad()
    def _row(self, engine: Engine) -> dict:
        from gemix_monai.generators.protocol import as_image_generator

        fn, val_feat, val_lab = self._feature_space(engine)
        s, k_cls, names = self.settings, engine.num_classes, engine.class_names
        labels = torch.arange(k_cls).repeat_interleave(s.per_class)
        onehot = torch.nn.functional.one_hot(labels, k_cls).float()
        gen = as_image_generator(engine.G_ema)
        images = gen.generate(onehot, seed=s.seed, batch_size=64, device=engine.device, **self.generate_options)
        images = images.detach().float().cpu()
        row: dict[str, Any] = {"images": int(engine.images_seen), "kimg": round(engine.images_seen / 1000, 3)}
        if not bool(torch.isfinite(images).all()):
            row.update(fd=None, precision=None, recall=None, coverage=None, mean_recall=None, minority_recall=None)
            row.update(minority_fd=None, minority_coverage=None)
            row["note"] = "non-finite pixels"
            return row
        feat = fn.features(images, device=engine.device)
        row["fd"] = _finite(Q.frechet_distance(feat, val_feat))
        k = max(1, min(s.k, feat.shape[0] - 1, val_feat.shape[0] - 1))
        pr = Q.precision_recall(val_feat, feat, k=k)
        row["precision"], row["recall"] = _finite(pr.precision), _finite(pr.recall)
        row["coverage"] = _finite(
            Q.density_coverage(val_feat, feat, k=max(1, min(s.k, val_feat.shape[0] - 1))).coverage
        )
        recalls = []
        for c, name in enumerate(names):
            real_c, fake_c = val_feat[val_lab == c], feat[labels == c]
            if real_c.shape[0] < 2:
                row[f"precision/{name}"] = row[f"recall/{name}"] = row[f"fd/{name}"] = row[f"coverage/{name}"] = None
                continue
            kc = max(1, min(s.k, real_c.shape[0] - 1, fake_c.shape[0] - 1))
            prc = Q.precision_recall(real_c, fake_c, k=kc)
            row[f"precision/{name}"], row[f"recall/{name}"] = _finite(prc.precision), _finite(prc.recall)
            dcc = Q.density_coverage(real_c, fake_c, k=max(1, min(s.k, real_c.shape[0] - 1)))
            row[f"coverage/{name}"] = _finite(dcc.coverage)
            try:
                row[f"fd/{name}"] = _finite(Q.frechet_distance(fake_c, real_c))
            except ValueError:  # fewer images than the Fréchet distance needs
                row[f"fd/{name}"] = None
            recalls.append(row[f"recall/{name}"])
        defined = [r for r in recalls if r is not None]
        row["mean_recall"] = float(np.mean(defined)) if defined else None
        minority = names[self.minority]
        row["minority"] = minority
        row["minority_recall"] = row.get(f"recall/{minority}")
        row["minority_fd"] = row.get(f"fd/{minority}")
        row["minority_coverage"] = row.get(f"coverage/{minority}")
        return row

    def save(self, engine: Engine) -> None:
        if not self._claim(engine):
            return
        cpu0 = time.process_time()
        try:
            with torch.enable_grad():  # the feature network trains on first use
                self._feature_space(engine)
            self._save(engine)
        finally:
            clock = getattr(engine, "clock", None)
            if clock is not None:  # the audit's time is not the generator's training time
                clock.audit_cpu_seconds += time.process_time() - cpu0

    def _save(self, engine: Engine) -> None:
        row = self._row(engine)
        self.history = [r for r in self.history if r["images"] != row["images"]] + [row]
        crit = self.settings.criterion
        if self.best is None or score_row(row, crit) < score_row(self.best, crit):
            if score_row(row, crit)[0] != math.inf:
                self.best = dict(row)
                extra = {"selection": {**self.settings.describe(), "row": dict(row)}}
                record = getattr(engine, "training_record", None)
                if callable(record):
                    extra["training"] = record()
                _export_generator(engine.G_ema, engine.class_names, self.best_path, extra)
        value = row.get(crit)
        logger.info(
            "selection at %.1f kimg: %s=%s, fd=%s; best %s at %s kimg",
            row["kimg"],
            crit,
            "n/a" if value is None else f"{value:.4f}",
            "n/a" if row.get("fd") is None else f"{row['fd']:.4f}",
            crit,
            None if self.best is None else self.best["kimg"],
        )
        self._write(engine)

    # -- outputs ---------------------------------------------------------------------------------
    def _write(self, engine: Engine) -> None:
        self.audit_dir.mkdir(parents=True, exist_ok=True)
        keys: list[str] = []
        for r in self.history:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        w.writeheader()
        for r in self.history:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
        atomic_write_bytes(self.audit_dir / "selection.csv", buf.getvalue().encode())
        atomic_write_json(
            self.audit_dir / "selection.json",
            {"settings": self.settings.describe(), "best": self.best, "history": self.history},
        )
        self._figure()
        row = self.history[-1]
        writer = getattr(engine, "summary_writer", None)
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k not in ("images", "kimg")}
        if writer is not None:
            for key, value in scalars.items():
                writer.add_scalar(f"Selection/{key}", value, row["images"])
        try:  # MLflow only when a run is active (monai.bundle's tracking starts one)
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metrics(
                    {f"selection.{k.replace('/', '.')}": v for k, v in scalars.items()}, step=row["images"]
                )
        except ImportError:
            pass

    def _figure(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        kimg = [r["kimg"] for r in self.history]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
        ax1.plot(kimg, [np.nan if r.get("fd") is None else r["fd"] for r in self.history], "o-", color="black")
        ax1.set(xlabel="kimg", ylabel="Fréchet distance (validation)", title="FD, lower is better")
        for key in [k for k in self.history[-1] if k.startswith("recall/")]:
            ax2.plot(kimg, [np.nan if r.get(key) is None else r[key] for r in self.history], "o-", label=key[7:])
        ax2.set(xlabel="kimg", ylabel="recall (validation)", title="recall per class, higher is better", ylim=(0, 1))
        ax2.legend(fontsize=7)
        if self.best is not None:
            for ax in (ax1, ax2):
                ax.axvline(self.best["kimg"], color="grey", ls="--", lw=1)
        fig.suptitle(f"training-time audit; best by {self.settings.criterion} (dashed)", fontsize=9)
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(self.audit_dir / "selection.png", png.getvalue())


def _image_channels(engine) -> int:
    preprocessing = (getattr(engine, "contract", None) or {}).get("preprocessing") or {}
    return int(preprocessing.get("channels", engine.G_ema.img_channels))
