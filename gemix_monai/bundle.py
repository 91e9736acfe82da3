"""Helpers for running this checkout's MONAI bundle (``bundle/configs/*.json``) with ``monai.bundle.run``.

The command line (:mod:`gemix_monai.cli`) and the demo (:mod:`gemix_monai.demo`) both run bundle configs through
these functions; keeping them here means neither imports the other.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["SUBCOMMAND_CONFIGS", "MULTI_GPU_CONFIGS", "bundle_dir", "run_bundle_config"]

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
    if tracking is not None:
        overrides["tracking"] = tracking
    with warnings.catch_warnings():
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
