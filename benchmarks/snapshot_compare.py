"""Keep a comparison's finished results in the repository so that a later session can continue it.

    python -m benchmarks.snapshot_compare runs/compare_pneumonia docs/experiments/runs/compare_pneumonia

Copies, for every cell, ``cell.json`` and (when finished) ``result.json``, and the summary files — no
checkpoints (weights are regenerated, not tracked). To rebuild the summary::

    cp -r docs/experiments/runs/compare_pneumonia runs/ && <the same gemix-monai compare command>

``compare`` skips every cell with a ``result.json``. To add seeds, first delete the GAN cell's
``result.json`` so that its generator is trained again (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

KEEP = ("cell.json", "result.json")
SUMMARY = ("summary.md", "summary.csv", "summary.png", "cells.csv")


def snapshot(src: Path, dst: Path) -> int:
    copied = 0
    for cell_json in sorted((src / "cells").rglob("cell.json")):
        cell = cell_json.parent
        out = dst / cell.relative_to(src)
        for name in KEEP:
            if (cell / name).is_file():
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy2(cell / name, out / name)
                copied += 1
    for name in SUMMARY:
        if (src / name).is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
            copied += 1
    return copied


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    a = p.parse_args(argv)
    print(f"{snapshot(a.src, a.dst)} files copied to {a.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
