"""Generator commands: ``import-stylegan2`` (a StyleGAN2-ADA snapshot as a generator checkpoint)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parsers", "import_stylegan2"]


def add_parsers(sub) -> None:
    """``import-stylegan2``."""
    p = sub.add_parser(
        "import-stylegan2",
        help="convert a StyleGAN2-ADA network-snapshot-*.pkl into a generator checkpoint, "
        "reading it without running its code (docs/generators.md)",
    )
    p.add_argument("snapshot", help="network-snapshot-*.pkl written by NVIDIA's StyleGAN2-ADA (PyTorch) training")
    p.add_argument(
        "--out", required=True, help="generator checkpoint to write, e.g. runs/exp1/models/generator/generator.pt"
    )
    p.add_argument(
        "--class-names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="one name per class, in label order (default class_0 ...)",
    )
    p.add_argument(
        "--which", choices=("G_ema", "G"), default="G_ema", help="which generator of the snapshot (default G_ema)"
    )
    p.set_defaults(handler=import_stylegan2)


def import_stylegan2(args: argparse.Namespace) -> int:
    """``gemix-monai import-stylegan2 SNAPSHOT --out PATH``: read without running its code (docs/generators.md)."""
    from gemix_monai.generators.stylegan2_ada import convert_stylegan2_ada

    try:
        out = convert_stylegan2_ada(args.snapshot, args.out, class_names=args.class_names, which=args.which)
    except (OSError, ValueError) as e:
        print(f"gemix-monai import-stylegan2: error: {e}", file=sys.stderr)
        return 1
    print(f"generator checkpoint written: {out}")
    return 0
