"""``gemix-monai compare``: every strategy, same budget, several seeds, one table with intervals.

For one dataset (the embedded phantoms by default) the GAN is trained once per GAN seed, then the
same classifier network under each requested *arm* — a strategy name (``real``, ``pixel_mixup``,
``gemix``, ...) or a named *variant* of one with its own keyword arguments (``gemix@ratio0.5`` =
``gemix`` with ``synthetic_ratio=0.5``) — once per seed, on one fixed split, and every classifier is
evaluated on the test split. Then ``summary.md``/``.csv``/``.png`` and ``cells.csv`` are written.

**Cells.** Each unit of work is a *cell* with its own folder ``<out>/cells/<cell id>/``:

- ``<dataset>/gan/g<G>``: the GAN of GAN seed ``G`` (``models/generator/generator.pt``, its training checkpoints);
  with ``generators`` (``--generators stylegan2 dcgan diffusion``) each further family ``F`` has
  ``<dataset>/gan-<F>/g<G>`` and its generator arms are labelled ``<arm>@<F>`` (cells
  ``<dataset>/<network>/<arm>@<F>/g<G>-s<S>``); the default StyleGAN2 keeps the unsuffixed ids and labels, so
  earlier runs stay valid;
- ``<dataset>/<network>/<arm>/g<G>-s<S>``: a classifier trained with seed ``S`` on synthetic data of
  the GAN ``G`` (``train/``, ``test_report/``); arms that use no generator (``real``, ``pixel_mixup``
  and their variants) do not depend on a GAN seed and have one cell per seed, ``.../<arm>/s<S>``.

A cell folder holds ``cell.json`` (``config``: every setting that determines the result, budgets
included; ``runtime``: paths and device, free to change) and, once finished, ``result.json`` (written
atomically; for classifiers every scalar of the test report's ``metrics.json``). A cell with a
``result.json`` is never run again; one without is (re)run — the GAN from its own latest checkpoint
(``resume="auto"``), a classifier from scratch. An existing ``cell.json`` whose ``config`` differs from
the requested one is refused with a :class:`CellConfigError` naming the field. An exclusive ``fcntl``
lock on ``<cell>/.lock`` keeps two processes from running the same cell.

Statistics: see :mod:`gemix_monai.experiments.stats` and ``docs/experiments.md``. The machinery every comparison
shares lives beside this module: arms (``arms.py``), cells (``cells.py``), executors and the driver
(``runner.py``), the summary (``summary.py``); the segmentation comparison is ``segmentation.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from gemix_monai.experiments.report import compare_markdown
from gemix_monai.transforms.strategies import needs_generator
from gemix_monai.utils import plain_data

from .arms import Arm, expand_arms, resolve_arms
from .cells import (
    Cell,
    arm_config,
    cell_datasets,
    cell_generator,
    cell_lock,
    cell_run,
    file_sha256,
    gan_budget,
    gan_cell,
    generator_runtime,
    trainer_config,
)
from .runner import drive_compare
from .settings import CompareRunOptions, CompareSettings
from .summary import finished_seconds, write_summary

__all__ = [
    "COMPARE_DEFAULTS",
    "SUMMARY_METRICS",
    "PLOT_METRICS",
    "BASELINES",
    "RUNNERS",
    "compare_settings",
    "plan_cells",
    "run_gan_cell",
    "run_classifier_cell",
    "cell_pool",
    "write_classification_summary",
    "run_compare",
    "split_compare_keywords",
]

#: CPU-sized defaults (the GAN and data budget of ``gemix-monai demo``; see docs/experiments.md).
COMPARE_DEFAULTS = {
    "strategies": ("real", "pixel_mixup", "real+synthetic", "gemix", "gemix_code", "softmax_t", "genmix"),
    "seeds": 5,
    "gan_seeds": (0,),
    "networks": ("tiny",),  # add resnet18 with --networks tiny resnet18 (hours on CPU, see docs/experiments.md)
    "gan_kimg": 10.0,
    "gan_batch_size": 16,
    "gan_preset": "tiny",
    "generators": ("stylegan2",),
    "epochs": 15,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "image_size": 32,
    "key_metric": "macro_f1",
    "interval": "t",
    "confidence": 0.95,
    # issue 19 settings; each enters a cell's config only when not at its default, so earlier folders stay valid
    "gan_class_balance": "none",
    "gan_select": None,
    "pool_size": 0,
}

#: Overall metrics of the summary, then ``fnr/<class>`` for every class.
SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_f2", "macro_auroc", "ece")
#: The two metrics of ``summary.png``.
PLOT_METRICS = ("macro_f1", "balanced_accuracy")
#: Paired differences are reported against these arms when they are compared.
BASELINES = ("real", "pixel_mixup")


def compare_settings(**given) -> CompareSettings:
    """:class:`CompareSettings` of the classifier comparison: :data:`COMPARE_DEFAULTS` updated with the ``given``
    settings that are not ``None`` (bundle compare.json builds its settings with it)."""
    from gemix_monai.generators.protocol import GENERATOR_FAMILIES
    from gemix_monai.networks.classifiers import CLASSIFIER_NETWORKS

    return CompareSettings.checked(COMPARE_DEFAULTS, given, CLASSIFIER_NETWORKS, known_families=GENERATOR_FAMILIES)


def plan_cells(
    out, s: CompareSettings, arms: Sequence[Arm], source: str, dataset: dict, tag: str, device: str | None
) -> list[Cell]:
    """All cells in dependency order: the GAN cells (per family and GAN seed), then the classifier cells seed by seed."""
    out = Path(out)
    # data options (get_dataset keywords) are part of every cell's config only when given, so that
    # folders made before they existed stay valid
    data = {"data": dict(s.data_options)} if s.data_options else {}
    cells: list[Cell] = []
    gan_ids: dict[tuple[str, int], str] = {}
    families = list(dict.fromkeys(a.family for a in arms if a.needs_generator))
    for family in families:
        for g in s.gan_seeds:
            gid = f"{tag}/gan/g{g}" if family == "stylegan2" else f"{tag}/gan-{family}/g{g}"
            gan_ids[family, g] = gid
            cell = gan_cell(gid, "gan", s, dataset, g, gan_budget(s, family), data, source, device)
            if family in s.generator_files:
                cell.runtime["generator_files"] = dict(s.generator_files)
            cells.append(cell)
    common = trainer_config("classifier", s, dataset, data, "key_metric")
    planned: set[str] = set()
    for seed in s.seeds:
        for net in s.networks:
            for arm in arms:
                arm_cfg = arm_config(net, arm, seed)
                if not arm.needs_generator:
                    if f"{tag}/{net}/{arm.name}/s{seed}" in planned:
                        continue
                    planned.add(f"{tag}/{net}/{arm.name}/s{seed}")
                    cells.append(
                        Cell(
                            f"{tag}/{net}/{arm.name}/s{seed}",
                            "classifier",
                            {**common, **arm_cfg, "gan_seed": None, "gan": None},
                            {"source": source, "device": device, "generator": None},
                        )
                    )
                    continue
                teacher = {}
                if arm.kwargs.get("teacher") == "real":
                    # the teacher is this seed's `real` classifier: trained on the real training split only
                    tid = f"{tag}/{net}/real/s{seed}"
                    if tid not in planned:
                        cells.append(
                            Cell(
                                tid,
                                "classifier",
                                {**common, **arm_config(net, Arm("real", "real"), seed), "gan_seed": None, "gan": None},
                                {"source": source, "device": device, "generator": None},
                            )
                        )
                        planned.add(tid)
                    teacher = {
                        "teacher_cell": tid,
                        "teacher": str(out / "cells" / tid / "train" / "models" / "model.pt"),
                    }
                pool = {"pool": {"size": int(s.pool_size), "seed": 0}} if s.pool_size else {}
                for g in s.gan_seeds:
                    gid = gan_ids[arm.family, g]
                    cells.append(
                        Cell(
                            f"{tag}/{net}/{arm.name}/g{g}-s{seed}",
                            "classifier",
                            {**common, **arm_cfg, "gan_seed": g, "gan": gan_budget(s, arm.family), **pool},
                            {**generator_runtime(out, gid, source, device), **teacher},
                            (gid,) + ((teacher["teacher_cell"],) if teacher else ()),
                        )
                    )
    return cells


def _copy_external_generator(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """A generator trained elsewhere (``--generator-file LABEL=PATH``): checked against the hash in the cell's config
    and copied to the cell, where the classifier cells and pools read it as they read a trained one."""
    import shutil

    from gemix_monai.generators.protocol import generator_record
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    source = runtime["generator_files"][config["gan"]["family"]]
    want = config["gan"]["external"]["sha256"]
    found = file_sha256(source)
    if found != want:
        raise ValueError(
            f"generator file {source} has sha256 {found[:12]}, but this comparison's cells were planned with "
            f"{want[:12]}: the file changed; use another --out folder for another generator"
        )
    target = cell_dir / GENERATOR_SUBPATH
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    record = generator_record(target)
    return {
        "generator": str(GENERATOR_SUBPATH),
        "external": {"source": str(source), "sha256": found},
        "training": record.get("training"),
        "selection": record.get("selection"),
    }


def run_gan_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train (or resume) the GAN of one GAN seed, or copy a generator trained elsewhere; returns the result fields."""
    if "external" in config["gan"]:
        return _copy_external_generator(config, runtime, cell_dir)
    from gemix_monai.data import get_dataset
    from gemix_monai.engines.generative import train_generator

    # Images only unless the cell's data options ask for masks: the recorded comparisons trained image GANs.
    data = {"masks": "off", **config.get("data", {})}
    data = {**data, "split_dir": runtime.get("split_dir")}
    ds = get_dataset(runtime["source"], "training", config["image_size"], cache=True, **data)
    gan = config["gan"]
    selection = None
    if gan.get("selection"):
        from gemix_monai.handlers.selection import GeneratorSelection

        val = get_dataset(
            runtime["source"], "validation", config["image_size"], cache=True, contract=ds.contract, **data
        )
        selection = GeneratorSelection(val, criterion=gan["selection"], seed=config["gan_seed"])
    path = train_generator(
        ds,
        cell_dir,
        family=gan.get("family", "stylegan2"),
        preset=gan["preset"],
        class_names=ds.class_names,
        max_kimg=gan["kimg"],
        batch_size=gan["batch_size"],
        class_balance=gan.get("class_balance", "none"),
        selection=selection,
        # TensorBoard kept as before this cell's RunSettings: a generator's scalars are read from its cell folder
        run=cell_run(config, runtime, resume="auto", sample_kimg=gan["kimg"], tracking=True),
    )
    out = {"generator": str(Path(path).relative_to(cell_dir)), "num_train_items": len(ds)}
    best = Path(path).with_name("best.pt")
    if selection is not None and best.is_file():
        out["best"] = {"file": str(best.relative_to(cell_dir)), **_selection_of(best)}
    return out


def _selection_of(best: Path) -> dict:
    from gemix_monai.generators.protocol import generator_record

    sel = generator_record(best).get("selection") or {}
    row = sel.get("row") or {}
    return {"criterion": sel.get("criterion"), "kimg": row.get("kimg"), "value": row.get(sel.get("criterion"))}


def cell_pool(config: dict, runtime: dict, generator: str, real_dataset) -> str | None:
    """The synthetic pool a classifier cell draws from (``config["pool"]``), made on first use under a lock in the GAN
    cell's ``pools/`` folder — one per generator file, sampler and size, shared by every seed — else ``None``."""
    pool = config.get("pool")
    if not pool or not needs_generator(config["strategy"]):
        return None
    from gemix_monai.generators.protocol import preferred_generator
    from gemix_monai.transforms.pool import POOL_MANIFEST, write_pool
    from gemix_monai.transforms.strategies import strategy_sampler

    kwargs = dict(config["strategy_kwargs"])
    sampler = strategy_sampler(
        config["strategy"],
        real_dataset,
        len(real_dataset.class_names),
        sampler=kwargs.get("sampler"),
        sampler_kwargs=kwargs.get("sampler_kwargs"),
        class_weights=kwargs.get("class_weights"),
    )
    file = preferred_generator(generator)
    key = hashlib.sha256(json.dumps([file.name, sampler.params()], sort_keys=True).encode()).hexdigest()[:10]
    folder = file.parents[2] / "pools" / f"{sampler.params()['sampler']}-{key}-n{pool['size']}-s{pool['seed']}"
    if not (folder / POOL_MANIFEST).is_file():
        with cell_lock(folder, str(folder), verbose=False):
            write_pool(
                str(generator), sampler, folder, int(pool["size"]), seed=int(pool["seed"]), device=runtime["device"]
            )
    return str(folder)


def run_classifier_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train one classifier, evaluate it on the test split; returns the result fields (``metrics`` etc.)."""
    from gemix_monai.engines.classifier import evaluate_classifier, train_classifier

    train_ds, val_ds, test_ds = cell_datasets(config, runtime, ("training", "validation", "test"))
    kwargs = dict(config["strategy_kwargs"])
    class_weighted = bool(kwargs.pop("class_weighted", False))
    if kwargs.get("teacher") == "real":
        kwargs["teacher"] = runtime["teacher"]
    generator = cell_generator(config, runtime)
    pool = cell_pool(config, runtime, generator, train_ds) if generator else None
    res = train_classifier(
        train_ds,
        val_ds,
        cell_dir / "train",
        strategy=config["strategy"],
        network=config["network"],
        class_names=train_ds.class_names,
        generator_checkpoint=generator,
        synthetic_pool=pool,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        lr=config["learning_rate"],  # compare's name, kept for the cells' configs (docs/experiments.md)
        weight_decay=config["weight_decay"],
        key_metric=config["key_metric"],
        class_weighted_sampling=class_weighted,
        strategy_kwargs=kwargs,
        final_report=False,
        run=cell_run(config, runtime),
    )
    report = cell_dir / "test_report"
    evaluate_classifier(res.checkpoint, test_ds, report, train_ds.class_names, device=runtime["device"])
    payload = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    return {
        # null (None) where undefined, e.g. the FNR of a class with no test image: never 0 (docs/maths.md §4)
        "metrics": {k: None if v is None else float(v) for k, v in payload["metrics"].items()},
        "undefined": payload.get("undefined", []),
        "class_names": payload["class_names"],
        "num_test_samples": payload["num_samples"],
        "best_epoch": res.best_epoch,
        "best_val_metric": res.best_metric,
        "num_train_items": res.num_train_items,
        "strategy_info": plain_data(res.strategy_info, "strategy_info", otherwise="str"),
    }


#: The classifier comparison's cell runners, by cell kind (the registry :func:`run_compare` passes to the driver).
RUNNERS = {"gan": run_gan_cell, "classifier": run_classifier_cell}


def write_classification_summary(out, cells: Sequence[Cell], arms: Sequence[Arm], s: CompareSettings, dataset: dict):
    """``summary.md``/``.csv``/``.png`` and ``cells.csv`` of the finished classifier cells."""
    out = Path(out)

    def metrics(rows: list[dict]) -> list[str]:
        classes = next((r["class_names"] for r in rows), [])
        return list(SUMMARY_METRICS) + [f"fnr/{c}" for c in classes]

    def markdown(rows, metric_names, records, code_line):
        return compare_markdown(
            s,
            arms,
            dataset,
            rows,
            metric_names,
            records,
            num_cells=sum(c.kind == "classifier" for c in cells),
            gan_seconds=finished_seconds(cells, out, "gan"),
            code_line=code_line,
            baselines=BASELINES,
        )

    return write_summary(
        out,
        cells,
        arms,
        s,
        kind="classifier",
        metrics=metrics,
        baselines=BASELINES,
        plot_metrics=PLOT_METRICS,
        markdown=markdown,
    )


#: the keyword arguments of :class:`CompareRunOptions`
_RUN_OPTION_NAMES = tuple(CompareRunOptions.__dataclass_fields__)


def split_compare_keywords(caller: str, keywords: dict, settings, options, setting_names) -> tuple[dict, dict]:
    """``(settings keywords, run option keywords)`` of the deprecated keyword form of a comparison (warning once);
    anything else is a ``TypeError`` naming it."""
    given_settings = {k: keywords.pop(k) for k in list(keywords) if k in setting_names}
    given_run = {k: keywords.pop(k) for k in list(keywords) if k in _RUN_OPTION_NAMES}
    if keywords:
        raise TypeError(f"{caller} got unexpected keyword arguments {sorted(keywords)}")
    if (given_settings and settings is not None) or (given_run and options is not None):
        raise TypeError(f"{caller}: give settings/options objects or keyword arguments, not both")
    if given_settings or given_run:
        warnings.warn(
            f"{caller}(**keywords) is deprecated: pass settings=CompareSettings / compare_settings(...) and "
            f"options=CompareRunOptions(...) (docs/experiments.md); got {sorted({**given_settings, **given_run})}",
            DeprecationWarning,
            stacklevel=3,
        )
    return given_settings, given_run


def run_compare(
    out="gemix_compare",
    settings: CompareSettings | None = None,
    options: CompareRunOptions | None = None,
    *,
    variants=None,
    **keywords,
):
    """Run (or resume) a comparison and write its summary; see the module docstring and docs/experiments.md.

    Args:
        settings: the budget (:class:`CompareSettings`, e.g. :func:`compare_settings`; default
            :data:`COMPARE_DEFAULTS`): strategies, seeds (a count 0..N-1 or a list), GAN seeds, networks, the
            generators' families (each generator arm runs with each), budget and class balance, ``gan_select`` (a
            criterion of the training-time audit: the cells use each GAN's ``best.pt``), ``pool_size`` (> 0: the
            synthetic images of every generator strategy come from one pool of that many images per generator and
            sampler, made once and shared by the seeds; docs/mixing.md, "Synthetic pools"), the classifiers' budget,
            the interval, the data options.
        options: where the data comes from and how the cells run (:class:`CompareRunOptions`: ``dataset_dir`` /
            ``datalist`` / phantom counts, ``jobs``, ``cell``, ``list_cells``, ``device``, ``verbose``, ``quiet``).
        variants: ``["NAME=STRATEGY:{...}", ...]`` or ``{NAME: "STRATEGY:{...}" | {"strategy": ..., **kwargs}}``;
            a variant is compared as its own arm (listed in ``strategies`` or appended after them).
        keywords: the deprecated keyword form: any field of the two objects (``seeds=3, jobs=2, ...``).

    Returns a :class:`~gemix_monai.experiments.compare.runner.CompareResult`, or the cell ids with ``list_cells``.
    """
    start = time.perf_counter()
    names = (*COMPARE_DEFAULTS, "data_options")
    given, run_given = split_compare_keywords("run_compare", keywords, settings, options, names)
    s = settings if settings is not None else compare_settings(**given)
    o = options if options is not None else CompareRunOptions(**run_given)
    arms = expand_arms(resolve_arms(list(s.strategies), variants), s.generators)
    return drive_compare(
        out,
        s,
        arms,
        o,
        plan=plan_cells,
        write=write_classification_summary,
        runners=RUNNERS,
        start=start,
    )
