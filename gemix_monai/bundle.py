"""Helpers for running this checkout's MONAI bundle (``bundle/configs/*.json``) with ``monai.bundle.run``.

The command line (:mod:`gemix_monai.cli`) and the demo (:mod:`gemix_monai.demo`) both run bundle configs through
these functions; keeping them here means neither imports the other.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

__all__ = [
    "SUBCOMMAND_CONFIGS",
    "MULTI_GPU_CONFIGS",
    "TRAINING_CONFIGS",
    "bundle_dir",
    "run_bundle_config",
    "check_override_keys",
    "run_lock",
    "FolderInUseError",
]

#: Config file(s) each subcommand runs; a list is merged in order (MONAI's ``--config_file "['a.json','b.json']"``).
SUBCOMMAND_CONFIGS = {
    "train-gan": "train_gan.json",
    "generate": "generate.json",
    "train-classifier": "train.json",
    "train-segmenter": "train_segmentation.json",
    "evaluate": ["train.json", "evaluate.json"],
    "classify": "inference.json",
}
#: ``--multi-gpu`` overlays (one process per GPU; train.json's is for ``torchrun``, as in the MONAI model zoo).
MULTI_GPU_CONFIGS = {"train-gan": "multi_gpu_train_gan.json"}


def bundle_dir() -> Path:
    """The bundle shipped with this checkout: ``$GEMIX_BUNDLE_DIR`` or ``<repo>/bundle``."""
    env = os.environ.get("GEMIX_BUNDLE_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "bundle"
    if not (path / "configs" / "metadata.json").is_file():
        raise FileNotFoundError(
            f"MONAI bundle not found at {path} (no configs/metadata.json); set GEMIX_BUNDLE_DIR to the bundle folder"
        )
    return path


class FolderInUseError(OSError):
    """A bundle root another run is training into (an ``OSError``: the CLI prints it as one line)."""


#: Configs that train into their bundle root: one run at a time may use a root (``run_lock``).
TRAINING_CONFIGS = ("train.json", "train_gan.json", "train_segmentation.json", "multi_gpu_train.json")


def _config_ids(files: list[str]) -> set[str]:
    """Every id of the merged configs, nested ones included (``train#trainer#max_epochs``)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(files if len(files) > 1 else files[0])
    ids: set[str] = set()

    def walk(value, prefix: str) -> None:
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = ((str(i), v) for i, v in enumerate(value))
        else:
            return
        for key, child in items:
            ids.add(f"{prefix}{key}")
            walk(child, f"{prefix}{key}#")

    walk(parser.get(), "")
    return ids


def _tracking_ids(tracking) -> set[str]:
    """The ids MONAI's experiment tracking adds to a config (``tracking_uri``, ``experiment_name``, ...)."""
    if tracking is None:
        return set()
    if isinstance(tracking, dict):
        return set((tracking.get("configs") or {}).keys())
    if tracking == "mlflow":
        from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

        return set(DEFAULT_MLFLOW_SETTINGS["configs"])
    import json

    try:  # a settings file: its "configs" section
        return set((json.loads(Path(tracking).read_text(encoding="utf-8")).get("configs") or {}).keys())
    except (OSError, ValueError, AttributeError):
        return set()


def check_override_keys(files: list[str], overrides: dict, tracking=None) -> None:
    """A ``ValueError`` naming every override key (``--set KEY=...``) that is no id of the configs (nor one that
    ``tracking`` adds), with the closest valid ids: MONAI would otherwise add it as a new id that nothing reads, and
    the run would silently ignore it."""
    import difflib

    ids = _config_ids(files) | _tracking_ids(tracking)
    unknown = sorted(k for k in overrides if k not in ids and k != "tracking")
    if not unknown:
        return
    names = ", ".join(Path(f).name for f in files)
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(ids), n=3, cutoff=0.6)
        parts.append(f"{key!r}" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
    raise ValueError(f"unknown setting(s) for {names}: {'; '.join(parts)}; --set takes the config ids of those files")


@contextlib.contextmanager
def run_lock(bundle_root, what: str):
    """Hold an exclusive lock on ``<bundle_root>/.gemix-run.lock`` while a training run writes into that folder; a
    second run into the same root is refused naming the first's process and start time (docs/data.md, "One run per
    folder"). The lock is the kernel's (``fcntl``): it goes with the process, however that ends."""
    import fcntl
    import json
    import time

    root = Path(bundle_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = root / ".gemix-run.lock"
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                holder = {}
            raise FolderInUseError(
                f"{root} is in use by another run (process {holder.get('pid', '?')}, started "
                f"{holder.get('started', '?')}: {holder.get('what', '?')}); wait for it to finish or use another "
                "--bundle-root"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "what": what}))
        handle.flush()
        yield path
    finally:
        handle.close()  # closing releases the lock


def run_bundle_config(
    config: str | list[str],
    overrides: dict | None = None,
    *,
    run_id: str = "run",
    init_id: str = "initialize",
    bundle: str | os.PathLike | None = None,
    bundle_logging: bool = True,
    tracking: str | dict | None = None,
):
    """Run ``bundle/configs/<config>`` (or a list merged in order) with ``monai.bundle.run``.

    ``bundle_logging=False`` leaves Python logging as the caller configured it instead of applying
    ``configs/logging.conf`` (INFO for every logger). ``tracking``: MONAI's experiment tracking (``"mlflow"``, a
    settings file or dict), which appends its handlers to ``train#handlers``, ``validate#handlers`` and ``handlers``.
    """
    from monai.bundle import run

    root = Path(bundle) if bundle is not None else bundle_dir()
    names = [config] if isinstance(config, str) else list(config)
    files = [str(root / "configs" / n) for n in names]
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"bundle config not found: {f}")
    overrides = {k: v for k, v in (overrides or {}).items()}
    check_override_keys(files, overrides, tracking)
    if tracking is not None:
        overrides["tracking"] = tracking
    lock = (
        run_lock(overrides.get("bundle_root", "."), " ".join(names))
        if any(n in TRAINING_CONFIGS for n in names)
        else contextlib.nullcontext()
    )
    with lock, warnings.catch_warnings():
        # MONAI's notice that configs are evaluated: these are the package's own configs, and the notice
        # would otherwise stand before every error message the CLI prints
        warnings.filterwarnings("ignore", message="parsing config_file .*")
        return run(
            run_id=run_id,
            init_id=init_id,
            config_file=files if len(files) > 1 else files[0],
            meta_file=str(root / "configs" / "metadata.json"),
            logging_file=str(root / "configs" / "logging.conf") if bundle_logging else False,
            **overrides,
        )
