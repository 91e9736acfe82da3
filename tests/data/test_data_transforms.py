import numpy as np
import pytest
import torch

from gemix_monai.data import (
    HU_WINDOWS,
    DataError,
    LoadMedicalImaged,
    NotASliceError,
    get_transforms,
    resolve_hu_window,
    to_hu,
    to_uint8,
)


def test_dicom_loads_in_hu_via_rescale_slope_and_intercept(ct_small):
    import pydicom

    ds = pydicom.dcmread(ct_small)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    img = LoadMedicalImaged("image")({"image": str(ct_small)})["image"]
    assert float(ds.RescaleIntercept) == -1024.0
    assert tuple(img.shape) == (1, 128, 128)
    # MONAI order: image[0] is [x, y], the transpose of pydicom's rows × columns pixel_array
    np.testing.assert_array_equal(img[0].numpy(), expected.T)


def test_ct_slice_becomes_the_training_stream(ct_small):
    out = get_transforms(64, hu_window="abdomen")({"image": str(ct_small), "label": 2})
    assert tuple(out["image"].shape) == (1, 64, 64)
    assert out["image"].dtype == torch.float32
    assert -1.0 <= float(out["image"].min()) and float(out["image"].max()) <= 1.0
    assert out["label"] == 2 and isinstance(out["label"], int)


@pytest.mark.parametrize("name,window", [("abdomen", (400.0, 50.0)), ("lung", (1500.0, -600.0))])
def test_window_presets(name, window):
    assert resolve_hu_window(name) == window == HU_WINDOWS[name]


@pytest.mark.parametrize("window", ["abdomen", "lung", (80, 40), (2000, 300)])
def test_window_maps_its_edges_to_minus_one_and_one_and_level_to_zero(window):
    width, level = resolve_hu_window(window)
    hu = torch.tensor([[[level - width / 2, level, level + width / 2, level - width, level + width]]])
    from gemix_monai.data import IntensityToTrainingRanged

    out = IntensityToTrainingRanged("image", hu_window=window)({"image": hu})["image"]
    np.testing.assert_allclose(out[0, 0].numpy(), [-1, 0, 1, -1, 1], atol=1e-6)


@pytest.mark.parametrize("window", ["abdomen", "lung", (350, 40)])
def test_to_hu_inverts_windowing_inside_the_window(window):
    from gemix_monai.data import IntensityToTrainingRanged

    width, level = resolve_hu_window(window)
    hu = torch.linspace(level - width / 2, level + width / 2, 101).view(1, 1, -1)
    scaled = IntensityToTrainingRanged("image", hu_window=window)({"image": hu})["image"]
    torch.testing.assert_close(to_hu(scaled, window), hu, atol=1e-3, rtol=0)


def test_to_uint8_maps_the_training_range_onto_0_to_255():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.5, -3.0])
    assert to_uint8(x).tolist() == [0, 64, 128, 255, 255, 0]
    assert to_uint8(x.numpy()).dtype == np.uint8


@pytest.mark.parametrize("bad", ["soft-tissue", (0, 40), (-10, 40), "abc", 3])
def test_unknown_or_invalid_window_is_rejected(bad):
    with pytest.raises(ValueError, match="hu_window"):
        resolve_hu_window(bad)


def test_png_keeps_its_orientation_and_aspect(tmp_path, write_png):
    arr = np.zeros((20, 40), np.uint8)
    arr[:, :20] = 255  # left half white
    path = write_png(tmp_path / "x.png", arr)
    out = get_transforms(16, hu_window=None)({"image": str(path), "label": 0})["image"][0]
    assert tuple(out.shape) == (16, 16)
    # MONAI order [x, y]: 40 columns → 16 along x, 20 rows → 8 along y, padded with black (-1) above and below
    assert float(out[:, :4].max()) == -1.0 and float(out[:, -4:].max()) == -1.0
    assert float(out[:8, 4:12].mean()) > 0.8 and float(out[8:, 4:12].mean()) < -0.8


def test_uint8_png_is_scaled_by_255_not_min_max(tmp_path, write_png):
    path = write_png(tmp_path / "grey.png", np.full((8, 8), 51, np.uint8))
    out = get_transforms(8, hu_window=None)({"image": str(path), "label": 0})["image"]
    torch.testing.assert_close(out, torch.full((1, 8, 8), 51 / 255 * 2 - 1))


def test_rgb_png_is_converted_to_grey_by_luma(tmp_path, write_png):
    arr = np.zeros((8, 8, 3), np.uint8)
    arr[..., 1] = 255  # pure green
    path = write_png(tmp_path / "rgb.png", arr)
    out = get_transforms(8, hu_window=None, channels=1)({"image": str(path), "label": 0})["image"]
    torch.testing.assert_close(out, torch.full((1, 8, 8), 0.587 * 2 - 1), atol=1e-5, rtol=0)


def test_grey_can_be_repeated_to_three_channels(ct_small):
    out = get_transforms(32, channels=3)({"image": str(ct_small), "label": 0})["image"]
    assert tuple(out.shape) == (3, 32, 32)
    torch.testing.assert_close(out[0], out[2])


def test_3d_nifti_volume_without_a_slice_choice_raises_naming_the_file(nibabel_data):
    path = nibabel_data / "anatomical.nii"  # 33 × 41 × 25
    with pytest.raises(NotASliceError, match="anatomical.nii.*volume.*slice_index"):
        get_transforms(32, hu_window=None)({"image": str(path), "label": 0})


def test_slice_by_index_takes_that_slice_in_monai_order(nibabel_data):
    import nibabel as nib

    path = nibabel_data / "anatomical.nii"
    volume = np.asanyarray(nib.load(path).dataobj).astype(np.float32)
    out = LoadMedicalImaged("image")({"image": str(path)})
    from gemix_monai.data import ExtractSliced

    sliced = ExtractSliced("image", slice_index=12)(out)["image"]
    assert tuple(sliced.shape) == (1, 33, 41)  # [x, y] exactly as stored (MONAI's order)
    np.testing.assert_array_equal(sliced[0].numpy(), volume[:, :, 12])


def test_slice_by_largest_lesion_mask(tmp_path, nibabel_data):
    import nibabel as nib

    image = nibabel_data / "anatomical.nii"
    shape = nib.load(image).shape
    mask = np.zeros(shape, np.uint8)
    mask[5:10, 5:10, 3] = 1
    mask[2:20, 2:20, 17] = 1  # the largest lesion
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, np.eye(4)), mask_path)
    t = get_transforms(16, hu_window=None, slice_mask_key="lesion")
    out = t({"image": str(image), "lesion": str(mask_path), "label": 0})
    assert tuple(out["image"].shape) == (1, 16, 16)
    assert out["image"].meta["slice_index"] == 17


def test_slice_index_out_of_range_names_the_file(nibabel_data):
    with pytest.raises(DataError, match="anatomical.nii.*slice_index 40 out of range"):
        get_transforms(16, hu_window=None, slice_index=40)({"image": str(nibabel_data / "anatomical.nii"), "label": 0})


def test_single_slice_volume_is_accepted_as_a_slice(tmp_path):
    import nibabel as nib

    path = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(80, dtype=np.int16).reshape(8, 10, 1), np.eye(4)), path)
    out = get_transforms(8, hu_window=(100, 50))({"image": str(path), "label": 0})["image"]
    assert tuple(out.shape) == (1, 8, 8)


def test_missing_file_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dcm"):
        get_transforms(16)({"image": str(tmp_path / "nope.dcm"), "label": 0})


def test_unsupported_suffix_raises_naming_it(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"0")
    with pytest.raises(DataError, match="scan.xyz.*unsupported image suffix"):
        get_transforms(16)({"image": str(path), "label": 0})


@pytest.mark.parametrize("label", [3, -1, 1.5, "cyst"])
def test_label_out_of_range_or_not_an_index_raises_naming_the_file(ct_small, label):
    with pytest.raises(DataError, match="CT_small.dcm.*label"):
        get_transforms(16, num_classes=3)({"image": str(ct_small), "label": label})


def test_in_memory_arrays_use_the_same_chain():
    arr = np.full((1, 10, 10), 255, np.uint8)
    out = get_transforms(16, hu_window=None)({"image": arr, "label": 1})
    torch.testing.assert_close(out["image"], torch.ones(1, 16, 16))
