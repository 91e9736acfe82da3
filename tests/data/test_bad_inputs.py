"""The bad-input corpus: data that is not ours, built by fixtures, each case with its exact outcome.

Every case here once gave a silently wrong result with exit code 0 (docs/data.md lists the rules
that now hold): it must now be a clear error naming the file/argument, or the correct value.
"""

import json

import numpy as np
import pytest
import torch

from gemix_monai import cli
from gemix_monai.data import (
    DataContract,
    DataError,
    DataValidationError,
    Preprocessing,
    check_contract,
    get_dataset,
    get_transforms,
    write_datalist,
)


def _jpeg(path, array, quality=90):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=quality)
    return path


def _png16(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)
    return path


@pytest.fixture
def mri_folder(tmp_path):
    """A class-per-folder tree of JPEGs in mixed modes and sizes, names with spaces (like a brain-MRI download)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    root = tmp_path / "brain mri"
    modes = ("L", "RGB", "RGBA", "P")
    for label, name in enumerate(("glioma", "no tumour")):
        for i in range(6):
            h, w = 20 + 3 * i, 24 + 2 * i
            grey = (rng.integers(0, 120, (h, w)) + 100 * label).astype(np.uint8)
            img = Image.fromarray(grey).convert(modes[i % 4])
            path = root / name / f"scan {i}.{'png' if img.mode in ('RGBA', 'P') else 'jpg'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
    return root


# ------------------------------------------------------------------ 1. CT window only for CT
def test_jpeg_and_png_folder_is_scaled_not_hu_windowed(mri_folder):
    ds = get_dataset(str(mri_folder), "training", 16)
    assert ds.hu_window is None and ds.preprocessing.intensity == "auto"
    assert "not known to be CT" in ds.contract.reason
    image = ds[0]["image"]
    # 8-bit data spans [-1, 1] by its 0..255 range: not saturated as HU would be
    saturated = float(((image == 1.0) | (image == -1.0)).float().mean())
    assert saturated < 0.5


def test_16_bit_png_with_12_bit_data_is_percentile_scaled_not_saturated(tmp_path):
    arr = np.random.default_rng(0).integers(0, 4096, (32, 32))
    for label, name in enumerate(("a", "b")):
        for i in range(3):
            _png16(tmp_path / "x" / name / f"{i}.png", arr + 10 * i + 7 * label)
    ds = get_dataset(str(tmp_path / "x"), "training", 32)
    image = ds[0]["image"]
    assert ds.hu_window is None
    assert float((image.abs() == 1.0).float().mean()) < 0.05  # only the percentile tails clip
    assert float(image.std()) > 0.3


def test_a_datalists_own_hu_window_is_applied(tmp_path, ct_small):
    path = write_datalist(
        {"class_names": ["a"], "hu_window": "lung", "training": [{"image": str(ct_small), "label": 0}]},
        tmp_path / "dl.json",
    )
    ds = get_dataset(str(path), "training", 32)
    assert ds.hu_window == (1500.0, -600.0)
    expected = get_transforms(32, hu_window="lung")({"image": str(ct_small), "label": 0})["image"]
    torch.testing.assert_close(ds[0]["image"], expected)


def test_ct_dicom_gets_a_ct_window_by_its_modality(tmp_path, ct_small):
    path = write_datalist(
        {"class_names": ["a"], "training": [{"image": str(ct_small), "label": 0}]}, tmp_path / "d.json"
    )
    ds = get_dataset(str(path), "training", 32)
    assert ds.hu_window == (400.0, 50.0) and "Modality CT" in ds.contract.reason


def test_a_ct_window_on_8_bit_images_names_the_file(mri_folder):
    with pytest.raises(DataValidationError, match=r"scan 0\.jpg.*8-bit image.*CT window"):
        get_dataset(str(mri_folder), "training", 16, hu_window="abdomen")


def test_cli_has_hu_window_and_intensity_options():
    args = cli.build_parser().parse_args(["train-classifier", "--hu-window", "400,50", "--intensity", "percentile"])
    assert cli._overrides(args)["hu_window"] == [400.0, 50.0] and cli._overrides(args)["intensity"] == "percentile"


# ------------------------------------------------------------------ 2. the stored contract
def test_contract_mismatch_names_both_sides():
    model = DataContract(("a", "b"), Preprocessing(32, hu_window="abdomen"))
    data = DataContract(("a", "b"), Preprocessing(32, hu_window=None))
    with pytest.raises(DataError, match=r"preprocessing differs: the model .*abdomen.*the data .*intensity 'auto'"):
        check_contract(model, data, "the model", "the data")
    with pytest.raises(DataError, match=r"class order differs: .*\['a', 'b'\].*\['b', 'a'\]"):
        check_contract(model, DataContract(("b", "a"), model.preprocessing), "the model", "the data")


def test_dataset_built_against_a_model_contract_refuses_another_class_order(mri_folder):
    trained = get_dataset(str(mri_folder), "training", 16)
    contract = DataContract(tuple(reversed(trained.class_names)), trained.preprocessing)
    with pytest.raises(DataError, match="class order differs"):
        get_dataset(str(mri_folder), "test", contract=contract)
    # and takes its sizes from the contract
    assert get_dataset(str(mri_folder), "test", contract=trained.contract)[0]["image"].shape[-1] == 16


def test_evaluation_with_another_window_than_training_is_refused(mri_folder):
    trained = get_dataset(str(mri_folder), "training", 16, intensity="minmax")
    with pytest.raises(DataError, match="preprocessing differs"):
        get_dataset(str(mri_folder), "test", contract=trained.contract)  # the data alone decides 'auto'


# ------------------------------------------------------------------ 3. MONAI's orientation
@pytest.mark.parametrize("shape", [(24, 24), (20, 30)])
def test_preprocessing_equals_monais_own_chain(tmp_path, write_png, shape):
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, ScaleIntensityRanged

    arr = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    path = write_png(tmp_path / "x.png", arr)
    ours = get_transforms(max(shape), intensity="uint8")({"image": str(path), "label": 0})["image"]
    theirs = Compose(
        [LoadImaged("image"), EnsureChannelFirstd("image"), ScaleIntensityRanged("image", 0, 255, -1, 1, clip=True)]
    )({"image": str(path)})["image"]
    x, y = theirs.shape[1:]
    side = max(shape)
    x0, y0 = (side - x) // 2, (side - y) // 2  # the shorter side is padded symmetrically
    torch.testing.assert_close(
        ours[:, x0 : x0 + x, y0 : y0 + y].as_tensor(), theirs.as_tensor().float(), atol=1e-6, rtol=0
    )


# ------------------------------------------------------------------ 4. splits made once and kept
def test_the_split_does_not_move_with_the_training_seed(mri_folder):
    with pytest.raises(TypeError, match="split_seed"):
        get_dataset(str(mri_folder), "test", seed=1)
    first = [it["image"] for it in get_dataset(str(mri_folder), "test", 16).data]
    split_file = mri_folder / "gemix_split_seed0.json"
    assert split_file.is_file()
    again = [it["image"] for it in get_dataset(str(mri_folder), "test", 16).data]
    assert first == again


def test_a_changed_folder_is_not_silently_resplit(mri_folder, write_png):
    get_dataset(str(mri_folder), "training", 16)
    write_png(mri_folder / "glioma" / "new scan.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"changed since its split was fixed.*1 image\(s\) added.*new scan\.png"):
        get_dataset(str(mri_folder), "training", 16)


def test_cli_split_is_the_same_whatever_seed(mri_folder):
    from gemix_monai.data.dataset import build_datalist

    a = build_datalist(str(mri_folder))
    b = build_datalist(str(mri_folder))
    assert a["test"] == b["test"] and a["split_file"] == b["split_file"]


def test_the_same_image_in_training_and_test_names_both_files(tmp_path, write_png):
    arr = np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)
    a = write_png(tmp_path / "a.png", arr)
    b = write_png(tmp_path / "copy of a.png", arr)
    c = write_png(tmp_path / "c.png", arr[::-1].copy())
    dl = write_datalist(
        {
            "class_names": ["x", "y"],
            "training": [{"image": str(a), "label": 0}, {"image": str(c), "label": 1}],
            "test": [{"image": str(b), "label": 0}],
        },
        tmp_path / "dl.json",
    )
    with pytest.raises(
        DataValidationError, match=r"copy of a\.png: identical content .* as training\[0\] .*a\.png.*leaks"
    ):
        get_dataset(str(dl), "training", 8)
    ds = get_dataset(str(dl), "training", 8, on_duplicate="drop")
    assert len(ds) == 2


def test_one_path_with_two_labels_is_an_error(tmp_path, write_png):
    a = write_png(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    dl = write_datalist(
        {"class_names": ["x", "y"], "training": [{"image": str(a), "label": 0}, {"image": str(a), "label": 1}]},
        tmp_path / "dl.json",
    )
    with pytest.raises(DataValidationError, match="conflicting labels"):
        get_dataset(str(dl), "training", 8)


# ------------------------------------------------------------------ 5. NaN / inf voxels
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_voxels_fail_validation_naming_the_file(tmp_path, bad):
    import nibabel as nib

    arr = np.zeros((8, 8), np.float32)
    arr[2, 3] = bad
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), good)
    dl = write_datalist(
        {"class_names": ["x", "y"], "training": [{"image": str(path), "label": 0}, {"image": str(good), "label": 1}]},
        tmp_path / "dl.json",
    )
    with pytest.raises(DataValidationError, match=r"bad\.nii\.gz.*1 of 64 voxels are NaN or infinite"):
        get_dataset(str(dl), "training", 8)
    with pytest.raises(DataError, match="NaN or infinite"):
        get_transforms(8)({"image": str(path), "label": 0})


# ------------------------------------------------------------------ 6. truncated files, on_error='skip'
def test_a_truncated_jpeg_is_caught_before_training_naming_it(mri_folder):
    victim = sorted((mri_folder / "glioma").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    with pytest.raises(DataValidationError, match=f"{victim.name}.*(truncated|unreadable)"):
        for split in ("training", "validation", "test"):
            get_dataset(str(mri_folder), split, 16)


def test_skip_works_for_non_image_files_and_is_reported(mri_folder):
    (mri_folder / "glioma" / "notes.txt").write_text("not an image")
    with pytest.raises(DataValidationError, match="notes.txt: unsupported file type"):
        get_dataset(str(mri_folder), "training", 16)
    with pytest.warns(UserWarning, match="notes.txt"):
        ds = get_dataset(str(mri_folder), "training", 16, on_error="skip")
    assert any("notes.txt" in where for where, _ in ds.bad_items)
    assert "notes.txt" in ds.summary["text"]


def test_cli_validate_summarises_and_fails_on_problems(mri_folder, capsys):
    assert cli.main(["validate", "--dataset-dir", str(mri_folder)]) == 0
    out = capsys.readouterr().out
    assert "preprocessing: 64×64 px" in out and "not known to be CT" in out and "no problem found" in out
    (mri_folder / "glioma" / "notes.txt").write_text("x")
    assert cli.main(["validate", "--dataset-dir", str(mri_folder)]) == 1
    assert "notes.txt" in capsys.readouterr().out


# ------------------------------------------------------------------ 7. the class count
def test_a_stray_integer_label_does_not_make_extra_classes(tmp_path, write_png):
    rows = ["image,label"]
    for i in range(6):
        write_png(tmp_path / f"{i}.png", np.full((4, 4), i, np.uint8))
        rows.append(f"{i}.png,{i % 2}")
    rows.append("5.png,7")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"integer labels \[0, 1, 7\] are not 0\.\.2.*suspicious \[7\] in rows \[7\]"):
        get_dataset(str(tmp_path / "m.csv"), "training", 8)


def test_an_unknown_npz_needs_labels_0_to_k_minus_1(tmp_path):
    images = np.zeros((4, 8, 8), np.uint8)
    np.savez(
        tmp_path / "mine.npz",
        train_images=images,
        train_labels=np.array([0, 1, 0, 7]),
        val_images=images,
        val_labels=np.array([0, 1, 0, 1]),
        test_images=images,
        test_labels=np.array([0, 1, 1, 0]),
    )
    with pytest.raises(DataError, match=r"mine\.npz: label values \[0, 1, 7\].*pass class_names"):
        get_dataset(str(tmp_path / "mine.npz"), "training", 8)


def test_a_one_class_folder_names_the_folder(tmp_path, write_png):
    write_png(tmp_path / "only" / "a" / "1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"only one class folder .*only/a.*at least two classes"):
        get_dataset(str(tmp_path / "only"), "training", 8)


# ------------------------------------------------------------------ 10. readable errors
def test_a_missing_dataset_path_says_it_does_not_exist(tmp_path, capsys):
    rc = cli.main(["validate", "--dataset-dir", str(tmp_path / "nowhere")])
    assert rc == 1 and "does not exist" in capsys.readouterr().out
    rc = cli.main(
        ["train-gan", "--bundle-root", str(tmp_path), "--dataset-dir", str(tmp_path / "nowhere"), "--max-kimg", "0.01"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err and str(tmp_path / "nowhere") in err and "Traceback" not in err


def test_split_summary_is_json_serialisable(mri_folder, tmp_path):
    assert cli.main(["validate", "--dataset-dir", str(mri_folder), "--json", str(tmp_path / "s.json")]) == 0
    summaries = json.loads((tmp_path / "s.json").read_text())
    assert [s["split"] for s in summaries] == ["training", "validation", "test"]
    assert sum(s["count"] for s in summaries) == 12


# --------------------------------------------------------------------------------------------
# segmentation masks (docs/segmentation.md): shape, values and presence are checked up front
# --------------------------------------------------------------------------------------------
def _mask_datalist(tmp_path, write_png, masks: dict, **extra):
    """Two 16×12 PNG images with distinct content, each with the mask array given (rows × cols), as a datalist."""
    items = []
    for n in range(2):
        picture = np.zeros((16, 12), np.uint8)
        picture[2:6, 3:5] = 200 + n
        write_png(tmp_path / f"img{n}.png", picture)
        item = {"image": f"img{n}.png", "mask": f"img{n}_mask.png", "label": n}
        if n in masks and masks[n] is not None:
            write_png(tmp_path / item["mask"], masks[n])
        items.append(item)
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"class_names": ["a", "b"], "training": items, **extra}))
    return path


def _binary(shape=(16, 12)):
    mask = np.zeros(shape, np.uint8)
    mask[2:6, 3:5] = 1
    return mask


def test_a_mask_of_another_shape_than_its_image_names_both_files_and_shapes(tmp_path, write_png):
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: _binary((16, 14))})
    with pytest.raises(DataValidationError) as err:
        get_dataset(str(path), "training", 16)
    message = str(err.value)
    assert (
        f"mask {tmp_path / 'img1_mask.png'} has spatial shape (14, 16), its image {tmp_path / 'img1.png'} has (12, 16)"
        in message
    )


def test_a_greyscale_mask_is_refused_naming_the_file_and_the_values(tmp_path, write_png):
    grey = (np.arange(16 * 12).reshape(16, 12) % 7 * 30).astype(np.uint8)
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: grey})
    with pytest.raises(DataError, match=r"mask values \[0.0, 1.0, 30.0.*e.g. 30 in .*img1_mask.png"):
        get_dataset(str(path), "training", 16)


def test_a_non_binary_mask_in_a_binary_dataset_is_refused_naming_the_file_and_the_values(tmp_path, write_png):
    odd = _binary() * 128
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: odd}, mask_channels=1)
    with pytest.raises(DataValidationError, match=r"img1_mask.png: mask values must be integers in 0..1, found 0, 128"):
        get_dataset(str(path), "training", 16)


def test_a_non_integer_mask_is_refused_naming_the_file_and_the_values(tmp_path):
    import nibabel as nib

    for n in range(2):
        image = np.zeros((12, 16), np.int16)
        image[3:5, 2:6] = 100 + n
        nib.save(nib.Nifti1Image(image, np.eye(4)), tmp_path / f"img{n}.nii.gz")
        mask = (image > 0).astype(np.float32) * (0.5 if n else 1.0)
        nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / f"img{n}_mask.nii.gz")
    items = [{"image": f"img{n}.nii.gz", "mask": f"img{n}_mask.nii.gz", "label": n} for n in range(2)]
    (tmp_path / "d.json").write_text(json.dumps({"class_names": ["a", "b"], "training": items, "mask_channels": 1}))
    with pytest.raises(
        DataValidationError, match=r"img1_mask.nii.gz: mask values must be integers in 0..1, found 0, 0.5"
    ):
        get_dataset(str(tmp_path / "d.json"), "training", 16)


def test_a_missing_mask_file_is_named(tmp_path, write_png):
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: None})
    with pytest.raises(DataValidationError, match=rf"mask {tmp_path / 'img1_mask.png'}: file not found"):
        get_dataset(str(path), "training", 16)


def test_an_entry_without_a_mask_among_entries_with_masks_is_named(tmp_path, write_png):
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: _binary()})
    datalist = json.loads(path.read_text())
    del datalist["training"][1]["mask"]
    path.write_text(json.dumps(datalist))
    with pytest.raises(DataValidationError, match=r"training\[1\] .*img1.png: entry has no 'mask' while the split's"):
        get_dataset(str(path), "training", 16)


def test_a_bad_mask_found_only_when_reading_still_names_the_file(tmp_path, write_png):
    # validate="none" skips the up-front checks; the transform itself refuses the values
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: _binary() * 3}, mask_channels=1)
    ds = get_dataset(str(path), "training", 16, validate="none")
    with pytest.raises(DataError, match=r"img1_mask.png: mask values must be integers in 0..1, found 0, 3"):
        ds[1]


def test_cli_validate_fails_on_a_bad_mask(tmp_path, write_png, capsys):
    path = _mask_datalist(tmp_path, write_png, {0: _binary(), 1: _binary((16, 14))})
    assert cli.main(["validate", "--datalist", str(path), "--splits", "training"]) == 1
    assert "img1_mask.png has spatial shape (14, 16)" in capsys.readouterr().out
