"""metadata.json carries what the MONAI bundle specification requires and describes the real network."""

import json

import pytest
import torch

from .conftest import REPO_BUNDLE, parse_config

REQUIRED_KEYS = (
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "required_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
)
TENSOR_KEYS = (
    "type",
    "format",
    "modality",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
)


@pytest.fixture(scope="module")
def metadata():
    return json.loads((REPO_BUNDLE / "configs" / "metadata.json").read_text())


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_metadata_has_required_key(metadata, key):
    assert metadata.get(key), f"metadata.json lacks a value for {key!r}"


@pytest.mark.parametrize("key", ("intended_use", "references", "changelog", "data_source"))
def test_metadata_has_recommended_key(metadata, key):
    assert metadata.get(key)


@pytest.mark.parametrize("section", ("inputs", "outputs"))
def test_every_tensor_of_network_data_format_is_fully_described(metadata, section):
    tensors = metadata["network_data_format"][section]
    assert tensors
    for name, spec in tensors.items():
        missing = [k for k in TENSOR_KEYS if k not in spec]
        assert not missing, f"{section}#{name} lacks {missing}"


def test_metadata_versions_match_the_installed_stack(metadata):
    import monai

    assert metadata["monai_version"] == monai.__version__
    assert metadata["pytorch_version"] == torch.__version__.split("+")[0]
    assert metadata["version"] in metadata["changelog"]


def test_output_channel_def_names_the_phantom_classes_in_label_order(metadata):
    from gemix_monai.data import PHANTOM_CLASS_NAMES

    channel_def = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert [channel_def[str(i)] for i in range(len(channel_def))] == list(PHANTOM_CLASS_NAMES)


def test_network_def_takes_and_returns_what_metadata_declares(metadata):
    parser = parse_config("inference.json")
    net = parser.get_parsed_content("network_def").eval()
    post = parser.get_parsed_content("postprocessing")
    inp = metadata["network_data_format"]["inputs"]["image"]
    out = metadata["network_data_format"]["outputs"]["pred"]
    x = torch.rand(2, inp["num_channels"], *inp["spatial_shape"], dtype=getattr(torch, inp["dtype"])) * 2 - 1
    with torch.no_grad():
        logits = net(x)
    assert logits.shape == (2, out["num_channels"])
    assert logits.dtype == getattr(torch, out["dtype"])
    probs = post({"pred": logits[0]})["pred"]
    lo, hi = out["value_range"]
    assert float(probs.min()) >= lo and float(probs.max()) <= hi
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert len(out["channel_def"]) == out["num_channels"]
