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

Statistics: see :mod:`gemix_monai.experiments.stats` and ``docs/experiments.md``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import fcntl
import functools
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemix_monai.cli_args import add_data_arguments
from gemix_monai.cli_args import data_options as data_options_from_args
from gemix_monai.experiments.stats import METHODS, Interval, metric_range, paired_differences, table_head
from gemix_monai.experiments.stats import interval as compute_interval
from gemix_monai.utils import plain_data

__all__ = [
    "COMPARE_DEFAULTS",
    "SUMMARY_METRICS",
    "PLOT_METRICS",
    "BASELINES",
    "Arm",
    "Cell",
    "CellConfigError",
    "parse_variant",
    "plan_cells",
    "run_cell",
    "run_compare",
    "write_summary",
    "add_compare_arguments",
    "compare_from_args",
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
#: Strategies that use no generator: their cells do not depend on a GAN seed.
GENERATOR_FREE = ("real", "pixel_mixup")
#: Variant keys besides ``build_strategy``'s keyword arguments.
EXTRA_VARIANT_KEYS = ("class_weighted",)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@=-]*$")


class CellConfigError(ValueError):
    """An existing cell folder was made with a different configuration (the message names the field)."""


# ---------------------------------------------------------------------------------------------- arms, cells


@dataclass(frozen=True)
class Arm:
    """One compared setting: ``strategy`` with ``kwargs`` (``build_strategy`` keyword arguments and
    ``class_weighted``), shown as ``name``."""

    name: str
    strategy: str
    kwargs: dict = field(default_factory=dict)
    #: generator family behind the arm (``gemix_monai.generators.GENERATOR_FAMILIES``)
    family: str = "stylegan2"

    @property
    def needs_generator(self) -> bool:
        return self.strategy not in GENERATOR_FREE


def _variant_keys() -> set[str]:
    import inspect

    from gemix_monai.transforms.strategies import build_strategy

    params = inspect.signature(build_strategy).parameters
    fixed = {"name", "real_dataset", "num_classes", "generator", "seed", "device"}
    return {p for p in params if p not in fixed} | set(EXTRA_VARIANT_KEYS)


def _check_strategy(name: str, where: str) -> None:
    from gemix_monai.transforms.strategies import STRATEGIES

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} in {where}; expected one of {list(STRATEGIES)}")


def _make_arm(name: str, strategy: str, kwargs: Mapping | None, where: str) -> Arm:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"variant name {name!r} in {where}: use letters, digits and _ . + @ = - (no '/' or spaces)")
    _check_strategy(strategy, where)
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - _variant_keys())
    if unknown:
        raise ValueError(
            f"variant {name!r} in {where}: unknown keyword(s) {unknown}; expected keys of "
            f"build_strategy or {list(EXTRA_VARIANT_KEYS)}: {sorted(_variant_keys())}"
        )
    return Arm(name, strategy, kwargs)


def parse_variant(text: str) -> Arm:
    """``"NAME=STRATEGY"`` or ``"NAME=STRATEGY:{python dict}"`` → :class:`Arm`.

    Example: ``"gemix@ratio0.5=gemix:{'synthetic_ratio': 0.5}"``,
    ``"softmax_t@T0.5=softmax_t:{'sampler_kwargs': {'temperature': 0.5}}"``,
    ``"real@cw=real:{'class_weighted': True}"``.
    """
    where = f"--variant {text!r}"
    if "=" not in text:
        raise ValueError(f"{where}: expected NAME=STRATEGY:{{python dict}}")
    name, spec = (s.strip() for s in text.split("=", 1))
    strategy, _, raw = spec.partition(":")
    kwargs: object = {}
    if raw.strip():
        try:
            kwargs = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{where}: the part after ':' must be a Python dict literal ({e})") from e
        if not isinstance(kwargs, dict):
            raise ValueError(f"{where}: the part after ':' must be a dict, got {type(kwargs).__name__}")
    return _make_arm(name, strategy.strip(), kwargs, where)


def _resolve_arms(strategies: Sequence[str], variants) -> list[Arm]:
    defined: dict[str, Arm] = {}
    if isinstance(variants, Mapping):
        for name, spec in variants.items():
            if isinstance(spec, str):
                arm = parse_variant(f"{name}={spec}")
            elif isinstance(spec, Mapping) and "strategy" in spec:
                arm = _make_arm(
                    name, spec["strategy"], {k: v for k, v in spec.items() if k != "strategy"}, f"variants[{name!r}]"
                )
            else:
                raise ValueError(f"variants[{name!r}]: expected 'STRATEGY:{{...}}' or a dict with a 'strategy' key")
            defined[arm.name] = arm
    else:
        for v in variants or ():
            arm = v if isinstance(v, Arm) else parse_variant(v)
            defined[arm.name] = arm
    from gemix_monai.transforms.strategies import STRATEGIES

    for name in defined:
        if name in STRATEGIES:
            raise ValueError(
                f"variant name {name!r} is a strategy name; give the variant its own name (e.g. {name}@...)"
            )
    arms: list[Arm] = []
    for s in strategies:
        if s in defined:
            arms.append(defined[s])
        else:
            _check_strategy(s, "strategies")
            arms.append(Arm(s, s, {}))
    arms += [a for name, a in defined.items() if name not in strategies]
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"strategies listed twice: {dup}")
    if not arms:
        raise ValueError("no strategies to compare")
    return arms


@dataclass
class Cell:
    """One resumable unit. ``config`` decides the result (compared with an existing ``cell.json``);
    ``runtime`` holds paths and the device."""

    id: str
    kind: str  # "gan" or "classifier"
    config: dict
    runtime: dict
    deps: tuple[str, ...] = ()

    def dir(self, out: Path) -> Path:
        return Path(out) / "cells" / self.id


def _tag(path: Path) -> str:
    name = (
        path.parent.name
        if path.is_file() and path.stem in ("datalist", "dataset")
        else path.stem
        if path.is_file()
        else path.name
    )
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"


def _resolve_dataset(
    out: Path, dataset_dir, datalist, image_size: int, phantom_counts, val_counts, test_counts, create: bool
) -> tuple[str, dict, str]:
    """``(source for get_dataset, descriptor recorded in every cell config, tag used in cell ids)``."""
    if dataset_dir is not None and datalist is not None:
        raise ValueError("give dataset_dir or datalist, not both")
    given = datalist if datalist is not None else dataset_dir
    if given is not None:
        path = Path(given).resolve()
        if not path.exists():
            raise FileNotFoundError(f"{'datalist' if datalist is not None else 'dataset_dir'} not found: {path}")
        key = "datalist" if datalist is not None else "dataset_dir"
        return str(path), {key: str(path)}, _tag(path)
    from gemix_monai.data.phantoms import ensure_default_dataset, split_counts

    counts = split_counts(phantom_counts, val_counts, test_counts)
    descriptor = {"source": "phantom", "seed": 0, "counts": {k: list(v) for k, v in counts.items()}}
    folder = out / "data" / f"phantoms_{image_size}px"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f".{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ensure_default_dataset(
                folder,
                image_size=image_size,
                counts=phantom_counts,
                seed=0,
                val_counts=val_counts,
                test_counts=test_counts,
                verify_hashes=False,
            )
    return str(folder / "datalist.json"), descriptor, "phantoms"


def checked_settings(defaults: Mapping, kw: Mapping, known_networks: Mapping, network_word: str = "network") -> dict:
    """``defaults`` updated with the given (not ``None``) ``kw``, with the settings both comparisons share checked and
    normalised: seeds (a count or a list) and GAN seeds without repeats, networks among ``known_networks``, the
    interval method, the numeric budgets."""
    s = dict(defaults)
    s.update({k: v for k, v in kw.items() if v is not None})
    seeds = s["seeds"]
    s["seeds"] = list(range(int(seeds))) if isinstance(seeds, int) else [int(x) for x in seeds]
    if not s["seeds"]:
        raise ValueError("seeds: at least one seed is needed")
    s["gan_seeds"] = [int(x) for x in s["gan_seeds"]]
    for key in ("seeds", "gan_seeds"):
        if len(set(s[key])) != len(s[key]):
            raise ValueError(f"{key} has repeated values: {s[key]}")
    s["networks"] = list(s["networks"])
    for n in s["networks"]:
        if n not in known_networks:
            raise ValueError(f"unknown {network_word} {n!r}; expected one of {list(known_networks)}")
    if s["interval"] not in METHODS:
        raise ValueError(f"unknown interval {s['interval']!r}; expected one of {list(METHODS)}")
    s["gan_kimg"] = float(s["gan_kimg"])
    for key in ("epochs", "batch_size", "gan_batch_size", "image_size"):
        s[key] = int(s[key])
    return s


def _settings(**kw) -> dict:
    from gemix_monai.engines.classifier_networks import CLASSIFIER_NETWORKS
    from gemix_monai.generators.protocol import GENERATOR_FAMILIES

    s = checked_settings(COMPARE_DEFAULTS, kw, CLASSIFIER_NETWORKS)
    s["generators"] = list(dict.fromkeys(s["generators"]))
    for f in s["generators"]:
        if f not in GENERATOR_FAMILIES:
            raise ValueError(f"unknown generator family {f!r}; expected one of {list(GENERATOR_FAMILIES)}")
    if not s["generators"]:
        raise ValueError("generators: at least one generator family is needed")
    return s


def expand_arms(arms: Sequence[Arm], families: Sequence[str]) -> list[Arm]:
    """One arm per generator arm × family: StyleGAN2 keeps the arm's name, another family ``F`` makes ``<name>@F``;
    generator-free arms appear once."""
    out: list[Arm] = []
    for arm in arms:
        if not arm.needs_generator:
            out.append(arm)
            continue
        for f in families:
            out.append(arm if f == "stylegan2" else Arm(f"{arm.name}@{f}", arm.strategy, dict(arm.kwargs), f))
    return out


def _gan_budget(s: dict, family: str) -> dict:
    budget = {"preset": s["gan_preset"], "kimg": s["gan_kimg"], "batch_size": s["gan_batch_size"]}
    if family != "stylegan2":  # the default's config (and so its cell ids and stored cell.json) is unchanged
        budget["family"] = family
    if s.get("gan_class_balance", "none") != "none":
        budget["class_balance"] = s["gan_class_balance"]
    if s.get("gan_select"):
        budget["selection"] = s["gan_select"]  # the criterion of the audit-chosen best.pt (the cells use it)
    return budget


def gan_cell(
    cell_id: str, kind: str, s: dict, dataset: dict, gan_seed: int, budget: dict, data: dict, source: str, device
) -> Cell:
    """The cell of one generator (``kind`` ``gan`` or ``pair_gan``) trained on ``dataset``'s training split."""
    config = {"kind": kind, "dataset": dataset, "image_size": s["image_size"], "gan_seed": gan_seed, "gan": budget}
    return Cell(cell_id, kind, {**config, **data}, {"source": source, "device": device})


def trainer_config(kind: str, s: dict, dataset: dict, data: dict, *keys: str) -> dict:
    """The config every downstream cell of ``kind`` shares: the dataset, the training budget and ``keys`` of ``s``."""
    budget = ("image_size", "epochs", "batch_size", "learning_rate", "weight_decay", *keys)
    return {"kind": kind, "dataset": dataset, **{k: s[k] for k in budget}, **data}


def arm_config(network: str, arm: Arm, seed: int) -> dict:
    """What a downstream cell's config records of its network, arm and seed."""
    return {
        "network": network,
        "arm": arm.name,
        "strategy": arm.strategy,
        "strategy_kwargs": dict(arm.kwargs),
        "seed": seed,
    }


def generator_runtime(out: Path, gan_cell_id: str, source: str, device) -> dict:
    """The runtime of a cell that reads the generator of cell ``gan_cell_id`` (where train_gan exports it)."""
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    generator = str(Path(out) / "cells" / gan_cell_id / GENERATOR_SUBPATH)
    return {"source": source, "device": device, "gan_cell": gan_cell_id, "generator": generator}


def plan_cells(
    out, s: dict, arms: Sequence[Arm], source: str, dataset: dict, tag: str, device: str | None
) -> list[Cell]:
    """All cells in dependency order: the GAN cells (per family and GAN seed), then the classifier cells seed by seed."""
    out = Path(out)
    # data options (get_dataset keywords) are part of every cell's config only when given, so that
    # folders made before they existed stay valid
    data = {"data": dict(s["data_options"])} if s.get("data_options") else {}
    cells: list[Cell] = []
    gan_ids: dict[tuple[str, int], str] = {}
    families = list(dict.fromkeys(a.family for a in arms if a.needs_generator))
    for family in families:
        for g in s["gan_seeds"]:
            gid = f"{tag}/gan/g{g}" if family == "stylegan2" else f"{tag}/gan-{family}/g{g}"
            gan_ids[family, g] = gid
            cells.append(gan_cell(gid, "gan", s, dataset, g, _gan_budget(s, family), data, source, device))
    common = trainer_config("classifier", s, dataset, data, "key_metric")
    planned: set[str] = set()
    for seed in s["seeds"]:
        for net in s["networks"]:
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
                pool = {"pool": {"size": int(s["pool_size"]), "seed": 0}} if s.get("pool_size") else {}
                for g in s["gan_seeds"]:
                    gid = gan_ids[arm.family, g]
                    cells.append(
                        Cell(
                            f"{tag}/{net}/{arm.name}/g{g}-s{seed}",
                            "classifier",
                            {**common, **arm_cfg, "gan_seed": g, "gan": _gan_budget(s, arm.family), **pool},
                            {**generator_runtime(out, gid, source, device), **teacher},
                            (gid,) + ((teacher["teacher_cell"],) if teacher else ()),
                        )
                    )
    return cells


# ---------------------------------------------------------------------------------------------- running cells


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _first_difference(old, new, prefix: str = "") -> tuple[str, object, object] | None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for k in sorted(set(old) | set(new), key=str):
            if k not in old or k not in new:
                return (f"{prefix}{k}", old.get(k, "<absent>"), new.get(k, "<absent>"))
            d = _first_difference(old[k], new[k], f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if old == new else (prefix.rstrip("."), old, new)


def check_cell_config(cell: Cell, out: Path) -> None:
    """Raise :class:`CellConfigError` if ``cell.json`` exists with a different ``config``."""
    path = cell.dir(out) / "cell.json"
    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    new = plain_data(cell.config, "cell.config")  # tuples → lists, as stored
    diff = _first_difference(old, new)
    if diff:
        name, was, now = diff
        raise CellConfigError(
            f"cell {cell.id}: field {name!r} was {was!r} in {path}, now {now!r}; results made with different "
            f"settings are not mixed: use another --out folder (or delete that cell folder) to change {name!r}"
        )


def is_finished(cell: Cell, out: Path) -> bool:
    return (cell.dir(out) / "result.json").is_file()


@contextlib.contextmanager
def _cell_lock(cell_dir: Path, cell_id: str, verbose: bool):
    cell_dir.mkdir(parents=True, exist_ok=True)
    with open(cell_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if verbose:
                print(f"  {cell_id}: another process runs this cell; waiting for it", flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_gan_cell(config: dict, runtime: dict, cell_dir: Path) -> dict:
    """Train (or resume) the GAN of one GAN seed; returns the result fields."""
    from gemix_monai.data import get_dataset
    from gemix_monai.engines.generative import train_generator

    # Images only unless the cell's data options ask for masks: the recorded comparisons trained image GANs.
    data = {"masks": "off", **config.get("data", {})}
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
        seed=config["gan_seed"],
        resume="auto",
        device=runtime["device"],
        sample_kimg=gan["kimg"],
        progress=False,
        class_balance=gan.get("class_balance", "none"),
        selection=selection,
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
    if not pool or config["strategy"] in GENERATOR_FREE:
        return None
    import hashlib

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
        with _cell_lock(folder, str(folder), verbose=False):
            write_pool(
                str(generator), sampler, folder, int(pool["size"]), seed=int(pool["seed"]), device=runtime["device"]
            )
    return str(folder)


def cell_datasets(config: dict, runtime: dict, splits: Sequence[str]) -> list:
    """The ``splits`` of a downstream cell's data, read with the cell's data options (``hu_window``, ``intensity``,
    ``split_seed``, ``on_duplicate``, ``masks``: when given) and cached."""
    from gemix_monai.data import get_dataset

    data = config.get("data", {})
    return [get_dataset(runtime["source"], split, config["image_size"], cache=True, **data) for split in splits]


def cell_generator(config: dict, runtime: dict) -> str | None:
    """The generator checkpoint a downstream cell reads (``None`` for a cell without a GAN), refused when missing."""
    if config["gan"] is None:
        return None
    generator = runtime.get("generator")
    legacy = Path(generator).parent.parent / "generator.pt" if generator else None  # before models/generator/
    if generator and not Path(generator).is_file() and legacy is not None and legacy.is_file():
        generator = str(legacy)
    if not (generator and Path(generator).is_file()):
        raise FileNotFoundError(f"generator of {runtime.get('gan_cell')} not found at {generator}; run that cell first")
    return generator


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
        lr=config["learning_rate"],
        weight_decay=config["weight_decay"],
        seed=config["seed"],
        key_metric=config["key_metric"],
        class_weighted_sampling=class_weighted,
        strategy_kwargs=kwargs,
        device=runtime["device"],
        tensorboard=False,
        final_report=False,
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


#: cell kind -> runner: a name in this module or ``"module:function"`` (the segmentation cells,
#: gemix_monai.experiments.compare_segmentation).
RUNNERS = {
    "gan": "run_gan_cell",
    "classifier": "run_classifier_cell",
    "pair_gan": "gemix_monai.experiments.compare_segmentation:run_pair_gan_cell",
    "segmenter": "gemix_monai.experiments.compare_segmentation:run_segmenter_cell",
}


def _runner(kind: str):
    module, _, name = RUNNERS[kind].rpartition(":")
    if not module:
        return globals()[name]
    import importlib

    return getattr(importlib.import_module(module), name)


def run_cell(cell: Cell, out, *, verbose: bool = False, quiet: bool = True) -> bool:
    """Run ``cell`` unless finished; ``True`` if it ran. Holds the cell lock while checking and running."""
    out = Path(out)
    for dep in cell.deps:
        if not (out / "cells" / dep / "result.json").is_file():
            raise RuntimeError(f"cell {cell.id} needs cell {dep} first (run it with --cell {dep})")
    cell_dir = cell.dir(out)
    with _cell_lock(cell_dir, cell.id, verbose):
        if is_finished(cell, out):
            return False
        check_cell_config(cell, out)
        from gemix_monai.utils import atomic_write_bytes

        atomic_write_bytes(
            cell_dir / "cell.json",
            _json_bytes(
                {
                    "id": cell.id,
                    "kind": cell.kind,
                    "config": cell.config,
                    "runtime": cell.runtime,
                    "deps": list(cell.deps),
                }
            ),
        )
        runner = _runner(cell.kind)
        start, cpu = time.perf_counter(), time.process_time()
        from gemix_monai.utils import quiet_logs

        with quiet_logs() if quiet else contextlib.nullcontext():
            fields = runner(cell.config, cell.runtime, cell_dir)
        result = {
            "id": cell.id,
            "kind": cell.kind,
            **fields,
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "device": cell.runtime.get("device"),
            "code": code_state(),
            "config": cell.config,
        }
        atomic_write_bytes(cell_dir / "result.json", _json_bytes(result))
    return True


@functools.lru_cache(maxsize=1)
def code_state() -> dict:
    """The code a cell ran with: the package version and, for a git checkout, its commit (``-dirty`` with
    uncommitted changes to tracked files); recorded in every ``result.json`` so a summary can tell when a long
    run spanned code changes (docs/experiments.md)."""
    import subprocess

    from gemix_monai import __version__

    state = {"gemix_monai": __version__, "git": None}
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        state["git"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass  # an installed package outside a checkout: the version alone
    return state


def code_states_line(out: Path, cells: Sequence["Cell"]) -> str:
    """One summary line naming the code state(s) of the finished cells; more than one is said loudly."""
    states: dict[str, int] = {}
    for c in cells:
        if is_finished(c, out):
            code = json.loads((c.dir(out) / "result.json").read_text(encoding="utf-8")).get("code")
            key = f"gemix-monai {code['gemix_monai']} at {code['git'] or 'no git checkout'}" if code else "not recorded"
            states[key] = states.get(key, 0) + 1
    if len(states) <= 1:
        return f"- code: {next(iter(states), 'no finished cell')}"
    listed = "; ".join(f"{k} ({n} cells)" for k, n in states.items())
    return (
        f"- **code: the finished cells come from {len(states)} code states** ({listed}): a run spanned code "
        "changes, so its cells may not be comparable — re-run the cells of the older state(s) in a new folder"
    )


def _run_cell_dir(cell_dir: Path, out: Path, quiet: bool) -> None:
    """Run the cell whose resolved ``cell.json`` is in ``cell_dir`` (the ``--jobs`` worker)."""
    meta = json.loads((cell_dir / "cell.json").read_text(encoding="utf-8"))
    cell = Cell(meta["id"], meta["kind"], meta["config"], meta["runtime"], tuple(meta.get("deps", ())))
    run_cell(cell, out, quiet=quiet)


def _run_parallel(cells: list[Cell], out: Path, jobs: int, *, verbose: bool, quiet: bool) -> None:
    from gemix_monai.utils import atomic_write_bytes

    done = {c.id for c in cells if is_finished(c, out)}
    pending = [c for c in cells if c.id not in done]
    failed: dict[str, str] = {}
    running: dict[str, tuple[subprocess.Popen, Cell, io.IOBase, float]] = {}
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    total, count = len(cells), len(done)
    while pending or running:
        for c in list(pending):
            if len(running) >= jobs:
                break
            if any(d in failed for d in c.deps):
                pending.remove(c)
                failed[c.id] = f"dependency {[d for d in c.deps if d in failed]} failed"
                continue
            if not all(d in done for d in c.deps):
                continue
            pending.remove(c)
            d = c.dir(out)
            d.mkdir(parents=True, exist_ok=True)
            check_cell_config(c, out)
            atomic_write_bytes(
                d / "cell.json",
                _json_bytes(
                    {"id": c.id, "kind": c.kind, "config": c.config, "runtime": c.runtime, "deps": list(c.deps)}
                ),
            )
            log = open(d / "log.txt", "ab")
            cmd = [sys.executable, "-m", "gemix_monai.experiments.compare", "--cell-dir", str(d), "--out", str(out)]
            if not quiet:
                cmd.append("--verbose")
            running[c.id] = (
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                c,
                log,
                time.perf_counter(),
            )
        if not running:
            if pending:
                raise RuntimeError(f"cells cannot start, their dependencies are missing: {[c.id for c in pending]}")
            break
        time.sleep(0.2)
        for cid, (proc, c, log, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[cid]
            count += 1
            if proc.returncode == 0 and is_finished(c, out):
                done.add(cid)
                if verbose:
                    print(f"[{count}/{total}] {cid} done in {time.perf_counter() - t0:.1f} s", flush=True)
            else:
                failed[cid] = f"exit code {proc.returncode}; log: {c.dir(out) / 'log.txt'}"
                if verbose:
                    print(f"[{count}/{total}] {cid} FAILED ({failed[cid]})", flush=True)
    if failed:
        raise RuntimeError("cells failed:\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()))


# ---------------------------------------------------------------------------------------------- summary


def _fmt(x: float, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def _fmt_interval(iv: Interval, signed: bool = False) -> str:
    if not iv.defined:
        return f"{_fmt(iv.mean, signed)} (interval undefined)"
    # a clipped interval is no longer mean ± h (docs/experiments.md, "Intervals")
    half = "" if iv.clipped else f" ± {iv.half_width:.4f}"
    marks = f" ({iv.marks()})" if iv.marks() else ""
    return f"{_fmt(iv.mean, signed)}{half} [{_fmt(iv.lo, signed)}, {_fmt(iv.hi, signed)}]{marks}"


def _load_results(cells: Sequence[Cell], out: Path, kind: str = "classifier") -> list[dict]:
    rows = []
    for c in cells:
        if c.kind != kind or not is_finished(c, out):
            continue
        r = json.loads((c.dir(out) / "result.json").read_text(encoding="utf-8"))
        # cells written before undefined values became null stored 0 and listed the name under "undefined"
        undefined = set(r.get("undefined", []))
        metrics = {k: (None if k in undefined else v) for k, v in r["metrics"].items()}
        rows.append(
            {
                "cell_id": c.id,
                "network": c.config["network"],
                "strategy": c.config["arm"],
                "base_strategy": c.config["strategy"],
                "gan_seed": c.config["gan_seed"],
                "seed": c.config["seed"],
                "seconds": r.get("seconds"),
                "class_names": r["class_names"],
                "metrics": metrics,
            }
        )
    return rows


def _per_seed(rows: list[dict], network: str, arm: str, metric: str) -> dict[int, float]:
    """Value of one arm per classifier seed: the cell's value, averaged over GAN seeds when there are several.

    An undefined value (``None``, or NaN, e.g. the FNR of a class with no test image) is left out, so a seed
    with none defined is absent and ``n`` counts the seeds with a value (docs/experiments.md, "Intervals")."""
    by_seed: dict[int, list[float]] = {}
    for r in rows:
        if r["network"] == network and r["strategy"] == arm and r["metrics"].get(metric) is not None:
            value = float(r["metrics"][metric])
            if math.isfinite(value):
                by_seed.setdefault(r["seed"], []).append(value)
    return {s: sum(v) / len(v) for s, v in by_seed.items()}


def summarize(
    rows: list[dict],
    networks: Sequence[str],
    arms: Sequence[str],
    *,
    method: str = "t",
    confidence: float = 0.95,
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
) -> tuple[list[str], list[dict]]:
    """``(metrics, long-format records)``: one record per (network, arm, metric), then the paired ones against
    each of ``baselines`` present. ``metrics`` default: the classifier's (:data:`SUMMARY_METRICS`, ``fnr/<class>``)."""
    if metrics is None:
        classes = next((r["class_names"] for r in rows), [])
        metrics = list(SUMMARY_METRICS) + [f"fnr/{c}" for c in classes]
    metrics = list(metrics)
    records = []
    for net in networks:
        for arm in arms:
            for m in metrics:
                values = list(_per_seed(rows, net, arm, m).values())
                iv = compute_interval(values, method, confidence, seed=seed, bounds=metric_range(m))
                records.append({"network": net, "strategy": arm, "comparison": "", "metric": m, "interval": iv})
        for base in baselines:
            if base not in arms:
                continue
            for arm in arms:
                if arm == base or (arm in baselines and list(baselines).index(arm) < list(baselines).index(base)):
                    continue  # pixel_mixup - real is listed once, not again as real - pixel_mixup
                for m in metrics:
                    a, b = _per_seed(rows, net, arm, m), _per_seed(rows, net, base, m)
                    _, diffs = paired_differences(a, b)  # matched by seed
                    iv = compute_interval(diffs, method, confidence, seed=seed, bounds=metric_range(m, difference=True))
                    records.append(
                        {"network": net, "strategy": arm, "comparison": f"- {base}", "metric": m, "interval": iv}
                    )
    return metrics, records


def write_summary(
    out,
    cells: Sequence[Cell],
    arms: Sequence[Arm],
    s: dict,
    dataset: dict,
    *,
    kind: str = "classifier",
    metrics: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
    plot_metrics: Sequence[str] = PLOT_METRICS,
    markdown=None,
) -> dict[str, Path]:
    """Write ``summary.md``, ``summary.csv``, ``summary.png`` and ``cells.csv`` from the finished cells of ``kind``.

    ``metrics``/``baselines``/``plot_metrics``/``markdown`` (a function with :func:`_markdown`'s arguments) default
    to the classifier comparison's; the segmentation comparison passes its own.
    """
    from gemix_monai.utils import atomic_write_bytes

    out = Path(out)
    rows = _load_results(cells, out, kind)
    arm_names = [a.name for a in arms]
    networks = list(s["networks"])
    metrics, records = summarize(
        rows,
        networks,
        arm_names,
        method=s["interval"],
        confidence=s["confidence"],
        metrics=metrics,
        baselines=baselines,
    )
    files = {}

    # cells.csv: every finished classifier cell, every metric of its test report
    extra = sorted({k for r in rows for k in r["metrics"]} - set(metrics))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["cell_id", "network", "strategy", "base_strategy", "gan_seed", "seed", "seconds", *metrics, *extra])
    for r in rows:
        w.writerow(
            [
                r["cell_id"],
                r["network"],
                r["strategy"],
                r["base_strategy"],
                "" if r["gan_seed"] is None else r["gan_seed"],
                r["seed"],
                r["seconds"],
                *(_cell_value(r["metrics"], m) for m in [*metrics, *extra]),
            ]
        )
    files["cells.csv"] = atomic_write_bytes(out / "cells.csv", buf.getvalue().encode(), durable=False)

    # summary.csv: long format
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "network",
            "strategy",
            "comparison",
            "metric",
            "n",
            "mean",
            "ci_lo",
            "ci_hi",
            "half_width",
            "method",
            "confidence",
            "defined",
            "excludes_zero",
            "clipped",
            "n_too_small",
        ]
    )
    for rec in records:
        iv: Interval = rec["interval"]
        w.writerow(
            [
                rec["network"],
                rec["strategy"],
                rec["comparison"],
                rec["metric"],
                iv.n,
                repr(iv.mean),
                repr(iv.lo),
                repr(iv.hi),
                repr(iv.half_width),
                iv.method,
                iv.confidence,
                iv.defined,
                iv.excludes_zero if rec["comparison"] else "",
                iv.clipped,
                iv.n_too_small,
            ]
        )
    files["summary.csv"] = atomic_write_bytes(out / "summary.csv", buf.getvalue().encode(), durable=False)

    text = (markdown or _markdown)(out, cells, rows, arms, s, dataset, metrics, records)
    files["summary.md"] = atomic_write_bytes(out / "summary.md", text.encode(), durable=False)
    files["summary.png"] = _plot(out / "summary.png", networks, arm_names, records, s, plot_metrics, baselines)
    return files


def _cell_value(metrics: dict, name: str) -> str:
    """A cells.csv entry: the value, ``nan`` where it is undefined (``None``), empty where the cell lacks it."""
    if name not in metrics:
        return ""
    return "nan" if metrics[name] is None else repr(float(metrics[name]))


def _result_tables(s: dict, arms: Sequence[Arm], metrics, records, baselines=BASELINES) -> list[str]:
    """Markdown lines after a summary's header: the variants' settings, the interval tables, where the raw data are."""
    lines: list[str] = []
    variants = [a for a in arms if a.kwargs or a.name != a.strategy]
    if variants:
        lines += ["Variants:", "", "| name | strategy | keyword arguments |", "|---|---|---|"]
        lines += [f"| {a.name} | {a.strategy} | `{a.kwargs}` |" for a in variants]
        lines.append("")
    lines += _interval_tables(s["networks"], [a.name for a in arms], metrics, records, baselines)
    lines += [
        "Raw per-cell results: `cells.csv`; long format with the paired rows: `summary.csv`; plot: `summary.png`.",
        "",
    ]
    return lines


def _interval_tables(networks, arm_names, metrics, records, baselines=BASELINES) -> list[str]:
    """Markdown lines: per network, the interval table of every arm, then the paired differences per baseline."""
    lines: list[str] = []
    by = {(r["network"], r["strategy"], r["comparison"], r["metric"]): r["interval"] for r in records}
    for net in networks:
        lines += [f"## Network `{net}`", "", *table_head(["strategy", "n", *metrics])]
        for arm in arm_names:
            ivs = [by[(net, arm, "", m)] for m in metrics]
            lines.append(f"| {arm} | {ivs[0].n} | " + " | ".join(_fmt_interval(iv) for iv in ivs) + " |")
        lines.append("")
        for base in baselines:
            if base not in arm_names:
                continue
            lines += [
                f"### Paired differences: strategy - `{base}` (`{net}`)",
                "",
                "Matched by (GAN seed, seed); `*` marks an interval that excludes 0.",
                "",
                *table_head(["strategy", "n", *metrics]),
            ]
            for arm in arm_names:
                if (net, arm, f"- {base}", metrics[0]) not in by:
                    continue
                ivs = [by[(net, arm, f"- {base}", m)] for m in metrics]
                lines.append(
                    f"| {arm} | {ivs[0].n} | "
                    + " | ".join(_fmt_interval(iv, signed=True) + (" *" if iv.excludes_zero else "") for iv in ivs)
                    + " |"
                )
            lines.append("")
    return lines


def _markdown(out, cells, rows, arms, s, dataset, metrics, records) -> str:
    pct = f"{s['confidence'] * 100:g} %"
    how = (
        f"{pct} Student-t interval (n - 1 degrees of freedom)"
        if s["interval"] == "t"
        else f"{pct} percentile bootstrap interval of the mean (10000 resamples, seed 0)"
    )
    gan_cells = [c for c in cells if c.kind == "gan"]
    gan_secs = [
        json.loads((c.dir(out) / "result.json").read_text())["seconds"] for c in gan_cells if is_finished(c, out)
    ]
    n_clf = sum(c.kind == "classifier" for c in cells)
    lines = [
        "# Strategy comparison on the test split",
        "",
        f"- dataset: `{json.dumps(dataset)}`",
        f"- classifier seeds: {s['seeds']} (n = {len(s['seeds'])}); GAN seeds: {s['gan_seeds']}",
        f"- generator families: {', '.join(s.get('generators', ['stylegan2']))} "
        "(arms `<strategy>@<family>`; unsuffixed: stylegan2)",
        f"- GAN budget (per GAN seed and family): preset `{s['gan_preset']}`, {s['gan_kimg']:g} kimg, batch {s['gan_batch_size']}"
        + (f"; measured {sum(gan_secs):.0f} s over {len(gan_secs)} GAN(s)" if gan_secs else ""),
        f"- classifier budget (every cell): {s['epochs']} epochs, batch {s['batch_size']}, AdamW lr {s['learning_rate']:g}, "
        f"weight decay {s['weight_decay']:g}, {s['image_size']} px, checkpoint chosen by validation `{s['key_metric']}`",
        f"- cells: {len(rows)} of {n_clf} classifier cells finished"
        + (f" (total {sum(r['seconds'] or 0 for r in rows):.0f} s)" if rows else ""),
        code_states_line(out, cells),
        "",
        f"Each entry is mean ± half-width [lo, hi] of a {how} over the classifier seeds; n is the number of "
        "seeds (with several GAN seeds, a seed's value is the mean over its GAN seeds). An interval needs "
        "n >= 2; with n = 1 it is reported as undefined, with n = 2 marked `n=2 too small`. Ends beyond the "
        "metric's range ([0, 1] for a rate, [-1, 1] for a difference of two) are cut there and the interval is "
        "marked `clipped` (written without ±). An undefined value (the FNR of a class with no test image) is left "
        "out and n counts the seeds with a value. Higher is better except `ece` and `fnr/<class>`.",
        "",
    ]
    lines += _result_tables(s, arms, metrics, records)
    return "\n".join(lines)


def _plot(path: Path, networks, arms, records, s, plot_metrics=PLOT_METRICS, baselines=BASELINES) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from gemix_monai.utils import atomic_write_bytes

    by = {(r["network"], r["strategy"], r["metric"]): r["interval"] for r in records if not r["comparison"]}
    fig, axes = plt.subplots(
        len(plot_metrics),
        len(networks),
        figsize=(1.2 + 0.75 * len(arms) * len(networks) + 1.5, 3.2 * len(plot_metrics)),
        squeeze=False,
    )
    for j, net in enumerate(networks):
        for i, m in enumerate(plot_metrics):
            ax = axes[i][j]
            for x, arm in enumerate(arms):
                iv = by[(net, arm, m)]
                if not math.isfinite(iv.mean):
                    continue
                if iv.defined:
                    ax.errorbar(
                        [x],
                        [iv.mean],
                        yerr=[[iv.mean - iv.lo], [iv.hi - iv.mean]],
                        fmt="o",
                        capsize=4,
                        color="tab:blue" if arm not in baselines else "tab:gray",
                    )
                else:
                    ax.plot([x], [iv.mean], "x", color="tab:red")
            ax.set_xticks(range(len(arms)), arms, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{net}: {m}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
            if j == 0:
                ax.set_ylabel(m)
    fig.suptitle(
        f"test split, mean and {s['confidence'] * 100:g} % {s['interval']} interval over {len(s['seeds'])} seeds "
        "(x: interval undefined)",
        fontsize=9,
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue(), durable=False)


# ---------------------------------------------------------------------------------------------- entry point


@dataclass
class CompareResult:
    out_dir: Path
    cells: list[Cell]
    ran: list[str]
    files: dict[str, Path]
    seconds: float


def run_compare(
    out="gemix_compare",
    *,
    dataset_dir=None,
    datalist=None,
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
    gan_seeds: Sequence[int] | None = None,
    networks: Sequence[str] | None = None,
    gan_kimg: float | None = None,
    gan_batch_size: int | None = None,
    gan_preset: str | None = None,
    generators: Sequence[str] | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    weight_decay: float | None = None,
    image_size: int | None = None,
    key_metric: str | None = None,
    variants=None,
    interval: str | None = None,
    confidence: float | None = None,
    jobs: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    cell_cpus: float | None = None,
    cell_gpus: float | None = None,
    cell: str | None = None,
    list_cells: bool = False,
    device: str | None = None,
    phantom_counts: Sequence[int] | None = None,
    val_counts: Sequence[int] | None = None,
    test_counts: Sequence[int] | None = None,
    data_options: dict | None = None,
    verbose: bool = True,
    quiet: bool = True,
    gan_class_balance: str | None = None,
    gan_select: str | None = None,
    pool_size: int | None = None,
):
    """Run (or resume) a comparison and write its summary; see the module docstring and docs/experiments.md.

    ``gan_class_balance``: the generators' class balance (``none``/``sqrt``/``uniform``); ``gan_select``: a criterion
    of the training-time audit (the cells then use each GAN's ``best.pt``); ``pool_size``: > 0 draws the synthetic
    images of every generator strategy from one pool of that many images per generator and sampler (made once,
    shared by the seeds) instead of on the fly (docs/mixing.md, "Synthetic pools").

    ``None`` arguments take :data:`COMPARE_DEFAULTS`. ``seeds`` is a count (seeds 0..N-1) or a list.
    ``variants``: ``["NAME=STRATEGY:{...}", ...]`` or ``{NAME: "STRATEGY:{...}" | {"strategy": ..., **kwargs}}``;
    a variant is compared as its own arm (listed in ``strategies`` or appended after them).
    ``generators``: generator families (default ``["stylegan2"]``); each generator arm is run with each family.
    ``cell``: run only that cell (its GAN cell must be finished) and write no summary.
    ``list_cells``: return (and, with ``verbose``, print) the cell ids in dependency order; nothing runs.
    ``jobs > 1``: run the cells as that many concurrent subprocesses. ``executor="ray"``: every cell a task on a Ray
    cluster (``ray_address``; ``cell_cpus`` / ``cell_gpus`` reserved per cell; docs/cluster.md). ``phantom_counts`` / ``val_counts``
    / ``test_counts``: per-class sizes of the default phantom dataset (written to ``<out>/data``).
    """
    start = time.perf_counter()
    s = _settings(
        strategies=strategies,
        seeds=seeds,
        gan_seeds=gan_seeds,
        networks=networks,
        gan_kimg=gan_kimg,
        gan_batch_size=gan_batch_size,
        gan_preset=gan_preset,
        generators=generators,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        image_size=image_size,
        key_metric=key_metric,
        interval=interval,
        confidence=confidence,
        data_options=dict(data_options or {}),
        gan_class_balance=gan_class_balance,
        gan_select=gan_select,
        pool_size=pool_size,
    )
    arms = expand_arms(_resolve_arms(list(s["strategies"]), variants), s["generators"])
    return drive_compare(
        out,
        s,
        arms,
        plan=plan_cells,
        write=write_summary,
        dataset_dir=dataset_dir,
        datalist=datalist,
        phantom_counts=phantom_counts,
        val_counts=val_counts,
        test_counts=test_counts,
        jobs=jobs,
        executor=executor,
        ray_address=ray_address,
        cell_cpus=cell_cpus,
        cell_gpus=cell_gpus,
        cell=cell,
        list_cells=list_cells,
        device=device,
        verbose=verbose,
        quiet=quiet,
        start=start,
    )


def drive_compare(
    out,
    s: dict,
    arms: Sequence[Arm],
    *,
    plan,
    write,
    dataset_dir=None,
    datalist=None,
    phantom_counts=None,
    val_counts=None,
    test_counts=None,
    jobs: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    cell_cpus: float | None = None,
    cell_gpus: float | None = None,
    cell: str | None = None,
    list_cells: bool = False,
    device: str | None = None,
    verbose: bool = True,
    quiet: bool = True,
    start: float | None = None,
):
    """What every comparison does with its checked settings ``s`` and ``arms`` (the arguments of
    :func:`run_compare`): resolve the dataset, ``plan(out, s, arms, source, dataset, tag, device) -> cells``, list
    them or refuse a changed budget, run one cell or all (``jobs`` subprocesses, in-process, or ``executor="ray"``), then
    ``write(out, cells, arms, s, dataset) -> files`` (the summary). ``start``: ``time.perf_counter()`` at the call."""
    start = time.perf_counter() if start is None else start
    out = Path(out).resolve()
    from gemix_monai.experiments.ray_executor import executor_from_options

    # --executor ray (docs/cluster.md): its options checked, and `ray` imported, before anything runs
    remote = (
        None
        if list_cells
        else executor_from_options(
            executor,
            jobs=jobs,
            cell=cell,
            ray_address=ray_address,
            cell_cpus=cell_cpus,
            cell_gpus=cell_gpus,
            device=device,
        )
    )
    if device is None and remote is not None:
        device = remote.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    source, dataset, tag = _resolve_dataset(
        out, dataset_dir, datalist, s["image_size"], phantom_counts, val_counts, test_counts, create=not list_cells
    )
    cells = plan(out, s, arms, source, dataset, tag, str(device))
    if list_cells:
        if verbose:
            for c in cells:
                print(c.id)
        return [c.id for c in cells]
    for c in cells:  # refuse a changed budget before anything runs
        check_cell_config(c, out)
    if cell is not None:
        match = [c for c in cells if c.id == cell]
        if not match:
            raise ValueError(
                f"unknown cell {cell!r}; `--list-cells` prints the {len(cells)} cell ids of this comparison"
            )
        ran = [cell] if run_cell(match[0], out, verbose=verbose, quiet=quiet) else []
        if verbose:
            print(f"cell {cell}: " + ("finished" if ran else "already finished, not recomputed"))
        return CompareResult(out, cells, ran, {}, time.perf_counter() - start)
    ran: list[str] = []
    if remote is not None:
        ran = remote.run(cells, out, verbose=verbose, quiet=quiet)
    elif jobs and jobs > 1:
        before = {c.id for c in cells if is_finished(c, out)}
        _run_parallel(cells, out, int(jobs), verbose=verbose, quiet=quiet)
        ran = [c.id for c in cells if c.id not in before]
    else:
        todo = [c for c in cells if not is_finished(c, out)]
        for k, c in enumerate(todo, 1):
            t0 = time.perf_counter()
            if run_cell(c, out, verbose=verbose, quiet=quiet):
                ran.append(c.id)
            if verbose:
                print(f"[{k}/{len(todo)}] {c.id} done in {time.perf_counter() - t0:.1f} s", flush=True)
    files = write(out, cells, arms, s, dataset)
    if verbose:
        print(f"compare: {len(ran)} cell(s) run, {len(cells) - len(ran)} reused; summary in {files['summary.md']}")
    return CompareResult(out, cells, ran, files, time.perf_counter() - start)


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``gemix-monai compare`` (defaults: :data:`COMPARE_DEFAULTS`)."""
    d = COMPARE_DEFAULTS
    p.add_argument("--out", default="gemix_compare", help="output folder (default ./gemix_compare)")
    p.add_argument(
        "--task",
        choices=("classification", "segmentation"),
        default="classification",
        help="classification (default) or segmentation: U-Nets on image-mask pairs, Dice/HD95 table "
        "(docs/segmentation.md; its own defaults, see gemix_monai.experiments.compare_segmentation)",
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
        choices=("stylegan2", "dcgan", "diffusion"),
        help="generator families, one row per family x generator strategy (default stylegan2; "
        "other families' arms are labelled <strategy>@<family>)",
    )
    p.add_argument(
        "--gan-class-balance",
        choices=("none", "sqrt", "uniform"),
        help="class balance of the generators' training data (default none; docs/generators.md)",
    )
    p.add_argument(
        "--gan-select",
        choices=("minority_recall", "fd", "mean_recall", "minority_fd"),
        help="train the generators with the training-time audit and use their best.pt by this criterion",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        help="draw synthetic images from one pool of N images per generator and sampler, shared by the seeds "
        "(default 0: generate on the fly)",
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


def compare_from_args(args: argparse.Namespace) -> int:
    """``gemix-monai compare`` with parsed :func:`add_compare_arguments` options."""
    if getattr(args, "task", "classification") == "segmentation":
        from gemix_monai.experiments.compare_segmentation import segmentation_compare_from_args

        return segmentation_compare_from_args(args)
    run_compare(
        args.out,
        generators=getattr(args, "generators", None),
        gan_class_balance=getattr(args, "gan_class_balance", None),
        gan_select=getattr(args, "gan_select", None),
        pool_size=getattr(args, "pool_size", None),
        **compare_options_from_args(args),
    )
    return 0


def compare_options_from_args(args: argparse.Namespace) -> dict:
    """The keyword arguments that :func:`run_compare` and the segmentation comparison take alike, from parsed
    :func:`add_compare_arguments` options."""
    return dict(
        dataset_dir=args.dataset_dir,
        datalist=args.datalist,
        strategies=args.strategies,
        seeds=args.seed_list if args.seed_list else args.seeds,
        gan_seeds=args.gan_seeds,
        networks=args.networks,
        gan_kimg=args.gan_kimg,
        gan_batch_size=args.gan_batch_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        variants=args.variant,
        interval=args.interval,
        jobs=args.jobs,
        executor=getattr(args, "executor", "local"),
        ray_address=getattr(args, "ray_address", None),
        cell_cpus=getattr(args, "cell_cpus", None),
        cell_gpus=getattr(args, "cell_gpus", None),
        cell=args.cell,
        list_cells=args.list_cells,
        device=args.device,
        quiet=not args.verbose,
        data_options=data_options_from_args(args),
    )


def _worker_main(argv=None) -> int:
    p = argparse.ArgumentParser(description="run one prepared compare cell (the --jobs worker)")
    p.add_argument("--cell-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    _run_cell_dir(Path(a.cell_dir), Path(a.out), quiet=not a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
