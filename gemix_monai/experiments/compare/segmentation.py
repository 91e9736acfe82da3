"""``gemix-monai compare --task segmentation``: the segmentation strategies × seeds, one Dice/HD95 table.

The classifier comparison's machinery (the rest of :mod:`gemix_monai.experiments.compare`) runs it: the same resumable
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

import time
from collections.abc import Sequence
from pathlib import Path

from gemix_monai.experiments.report import segmentation_compare_markdown

from . import cells
from .arms import Arm, resolve_arms
from .cells import Cell
from .classification import RUNNERS, split_compare_keywords
from .runner import drive_compare
from .settings import CompareRunOptions, CompareSettings
from .summary import write_summary

__all__ = [
    "SEGMENTATION_COMPARE_DEFAULTS",
    "SEGMENTATION_METRICS",
    "SEGMENTATION_RUNNERS",
    "segmentation_compare_settings",
    "plan_segmentation_cells",
    "run_pair_gan_cell",
    "run_segmenter_cell",
    "write_segmentation_summary",
    "run_segmentation_compare",
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


def segmentation_compare_settings(**given) -> CompareSettings:
    """:class:`CompareSettings` of the segmentation comparison: :data:`SEGMENTATION_COMPARE_DEFAULTS` updated with
    the ``given`` settings that are not ``None``; the key metric is validation Dice, the generator StyleGAN2."""
    from gemix_monai.networks.segmenters import SEGMENTATION_NETWORKS

    generators = given.pop("generators", None)
    if generators not in (None, ["stylegan2"], ("stylegan2",)):
        raise ValueError("--generators: the segmentation comparison uses the StyleGAN2 pair generator only")
    return CompareSettings.checked(
        SEGMENTATION_COMPARE_DEFAULTS, given, SEGMENTATION_NETWORKS, "segmentation network"
    ).replace(key_metric="val_dice", generators=("stylegan2",))


def _arms(strategies: Sequence[str], variants) -> list[Arm]:
    from gemix_monai.transforms.segmentation import STRATEGY_KEYWORDS, check_segmentation_strategy

    arms = resolve_arms(list(strategies), variants)
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
    out, s: CompareSettings, arms: Sequence[Arm], source: str, dataset: dict, tag: str, device: str | None
) -> list[Cell]:
    """The pair-GAN cells (one per GAN seed, only when an arm needs a generator), then the segmenter cells seed by seed."""
    out = Path(out)
    # every cell reads the data with masks required (get_dataset(masks="on")): a datalist without masks fails at once
    data = {"data": {**dict(s.data_options), "masks": "on"}}
    budget = cells.gan_budget(s, "stylegan2")
    planned: list[Cell] = []
    if any(a.needs_generator for a in arms):
        for g in s.gan_seeds:
            planned.append(
                cells.gan_cell(f"{tag}/gan-pairs/g{g}", "pair_gan", s, dataset, g, budget, data, source, device)
            )
    common = cells.trainer_config("segmenter", s, dataset, data)
    for seed in s.seeds:
        for net in s.networks:
            for arm in arms:
                cfg = {**common, **cells.arm_config(net, arm, seed)}
                if not arm.needs_generator:
                    planned.append(
                        Cell(
                            f"{tag}/seg-{net}/{arm.name}/s{seed}",
                            "segmenter",
                            {**cfg, "gan_seed": None, "gan": None},
                            {"source": source, "device": device, "generator": None},
                        )
                    )
                    continue
                for g in s.gan_seeds:
                    gid = f"{tag}/gan-pairs/g{g}"
                    planned.append(
                        Cell(
                            f"{tag}/seg-{net}/{arm.name}/g{g}-s{seed}",
                            "segmenter",
                            {**cfg, "gan_seed": g, "gan": budget},
                            cells.generator_runtime(out, gid, source, device),
                            (gid,),
                        )
                    )
    return planned


def run_pair_gan_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train the generator on the training pairs (the classifier comparison's ``gan`` runner, looked up in its
    registry, on data with masks) and refuse a generator that does not make ``C + M`` channels."""
    from gemix_monai.transforms.segmentation import check_pair_generator, pair_channels

    fields = RUNNERS["gan"](config, runtime, cell_dir)
    (train,) = cells.cell_datasets(config, runtime, ["training"])
    c, m, _ = pair_channels(train, f"training split of {runtime['source']}")
    check_pair_generator(str(cell_dir / fields["generator"]), c, m, f"generator of cell {cell_dir}")
    return {**fields, "image_channels": c, "mask_channels": m}


def run_segmenter_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train one segmenter and score it on the test split; returns the result fields (``metrics`` etc.)."""
    from gemix_monai.engines.segmenter import evaluate_segmenter, train_segmenter

    train_ds, val_ds, test_ds = cells.cell_datasets(config, runtime, ["training", "validation", "test"])
    res = train_segmenter(
        train_ds,
        val_ds,
        cell_dir / "train",
        strategy=config["strategy"],
        network=config["network"],
        generator_checkpoint=cells.cell_generator(config, runtime),
        strategy_kwargs=dict(config["strategy_kwargs"]),
        class_names=getattr(train_ds, "class_names", None),
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["learning_rate"],  # compare's name, kept for the cells' configs (docs/experiments.md)
        weight_decay=config["weight_decay"],
        run=cells.cell_run(config, runtime),
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


#: The segmentation comparison's cell runners, by cell kind.
SEGMENTATION_RUNNERS = {"pair_gan": run_pair_gan_cell, "segmenter": run_segmenter_cell}


def write_segmentation_summary(out, cells: Sequence[Cell], arms: Sequence[Arm], s: CompareSettings, dataset: dict):
    """``summary.md``/``.csv``/``.png`` and ``cells.csv`` of the finished segmenter cells."""

    def markdown(rows, metrics, records, code_line):
        num_cells = sum(c.kind == "segmenter" for c in cells)
        return segmentation_compare_markdown(
            s, arms, dataset, rows, metrics, records, num_cells=num_cells, counts=_COUNTS, code_line=code_line
        )

    return write_summary(
        out,
        cells,
        arms,
        s,
        kind="segmenter",
        metrics=lambda rows: SEGMENTATION_METRICS,
        baselines=BASELINES,
        plot_metrics=SEGMENTATION_METRICS,
        markdown=markdown,
    )


def run_segmentation_compare(
    out="gemix_compare_segmentation",
    settings: CompareSettings | None = None,
    options: CompareRunOptions | None = None,
    *,
    variants=None,
    **keywords,
):
    """Run (or resume) the segmentation comparison and write its summary (module docstring).

    ``settings``: :func:`segmentation_compare_settings` (default :data:`SEGMENTATION_COMPARE_DEFAULTS`);
    ``options`` and ``variants`` mean what they mean for :func:`~gemix_monai.experiments.compare.run_compare`, as
    does the deprecated keyword form (``seeds=3, list_cells=True, ...``). The data must carry masks (the default
    phantoms do).
    """
    start = time.perf_counter()
    names = (*SEGMENTATION_COMPARE_DEFAULTS, "data_options", "generators")
    given, run_given = split_compare_keywords("run_segmentation_compare", keywords, settings, options, names)
    s = settings if settings is not None else segmentation_compare_settings(**given)
    o = options if options is not None else CompareRunOptions(**run_given)
    arms = _arms(list(s.strategies), variants)
    return drive_compare(
        out,
        s,
        arms,
        o,
        plan=plan_segmentation_cells,
        write=write_segmentation_summary,
        runners=SEGMENTATION_RUNNERS,
        start=start,
    )
