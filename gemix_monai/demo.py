"""The main job: phantoms → tiny GAN → classifiers (real, pixel mixup, GeMix) → clinical report.

Every step is one run of a bundle config (``gemix_monai.cli.run_bundle_config``); this module only
chooses the CPU budget, points each config at the previous step's outputs, and gathers the
evaluation reports into one comparison table. Layout of ``out_dir``::

    data/phantoms/            the phantom dataset (datalist.json, NIfTI slices)
    models/generator.pt       G_ema of the tiny conditional StyleGAN2-ADA (train_gan.json)
    samples/ checkpoints/     GAN sample grids and training state
    classifiers/<strategy>/   models/model.pt + validation report per strategy (train_classifier.json)
    report/                   metrics_table.md / .csv, gan_samples.png, <strategy>/ (evaluate.json:
                              metrics.json/.csv/.md, confusion matrices, reliability diagram), summary.json
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEMO_DEFAULTS", "DemoResult", "run_demo", "write_metrics_table"]

#: The CPU budget: sized to finish well within 10 minutes on 2 cores (see docs/demo.md for measurements).
#: gan_kimg was 10 before the CPU fast path (issue 14); 12 keeps the GAN step's time at most what
#: 10 kimg took, by the fast path's measured compute-only speed-up of 1.22x (docs/benchmarks.md).
DEMO_DEFAULTS = {
    "image_size": 32,
    "phantom_counts": (433, 70, 178),
    "gan_kimg": 12.0,
    "gan_batch_size": 16,
    "epochs": 15,
    "classifier_batch_size": 32,
    "strategies": ("real", "pixel_mixup", "gemix"),
    "strategy_kwargs": {"gemix": {"synthetic_ratio": 0.5}},
}

#: Columns of the comparison table: overall metrics, then the per-class false-negative rates.
TABLE_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_f2", "macro_auroc", "ece")


@dataclass
class DemoResult:
    out_dir: Path
    report_dir: Path
    files: list[Path] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0


def write_metrics_table(reports: dict[str, Path], out_dir: Path) -> tuple[Path, Path, dict[str, dict[str, float]]]:
    """Compare strategies from their ``metrics.json``: write ``metrics_table.md`` and ``metrics_table.csv``."""
    rows: dict[str, dict[str, float]] = {}
    class_names: list[str] = []
    for strategy, report in reports.items():
        path = Path(report) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"evaluation report of strategy {strategy!r} not found: {path}")
        payload = json.loads(path.read_text(encoding="utf-8"))
        class_names = list(payload["class_names"])
        metrics = payload["metrics"]
        rows[strategy] = {name: float(metrics[name]) for name in TABLE_METRICS if name in metrics}
        for c in class_names:
            rows[strategy][f"fnr/{c}"] = float(metrics[f"fnr/{c}"])
    columns = [m for m in TABLE_METRICS if any(m in r for r in rows.values())] + [f"fnr/{c}" for c in class_names]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "metrics_table.md"
    lines = ["# Strategy comparison (test split)", "",
             "Higher is better except `ece` and `fnr/<class>` (false-negative rate per class).", "",
             "| strategy | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for strategy, r in rows.items():
        lines.append(f"| {strategy} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |")
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_path = out_dir / "metrics_table.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["strategy", *columns])
        for strategy, r in rows.items():
            w.writerow([strategy, *(f"{r[c]:.6f}" for c in columns)])
    return md, csv_path, rows


def run_demo(out_dir: str | Path = "gemix_demo", *, gan_kimg: float | None = None, epochs: int | None = None,
             strategies: Sequence[str] | None = None, seed: int = 0, phantom_counts: Sequence[int] | None = None,
             val_counts: Sequence[int] | None = None, test_counts: Sequence[int] | None = None,
             device: str = "cpu", bundle: str | Path | None = None, verbose: bool = True,
             quiet: bool = False) -> DemoResult:
    """Run the whole pipeline on CPU-sized settings and write the report directory (see the module docstring).

    ``quiet=True`` shows progress bars and warnings only (the engines' per-iteration INFO logs are
    off); ``verbose=False`` also hides the bars and the final summary.
    """
    with _quiet_logs() if quiet else contextlib.nullcontext():
        return _run_demo(out_dir, gan_kimg=gan_kimg, epochs=epochs, strategies=strategies, seed=seed,
                         phantom_counts=phantom_counts, val_counts=val_counts, test_counts=test_counts, device=device,
                         bundle=bundle, verbose=verbose, bundle_logging=not quiet)


#: Loggers that MONAI sets up with their own handler and level (re-set to INFO whenever a handler is
#: built), so quiet mode disables them: per-iteration statistics and the bundle runner's input summary.
_SILENCED_LOGGERS = ("monai.handlers.StatsHandler", "monai.bundle.scripts", "monai.bundle.workflows",
                     "monai.data.nvimgcodec_pydicom_plugin")


@contextlib.contextmanager
def _env_default(name: str, value: str | None):
    """``os.environ[name] = value`` inside the block when the variable is unset (and value is not None)."""
    import os

    if value is None or name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


@contextlib.contextmanager
def _quiet_logs():
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.WARNING)
    silenced = [logging.getLogger(name) for name in _SILENCED_LOGGERS]
    was_disabled = [lg.disabled for lg in silenced]
    for lg in silenced:
        lg.disabled = True
    try:
        with warnings.catch_warnings():
            # StatsHandler warns that it cannot log at INFO: that is the point of quiet mode
            warnings.filterwarnings("ignore", message=".*StatsHandler may not output logs.*")
            # the security notice about evaluating configs: these are this package's own configs
            warnings.filterwarnings("ignore", message="parsing config_file .*")
            yield
    finally:
        root.setLevel(root_level)
        for lg, disabled in zip(silenced, was_disabled):
            lg.disabled = disabled


def _run_demo(out_dir, *, gan_kimg, epochs, strategies, seed, phantom_counts, val_counts, test_counts, device, bundle,
              verbose, bundle_logging) -> DemoResult:
    from tqdm.auto import tqdm

    from gemix_monai.cli import run_bundle_config
    from gemix_monai.data import ensure_default_dataset
    from gemix_monai.engines.classifier import STRATEGY_NAMES

    cfg = dict(DEMO_DEFAULTS)
    strategies = tuple(strategies or cfg["strategies"])
    unknown = [s for s in strategies if s not in STRATEGY_NAMES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; expected names from {list(STRATEGY_NAMES)}")
    gan_kimg = cfg["gan_kimg"] if gan_kimg is None else float(gan_kimg)
    epochs = cfg["epochs"] if epochs is None else int(epochs)
    counts = tuple(phantom_counts or cfg["phantom_counts"])
    out = Path(out_dir).resolve()
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    steps = ["phantoms", "train GAN"] + [f"train {s}" for s in strategies] + [f"evaluate {s}" for s in strategies] + ["report"]
    bar = tqdm(total=len(steps), desc="gemix demo", unit="step", disable=not verbose)
    timings: dict[str, float] = {}
    cpu_timings: dict[str, float] = {}

    def step(name):
        bar.set_postfix_str(name)
        timings[name], cpu_timings[name] = time.perf_counter(), time.process_time()

    def done(name):
        timings[name] = time.perf_counter() - timings[name]
        cpu_timings[name] = time.process_time() - cpu_timings[name]
        bar.update(1)

    common = {"bundle_root": str(out), "seed": seed, "device": device, "image_size": cfg["image_size"]}

    step("phantoms")
    datalist = ensure_default_dataset(out / "data" / "phantoms", image_size=cfg["image_size"], counts=counts, seed=seed,
                                      val_counts=val_counts, test_counts=test_counts)
    common["datalist"] = str(datalist)
    done("phantoms")

    step("train GAN")
    # The GAN trains on the CPU fast path (channels_last, fused Adam: docs/benchmarks.md) unless the
    # caller chose a path with GEMIX_FAST; the budget in DEMO_DEFAULTS was sized with it.
    with _env_default("GEMIX_FAST", "1" if device == "cpu" else None):
        run_bundle_config("train_gan.json", {**common, "max_kimg": gan_kimg, "batch_size": cfg["gan_batch_size"],
                                             "sample_kimg": gan_kimg, "checkpoint_kimg": gan_kimg},
                          bundle=bundle, bundle_logging=bundle_logging)
    done("train GAN")

    trained: dict[str, Path] = {}
    for s in strategies:
        step(f"train {s}")
        target = out / "classifiers" / s
        run_bundle_config("train_classifier.json", {
            **common, "strategy": s, "output_dir": str(target), "epochs": epochs,
            "batch_size": cfg["classifier_batch_size"], "tensorboard": False,
            "strategy_kwargs": dict(cfg["strategy_kwargs"].get(s, {})),
        }, bundle=bundle, bundle_logging=bundle_logging)
        trained[s] = target / "models" / "model.pt"
        done(f"train {s}")

    reports: dict[str, Path] = {}
    for s in strategies:
        step(f"evaluate {s}")
        reports[s] = report / s
        run_bundle_config("evaluate.json", {**common, "ckpt_path": str(trained[s]), "output_dir": str(reports[s])},
                          bundle=bundle, bundle_logging=bundle_logging)
        done(f"evaluate {s}")

    step("report")
    md, csv_path, rows = write_metrics_table(reports, report)
    files = [md, csv_path]
    grids = sorted((out / "samples").glob("fakes-*.png"))
    if grids:
        grid = report / "gan_samples.png"
        shutil.copyfile(grids[-1], grid)
        files.append(grid)
    for s in strategies:
        files += sorted(p for p in reports[s].iterdir() if p.is_file())
    files.append(out / "models" / "generator.pt")
    files += [trained[s] for s in strategies]
    done("report")
    bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    summary = report / "summary.json"
    # CPU seconds (all threads of this process) next to wall seconds: on a shared machine the wall
    # clock measures the neighbours as much as the demo.
    summary.write_text(json.dumps({
        "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 1),
        "step_seconds": {k: round(v, 1) for k, v in timings.items()},
        "step_cpu_seconds": {k: round(v, 1) for k, v in cpu_timings.items()},
        "settings": {**{k: v for k, v in cfg.items() if k != "strategies"}, "gan_kimg": gan_kimg, "epochs": epochs,
                     "strategies": list(strategies), "phantom_counts": list(counts), "seed": seed},
        "metrics": rows, "files": [str(f.relative_to(out)) for f in files],
    }, indent=2) + "\n", encoding="utf-8")
    files.insert(0, summary)

    result = DemoResult(out, report, files, rows, elapsed)
    if verbose:
        print(f"\ngemix demo finished in {elapsed / 60:.1f} min ({cpu / 60:.1f} CPU-min); report directory: {report}")
        print(md.read_text(encoding="utf-8"))
        print("files written:")
        for f in files:
            print(f"  {f}")
    return result
