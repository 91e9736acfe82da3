"""kimg per CPU-hour of the real ``train_gan`` under each setting, with the audit numbers beside each (issue 19).

Each variant trains the ``tiny`` StyleGAN2-ADA on the embedded phantoms (images only, 32 px, seed 0) from scratch to
``--kimg`` in a fresh child process, then the generator is audited against the training split with the validation
floor on the one cached real-only feature network (``gemix_monai.experiments.audit.run_audit``). Reported per
variant: training CPU seconds and wall seconds (the engine's ``TrainingClock``: audit time excluded, start-up
excluded), kimg per CPU-hour and per wall-hour, and FD / precision / recall / minority recall, so that a faster
setting is only called better when it reaches the same numbers. Variants alternate over ``--rounds``; the figures
are medians; the load average is printed with them.

Variants: ``default`` (the exact path, ``GEMIX_FAST=exact``: what ``train-gan`` ran before this benchmark made
the fast path its default), ``fast`` (``GEMIX_FAST=1``: channels_last and
the fused Adam), ``fast+bf16`` (plus oneDNN bf16 math where the CPU has it), ``batch32`` (fast, batch 32), and
``threads2`` (fast, two torch threads instead of one).

    python -m benchmarks.kimg_per_hour --kimg 5 --rounds 2 [--variants default fast] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._child import run_child

VARIANTS = {
    "default": ({"GEMIX_FAST": "exact"}, {}, 1),  # the exact path: the default when the table was made
    "fast": ({"GEMIX_FAST": "1"}, {}, 1),
    "fast+bf16": ({"GEMIX_FAST": "1", "GEMIX_BF16": "1"}, {}, 1),
    "batch32": ({"GEMIX_FAST": "1"}, {"batch_size": 32}, 1),
    "threads2": ({"GEMIX_FAST": "1"}, {}, 2),
}


def _child(argv) -> int:
    """Child: train one variant, audit it, print one JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--kimg", type=float, required=True)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    import torch

    from gemix_monai.data import get_dataset
    from gemix_monai.engines.gan import train_gan
    from gemix_monai.engines.run import RunSettings
    from gemix_monai.experiments.audit import AuditSettings, run_audit
    from gemix_monai.utils import quiet_logs, safe_torch_load

    with quiet_logs():
        train = get_dataset(None, "training", 32, masks="off", cache=True)
        val = get_dataset(None, "validation", 32, masks="off", cache=True, contract=train.contract)
        path = train_gan(
            train,
            args.out,
            preset="tiny",
            class_names=train.class_names,
            max_kimg=args.kimg,
            batch_size=args.batch_size,
            run=RunSettings(seed=0, device="cpu", progress=False),
        )
        clock = safe_torch_load(Path(args.out) / "checkpoints" / "latest.pt")["handlers"]["clock"]
        report = run_audit(str(path), train, val, Path(args.out) / "audit", AuditSettings(seed=0, device="cpu")).report
    syn = report["metrics"]["synthetic"]
    minority = report["class_names"][min(range(3), key=lambda c: report["counts"]["train"][c])]
    cpu = clock["cpu_seconds"] - clock.get("audit_cpu_seconds", 0.0)
    print(
        json.dumps(
            {
                "cpu_s": cpu,
                "wall_s": clock["wall_seconds"],
                "threads": torch.get_num_threads(),
                "fd": syn["overall"]["fd"],
                "precision": syn["overall"]["precision"],
                "recall": syn["overall"]["recall"],
                "minority_recall": syn["per_class"][minority]["recall"],
            }
        )
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kimg", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.child is not None:
        return _child(args.child)
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in args.variants:
                env_extra, kw, threads = VARIANTS[v]
                env = {**os.environ, **env_extra, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                out = Path(tmp) / f"{v}-{r}"
                cmd = ["--child", "--out", str(out), "--kimg", str(args.kimg)]
                if "batch_size" in kw:
                    cmd += ["--batch-size", str(kw["batch_size"])]
                loads.append(os.getloadavg()[0])
                results[v].append(run_child("benchmarks.kimg_per_hour", cmd, env))
                print(v, r, results[v][-1], flush=True)
    from benchmarks._report import machine_description

    rows = []
    for v, runs in results.items():
        med = {k: statistics.median(x[k] for x in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
        med["kimg_per_cpu_hour"] = args.kimg / (med["cpu_s"] / 3600)
        med["kimg_per_wall_hour"] = args.kimg / (med["wall_s"] / 3600)
        rows.append((v, med))
    base = dict(rows)["default"]["kimg_per_cpu_hour"] if "default" in dict(rows) else None
    lines = [
        "## kimg per CPU-hour of `train_gan` by setting (`benchmarks/kimg_per_hour.py`)",
        "",
        f"`python -m benchmarks.kimg_per_hour --kimg {args.kimg:g} --rounds {args.rounds}`: tiny StyleGAN2-ADA on the "
        f"phantoms (32 px, seed 0), {args.kimg:g} kimg per run, medians of {args.rounds} alternating runs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average during the runs "
        f"{min(loads):.1f}–{max(loads):.1f}; machine: {machine_description()}. Audit: training split vs synthetic, "
        "the cached real-only feature network.",
        "",
        "| setting | torch threads | train CPU s | wall s | kimg/CPU-h | kimg/wall-h | vs default (CPU) | FD | "
        "precision | recall | minority recall |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, m in rows:
        ratio = f"{m['kimg_per_cpu_hour'] / base:.2f}×" if base else "–"
        lines.append(
            f"| {v} | {m['threads']:.0f} | {m['cpu_s']:.0f} | {m['wall_s']:.0f} | {m['kimg_per_cpu_hour']:.1f} | "
            f"{m['kimg_per_wall_hour']:.1f} | {ratio} | {m['fd']:.3f} | {m['precision']:.2f} | {m['recall']:.2f} | "
            f"{m['minority_recall']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("kimg-per-hour", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
