"""Model-zoo CI (Project-MONAI/model-zoo ``ci/verify_bundle.py -m min`` and ``-m full``, ``ci/get_bundle_requirements.py``)
on a fresh clone's ``bundle/``, step by step and offline.

The bundle is the set of files git tracks under ``bundle/`` (what a clone has: the shipped weights included, nothing
ignored), copied to ``<tmp>/models/gemix_classification`` as model-zoo lays bundles out. Each step is the check CI
makes, in its order:

min   1. download: every ``large_files.{yml,yaml,json}`` entry resolves (MONAI's ``download_url``, no network needed:
         a shipped file with its hash is not downloaded); this bundle ships its weights and has no such file
      2. necessary files ``configs/metadata.json``, ``LICENSE``; preferred ``models/model.pt``, ``configs/inference.json``
      3. ``version`` in ``changelog`` and not already published (an empty ``model_info.json``: a new bundle)
      4. ``verify_metadata`` against the schema (the vendored subset: the schema URL cannot be downloaded here)
full  5. properties: for every ``supported_apps`` app, ``create_workflow(workflow_type="inference", ...)`` with MONAI's
         ``MetaProperties`` and ``InferProperties`` (what an app's ``bundle_properties.py`` provides) reports none missing
      6. ``verify_net_in_out`` of ``network_def`` with ``network_data_format``
      7. ``ckpt_export`` of ``models/model.pt`` to TorchScript (and a shipped ``models/model.ts`` loads)
"""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from .conftest import REPO_BUNDLE

BUNDLE_NAME = "gemix_classification"
SCHEMA_SUBSET = Path(__file__).with_name("meta_schema_subset.json")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """``<root>/models/gemix_classification``: the tracked files of ``bundle/``, as a fresh clone has them."""
    repo = REPO_BUNDLE.parent
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--", "bundle"], capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.decode().strip()}): a fresh clone's files are unknown")
    root = tmp_path_factory.mktemp("model_zoo")
    bundle = root / "models" / BUNDLE_NAME
    for name in filter(None, listed.stdout.decode().split("\0")):
        target = bundle / Path(name).relative_to("bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    (root / "models" / "model_info.json").write_text("{}")  # no published version of this bundle yet
    (bundle / "eval").mkdir()
    shutil.copy(SCHEMA_SUBSET, bundle / "eval" / "schema.json")  # ci/prepare_schema.py's download, offline
    return bundle


def _find(folder: Path, stem: str) -> Path | None:
    found = [folder / f"{stem}.{suffix}" for suffix in ("json", "yaml", "yml") if (folder / f"{stem}.{suffix}").exists()]
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------- -m min


def test_min_1_every_large_files_entry_resolves(zoo):
    from monai.apps.utils import download_url
    from monai.bundle import ConfigParser

    listing = _find(zoo, "large_files")
    if listing is None:  # the weights ship in models/: nothing to download
        assert (zoo / "models" / "model.pt").is_file() and (zoo / "models" / "generator" / "generator.pt").is_file()
        return
    parser = ConfigParser()
    parser.read_config(str(listing))
    for entry in parser.get()["large_files"]:
        entry = {k: v for k, v in entry.items() if not (k in ("hash_val", "hash_type") and v == "")}
        download_url(**{k: v for k, v in entry.items() if k != "path"}, filepath=zoo / entry["path"], fuzzy=True)


def test_min_2_necessary_and_preferred_files_are_in_the_clone(zoo):
    for name in ("configs/metadata.json", "LICENSE", "models/model.pt", "configs/inference.json"):
        assert (zoo / name).is_file(), name


def test_min_3_version_is_in_the_changelog_and_new(zoo):
    metadata = json.loads((zoo / "configs" / "metadata.json").read_text())
    assert metadata["version"] in metadata["changelog"]
    published = json.loads((zoo.parent / "model_info.json").read_text())
    assert f"{BUNDLE_NAME}_v{metadata['version']}" not in published


def test_min_4_metadata_verifies_against_the_schema(zoo):
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(zoo / "configs" / "metadata.json"), filepath=str(zoo / "eval" / "schema.json"))


# ---------------------------------------------------------------------------------------------- -m full


def test_full_5_inference_properties_of_every_supported_app(zoo, tmp_path, monkeypatch):
    from monai.bundle import create_workflow
    from monai.bundle.properties import InferProperties, MetaProperties

    metadata = json.loads((zoo / "configs" / "metadata.json").read_text())
    assert metadata["supported_apps"], "supported_apps is empty: model-zoo CI would skip the property check"
    for app in metadata["supported_apps"]:
        # what CI finds as <model-zoo>/<app>/.../bundle_properties.py: the properties the app reads
        props = tmp_path / app / "bundle_properties.py"
        props.parent.mkdir(parents=True, exist_ok=True)
        props.write_text("from monai.bundle.properties import InferProperties, MetaProperties  # noqa: F401\n")
        monkeypatch.syspath_prepend(str(props.parent))
        sys.modules.pop("bundle_properties", None)
        import bundle_properties

        assert bundle_properties.InferProperties is InferProperties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workflow = create_workflow(
                workflow_type="inference",
                bundle_root=str(zoo),
                config_file=str(zoo / "configs" / "inference.json"),
                logging_file=str(zoo / "configs" / "logging.conf"),
                meta_file=str(zoo / "configs" / "metadata.json"),
            )
        workflow.properties = {**MetaProperties, **InferProperties}
        assert workflow.check_properties() == [], app
        sys.modules.pop("bundle_properties", None)


def test_full_6_network_in_and_out_match_network_data_format(zoo):
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_def",
        meta_file=str(zoo / "configs" / "metadata.json"),
        config_file=str(zoo / "configs" / "inference.json"),
        bundle_root=str(zoo),
    )


def test_full_7_the_checkpoint_exports_to_torchscript(zoo):
    from monai.bundle import ckpt_export

    from gemix_monai.networks.classifiers import load_classifier

    ckpt_export(
        net_id="network_def",
        filepath=str(zoo / "models" / "verify_model.ts"),
        ckpt_file=str(zoo / "models" / "model.pt"),
        meta_file=str(zoo / "configs" / "metadata.json"),
        config_file=str(zoo / "configs" / "inference.json"),
        bundle_root=str(zoo),
    )
    if (zoo / "models" / "model.ts").exists():
        torch.jit.load(str(zoo / "models" / "model.ts"))
    exported = torch.jit.load(str(zoo / "models" / "verify_model.ts"))
    net, _ = load_classifier(zoo / "models" / "model.pt")
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net.eval()(x))


# ---------------------------------------------------------------------------------------------- requirements


def test_requirements_as_model_zoo_reads_them_are_met_by_an_install_from_this_repository(zoo):
    """``ci/get_bundle_requirements.py`` pins ``monai``, ``torch``, ``numpy`` and every ``required_packages_version`` /
    ``optional_packages_version`` entry as ``name==version``. ``gemix-monai`` is not on a package index: installing
    this repository (``pip install -e .``, docs/README.md) provides it, and ``pip install -r`` then finds every pin
    met, so nothing is looked up. Checked here against the installed distributions."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    metadata = json.loads((zoo / "configs" / "metadata.json").read_text())
    lines = [f"monai=={metadata['monai_version']}", f"torch=={metadata['pytorch_version']}"]
    lines.append(f"numpy=={metadata['numpy_version']}")
    for key in ("optional_packages_version", "required_packages_version"):
        lines += [f"{name}=={v}" for name, v in metadata.get(key, {}).items()]
    assert "gemix-monai==0.1.0" in lines
    unmet = []
    for line in lines:
        req = Requirement(line)
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            installed = None
        if installed is None or not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{line} (installed: {installed})")
    assert not unmet, f"model-zoo's requirements not met by this environment: {unmet}"
