import hashlib
import json

import numpy as np
import pytest

from gemix_monai.data import get_dataset
from gemix_monai.data.phantoms import (
    CLASS_NAMES,
    DEFAULT_TEST_COUNTS,
    DEFAULT_TRAIN_COUNTS,
    DEFAULT_VAL_COUNTS,
    ensure_default_dataset,
    generate_phantom_dataset,
    render_phantom,
    render_phantoms,
    split_counts,
)


def _digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_same_seed_gives_identical_file_bytes(tmp_path, fmt):
    kwargs = dict(image_size=32, counts=(2, 1, 1), seed=3, fmt=fmt, val_counts=(1, 1, 0), test_counts=(0, 1, 1))
    generate_phantom_dataset(tmp_path / "a", **kwargs)
    generate_phantom_dataset(tmp_path / "b", **kwargs)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a.keys() == b.keys()
    assert "manifest.json" in a and "datalist.json" in a
    assert [k for k in a if a[k] != b[k]] == []


def test_different_seeds_give_different_images():
    assert not np.array_equal(render_phantoms([0, 1, 2], 32, seed=0), render_phantoms([0, 1, 2], 32, seed=1))


def test_growing_one_class_keeps_the_other_images():
    small = render_phantoms([0, 1, 2], 32, seed=0)
    grown = render_phantoms([0, 0, 1, 2], 32, seed=0)
    np.testing.assert_array_equal(small[0], grown[0])
    np.testing.assert_array_equal(small[1:], grown[2:])


def test_default_split_counts_follow_the_genmix_training_split():
    assert DEFAULT_TRAIN_COUNTS == (433, 70, 178)
    assert DEFAULT_VAL_COUNTS == DEFAULT_TEST_COUNTS == (87, 14, 36)
    assert split_counts() == {"training": (433, 70, 178), "validation": (87, 14, 36), "test": (87, 14, 36)}


def test_default_dataset_has_the_documented_class_counts(default_phantoms):
    datalist_path, _ = default_phantoms
    datalist = json.loads(datalist_path.read_text())
    assert datalist["class_names"] == list(CLASS_NAMES)
    for split, counts in (
        ("training", DEFAULT_TRAIN_COUNTS),
        ("validation", DEFAULT_VAL_COUNTS),
        ("test", DEFAULT_TEST_COUNTS),
    ):
        labels = [item["label"] for item in datalist[split]]
        assert tuple(np.bincount(labels, minlength=3)) == counts, split
    assert all(item["image"].endswith(".nii.gz") for item in datalist["training"])


def test_get_dataset_without_a_source_uses_the_default_phantoms(default_phantoms):
    _, cache_root = default_phantoms
    ds = get_dataset(split="validation", data_dir=cache_root)
    assert ds.class_names == list(CLASS_NAMES)
    assert ds.hu_window == (400.0, 50.0)  # abdomen
    assert tuple(np.bincount(ds.labels, minlength=3)) == DEFAULT_VAL_COUNTS
    item = ds[0]
    assert tuple(item["image"].shape) == (1, 64, 64)


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_written_files_load_back_to_the_rendered_hu(small_phantoms, fmt):
    from gemix_monai.data import LoadMedicalImaged, load_split

    item = load_split(small_phantoms[fmt], "training")[0]
    loaded = LoadMedicalImaged("image")({"image": item["image"]})["image"]
    expected = np.rint(render_phantoms([item["label"]], 48, seed=7, split=0)[0])
    assert tuple(loaded.shape) == (1, 48, 48)
    # MONAI's order [C, x, y]: the transpose of the rendered rows × columns
    np.testing.assert_array_equal(loaded[0].numpy(), expected.T)


def test_nifti_phantoms_store_int16_hu_with_pixel_spacing(small_phantoms):
    import nibabel as nib

    from gemix_monai.data import load_split

    img = nib.load(load_split(small_phantoms["nifti"], "test")[0]["image"])
    assert img.get_data_dtype() == np.int16
    assert img.header.get_zooms()[:2] == pytest.approx((80 / 48, 80 / 48))
    assert img.header.get_xyzt_units()[0] == "mm"


def test_dicom_phantoms_are_ct_with_rescale_to_hu(small_phantoms):
    import pydicom

    from gemix_monai.data import load_split

    ds = pydicom.dcmread(load_split(small_phantoms["dicom"], "test")[0]["image"])
    assert ds.Modality == "CT"
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)


def _regions(label, seed):
    hu, mask = render_phantom(label, 64, np.random.default_rng(seed), return_mask=True)
    return hu, mask


@pytest.mark.parametrize("label,low,high", [(0, -15, 45), (1, 15, 120), (2, 10, 110)])
def test_lesion_median_hu_lies_in_the_class_range(label, low, high):
    medians = [float(np.median(h[m])) for h, m in (_regions(label, s) for s in range(12)) if m.sum() > 20]
    assert len(medians) >= 10
    assert low <= min(medians) and max(medians) <= high


def test_cysts_are_darker_and_more_homogeneous_than_metastases():
    def stats(label):
        med, iqr = [], []
        for s in range(20):
            h, m = _regions(label, s)
            q25, q50, q75 = np.percentile(h[m], [25, 50, 75])
            med.append(q50)
            iqr.append(q75 - q25)
        return np.mean(med), np.mean(iqr)

    cyst, meta = stats(0), stats(2)
    assert cyst[0] < meta[0] - 20
    assert cyst[1] < meta[1]


def test_hemangiomas_have_bright_nodules_inside_a_hypodense_lesion():
    brighter = 0
    for s in range(20):
        h, m = _regions(1, s)
        liver = np.median(h[~m])
        brighter += np.percentile(h[m], 99) > liver + 20
    assert brighter >= 15


def test_liver_parenchyma_is_around_100_to_130_hu():
    for label in range(3):
        for s in range(5):
            h, m = _regions(label, s)
            assert 80 <= np.median(h[~m]) <= 150


@pytest.mark.parametrize("size", [32, 256])
def test_configurable_image_size(size):
    assert render_phantoms([0, 2], size).shape == (2, size, size)


@pytest.mark.parametrize("size", [31, 257, 64.0])
def test_image_size_outside_32_to_256_is_rejected(size):
    with pytest.raises(ValueError, match="image_size"):
        render_phantoms([0], size)


@pytest.mark.parametrize("counts", [(1, 2), (1, -1, 2), "abc"])
def test_bad_counts_are_rejected(tmp_path, counts):
    with pytest.raises(ValueError, match="counts"):
        generate_phantom_dataset(tmp_path, 32, counts=counts)


def test_unknown_format_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        generate_phantom_dataset(tmp_path, 32, counts=(1, 1, 1), fmt="png")


class TestEnsureDefaultDataset:
    kwargs = dict(image_size=32, counts=(2, 1, 1), seed=0, val_counts=(1, 1, 1), test_counts=(1, 1, 1))

    def test_reuses_a_complete_dataset_with_the_same_parameters(self, tmp_path):
        path = ensure_default_dataset(tmp_path, **self.kwargs)
        before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")}
        assert ensure_default_dataset(tmp_path, **self.kwargs) == path
        assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")} == before

    @pytest.mark.parametrize("damage", ["delete", "corrupt", "no_manifest"])
    def test_regenerates_an_incomplete_or_damaged_dataset(self, tmp_path, damage):
        ensure_default_dataset(tmp_path, **self.kwargs)
        victim = sorted(tmp_path.rglob("*.nii.gz"))[0]
        original = victim.read_bytes()
        if damage == "delete":
            victim.unlink()
        elif damage == "corrupt":
            victim.write_bytes(original[:-10])
        else:
            (tmp_path / "manifest.json").unlink()
        ensure_default_dataset(tmp_path, **self.kwargs)
        assert victim.read_bytes() == original

    def test_regenerates_when_parameters_change(self, tmp_path):
        ensure_default_dataset(tmp_path, **self.kwargs)
        ensure_default_dataset(tmp_path, **{**self.kwargs, "seed": 1})
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert manifest["parameters"]["seed"] == 1
