"""Which generator covers the minority class? Families × budgets × class balance, each audited (docs/experiments.md,
"Minority generators").

One *run* is a generator family trained with one class balance (``stylegan2:uniform:10,50,100``: StyleGAN2-ADA,
class-balanced, audited at 10, 50 and 100 kimg). Each run trains once, into ``<out>/<dataset>/<family>-<balance>/``
(resumable: ``resume="auto"``; re-running continues where it stopped, or extends to a larger budget), keeping a
training checkpoint every ``gcd(budgets)`` kimg and the audit-chosen ``best.pt``. Every budget's snapshot, and
``best.pt``, is then audited with :func:`gemix_monai.experiments.audit.run_audit` against the training split with
the validation split as the real floor, on one cached feature network shared by every run of the dataset. The table
(``study.md``/``study.csv``/``study.json`` in ``<out>/<dataset>/``) gives, per row, the training CPU time and kimg per
CPU-hour, Fréchet distance, KID, precision/recall and MS-SSIM overall and for the minority class, and the
memorisation flag, next to the real floor. Each row records the code state it was made with.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any, Sequence

from gemix_monai.engines.run import RunSettings
from gemix_monai.experiments.audit import AuditSettings
from gemix_monai.experiments.report import study_markdown
from gemix_monai.generators.protocol import GENERATOR_FAMILIES as _FAMILIES
from gemix_monai.mixing.samplers import CLASS_BALANCE_MODES as _BALANCES
from gemix_monai.transforms.files import sha256_file
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, safe_torch_load

__all__ = ["StudyRun", "StudySettings", "parse_run_spec", "run_generator_study", "STUDY_FORMAT"]

logger = logging.getLogger(__name__)

STUDY_FORMAT = "gemix-generator-study/1"


@dataclass(frozen=True)
class StudyRun:
    """One generator run of the study: family, class balance, and the budgets [kimg] at which it is audited."""

    family: str
    class_balance: str
    kimgs: tuple[float, ...]
    preset: str = "tiny"

    @property
    def id(self) -> str:
        return f"{self.family}-{self.class_balance}" + ("" if self.preset == "tiny" else f"-{self.preset}")

    @property
    def snapshot_kimg(self) -> float:
        """Snapshot interval: the greatest common divisor of the budgets (in 1/1000 kimg)."""
        return reduce(math.gcd, (int(round(k * 1000)) for k in self.kimgs)) / 1000


def parse_run_spec(spec: str) -> StudyRun:
    """``FAMILY:BALANCE:KIMG[,KIMG…][:PRESET]`` → :class:`StudyRun`; errors name the spec and what is wrong."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"run spec {spec!r}: expected FAMILY:BALANCE:KIMG[,KIMG...][:PRESET]")
    family, balance, kimgs = parts[:3]
    if family not in _FAMILIES:
        raise ValueError(f"run spec {spec!r}: family {family!r} is not one of {list(_FAMILIES)}")
    if balance not in _BALANCES:
        raise ValueError(f"run spec {spec!r}: class balance {balance!r} is not one of {list(_BALANCES)}")
    try:
        values = tuple(sorted({float(v) for v in kimgs.split(",") if v.strip()}))
    except ValueError:
        raise ValueError(f"run spec {spec!r}: budgets {kimgs!r} must be numbers of kimg separated by commas") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise ValueError(f"run spec {spec!r}: budgets must be positive kimg, got {kimgs!r}")
    return StudyRun(family, balance, values, parts[3] if len(parts) == 4 else "tiny")


def _snapshot(run_dir: Path, kimg: float) -> Path:
    """The snapshot taken when training crossed ``kimg`` (the first at or past it: a checkpoint is written at the
    step that crosses the budget, which a batch size that does not divide it puts a little after)."""
    found = []
    for path in (run_dir / "checkpoints").glob("gan-*kimg.pt"):
        try:
            found.append((float(path.name[4:-7]), path))
        except ValueError:
            continue
    after = sorted(item for item in found if item[0] >= kimg - 1e-9)
    return after[0][1] if after else run_dir / "checkpoints" / f"gan-{kimg:09.3f}kimg.pt"


@dataclass(frozen=True)
class StudySettings:
    """How :func:`run_generator_study` trains and audits (every field optional).

    Args:
        source / image_size / data_options: the data, as ``gemix_monai.data.get_dataset`` takes them (``None``:
            the embedded phantoms).
        seed / batch_size / device: every run's seed, global batch (default the preset's) and device.
        kimg_cap: train no run beyond this many kimg in this call (a first pass over every run at a small budget;
            a later call without it extends them — training resumes exactly).
        select_kimg / criterion: the training-time audit's interval (default: the snapshot interval) and criterion.
        lpips_weights: a local LPIPS weight file for the audit's LPIPS diversity (none is downloaded).
    """

    source: Any = None
    image_size: int = 32
    data_options: dict | None = None
    seed: int = 0
    batch_size: int | None = None
    kimg_cap: float | None = None
    select_kimg: float | None = None
    criterion: str = "minority_recall"
    device: str | None = None
    lpips_weights: str | None = None


def _train(run: StudyRun, run_dir: Path, train, val, kimg: float, o: StudySettings):
    from gemix_monai.engines.generative import train_generator
    from gemix_monai.handlers.selection import GeneratorSelection

    kwargs = {"batch_size": o.batch_size} if o.batch_size else {}
    every = o.select_kimg or run.snapshot_kimg
    train_generator(
        train,
        family=run.family,
        preset=run.preset,
        class_names=train.class_names,
        max_kimg=kimg,
        class_balance=run.class_balance,
        selection=GeneratorSelection(val, every_kimg=every, criterion=o.criterion, seed=o.seed),
        run=RunSettings(
            output_dir=run_dir,
            seed=o.seed,
            resume="auto",
            device=o.device,
            checkpoint_kimg=run.snapshot_kimg,
            sample_kimg=run.snapshot_kimg,
            keep_snapshots=True,
            progress=False,
        ),
        **kwargs,
    )


def _cpu_at(checkpoint: Path) -> tuple[float | None, float | None]:
    """(training CPU seconds, wall seconds) a training checkpoint records (audit time left out)."""
    state = safe_torch_load(checkpoint, map_location="cpu")
    clock = (state.get("handlers") or {}).get("clock") if isinstance(state, dict) else None
    if not clock:
        return None, None
    return clock["cpu_seconds"] - clock.get("audit_cpu_seconds", 0.0), clock["wall_seconds"]


def _audit(generator_file: Path, audit_dir: Path, train, val, *, seed, device, lpips_weights) -> dict:
    """``audit.json`` of ``generator_file`` (reused when it audited the same file)."""
    from gemix_monai.experiments.audit import run_audit

    digest = sha256_file(generator_file)
    done = audit_dir / "audit.json"
    if done.is_file():
        report = json.loads(done.read_text(encoding="utf-8"))
        # an audit made before coverage existed is made again (cheap next to training)
        if report.get("generator_sha256") == digest and "coverage" in report["metrics"]["synthetic"]["overall"]:
            return report
    settings = AuditSettings(
        seed=seed,
        device=device,
        heldout_name="validation split",
        generator_name=str(generator_file),
        lpips_weights=lpips_weights,
        extra={"generator_sha256": digest},
    )
    result = run_audit(str(generator_file), train, val, audit_dir, settings)
    return result.report


def _row(dataset: str, run: StudyRun, label: str, kimg, cpu, wall, report: dict, code: dict) -> dict[str, Any]:
    names = report["class_names"]
    counts = report["counts"]["train"]
    minority = names[min(range(len(counts)), key=lambda c: counts[c])]
    syn, floor = report["metrics"]["synthetic"], report["metrics"]["real_floor"]
    row: dict[str, Any] = {
        "dataset": dataset,
        "run": run.id,
        "family": run.family,
        "preset": run.preset,
        "class_balance": run.class_balance,
        "checkpoint": label,
        "kimg": kimg,
        "train_cpu_s": None if cpu is None else int(round(cpu)),
        "wall_s": None if wall is None else int(round(wall)),
        "kimg_per_cpu_hour": None if not cpu else round(kimg / (cpu / 3600), 2),
        "minority": minority,
    }
    for key in ("fd", "kid", "precision", "recall", "coverage", "ms_ssim", "lpips"):
        row[key] = syn["overall"].get(key)
        row[f"floor_{key}"] = floor["overall"].get(key)
        row[f"minority_{key}"] = syn["per_class"][minority].get(key)
        row[f"floor_minority_{key}"] = floor["per_class"][minority].get(key)
    row["memorisation_flagged"] = bool(report["memorisation"]["flagged"])
    row["code"] = code.get("git") or code.get("gemix_monai")
    return row


def _write_table(folder: Path, dataset: str, rows: list[dict], floor: dict | None) -> None:
    """``study.json``, ``study.csv`` and ``study.md`` (:func:`gemix_monai.experiments.report.study_markdown`)."""
    atomic_write_json(folder / "study.json", {"format": STUDY_FORMAT, "dataset": dataset, "rows": rows})
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in keys})
    atomic_write_bytes(folder / "study.csv", buf.getvalue().encode())
    atomic_write_bytes(folder / "study.md", study_markdown(dataset, rows, floor).encode("utf-8"))


def run_generator_study(
    out: str | os.PathLike, runs: Sequence[StudyRun | str], settings: StudySettings | None = None, **keywords
) -> list[dict]:
    """Train (or continue) every run, audit each budget's snapshot and ``best.pt``, and write the table.

    Args:
        out: study folder; each dataset gets ``<out>/<dataset>/``.
        runs: :class:`StudyRun` objects or specs for :func:`parse_run_spec`.
        settings: :class:`StudySettings` (data, seed, batch, device, ``kimg_cap``, the training-time audit,
            LPIPS weights); ``keywords`` are its fields, the deprecated spelling.
    Returns: the table rows.
    """
    from gemix_monai.data import get_dataset
    from gemix_monai.experiments.compare import code_state

    if keywords:
        warnings.warn(
            f"run_generator_study(**keywords) is deprecated: pass settings=StudySettings(...); got {sorted(keywords)}",
            DeprecationWarning,
            stacklevel=2,
        )
    o = dataclasses.replace(settings or StudySettings(), **keywords)
    runs = [parse_run_spec(r) if isinstance(r, str) else r for r in runs]
    options, source = dict(o.data_options or {}), o.source
    train = get_dataset(source, "training", o.image_size, masks="off", cache=True, **options)
    val = get_dataset(source, "validation", o.image_size, masks="off", cache=True, contract=train.contract, **options)
    dataset = "phantoms" if source in (None, "phantom") else Path(str(source)).stem
    folder = Path(out) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    code = code_state()
    rows: list[dict] = []
    floor: dict | None = None
    for run in runs:
        run_dir = folder / run.id
        target = max(run.kimgs) if o.kimg_cap is None else min(max(run.kimgs), o.kimg_cap)
        logger.info("generator study: %s %s to %s kimg in %s", dataset, run.id, target, run_dir)
        _train(run, run_dir, train, val, target, o)
        audits = [(f"{k:g} kimg", k, _snapshot(run_dir, k)) for k in run.kimgs if k <= target]
        best = run_dir / "models" / "generator" / "best.pt"
        if best.is_file():
            sel = (safe_torch_load(best, map_location="cpu").get("selection") or {}).get("row", {})
            audits.append((f"best by {o.criterion} ({sel.get('kimg', '?')} kimg)", sel.get("kimg"), best))
        for label, kimg, path in audits:
            if not path.is_file():
                logger.warning("generator study: %s has no snapshot %s; skipped", run.id, path)
                continue
            sub = "best" if path == best else f"kimg-{kimg:g}"
            report = _audit(
                path,
                run_dir / "audits" / sub,
                train,
                val,
                seed=o.seed,
                device=o.device,
                lpips_weights=o.lpips_weights,
            )
            snap = path if path != best else _snapshot(run_dir, kimg) if kimg is not None else None
            cpu, wall = _cpu_at(snap) if snap is not None and snap.is_file() else (None, None)
            row = _row(dataset, run, label, kimg, cpu, wall, report, code)
            floor = floor or row
            rows.append(row)
            _write_table(folder, dataset, rows, floor)
    return rows
