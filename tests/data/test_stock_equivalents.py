"""The project's preprocessing transforms against MONAI's stock ones (issue 22): equal where MONAI has the same
behaviour, and the differences that keep each of them (their docstrings and comments give the why)."""

import warnings

import numpy as np
import pytest
import torch
from monai.transforms import (
    EnsureChannelFirstd,
    LoadImaged,
    RepeatChanneld,
    ScaleIntensityd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
)
from PIL import Image

from gemix_monai.data.preprocessing import IntensityToTrainingRanged, LoadMedicalImaged, ToChannelsd


@pytest.fixture
def files(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    nifti = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(rng.normal(40, 80, (24, 20)).astype(np.float32), np.eye(4)), nifti)
    grey, rgb, palette = tmp_path / "grey.png", tmp_path / "rgb.png", tmp_path / "palette.png"
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(grey)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(rgb)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).convert("P").save(palette)
    return {"nifti": nifti, "grey": grey, "rgb": rgb, "palette": palette}


def _stock(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = LoadImaged("image", image_only=True, dtype=np.float32)({"image": str(path)})
        return EnsureChannelFirstd("image")(d)["image"]


@pytest.mark.parametrize("kind", ["nifti", "grey", "rgb"])
def test_load_medical_image_returns_what_load_image_and_ensure_channel_first_return(files, kind):
    ours = LoadMedicalImaged("image")({"image": str(files[kind])})["image"]
    stock = _stock(files[kind])
    assert tuple(ours.shape) == tuple(stock.shape) and ours.dtype == stock.dtype == torch.float32
    assert torch.equal(torch.as_tensor(ours), torch.as_tensor(stock))


def test_load_image_reads_a_palette_png_as_its_indices_where_ours_reads_its_colours(files):
    ours = LoadMedicalImaged("image")({"image": str(files["palette"])})["image"]
    stock = _stock(files["palette"])
    colours = np.asarray(Image.open(files["palette"]).convert("RGB"), dtype=np.float32)
    assert ours.shape[0] == 3 and np.array_equal(np.transpose(ours.numpy(), (2, 1, 0)), colours)
    assert stock.shape[0] == 1  # one channel of palette indices: a silently wrong image
    assert ours.meta["source_dtype"] == "uint8" and "source_dtype" not in stock.meta


@pytest.mark.parametrize(
    ("ours", "stock"),
    [
        ({"hu_window": "abdomen"}, {"a_min": -150.0, "a_max": 250.0}),
        ({"intensity": "uint8"}, {"a_min": 0.0, "a_max": 255.0}),
        ({"intensity": "uint16"}, {"a_min": 0.0, "a_max": 65535.0}),
        ({"intensity": (-20.0, 90.0)}, {"a_min": -20.0, "a_max": 90.0}),
    ],
)
def test_fixed_intensity_rules_equal_scale_intensity_ranged(ours, stock):
    image = {"image": torch.randn(1, 16, 16) * 200}
    a = IntensityToTrainingRanged("image", **ours)(image)["image"]
    b = ScaleIntensityRanged("image", **stock, b_min=-1.0, b_max=1.0, clip=True)(image)["image"]
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_the_percentile_rule_equals_scale_intensity_range_percentiles():
    image = {"image": torch.randn(1, 16, 16) * 200}
    a = IntensityToTrainingRanged("image", intensity="percentile")(image)["image"]
    b = ScaleIntensityRangePercentilesd("image", 0.5, 99.5, -1.0, 1.0, clip=True)(image)["image"]
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def test_a_constant_image_becomes_minus_one_where_scale_intensity_returns_minus_its_value():
    image = {"image": torch.full((1, 8, 8), 5.0)}
    ours = IntensityToTrainingRanged("image", intensity="minmax")(image)["image"]
    stock = ScaleIntensityd("image", minv=-1.0, maxv=1.0)(image)["image"]
    assert bool((ours == -1).all()) and bool((torch.as_tensor(stock) == -5).all())


def test_grey_to_channels_is_repeat_channel_and_rgb_becomes_luma_not_three_times_three():
    grey = {"image": torch.rand(1, 8, 8)}
    torch.testing.assert_close(ToChannelsd("image", 3)(grey)["image"], RepeatChanneld("image", 3)(grey)["image"])
    rgb = {"image": torch.rand(3, 8, 8)}
    assert ToChannelsd("image", 1)(rgb)["image"].shape[0] == 1
    assert RepeatChanneld("image", 3)(rgb)["image"].shape[0] == 9


def test_a_sparse_image_whose_percentiles_are_equal_stays_in_the_training_range():
    # 5 bright pixels in 64 x 64 zeros: the 0.5th and 99.5th percentiles are both 0; MONAI's range scaling would only
    # shift the image (values up to 199); the rule scales it by its own min..max instead
    img = torch.zeros(1, 64, 64)
    img[0, :5, 0] = 200.0
    out = IntensityToTrainingRanged(intensity="percentile")({"image": img})["image"]
    assert float(out.min()) == -1.0 and float(out.max()) == 1.0
    assert torch.equal(out[0, :5, 0], torch.ones(5)) and int((out == -1).sum()) == 64 * 64 - 5
