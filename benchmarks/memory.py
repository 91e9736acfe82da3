"""Peak resident memory of one training step per preset, and RSS over a long run (issue 14).

* **Peak per step**: for each preset and path (``GEMIX_FAST=0`` / the fast path), a fresh child
  process builds the networks, runs one full StyleGAN2-ADA step (G main, D main with ADA, R1,
  path length where the preset uses it, EMA: the phases of ``benchmarks/generator.py``) and
  reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; a second child that only builds the
  networks gives the baseline, so the difference is what the step itself adds.
* **Growth**: one child runs ``--steps`` steps of the ``tiny`` preset (every phase every step
  with its lazy interval, i.e. R1 every 16) and samples the current RSS (``/proc/self/statm``)
  every ``--every`` steps; no growth means the late samples stay at the early ones.

Usage: ``python -m benchmarks.memory [--steps 2000] [--every 100] [--presets tiny 64]``
(writes the ``memory`` section of docs/benchmarks.md unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from benchmarks._child import run_child
from benchmarks.cpu_training import PRESETS


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(args) -> dict:
    import torch

    from benchmarks.generator import build, training_phases

    torch.set_num_threads(args.threads)
    fast = os.environ.get("GEMIX_FAST", "auto") == "1"
    divisor, batch = PRESETS[args.preset]
    preset, G, D, augment = build(args.preset, torch.device("cpu"), divisor)
    if args.mode == "build":
        return {"peak_mib": _peak_mib()}
    main, r1, pl = training_phases(preset, G, D, augment, batch, torch.device("cpu"), fast=fast, ema=True)
    if args.mode == "step":
        main()
        r1()
        if preset["pl_weight"] > 0:
            pl()
        return {"peak_mib": _peak_mib()}
    samples, started = [], time.perf_counter()
    for step in range(args.steps):
        main()
        if step % preset["r1_interval"] == 0:
            r1()
        if preset["pl_weight"] > 0 and step % preset["pl_interval"] == 0:
            pl()
        if step % args.every == 0 or step == args.steps - 1:
            samples.append((step, round(_rss_mib(), 1)))
        if args.max_seconds and time.perf_counter() - started > args.max_seconds:
            samples.append((step, round(_rss_mib(), 1)))
            break
    return {"samples": samples, "peak_mib": _peak_mib(), "seconds": time.perf_counter() - started}


def _run(mode: str, preset: str, fast: bool, args, **extra) -> dict:
    env = dict(os.environ, GEMIX_FAST="1" if fast else "0")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what `gemix-monai` (gemix_monai imported before torch) runs with
    argv = ["--child", mode, "--preset", preset, "--threads", str(args.threads)]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return run_child("benchmarks.memory", argv, env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["tiny", "64"], choices=sorted(PRESETS))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=0, help="stop the long run early (0: never)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--long-only", action="store_true", help="skip the per-preset peak table")
    parser.add_argument("--child", choices=["build", "step", "long"], dest="mode", help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="tiny", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(_child(args)))
        return

    from benchmarks._report import machine_description, write_section

    load = os.getloadavg()
    lines = [
        "## Memory (`benchmarks/memory.py`)",
        "",
        f"`python -m benchmarks.memory --threads {args.threads} --presets {' '.join(args.presets)} --steps {args.steps} "
        f"--every {args.every}{f' --max-seconds {args.max_seconds:g}' if args.max_seconds else ''}` on "
        f"{machine_description('cpu')}; load average {load[0]:.1f} at the start.",
        "",
        "Peak RSS (`ru_maxrss`) of a child process that builds the networks and runs one full step "
        "(G main, D main with ADA, R1, path length where used, EMA); `build only` is a child that stops after building.",
        "",
        "| preset | batch | path | build only (MiB) | one step (MiB) | step adds (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name in [] if args.long_only else args.presets:
        for fast in (False, True):
            base = _run("build", name, fast, args)["peak_mib"]
            step = _run("step", name, fast, args)["peak_mib"]
            lines.append(
                f"| {name} | {PRESETS[name][1]} | {'fast' if fast else 'old (GEMIX_FAST=0)'} "
                f"| {base:.0f} | {step:.0f} | {step - base:.0f} |"
            )
            print(lines[-1], flush=True)
    extra = dict(steps=args.steps, every=args.every)
    if args.max_seconds:
        extra["max_seconds"] = args.max_seconds
    long = _run("long", "tiny", True, args, **extra)
    samples = long["samples"]
    lines += [
        "",
        f"RSS of one `tiny` run on the fast path, sampled every {args.every} steps "
        f"({samples[-1][0] + 1} steps in {long['seconds']:.0f} s"
        f"{'' if samples[-1][0] + 1 >= args.steps else ', stopped early by --max-seconds'}):",
        "",
        "| step | " + " | ".join(str(s) for s, _ in samples) + " |",
        "|---|" + "---|" * len(samples),
        "| RSS (MiB) | " + " | ".join(f"{r:.0f}" for _, r in samples) + " |",
    ]
    if len(samples) >= 3:
        first, last = samples[1][1], samples[-1][1]
        lines += [
            "",
            f"From step {samples[1][0]} to step {samples[-1][0]}: {last - first:+.1f} MiB ({(last - first) / first * 100:+.1f} %).",
        ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("memory", markdown)


if __name__ == "__main__":
    main()
