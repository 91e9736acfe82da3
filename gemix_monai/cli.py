"""``gemix-monai``: the command line, one subcommand per bundle config.

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
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# bundle_dir, parse_override and run_bundle_config live in gemix_monai.bundle (demo uses them too); they stay
# importable from here for existing callers.
from gemix_monai.bundle import MULTI_GPU_CONFIGS, SUBCOMMAND_CONFIGS, bundle_dir, parse_override, run_bundle_config
from gemix_monai.cli_args import add_data_arguments
from gemix_monai.cli_args import pair_or_name as _pair_or_name

__all__ = ["main", "bundle_dir", "run_bundle_config", "parse_override"]


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p, image_size_help="pixels per side (default 32, the tiny preset; evaluate: the model's)")


def _common_args(p: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gemix-monai",
        description="Generative mixup for medical imaging: each subcommand runs one config of the MONAI bundle.",
        epilog="Errors are printed as one line; add --verbose to any subcommand for the full traceback.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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

    p = sub.add_parser(
        "train-gan", help="stage I: train the conditional generator, StyleGAN2-ADA by default (configs/train_gan.json)"
    )
    _common_args(p)
    _data_args(p)
    p.add_argument(
        "--generator",
        dest="generator_family",
        choices=("stylegan2", "dcgan", "diffusion"),
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
        choices=("none", "sqrt", "uniform"),
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
        choices=("minority_recall", "fd", "mean_recall", "minority_fd"),
        help="what best.pt is chosen by (default minority_recall; ties go to the lower Fréchet distance)",
    )
    p.add_argument(
        "--multi-gpu", action="store_true", help="merge configs/multi_gpu_train_gan.json (ignite.distributed)"
    )

    p = sub.add_parser(
        "generate", help="export a synthetic set from models/generator/generator.pt (configs/generate.json)"
    )
    _common_args(p)
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
    _common_args(p)
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
    _common_args(p)
    _data_args(p)
    p.add_argument("--strategy", help="real, real+synthetic, genmix or gemix (docs/segmentation.md)")
    p.add_argument("--epochs", dest="max_epochs", type=int, help="training epochs (config id max_epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--output-dir", help="where models/segmenter/ goes (default: --bundle-root)")

    p = sub.add_parser(
        "evaluate", help="clinical report of models/model.pt on a test split (configs/train.json + evaluate.json)"
    )
    _common_args(p)
    _data_args(p)
    p.add_argument("--ckpt-path")
    p.add_argument("--output-dir")
    p.add_argument("--split", help="training, validation or test (default)")

    p = sub.add_parser(
        "validate", help="read every image fully and print a per-split summary; non-zero exit on any problem"
    )
    _data_args(p)
    p.add_argument("--splits", nargs="+", default=["training", "validation", "test"], help="splits to check")
    p.add_argument("--skip-bad", action="store_true", help="report bad entries and continue (on_error='skip')")
    p.add_argument("--json", dest="json_out", help="also write the summaries to this JSON file")
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
    p = sub.add_parser(
        "audit",
        help="synthetic-quality audit of a generator against the real data (FD, KID, "
        "precision/recall, MS-SSIM diversity, memorisation), with a held-out real floor",
    )
    _data_args(p)
    p.add_argument("--generator", required=True, help="generator checkpoint (models/generator/generator.pt)")
    p.add_argument(
        "--classifier",
        help="feature classifier trained on the real training split only (models/model.pt "
        "beside classifier.json); default: the audit trains a tiny one",
    )
    p.add_argument("--out", required=True, help="output folder for audit.json, audit.md and the figures")
    p.add_argument(
        "--segmenter",
        help="pair generators: segmenter trained on the real training split only (models/segmenter/model.pt), for "
        "the image-mask consistency check; default: the audit trains a tiny one (docs/segmentation.md)",
    )
    p.add_argument(
        "--num-per-class", type=int, help="synthetic images per class (default: the held-out split's counts)"
    )
    p.add_argument(
        "--heldout-split",
        choices=("validation", "test"),
        default="validation",
        help="real split scored as the floor (default validation)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="e.g. cpu, cuda (default: cuda when available)")
    p.add_argument("--lpips-weights", help="local LPIPS weight file for LPIPS diversity (docs/quality.md)")
    _classify_parser(sub)

    p = sub.add_parser(
        "study-generators",
        help="train generator families x class balance x budgets and audit each (minority coverage, CPU time)",
    )
    _data_args(p)
    p.add_argument("--out", required=True, help="study folder; <out>/<dataset>/study.md holds the table")
    p.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="FAMILY:BALANCE:KIMG[,KIMG...][:PRESET]",
        help="e.g. stylegan2:none:10,50,100 stylegan2:uniform:10,50,100 diffusion:none:10,50",
    )
    p.add_argument("--kimg-cap", type=float, help="train no run beyond this budget in this call (extend later)")
    p.add_argument("--select-kimg", type=float, help="training-time audit interval (default: the snapshot interval)")
    p.add_argument("--select-criterion", default="minority_recall", help="best.pt criterion (default minority_recall)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="e.g. cpu, cuda (default: cuda when available)")
    p.add_argument("--lpips-weights", help="local LPIPS weight file for LPIPS diversity (docs/quality.md)")

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

    p = sub.add_parser(
        "compare",
        help="every strategy x seeds x networks with one budget: resumable cells, intervals (docs/experiments.md)",
    )
    from gemix_monai.experiments.compare import add_compare_arguments

    add_compare_arguments(p)
    return parser


def _classify_parser(sub) -> None:
    p = sub.add_parser(
        "classify", help="classify every image under a folder with models/model.pt into a CSV (configs/inference.json)"
    )
    p.add_argument(
        "input_dir", metavar="INPUT_DIR", help="folder searched recursively for supported images (any letter case)"
    )
    _common_args(p)
    p.add_argument(
        "--ckpt-path", help="classifier checkpoint (default <bundle-root>/models/model.pt; classifier.json beside it)"
    )
    p.add_argument("--output", help="CSV to write (default <bundle-root>/predictions/predictions.csv)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output CSV")
    p.add_argument("--batch-size", type=int)


def _run_classify(args: argparse.Namespace, input_dir: str) -> int:
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
    run_bundle_config(SUBCOMMAND_CONFIGS["classify"], overrides, tracking=args.tracking)
    return 0


_NOT_OVERRIDES = {"command", "overrides", "multi_gpu", "classify", "tracking"}


def _overrides(args: argparse.Namespace) -> dict:
    out = {k: v for k, v in vars(args).items() if k not in _NOT_OVERRIDES and v is not None}
    for key in ("hu_window", "intensity"):
        if key in out:
            out[key] = _pair_or_name(out[key])
    if "bundle_root" in out:
        out["bundle_root"] = str(Path(out["bundle_root"]).resolve())
    for key in ("dataset_dir", "datalist", "output_dir", "ckpt_path", "synthetic_pool"):
        if key in out:
            out[key] = str(Path(out[key]).resolve())
    out.update(dict(args.overrides))
    return out


def _validate(args) -> int:
    import json

    from gemix_monai.data import get_dataset
    from gemix_monai.data.errors import DataError

    source = args.datalist or args.dataset_dir
    options = {
        "image_size": args.image_size,
        "split_seed": args.split_seed or 0,
        "hu_window": _pair_or_name(args.hu_window) if args.hu_window else "auto",
        "intensity": _pair_or_name(args.intensity) if args.intensity else "auto",
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


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "validate":
        return _validate(args)
    if args.command == "phantoms":
        from gemix_monai.data import generate_phantom_dataset

        path = generate_phantom_dataset(
            args.out, image_size=args.image_size, counts=args.counts, seed=args.seed, fmt=args.fmt
        )
        print(f"phantom dataset written; datalist: {path}")
        return 0
    if args.command == "import-stylegan2":
        from gemix_monai.generators.stylegan2_ada import convert_stylegan2_ada

        try:
            out = convert_stylegan2_ada(args.snapshot, args.out, class_names=args.class_names, which=args.which)
        except (OSError, ValueError) as e:
            print(f"gemix-monai import-stylegan2: error: {e}", file=sys.stderr)
            return 1
        print(f"generator checkpoint written: {out}")
        return 0
    if args.command == "demo":
        from gemix_monai.demo import run_demo

        run_demo(
            args.out,
            gan_kimg=args.gan_kimg,
            epochs=args.epochs,
            strategies=args.strategies,
            seed=args.seed,
            seeds=args.seeds,
            quiet=not args.verbose,
        )
        return 0
    if args.command == "audit":
        from gemix_monai.experiments.audit import audit_command

        return audit_command(args)
    if args.command == "study-generators":
        from gemix_monai.cli_args import data_options
        from gemix_monai.experiments.generator_study import run_generator_study

        rows = run_generator_study(
            args.out,
            args.runs,
            source=args.datalist or args.dataset_dir,
            image_size=args.image_size or 32,
            data_options=data_options(args),
            seed=args.seed,
            batch_size=args.batch_size,
            kimg_cap=args.kimg_cap,
            select_kimg=args.select_kimg,
            criterion=args.select_criterion,
            device=args.device,
            lpips_weights=args.lpips_weights,
        )
        print(f"generator study: {len(rows)} audited checkpoints; table in {args.out}/<dataset>/study.md")
        return 0
    if args.command == "compare":
        from gemix_monai.experiments.compare import compare_from_args

        return compare_from_args(args)
    if args.command == "classify":
        return _run_classify(args, args.input_dir)
    if args.command == "generate" and args.classify:
        return _run_classify(args, args.classify)
    overrides = _overrides(args)
    config = SUBCOMMAND_CONFIGS[args.command]
    if getattr(args, "multi_gpu", False):
        config = [config, MULTI_GPU_CONFIGS[args.command]]
    run_bundle_config(config, overrides, tracking=args.tracking)
    return 0


if __name__ == "__main__":
    sys.exit(main())
