"""Shared by every benchmark: describe the machine and write one section of docs/benchmarks.md.

Each benchmark owns one section, delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->``;
re-running a benchmark replaces its own section and leaves the others as they are.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every figure below was measured by the script named in its section, in one run, on the machine it names.\n"
    "Ratios compare implementations measured in the same run (ours vs. the pure-PyTorch reference).\n"
)


def machine_description(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    threads = torch.get_num_threads()
    desc = (
        f"{cpu}, {os.cpu_count()} logical cores ({threads} torch threads), "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    if device.type == "cuda":
        desc = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}); host: " + desc
    return desc


def timeit(
    fn, *, warmup: int = 2, min_time: float = 0.5, max_iters: int = 200, device: torch.device | str = "cpu"
) -> float:
    """Median seconds per call of ``fn()`` over enough repetitions to fill ``min_time``."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    start = time.perf_counter()
    while len(samples) < max_iters and (time.perf_counter() - start < min_time or len(samples) < 3):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def write_section(name: str, markdown: str, doc: Path = DOC) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``markdown``."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    text = doc.read_text() if doc.exists() else HEADER
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, doc)
    return doc
