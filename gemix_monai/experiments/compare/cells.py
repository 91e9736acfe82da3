"""The resumable unit of a comparison: a *cell* (docs/experiments.md).

Each cell has its own folder ``<out>/cells/<cell id>/`` with ``cell.json`` (``config``: every setting that
determines the result, budgets included; ``runtime``: paths and device, free to change) and, once finished,
``result.json`` (written atomically). A cell with a ``result.json`` is never run again; an existing ``cell.json``
whose ``config`` differs from the requested one is refused with a :class:`CellConfigError` naming the field. An
exclusive ``fcntl`` lock on ``<cell>/.lock`` keeps two processes from running the same cell. This module holds the
cell, its checks and lock, the pieces every plan builds cells from, and what a runner reads from its cell.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gemix_monai.engines.run import RunSettings
from gemix_monai.utils import plain_data

from .arms import Arm
from .settings import CompareSettings

__all__ = [
    "Cell",
    "CellConfigError",
    "check_cell_config",
    "is_finished",
    "cell_lock",
    "write_cell_json",
    "code_state",
    "code_states_line",
    "resolve_dataset",
    "gan_budget",
    "gan_cell",
    "trainer_config",
    "arm_config",
    "generator_runtime",
    "cell_datasets",
    "cell_generator",
    "cell_run",
]


class CellConfigError(ValueError):
    """An existing cell folder was made with a different configuration (the message names the field)."""


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


def resolve_dataset(
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
            fcntl.flock(lock, fcntl.LOCK_EX)  # several workers may ask for the phantoms at once
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


def file_sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gan_budget(s: CompareSettings, family: str) -> dict:
    """What a GAN cell's config records of its generator's budget; settings at their default stay out, so the
    cells of folders made before they existed keep their configs."""
    if family in s.generator_files:  # trained elsewhere: the cell copies the file, its hash is the config
        return {"family": family, "external": {"sha256": file_sha256(s.generator_files[family])}}
    budget = {"preset": s.gan_preset, "kimg": s.gan_kimg, "batch_size": s.gan_batch_size}
    if family != "stylegan2":  # the default's config (and so its cell ids and stored cell.json) is unchanged
        budget["family"] = family
    if s.gan_class_balance != "none":
        budget["class_balance"] = s.gan_class_balance
    if s.gan_select:
        budget["selection"] = s.gan_select  # the criterion of the audit-chosen best.pt (the cells use it)
    return budget


def gan_cell(
    cell_id: str,
    kind: str,
    s: CompareSettings,
    dataset: dict,
    gan_seed: int,
    budget: dict,
    data: dict,
    source: str,
    device,
) -> Cell:
    """The cell of one generator (``kind`` ``gan`` or ``pair_gan``) trained on ``dataset``'s training split."""
    config = {"kind": kind, "dataset": dataset, "image_size": s.image_size, "gan_seed": gan_seed, "gan": budget}
    return Cell(cell_id, kind, {**config, **data}, {"source": source, "device": device})


def trainer_config(kind: str, s: CompareSettings, dataset: dict, data: dict, *keys: str) -> dict:
    """The config every downstream cell of ``kind`` shares: the dataset, the training budget and ``keys`` of ``s``."""
    budget = ("image_size", "epochs", "batch_size", "learning_rate", "weight_decay", *keys)
    return {"kind": kind, "dataset": dataset, **{k: getattr(s, k) for k in budget}, **data}


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


def _json_bytes(obj) -> bytes:
    # sorted keys, indent 2: the layout existing result folders have
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
def cell_lock(cell_dir: Path, cell_id: str, verbose: bool):
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


def write_cell_json(cell: Cell, out: Path) -> None:
    """``cell.json`` of ``cell``, written atomically (after :func:`check_cell_config`)."""
    from gemix_monai.utils import atomic_write_bytes

    meta = {"id": cell.id, "kind": cell.kind, "config": cell.config, "runtime": cell.runtime, "deps": list(cell.deps)}
    atomic_write_bytes(cell.dir(out) / "cell.json", _json_bytes(meta))


@functools.lru_cache(maxsize=1)
def code_state() -> dict:
    """The code a cell ran with: the package version and, for a git checkout, its commit (``-dirty`` with
    uncommitted changes to tracked files); recorded in every ``result.json`` so a summary can tell when a long
    run spanned code changes (docs/experiments.md)."""
    import subprocess

    from gemix_monai import __version__

    state = {"gemix_monai": __version__, "git": None}
    root = Path(__file__).resolve().parents[3]
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


def code_states_line(out: Path, cells: Sequence[Cell]) -> str:
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


def cell_datasets(config: dict, runtime: dict, splits: Sequence[str]) -> list:
    """The ``splits`` of a downstream cell's data, read with the cell's data options (``hu_window``, ``intensity``,
    ``split_seed``, ``on_duplicate``, ``masks``: when given) and cached."""
    from gemix_monai.data import get_dataset

    data = {**config.get("data", {}), "split_dir": runtime.get("split_dir")}
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


def cell_run(config: dict, runtime: dict, **changes) -> RunSettings:
    """The :class:`RunSettings` a cell trains with (its folder goes to the trainer as ``output_dir``): seed (``seed``,
    else ``gan_seed``) and device, no TensorBoard and no progress bar (``changes`` override, e.g. ``resume="auto"``
    for a generator)."""
    seed = config.get("seed") if config.get("seed") is not None else config.get("gan_seed", 0)
    return RunSettings(seed=int(seed), device=runtime.get("device"), tracking=False, progress=False).replace(**changes)
