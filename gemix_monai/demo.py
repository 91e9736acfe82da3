"""The main job: phantoms → tiny GAN → classifiers (real, pixel mixup, GeMix) → clinical report.

Every step is one run of a bundle config (``gemix_monai.bundle.run_bundle_config``); this module only
chooses the CPU budget, points each config at the previous step's outputs, and gathers the
evaluation reports into one comparison table. Layout of ``out_dir``::

    data/phantoms/            the phantom dataset (datalist.json, NIfTI slices)
    models/generator/generator.pt  G_ema of the tiny conditional StyleGAN2-ADA (train_gan.json)
    samples/ checkpoints/     GAN sample grids and training state
    classifiers/<strategy>/seed<k>/  models/model.pt + classifier.json per strategy and seed (train.json)
    report/                   intervals.md (mean ± 95 % interval over the seeds and paired differences against
                              real and pixel_mixup), metrics_table.md / .csv (seed 0), gan_samples.png,
                              <strategy>/ (seed 0) and <strategy>/seed<k>/ (train.json + evaluate.json:
                              metrics.json/.csv/.md, confusion matrices, reliability diagram), summary.json

One seed is an anecdote: the demo trains every classifier with ``seeds`` seeds (same GAN, same split) and
prints the paired differences with their intervals (``gemix_monai.experiments.stats``), as ``compare`` does.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemix_monai.experiments.stats import table_head
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, quiet_logs

__all__ = ["DEMO_DEFAULTS", "DemoResult", "run_demo", "write_metrics_table"]

#: The CPU budget: sized to finish well within 10 minutes on 2 cores (see docs/demo.md for measurements).
#: gan_kimg was 10 before the CPU fast path (issue 14); 12 keeps the GAN step's time at most what
#: 10 kimg took, by the fast path's measured compute-only speed-up of 1.22x (docs/benchmarks.md).
DEMO_DEFAULTS = {
    "image_size": 32,
    "phantom_counts": (433, 70, 178),
    "gan_kimg": 12.0,
    "gan_batch_size": 16,
    "epochs": 10,
    "seeds": 3,
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
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)  # None: undefined
    seconds: float = 0.0


def write_metrics_table(
    reports: dict[str, Path], out_dir: Path
) -> tuple[Path, Path, dict[str, dict[str, float | None]]]:
    """Compare strategies from their ``metrics.json``: write ``metrics_table.md`` and ``metrics_table.csv``
    (an undefined value, ``null`` in ``metrics.json``, is ``None`` here and "undefined"/``nan`` there)."""
    rows: dict[str, dict[str, float | None]] = {}
    class_names: list[str] = []
    for strategy, report in reports.items():
        path = Path(report) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"evaluation report of strategy {strategy!r} not found: {path}")
        payload = json.loads(path.read_text(encoding="utf-8"))
        class_names = list(payload["class_names"])
        metrics = payload["metrics"]
        rows[strategy] = {name: _value(metrics[name]) for name in TABLE_METRICS if name in metrics}
        for c in class_names:
            rows[strategy][f"fnr/{c}"] = _value(metrics[f"fnr/{c}"])
    columns = [m for m in TABLE_METRICS if any(m in r for r in rows.values())] + [f"fnr/{c}" for c in class_names]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "metrics_table.md"
    lines = [
        "# Strategy comparison (test split)",
        "",
        "Higher is better except `ece` and `fnr/<class>` (false-negative rate per class).",
        "",
        *table_head(["strategy", *columns]),
    ]
    for strategy, r in rows.items():
        lines.append(f"| {strategy} | " + " | ".join(_cell(r[c], "{:.4f}") for c in columns) + " |")
    if any(v is None for r in rows.values() for v in r.values()):
        lines += ["", "undefined: no test image of that class (docs/maths.md §4), never 0."]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_path = out_dir / "metrics_table.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["strategy", *columns])
        for strategy, r in rows.items():
            w.writerow([strategy, *(_cell(r[c], "{:.6f}", "nan") for c in columns)])
    return md, csv_path, rows


def _value(v) -> float | None:
    """A metrics.json value: ``None`` (``null``) where it is undefined (docs/maths.md §4)."""
    return None if v is None else float(v)


def _cell(v: float | None, fmt: str, undefined: str = "undefined") -> str:
    return undefined if v is None else fmt.format(v)


def write_interval_table(
    reports: dict[tuple[str, int], Path],
    strategies: Sequence[str],
    n_seeds: int,
    out_dir: Path,
    metrics: Sequence[str] = ("macro_f1", "balanced_accuracy", "macro_auroc"),
) -> Path:
    """``intervals.md``: per strategy the mean and 95 % t-interval over the seeds, then the paired differences
    (same seed) against ``real`` and ``pixel_mixup`` with their intervals (docs/experiments.md, "Intervals"):
    cut at the metric's range and marked ``clipped``, marked ``n=2 too small`` below 3 seeds; a seed whose value
    is undefined (``null``) is left out."""
    from gemix_monai.experiments.stats import metric_range, paired_interval, t_interval

    values: dict[str, dict[str, dict[int, float]]] = {}
    class_names: list[str] = []
    for (s, k), path in reports.items():
        payload = json.loads((Path(path) / "metrics.json").read_text(encoding="utf-8"))
        class_names = list(payload["class_names"])
        for m, v in payload["metrics"].items():
            seeds = values.setdefault(s, {}).setdefault(m, {})
            if v is not None:
                seeds[k] = float(v)
    shown = list(metrics) + [f"fnr/{c}" for c in class_names]

    lines = [
        f"# Strategies over {n_seeds} seed(s): mean [95 % t-interval]",
        "",
        "Same GAN, same split, the classifier's seed varies. Higher is better except `fnr/*`. An interval reaching "
        "beyond the metric's range is cut there (clipped); fewer than 3 seeds are marked too small "
        '(docs/experiments.md, "Intervals").',
        "",
        *table_head(["strategy", *shown]),
    ]
    for s in strategies:
        cells = [t_interval(list(values[s][m].values()), bounds=metric_range(m)).brief() for m in shown]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for base in ("real", "pixel_mixup"):
        if base not in strategies:
            continue
        others = [s for s in strategies if s != base]
        if not others:
            continue
        lines += [
            "",
            f"## Paired difference: strategy − {base} (same seed)",
            "",
            "An interval that excludes 0 is marked *; with few seeds most will not.",
            "",
            *table_head(["strategy", *shown]),
        ]
        for s in others:
            cells = [
                paired_interval(values[s][m], values[base][m], bounds=metric_range(m)).brief(signed=True) for m in shown
            ]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    path = out_dir / "intervals.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


@dataclass
class _DemoPlan:
    """The demo's resolved settings: folders, budgets, the (strategy, seed) runs."""

    out: Path
    report: Path
    strategies: tuple[str, ...]
    gan_kimg: float
    epochs: int
    counts: tuple[int, ...]
    n_seeds: int
    seed: int
    device: str
    val_counts: Sequence[int] | None
    test_counts: Sequence[int] | None
    bundle: str | Path | None
    bundle_logging: bool
    cfg: dict = field(default_factory=lambda: dict(DEMO_DEFAULTS))

    @property
    def runs(self) -> list[tuple[str, int]]:
        return [(s, k) for k in range(self.n_seeds) for s in self.strategies]

    def run(self, config, overrides: dict) -> None:
        from gemix_monai.bundle import run_bundle_config

        run_bundle_config(config, overrides, bundle=self.bundle, bundle_logging=self.bundle_logging)


class _Steps:
    """The progress bar and the wall/CPU seconds of each named step."""

    def __init__(self, names: list[str], verbose: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=len(names), desc="gemix demo", unit="step", disable=not verbose)
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.bar.set_postfix_str(name)
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[name], self.cpu[name] = time.perf_counter() - wall, time.process_time() - cpu
        self.bar.update(1)


def run_demo(
    out_dir: str | Path = "gemix_demo",
    *,
    gan_kimg: float | None = None,
    epochs: int | None = None,
    strategies: Sequence[str] | None = None,
    seed: int = 0,
    phantom_counts: Sequence[int] | None = None,
    val_counts: Sequence[int] | None = None,
    test_counts: Sequence[int] | None = None,
    device: str = "cpu",
    bundle: str | Path | None = None,
    verbose: bool = True,
    quiet: bool = False,
    seeds: int | None = None,
) -> DemoResult:
    """Run the whole pipeline on CPU-sized settings and write the report directory (see the module docstring).

    ``quiet=True`` shows progress bars and warnings only (the engines' per-iteration INFO logs are
    off); ``verbose=False`` also hides the bars and the final summary.
    """
    with quiet_logs() if quiet else contextlib.nullcontext():
        return _run_demo(
            out_dir,
            gan_kimg=gan_kimg,
            epochs=epochs,
            strategies=strategies,
            seed=seed,
            seeds=seeds,
            phantom_counts=phantom_counts,
            val_counts=val_counts,
            test_counts=test_counts,
            device=device,
            bundle=bundle,
            verbose=verbose,
            bundle_logging=not quiet,
        )


#: Loggers that MONAI sets up with their own handler and level (re-set to INFO whenever a handler is
#: built), so quiet mode disables them: per-iteration statistics and the bundle runner's input summary.
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


def _plan(out_dir, *, gan_kimg, epochs, strategies, seed, seeds, phantom_counts, **rest) -> _DemoPlan:
    from gemix_monai.transforms.strategies import STRATEGIES

    cfg = dict(DEMO_DEFAULTS)
    strategies = tuple(strategies or cfg["strategies"])
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; expected names from {list(STRATEGIES)}")
    n_seeds = int(cfg["seeds"] if seeds is None else seeds)
    if n_seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds!r}")
    out = Path(out_dir).resolve()
    return _DemoPlan(
        out=out,
        report=out / "report",
        strategies=strategies,
        gan_kimg=cfg["gan_kimg"] if gan_kimg is None else float(gan_kimg),
        epochs=cfg["epochs"] if epochs is None else int(epochs),
        counts=tuple(phantom_counts or cfg["phantom_counts"]),
        n_seeds=n_seeds,
        seed=seed,
        **rest,
    )


def _train_models(plan: _DemoPlan, steps: _Steps, common: dict) -> dict[tuple[str, int], Path]:
    """The GAN, then one classifier per strategy and seed; returns each classifier's ``model.pt``."""
    cfg = plan.cfg
    with steps("train GAN"):
        # The GAN trains on the CPU fast path (channels_last, fused Adam: docs/benchmarks.md) unless the
        # caller chose a path with GEMIX_FAST; the budget in DEMO_DEFAULTS was sized with it.
        with _env_default("GEMIX_FAST", "1" if plan.device == "cpu" else None):
            gan = {"max_kimg": plan.gan_kimg, "batch_size": cfg["gan_batch_size"], "sample_kimg": plan.gan_kimg}
            # masks off: the classification demo's GAN makes images, as its sized budget assumes
            plan.run("train_gan.json", {**common, **gan, "checkpoint_kimg": plan.gan_kimg, "masks": "off"})
    trained: dict[tuple[str, int], Path] = {}
    for s, k in plan.runs:
        with steps(f"train {s} seed {k}"):
            target = plan.out / "classifiers" / s / f"seed{k}"
            overrides = {
                **common,
                "seed": plan.seed + k,
                "strategy": s,
                "output_dir": str(target),
                "ckpt_dir": str(target / "models"),
                "max_epochs": plan.epochs,
                "batch_size": cfg["classifier_batch_size"],
                "tensorboard": False,
                "strategy_kwargs": dict(cfg["strategy_kwargs"].get(s, {})),
            }
            plan.run("train.json", overrides)
            trained[s, k] = target / "models" / "model.pt"
    return trained


def _write_summary(plan: _DemoPlan, steps: _Steps, files, rows, elapsed: float, cpu: float) -> Path:
    """``report/summary.json``: wall and CPU seconds (all threads of this process: on a shared machine the wall
    clock measures the neighbours as much as the demo), per step too, the settings, the metrics, the files."""
    summary = plan.report / "summary.json"
    settings = {
        **{k: v for k, v in plan.cfg.items() if k != "strategies"},
        "gan_kimg": plan.gan_kimg,
        "epochs": plan.epochs,
        "strategies": list(plan.strategies),
        "phantom_counts": list(plan.counts),
        "seed": plan.seed,
        "seeds": plan.n_seeds,
    }
    atomic_write_json(
        summary,
        {
            "seconds": round(elapsed, 1),
            "cpu_seconds": round(cpu, 1),
            "step_seconds": {k: round(v, 1) for k, v in steps.wall.items()},
            "step_cpu_seconds": {k: round(v, 1) for k, v in steps.cpu.items()},
            "settings": settings,
            "metrics": rows,
            "files": [str(f.relative_to(plan.out)) for f in files],
        },
    )
    return summary


def _run_demo(out_dir, *, verbose: bool, **options) -> DemoResult:
    from gemix_monai.data import ensure_default_dataset

    plan = _plan(out_dir, **options)
    out, report, cfg = plan.out, plan.report, plan.cfg
    report.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    names = ["phantoms", "train GAN"] + [f"{what} {s} seed {k}" for what in ("train", "evaluate") for s, k in plan.runs]
    steps = _Steps(names + ["report"], verbose)
    common = {"bundle_root": str(out), "seed": plan.seed, "device": plan.device, "image_size": cfg["image_size"]}
    with steps("phantoms"):
        datalist = ensure_default_dataset(
            out / "data" / "phantoms",
            image_size=cfg["image_size"],
            counts=plan.counts,
            seed=plan.seed,
            val_counts=plan.val_counts,
            test_counts=plan.test_counts,
        )
        common["datalist"] = str(datalist)
    trained = _train_models(plan, steps, common)
    all_reports: dict[tuple[str, int], Path] = {}
    for s, k in plan.runs:
        with steps(f"evaluate {s} seed {k}"):
            all_reports[s, k] = report / s if k == 0 else report / s / f"seed{k}"
            overrides = {**common, "ckpt_path": str(trained[s, k]), "output_dir": str(all_reports[s, k])}
            plan.run(["train.json", "evaluate.json"], overrides)
    with steps("report"):
        reports = {s: all_reports[s, 0] for s in plan.strategies}
        md, csv_path, rows = write_metrics_table(reports, report)
        intervals_md = write_interval_table(all_reports, plan.strategies, plan.n_seeds, report)
        files = [intervals_md, md, csv_path]
        grids = sorted((out / "samples").glob("fakes-*.png"))
        if grids:
            shutil.copyfile(grids[-1], report / "gan_samples.png")
            files.append(report / "gan_samples.png")
        for s in plan.strategies:
            files += sorted(p for p in reports[s].iterdir() if p.is_file())
        files.append(out / "models" / "generator" / "generator.pt")
        files += [trained[s, k] for s, k in plan.runs]
    steps.bar.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    files.insert(0, _write_summary(plan, steps, files, rows, elapsed, cpu))
    result = DemoResult(out, report, files, rows, elapsed)
    if verbose:
        print(f"\ngemix demo finished in {elapsed / 60:.1f} min ({cpu / 60:.1f} CPU-min); report directory: {report}")
        print(intervals_md.read_text(encoding="utf-8"))
        print("files written:")
        for f in files:
            print(f"  {f}")
    return result
