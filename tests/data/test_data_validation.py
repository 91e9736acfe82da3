"""Every kind of bad input fails up front, with the file or row named — or is skipped and reported."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from gemix_monai.data import DataError, DataValidationError, get_dataset, validate_items, write_datalist


@pytest.fixture
def truncated_dicom(tmp_path, ct_small):
    data = ct_small.read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) - 5000])  # cut inside the pixel data
    return path


@pytest.fixture
def header_only_dicom(tmp_path, ct_small):
    path = tmp_path / "cut_header.dcm"
    path.write_bytes(ct_small.read_bytes()[:300])  # cut inside the header
    return path


@pytest.fixture
def not_a_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("this is a text file, not DICOM\n")
    return path


def _problem(items, **kwargs):
    with pytest.raises(DataValidationError) as info:
        validate_items(items, num_classes=kwargs.pop("num_classes", 3), **kwargs)
    return info.value


def test_valid_real_files_pass(ct_small, small_phantoms):
    from gemix_monai.data import load_split

    items = [{"image": str(ct_small), "label": 0}] + load_split(small_phantoms["dicom"], "training")
    good, problems = validate_items(items, num_classes=3)
    assert len(good) == len(items) and problems == []


def test_missing_file_is_named(tmp_path):
    err = _problem([{"image": str(tmp_path / "gone.nii.gz"), "label": 0}])
    assert err.problems == [(f"training[0] {tmp_path / 'gone.nii.gz'}", "file not found")]


def test_truncated_dicom_is_named(truncated_dicom):
    err = _problem([{"image": str(truncated_dicom), "label": 0}])
    ((where, reason),) = err.problems
    assert "truncated.dcm" in where and "truncated" in reason.lower()


def test_dicom_cut_inside_its_header_is_named(header_only_dicom):
    err = _problem([{"image": str(header_only_dicom), "label": 0}])
    ((where, reason),) = err.problems
    assert "cut_header.dcm" in where and (
        "truncated" in reason.lower() or "unreadable" in reason.lower() or "pixel data" in reason
    )


def test_text_file_named_dcm_is_reported_as_not_dicom(not_a_dicom):
    ((where, reason),) = _problem([{"image": str(not_a_dicom), "label": 0}]).problems
    assert "notes.dcm" in where and "DICOM" in reason


def test_truncated_uncompressed_nifti_is_named(tmp_path):
    import nibabel as nib

    path = tmp_path / "slice.nii"
    nib.save(nib.Nifti1Image(np.zeros((32, 32), np.int16), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:-100])
    ((where, reason),) = _problem([{"image": str(path), "label": 0}]).problems
    assert "slice.nii" in where and "truncated NIfTI" in reason


def test_volume_where_a_slice_was_expected_is_named(nibabel_data):
    ((where, reason),) = _problem([{"image": str(nibabel_data / "anatomical.nii"), "label": 0}]).problems
    assert "anatomical.nii" in where and "volume" in reason and "slice" in reason


def test_volume_is_accepted_when_a_slice_will_be_chosen(nibabel_data):
    good, _ = validate_items(
        [{"image": str(nibabel_data / "anatomical.nii"), "label": 0}], num_classes=1, allow_volumes=True
    )
    assert len(good) == 1


def test_4d_nifti_is_rejected(nibabel_data):
    ((_, reason),) = _problem(
        [{"image": str(nibabel_data / "example4d.nii.gz"), "label": 0}], allow_volumes=True
    ).problems
    assert "4-D" in reason


@pytest.mark.parametrize(
    "label,expected",
    [
        (3, "out of range [0, 3)"),
        (-1, "out of range"),
        (True, "integer"),
        (1.5, "integer"),
        ("cyst", "integer"),
        (None, "integer"),
    ],
)
def test_bad_labels_are_named(ct_small, label, expected):
    ((where, reason),) = _problem([{"image": str(ct_small), "label": label}]).problems
    assert "training[0]" in where and expected in reason


def test_entry_without_a_label_is_named(ct_small):
    ((where, reason),) = _problem([{"image": str(ct_small)}]).problems
    assert "no 'label' key" in reason


def test_empty_split_is_an_error():
    err = _problem([], split="validation")
    assert err.problems == [("validation", "split is empty: no images")]


def test_all_problems_are_listed_at_once(tmp_path, ct_small, truncated_dicom):
    items = [
        {"image": str(ct_small), "label": 0},
        {"image": str(tmp_path / "a.png"), "label": 0},
        {"image": str(truncated_dicom), "label": 1},
        {"image": str(ct_small), "label": 9},
    ]
    err = _problem(items)
    assert [w.split()[0] for w, _ in err.problems] == ["training[1]", "training[2]", "training[3]"]
    assert "3 bad entries" in str(err)


def test_skip_mode_drops_bad_entries_and_reports_them(tmp_path, ct_small, truncated_dicom):
    items = [{"image": str(ct_small), "label": 0}, {"image": str(truncated_dicom), "label": 1}]
    with pytest.warns(UserWarning, match="truncated.dcm"):
        good, problems = validate_items(items, num_classes=3, on_error="skip")
    assert [g["image"] for g in good] == [str(ct_small)]
    assert len(problems) == 1 and "truncated.dcm" in problems[0][0]


def test_skip_mode_still_fails_when_nothing_is_left(truncated_dicom):
    with pytest.raises(DataValidationError, match="no valid entries left"), pytest.warns(UserWarning):
        validate_items([{"image": str(truncated_dicom), "label": 0}], num_classes=1, on_error="skip")


def test_deep_validation_decodes_the_pixels(tmp_path, write_png):
    path = write_png(tmp_path / "ok.png", np.zeros((8, 8), np.uint8))
    good, _ = validate_items([{"image": str(path), "label": 0}], num_classes=1, deep=True)
    assert len(good) == 1


def test_get_dataset_fails_before_training_and_names_the_file(tmp_path, small_phantoms):
    from gemix_monai.data import read_datalist

    root = tmp_path / "copy"
    shutil.copytree(small_phantoms["nifti"].parent, root)
    datalist = read_datalist(root / "datalist.json")
    victim = datalist["training"][2]["image"]  # absolute, inside the copy
    Path(victim).unlink()
    with pytest.raises(DataValidationError, match=Path(victim).name):
        get_dataset(str(root / "datalist.json"), "training", 48)
    ds = get_dataset(str(root / "datalist.json"), "training", 48, on_error="skip")
    assert len(ds) == len(datalist["training"]) - 1
    assert victim in ds.bad_items[0][0]


def test_get_dataset_rejects_unknown_sources(tmp_path):
    (tmp_path / "data.h5").write_bytes(b"x")
    with pytest.raises(DataError, match="expected 'phantom', a folder"):
        get_dataset(str(tmp_path / "data.h5"))
    with pytest.raises(DataError, match="does not exist.*missing.json"):
        get_dataset(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match="does not exist.*no_such_folder"):
        get_dataset(str(tmp_path / "no_such_folder"))


def test_datalist_with_label_out_of_range_fails_naming_the_entry(tmp_path, ct_small):
    path = write_datalist(
        {"class_names": ["a", "b"], "training": [{"image": str(ct_small), "label": 2}]}, tmp_path / "dl.json"
    )
    with pytest.raises(DataValidationError, match=r"training\[0\].*CT_small.dcm: label 2 out of range \[0, 2\)"):
        get_dataset(str(path))
