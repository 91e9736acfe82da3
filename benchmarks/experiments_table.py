"""Condense a ``gemix-monai compare`` summary.csv into the Markdown tables of docs/experiments.md.

    python -m benchmarks.experiments_table runs/compare_phantoms/summary.csv [--metrics macro_f1 ...]

Prints, per network, one table of mean [95 % interval] per strategy and one table per baseline of
paired differences (``*`` where the interval excludes 0). It reads the numbers ``compare`` wrote and
formats them; it computes nothing itself.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

from gemix_monai.experiments.stats import Interval, table_head

DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auroc", "ece", "fnr/hemangioma")


def _cell(row: dict, signed: bool) -> str:
    iv = Interval(
        mean=float(row["mean"]),
        lo=float(row["ci_lo"]),
        hi=float(row["ci_hi"]),
        half_width=float(row["half_width"]),
        n=int(row["n"]),
        confidence=float(row["confidence"]),
        method=row["method"],
        defined=row["defined"] == "True",
        clipped=row.get("clipped") == "True",  # absent from summaries written before the column existed
    )
    return iv.brief(signed)


def tables(path: str, metrics) -> str:
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    metrics = [m for m in metrics if any(r["metric"] == m for r in rows)]
    by = defaultdict(dict)
    for r in rows:
        by[(r["network"], r["comparison"], r["strategy"])][r["metric"]] = r
    out = []
    for net in dict.fromkeys(r["network"] for r in rows):
        for comparison in dict.fromkeys(r["comparison"] for r in rows if r["network"] == net):
            strategies = list(
                dict.fromkeys(r["strategy"] for r in rows if r["network"] == net and r["comparison"] == comparison)
            )
            title = (
                f"`{net}`: mean [95 % interval]"
                if not comparison
                else f"`{net}`: paired difference, strategy {comparison}"
            )
            out += [f"**{title}**", "", *table_head(["strategy", "n", *metrics])]
            for s in strategies:
                cells = by[(net, comparison, s)]
                n = next(iter(cells.values()))["n"]
                out.append(
                    f"| {s} | {n} | "
                    + " | ".join(_cell(cells[m], bool(comparison)) if m in cells else "" for m in metrics)
                    + " |"
                )
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summary_csv")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    a = p.parse_args(argv)
    print(tables(a.summary_csv, a.metrics))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
