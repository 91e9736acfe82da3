"""Does ``torch.compile`` pay on the CPU? Compile time (first call) vs. per-call gain of G inference.

``python -m benchmarks.compile_probe`` (prints one line; the figure is quoted in docs/benchmarks.md).
The tiny preset's generator, batch 16, ``noise_mode="const"``, 2 threads; eager and compiled calls
alternate 5 × 2 times after the compile, medians.
"""

import os
import statistics
import time

import torch

import gemix_monai  # noqa: F401  (before torch: OMP_WAIT_POLICY)
from benchmarks.generator import build


def main():
    torch.set_num_threads(2)
    preset, G, D, aug = build("tiny", torch.device("cpu"), 1)
    z = torch.randn(16, G.z_dim)
    c = torch.eye(2)[torch.arange(16) % 2]

    def eager():
        with torch.no_grad():
            G(z, c, noise_mode="const")

    t0 = time.perf_counter()
    Gc = torch.compile(G, dynamic=False)

    def compiled():
        with torch.no_grad():
            Gc(z, c, noise_mode="const")

    compiled()
    t_compile = time.perf_counter() - t0
    res = {"eager": [], "compiled": []}
    for _ in range(5):
        for k, f in (("eager", eager), ("compiled", compiled)):
            t = time.perf_counter()
            f()
            f()
            res[k].append((time.perf_counter() - t) / 2)
    e, c_ = statistics.median(res["eager"]), statistics.median(res["compiled"])
    print(
        f"compile (first call) {t_compile:.1f} s; eager {e * 1e3:.1f} ms; compiled {c_ * 1e3:.1f} ms; "
        f"break-even after {t_compile / max(e - c_, 1e-9):.0f} calls; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
