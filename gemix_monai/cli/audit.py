"""Audit commands: ``audit`` (a generator against the real data, or the pair audit of an image–mask generator) and
``study-generators`` (families × class balance × budgets, each audited)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import add_data_arguments, data_options, picked

__all__ = ["add_parsers", "audit", "study_generators"]


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p, image_size_help="pixels per side (default 32, the tiny preset; evaluate: the model's)")


def audit(args: argparse.Namespace) -> int:
    """``gemix-monai audit``: load the generator and the two real splits, run the audit, print a summary."""
    import torch

    from gemix_monai.experiments.audit import AuditSettings, audit_splits, run_audit, run_pair_audit
    from gemix_monai.experiments.report import fmt
    from gemix_monai.generators.protocol import load_generator

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = load_generator(args.generator, device=device)
    pairs = bool(getattr(gen, "mask_channels", 0))  # trained on image-mask pairs: the pair audit (it includes this one)
    if args.segmenter and not pairs:
        raise ValueError(f"--segmenter applies to generators of image-mask pairs; {args.generator} makes images only")
    source = args.datalist or args.dataset_dir
    train, heldout = audit_splits(
        source,
        args.heldout_split,
        gen,
        image_size=args.image_size,
        data_options={**data_options(args), "split_dir": args.out},
    )
    names = {"heldout_name": f"{args.heldout_split} split", "generator_name": str(args.generator)}
    given = picked(args, "num_per_class", "seed", "lpips_weights", feature_network="classifier")
    settings = AuditSettings(**given, **names, device=device)
    if pairs:
        report = run_pair_audit(gen, train, heldout, args.out, settings, segmenter=args.segmenter)
        cons, area = report["consistency"], report["mask_realism"]["structure_1"]["area_fraction"]
        print(f"pair audit written to {args.out} (image audit in {Path(args.out) / 'images'})")
        rows = [
            ("FD", report["images"]["fd"]["synthetic"], report["images"]["fd"]["real_floor"]),
            ("seg Dice", cons["synthetic"]["dice"], cons["real_floor"]["dice"]),
            ("area KS", area["synthetic"]["ks"], area["real_floor"]["ks"]),
        ]
    else:
        result = run_audit(gen, train, heldout, args.out, settings)
        o = result.report["metrics"]
        print(f"audit written to {result.out_dir} (features: {result.report['feature_network']['description']})")
        rows = [(k, o["synthetic"]["overall"][k], o["real_floor"]["overall"][k]) for k in ("fd", "kid", "precision")]
        rows += [(k, o["synthetic"]["overall"][k], o["real_floor"]["overall"][k]) for k in ("recall", "ms_ssim")]
    for name, synthetic, floor in rows:
        print(f"  {name:10s} synthetic {fmt(synthetic):>10s}   real floor {fmt(floor):>10s}")
    if not pairs:
        print(f"  memorisation flagged: {'YES' if result.flagged else 'no'}")
    return 0


def study_generators(args: argparse.Namespace) -> int:
    """``gemix-monai study-generators``: train and audit every run, print where the table is."""
    from gemix_monai.experiments.generator_study import StudySettings, run_generator_study

    given = picked(args, "seed", "batch_size", "kimg_cap", "select_kimg", "device", "lpips_weights")
    source, size = args.datalist or args.dataset_dir, args.image_size or 32
    options = {**data_options(args), "split_dir": args.out}
    given.update(source=source, image_size=size, data_options=options, criterion=args.select_criterion)
    settings = StudySettings(**given)
    rows = run_generator_study(args.out, args.runs, settings)
    print(f"generator study: {len(rows)} audited checkpoints; table in {args.out}/<dataset>/study.md")
    return 0


def add_parsers(sub) -> None:
    """``audit`` and ``study-generators``."""
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
    p.set_defaults(handler=audit)

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
    p.set_defaults(handler=study_generators)
