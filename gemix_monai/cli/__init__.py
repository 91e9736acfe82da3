"""``gemix-monai``: the command line (the top floor: nothing in the package imports it; docs/design.md).

Every subcommand except ``phantoms`` is ``python -m monai.bundle run`` on one config of the
bundle (``bundle/configs/*.json``) with the options turned into config overrides; ``--set
KEY=VALUE`` overrides any other config id (``--set epochs=3 --set "strategy_kwargs={'synthetic_ratio': 1.0}"``).

    gemix-monai phantoms --out data/phantoms
    gemix-monai train-gan --bundle-root runs/exp1 --datalist data/phantoms/datalist.json --max-kimg 2
    gemix-monai generate --bundle-root runs/exp1 --num-images 200 --sampler gemix
    gemix-monai train-classifier --bundle-root runs/exp1 --datalist ... --strategy gemix
    gemix-monai train-segmenter --bundle-root runs/exp1 --datalist ... --strategy real+synthetic
    gemix-monai evaluate --bundle-root runs/exp1 --datalist ...
    gemix-monai classify scans/ --bundle-root runs/exp1 --output runs/exp1/predictions.csv
    gemix-monai demo --out gemix_demo
    gemix-monai import-stylegan2 network-snapshot-000400.pkl --out runs/exp1/models/generator/generator.pt \\
        --class-names normal pneumonia
    gemix-monai compare --out runs/compare --seeds 5 --networks tiny resnet18

One module per command group, each with ``add_parsers(sub)`` setting every command's ``handler``: ``data``
(phantoms, validate), ``pipeline`` (the bundle commands), ``generators`` (import-stylegan2), ``audit`` (audit,
study-generators), ``demo``, ``compare``; ``args`` holds the options they share. This module builds the parser and
dispatches. Adding a command: docs/design.md, "Where a newcomer adds ...".
"""

from __future__ import annotations

import argparse
import sys

from gemix_monai.bundle import bundle_dir, run_bundle_config

from . import audit, compare, data, demo, generators, pipeline
from .args import bundle_overrides as _overrides  # noqa: F401  (the name tests and scripts used)
from .args import parse_override

__all__ = ["main", "build_parser", "bundle_dir", "run_bundle_config", "parse_override"]

#: the command groups, in the order ``--help`` lists them
GROUPS = (data, pipeline, generators, audit, demo, compare)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gemix-monai",
        description="Generative mixup for medical imaging: each subcommand runs one config of the MONAI bundle.",
        epilog="Errors are printed as one line; add --verbose to any subcommand for the full traceback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause of a chain (monai.bundle wraps every error in config-evaluation errors)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        nxt = exc.__cause__ or (exc.__context__ if not exc.__suppress_context__ else None)
        if nxt is None:
            break
        exc = nxt
    return exc


#: Errors a person can act on: printed as one or two lines (the traceback only with --verbose).
_USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, PermissionError, OSError)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    if argv and argv[0] != "demo":  # demo's own --verbose means full engine logs (and tracebacks)
        argv = [a for a in argv if a != "--verbose"]
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print(f"gemix-monai: interrupted. {_interrupted_note(argv)}", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - one readable line instead of a 200-line chained traceback
        cause = _root_cause(e)
        if verbose or not isinstance(cause, _USER_ERRORS):
            raise
        message = str(cause) if not isinstance(cause, KeyError) else f"missing key {cause}"
        print(f"gemix-monai: error: {message}", file=sys.stderr)
        print("(run again with --verbose for the full traceback)", file=sys.stderr)
        return 2


def _interrupted_note(argv: list[str]) -> str:
    """What an interrupted command left and how to go on (checkpoints and results are written atomically, so what is
    on disk is whole)."""
    from pathlib import Path

    command = argv[0] if argv else ""
    root = Path(argv[argv.index("--bundle-root") + 1]) if "--bundle-root" in argv[:-1] else Path(".")
    if command == "train-gan":
        latest = root / "checkpoints" / "latest.pt"
        if latest.is_file():
            try:
                from gemix_monai.utils import safe_torch_load

                kimg = safe_torch_load(latest, map_location="cpu")["counters"]["images_seen"] / 1000
                where = f"{latest} ({kimg:g} kimg)"
            except Exception:  # noqa: BLE001 - the note must not fail; the resume itself checks the file
                where = str(latest)
            return f"The last checkpoint, {where}, is intact: run the same command again to continue from it."
        return "No checkpoint was written yet: run the same command again to start over."
    if command == "compare":
        return "Finished cells are kept (their result.json): run the same command again to run the rest."
    if command in ("train-classifier", "train-segmenter"):
        return "A classifier or segmenter trains from scratch: run the same command again."
    return "Run the same command again."


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
