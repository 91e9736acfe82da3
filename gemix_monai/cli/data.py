"""Data commands: ``phantoms`` (write the embedded phantom dataset) and ``validate`` (read every image)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import add_data_arguments, pair_or_name

__all__ = ["add_parsers", "phantoms", "validate"]


def phantoms(args: argparse.Namespace) -> int:
    """``gemix-monai phantoms``: the embedded CT liver-lesion phantoms as files and a datalist."""
    from gemix_monai.data import generate_phantom_dataset

    path = generate_phantom_dataset(
        args.out, image_size=args.image_size, counts=args.counts, seed=args.seed, fmt=args.fmt
    )
    print(f"phantom dataset written; datalist: {path}")
    return 0


def validate(args: argparse.Namespace) -> int:
    """``gemix-monai validate``: read every image of the splits, print a summary each; 1 on any problem."""
    import json

    from gemix_monai.data import get_dataset
    from gemix_monai.data.errors import DataError

    source = args.datalist or args.dataset_dir
    options = {
        "image_size": args.image_size,
        "split_seed": args.split_seed or 0,
        "hu_window": pair_or_name(args.hu_window) if args.hu_window else "auto",
        "intensity": pair_or_name(args.intensity) if args.intensity else "auto",
        "on_duplicate": args.on_duplicate or "error",
        "validate": args.data_check or "full",
        "on_error": "skip" if args.skip_bad else "raise",
    }
    summaries, failed = [], False
    for split in args.splits:
        try:
            ds = get_dataset(source, split, **options)
        except DataError as e:
            failed = True
            print(f"[{split}] FAILED: {e}")
            continue
        summaries.append(ds.summary)
        print(ds.summary["text"])
        failed = failed or bool(ds.bad_items)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summaries, indent=1, default=str) + "\n", encoding="utf-8")
    print("validate: problems found" if failed else "validate: every image read; no problem found")
    return 1 if failed else 0


def add_parsers(sub) -> None:
    """``phantoms`` and ``validate``."""
    p = sub.add_parser("phantoms", help="write the embedded CT liver-lesion phantom dataset (NIfTI/DICOM + datalist)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument(
        "--counts",
        type=int,
        nargs=3,
        metavar=("CYST", "HEMANGIOMA", "METASTASIS"),
        help="training images per class (default 433 70 178)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", dest="fmt", choices=("nifti", "dicom"), default="nifti")
    p.set_defaults(handler=phantoms)

    p = sub.add_parser(
        "validate", help="read every image fully and print a per-split summary; non-zero exit on any problem"
    )
    add_data_arguments(p, image_size_help="pixels per side (default 32)")
    p.add_argument("--splits", nargs="+", default=["training", "validation", "test"], help="splits to check")
    p.add_argument("--skip-bad", action="store_true", help="report bad entries and continue (on_error='skip')")
    p.add_argument("--json", dest="json_out", help="also write the summaries to this JSON file")
    p.set_defaults(handler=validate)
