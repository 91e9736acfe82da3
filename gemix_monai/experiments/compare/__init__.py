"""``gemix-monai compare``: every strategy, same budget, several seeds, one table with intervals (docs/experiments.md).

A package of small modules, each importing only the ones listed before it:

- ``settings``: :class:`CompareSettings` (what decides the results) and :class:`CompareRunOptions` (how it runs);
- ``arms``: the compared settings (strategies and their named variants);
- ``cells``: the resumable cell, its lock and checks, and what a runner reads from it;
- ``runner``: running one cell, the executors (in-process, ``--jobs`` worker processes) and the driver;
- ``summary``: intervals and paired differences into ``summary.*`` and ``cells.csv``;
- ``classification``: the classifier comparison (plan, GAN and classifier runners, :func:`run_compare`);
- ``segmentation``: the segmentation comparison (``--task segmentation``).

The cell runners are explicit registries (:data:`RUNNERS`, :data:`SEGMENTATION_RUNNERS`; :data:`ALL_RUNNERS` for a
worker process, ``python -m gemix_monai.experiments.compare --cell-dir DIR --out OUT``).
"""

from .arms import Arm, expand_arms, parse_variant, resolve_arms
from .cells import Cell, CellConfigError, check_cell_config, code_state, code_states_line, is_finished
from .classification import (
    BASELINES,
    COMPARE_DEFAULTS,
    PLOT_METRICS,
    RUNNERS,
    SUMMARY_METRICS,
    cell_pool,
    compare_settings,
    plan_cells,
    run_classifier_cell,
    run_compare,
    run_gan_cell,
    write_classification_summary,
)
from .runner import (
    CellExecutor,
    CompareResult,
    InProcessExecutor,
    SubprocessExecutor,
    drive_compare,
    make_executor,
    run_cell,
)
from .segmentation import (
    SEGMENTATION_COMPARE_DEFAULTS,
    SEGMENTATION_RUNNERS,
    run_segmentation_compare,
    segmentation_compare_settings,
)
from .settings import CompareRunOptions, CompareSettings
from .summary import summarize, write_summary

#: every cell runner by kind: what a worker process looks its cell's kind up in
ALL_RUNNERS = {**RUNNERS, **SEGMENTATION_RUNNERS}

__all__ = [
    "ALL_RUNNERS",
    "Arm",
    "BASELINES",
    "COMPARE_DEFAULTS",
    "Cell",
    "CellConfigError",
    "CellExecutor",
    "CompareResult",
    "CompareRunOptions",
    "CompareSettings",
    "InProcessExecutor",
    "PLOT_METRICS",
    "RUNNERS",
    "SEGMENTATION_COMPARE_DEFAULTS",
    "SEGMENTATION_RUNNERS",
    "SUMMARY_METRICS",
    "SubprocessExecutor",
    "cell_pool",
    "check_cell_config",
    "code_state",
    "code_states_line",
    "compare_settings",
    "drive_compare",
    "expand_arms",
    "is_finished",
    "make_executor",
    "parse_variant",
    "plan_cells",
    "resolve_arms",
    "run_cell",
    "run_classifier_cell",
    "run_compare",
    "run_gan_cell",
    "run_segmentation_compare",
    "segmentation_compare_settings",
    "summarize",
    "write_classification_summary",
    "write_summary",
]
