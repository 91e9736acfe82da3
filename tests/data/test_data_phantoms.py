import hashlib
import json

import numpy as np
import pytest
import torch

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


# --------------------------------------------------------------------------------------------
# lesion masks (docs/segmentation.md)
# --------------------------------------------------------------------------------------------
# Recorded from the writer before masks existed (seed 3, 48 px, counts (5, 4, 4), val (2, 1, 1), test (1, 1, 1)):
# experiments on record depend on these images, so adding masks must not change a byte of them. NIfTI files
# are pinned by their decompressed bytes (the gzip stream depends on the zlib build), DICOM files as written.
RECORDED_IMAGE_SHA256 = {
    ("nifti", "training/cyst/cyst_0000.nii.gz"): "d71bbe81acfea1173621042e7040f0adaa76d1b45f41c3c2df9a9a4636835e70",
    (
        "nifti",
        "training/hemangioma/hemangioma_0003.nii.gz",
    ): "5f59efc29c3827d4da8c2f3f13fa0dc3b9f81aa87207940061acdad629cfd21f",
    (
        "nifti",
        "test/metastasis/metastasis_0000.nii.gz",
    ): "b0bc7bf2f5a7064058766dbbc41180fe117ac8a9ad529ec4829005344359b416",
    ("dicom", "training/cyst/cyst_0000.dcm"): "6a7412c00d1d67bb66b7553c06d36a50c86912b40c4935da687867e9296c82b3",
    (
        "dicom",
        "validation/metastasis/metastasis_0000.dcm",
    ): "b658d92ffe7f7e90e5a76cee71a7ca14e753554d8d71865dd6132af315afeccd",
}


@pytest.fixture(scope="module")
def recorded_layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("recorded")
    for fmt in ("nifti", "dicom"):
        generate_phantom_dataset(
            root / fmt, 48, counts=(5, 4, 4), seed=3, fmt=fmt, val_counts=(2, 1, 1), test_counts=(1, 1, 1)
        )
    return root


@pytest.mark.parametrize("fmt,rel", sorted(RECORDED_IMAGE_SHA256))
def test_image_files_are_byte_identical_to_those_written_before_masks(recorded_layout, fmt, rel):
    import gzip

    data = (recorded_layout / fmt / rel).read_bytes()
    data = gzip.decompress(data) if rel.endswith(".gz") else data
    assert hashlib.sha256(data).hexdigest() == RECORDED_IMAGE_SHA256[(fmt, rel)]


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_every_item_has_a_mask_file_beside_its_image(recorded_layout, fmt):
    datalist = json.loads((recorded_layout / fmt / "datalist.json").read_text())
    manifest = json.loads((recorded_layout / fmt / "manifest.json").read_text())
    assert datalist["mask_channels"] == 1
    for split in ("training", "validation", "test"):
        for item in datalist[split]:
            image, mask = item["image"], item["mask"]
            stem = image[: -len(".nii.gz")] if image.endswith(".nii.gz") else image[: -len(".dcm")]
            assert mask == f"{stem}_mask.nii.gz"
            assert (recorded_layout / fmt / mask).is_file() and mask in manifest["files"]


@pytest.mark.parametrize("fmt", ["nifti", "dicom"])
def test_mask_files_equal_the_rendered_masks_with_the_image_geometry(recorded_layout, fmt):
    import nibabel as nib

    _, masks = render_phantoms([0] * 5 + [1] * 4 + [2] * 4, 48, seed=3, split=0, return_masks=True)
    for n, (name, k) in enumerate([("cyst", k) for k in range(5)] + [("hemangioma", k) for k in range(4)]):
        img = nib.load(recorded_layout / fmt / "training" / name / f"{name}_{k:04d}_mask.nii.gz")
        assert img.get_data_dtype() == np.uint8
        np.testing.assert_allclose(np.diag(img.affine)[:2], [80.0 / 48, 80.0 / 48])
        # NIfTI stores [x, y] = the transpose of the rendered rows × columns, as for the images
        np.testing.assert_array_equal(np.asarray(img.dataobj), masks[n].T.astype(np.uint8))


def test_render_phantoms_masks_are_render_phantom_return_mask_and_leave_images_alone():
    labels = [2, 0, 1, 2]
    images, masks = render_phantoms(labels, 32, seed=5, split=1, return_masks=True)
    np.testing.assert_array_equal(images, render_phantoms(labels, 32, seed=5, split=1))
    seen = [0, 0, 0]
    for n, lab in enumerate(labels):
        rng = np.random.default_rng(np.random.SeedSequence([5, 1, lab, seen[lab]]))
        seen[lab] += 1
        hu, mask = render_phantom(lab, 32, rng, return_mask=True)
        np.testing.assert_array_equal(images[n], hu)
        np.testing.assert_array_equal(masks[n], mask)
        assert mask.any()


def test_dataset_items_carry_the_mask_in_the_image_orientation(recorded_layout):
    ds = get_dataset(str(recorded_layout / "nifti" / "datalist.json"), "training", 48)
    _, masks = render_phantoms([0] * 5 + [1] * 4 + [2] * 4, 48, seed=3, split=0, return_masks=True)
    assert ds.contract.preprocessing.mask_channels == 1
    for n in range(len(ds)):
        item = ds[n]
        assert item["mask"].dtype == item["image"].dtype == torch.float32
        np.testing.assert_array_equal(np.asarray(item["mask"][0]), masks[n].T.astype(np.float32))


def test_a_cached_dataset_written_without_masks_is_regenerated(tmp_path):
    kwargs = dict(image_size=32, counts=(2, 1, 1), seed=0, val_counts=(1, 1, 1), test_counts=(1, 1, 1))
    ensure_default_dataset(tmp_path, **kwargs)
    # what the writer before masks left: no mask files, no mask keys, no layout version
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["parameters"]["layout_version"]
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.endswith("_mask.nii.gz")}
    for p in tmp_path.rglob("*_mask.nii.gz"):
        p.unlink()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    ensure_default_dataset(tmp_path, **kwargs)
    assert len(list(tmp_path.rglob("*_mask.nii.gz"))) == 4 + 3 + 3
    assert json.loads((tmp_path / "manifest.json").read_text())["parameters"]["layout_version"] == 2
