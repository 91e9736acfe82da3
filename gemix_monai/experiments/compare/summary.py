"""A comparison's summary: intervals over seeds and paired differences against baselines
(:mod:`gemix_monai.experiments.stats`), written as ``summary.md``/``.csv``/``.png`` and ``cells.csv`` from the
finished cells (the tables and the plot are formatted by :mod:`gemix_monai.experiments.report`)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from gemix_monai.experiments.report import summary_plot
from gemix_monai.experiments.stats import Interval, metric_range, paired_differences
from gemix_monai.experiments.stats import interval as compute_interval
from gemix_monai.utils import atomic_write_bytes

from .arms import Arm
from .cells import Cell, code_states_line, is_finished
from .settings import CompareSettings

__all__ = ["load_results", "summarize", "write_summary", "finished_seconds"]


def load_results(cells: Sequence[Cell], out: Path, kind: str) -> list[dict]:
    """One row per finished cell of ``kind``: its id, network, arm, seeds, seconds, class names and metrics."""
    rows = []
    for c in cells:
        if c.kind != kind or not is_finished(c, out):
            continue
        r = json.loads((c.dir(out) / "result.json").read_text(encoding="utf-8"))
        # cells written before undefined values became null stored 0 and listed the name under "undefined"
        undefined = set(r.get("undefined", []))
        metrics = {k: (None if k in undefined else v) for k, v in r["metrics"].items()}
        rows.append(
            {
                "cell_id": c.id,
                "network": c.config["network"],
                "strategy": c.config["arm"],
                "base_strategy": c.config["strategy"],
                "gan_seed": c.config["gan_seed"],
                "seed": c.config["seed"],
                "seconds": r.get("seconds"),
                "class_names": r["class_names"],
                "metrics": metrics,
            }
        )
    return rows


def per_seed(rows: list[dict], network: str, arm: str, metric: str) -> dict[int, float]:
    """Value of one arm per classifier seed: the cell's value, averaged over GAN seeds when there are several.

    An undefined value (``None``, or NaN, e.g. the FNR of a class with no test image) is left out, so a seed
    with none defined is absent and ``n`` counts the seeds with a value (docs/experiments.md, "Intervals")."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if r["network"] == network and r["strategy"] == arm and r["metrics"].get(metric) is not None:
            value = float(r["metrics"][metric])
            if math.isfinite(value):
                by_seed.setdefault(r["seed"], []).append(value)
    return {s: sum(v) / len(v) for s, v in by_seed.items()}


def summarize(
    rows: list[dict],
    networks: Sequence[str],
    arms: Sequence[str],
    *,
    method: str = "t",
    confidence: float = 0.95,
    seed: int = 0,
    metrics: Sequence[str],
    baselines: Sequence[str],
) -> list[dict]:
    """Long-format records: one per (network, arm, metric), then the paired ones against each of ``baselines``
    present (matched by seed)."""
    metrics = list(metrics)
    records = []
    for net in networks:
        for arm in arms:
            for m in metrics:
                values = list(per_seed(rows, net, arm, m).values())
                iv = compute_interval(values, method, confidence, seed=seed, bounds=metric_range(m))
                records.append({"network": net, "strategy": arm, "comparison": "", "metric": m, "interval": iv})
        for base in baselines:
            if base not in arms:
                continue
            for arm in arms:
                if arm == base or (arm in baselines and list(baselines).index(arm) < list(baselines).index(base)):
                    continue  # pixel_mixup - real is listed once, not again as real - pixel_mixup
                for m in metrics:
                    a, b = per_seed(rows, net, arm, m), per_seed(rows, net, base, m)
                    _, diffs = paired_differences(a, b)  # matched by seed
                    iv = compute_interval(diffs, method, confidence, seed=seed, bounds=metric_range(m, difference=True))
                    records.append(
                        {"network": net, "strategy": arm, "comparison": f"- {base}", "metric": m, "interval": iv}
                    )
    return records


def finished_seconds(cells: Sequence[Cell], out: Path, kind: str) -> list[float]:
    """The run times [s] of the finished cells of ``kind``."""
    return [
        json.loads((c.dir(out) / "result.json").read_text())["seconds"]
        for c in cells
        if c.kind == kind and is_finished(c, out)
    ]


def write_summary(
    out,
    cells: Sequence[Cell],
    arms: Sequence[Arm],
    s: CompareSettings,
    *,
    kind: str,
    metrics: Callable[[list[dict]], Sequence[str]],
    baselines: Sequence[str],
    plot_metrics: Sequence[str],
    markdown: Callable[..., str],
) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv``, ``summary.png`` and ``cells.csv`` from the finished cells of ``kind``.

    ``metrics(rows)`` names the summarised metrics (a task's may depend on the class names); ``markdown(rows,
    metrics, records, code_line)`` writes ``summary.md``'s text (the task's formatter of
    :mod:`gemix_monai.experiments.report`); ``baselines``: the arms paired differences are taken against.
    """
    out = Path(out)
    rows = load_results(cells, out, kind)
    arm_names = [a.name for a in arms]
    networks = list(s.networks)
    metrics = list(metrics(rows))
    records = summarize(
        rows, networks, arm_names, method=s.interval, confidence=s.confidence, metrics=metrics, baselines=baselines
    )
    files = {
        "cells.csv": atomic_write_bytes(out / "cells.csv", _cells_csv(rows, metrics), durable=False),
        "summary.csv": atomic_write_bytes(out / "summary.csv", _summary_csv(records), durable=False),
    }
    text = markdown(rows, metrics, records, code_states_line(out, cells))
    files["summary.md"] = atomic_write_bytes(out / "summary.md", text.encode(), durable=False)
    files["summary.png"] = summary_plot(out / "summary.png", networks, arm_names, records, s, plot_metrics, baselines)
    return files


def _cells_csv(rows: list[dict], metrics: Sequence[str]) -> bytes:
    """``cells.csv``: every finished cell, every metric of its test report."""
    extra = sorted({k for r in rows for k in r["metrics"]} - set(metrics))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["cell_id", "network", "strategy", "base_strategy", "gan_seed", "seed", "seconds", *metrics, *extra])
    for r in rows:
        w.writerow(
            [
                r["cell_id"],
                r["network"],
                r["strategy"],
                r["base_strategy"],
                "" if r["gan_seed"] is None else r["gan_seed"],
                r["seed"],
                r["seconds"],
                *(_cell_value(r["metrics"], m) for m in [*metrics, *extra]),
            ]
        )
    return buf.getvalue().encode()


def _cell_value(metrics: dict, name: str) -> str:
    """A cells.csv entry: the value, ``nan`` where it is undefined (``None``), empty where the cell lacks it."""
    if name not in metrics:
        return ""
    return "nan" if metrics[name] is None else repr(float(metrics[name]))


_SUMMARY_COLUMNS = (
    "network",
    "strategy",
    "comparison",
    "metric",
    "n",
    "mean",
    "ci_lo",
    "ci_hi",
    "half_width",
    "method",
    "confidence",
    "defined",
    "excludes_zero",
    "clipped",
    "n_too_small",
)


def _summary_csv(records: list[dict]) -> bytes:
    """``summary.csv``: the records in long format."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_SUMMARY_COLUMNS)
    for rec in records:
        iv: Interval = rec["interval"]
        w.writerow(
            [
                rec["network"],
                rec["strategy"],
                rec["comparison"],
                rec["metric"],
                iv.n,
                repr(iv.mean),
                repr(iv.lo),
                repr(iv.hi),
                repr(iv.half_width),
                iv.method,
                iv.confidence,
                iv.defined,
                iv.excludes_zero if rec["comparison"] else "",
                iv.clipped,
                iv.n_too_small,
            ]
        )
    return buf.getvalue().encode()
