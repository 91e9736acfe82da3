"""CPU training throughput, old path vs. fast path (issue 14), measured in one run.

A training step is timed as ``benchmarks/generator.py`` times it (one G step and one D step with
ADA p = 0.2 "bgc", R1 every 16 steps and path length every 4 amortised) plus the generator EMA
update the trainer runs after every step. Two things change between "old" and "new":

* inside the process: ``GEMIX_FAST=0`` (custom ops through ``torch.library`` on every call, NCHW,
  for-loop Adam, per-parameter EMA) vs. the fast path (lean ``autograd.Function`` calls of the
  same kernels, ``channels_last`` networks, fused Adam, foreach EMA; with ``--bf16`` also a third
  variant with oneDNN bf16 math in the main G/D steps);
* the process itself: OpenMP's default wait policy (what every run had before) vs.
  ``OMP_WAIT_POLICY=PASSIVE`` (what importing ``gemix_monai`` before ``torch`` now sets). The
  variable is read when libgomp loads, so each policy runs in its own child process; the
  children alternate (old policy, new policy, old, new, ...) and every figure is a median.

Usage: ``python -m benchmarks.cpu_training [--threads 2] [--rounds 3] [--presets tiny 64] [--bf16]``
(writes the ``cpu-training`` section of docs/benchmarks.md unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from benchmarks._child import run_child

PRESETS = {"tiny": (1, 16), "32": (8, 4), "64": (8, 4), "128": (8, 4)}  # name -> (channel divisor, batch)


def _variant_phases(name: str, variants, dev):
    """``(preset, {variant: {"main", "r1"[, "pl"]}})``: one freshly built network set per variant (``old`` is
    ``GEMIX_FAST=0``, ``new+bf16`` adds bf16 math), each phase a callable running one step of it."""
    from benchmarks.generator import build, training_phases

    divisor, batch = PRESETS[name]
    phases = {}
    for v in variants:
        os.environ["GEMIX_FAST"] = "0" if v == "old" else "1"
        preset, G, D, augment = build(name, dev, divisor)
        main, r1, pl = training_phases(
            preset, G, D, augment, batch, dev, fast=v != "old", bf16=v == "new+bf16", ema=True
        )
        phases[v] = dict(main=main, r1=r1, **({"pl": pl} if preset["pl_weight"] > 0 else {}))
    return preset, phases


def _child(args) -> dict:
    import torch

    from benchmarks._report import timeit
    from benchmarks.generator import build

    torch.set_num_threads(args.threads)
    dev = torch.device("cpu")
    variants = ["old", "new"] + (["new+bf16"] if args.bf16 else [])
    out = {"threads": torch.get_num_threads(), "policy": os.environ.get("OMP_WAIT_POLICY", "default"), "presets": {}}
    for name in args.presets:
        divisor, batch = PRESETS[name]
        preset, phases = _variant_phases(name, variants, dev)
        times = {v: {} for v in variants}
        for v in variants:  # alternate the variants phase by phase
            os.environ["GEMIX_FAST"] = "0" if v == "old" else "1"
            for key, fn in phases[v].items():
                times[v][key] = timeit(fn, warmup=1, min_time=args.min_time, max_iters=20)
        res = {}
        for v in variants:
            t = times[v]
            t_step = (
                t["main"] + t["r1"] / preset["r1_interval"] + (t["pl"] / preset["pl_interval"] if "pl" in t else 0.0)
            )
            res[v] = {"step_s": t_step, "img_s": batch / t_step, **{k + "_s": x for k, x in t.items()}}
        # inference: is no_grad ever slower than with autograd recording? (new path, const noise)
        os.environ["GEMIX_FAST"] = "1"
        preset, G, D, augment = build(name, dev, divisor)
        G.requires_grad_(True)
        z = torch.randn(8, G.z_dim)
        c = torch.eye(2)[torch.arange(8) % 2]

        def infer_nograd():
            with torch.no_grad():
                G(z, c, noise_mode="const")

        def infer_grad():
            G(z, c, noise_mode="const")

        res["infer"] = {
            "no_grad_s": timeit(infer_nograd, warmup=1, min_time=args.min_time),
            "grad_s": timeit(infer_grad, warmup=1, min_time=args.min_time),
        }
        res["batch"] = batch
        res["widths"] = [G.synthesis.blocks[-1].out_channels, G.synthesis.blocks[0].out_channels]
        out["presets"][name] = res
    out["load"] = os.getloadavg()[0]
    return out


def _cpu_time(args) -> str:
    """Compute-side comparison that machine load hardly moves: one thread, process CPU seconds per
    step (not wall time), the variants alternating in one process, medians over ``--rounds``."""
    import torch

    torch.set_num_threads(1)
    dev = torch.device("cpu")
    variants = ["old", "new"] + (["new+bf16"] if args.bf16 else [])
    lines = [
        "",
        f"Compute only (`--cpu-time`): 1 thread, process CPU seconds per step, variants alternating in one process, "
        f"medians of {args.rounds} rounds of 3 steps; load average {os.getloadavg()[0]:.1f} at the start.",
        "",
        "| preset | path | CPU s / step | vs. old |",
        "|---|---|---|---|",
    ]
    for name in args.presets:
        preset, phases = _variant_phases(name, variants, dev)
        fns = {v: (p["main"], p["r1"], p.get("pl")) for v, p in phases.items()}
        for v, (main, r1, _) in fns.items():  # warm-up
            os.environ["GEMIX_FAST"] = "0" if v == "old" else "1"
            main(), r1()
        samples = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                os.environ["GEMIX_FAST"] = "0" if v == "old" else "1"
                main, r1, pl = fns[v]
                c0 = time.process_time()
                for _ in range(3):
                    main()
                t_main = (time.process_time() - c0) / 3
                c0 = time.process_time()
                r1()
                t_r1 = time.process_time() - c0
                t_pl = 0.0
                if pl is not None:
                    c0 = time.process_time()
                    pl()
                    t_pl = time.process_time() - c0
                samples[v].append(t_main + t_r1 / preset["r1_interval"] + t_pl / preset["pl_interval"])
        base = statistics.median(samples["old"])
        for v in variants:
            m = statistics.median(samples[v])
            lines.append(f"| {name} | {v} | {m:.3f} | ×{base / m:.2f} |")
            print(lines[-1], flush=True)
    lines.append(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")
    return "\n".join(lines)


def _infer(args) -> str:
    """``torch.no_grad()`` vs. autograd recording for G inference, alternating in one process:
    process CPU seconds (1 thread: load-robust) and wall seconds at ``--threads``."""
    import torch

    from benchmarks.generator import build

    os.environ["GEMIX_FAST"] = "1"
    lines = [
        "",
        f'Inference (`--infer`): G(z, c, noise_mode="const"), batch 8, the two modes alternating {args.rounds} × 5 calls, '
        f"medians; load average {os.getloadavg()[0]:.1f} at the start.",
        "",
        "| preset | threads | measure | no_grad (ms) | grad on (ms) | grad / no_grad |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.presets:
        divisor, _ = PRESETS[name]
        preset, G, D, augment = build(name, torch.device("cpu"), divisor)
        G.requires_grad_(True)
        z, c = torch.randn(8, G.z_dim), torch.eye(2)[torch.arange(8) % 2]
        for threads, clock, label in ((1, time.process_time, "CPU time"), (args.threads, time.perf_counter, "wall")):
            torch.set_num_threads(threads)
            samples = {"no_grad": [], "grad": []}
            for _ in range(args.rounds * 5 + 2):
                for mode in samples:
                    with torch.set_grad_enabled(mode == "grad"):
                        t0 = clock()
                        G(z, c, noise_mode="const")
                        samples[mode].append(clock() - t0)
            a, b = (statistics.median(samples[m][2:]) for m in ("no_grad", "grad"))
            lines.append(f"| {name} | {threads} | {label} | {a * 1e3:.1f} | {b * 1e3:.1f} | ×{b / a:.2f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


def _run_child(policy: str, args) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "PASSIVE":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env["GEMIX_FAST"] = "0"  # so that importing gemix_monai leaves OpenMP's default policy alone
    argv = ["--child", "--threads", str(args.threads), "--min-time", str(args.min_time), "--presets", *args.presets]
    return run_child("benchmarks.cpu_training", argv + (["--bf16"] if args.bf16 else []), env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=["tiny", "64"], choices=sorted(PRESETS))
    parser.add_argument("--bf16", action="store_true", help="also time bf16 math in the main steps (native-bf16 CPUs)")
    parser.add_argument("--min-time", type=float, default=0.5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="only the 1-thread CPU-time comparison (appended to the section as its own table)",
    )
    parser.add_argument("--infer", action="store_true", help="only the no_grad vs. grad-on inference comparison")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args)))
        return
    presets = " ".join(args.presets)
    for wanted, measure, section, title, command in (
        (
            args.infer,
            _infer,
            "cpu-training-infer",
            "Inference with and without autograd",
            f"--infer --threads {args.threads} --rounds {args.rounds} --presets {presets}",
        ),
        (
            args.cpu_time,
            _cpu_time,
            "cpu-training-cputime",
            "CPU training, compute only",
            f"--cpu-time --rounds {args.rounds} --presets {presets}{' --bf16' if args.bf16 else ''}",
        ),
    ):
        if wanted:  # a side table, written as its own section
            text = measure(args)
            print(text)
            if not args.no_write:
                from benchmarks._report import write_section

                write_section(section, f"### {title}\n\n`python -m benchmarks.cpu_training {command}`" + text)
            return

    import torch

    from benchmarks._report import machine_description, write_section

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started = time.perf_counter()
    runs = {"default": [], "PASSIVE": []}
    for r in range(args.rounds):
        for policy in ("default", "PASSIVE"):
            runs[policy].append(_run_child(policy, args))
            print(
                f"round {r + 1} {policy}: "
                + ", ".join(
                    f"{n} "
                    + "/".join(f"{v} {x['step_s']:.3f}s" for v, x in p.items() if isinstance(x, dict) and "step_s" in x)
                    for n, p in runs[policy][-1]["presets"].items()
                )
                + f" (load {runs[policy][-1]['load']:.1f})",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()

    def med(policy, name, variant, key):
        return statistics.median(run["presets"][name][variant][key] for run in runs[policy])

    variants = ["old", "new"] + (["new+bf16"] if args.bf16 else [])
    lines = [
        "## CPU training: old path vs. fast path (`benchmarks/cpu_training.py`)",
        "",
        f"`python -m benchmarks.cpu_training --threads {args.threads} --rounds {args.rounds} --presets {' '.join(args.presets)}"
        f"{' --bf16' if args.bf16 else ''}` on {machine_description('cpu')}; {elapsed:.0f} s in all; load average "
        f"(1/5/15 min) {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before, "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} after; child loads: "
        + ", ".join(f"{run['load']:.1f}" for pol in ("default", "PASSIVE") for run in runs[pol])
        + ".",
        "",
        'Step = G main + D main (ADA p = 0.2 "bgc") + G EMA update, + R1/16 (+ path length/4 where the preset uses it). '
        f"Medians of {args.rounds} child processes per OpenMP policy, run alternately. `old` = `GEMIX_FAST=0`; "
        "`new` = the fast path (lean op dispatch, channels_last, fused Adam, foreach EMA); "
        "`new+bf16` adds oneDNN bf16 math in the main steps (`GEMIX_BF16=1`).",
        "CPU runs of the 32/64/128 presets use channel counts divided by 8 (widths: at the output resolution / at 4×4).",
        "",
        "| preset | px | widths | batch | OpenMP wait policy | path | step (s) | img/s | G+D main (s) | R1 (s) "
        "| speed-up vs. today (default policy, old) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.presets:
        first = runs["default"][0]["presets"][name]
        base = med("default", name, "old", "step_s")
        res = int(name) if name.isdigit() else 32
        for policy in ("default", "PASSIVE"):
            for v in variants:
                step = med(policy, name, v, "step_s")
                lines.append(
                    f"| {name} | {res} | {first['widths'][0]}/{first['widths'][1]} | {first['batch']} | {policy} | {v} "
                    f"| {step:.3f} | {first['batch'] / step:.1f} | {med(policy, name, v, 'main_s'):.3f} "
                    f"| {med(policy, name, v, 'r1_s'):.3f} | ×{base / step:.2f} |"
                )
    lines += [
        "",
        'Inference (G, batch 8, `noise_mode="const"`, new path): `torch.no_grad()` vs. autograd recording.',
        "",
        "| preset | OpenMP wait policy | no_grad (ms) | grad on (ms) | grad / no_grad |",
        "|---|---|---|---|---|",
    ]
    for name in args.presets:
        for policy in ("default", "PASSIVE"):
            a = statistics.median(run["presets"][name]["infer"]["no_grad_s"] for run in runs[policy])
            b = statistics.median(run["presets"][name]["infer"]["grad_s"] for run in runs[policy])
            lines.append(f"| {name} | {policy} | {a * 1e3:.1f} | {b * 1e3:.1f} | ×{b / a:.2f} |")
    markdown = "\n".join(lines)
    print(markdown)
    with open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "cpu_training_runs.json"), "w") as f:
        json.dump(runs, f)
    if not args.no_write:
        write_section("cpu-training", markdown)


if __name__ == "__main__":
    main()
