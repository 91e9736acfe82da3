"""Fixtures for the bundle tests: a tiny phantom dataset and a bundle copy trained for one step.

Nothing writes into the repository: each session copies ``bundle/`` to a temporary folder and
uses it as ``bundle_root``, so the checkpoint hand-off between configs happens there.
"""

import shutil
from pathlib import Path

import pytest

REPO_BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
CLASS_COUNTS = {"counts": [8, 4, 6], "val_counts": [2, 2, 2], "test_counts": [2, 2, 2]}


@pytest.fixture(scope="session")
def tiny_datalist(tmp_path_factory) -> Path:
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(tmp_path_factory.mktemp("phantoms"), image_size=32, seed=0, **CLASS_COUNTS)


def copy_bundle(dst: Path) -> Path:
    shutil.copytree(
        REPO_BUNDLE, dst, ignore=shutil.ignore_patterns("models", "runs", "eval", "synthetic", "predictions")
    )
    return dst


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, tiny_datalist) -> Path:
    """A bundle copy after ``train_gan.json`` (one step) and ``train.json`` (one epoch)."""
    from gemix_monai.cli import run_bundle_config

    root = copy_bundle(tmp_path_factory.mktemp("bundle") / "bundle")
    common = {"bundle_root": str(root), "datalist": str(tiny_datalist), "device": "cpu"}
    run_bundle_config("train_gan.json", {**common, "max_kimg": 0.016, "batch_size": 16, "progress": False}, bundle=root)
    run_bundle_config("train.json", {**common, "max_epochs": 1, "tensorboard": False}, bundle=root)
    return root


def parse_config(name: str | list[str], bundle: Path = REPO_BUNDLE, **overrides):
    """A parser over ``name`` (or a list of config files merged in order, as ``--config_file "['a','b']"``)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    names = [name] if isinstance(name, str) else list(name)
    parser.read_config(
        [str(bundle / "configs" / n) for n in names] if len(names) > 1 else str(bundle / "configs" / names[0])
    )
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.update(overrides)
    return parser
