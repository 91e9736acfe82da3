"""``gemix-monai compare --task segmentation``: the segmentation strategies × seeds, one Dice/HD95 table.

The classifier comparison's machinery (:mod:`gemix_monai.experiments.compare`) runs it: the same resumable
cells (``cell.json`` / ``result.json``, locks, refusal of a changed budget, ``--jobs``), the same intervals and
paired differences (:mod:`gemix_monai.experiments.stats`) and the same summary writer. What differs is the plan:

- ``<dataset>/gan-pairs/g<G>`` (kind ``pair_gan``): the conditional generator trained on the image–mask pairs of
  the training split (``C + M`` channels; docs/segmentation.md), checked to make pairs;
- ``<dataset>/seg-<network>/<arm>/s<S>`` (``real``) and ``.../<arm>/g<G>-s<S>`` (kind ``segmenter``): a U-Net
  trained by :func:`gemix_monai.engines.segmenter.train_segmenter` with seed ``S``, scored on the test split by
  :func:`~gemix_monai.engines.segmenter.evaluate_segmenter` (Dice, HD95 in pixels, and the excluded counts).

``summary.md``/``.csv``/``.png`` give Dice and HD95 per arm (mean ± interval over seeds) and the paired
differences against ``real`` (matched by seed); ``cells.csv`` adds every count of the test scores.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gemix_monai.experiments import compare as _compare
from gemix_monai.experiments.compare import Arm, Cell

__all__ = [
    "SEGMENTATION_COMPARE_DEFAULTS",
    "SEGMENTATION_METRICS",
    "plan_segmentation_cells",
    "run_pair_gan_cell",
    "run_segmenter_cell",
    "run_segmentation_compare",
    "segmentation_compare_from_args",
]

#: CPU-sized defaults: 4 strategies × 5 seeds on the 32 px phantoms in roughly 20–40 min (docs/segmentation.md).
SEGMENTATION_COMPARE_DEFAULTS = {
    "strategies": ("real", "real+synthetic", "genmix", "gemix"),
    "seeds": 5,
    "gan_seeds": (0,),
    "networks": ("tiny_unet",),
    "gan_kimg": 10.0,
    "gan_batch_size": 16,
    "gan_preset": "tiny",
    "epochs": 12,
    "batch_size": 32,
    "learning_rate": 1e-2,
    "weight_decay": 1e-5,
    "image_size": 32,
    "interval": "t",
    "confidence": 0.95,
}
#: The table's metrics (Dice: higher is better; HD95 in pixels: lower is better).
SEGMENTATION_METRICS = ("dice", "hd95")
BASELINES = ("real",)
_COUNTS = (
    "dice_excluded_empty_truth",
    "empty_truth_false_positive",
    "hd95_excluded_empty_truth",
    "hd95_excluded_empty_prediction",
)


def _settings(**kw) -> dict:
    from gemix_monai.engines.segmenter import SEGMENTATION_NETWORKS

    s = _compare.checked_settings(SEGMENTATION_COMPARE_DEFAULTS, kw, SEGMENTATION_NETWORKS, "segmentation network")
    s["key_metric"] = "val_dice"
    s["generators"] = ["stylegan2"]
    return s


def _arms(strategies: Sequence[str], variants) -> list[Arm]:
    from gemix_monai.engines.segmenter import STRATEGY_KEYWORDS, check_segmentation_strategy

    arms = _compare._resolve_arms(list(strategies), variants)
    for arm in arms:
        check_segmentation_strategy(arm.strategy)
        unknown = sorted(set(arm.kwargs) - set(STRATEGY_KEYWORDS))
        if unknown:
            raise ValueError(
                f"arm {arm.name!r}: keyword(s) {unknown} do not apply to segmentation; expected some of "
                f"{list(STRATEGY_KEYWORDS)}"
            )
    return arms


def plan_segmentation_cells(
    out, s: dict, arms: Sequence[Arm], source: str, dataset: dict, tag: str, device: str | None
) -> list[Cell]:
    """The pair-GAN cells (one per GAN seed, only when an arm needs a generator), then the segmenter cells seed by seed."""
    out = Path(out)
    # every cell reads the data with masks required (get_dataset(masks="on")): a datalist without masks fails at once
    data = {"data": {**dict(s.get("data_options") or {}), "masks": "on"}}
    budget = _compare._gan_budget(s, "stylegan2")
    cells: list[Cell] = []
    if any(a.needs_generator for a in arms):
        for g in s["gan_seeds"]:
            cells.append(
                _compare.gan_cell(f"{tag}/gan-pairs/g{g}", "pair_gan", s, dataset, g, budget, data, source, device)
            )
    common = _compare.trainer_config("segmenter", s, dataset, data)
    for seed in s["seeds"]:
        for net in s["networks"]:
            for arm in arms:
                cfg = {**common, **_compare.arm_config(net, arm, seed)}
                if not arm.needs_generator:
                    cells.append(
                        Cell(
                            f"{tag}/seg-{net}/{arm.name}/s{seed}",
                            "segmenter",
                            {**cfg, "gan_seed": None, "gan": None},
                            {"source": source, "device": device, "generator": None},
                        )
                    )
                    continue
                for g in s["gan_seeds"]:
                    gid = f"{tag}/gan-pairs/g{g}"
                    cells.append(
                        Cell(
                            f"{tag}/seg-{net}/{arm.name}/g{g}-s{seed}",
                            "segmenter",
                            {**cfg, "gan_seed": g, "gan": budget},
                            _compare.generator_runtime(out, gid, source, device),
                            (gid,),
                        )
                    )
    return cells


def run_pair_gan_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train the generator on the training pairs (the classifier comparison's GAN runner on data with masks) and
    refuse a generator that does not make ``C + M`` channels."""
    from gemix_monai.engines.segmenter import check_pair_generator, pair_channels

    fields = _compare.run_gan_cell(config, runtime, cell_dir)
    (train,) = _compare.cell_datasets(config, runtime, ["training"])
    c, m, _ = pair_channels(train, f"training split of {runtime['source']}")
    check_pair_generator(str(cell_dir / fields["generator"]), c, m, f"generator of cell {cell_dir}")
    return {**fields, "image_channels": c, "mask_channels": m}


def run_segmenter_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train one segmenter and score it on the test split; returns the result fields (``metrics`` etc.)."""
    from gemix_monai.engines.segmenter import evaluate_segmenter, train_segmenter

    train_ds, val_ds, test_ds = _compare.cell_datasets(config, runtime, ["training", "validation", "test"])
    res = train_segmenter(
        train_ds,
        val_ds,
        cell_dir / "train",
        strategy=config["strategy"],
        network=config["network"],
        generator_checkpoint=_compare.cell_generator(config, runtime),
        strategy_kwargs=dict(config["strategy_kwargs"]),
        class_names=getattr(train_ds, "class_names", None),
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["learning_rate"],
        weight_decay=config["weight_decay"],
        seed=config["seed"],
        device=runtime["device"],
    )
    metrics = evaluate_segmenter(res.checkpoint, test_ds, cell_dir / "test_report", device=runtime["device"])
    return {
        "metrics": {k: float(v) for k, v in metrics.items()},
        "class_names": list(getattr(train_ds, "class_names", None) or []),
        "num_test_samples": len(test_ds),
        "best_epoch": res.best_epoch,
        "best_val_metric": res.best_dice,
        "num_train_items": res.num_train_items,
        "strategy_info": dict(res.strategy_info),  # already plain data (engines.segmenter.strategy_info)
    }


def _markdown(out, cells, rows, arms, s, dataset, metrics, records) -> str:
    pct = f"{s['confidence'] * 100:g} %"
    how = f"{pct} Student-t interval" if s["interval"] == "t" else f"{pct} percentile bootstrap interval"
    n_seg = sum(c.kind == "segmenter" for c in cells)
    excluded = {k: sum(int(r["metrics"].get(k, 0)) for r in rows) for k in _COUNTS}
    lines = [
        "# Segmentation strategy comparison on the test split",
        "",
        f"- dataset: `{json.dumps(dataset)}`",
        f"- segmenter seeds: {s['seeds']} (n = {len(s['seeds'])}); GAN seeds: {s['gan_seeds']}",
        f"- pair GAN budget (per GAN seed): preset `{s['gan_preset']}`, {s['gan_kimg']:g} kimg, batch {s['gan_batch_size']}",
        f"- segmenter budget (every cell): {s['epochs']} epochs, batch {s['batch_size']}, AdamW lr {s['learning_rate']:g}, "
        f"weight decay {s['weight_decay']:g}, {s['image_size']} px, DiceCELoss, checkpoint chosen by validation Dice",
        f"- cells: {len(rows)} of {n_seg} segmenter cells finished"
        + (f" (total {sum(r['seconds'] or 0 for r in rows):.0f} s)" if rows else ""),
        _compare.code_states_line(out, cells),
        "",
        f"Each entry is mean ± half-width [lo, hi] of a {how} over the seeds of each cell's test mean, cut at the "
        "metric's range (Dice in [0, 1], HD95 >= 0; differences in [-1, 1] and unbounded) and then marked `clipped` "
        '(without ±); n < 3 is marked too small (docs/experiments.md, "Intervals"). Dice: higher '
        "is better; HD95 (pixels, 95th percentile Hausdorff distance): lower is better. Per image, Dice is undefined "
        "for an empty true mask and HD95 for an empty true or predicted mask; such cases are left out of the means "
        "and counted (docs/segmentation.md). Over all finished cells: "
        + ", ".join(f"`{k}` = {v}" for k, v in excluded.items())
        + " (per cell: `cells.csv`).",
        "",
    ]
    lines += _compare._result_tables(s, arms, metrics, records, BASELINES)
    return "\n".join(lines)


def write_segmentation_summary(out, cells: Sequence[Cell], arms: Sequence[Arm], s: dict, dataset: dict) -> dict:
    """``summary.md``/``.csv``/``.png`` and ``cells.csv`` of the finished segmenter cells."""
    return _compare.write_summary(
        out,
        cells,
        arms,
        s,
        dataset,
        kind="segmenter",
        metrics=SEGMENTATION_METRICS,
        baselines=BASELINES,
        plot_metrics=SEGMENTATION_METRICS,
        markdown=_markdown,
    )


def run_segmentation_compare(
    out="gemix_compare_segmentation", *, variants=None, data_options: Mapping | None = None, **options
):
    """Run (or resume) the segmentation comparison and write its summary (module docstring).

    ``options``: the settings named in :data:`SEGMENTATION_COMPARE_DEFAULTS` (``strategies``, ``seeds``, ...,
    ``confidence``; ``None`` takes the default) and the run options of
    :func:`gemix_monai.experiments.compare.drive_compare` (``dataset_dir``, ``datalist``, ``jobs``, ``cell``,
    ``list_cells``, ``device``, ``phantom_counts``, ``val_counts``, ``test_counts``, ``verbose``, ``quiet``); they
    and ``variants`` / ``data_options`` mean what they mean for :func:`gemix_monai.experiments.compare.run_compare`.
    The data must carry masks (the default phantoms do).
    """
    start = time.perf_counter()
    settings = {k: options.pop(k) for k in list(options) if k in SEGMENTATION_COMPARE_DEFAULTS}
    s = _settings(**settings, data_options=dict(data_options or {}))
    arms = _arms(list(s["strategies"]), variants)
    return _compare.drive_compare(
        out, s, arms, plan=plan_segmentation_cells, write=write_segmentation_summary, start=start, **options
    )


def segmentation_compare_from_args(args: argparse.Namespace) -> int:
    """``gemix-monai compare --task segmentation`` with parsed ``add_compare_arguments`` options."""
    if getattr(args, "generators", None) not in (None, ["stylegan2"]):
        raise ValueError("--generators: the segmentation comparison uses the StyleGAN2 pair generator only")
    out = args.out if args.out != "gemix_compare" else "gemix_compare_segmentation"
    run_segmentation_compare(out, **_compare.compare_options_from_args(args))
    return 0
