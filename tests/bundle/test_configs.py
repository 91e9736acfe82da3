"""Each bundle config parses, its components instantiate, and shared pieces stay shared."""

import pytest
import torch
from _helpers import error_chain

from .conftest import parse_config

CONFIGS = (
    "train_gan.json",
    "train.json",
    ["train.json", "evaluate.json"],
    "inference.json",
    "generate.json",
    "train_segmentation.json",
)


@pytest.mark.parametrize("name", CONFIGS, ids=str)
def test_config_has_run_section_and_bundle_root(name):
    parser = parse_config(name)
    assert parser.get("run"), f"{name} has no run section"
    assert parser.get("bundle_root") == "."
    # training configs fix the size; evaluation and inference take the trained model's stored contract
    if name != "generate.json":
        assert parser.get("image_size") == (32 if isinstance(name, str) and name.startswith("train") else None)


def test_inference_components_monai_label_needs_instantiate():
    parser = parse_config("inference.json")
    assert isinstance(parser.get_parsed_content("network_def"), torch.nn.Module)
    for component_id in ("preprocessing", "postprocessing", "inferer", "device", "bundle_root"):
        assert parser.get_parsed_content(component_id) is not None, component_id


@pytest.mark.parametrize(
    ("name", "ds_id"),
    [
        ("train_gan.json", "train_dataset"),
        ("train.json", "train#dataset"),
        ("train.json", "validate#dataset"),
        (["train.json", "evaluate.json"], "validate#dataset"),
    ],
)
def test_config_datasets_yield_the_training_stream(name, ds_id, tiny_datalist):
    overrides = (
        {"image_size": 32, "model_contract": None, "class_names": ["cyst", "hemangioma", "metastasis"]}
        if name != "train.json" and name != "train_gan.json"
        else {}
    )
    parser = parse_config(name, datalist=str(tiny_datalist), **overrides)
    item = parser.get_parsed_content(ds_id)[0]
    assert tuple(item["image"].shape) == (1, 32, 32)
    assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0
    assert isinstance(item["label"], int)
    if name == "train.json":
        assert isinstance(parser.get_parsed_content("network_def"), torch.nn.Module)


def test_validation_data_is_held_to_the_training_contract(tiny_datalist):
    parser = parse_config("train.json", datalist=str(tiny_datalist))
    assert parser.get("validate#source#contract") == "$@train#source.contract"
    train, val = parser.get_parsed_content("train#source"), parser.get_parsed_content("validate#source")
    assert train.contract == val.contract
    assert parser.get_parsed_content("train#preprocessing") is train.transform
    assert parser.get_parsed_content("train#dataset").transform is train.transform


def test_gan_and_classifier_decide_the_same_preprocessing(tiny_datalist):
    gan = parse_config("train_gan.json", datalist=str(tiny_datalist))
    clf = parse_config("train.json", datalist=str(tiny_datalist))
    assert gan.get_parsed_content("train_dataset").contract == clf.get_parsed_content("train#source").contract
    for k in ("image_size", "hu_window", "intensity", "split_seed", "in_channels"):
        assert gan.get(k) == clf.get(k), k


def test_multi_gpu_overrides_merge_into_train_gan():
    from monai.bundle import ConfigParser

    from .conftest import REPO_BUNDLE

    parser = ConfigParser()
    parser.read_config(
        [str(REPO_BUNDLE / "configs" / "train_gan.json"), str(REPO_BUNDLE / "configs" / "multi_gpu_train_gan.json")]
    )
    assert parser.get_parsed_content("nproc_per_node") == max(torch.cuda.device_count(), 1)
    assert parser.get_parsed_content("device") is None
    assert parser.get("trainer#nproc_per_node") == "@nproc_per_node"


@pytest.mark.parametrize("value", ["none", "None"])
def test_hu_window_none_from_the_command_line_switches_windowing_off(value):
    # monai.bundle.run drops overrides whose value is None, so "none" is the command-line spelling
    # (the scaling step is MONAI's ScaleIntensityRanged since issue 22: the window is off when the range scaled to
    # [-1, 1] is the intensity range given, not a CT window's HU)
    parser = parse_config("inference.json", hu_window=value, intensity=(-1.0, 1.0))
    values = parser.get_parsed_content("stored_preprocessing")
    assert values["intensity_rule"] == "range" and (values["a_min"], values["a_max"]) == (-1.0, 1.0)
    steps = {type(t).__name__: t for t in parser.get_parsed_content("preprocessing").transforms}
    scaler = steps["ScaleIntensityRanged"].scaler
    assert (scaler.a_min, scaler.a_max, scaler.b_min, scaler.b_max, scaler.clip) == (-1.0, 1.0, -1.0, 1.0, True)
    assert "IntensityToTrainingRanged" not in steps


def test_dataset_dir_override_reads_a_class_per_folder_tree(tiny_datalist):
    parser = parse_config("train.json", dataset_dir=str(tiny_datalist.parent / "training"))
    train = parser.get_parsed_content("train#dataset")
    val = parser.get_parsed_content("validate#dataset")
    assert parser.get_parsed_content("class_names") == ["cyst", "hemangioma", "metastasis"]
    assert len(train) > 0 and len(val) > 0 and len(train) + len(val) <= 18
    assert tuple(train[0]["image"].shape) == (1, 32, 32)


def test_items_given_as_train_dataset_data_decide_the_classes_and_the_contract(tiny_datalist):
    """What MONAI Label's BundleTrainTask sets (``train#dataset#data``) is described from itself, not from the
    configured source: class-name labels give the classes (sorted), integer labels index the bundle's classes."""
    import json

    datalist = json.loads(tiny_datalist.read_text())
    names = datalist["class_names"]
    by_name = [
        {"image": str(tiny_datalist.parent / it["image"]), "label": names[it["label"]]}
        for it in datalist["training"]
        if it["label"] != 1
    ]
    parser = parse_config("train.json", **{"train#dataset#data": by_name, "data_check": "headers"})
    assert parser.get_parsed_content("class_names") == ["cyst", "metastasis"]
    assert parser.get_parsed_content("num_classes") == 2
    item = parser.get_parsed_content("train#dataset")[0]
    assert isinstance(item["label"], int) and item["label"] in (0, 1)
    assert parser.get_parsed_content("train#data").contract.preprocessing.hu_window is None  # files alone: no CT claim

    from .conftest import REPO_BUNDLE

    by_index = [{"image": str(tiny_datalist.parent / it["image"]), "label": it["label"]} for it in datalist["training"]]
    overrides = {"train#dataset#data": by_index, "data_check": "headers", "bundle_root": str(REPO_BUNDLE)}
    parser = parse_config("train.json", **overrides)
    assert parser.get_parsed_content("class_names") == list(names)  # the bundle's declared classes

    mixed = by_name[:2] + [{**it, "label": 0} for it in by_name[2:]]
    with pytest.raises(Exception) as info:
        parse_config("train.json", **{"train#dataset#data": mixed}).get_parsed_content("class_names")
    assert "mixes class-name and class-index labels" in error_chain(info.value)
