"""Command-line options that several commands share, and the one place they become values.

Every ``gemix-monai`` command group declares its options through these helpers, so each option has one name, one
help text and one parser; :func:`data_options` and :func:`bundle_overrides` turn parsed options into the plain
values the layers below take (``get_dataset`` keywords, bundle config overrides): no ``argparse`` object reaches
below :mod:`gemix_monai.cli` (docs/design.md).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

#: The choices of ``--generator(s)`` and ``--class-balance``/``--gan-class-balance``: the library's
#: ``generators.protocol.GENERATOR_FAMILIES`` and ``mixing.samplers.CLASS_BALANCE_MODES``, written out so that
#: building the parser (``--help``) imports no torch; tests/test_cli_trust.py pins them to the library's.
GENERATOR_FAMILY_CHOICES = ("stylegan2", "dcgan", "diffusion")
CLASS_BALANCE_CHOICES = ("none", "sqrt", "uniform")

__all__ = [
    "add_data_arguments",
    "add_bundle_arguments",
    "pair_or_name",
    "parse_override",
    "data_options",
    "bundle_overrides",
    "picked",
    "check_device",
    "check_run_folders",
]


def parse_override(text: str) -> tuple[str, object]:
    """``"key=value"`` → ``(key, value)``; the value is a Python literal when it parses as one, else a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE with a non-empty key, got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


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


def add_bundle_arguments(p: argparse.ArgumentParser) -> None:
    """``--bundle-root``, ``--seed``, ``--device``, ``--set KEY=VALUE`` (repeatable) and ``--tracking``: the options of
    every command that runs a bundle config."""
    p.add_argument(
        "--bundle-root",
        default=None,
        help="folder where models/ and outputs go and where the previous step's checkpoints are looked for (default: .)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="e.g. cpu, cuda, cuda:1")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_override,
        default=[],
        metavar="KEY=VALUE",
        help="override any config id (repeatable)",
    )
    p.add_argument(
        "--tracking",
        help="MONAI experiment tracking: mlflow (its tracking_uri via --set tracking_uri=...), or a JSON settings file",
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


_NOT_OVERRIDES = {"command", "handler", "overrides", "multi_gpu", "classify", "tracking"}
#: Commands whose --output-dir also places the models (bundle configs' ckpt_dir), as the folder under it.
_MODELS_UNDER_OUTPUT_DIR = {"train-classifier": ("models",), "train-segmenter": ("models", "segmenter")}


def bundle_overrides(args: argparse.Namespace) -> dict:
    """The bundle config overrides of a parsed command: every option given (not ``None``), paths made absolute,
    ``--hu-window``/``--intensity`` parsed, then the ``--set`` overrides."""
    out = {k: v for k, v in vars(args).items() if k not in _NOT_OVERRIDES and v is not None}
    for key in ("hu_window", "intensity"):
        if key in out:
            out[key] = pair_or_name(out[key])
    if "bundle_root" in out:
        out["bundle_root"] = str(Path(out["bundle_root"]).resolve())
    for key in ("dataset_dir", "datalist", "output_dir", "ckpt_path", "synthetic_pool"):
        if key in out:
            out[key] = str(Path(out[key]).resolve())
    models = _MODELS_UNDER_OUTPUT_DIR.get(getattr(args, "command", None))
    if models is not None and "output_dir" in out:
        # the training configs keep their run folder (output_dir) apart from where models go (ckpt_dir, the
        # bundle's models/ by default, model-zoo's layout); --output-dir X has always meant models under X
        out["ckpt_dir"] = str(Path(out["output_dir"], *models))
    out.update(dict(args.overrides))
    return out


def picked(args: argparse.Namespace, *names: str, **renamed: str) -> dict:
    """The parsed options ``names`` as keyword arguments (``{name: args.name}``), and ``renamed`` ones under another
    name (``key="option"`` gives ``{key: args.option}``): how a command hands its options to a settings object."""
    return {**{n: getattr(args, n) for n in names}, **{k: getattr(args, a) for k, a in renamed.items()}}


def check_device(text) -> None:
    """``--device`` checked before anything runs: a name torch does not know, or a CUDA device this machine does not
    have, is one line naming the option (not a traceback from the middle of a config)."""
    if text is None:
        return
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {text!r} is not a device name (e.g. cpu, cuda, cuda:1): {e}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
            raise ValueError(
                f"--device {text}: this machine has no usable CUDA device (torch {torch.__version__}, {built}); use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text}: there are {torch.cuda.device_count()} CUDA device(s) (0..{torch.cuda.device_count() - 1})"
            )


def check_run_folders(overrides: dict) -> None:
    """The bundle root and ``--output-dir`` must lie outside a dataset folder given with ``--dataset-dir``
    (:func:`gemix_monai.data.check_output_outside_data`: its checkpoints would be read as data by the next run)."""
    import os

    from gemix_monai.data import check_output_outside_data

    source = overrides.get("dataset_dir")
    if source is None:
        return
    check_output_outside_data(overrides.get("bundle_root") or os.getcwd(), source)
    if overrides.get("output_dir"):
        check_output_outside_data(overrides["output_dir"], source)
