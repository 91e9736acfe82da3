"""Benchmark of the custom ops (upfirdn2d, bias_act, modulated_conv2d) at StyleGAN2 shapes.

Every available implementation of each op is timed, forward and forward+backward, in the same run
as the pure-PyTorch reference; the table gives milliseconds per call and the speed-up over the
reference. On a GPU the device's copy bandwidth is measured too, and bias_act's achieved bandwidth
is given as a fraction of it. Writes the ``ops`` section of docs/benchmarks.md.

    python benchmarks/ops.py                 # CPU (batch scaled down to keep the run to minutes)
    python benchmarks/ops.py --device cuda   # GPU, full StyleGAN2 batch of 32
    python benchmarks/ops.py --quick         # smoke run: small shapes, short timings, no doc
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine_description, timeit, write_section  # noqa: E402

from gemix_monai.ops import bias_act, downsample2d, modulated_conv2d, setup_filter, upsample2d  # noqa: E402
from gemix_monai.ops._ext import extension_error, get_extension, has_cuda_kernels  # noqa: E402


def available_impls(device: torch.device) -> list[str]:
    impls = ["ref"]
    if get_extension() is not None:
        if device.type == "cpu":
            impls.append("cpp")
        elif device.type == "cuda" and has_cuda_kernels():
            impls.append("cuda")
    return impls


def upfirdn2d_cases(device, quick):
    f = setup_filter([1, 3, 3, 1], device=device)
    if device.type == "cuda":
        shapes = [(32, 512, 8, 8), (32, 512, 32, 32), (32, 512, 64, 64), (32, 64, 128, 128), (32, 64, 256, 256)]
    elif quick:
        shapes = [(2, 16, 16, 16)]
    else:
        shapes = [(8, 512, 8, 8), (2, 512, 32, 32), (1, 64, 128, 128)]
    for shape in shapes:
        for name, fn in (("upsample2d (up=2, 4-tap)", upsample2d), ("downsample2d (down=2, 4-tap)", downsample2d)):
            x = torch.randn(shape, device=device)
            yield "upfirdn2d", name, shape, x.numel(), (lambda impl, x=x, fn=fn: lambda t: fn(t, f, impl=impl)), [x]


def bias_act_cases(device, quick):
    if device.type == "cuda":
        shapes = [(32, 512), (32, 512, 32, 32), (32, 64, 256, 256)]
    elif quick:
        shapes = [(4, 16, 16, 16)]
    else:
        shapes = [(32, 512), (4, 512, 32, 32), (2, 64, 128, 128)]
    for shape in shapes:
        x = torch.randn(shape, device=device)
        b = torch.randn(shape[1], device=device)
        yield (
            "bias_act",
            "lrelu + bias",
            shape,
            x.numel(),
            (lambda impl, b=b: lambda t: bias_act(t, b, act="lrelu", impl=impl)),
            [x],
        )


def modulated_conv_cases(device, quick):
    if device.type == "cuda":
        specs = [(32, 512, 32, 1), (32, 512, 32, 2), (32, 64, 128, 1)]
    elif quick:
        specs = [(2, 16, 8, 1)]
    else:
        specs = [(2, 512, 16, 1), (2, 512, 8, 2), (2, 64, 64, 1)]
    for n, c, res, up in specs:
        x = torch.randn(n, c, res, res, device=device)
        weight = torch.randn(c, c, 3, 3, device=device)
        styles = torch.randn(n, c, device=device)
        name = f"3x3, up={up}"
        fn = lambda impl, weight=weight, styles=styles, up=up: (  # noqa: E731
            lambda t: modulated_conv2d(t, weight, styles, up=up, padding=1, impl=impl)
        )
        yield "modulated_conv2d", name, (n, c, res, res), x.numel(), fn, [x]


def measure_copy_bandwidth(device) -> float:
    """Bytes per second of a device-to-device copy of 256 MiB (read + write counted)."""
    src = torch.empty(64 * 2**20, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    seconds = timeit(lambda: dst.copy_(src), device=device, min_time=0.5)
    return 2 * src.numel() * src.element_size() / seconds


def run(device: torch.device, quick: bool) -> tuple[str, list[dict]]:
    min_time = 0.05 if quick else 0.2
    rounds = 1 if quick else 3
    impls = available_impls(device)
    rows = []
    for cases in (upfirdn2d_cases, bias_act_cases, modulated_conv_cases):
        for op, name, shape, numel, make, (x,) in cases(device, quick):
            timings = {impl: (float("inf"), float("inf")) for impl in impls}
            # Implementations alternate over `rounds` rounds and each keeps its best median, so a
            # burst of load from other processes does not decide a ratio.
            for _ in range(rounds):
                for impl in impls:
                    forward = make(impl)
                    xg = x.clone().requires_grad_(True)

                    def forward_backward(forward=forward, xg=xg):
                        y = forward(xg)
                        (g,) = torch.autograd.grad(y, xg, torch.ones_like(y))
                        return g

                    with torch.no_grad():
                        t_fwd = timeit(lambda: forward(x), device=device, min_time=min_time)
                    t_fb = timeit(forward_backward, device=device, min_time=min_time)
                    timings[impl] = (min(timings[impl][0], t_fwd), min(timings[impl][1], t_fb))
            for impl, (t_fwd, t_fb) in timings.items():
                ref_fwd, ref_fb = timings["ref"]
                row = dict(
                    op=op,
                    case=name,
                    shape=shape,
                    numel=numel,
                    impl=impl,
                    fwd=t_fwd,
                    fb=t_fb,
                    speedup_fwd=ref_fwd / t_fwd,
                    speedup_fb=ref_fb / t_fb,
                )
                rows.append(row)
                print(
                    f"{op:17s} {name:30s} {str(shape):22s} {impl:4s} fwd {t_fwd * 1e3:9.3f} ms ({row['speedup_fwd']:5.2f}x)"
                    f"  fwd+bwd {t_fb * 1e3:9.3f} ms ({row['speedup_fb']:5.2f}x)",
                    flush=True,
                )
    return render(device, rows, impls, quick), rows


def render(device, rows, impls, quick) -> str:
    lines = [
        f"## Custom ops (`benchmarks/ops.py`), {torch.get_num_threads()} torch thread(s)",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on: {machine_description(device)}.",
        f"Command: `python benchmarks/ops.py --device {device.type} --threads {torch.get_num_threads()}"
        f"{' --quick' if quick else ''}`. "
        "Time per call = the best of 3 alternating rounds of a median over ≥ 0.2 s; speed-up = reference time / "
        "this implementation's time, same run.",
        f"Load average (1 min) before / after the run: {LOAD['before']} / {os.getloadavg()[0]:.1f} "
        f"(the machine is shared; on {os.cpu_count()} cores a load above that count means other processes competed).",
    ]
    if device.type == "cpu":
        lines.append(
            "On the CPU the batch is scaled down from StyleGAN2's 32 (to 1–8, shapes below) so that the whole run "
            "takes a few minutes on 2 cores; the per-element work is that of the full-size layers."
        )
    if "cpp" not in impls and "cuda" not in impls:
        lines.append(f"The compiled extension was unavailable ({extension_error()}): only the reference was timed.")
    lines += [
        "",
        "| op | case | shape | impl | fwd (ms) | fwd speed-up | fwd+bwd (ms) | fwd+bwd speed-up |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['op']} | {r['case']} | {'×'.join(map(str, r['shape']))} | {r['impl']} | {r['fwd'] * 1e3:.3f} | "
            f"{r['speedup_fwd']:.2f}× | {r['fb'] * 1e3:.3f} | {r['speedup_fb']:.2f}× |"
        )
    return "\n".join(lines) + "\n"


LOAD = {"before": "n/a"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny shapes, short timings, docs untouched")
    parser.add_argument(
        "--threads",
        default=None,
        help="comma-separated torch CPU thread counts, one table each (default: torch's setting)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md as it is")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    markdown, rows = "", []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        LOAD["before"] = f"{os.getloadavg()[0]:.1f}"
        part, part_rows = run(device, args.quick)
        markdown += ("\n" if markdown else "") + part
        rows += part_rows
    if device.type == "cuda":
        bandwidth = measure_copy_bandwidth(device)
        extra = ["", f"Device copy bandwidth (256 MiB, read + write): {bandwidth / 1e9:.0f} GB/s.", ""]
        for r in rows:
            if r["op"] == "bias_act" and r["impl"] != "ref":
                achieved = 2 * r["numel"] * 4 / r["fwd"]  # reads x, writes y (float32)
                extra.append(
                    f"- bias_act {'×'.join(map(str, r['shape']))} ({r['impl']}, fwd): {achieved / 1e9:.0f} GB/s, "
                    f"{achieved / bandwidth:.0%} of the copy bandwidth"
                )
        markdown += "\n".join(extra) + "\n"
    print(markdown)
    if not args.quick and not args.no_write:
        print(f"wrote {write_section('ops' if device.type == 'cpu' else 'ops-cuda', markdown)}")


if __name__ == "__main__":
    main()
