"""What a GeMix classifier costs with a synthetic pool, on the fly, and against ``real`` (issue 19).

Each measurement is a fresh child process doing what a ``compare`` classifier cell does on the phantoms (32 px): read
the training, validation and test splits, train the ``tiny`` CNN for ``--epochs`` with the strategy, evaluate it on
the test split. Three variants alternate over ``--rounds``: ``real``; ``gemix`` on the fly (the generator runs in every
step); ``gemix`` drawing from a pool of ``--pool-size`` images made once beforehand (its making is timed apart). One
generator (``--generator``, default: a tiny StyleGAN2-ADA trained here for 2 kimg) serves both GeMix variants. The
child reports its whole CPU time (imports, data, training, test) and the training alone; ratios are against ``real``,
medians over the rounds.

    python -m benchmarks.pool_cost [--epochs 10] [--rounds 3] [--pool-size 30000] [--no-write]
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


def _child(argv) -> int:
    t0 = time.process_time()
    p = argparse.ArgumentParser()
    p.add_argument("--variant", required=True)
    p.add_argument("--generator")
    p.add_argument("--pool")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, required=True)
    args = p.parse_args(argv)
    from gemix_monai.data import get_dataset
    from gemix_monai.engines.classifier import evaluate_classifier, train_classifier
    from gemix_monai.engines.run import RunSettings
    from gemix_monai.utils import quiet_logs

    with quiet_logs():
        splits = [get_dataset(None, s, 32, masks="off", cache=True) for s in ("training", "validation", "test")]
        kw = {"strategy": "real"}
        if args.variant == "gemix":
            kw = {"strategy": "gemix", "generator_checkpoint": args.generator}
        elif args.variant == "gemix+pool":
            kw = {"strategy": "gemix", "synthetic_pool": args.pool}
        t1 = time.process_time()
        res = train_classifier(
            splits[0],
            splits[1],
            args.out,
            network="tiny",
            epochs=args.epochs,
            final_report=False,
            run=RunSettings(seed=0, device="cpu", tracking=False),
            **kw,
        )
        t2 = time.process_time()
        evaluate_classifier(res.checkpoint, splits[2], Path(args.out) / "test", splits[0].class_names, device="cpu")
    print(json.dumps({"cpu_total": time.process_time() - t0, "cpu_training": t2 - t1}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pool-size", type=int, default=30000)
    p.add_argument("--generator")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.child is not None:
        return _child(args.child)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    from gemix_monai.data import get_dataset
    from gemix_monai.engines.gan import train_gan
    from gemix_monai.engines.run import RunSettings
    from gemix_monai.mixing import build_sampler
    from gemix_monai.transforms.pool import write_pool
    from gemix_monai.utils import quiet_logs

    with tempfile.TemporaryDirectory() as tmp:
        generator = args.generator
        if generator is None:
            with quiet_logs():
                train = get_dataset(None, "training", 32, masks="off", cache=True)
                generator = str(
                    train_gan(
                        train,
                        Path(tmp) / "gan",
                        class_names=train.class_names,
                        max_kimg=2,
                        batch_size=16,
                        run=RunSettings(seed=0, device="cpu", progress=False),
                    )
                )
        t0, c0 = time.perf_counter(), time.process_time()
        write_pool(generator, build_sampler("gemix", 3), Path(tmp) / "pool", args.pool_size, device="cpu")
        pool_cost = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
        results: dict[str, list[dict]] = {"real": [], "gemix": [], "gemix+pool": []}
        loads = []
        for r in range(args.rounds):
            for v in results:
                loads.append(os.getloadavg()[0])
                cmd = [
                    "--child",
                    "--variant",
                    v,
                    "--generator",
                    generator,
                    "--pool",
                    str(Path(tmp) / "pool"),
                    "--out",
                    str(Path(tmp) / f"{v}-{r}"),
                    "--epochs",
                    str(args.epochs),
                ]
                results[v].append(run_child("benchmarks.pool_cost", cmd, env))
                print(v, r, results[v][-1], flush=True)
    med = {v: {k: statistics.median(x[k] for x in runs) for k in runs[0]} for v, runs in results.items()}
    from benchmarks._report import machine_description

    lines = [
        "## GeMix classifier cells: synthetic pool vs on the fly vs `real` (`benchmarks/pool_cost.py`)",
        "",
        f"`python -m benchmarks.pool_cost --epochs {args.epochs} --rounds {args.rounds} --pool-size {args.pool_size}`: "
        f"a compare-like classifier cell (phantoms, 32 px, tiny CNN, {args.epochs} epochs, batch 32, seed 0, "
        "`synthetic_ratio` 2: a GeMix epoch holds 3× the items of a `real` one) in a fresh process, one torch thread, "
        f"medians of {args.rounds} alternating rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
        f"average {min(loads):.1f}–{max(loads):.1f}; machine: {machine_description()}. Making the pool of "
        f"{args.pool_size} images once: {pool_cost['cpu']:.0f} CPU s ({pool_cost['wall']:.0f} s wall), shared by "
        "every seed of a comparison.",
        "",
        "| variant | cell CPU s (imports, data, training, test) | × real | training CPU s | × real |",
        "|---|---|---|---|---|",
    ]
    for v, m in med.items():
        lines.append(
            f"| {v} | {m['cpu_total']:.1f} | {m['cpu_total'] / med['real']['cpu_total']:.2f}× | "
            f"{m['cpu_training']:.1f} | {m['cpu_training'] / med['real']['cpu_training']:.2f}× |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("pool-cost", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
