"""Folders, CSV manifests, datalist JSON, MedMNIST npz and COVIDx-CT label files → one stream."""

import json

import numpy as np
import pytest
import torch

from gemix_monai.data import (
    DataError,
    DataValidationError,
    build_datalist_from_csv,
    build_datalist_from_folder,
    get_dataset,
    load_medmnist_items,
    read_covidx_labels,
    read_datalist,
    write_datalist,
)


# ---------------------------------------------------------------- the common stream
@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "tinymnist.npz"
    arrays = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.fixture(params=["phantom-nifti", "phantom-dicom", "png-folder", "medmnist-npz"])
def any_source(request, small_phantoms, png_folder, tiny_npz):
    return {
        "phantom-nifti": lambda: str(small_phantoms["nifti"]),
        "phantom-dicom": lambda: str(small_phantoms["dicom"]),
        "png-folder": lambda: str(png_folder),
        "medmnist-npz": lambda: str(tiny_npz),
    }[request.param]()


def test_every_format_yields_the_same_stream(any_source):
    ds = get_dataset(any_source, "training", 32)
    item = ds[0]
    assert {"image", "label"} <= set(item)
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (1, 32, 32)
    assert -1.0 <= float(item["image"].min()) <= float(item["image"].max()) <= 1.0
    assert isinstance(item["label"], int) and 0 <= item["label"] < ds.num_classes
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert tuple(batch["image"].shape) == (3, 1, 32, 32) and batch["label"].dtype == torch.int64


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_phantoms_use_the_abdomen_window_in_either_format(small_phantoms, fmt):
    ds = get_dataset(str(small_phantoms[fmt]), "test", 48)
    assert ds.hu_window == (400.0, 50.0)


def test_nifti_and_dicom_phantoms_give_identical_images(small_phantoms):
    a = get_dataset(str(small_phantoms["nifti"]), "validation", 48)
    b = get_dataset(str(small_phantoms["dicom"]), "validation", 48)
    for i in range(len(a)):
        torch.testing.assert_close(a[i]["image"].as_tensor(), b[i]["image"].as_tensor())


def test_cache_dataset_gives_the_same_items(small_phantoms):
    plain = get_dataset(str(small_phantoms["nifti"]), "test", 32)
    cached = get_dataset(str(small_phantoms["nifti"]), "test", 32, cache=True)
    torch.testing.assert_close(plain[1]["image"].as_tensor(), cached[1]["image"].as_tensor())


# ---------------------------------------------------------------- datalist JSON
def test_phantom_datalist_is_readable_by_monai(small_phantoms):
    from monai.data import load_decathlon_datalist

    items = load_decathlon_datalist(small_phantoms["nifti"], is_segmentation=False, data_list_key="test")
    assert len(items) == 4 and all(item["image"].startswith(str(small_phantoms["nifti"].parent)) for item in items)


def test_write_then_read_keeps_entries_and_makes_paths_relative(tmp_path, png_folder):
    datalist = build_datalist_from_folder(png_folder, val_fraction=0.2, test_fraction=0.2)
    path = write_datalist(datalist, png_folder / "datalist.json")
    stored = json.loads(path.read_text())
    assert not stored["training"][0]["image"].startswith("/")
    assert read_datalist(path) == {**datalist, "validation": datalist["validation"], "test": datalist["test"]}


@pytest.mark.parametrize(
    "content,match",
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"training": []}', "'class_names' must be a non-empty list"),
        ('{"class_names": ["a"]}', "no split lists"),
        ('{"class_names": ["a"], "training": [{"label": 0}]}', r"training\[0\] must be an object with an 'image' key"),
        ("{not json", "not valid JSON"),
    ],
)
def test_malformed_datalist_json_is_named(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_datalist(path)


# ---------------------------------------------------------------- folders
def test_folder_classes_are_sorted_and_split_per_class(png_folder):
    datalist = build_datalist_from_folder(png_folder, val_fraction=0.2, test_fraction=0.2, split_seed=1)
    assert datalist["class_names"] == ["normal", "pneumonia"]
    for split, per_class in (("training", 3), ("validation", 1), ("test", 1)):
        assert np.bincount([e["label"] for e in datalist[split]]).tolist() == [per_class, per_class]


def test_folder_split_is_reproducible_with_the_split_seed(png_folder):
    assert build_datalist_from_folder(png_folder, split_seed=3) == build_datalist_from_folder(png_folder, split_seed=3)


def test_folder_with_split_subfolders_keeps_them(tmp_path, write_png):
    for split in ("train", "val"):
        for name in ("a", "b"):
            write_png(tmp_path / split / name / "x.png", np.zeros((4, 4), np.uint8))
    datalist = build_datalist_from_folder(tmp_path)
    assert [len(datalist[s]) for s in ("training", "validation", "test")] == [2, 2, 0]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no class folders found"):
        build_datalist_from_folder(tmp_path)


def test_empty_class_folder_is_named(png_folder):
    (png_folder / "covid").mkdir()
    with pytest.raises(DataValidationError, match="covid: class folder holds no images"):
        build_datalist_from_folder(png_folder)


def test_unknown_class_folder_is_named(png_folder):
    with pytest.raises(DataError, match=r"unknown class folder\(s\) \['pneumonia'\]"):
        build_datalist_from_folder(png_folder, class_names=["normal", "covid"])


def test_unsupported_file_in_a_class_folder_is_named(png_folder):
    (png_folder / "normal" / "readme.txt").write_text("x")
    with pytest.raises(DataValidationError, match="readme.txt: unsupported file type"):
        build_datalist_from_folder(png_folder)


# ---------------------------------------------------------------- CSV manifests
def _csv(tmp_path, rows, header="image,label,split"):
    path = tmp_path / "manifest.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_with_class_names_and_splits(tmp_path):
    path = _csv(
        tmp_path, ["a.png,cyst,train", "b.png,metastasis,train", "c.png,hemangioma,val", "/abs/d.png,cyst,test"]
    )
    datalist = build_datalist_from_csv(path, class_names=["cyst", "hemangioma", "metastasis"])
    assert datalist["training"] == [
        {"image": str(tmp_path / "a.png"), "label": 0},
        {"image": str(tmp_path / "b.png"), "label": 2},
    ]
    assert datalist["validation"] == [{"image": str(tmp_path / "c.png"), "label": 1}]
    assert datalist["test"] == [{"image": "/abs/d.png", "label": 0}]


def test_csv_with_integer_labels_and_no_split_column(tmp_path):
    path = _csv(tmp_path, [f"{i}.png,{i % 2}" for i in range(10)], header="image,label")
    datalist = build_datalist_from_csv(path, val_fraction=0.2, test_fraction=0.2)
    assert datalist["class_names"] == ["0", "1"]
    assert sum(len(datalist[s]) for s in ("training", "validation", "test")) == 10


@pytest.mark.parametrize(
    "row,match",
    [
        ("a.png,tumour,train", r"row 2: a.png: unknown class name 'tumour'"),
        ("a.png,7,train", r"row 2: a.png: label 7 out of range \[0, 3\)"),
        ("a.png,,train", r"row 2: a.png: empty 'label' \(image without a label\)"),
        (",cyst,train", r"row 2: empty 'image'"),
        ("a.png,cyst,holdout", r"row 2: a.png: split must be one of"),
    ],
)
def test_bad_csv_rows_are_named(tmp_path, row, match):
    path = _csv(tmp_path, ["ok.png,cyst,train", row])
    with pytest.raises(DataValidationError, match=match):
        build_datalist_from_csv(path, class_names=["cyst", "hemangioma", "metastasis"])


def test_csv_missing_a_column_is_named(tmp_path):
    with pytest.raises(DataError, match="missing column 'label'"):
        build_datalist_from_csv(_csv(tmp_path, ["a.png"], header="image"))


def test_csv_source_end_to_end(tmp_path, write_png):
    for i in range(4):
        write_png(tmp_path / f"img{i}.png", np.full((10, 10), 40 * i, np.uint8))
    path = _csv(tmp_path, [f"img{i}.png,{'ab'[i % 2]},train" for i in range(4)])
    ds = get_dataset(str(path), "train", 16)
    assert ds.class_names == ["a", "b"] and ds.labels == [0, 1, 0, 1]


# ---------------------------------------------------------------- MedMNIST
@pytest.fixture
def pneumoniamnist(shared_data_dir):
    path = shared_data_dir / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present (the shared PneumoniaMNIST copy is optional)")
    return path


@pytest.mark.parametrize("split,counts", [("train", [388, 3494]), ("val", [135, 389]), ("test", [234, 390])])
def test_pneumoniamnist_class_counts(pneumoniamnist, split, counts):
    items, names = load_medmnist_items(pneumoniamnist, split)
    assert names == ["normal", "pneumonia"]
    assert np.bincount([it["label"] for it in items]).tolist() == counts


def test_pneumoniamnist_train_validation_duplicates_are_caught(pneumoniamnist):
    # the shared copy holds 8 images present in both training and validation: refused unless dropped
    with pytest.raises(DataValidationError, match="(?s)8 bad entries.*validation\\[61\\].*training\\[1500\\].*leaks"):
        get_dataset(str(pneumoniamnist), "validation", 28)
    with pytest.warns(UserWarning, match="8 held-out image"):
        val = get_dataset(str(pneumoniamnist), "validation", 28, on_duplicate="drop", validate="headers")
    assert len(val) == 524 - 8


def test_pneumoniamnist_stream(pneumoniamnist):
    ds = get_dataset(str(pneumoniamnist), "test", 64, on_duplicate="drop")
    assert ds.hu_window is None
    raw = np.load(pneumoniamnist)["test_images"][5]
    item = ds[5]
    assert tuple(item["image"].shape) == (1, 64, 64)
    # uint8 scaling, not min-max: the mean brightness is kept
    assert float(item["image"].mean()) == pytest.approx(raw.mean() / 255 * 2 - 1, abs=0.02)


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def test_npz_missing_key_is_named(tmp_path):
    path = _npz(tmp_path, train_images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="bad.npz: missing key 'train_labels'"):
        load_medmnist_items(path, "train", class_names=["a", "b"])


def test_npz_mismatched_image_and_label_counts_are_named(tmp_path):
    path = _npz(tmp_path, train_images=np.zeros((3, 8, 8), np.uint8), train_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(DataError, match="train_images has 3 images but train_labels has 2 labels"):
        load_medmnist_items(path, "train", class_names=["a", "b"])


def test_npz_label_out_of_range_is_named(tmp_path):
    path = _npz(tmp_path, val_images=np.zeros((3, 8, 8), np.uint8), val_labels=np.array([[0], [5], [1]]))
    with pytest.raises(DataError, match=r"val_labels\[1\] = 5 out of range \[0, 2\)"):
        load_medmnist_items(path, "val", class_names=["a", "b"])


def test_npz_multilabel_is_rejected(tmp_path):
    path = _npz(tmp_path, test_images=np.zeros((2, 8, 8), np.uint8), test_labels=np.zeros((2, 3), np.uint8))
    with pytest.raises(DataError, match="single-label"):
        load_medmnist_items(path, "test", class_names=["a", "b"])


def test_npz_empty_split_is_named(tmp_path):
    path = _npz(tmp_path, test_images=np.zeros((0, 8, 8), np.uint8), test_labels=np.zeros((0, 1), np.uint8))
    with pytest.raises(DataError, match="split 'test' is empty"):
        load_medmnist_items(path, "test", class_names=["a"])


def test_npz_that_is_not_a_zip_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="broken.npz: not a readable .npz"):
        load_medmnist_items(path, "train", class_names=["a"])


def test_rgb_medmnist_becomes_grey_or_keeps_three_channels(tmp_path):
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[..., 0] = 255
    images[1, 7, 7, 1] = 1  # two different images (identical ones with two labels are refused)
    path = _npz(tmp_path, train_images=images, train_labels=np.array([[0], [1]]))
    grey = get_dataset(str(path), "train", 8, class_names=["a", "b"])[0]["image"]
    rgb = get_dataset(str(path), "train", 8, class_names=["a", "b"], channels=3)[0]["image"]
    torch.testing.assert_close(grey, torch.full((1, 8, 8), 0.299 * 2 - 1), atol=1e-5, rtol=0)
    assert tuple(rgb.shape) == (3, 8, 8) and float(rgb[0].min()) == 1.0


# ---------------------------------------------------------------- COVIDx-CT
def test_covidx_label_file_with_box_crop(tmp_path, write_png):
    arr = np.zeros((40, 60), np.uint8)
    arr[10:30, 20:50] = 200  # the body: rows 10–29, cols 20–49
    write_png(tmp_path / "slices" / "p1_0001.png", arr)
    arr[0, 0] = 1  # another patient's slice: not a duplicate of the first
    write_png(tmp_path / "slices" / "p2_0001.png", arr)
    labels = tmp_path / "train_COVIDx_CT.txt"
    labels.write_text("p1_0001.png 2 20 10 50 30\np2_0001.png 0 20 10 50 30\n")
    items = read_covidx_labels(labels, tmp_path / "slices")
    assert items[0] == {"image": str(tmp_path / "slices" / "p1_0001.png"), "label": 2, "box": (20, 10, 50, 30)}
    ds = get_dataset(str(labels), "train", 16, image_dir=tmp_path / "slices")
    assert ds.class_names == ["normal", "pneumonia", "covid19"] and ds.labels == [2, 0]
    # cropped to the box: the whole 30×20 crop is body (200), padded rows above/below with black;
    # MONAI order [x, y]: the picture's rows are the second axis
    image = ds[0]["image"][0]
    assert float(image[4:12, 6:10].mean()) == pytest.approx(200 / 255 * 2 - 1, abs=1e-3)


def test_covidx_without_crop_has_no_box(tmp_path):
    labels = tmp_path / "l.txt"
    labels.write_text("a.png 1 0 0 5 5\n")
    assert read_covidx_labels(labels, crop=False) == [{"image": str(tmp_path / "a.png"), "label": 1}]


def test_covidx_bad_lines_are_all_named(tmp_path):
    labels = tmp_path / "l.txt"
    labels.write_text("a.png 1 0 0 5 5\nb.png 3 0 0 5 5\nc.png 1 0 0 5\nd.png 1 9 0 5 5\ne.png x 0 0 5 5\n")
    with pytest.raises(DataValidationError) as info:
        read_covidx_labels(labels)
    assert [w for w, _ in info.value.problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "class 3 out of range [0, 3)" in info.value.problems[0][1]


def test_covidx_box_outside_the_image_names_the_file(tmp_path, write_png):
    write_png(tmp_path / "a.png", np.zeros((10, 10), np.uint8))
    labels = tmp_path / "l.txt"
    labels.write_text("a.png 0 0 0 20 5\n")
    # validation runs the preprocessing training runs: refused before any training
    with pytest.raises(DataError, match=r"a.png: box \(xmin, ymin, xmax, ymax\) = \(0, 0, 20, 5\) is empty or outside"):
        get_dataset(str(labels), "train", 8)
    ds = get_dataset(str(labels), "train", 8, validate="headers")
    with pytest.raises(DataError, match="a.png: box"):
        ds[0]
