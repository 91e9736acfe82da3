"""Masks through the data layer: readers, channel rules, orientation, sources (docs/segmentation.md)."""

import csv
import json

import numpy as np
import pytest
import torch

from gemix_monai.data import DataContract, DataError, Preprocessing, check_contract, get_dataset, get_transforms


def _png(path, array):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _nifti(path, rows_cols, dtype=np.int16):
    """Write rows × columns as NIfTI the way the phantoms do (transposed: NIfTI axis 0 is x)."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.asarray(rows_cols, dtype=dtype).T), np.eye(4)), path)
    return path


def _region_picture(rows, cols, value=255):
    """An asymmetric bright rectangle (rows 3..9, cols 2..5) on black, and its mask."""
    picture = np.zeros((rows, cols), np.uint8)
    picture[3:10, 2:6] = value
    return picture


def _datalist(tmp_path, items, **extra):
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"class_names": ["a", "b"], "training": items, **extra}))
    return path


def _pairs(tmp_path, make_mask, shape=(40, 24), suffix=".png"):
    items = []
    for n in range(2):
        picture = _region_picture(*shape)
        distinct = picture.copy()
        distinct[-1, -1 - n] = 40  # images differ (the leakage check refuses identical images with two labels)
        image = _png(tmp_path / f"img{n}.png", distinct)
        mask = make_mask(tmp_path / f"img{n}_mask{suffix}", picture)
        items.append({"image": image.name, "mask": mask.name, "label": n})
    return items


@pytest.mark.parametrize("stored", [1, 255])
def test_png_masks_stored_as_0_1_or_0_255_are_binary(tmp_path, stored):
    items = _pairs(tmp_path, lambda p, pic: _png(p, (pic > 0) * stored))
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 32)
    mask = ds[0]["mask"]
    assert ds.contract.preprocessing.mask_channels == 1
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.float32
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}


def test_nifti_mask_is_read_like_its_image(tmp_path):
    items = _pairs(tmp_path, lambda p, pic: _nifti(p, pic > 0, np.uint8), suffix=".nii.gz")
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 40, intensity="uint8")  # 40 = longest side
    item = ds[0]
    assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
    torch.testing.assert_close(item["mask"][0].as_tensor(), (item["image"][0] > 0).float().as_tensor())


def test_integer_label_map_becomes_one_hot_channels_decided_from_the_data(tmp_path):
    def label_map(path, picture):
        labels = np.zeros(picture.shape, np.uint8)
        labels[3:10, 2:4] = 1
        labels[3:10, 4:6] = 2
        labels[20:30, 10:20] = 3
        return _nifti(path, labels, np.uint8)

    items = _pairs(tmp_path, label_map, suffix=".nii.gz")
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 40)
    mask = ds[0]["mask"]
    assert ds.contract.preprocessing.mask_channels == 3
    assert mask.shape == (3, 40, 40)
    assert float(mask.sum(0).max()) == 1.0  # one-hot: at most one structure per pixel
    # the 40-row side stays 40 px (no resampling): label 3's region, [x, y] = [cols, rows], padded by 8 columns
    assert int(mask[2].sum()) == 10 * 10 and bool(mask[2, 8 + 10 : 8 + 20, 20:30].all())


def test_mask_channels_can_be_given_for_a_label_map_with_labels_absent_from_the_data(tmp_path):
    items = _pairs(tmp_path, lambda p, pic: _nifti(p, pic > 0, np.uint8), suffix=".nii.gz")
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 32, mask_channels=4)
    assert ds[0]["mask"].shape == (4, 32, 32) and ds.contract.preprocessing.mask_channels == 4


@pytest.mark.parametrize("shape", [(32, 32), (40, 24), (24, 40)])
def test_mask_and_image_mark_the_same_pixels_after_the_whole_pipeline(tmp_path, shape):
    items = _pairs(tmp_path, lambda p, pic: _png(p, pic > 0), shape=shape)
    # at the longest side no resampling happens: padding and orientation must agree pixel for pixel
    item = get_dataset(str(_datalist(tmp_path, items)), "training", max(shape), intensity="uint8")[0]
    image, mask = item["image"][0].as_tensor(), item["mask"][0].as_tensor()
    torch.testing.assert_close(mask, (image > 0).float())
    # MONAI's order [x, y] = [cols, rows]: the rectangle spans 4 columns (x) and 7 rows (y)
    xs, ys = torch.nonzero(mask, as_tuple=True)
    assert (int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1) == (4, 7)


@pytest.mark.parametrize("shape", [(32, 32), (40, 24), (24, 40)])
def test_resized_mask_stays_on_its_image_region(tmp_path, shape):
    items = _pairs(tmp_path, lambda p, pic: _png(p, pic > 0), shape=shape)
    item = get_dataset(str(_datalist(tmp_path, items)), "training", max(shape) // 2, intensity="uint8")[0]
    image, mask = item["image"][0].as_tensor(), item["mask"][0].as_tensor()
    assert set(torch.unique(mask).tolist()) == {0.0, 1.0}  # nearest neighbour: no in-between values
    weight = (image > 0).float()  # the bright region as the image shows it after bilinear resizing
    grid = torch.stack(torch.meshgrid(torch.arange(mask.shape[0]), torch.arange(mask.shape[1]), indexing="ij")).float()
    image_centre = (grid * weight).sum((1, 2)) / weight.sum()
    mask_centre = (grid * mask).sum((1, 2)) / mask.sum()
    assert float((image_centre - mask_centre).abs().max()) < 1.0


def test_get_transforms_with_a_mask_key_matches_monai_orientation(tmp_path):
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    picture = _region_picture(30, 18)
    image = _png(tmp_path / "x.png", picture)
    mask = _png(tmp_path / "x_mask.png", picture > 0)
    out = get_transforms(30, keep_aspect=False, mask_key="mask", intensity="uint8")(
        {"image": str(image), "mask": str(mask)}
    )
    # no aspect change on the 30-px side; the 18-px side is stretched: compare the unstretched axis only
    monai = EnsureChannelFirstd("mask")(LoadImaged("mask", image_only=True)({"mask": str(mask)}))["mask"]
    assert tuple(monai.shape) == (1, 18, 30)
    np.testing.assert_array_equal(out["mask"][0].numpy().any(axis=0), monai[0].numpy().any(axis=0))


def test_class_folders_pair_each_image_with_its_stem_mask_file(tmp_path):
    for cls in ("a", "b"):
        for n in range(5):
            picture = _region_picture(16, 16)
            _png(tmp_path / "data" / cls / f"{cls}{n}.png", picture // (n + 1 + 5 * (cls == "b")))
            _png(tmp_path / "data" / cls / f"{cls}{n}_mask.png", picture > 0)
    ds = get_dataset(str(tmp_path / "data"), "training", 16, data_dir=tmp_path / "cache")
    assert len(ds) + len(get_dataset(str(tmp_path / "data"), "test", 16, data_dir=tmp_path / "cache")) < 10
    assert all("_mask" not in it["image"] for it in ds.data)
    assert all(it["mask"].endswith("_mask.png") and it["mask"].startswith(it["image"][:-4]) for it in ds.data)
    assert ds[0]["mask"].shape == (1, 16, 16)


def test_a_mask_file_without_its_image_is_named(tmp_path):
    for cls in ("a", "b"):
        _png(tmp_path / "data" / cls / f"{cls}0.png", _region_picture(16, 16) // (1 + (cls == "b")))
    _png(tmp_path / "data" / "a" / "lost_mask.png", _region_picture(16, 16) > 0)
    with pytest.raises(DataError, match="lost_mask.png: mask file without its image lost"):
        get_dataset(str(tmp_path / "data"), "training", 16, data_dir=tmp_path / "cache")


def test_csv_mask_column(tmp_path):
    rows = []
    for n in range(6):
        picture = _region_picture(16, 16)
        _png(tmp_path / f"i{n}.png", picture // (n + 1))
        _png(tmp_path / f"m{n}.png", picture > 0)
        rows.append({"image": f"i{n}.png", "mask": f"m{n}.png", "label": n % 2, "split": "train"})
    with open(tmp_path / "list.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    ds = get_dataset(str(tmp_path / "list.csv"), "training", 16)
    assert [it["mask"] for it in ds.data] == [str(tmp_path / f"m{n}.png") for n in range(6)]
    assert ds[0]["mask"].shape == (1, 16, 16)


def test_label_mask_is_read_as_mask(tmp_path):
    items = _pairs(tmp_path, lambda p, pic: _png(p, pic > 0))
    items = [{"image": it["image"], "label_mask": it["mask"], "label": it["label"]} for it in items]
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 16)
    assert ds.data[0]["mask"] == str(tmp_path / "img0_mask.png")
    assert ds[0]["mask"].shape == (1, 16, 16)


def test_masks_off_gives_images_only_and_a_contract_without_masks(tmp_path):
    items = _pairs(tmp_path, lambda p, pic: _png(p, pic > 0))
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", 16, masks="off")
    assert "mask" not in ds[0] and ds.contract.preprocessing.mask_channels == 0


def test_masks_on_without_masks_is_an_error(tmp_path):
    items = [
        {"image": _png(tmp_path / f"i{n}.png", _region_picture(16, 16) // (n + 1)).name, "label": n} for n in range(2)
    ]
    with pytest.raises(DataError, match="masks='on' but no entry has a 'mask'"):
        get_dataset(str(_datalist(tmp_path, items)), "training", 16, masks="on")


def test_a_model_contract_without_masks_reads_images_only(tmp_path):
    items = _pairs(tmp_path, lambda p, pic: _png(p, pic > 0))
    old = DataContract(("a", "b"), Preprocessing(image_size=16, intensity="auto"))
    ds = get_dataset(str(_datalist(tmp_path, items)), "training", contract=old)
    assert "mask" not in ds[0] and ds.contract.preprocessing.mask_channels == 0


def test_contract_records_mask_channels_and_reads_older_contracts_as_zero():
    pp = Preprocessing(image_size=32, mask_channels=2)
    assert pp.to_dict()["mask_channels"] == 2
    assert Preprocessing.from_dict(pp.to_dict()) == pp
    older = {k: v for k, v in pp.to_dict().items() if k != "mask_channels"}
    assert Preprocessing.from_dict(older).mask_channels == 0


def test_contract_refuses_different_mask_channel_counts_and_pairs_without_masks():
    def contract(m):
        return DataContract(("a", "b"), Preprocessing(image_size=32, mask_channels=m))

    with pytest.raises(DataError, match="mask_channels: 1 vs 3"):
        check_contract(contract(1), contract(3), "the generator", "the data")
    check_contract(contract(1), contract(0), "the generator", "the data")  # image-only use: compatible
    with pytest.raises(DataError, match="image–mask pairs need masks on both sides: the generator has none"):
        check_contract(contract(0), contract(1), "the generator", "the data", pairs=True)
    check_contract(contract(2), contract(2), "the generator", "the data", pairs=True)


def test_classify_folder_search_skips_masks_beside_their_images(tmp_path):
    from gemix_monai.engines.classifier import find_images

    picture = _region_picture(16, 16)
    for name in ("a.png", "a_mask.png", "b.nii.gz", "lone_mask.png"):
        _png(tmp_path / "scan" / name, picture) if name.endswith(".png") else _nifti(tmp_path / "scan" / name, picture)
    _nifti(tmp_path / "scan" / "b_mask.nii.gz", picture > 0, np.uint8)
    # a *_mask file without its image is an image like any other (nothing says it is a mask)
    assert [p.name for p in find_images(tmp_path / "scan")] == ["a.png", "b.nii.gz", "lone_mask.png"]


@pytest.mark.parametrize(
    "labels,expected",
    [([1], 1), ([0], 1), ([0, 1], 1), ([0, 1, 2], 2), ([0, 2, 1, 3], 3)],
    ids=["all-foreground", "all-empty", "binary", "two", "three"],
)
def test_mask_channels_decided_from_the_labels_found(tmp_path, labels, expected):
    from gemix_monai.data.dataset import decide_mask_channels

    items = []
    for n, value in enumerate(labels):
        items.append(
            {"image": "unused", "mask": str(_nifti(tmp_path / f"m{n}.nii.gz", np.full((4, 4), value), np.uint8))}
        )
    assert decide_mask_channels({"training": items})[0] == expected


@pytest.mark.parametrize("labels,named", [([0, 1, 3], 3), ([0, 12], 12)], ids=["gap", "too-many"])
def test_mask_labels_with_a_gap_or_above_eight_must_be_declared(tmp_path, labels, named):
    from gemix_monai.data.dataset import decide_mask_channels

    items = [
        {"image": "unused", "mask": str(_nifti(tmp_path / f"m{v}.nii.gz", np.full((4, 4), v), np.uint8))}
        for v in labels
    ]
    with pytest.raises(DataError, match=rf"e.g. {named} in .*m{named}.nii.gz.*pass mask_channels="):
        decide_mask_channels({"training": items})


@pytest.mark.parametrize("key", ["mask", "label_mask"])
def test_masks_of_a_datalist_named_by_a_relative_path(tmp_path, monkeypatch, key):
    """MONAI's loader joins existing files to a relative datalist folder itself: the mask must not be joined twice."""
    from pathlib import Path

    from PIL import Image

    from gemix_monai.data.datalist import read_datalist

    ds = tmp_path / "ds"
    (ds / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(ds / "a" / "x.png")
    Image.fromarray(np.eye(8, dtype=np.uint8)).save(ds / "a" / "x_mask.png")
    items = [{"image": "a/x.png", key: "a/x_mask.png", "label": 0}]
    (ds / "datalist.json").write_text(json.dumps({"class_names": ["a", "b"], "training": items}))
    monkeypatch.chdir(tmp_path)
    entry = read_datalist("ds/datalist.json")["training"][0]
    assert key == "mask" or key not in entry
    assert Path(entry["mask"]).resolve() == (ds / "a" / "x_mask.png").resolve()
    assert Path(entry["mask"]).is_file()
