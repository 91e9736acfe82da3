"""Command-line options that several commands share: where the data comes from and how it is prepared.

``gemix-monai``'s subcommands (:mod:`gemix_monai.cli`) and ``gemix-monai compare``
(:mod:`gemix_monai.experiments.compare`) declare them here, so each option has one name, one help text and one
parser. Only ``argparse`` is imported: any module may use this one without an import cycle.
"""

from __future__ import annotations

import argparse

__all__ = ["add_data_arguments", "pair_or_name", "data_options"]


def add_data_arguments(p: argparse.ArgumentParser, *, image_size_help: str, validate_flag: bool = True) -> None:
    """``--dataset-dir``/``--datalist`` (one of), ``--image-size``, ``--hu-window``, ``--intensity``,
    ``--split-seed``, ``--on-duplicate`` and, with ``validate_flag``, ``--no-validate`` (``data_check``)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dataset-dir", help="image folder / CSV / .npz source (default: the embedded phantoms)")
    g.add_argument("--datalist", help="MONAI datalist JSON with class_names and training/validation/test")
    p.add_argument("--image-size", type=int, help=image_size_help)
    p.add_argument(
        "--hu-window",
        help="CT window: auto (default: decided from the data, a CT window only for data known "
        "to be CT), none, abdomen, lung, liver, mediastinum, brain, bone, or WIDTH,LEVEL",
    )
    p.add_argument(
        "--intensity",
        help="scaling of non-CT data: auto (default: 8-bit files by 0..255, others by per-image "
        "0.5-99.5 percentiles), uint8, uint16, percentile, minmax, or LOW,HIGH",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        help="seed of the automatic split (written once beside the data; default 0). --seed never changes the split",
    )
    p.add_argument(
        "--on-duplicate",
        choices=("error", "drop"),
        help="an image in two splits: error (default) or drop the held-out copy",
    )
    if validate_flag:
        p.add_argument(
            "--no-validate",
            dest="data_check",
            action="store_const",
            const="headers",
            help="skip decoding every image before the run (header checks only)",
        )


def pair_or_name(text: str):
    """``"400,50"`` → ``[400.0, 50.0]``; names pass through."""
    if isinstance(text, str) and "," in text:
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a name or two numbers LOW,HIGH / WIDTH,LEVEL, got {text!r}"
            ) from None
    return text


def data_options(args: argparse.Namespace) -> dict:
    """The ``get_dataset`` keywords given on the command line (``hu_window``, ``intensity``, ``split_seed``,
    ``on_duplicate``, ``validate``); options not given are left out."""
    out = {}
    for key in ("hu_window", "intensity"):
        if getattr(args, key, None) is not None:
            out[key] = pair_or_name(getattr(args, key))
    if getattr(args, "split_seed", None) is not None:
        out["split_seed"] = int(args.split_seed)
    if getattr(args, "on_duplicate", None) is not None:
        out["on_duplicate"] = args.on_duplicate
    if getattr(args, "data_check", None) is not None:
        out["validate"] = args.data_check
    return out
