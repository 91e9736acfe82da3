"""classify_folder and `gemix-monai classify`: every supported image, classes from classifier.json, a CSV with a header."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _helpers import error_chain
from PIL import Image

from gemix_monai.engines.classifier_networks import build_classifier_network
from gemix_monai.engines.inference import _classify_transform, classify_folder, find_images

NAMES = ["normal", "ground-glass", "consolidation", "effusion"]  # 4 classes: nothing may assume 3


@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory):
    """``models/model.pt`` + ``classifier.json`` of an untrained tiny 4-class network (non-CT data: no HU window)."""
    root = tmp_path_factory.mktemp("bundle")
    torch.manual_seed(0)
    net = build_classifier_network("tiny", 1, len(NAMES))
    (root / "models").mkdir()
    torch.save(net.state_dict(), root / "models" / "model.pt")
    info = {
        "format": "gemix-classifier/1",
        "network": "tiny",
        "in_channels": 1,
        "num_classes": len(NAMES),
        "class_names": NAMES,
        "preprocessing": {"image_size": 32, "hu_window": None, "intensity": "minmax"},
    }
    (root / "models" / "classifier.json").write_text(json.dumps(info))
    return root


def _png(path: Path, seed: int, size=40, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt or "PNG")


def _nifti(path: Path, seed: int, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).normal(size=(size, size)).astype(np.float32)
    tmp = path.parent / ("tmp_" + ("x.nii.gz" if path.name.lower().endswith(".gz") else "x.nii"))
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp))  # nibabel writes lower-case suffixes
    tmp.rename(path)


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "scans"
    _png(root / "a.PNG", 0)
    _nifti(root / "sub" / "b.nii.gz", 1)
    _nifti(root / "sub" / "deeper" / "c.NII.GZ", 2)
    _png(root / "d.jpeg", 3, fmt="JPEG")
    _nifti(root / "e.nii", 4)
    (root / "notes.txt").write_text("not an image")
    _png(root / ".hidden.png", 5)
    _png(root / ".cache" / "f.png", 6)
    return root


EXPECTED = ["a.PNG", "d.jpeg", "e.nii", "sub/b.nii.gz", "sub/deeper/c.NII.GZ"]


def _read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_find_images_is_recursive_case_insensitive_and_skips_hidden_and_other_files(images):
    assert [p.relative_to(images).as_posix() for p in find_images(images)] == EXPECTED


def test_classify_folder_writes_a_header_and_one_row_per_image_with_the_checkpoint_classes(
    bundle_root, images, tmp_path
):
    out = classify_folder(
        bundle_root / "models" / "model.pt", images, tmp_path / "pred.csv", device="cpu", batch_size=2
    )
    rows = _read(out)
    assert rows[0] == ["filename", "predicted_class", *(f"p({n})" for n in NAMES)]
    assert [r[0] for r in rows[1:]] == EXPECTED
    for row in rows[1:]:
        p = [float(v) for v in row[2:]]
        assert len(p) == 4 and sum(p) == pytest.approx(1.0, abs=1e-6)
        assert row[1] == NAMES[int(np.argmax(p))]


def test_probabilities_are_the_network_softmax_on_the_recorded_preprocessing(bundle_root, images, tmp_path):
    from gemix_monai.engines.classifier import load_classifier

    out = classify_folder(bundle_root / "models" / "model.pt", images, tmp_path / "pred.csv", device="cpu")
    net, info = load_classifier(bundle_root / "models" / "model.pt")
    net.eval()
    x = _classify_transform(info)({"image": str(images / "sub" / "b.nii.gz")})["image"]
    assert tuple(x.shape) == (1, 32, 32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.as_tensor(x)[None].float()), 1)[0]
    row = next(r for r in _read(out) if r[0] == "sub/b.nii.gz")
    np.testing.assert_allclose([float(v) for v in row[2:]], expected.numpy(), rtol=1e-5, atol=1e-7)


def test_an_existing_csv_is_kept_unless_overwrite(bundle_root, images, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("precious\n")
    with pytest.raises(
        FileExistsError, match=rf"{out} already exists; pass overwrite=True \(command line: --overwrite\)"
    ):
        classify_folder(bundle_root / "models" / "model.pt", images, out, device="cpu")
    assert out.read_text() == "precious\n"
    classify_folder(bundle_root / "models" / "model.pt", images, out, device="cpu", overwrite=True)
    assert _read(out)[0][0] == "filename"


def test_a_folder_without_images_names_the_folder_and_the_suffixes(bundle_root, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(ValueError) as info:
        classify_folder(bundle_root / "models" / "model.pt", empty, tmp_path / "p.csv", device="cpu")
    message = str(info.value)
    assert f"no images to classify in {empty}" in message
    for suffix in (".nii.gz", ".nii", ".png", ".jpg", ".dcm", ".tif"):
        assert suffix in message
    assert not (tmp_path / "p.csv").exists()


def test_a_missing_folder_or_description_is_named(bundle_root, images, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"input folder not found: {tmp_path / 'nope'}"):
        classify_folder(bundle_root / "models" / "model.pt", tmp_path / "nope", tmp_path / "p.csv")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model.pt").write_bytes((bundle_root / "models" / "model.pt").read_bytes())
    with pytest.raises(FileNotFoundError, match=f"{lone / 'classifier.json'} not found"):
        classify_folder(lone / "model.pt", images, tmp_path / "p.csv")


def test_classify_transform_prefers_the_record_then_the_fallback_then_the_defaults():
    info = {"in_channels": 3, "num_classes": 2}
    item = {"image": np.zeros((1, 20, 20), dtype=np.uint8)}
    assert tuple(_classify_transform(info)(item)["image"].shape) == (3, 32, 32)
    assert tuple(_classify_transform(info, {"image_size": 16, "hu_window": None})(item)["image"].shape) == (3, 16, 16)
    recorded = {**info, "preprocessing": {"image_size": 8, "hu_window": None, "channels": 1}}
    assert tuple(_classify_transform(recorded, {"image_size": 16})(item)["image"].shape) == (1, 8, 8)
    with pytest.raises(ValueError, match="'preprocessing' must be a dict"):
        _classify_transform({**info, "preprocessing": [1]})


# ------------------------------------------------------------------------------------------------ command line


def _cli(*argv):
    from gemix_monai.cli import main

    return main(list(argv))


def test_cli_classify_writes_the_csv_and_refuses_to_overwrite_it(bundle_root, images, tmp_path):
    out = tmp_path / "cli.csv"
    classify = ["classify", str(images), "--bundle-root", str(bundle_root), "--output", str(out), "--device", "cpu"]
    assert _cli(*classify) == 0
    rows = _read(out)
    assert rows[0][2:] == [f"p({n})" for n in NAMES] and len(rows) == 1 + len(EXPECTED)
    # the CLI prints the error as one line (exit 2); --verbose raises with the whole chain
    assert _cli(*classify) == 2
    with pytest.raises(Exception) as info:
        _cli(*classify, "--verbose")
    assert f"{out} already exists" in error_chain(info.value)
    assert _cli(*classify, "--overwrite", "--batch-size", "3") == 0


def test_cli_classify_with_an_explicit_checkpoint_and_the_default_output(bundle_root, images, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(bundle_root / "models", tmp_path / "elsewhere")
    assert (
        _cli(
            "classify",
            str(images),
            "--bundle-root",
            str(root),
            "--ckpt-path",
            str(tmp_path / "elsewhere" / "model.pt"),
            "--device",
            "cpu",
        )
        == 0
    )
    assert len(_read(root / "predictions" / "predictions.csv")) == 1 + len(EXPECTED)


def test_generate_classify_is_an_alias(bundle_root, images, tmp_path):
    import shutil

    root = shutil.copytree(bundle_root, tmp_path / "root")
    assert _cli("generate", "--bundle-root", str(root), "--classify", str(images), "--device", "cpu") == 0
    assert [r[0] for r in _read(root / "predictions" / "predictions.csv")[1:]] == EXPECTED


def test_cli_classify_on_an_empty_folder_fails_naming_it(bundle_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception) as info:
        _cli(
            "classify",
            str(empty),
            "--bundle-root",
            str(bundle_root),
            "--output",
            str(tmp_path / "x.csv"),
            "--device",
            "cpu",
            "--verbose",
        )
    assert f"no images to classify in {empty}" in error_chain(info.value)


def test_cli_classify_has_help(capsys):
    with pytest.raises(SystemExit) as info:
        _cli("classify", "--help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: gemix-monai classify" in out and "--overwrite" in out and "--output" in out
