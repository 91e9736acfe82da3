"""inference.json and evaluate.json as MONAI's tools build them: before any data or model exists (model-zoo's
property check, MONAI Label), with missing inputs reported when the workflow runs, the network taken from
``classifier.json`` and the preprocessing written as MONAI components equal to the project's own chain."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from _helpers import error_chain

from gemix_monai.cli import run_bundle_config

from .conftest import REPO_BUNDLE, copy_bundle


def _workflow(root, files, kind, **overrides):
    from monai.bundle import ConfigWorkflow

    cfg = root / "configs"
    files = [str(cfg / f) for f in files] if isinstance(files, list) else str(cfg / files)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ConfigWorkflow(
            config_file=files,
            meta_file=str(cfg / "metadata.json"),
            logging_file=False,
            workflow_type=kind,
            bundle_root=str(root),
            **overrides,
        )


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or (exc.__context__ is not None and not exc.__suppress_context__):
        exc = exc.__cause__ or exc.__context__
    return exc


@pytest.fixture
def bare_bundle(tmp_path):
    """A clone of bundle/ without its models/: no classifier, no generator, no data."""
    return copy_bundle(tmp_path / "bundle")


def test_inference_workflow_has_every_property_without_data_or_model(bare_bundle):
    wf = _workflow(bare_bundle, "inference.json", "infer")
    wf.initialize()
    assert wf.check_properties() == []
    assert len(wf.dataset) == 0  # no dataset_dir: an empty datalist, not an error
    # the network and classes a model-less bundle declares come from its metadata
    meta = json.loads((bare_bundle / "configs" / "metadata.json").read_text())
    out = meta["network_data_format"]["outputs"]["pred"]
    assert wf.network_def(torch.zeros(1, 1, 32, 32)).shape == (1, out["num_channels"])
    assert wf.parser.get_parsed_content("class_names") == list(out["channel_def"].values())


def test_inference_workflow_of_the_committed_bundle_has_every_property_without_data():
    wf = _workflow(REPO_BUNDLE, "inference.json", "infer")
    wf.initialize()
    assert wf.check_properties() == []


def test_evaluate_workflow_has_every_property_without_a_model(bare_bundle, tiny_datalist):
    wf = _workflow(bare_bundle, ["train.json", "evaluate.json"], "eval", datalist=str(tiny_datalist), device="cpu")
    wf.initialize()
    assert wf.check_properties() == []


def test_inference_without_a_model_is_reported_at_run_naming_the_checkpoint(bare_bundle, tiny_datalist, tmp_path):
    wf = _workflow(bare_bundle, "inference.json", "infer", dataset_dir=str(tiny_datalist.parent / "test"))
    wf.initialize()
    with pytest.raises(Exception) as info:
        wf.run()
    cause = _root_cause(info.value)
    assert isinstance(cause, FileNotFoundError) and "models/model.pt" in str(cause)
    assert not (bare_bundle / "predictions").exists()


@pytest.mark.parametrize("case", ["unset", "missing", "empty", "csv_exists"])
def test_missing_inputs_are_reported_at_run_with_the_classify_command_messages(
    trained_bundle, tiny_datalist, tmp_path, capsys, case
):
    from gemix_monai import cli

    out = tmp_path / "predictions.csv"
    folder = {"unset": None, "missing": tmp_path / "nowhere", "empty": tmp_path / "empty"}.get(case, tmp_path / "img")
    if case == "empty":
        folder.mkdir()
    if case == "csv_exists":
        out.write_text("written before\n")
        folder.mkdir()
        shutil.copy(sorted((tiny_datalist.parent / "test").rglob("cyst_*.nii.gz"))[0], folder)
    overrides = {"predictions_csv": str(out), "device": "cpu"}
    if folder is not None:
        overrides["dataset_dir"] = str(folder)
    wf = _workflow(trained_bundle, "inference.json", "infer", **overrides)
    wf.initialize()  # builds whatever is missing
    assert wf.check_properties() == []
    with pytest.raises(Exception) as info:
        wf.run()
    message = str(_root_cause(info.value))
    expected = {
        "unset": "classify: input_dir is not set",
        "missing": "input folder not found",
        "empty": "no images to classify in",
        "csv_exists": "already exists; pass overwrite=True",
    }[case]
    assert expected in message
    if folder is not None:  # gemix-monai classify prints the very same line
        argv = ["classify", str(folder), "--bundle-root", str(trained_bundle), "--output", str(out), "--device", "cpu"]
        assert cli.main(argv) == 2
        assert f"gemix-monai: error: {message}" in capsys.readouterr().err.splitlines()
    if case == "csv_exists":
        assert out.read_text() == "written before\n"


# ---------------------------------------------------------------------------------------------- preprocessing


def _bundle_with_contract(tmp_path, tiny_datalist, **preprocessing):
    """A bundle whose classifier.json records the phantoms' contract with ``preprocessing`` changed."""
    from gemix_monai.data import get_dataset
    from gemix_monai.networks.classifiers import build_classifier_network

    root = copy_bundle(tmp_path / "bundle")
    (root / "models").mkdir()
    torch.save(build_classifier_network("tiny", 1, 3).state_dict(), root / "models" / "model.pt")
    contract = get_dataset(str(tiny_datalist), image_size=32, validate="none").contract.to_dict()
    contract["preprocessing"].update(preprocessing)
    info = {"network": "tiny", "in_channels": 1, "num_classes": 3, "class_names": contract["class_names"]}
    (root / "models" / "classifier.json").write_text(json.dumps({**info, "contract": contract}))
    return root


def _images(tiny_datalist, tmp_path):
    """Three phantoms (NIfTI, HU) and three PNGs: 8-bit grey 50 x 70, 16-bit grey 40 x 40, RGB 64 x 48."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = sorted(p for p in (tiny_datalist.parent / "test").rglob("*.nii.gz") if "_mask" not in p.name)[:3]
    grey8, grey16, rgb = tmp_path / "grey8.png", tmp_path / "grey16.png", tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8)).save(grey8)
    Image.fromarray(rng.integers(0, 65536, (40, 40), dtype=np.uint16)).save(grey16)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(rgb)
    return [*files, grey8, grey16, rgb]


@pytest.mark.parametrize(
    "preprocessing",
    [
        {},  # the phantoms' own: CT window abdomen, 32 px
        {"image_size": 16},  # down-sizing: the project's edge-replicating resize
        {"hu_window": None, "intensity": "uint8"},
        {"hu_window": None, "intensity": [-200.0, 300.0]},
        {"hu_window": None, "intensity": "percentile"},
        {"hu_window": None, "intensity": "auto"},  # the per-file rule: 8-bit by 0..255, others by percentiles
        {"hu_window": None, "intensity": "minmax"},
    ],
    ids=["ct-window", "16px", "uint8", "range", "percentile", "auto", "minmax"],
)
def test_json_preprocessing_equals_the_project_chain_of_the_stored_contract(preprocessing, tiny_datalist, tmp_path):
    from monai.bundle import ConfigParser

    from gemix_monai.engines.inference import classifier_transform

    root = _bundle_with_contract(tmp_path, tiny_datalist, **preprocessing)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.read_meta(str(root / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(root)})
    stock = parser.get_parsed_content("preprocessing")
    project = classifier_transform(root / "models" / "model.pt")
    names = [type(t).__name__ for t in stock.transforms]
    per_file = preprocessing.get("intensity") in ("auto", "minmax")
    assert ("LoadMedicalImaged" in names) == per_file and ("LoadImaged" in names) != per_file
    for path in _images(tiny_datalist, tmp_path):
        a, b = stock({"image": str(path)})["image"], project({"image": str(path)})["image"]
        assert a.dtype == torch.float32 and tuple(a.shape) == tuple(b.shape), path.name
        assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), path.name


def test_json_preprocessing_is_filled_from_the_stored_contract_values(tiny_datalist, tmp_path):
    from monai.bundle import ConfigParser

    root = _bundle_with_contract(tmp_path, tiny_datalist, image_size=24)
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.read_meta(str(root / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(root)})
    values = parser.get_parsed_content("stored_preprocessing")
    assert values["image_size"] == 24 and values["intensity_rule"] == "range"
    assert (values["a_min"], values["a_max"]) == (-150.0, 250.0)  # abdomen W400/L50
    steps = {type(t).__name__: t for t in parser.get_parsed_content("preprocessing").transforms}
    assert steps["ResizeLongestd"].spatial_size == 24
    assert list(steps["SpatialPadd"].padder.spatial_size) == [24, 24]
    # options that contradict the stored contract are refused naming both
    parser.update({"image_size": 32})
    parser.parse(reset=True)
    with pytest.raises(Exception) as info:
        parser.get_parsed_content("preprocessing")
    assert "was trained with [24×24 px" in error_chain(info.value)


# ---------------------------------------------------------------------------------------------- network_def override


def test_a_densenet121_network_def_given_once_trains_evaluates_infers_and_exports(tiny_datalist, tmp_path):
    from monai.bundle import ckpt_export
    from monai.networks.nets import DenseNet121

    from gemix_monai.networks.classifiers import load_classifier

    root = copy_bundle(tmp_path / "bundle")
    net = {"_target_": "monai.networks.nets.DenseNet121", "spatial_dims": 2, "in_channels": 1, "out_channels": 3}
    common = {"bundle_root": str(root), "device": "cpu"}
    run_bundle_config(
        "train.json",
        {**common, "datalist": str(tiny_datalist), "max_epochs": 1, "tensorboard": False, "network_def": net},
        bundle=root,
        bundle_logging=False,
    )
    info = json.loads((root / "models" / "classifier.json").read_text())
    assert info["network"] is None and info["network_def"] == {**net, "_target_": "monai.networks.nets.densenet.DenseNet121"}
    trained, _ = load_classifier(root / "models" / "model.pt")
    assert isinstance(trained, DenseNet121)
    # evaluate, inference and export with no override: the network comes from classifier.json
    run_bundle_config(
        ["train.json", "evaluate.json"],
        {**common, "datalist": str(tiny_datalist), "output_dir": str(tmp_path / "eval")},
        bundle=root,
        bundle_logging=False,
    )
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["num_samples"] == 6
    run_bundle_config(
        "inference.json",
        {**common, "dataset_dir": str(tiny_datalist.parent / "test"), "output_dir": str(tmp_path / "pred")},
        bundle=root,
        bundle_logging=False,
    )
    rows = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 7
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(root / "models" / "model.pt"),
        meta_file=str(root / "configs" / "metadata.json"),
        config_file=str(root / "configs" / "inference.json"),
        bundle_root=str(root),
    )
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    trained.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(ts))(x), trained(x), rtol=1e-5, atol=1e-5)


def test_a_network_def_that_cannot_be_recorded_is_named_at_evaluation(tiny_datalist, tmp_path):
    root = copy_bundle(tmp_path / "bundle")
    net = {"_target_": "monai.networks.nets.DenseNet121", "spatial_dims": 2, "in_channels": 1, "out_channels": 3}
    net["init_features"] = 8  # not what the weights alone can show: classifier.json records no definition
    run_bundle_config(
        "train.json",
        {"bundle_root": str(root), "datalist": str(tiny_datalist), "device": "cpu", "max_epochs": 1}
        | {"tensorboard": False, "network_def": net},
        bundle=root,
        bundle_logging=False,
    )
    info = json.loads((root / "models" / "classifier.json").read_text())
    assert info["network"] is None and info["network_def"] is None and info["network_class"].endswith("DenseNet121")
    with pytest.raises(Exception) as info:
        run_bundle_config(
            ["train.json", "evaluate.json"],
            {"bundle_root": str(root), "datalist": str(tiny_datalist), "output_dir": str(tmp_path / "eval")},
            bundle=root,
            bundle_logging=False,
        )
    chain = error_chain(info.value)
    assert "records neither a network name nor a network_def" in chain and "DenseNet121" in chain


def test_a_recorded_network_def_must_name_a_module_class(tmp_path):
    from gemix_monai.networks.classifiers import build_network_definition

    with pytest.raises(ValueError, match="not a torch.nn.Module class"):
        build_network_definition({"_target_": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="expression or reference"):
        build_network_definition({"_target_": "monai.networks.nets.DenseNet121", "spatial_dims": "$2"})
