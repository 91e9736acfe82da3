"""``gemix-monai demo``: the whole pipeline on the phantoms, on CPU, with a report directory."""

from __future__ import annotations

import argparse

from .args import picked

__all__ = ["add_parsers", "demo"]


def demo(args: argparse.Namespace) -> int:
    from gemix_monai.demo import run_demo

    run_demo(args.out, **picked(args, "gan_kimg", "epochs", "strategies", "seed", "seeds"), quiet=not args.verbose)
    return 0


def add_parsers(sub) -> None:
    """``demo``."""
    p = sub.add_parser("demo", help="the whole pipeline on the phantoms, on CPU, with a report directory")
    p.add_argument("--out", default="gemix_demo", help="output folder (default ./gemix_demo)")
    p.add_argument("--gan-kimg", type=float, default=None, help="GAN training length (default: the demo budget)")
    p.add_argument("--epochs", type=int, default=None, help="classifier epochs per strategy")
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="classifier seeds per strategy (default 3): intervals and paired differences",
    )
    p.add_argument("--strategies", nargs="+", default=None, help="default: real pixel_mixup gemix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--verbose", action="store_true", help="full INFO logs of every engine (default: progress bars only)"
    )
    p.set_defaults(handler=demo)
