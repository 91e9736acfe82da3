"""The bad-input corpus, second pass (issue 20): every case built by a fixture, each with its exact outcome.

Splits that keep copies together and survive a move; images decoded as they look (compared with what Pillow,
pydicom and nibabel show after the conversion docs/data.md documents); one file-discovery rule; labels compared as
numbers and names compared without letter case; messages that name the file, value and option.
"""

import hashlib
import json
import logging
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gemix_monai import cli
from gemix_monai.data import (
    DataError,
    DataValidationError,
    check_output_outside_data,
    discover_images,
    get_dataset,
    get_transforms,
    write_datalist,
)
from gemix_monai.data.datalist import SPLITS, build_datalist_from_csv, stratified_split
from gemix_monai.data.groups import grouped_split
from gemix_monai.data.readers import LoadMedicalImaged


def _picture(seed: int, shape=(24, 20)) -> np.ndarray:
    """A distinct, non-constant uint8 picture (rows × cols)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **kwargs)
    return path


def _load(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = LoadMedicalImaged("image").load(path)
    return img


def _monai(expected_rows_cols: np.ndarray) -> np.ndarray:
    """Pillow's rows × cols (× channels) → MONAI's [C, x, y]."""
    arr = np.asarray(expected_rows_cols, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.transpose(arr, (2, 1, 0))


def _splits_of(ds_by_split) -> dict:
    return {os.path.basename(it["image"]): split for split, ds in ds_by_split.items() for it in ds.data}


@pytest.fixture
def dup_folder(tmp_path):
    """root/<class>/*.png: 2 classes × 10 distinct pictures, plus byte-identical copies (3 pairs and a triple)."""
    root = tmp_path / "brain mri"
    for label, name in enumerate(("no", "yes")):
        for i in range(10):
            _save(root / name / f"{name} {i}.png", _picture(100 * label + i))
    for name, i in (("no", 0), ("no", 1), ("yes", 2)):
        shutil.copyfile(root / name / f"{name} {i}.png", root / name / f"{name} {i} copy.png")
    shutil.copyfile(root / "yes" / "yes 3.png", root / "yes" / "yes 3 (1).png")
    shutil.copyfile(root / "yes" / "yes 3.png", root / "yes" / "yes 3 (2).png")
    return root


# ------------------------------------------------------------------------------------------- 1. group-aware split
def test_a_folder_with_identical_copies_validates_and_loads_with_each_group_in_one_split(dup_folder):
    datasets = {s: get_dataset(str(dup_folder), s, 16) for s in SPLITS}  # no option: no "leaks between splits"
    where = _splits_of(datasets)
    assert len(where) == 25
    for a, b in (("no 0.png", "no 0 copy.png"), ("no 1.png", "no 1 copy.png"), ("yes 2.png", "yes 2 copy.png")):
        assert where[a] == where[b]
    assert where["yes 3.png"] == where["yes 3 (1).png"] == where["yes 3 (2).png"]
    groups = datasets["training"].summary["duplicate_groups"]
    assert sorted(sorted(g["images"]) for g in groups) == [
        ["no/no 0 copy.png", "no/no 0.png"],
        ["no/no 1 copy.png", "no/no 1.png"],
        ["yes/yes 2 copy.png", "yes/yes 2.png"],
        ["yes/yes 3 (1).png", "yes/yes 3 (2).png", "yes/yes 3.png"],
    ]
    assert all(
        g["kind"] == "identical (sha256)" and g["split"] == where[os.path.basename(g["images"][0])] for g in groups
    )
    assert "4 group(s) of duplicate images kept within one split" in datasets["test"].summary["text"]
    # held-out counts per class as for single images: 12 'no' → round(2.4) = 2 test, 2 validation; 13 'yes' → 3, 3
    assert [datasets[s].summary["per_class"] for s in SPLITS] == [
        {"no": 8, "yes": 7},
        {"no": 2, "yes": 3},
        {"no": 2, "yes": 3},
    ]


def test_cli_validate_passes_on_a_folder_with_copies(dup_folder, capsys):
    assert cli.main(["validate", "--dataset-dir", str(dup_folder)]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_on_duplicate_drop_no_longer_shrinks_the_held_out_sets(dup_folder):
    plain = [len(get_dataset(str(dup_folder), s, 16)) for s in SPLITS]
    dropped = [len(get_dataset(str(dup_folder), s, 16, on_duplicate="drop")) for s in SPLITS]
    assert dropped == plain


def test_copies_under_two_classes_are_an_error_naming_both_files(tmp_path):
    root = tmp_path / "d"
    for label, name in enumerate(("no", "yes")):
        for i in range(4):
            _save(root / name / f"{i}.png", _picture(10 * label + i))
    shutil.copyfile(root / "no" / "0.png", root / "yes" / "same as no 0.png")
    with pytest.raises(
        DataValidationError,
        match=r"no/0.png: the same image under different labels — no/0.png \('no'\), yes/same as no 0.png \('yes'\)",
    ):
        get_dataset(str(root), "training", 16)


def test_without_duplicates_the_grouped_split_is_the_image_by_image_split():
    labels = [0] * 13 + [1] * 7 + [2] * 30
    singles = [[i] for i in range(len(labels))]
    for seed in (0, 1, 5):
        assert grouped_split(labels, singles, 0.2, 0.2, seed) == stratified_split(labels, 0.2, 0.2, seed)


def test_a_group_goes_whole_and_the_counts_are_kept_where_groups_fit():
    labels = [0] * 10
    groups = [[0, 1], [2], [3], [4], [5], [6], [7], [8], [9]]
    out = grouped_split(labels, groups, 0.2, 0.2, 0)
    assert out[0] == out[1]
    assert out.count("test") == 2 and out.count("validation") == 2


def test_near_duplicates_option_groups_a_png_and_its_jpeg(tmp_path):
    from scipy.ndimage import gaussian_filter

    root = tmp_path / "d"
    for label, name in enumerate(("a", "b")):
        for i in range(5):  # smooth random pictures: their hashes differ in 20–40 bits of 64
            field = gaussian_filter(np.random.default_rng(10 * label + i).normal(size=(64, 64)), 4)
            _save(root / name / f"{i}.png", ((field - field.min()) / np.ptp(field) * 255).astype(np.uint8))
    _save(root / "a" / "0 again.jpg", np.asarray(Image.open(root / "a" / "0.png")), quality=95)
    exact = get_dataset(str(root), "training", 16, split_seed=3).summary.get("duplicate_groups", [])
    assert exact == []
    near = get_dataset(str(root), "training", 16, split_seed=4, near_duplicates=True).summary["duplicate_groups"]
    assert [(sorted(g["images"]), g["kind"]) for g in near] == [
        (["a/0 again.jpg", "a/0.png"], "near-identical (perceptual hash within 4 bits)")
    ]


def test_near_duplicates_on_an_exact_split_file_is_refused_naming_it(dup_folder):
    get_dataset(str(dup_folder), "training", 16)
    with pytest.raises(DataError, match=r"gemix_split_seed0.json: this split was drawn grouping duplicates by sha256"):
        get_dataset(str(dup_folder), "training", 16, near_duplicates=True)


def test_a_split_written_before_groups_existed_that_parts_copies_says_to_delete_it(dup_folder):
    datasets = {s: get_dataset(str(dup_folder), s, 16) for s in SPLITS}
    split_file = dup_folder / "gemix_split_seed0.json"
    stored = json.loads(split_file.read_text())
    # an older version put a copy apart: move 'no 0 copy.png' to another split than 'no 0.png'
    where = _splits_of(datasets)
    source = where["no 0 copy.png"]
    target = "test" if source != "test" else "training"
    item = next(it for it in stored[source] if it["image"] == "no/no 0 copy.png")
    stored[source].remove(item)
    stored[target].append(item)
    split_file.write_text(json.dumps(stored))
    with pytest.raises(DataError, match=r"leaks between splits(.|\n)*drawn by an older version(.|\n)*delete it"):
        get_dataset(str(dup_folder), "training", 16)


# ----------------------------------------------------------------------------- 2. split file: relative, sha256, moves
def test_the_split_file_stores_relative_paths_and_each_files_sha256(dup_folder):
    get_dataset(str(dup_folder), "training", 16)
    stored = json.loads((dup_folder / "gemix_split_seed0.json").read_text())
    items = [it for s in SPLITS for it in stored[s]]
    assert len(items) == 25 and stored["split"]["format"] == 2 and stored["data_root"] == "."
    for it in items:
        assert not os.path.isabs(it["image"]) and it["image"].split("/")[0] in ("no", "yes")
        assert it["sha256"] == hashlib.sha256((dup_folder / it["image"]).read_bytes()).hexdigest()


def test_a_moved_folder_keeps_its_split(dup_folder, tmp_path):
    before = {
        s: sorted(os.path.relpath(it["image"], dup_folder) for it in get_dataset(str(dup_folder), s, 16).data)
        for s in SPLITS
    }
    moved = tmp_path / "another mount" / "mri"
    shutil.move(str(dup_folder), str(moved))
    after = {s: get_dataset(str(moved), s, 16) for s in SPLITS}
    assert {s: sorted(os.path.relpath(it["image"], moved) for it in after[s].data) for s in SPLITS} == before
    assert after["test"].summary["split_file"] == str(moved / "gemix_split_seed0.json")


def test_a_split_file_of_the_previous_layout_is_still_read(tmp_path):
    """Format 1 (before issue 20): absolute paths, no sha256 — reused as it is, never silently re-drawn."""
    root = tmp_path / "d"
    for label, name in enumerate(("no", "yes")):
        for i in range(5):
            _save(root / name / f"{i}.png", _picture(10 * label + i))
    old = {"class_names": ["no", "yes"], "split": {"split_seed": 0, "val_fraction": 0.2, "test_fraction": 0.2}}
    files = sorted(str(p) for p in root.rglob("*.png"))
    old.update({"training": [], "validation": [], "test": []})
    for n, f in enumerate(files):  # a split no version would draw: the last image of each class in test
        old["test" if n % 5 == 4 else "training"].append({"image": f, "label": int("yes" in f.split("/")[-2])})
    (root / "gemix_split_seed0.json").write_text(json.dumps(old))
    test = get_dataset(str(root), "test", 16)
    assert sorted(it["image"] for it in test.data) == [str(root / "no" / "4.png"), str(root / "yes" / "4.png")]


def test_a_changed_file_under_the_same_name_is_reported(dup_folder):
    get_dataset(str(dup_folder), "training", 16)
    _save(dup_folder / "yes" / "yes 5.png", _picture(999))
    with pytest.raises(
        DataError, match=r"changed since its split was fixed.*1 image\(s\) with changed content \['yes/yes 5.png'\]"
    ):
        get_dataset(str(dup_folder), "training", 16)


def test_a_read_only_data_folder_keeps_its_split_under_the_run_folder(dup_folder, tmp_path, monkeypatch):
    import gemix_monai.data.splits as splits

    real = splits.write_datalist

    def read_only(record, path, **kwargs):
        if str(path).startswith(str(dup_folder)):
            raise PermissionError(13, "Read-only file system", str(path))
        return real(record, path, **kwargs)

    monkeypatch.setattr(splits, "write_datalist", read_only)
    run = tmp_path / "run"
    first = get_dataset(str(dup_folder), "test", 16, split_dir=str(run))
    expected = run / "gemix_split_brain mri_seed0.json"
    assert first.summary["split_file"] == str(expected) and expected.is_file()
    assert f"split fixed in {expected} (the data folder {dup_folder} cannot be written)" in first.summary["text"]
    assert not (dup_folder / "gemix_split_seed0.json").exists()
    again = get_dataset(str(dup_folder), "test", 16, split_dir=str(run))
    assert [it["image"] for it in again.data] == [it["image"] for it in first.data]
    assert json.loads(expected.read_text())["data_root"] == str(dup_folder)


def test_an_output_folder_inside_the_data_folder_is_refused_naming_both(dup_folder, tmp_path):
    for inside in (dup_folder, dup_folder / "runs" / "a"):
        with pytest.raises(DataError, match=rf"the output folder {inside} is inside the dataset folder {dup_folder}"):
            check_output_outside_data(inside, dup_folder)
    check_output_outside_data(tmp_path / "run", dup_folder)
    check_output_outside_data(dup_folder, None)  # the phantoms
    (tmp_path / "m.csv").write_text("image,label\n")
    check_output_outside_data(tmp_path, tmp_path / "m.csv")  # a manifest is not searched


# ----------------------------------------------------------------------------------- 3. decoding by mode and content
def _palette_image(indices: np.ndarray, palette: list[int]) -> Image.Image:
    im = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.astype(np.uint8).tobytes())
    im.putpalette(palette)
    return im


@pytest.mark.parametrize("name", ["inverted.png", "inverted named.jpg"])
def test_a_grey_palette_is_read_by_its_grey_levels_not_its_indices(tmp_path, name):
    indices = np.arange(16 * 12).reshape(16, 12) % 256
    path = _save(
        tmp_path / name, _palette_image(indices, [v for i in range(256) for v in (255 - i,) * 3]), format="PNG"
    )
    img = _load(path)
    expected = np.asarray(Image.open(path).convert("L"))
    np.testing.assert_array_equal(img.numpy(), _monai(expected))
    np.testing.assert_array_equal(img.numpy()[0].T, 255 - indices)
    assert img.meta["decode"] == "palette → its grey levels" and img.meta["source_format"] == "pil"


def test_a_colour_palette_is_read_by_its_colours(tmp_path):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, 768).tolist()
    indices = rng.integers(0, 256, (12, 16))
    path = _save(tmp_path / "colour.png", _palette_image(indices, palette))
    img = _load(path)
    np.testing.assert_array_equal(img.numpy(), _monai(np.asarray(Image.open(path).convert("RGB"))))
    assert img.meta["decode"] == "palette → its colours"
    # and to grey by the documented BT.601 luma of those colours
    grey = get_transforms(16, intensity="uint8")({"image": str(path), "label": 0})["image"]
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    luma = (rgb @ np.array([0.299, 0.587, 0.114], np.float32)) / 127.5 - 1.0
    np.testing.assert_allclose(grey.numpy()[0, :, 2:14], luma.T, atol=1e-5)  # 16 × 12 padded to 16 × 16


def test_a_1_bit_image_is_0_or_255(tmp_path):
    bits = (np.indices((10, 12)).sum(0) % 2).astype(bool)
    path = _save(tmp_path / "bits.png", Image.fromarray(bits))
    assert Image.open(path).mode == "1"
    img = _load(path)
    np.testing.assert_array_equal(img.numpy(), _monai(bits.astype(np.uint8) * 255))
    assert img.meta["decode"] == "1-bit → 0/255" and img.meta["source_dtype"] == "uint8"


def test_a_cmyk_jpeg_is_read_as_rgb(tmp_path):
    rgb = np.stack([_picture(1, (16, 16)), _picture(2, (16, 16)), _picture(3, (16, 16))], -1)
    path = _save(tmp_path / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    img = _load(path)
    np.testing.assert_array_equal(img.numpy(), _monai(np.asarray(Image.open(path).convert("RGB"))))
    assert img.shape[0] == 3 and img.meta["decode"] == "CMYK → RGB"


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_alpha_is_composited_onto_black(tmp_path, mode):
    grey = _picture(4, (12, 10))
    alpha = np.tile(np.array([0, 64, 128, 255, 255], np.uint8), (12, 2))
    colour = [grey] if mode == "LA" else [grey, 255 - grey, grey // 2]
    path = _save(tmp_path / f"{mode}.png", Image.fromarray(np.stack([*colour, alpha], -1), mode))
    img = _load(path)
    black = Image.new("RGBA", (10, 12), (0, 0, 0, 255))
    expected = Image.alpha_composite(black, Image.open(path).convert("RGBA")).convert("RGB")
    expected = expected.convert("L") if mode == "LA" else expected
    np.testing.assert_array_equal(img.numpy(), _monai(np.asarray(expected)))
    assert img.meta["decode"] == f"{mode} → alpha composited onto black"
    assert img.numpy()[:, 0, :].max() == img.numpy()[:, 5, :].max() == 0  # columns of alpha 0: black


def test_a_grey_alpha_png_validates_and_trains_alike(tmp_path, capsys):
    root = tmp_path / "d"
    for label, name in enumerate(("a", "b")):
        for i in range(3):
            arr = np.stack([_picture(10 * label + i, (12, 12)), np.full((12, 12), 255, np.uint8)], -1)
            _save(root / name / f"{i}.png", Image.fromarray(arr, "LA"))
    assert cli.main(["validate", "--dataset-dir", str(root), "--splits", "training"]) == 0
    out = capsys.readouterr().out
    assert "decoded by mode: 2 × LA → alpha fully opaque, dropped" in out
    ds = get_dataset(str(root), "training", 12)
    assert tuple(ds[0]["image"].shape) == (1, 12, 12)


def test_a_multi_page_tiff_is_refused_naming_its_page_count(tmp_path):
    pages = [Image.fromarray(_picture(i, (10, 12))) for i in range(3)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    message = r"stack.tif: 3 pages \(L, 12×10 px each\): one file must hold one 2-D image"
    with pytest.raises(DataError, match=message):
        _load(path)
    dl = write_datalist({"class_names": ["a"], "training": [{"image": str(path), "label": 0}]}, tmp_path / "d.json")
    with pytest.raises(DataValidationError, match=r"training\[0\] .*stack.tif: 3 pages"):
        get_dataset(str(dl), "training", 16, validate="headers")


def test_a_camera_mpo_jpeg_is_read_by_its_main_picture(tmp_path):
    frames = [Image.fromarray(np.stack([_picture(i, (16, 16))] * 3, -1)) for i in range(2)]
    path = tmp_path / "photo.jpg"
    frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:], quality=95)
    assert Image.open(path).format == "MPO" and Image.open(path).n_frames == 2
    img = _load(path)
    np.testing.assert_array_equal(img.numpy(), _monai(np.asarray(Image.open(path).convert("RGB"))))
    assert img.meta["decode"] == "MPO: its main picture (frame 1 of 2)"


def test_a_gif_is_read_and_an_animated_one_refused(tmp_path):
    single = _save(tmp_path / "one.gif", Image.fromarray(_picture(1, (10, 10))).convert("P"))
    np.testing.assert_array_equal(_load(single).numpy(), _monai(np.asarray(Image.open(single).convert("L"))))
    frames = [Image.fromarray(_picture(i, (10, 10))).convert("P") for i in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match=r"anim.gif: 2 pages"):
        _load(tmp_path / "anim.gif")


def _dicom(tmp_path, ct_small, name, **attrs):
    import pydicom

    ds = pydicom.dcmread(ct_small)
    for key, value in attrs.items():
        setattr(ds, key, value)
    path = tmp_path / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)
    return path


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"RescaleSlope": "0"}, "DICOM RescaleSlope is 0: every pixel would become the intercept"),
        ({"RescaleIntercept": "NaN"}, "DICOM RescaleIntercept is nan: not a finite number"),
        ({"RescaleSlope": "inf"}, "DICOM RescaleSlope is inf: not a finite number"),
    ],
    ids=["slope-0", "intercept-nan", "slope-inf"],
)
def test_a_dicom_rescale_that_blanks_the_image_is_refused_naming_the_file(tmp_path, ct_small, attrs, message):
    path = _dicom(tmp_path, ct_small, "bad.dcm", **attrs)
    with pytest.raises(DataError, match=rf"bad.dcm: {message}"):
        _load(path)
    dl = write_datalist({"class_names": ["a"], "training": [{"image": str(path), "label": 0}]}, tmp_path / "d.json")
    with pytest.raises(DataValidationError, match=rf"training\[0\] .*bad.dcm: {message}"):
        get_dataset(str(dl), "training", 16, validate="headers")


def test_dicom_values_are_stored_values_times_slope_plus_intercept(tmp_path, ct_small):
    import pydicom

    path = _dicom(tmp_path, ct_small, "scaled.dcm", RescaleSlope="2", RescaleIntercept="-1000")
    stored = pydicom.dcmread(path).pixel_array.astype(np.float32)
    np.testing.assert_array_equal(_load(path).numpy()[0], (stored * 2 - 1000).T)


def test_a_4d_nifti_with_a_time_axis_is_refused_not_read_as_colour(tmp_path):
    import nibabel as nib

    path = tmp_path / "t.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((10, 12, 1, 3)).astype(np.float32), np.eye(4)), path)
    message = r"t.nii.gz: 4-D image of shape \(10, 12, 1, 3\) \(a time or vector axis of \(3,\)\)"
    with pytest.raises(DataError, match=message):
        get_transforms(16)({"image": str(path), "label": 0})
    dl = write_datalist({"class_names": ["a"], "training": [{"image": str(path), "label": 0}]}, tmp_path / "d.json")
    with pytest.raises(DataValidationError, match=r"training\[0\] .*t.nii.gz: 4-D image of shape \(10, 12, 1, 3\)"):
        get_dataset(str(dl), "training", 16)


@pytest.mark.parametrize("shape", [(1, 1), (7, 40)])
def test_an_image_under_8_px_a_side_is_refused_naming_it(tmp_path, shape):
    path = _save(tmp_path / "tiny.png", _picture(0, shape))
    with pytest.raises(
        DataError, match=rf"tiny.png: image of {shape[0]}×{shape[1]} px \(rows × cols\) is below the minimum of 8 px"
    ):
        _load(path)


def test_a_constant_image_is_named_in_a_warning_and_the_summary_and_stays_constant(tmp_path):
    root = tmp_path / "d"
    for label, name in enumerate(("a", "b")):
        for i in range(3):
            _save(root / name / f"{i}.png", _picture(10 * label + i, (40, 40)))
    _save(root / "a" / "white.png", np.full((200, 200), 255, np.uint8))
    with pytest.warns(UserWarning, match=r"1 image\(s\) of a single value .*white.png \(every pixel 255\)"):
        ds = get_dataset(str(root), "training", 32, split_seed=0)
    white = next(i for i, it in enumerate(ds.data) if it["image"].endswith("white.png"))
    assert ds.summary["constant_images"] == [f"training[{white}] {root / 'a' / 'white.png'}"]
    image = ds[white]["image"]
    assert float(image.min()) == float(image.max()) == 1.0  # no grey border


def test_down_sizing_keeps_a_constant_image_constant_and_pads_black(tmp_path):
    path = _save(tmp_path / "wide.png", np.full((120, 200), 255, np.uint8))  # rows × cols
    out = get_transforms(64, intensity="uint8")({"image": str(path), "label": 0})["image"]
    # x (cols) 200 → 64, y (rows) 120 → round(38.4) = 38, centred in 64: 13 rows of padding before
    assert tuple(out.shape) == (1, 64, 64)
    assert (
        bool((out[:, :, 13:51] == 1.0).all())
        and bool((out[:, :, :13] == -1.0).all())
        and bool((out[:, :, 51:] == -1.0).all())
    )


def test_a_valid_analyze_pair_is_read_and_found_once(tmp_path):
    import nibabel as nib

    data = np.arange(10 * 12, dtype=np.int16).reshape(10, 12)
    root = tmp_path / "d"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        nib.save(nib.AnalyzeImage(data + (name == "b"), np.eye(4)), root / name / "scan.hdr")
    img = _load(root / "a" / "scan.hdr")
    np.testing.assert_array_equal(img.numpy()[0], np.asarray(nib.load(root / "a" / "scan.hdr").dataobj))
    assert [p.relative_to(root).as_posix() for p in discover_images(root)] == ["a/scan.hdr", "b/scan.hdr"]
    dl = write_datalist(
        {
            "class_names": ["a", "b"],
            "training": [{"image": str(root / n / "scan.hdr"), "label": k} for k, n in enumerate("ab")],
        },
        tmp_path / "d.json",
    )
    assert len(get_dataset(str(dl), "training", 16)) == 2  # not "truncated NIfTI"
    os.remove(root / "b" / "scan.hdr")
    with pytest.raises(DataValidationError, match=r"b/scan.img: Analyze/NIfTI-pair pixel data without its header"):
        discover_images(root)


# --------------------------------------------------------------------------------------- 4. one discovery rule
def test_class_folders_are_searched_recursively_with_classifys_rule(tmp_path):
    root = tmp_path / "d"
    for label, name in enumerate(("no", "yes")):
        for i in range(3):
            _save(root / name / f"{i}.png", _picture(10 * label + i))
    for i in range(3):
        _save(root / "yes" / "2019" / "batch1" / f"deep {i}.jpg", _picture(50 + i), quality=95)
    found = {it["image"] for s in SPLITS for it in get_dataset(str(root), s, 16).data}
    assert len(found) == 9 and {str(p) for p in discover_images(root)} == found


def test_suffix_less_dicom_and_gif_are_images_for_training_and_classify(tmp_path, ct_small, caplog):
    root = tmp_path / "d"
    (root / "ct").mkdir(parents=True)
    shutil.copyfile(ct_small, root / "ct" / "IM0001")
    shutil.copyfile(ct_small, root / "ct" / "1.2.840.113619.2.55.3")
    (root / "ct" / "IM0001").write_bytes((root / "ct" / "IM0001").read_bytes())  # same bytes, both kept
    _save(root / "other" / "a.gif", Image.fromarray(_picture(1, (128, 128))).convert("P"))
    _save(root / "other" / "b.png", _picture(2, (128, 128)))
    (root / "other" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="gemix_monai.data.discover"):
        found = [p.relative_to(root).as_posix() for p in discover_images(root)]
    assert found == ["ct/1.2.840.113619.2.55.3", "ct/IM0001", "other/a.gif", "other/b.png"]
    assert "1 file(s) that are not images left out: ['other/notes.txt']" in caplog.text
    np.testing.assert_array_equal(_load(root / "ct" / "IM0001").numpy(), _load(ct_small).numpy())


def test_dangling_links_and_loops_are_errors_naming_the_link(tmp_path):
    root = tmp_path / "d"
    for label, name in enumerate(("no", "yes")):
        for i in range(3):
            _save(root / name / f"{i}.png", _picture(10 * label + i))
    os.symlink(tmp_path / "gone.png", root / "no" / "dangling.png")
    os.symlink(root / "yes", root / "yes" / "again")
    os.symlink("self", root / "yes" / "self")
    with pytest.raises(DataValidationError) as err:
        get_dataset(str(root), "training", 16)
    message = str(err.value)
    assert (
        f"{root / 'no' / 'dangling.png'}: dangling link: it points to {tmp_path / 'gone.png'}, which does not exist"
        in message
    )
    assert f"{root / 'yes' / 'again'}: link loop: it leads back to {root / 'yes'}, a folder above it" in message
    assert f"{root / 'yes' / 'self'}: link loop: the link leads back to itself" in message


def test_class_folders_differing_only_by_case_are_refused_naming_them(tmp_path):
    for name in ("Yes", "yes", "no"):
        _save(tmp_path / "d" / name / "0.png", _picture(len(name) + ord(name[0])))
    with pytest.raises(DataError, match=r"class folders .*d/Yes/ and .*d/yes/ differ only by letter case"):
        get_dataset(str(tmp_path / "d"), "training", 16)


def test_csv_labels_differing_only_by_case_are_refused_naming_them(tmp_path):
    rows = ["image,label"] + [f"{i}.png,{v}" for i, v in enumerate(["yes", "no", "Yes", "no", "YES", "no"])]
    for i in range(6):
        _save(tmp_path / f"{i}.png", _picture(i))
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(
        DataError,
        match=r"m.csv: labels in column 'label' differ only by letter case: 'yes' \(row 1\), 'Yes' \(row 3\), 'YES' \(row 5\)",
    ):
        get_dataset(str(tmp_path / "m.csv"), "training", 16)


@pytest.mark.parametrize(
    "names,message",
    [(["yes", "yes"], "class 'yes' is named twice"), (["yes", "Yes"], "class 'Yes' is named as 'yes' and 'Yes'")],
)
def test_duplicate_class_names_in_a_datalist_are_refused_by_validate_and_training(tmp_path, capsys, names, message):
    items = [{"image": str(_save(tmp_path / f"{i}.png", _picture(i))), "label": i} for i in range(2)]
    dl = tmp_path / "d.json"
    dl.write_text(json.dumps({"class_names": names, "training": items}))
    with pytest.raises(DataError, match=message):
        get_dataset(str(dl), "training", 16)
    assert cli.main(["validate", "--datalist", str(dl), "--splits", "training"]) == 1
    assert message in capsys.readouterr().out


def test_a_class_without_training_images_is_refused_naming_it(tmp_path):
    items = [{"image": str(_save(tmp_path / f"{i}.png", _picture(i))), "label": i % 2} for i in range(4)]
    dl = tmp_path / "d.json"
    dl.write_text(json.dumps({"class_names": ["a", "b", "empty"], "training": items}))
    with pytest.raises(DataError, match=r"class 'empty' \(label 2\) has no training image \(4 training images\)"):
        get_dataset(str(dl), "training", 16)


def test_a_class_absent_from_the_test_split_is_a_warning_naming_it(tmp_path):
    items = [{"image": str(_save(tmp_path / f"{i}.png", _picture(i))), "label": i % 2} for i in range(5)]
    dl = write_datalist({"class_names": ["a", "b"], "training": items[:4], "test": items[4:]}, tmp_path / "d.json")
    with pytest.warns(
        UserWarning,
        match=r"\[test\]: no image of class\(es\) \['b'\] \(1 images\): their test metrics are undefined, not 0",
    ):
        ds = get_dataset(str(dl), "test", 16)
    assert ds.summary["absent_classes"] == ["b"]


# ------------------------------------------------------------------------------- 5. labels, paths, one check function
def test_csv_labels_1_and_1_point_0_are_one_class_and_1_point_5_is_refused(tmp_path):
    for i in range(6):
        _save(tmp_path / f"{i}.png", _picture(i))
    (tmp_path / "m.csv").write_text(
        "image,label\n" + "".join(f"{i}.png,{v}\n" for i, v in enumerate(["0", "1", "1.0", "0.0", "1", "0"]))
    )
    dl = build_datalist_from_csv(tmp_path / "m.csv")
    assert dl["class_names"] == ["0", "1"]
    assert sorted((os.path.basename(it["image"]), it["label"]) for s in SPLITS for it in dl[s]) == [
        ("0.png", 0),
        ("1.png", 1),
        ("2.png", 1),
        ("3.png", 0),
        ("4.png", 1),
        ("5.png", 0),
    ]
    (tmp_path / "f.csv").write_text("image,label\n0.png,0.0\n1.png,1.5\n")
    with pytest.raises(DataError, match=r"f.csv: row 2: label '1.5' in column 'label' is not an integer class index"):
        build_datalist_from_csv(tmp_path / "f.csv")


def test_a_relative_csv_path_is_resolved_once_against_the_folder_named(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data" / "C09"
    for i in range(6):
        _save(data / f"{i}.png", _picture(i))
    (data / "m.csv").write_text("image,label\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(6)))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate", "--dataset-dir", "data/C09/m.csv"]) == 0
    stored = json.loads((data / "m.csv.split_seed0.json").read_text())
    assert sorted(it["image"] for s in SPLITS for it in stored[s]) == [f"{i}.png" for i in range(6)]
    monkeypatch.chdir(data)
    assert cli.main(["validate", "--dataset-dir", "m.csv"]) == 0  # not data/C09/data/C09/…
    assert cli.main(["validate", "--dataset-dir", str(data / "m.csv")]) == 0
    assert "no problem found" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- 7. BOM, encodings, options
def test_a_csv_and_a_json_with_a_utf8_bom_are_accepted(tmp_path):
    for i in range(4):
        _save(tmp_path / f"{i}.png", _picture(i))
    text = "image,label\n" + "".join(f"{i}.png,{'ab'[i % 2]}\n" for i in range(4))
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert build_datalist_from_csv(tmp_path / "m.csv")["class_names"] == ["a", "b"]
    items = [{"image": f"{i}.png", "label": i % 2} for i in range(4)]
    (tmp_path / "d.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"class_names": ["a", "b"], "training": items}).encode()
    )
    assert len(get_dataset(str(tmp_path / "d.json"), "training", 16)) == 4


def test_a_latin_1_csv_is_refused_naming_the_file_and_the_byte(tmp_path):
    (tmp_path / "m.csv").write_bytes("image,label\ncafé.png,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"m.csv: the CSV manifest is not UTF-8 text \(byte 0xe9 at offset 15"):
        get_dataset(str(tmp_path / "m.csv"), "training", 16)


def test_an_object_array_npz_is_refused_naming_the_file_and_key(tmp_path):
    images = np.empty(2, dtype=object)
    images[0], images[1] = np.zeros((8, 8)), np.zeros((9, 9))
    np.savez(tmp_path / "mine.npz", train_images=images, train_labels=np.array([0, 1]))
    with pytest.raises(DataError, match=r"mine.npz: key 'train_images' holds Python objects \(an object array"):
        get_dataset(str(tmp_path / "mine.npz"), "training", 16, class_names=["a", "b"])


@pytest.mark.parametrize("value", [-1, 1.5, "0", True])
def test_a_bad_split_seed_names_the_option_and_the_value(dup_folder, value):
    with pytest.raises(DataError, match=rf"split_seed \(--split-seed\) must be a non-negative integer, got {value!r}"):
        get_dataset(str(dup_folder), "training", 16, split_seed=value)


def test_cli_split_seed_minus_one_is_one_line_naming_the_option(dup_folder, capsys):
    assert cli.main(["validate", "--dataset-dir", str(dup_folder), "--split-seed", "-1"]) == 1
    assert "split_seed (--split-seed) must be a non-negative integer, got -1" in capsys.readouterr().out


def test_a_bad_near_duplicates_value_names_the_option(dup_folder):
    with pytest.raises(DataError, match=r"near_duplicates must be .* got 'yes'"):
        get_dataset(str(dup_folder), "training", 16, near_duplicates="yes")


def test_every_case_of_the_first_pass_still_loads_a_real_image_unchanged(tmp_path):
    """An ordinary 8-bit grey PNG: the decoded array is exactly Pillow's (no conversion, no note)."""
    arr = _picture(7, (20, 30))
    path = _save(tmp_path / "plain.png", arr)
    img = _load(path)
    np.testing.assert_array_equal(img.numpy(), _monai(arr))
    assert "decode" not in img.meta
    assert torch.equal(torch.as_tensor(img.numpy()), torch.as_tensor(_monai(arr)))
