"""The commands that run one bundle config each (``bundle/configs/*.json``): ``train-gan``, ``generate``,
``train-classifier``, ``train-segmenter``, ``evaluate`` and ``classify``. Their options become config overrides
(:func:`gemix_monai.cli.args.bundle_overrides`); ``--set KEY=VALUE`` overrides any other config id."""

from __future__ import annotations

import argparse
from pathlib import Path

from gemix_monai.bundle import MULTI_GPU_CONFIGS, SUBCOMMAND_CONFIGS, run_bundle_config

from .args import (
    CLASS_BALANCE_CHOICES,
    GENERATOR_FAMILY_CHOICES,
    add_bundle_arguments,
    add_data_arguments,
    bundle_overrides,
    check_device,
    check_run_folders,
)

__all__ = ["add_parsers", "run_bundle_command", "run_classify"]


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p, image_size_help="pixels per side (default 32, the tiny preset; evaluate: the model's)")


def run_bundle_command(args: argparse.Namespace) -> int:
    """The command's config (with its ``--multi-gpu`` overlay) run with the options as overrides."""
    if getattr(args, "classify", None):  # generate --classify INPUT_DIR: an alias of classify
        return run_classify(args, args.classify)
    config = SUBCOMMAND_CONFIGS[args.command]
    if getattr(args, "multi_gpu", False):
        config = [config, MULTI_GPU_CONFIGS[args.command]]
    overrides = bundle_overrides(args)
    check_device(overrides.get("device"))
    check_run_folders(overrides)
    run_bundle_config(config, overrides, tracking=args.tracking)
    return 0


def run_classify(args: argparse.Namespace, input_dir: str) -> int:
    """``classify`` (and its alias ``generate --classify``): inference.json, the folder as its ``dataset_dir``."""
    overrides = {"dataset_dir": str(Path(input_dir).resolve())}
    if args.bundle_root is not None:
        overrides["bundle_root"] = str(Path(args.bundle_root).resolve())
    for key, config_id in (("seed", "seed"), ("device", "device"), ("batch_size", "batch_size")):
        if getattr(args, key, None) is not None:
            overrides[config_id] = getattr(args, key)
    if getattr(args, "ckpt_path", None):
        overrides["ckpt_path"] = str(Path(args.ckpt_path).resolve())
    if getattr(args, "output", None):
        overrides["predictions_csv"] = str(Path(args.output).resolve())
    if getattr(args, "overwrite", False):
        overrides["overwrite"] = True
    overrides.update(dict(args.overrides))
    check_device(overrides.get("device"))
    run_bundle_config(SUBCOMMAND_CONFIGS["classify"], overrides, tracking=args.tracking)
    return _report_unreadable(overrides)


def _report_unreadable(overrides: dict) -> int:
    """1 (and the list on stderr) when the classification left out files it could not read, else 0."""
    import csv
    import sys

    from gemix_monai.engines.inference import unreadable_path

    root = Path(overrides.get("bundle_root", "."))
    predictions = overrides.get("predictions_csv") or root / "predictions" / "predictions.csv"
    listing = unreadable_path(predictions)
    if not listing.is_file():
        return 0
    with open(listing, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    print(f"gemix-monai classify: {len(rows)} file(s) could not be read and are not in {predictions}:", file=sys.stderr)
    for row in rows:
        print(f"  {row['filename']}: {row['reason']}", file=sys.stderr)
    print(f"(listed in {listing})", file=sys.stderr)
    return 1


def add_parsers(sub) -> None:
    """``train-gan``, ``generate``, ``train-classifier``, ``train-segmenter``, ``evaluate``, ``classify``."""
    p = sub.add_parser(
        "train-gan", help="stage I: train the conditional generator, StyleGAN2-ADA by default (configs/train_gan.json)"
    )
    add_bundle_arguments(p)
    _data_args(p)
    p.add_argument(
        "--generator",
        dest="generator_family",
        choices=GENERATOR_FAMILY_CHOICES,
        help="generator family (default stylegan2); every family writes models/generator/generator.pt with its format tag",
    )
    p.add_argument("--max-kimg", type=float, help="training length in thousands of real images")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--preset", dest="gan_preset", help="network preset: tiny, 32, 64, 128 (and 256 for stylegan2)")
    p.add_argument(
        "--masks",
        choices=("auto", "on", "off"),
        help="train on image-mask pairs: auto (default: when the datalist has masks), on (required), off "
        "(images only); docs/segmentation.md",
    )
    p.add_argument(
        "--class-balance",
        choices=CLASS_BALANCE_CHOICES,
        help="class shares of the real images the generator is shown: as in the data (none), ∝ √count (sqrt), "
        "equal (uniform); docs/generators.md",
    )
    p.add_argument(
        "--select-kimg",
        type=float,
        help="training-time audit every N kimg against the validation split; keeps models/generator/best.pt "
        "(default: a fifth of the run; 0 switches it off)",
    )
    p.add_argument(
        "--select-criterion",
        choices=("minority_recall", "minority_coverage", "coverage", "fd", "mean_recall", "minority_fd"),
        help="what best.pt is chosen by (default minority_recall; ties go to the lower Fréchet distance)",
    )
    p.add_argument(
        "--multi-gpu", action="store_true", help="merge configs/multi_gpu_train_gan.json (ignite.distributed)"
    )

    p = sub.add_parser(
        "generate", help="export a synthetic set from models/generator/generator.pt (configs/generate.json)"
    )
    add_bundle_arguments(p)
    p.add_argument("--num-images", type=int)
    p.add_argument("--per-class", type=int)
    p.add_argument("--sampler", dest="sampler_name", help="gemix, gemix_code, softmax_t, one_hot, dirichlet")
    p.add_argument(
        "--format",
        dest="image_format",
        choices=("nifti", "png", "npy"),
        help="nifti (default) or png files, or npy: a synthetic pool for train-classifier --synthetic-pool "
        "and compare (docs/mixing.md)",
    )
    p.add_argument("--output-dir")
    p.add_argument(
        "--classify",
        metavar="INPUT_DIR",
        help="alias of `gemix-monai classify INPUT_DIR` (writes <bundle-root>/predictions/predictions.csv)",
    )

    p = sub.add_parser("train-classifier", help="train a classifier with one strategy (configs/train.json)")
    add_bundle_arguments(p)
    _data_args(p)
    p.add_argument("--strategy", help="real, pixel_mixup, gemix, genmix, ... (see gemix_monai.transforms.STRATEGIES)")
    p.add_argument("--epochs", dest="max_epochs", type=int, help="training epochs (config id max_epochs)")
    p.add_argument("--network", dest="network_name", help="tiny, resnet18, resnet50, densenet121, efficientnet-b0")
    p.add_argument(
        "--synthetic-pool",
        help="draw the synthetic images from this pool (gemix-monai generate --format npy) instead of running the "
        "generator; refused when it comes from another generator, sampler or data contract",
    )
    p.add_argument("--output-dir")

    p = sub.add_parser(
        "train-segmenter",
        help="train a 2-D U-Net on image-mask pairs with one strategy (configs/train_segmentation.json)",
    )
    add_bundle_arguments(p)
    _data_args(p)
    p.add_argument("--strategy", help="real, real+synthetic, genmix or gemix (docs/segmentation.md)")
    p.add_argument("--epochs", dest="max_epochs", type=int, help="training epochs (config id max_epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--output-dir", help="where models/segmenter/ goes (default: --bundle-root)")

    p = sub.add_parser(
        "evaluate", help="clinical report of models/model.pt on a test split (configs/train.json + evaluate.json)"
    )
    add_bundle_arguments(p)
    _data_args(p)
    p.add_argument("--ckpt-path")
    p.add_argument("--output-dir")
    p.add_argument("--split", help="training, validation or test (default)")
    p = sub.add_parser(
        "classify", help="classify every image under a folder with models/model.pt into a CSV (configs/inference.json)"
    )
    p.add_argument(
        "input_dir", metavar="INPUT_DIR", help="folder searched recursively for supported images (any letter case)"
    )
    add_bundle_arguments(p)
    p.add_argument(
        "--ckpt-path", help="classifier checkpoint (default <bundle-root>/models/model.pt; classifier.json beside it)"
    )
    p.add_argument("--output", help="CSV to write (default <bundle-root>/predictions/predictions.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output CSV")
    p.add_argument("--batch-size", type=int)
    p.set_defaults(handler=lambda args: run_classify(args, args.input_dir))
    for name in ("train-gan", "generate", "train-classifier", "train-segmenter", "evaluate"):
        sub.choices[name].set_defaults(handler=run_bundle_command)
