"""Where a short ``train-gan`` run spends its time before (and besides) training (issue 19).

One child process per round runs the stages of ``gemix-monai train-gan --max-kimg 0.1`` on the embedded phantoms in
order and times each with ``time.perf_counter`` and ``time.process_time``:

* ``import``: ``import gemix_monai.cli`` and what the bundle run imports (``monai.bundle``, the engines);
* ``data: training`` / ``data: validation``: ``get_dataset(..., cache=True)`` — header checks, decoding every image
  for validation, then filling the in-memory cache (the two splits ``train_gan.json`` reads);
* ``networks``: building the tiny StyleGAN2-ADA, its discriminator and augment pipe;
* ``training``: ``trainer.run()`` for 0.1 kimg (7 steps of batch 16), the engine's own time;
* ``whole command``: a separate child running the CLI end to end, for the total a user waits.

Rounds alternate and medians are reported with the load average.

    python -m benchmarks.startup [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks._child import run_child


def _stage(name: str, t0: tuple[float, float], out: dict) -> tuple[float, float]:
    now = (time.perf_counter(), time.process_time())
    out[name] = {"wall": now[0] - t0[0], "cpu": now[1] - t0[1]}
    return now


def _child(argv) -> int:
    out: dict = {}
    t = (time.perf_counter(), time.process_time())
    import monai.bundle  # noqa: F401

    import gemix_monai.cli  # noqa: F401
    from gemix_monai.engines.gan import build_networks, create_gan_trainer
    from gemix_monai.engines.run import RunSettings

    t = _stage("import", t, out)
    from gemix_monai.data import get_dataset

    train = get_dataset(None, "training", 32, masks="off", cache=True)
    t = _stage("data: training", t, out)
    get_dataset(None, "validation", 32, masks="off", cache=True, contract=train.contract)
    t = _stage("data: validation", t, out)
    G, D, augment, preset = build_networks("tiny", num_classes=3, class_names=train.class_names)
    options = {k: v for k, v in preset.items() if k not in ("G", "D", "augment", "name", "resolution")}
    options.update(max_kimg=0.1, batch_size=16)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = create_gan_trainer(
            train,
            G=G,
            D=D,
            augment_pipe=augment,
            options=options,
            num_classes=3,
            class_names=train.class_names,
            run=RunSettings(output_dir=tmp, device="cpu", progress=False),
        )
        t = _stage("networks", t, out)
        trainer.run()
        _stage("training", t, out)
    print(json.dumps(out))
    return 0


def _whole() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), os.times()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gemix_monai.cli",
                "train-gan",
                "--bundle-root",
                tmp,
                "--max-kimg",
                "0.1",
                "--masks",
                "off",
                "--select-kimg",
                "0",
                "--device",
                "cpu",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},  # one torch thread, as the other stages
        )
        c1 = os.times()
        return {
            "wall": time.perf_counter() - t0,
            "cpu": (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system),
        }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", action="store_true")
    args = p.parse_args(argv)
    if args.child:
        return _child([])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stages: dict[str, list[dict]] = {}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for k, v in run_child("benchmarks.startup", ["--child"], env).items():
            stages.setdefault(k, []).append(v)
        stages.setdefault("whole command", []).append(_whole())
    from benchmarks._report import machine_description

    lines = [
        "## Where a short `train-gan` run spends its time (`benchmarks/startup.py`)",
        "",
        f"`python -m benchmarks.startup --rounds {args.rounds}`: the stages of `train-gan --max-kimg 0.1` on the "
        f"phantoms (681 training and 137 validation images, 32 px), one torch thread, medians of {args.rounds} "
        f"rounds, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {min(loads):.1f}–"
        f"{max(loads):.1f}; machine: {machine_description()}.",
        "",
        "| stage | wall s | CPU s |",
        "|---|---|---|",
    ]
    for k, runs in stages.items():
        lines.append(
            f"| {k} | {statistics.median(r['wall'] for r in runs):.2f} | {statistics.median(r['cpu'] for r in runs):.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("startup", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
