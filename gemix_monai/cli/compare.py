"""``gemix-monai compare``: every strategy × seeds × networks with one budget (docs/experiments.md). The options become
a :class:`~gemix_monai.experiments.compare.CompareSettings` and a :class:`~gemix_monai.experiments.compare.
CompareRunOptions`; ``--task segmentation`` runs the segmentation comparison with its own defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import CLASS_BALANCE_CHOICES, GENERATOR_FAMILY_CHOICES, add_data_arguments, data_options, picked

__all__ = ["add_parsers", "add_compare_arguments", "compare"]


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gemix-monai compare`` (defaults: :data:`COMPARE_DEFAULTS`)."""
    from gemix_monai.experiments.compare import COMPARE_DEFAULTS
    from gemix_monai.experiments.stats import METHODS

    d = COMPARE_DEFAULTS
    p.add_argument("--out", default="gemix_compare", help="output folder (default ./gemix_compare)")
    p.add_argument(
        "--task",
        choices=("classification", "segmentation"),
        default="classification",
        help="classification (default) or segmentation: U-Nets on image-mask pairs, Dice/HD95 table "
        "(docs/segmentation.md; its own defaults, see gemix_monai.experiments.compare.segmentation)",
    )
    add_data_arguments(p, image_size_help=f"pixels per side (default {d['image_size']})", validate_flag=False)
    p.add_argument(
        "--strategies", nargs="+", help=f"strategies and variant names (default: {' '.join(d['strategies'])})"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seeds", type=int, help=f"number of classifier seeds, 0..N-1 (default {d['seeds']})")
    g.add_argument("--seed-list", type=int, nargs="+", help="explicit classifier seeds")
    p.add_argument("--gan-seeds", type=int, nargs="+", help="GAN seeds (default 0)")
    p.add_argument("--networks", nargs="+", help=f"classifier networks (default: {' '.join(d['networks'])})")
    p.add_argument("--gan-kimg", type=float, help=f"GAN training length per GAN seed (default {d['gan_kimg']:g})")
    p.add_argument("--gan-batch-size", type=int, help=f"default {d['gan_batch_size']}")
    p.add_argument(
        "--generators",
        nargs="+",
        choices=GENERATOR_FAMILY_CHOICES,
        help="generator families, one row per family x generator strategy (default stylegan2; "
        "other families' arms are labelled <strategy>@<family>)",
    )
    p.add_argument(
        "--gan-class-balance",
        choices=CLASS_BALANCE_CHOICES,
        help="class balance of the generators' training data (default none; docs/generators.md)",
    )
    p.add_argument(
        "--gan-select",
        choices=("minority_recall", "minority_coverage", "coverage", "fd", "mean_recall", "minority_fd"),
        help="train the generators with the training-time audit and use their best.pt by this criterion",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        help="draw synthetic images from one pool of N images per generator and sampler, shared by the seeds "
        "(default 0: generate on the fly)",
    )
    p.add_argument(
        "--generator-file",
        action="append",
        metavar="LABEL=PATH",
        help="a generator trained elsewhere (e.g. by study-generators), compared as arms <strategy>@LABEL "
        "(repeatable; replaces the default StyleGAN2 training unless --generators is given)",
    )
    p.add_argument("--epochs", type=int, help=f"classifier epochs per cell (default {d['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"classifier batch (default {d['batch_size']})")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=STRATEGY:{...}",
        help="a named strategy setting, e.g. \"gemix@ratio0.5=gemix:{'synthetic_ratio': 0.5}\" (repeatable)",
    )
    p.add_argument("--interval", choices=METHODS, help="t (default) or bootstrap (percentile, seed 0)")
    p.add_argument(
        "--jobs", type=int, default=1, help="run the cells as N concurrent subprocesses (default 1: in-process)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local (default: in-process, or --jobs subprocesses) or ray: every cell a Ray task (docs/cluster.md)",
    )
    p.add_argument(
        "--ray-address",
        help="with --executor ray: auto, HOST:PORT of a running head, ray://HOST:PORT, or local "
        "(default: RAY_ADDRESS, else the cluster started on this machine, else a new local one)",
    )
    p.add_argument("--cell-cpus", type=float, help="with --executor ray: CPUs each cell reserves (default 1)")
    p.add_argument("--cell-gpus", type=float, help="with --executor ray: GPUs each cell reserves, e.g. 0.5 (default 0)")
    p.add_argument("--cell", help="run only this cell (see --list-cells); no summary")
    p.add_argument("--list-cells", action="store_true", help="print the cell ids in dependency order and exit")
    p.add_argument("--device", help="e.g. cpu, cuda (default: cuda when available)")
    p.add_argument("--verbose", action="store_true", help="the engines' INFO logs (default: one line per cell)")


def compare(args: argparse.Namespace) -> int:
    """``gemix-monai compare`` with parsed :func:`add_compare_arguments` options."""
    from gemix_monai.experiments import compare as cmp

    given = picked(args, "strategies", "gan_seeds", "networks", "gan_kimg", "gan_batch_size", "epochs", "batch_size")
    given.update(picked(args, "image_size", "interval", "generators"), data_options=data_options(args))
    given["seeds"] = args.seed_list if args.seed_list else args.seeds
    run = picked(args, "dataset_dir", "datalist", "jobs", "cell", "list_cells", "device")
    from gemix_monai.experiments.ray_executor import executor_from_options

    # --executor ray (docs/cluster.md): checked, and `ray` imported, before anything runs
    executor = executor_from_options(
        args.executor, **picked(args, "jobs", "cell", "list_cells", "ray_address", "cell_cpus", "cell_gpus", "device")
    )
    options = cmp.CompareRunOptions(**run, quiet=not args.verbose, executor=executor)
    if args.task == "segmentation":
        out = args.out if args.out != "gemix_compare" else "gemix_compare_segmentation"
        settings = cmp.segmentation_compare_settings(**given)
        cmp.run_segmentation_compare(out, settings, options, variants=args.variant)
        return 0
    files = dict(_label_and_path(text) for text in (getattr(args, "generator_file", None) or []))
    settings = cmp.compare_settings(
        **given, **picked(args, "gan_class_balance", "gan_select", "pool_size"), generator_files=files or None
    )
    cmp.run_compare(args.out, settings, options, variants=args.variant)
    return 0


def add_parsers(sub) -> None:
    """``compare``."""
    p = sub.add_parser(
        "compare",
        help="every strategy x seeds x networks with one budget: resumable cells, intervals (docs/experiments.md)",
    )
    add_compare_arguments(p)
    p.set_defaults(handler=compare)


def _label_and_path(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValueError(f"--generator-file expects LABEL=PATH, got {text!r}")
    label, path = text.split("=", 1)
    return label.strip(), str(Path(path.strip()).resolve())
