"""The pair audit: mask statistics by hand, the image audit beside mask realism and image-mask consistency, errors."""

import json
import math

import numpy as np
import pytest
import torch
from _helpers import train_two_step_generator

from gemix_monai.data.masks import stack_image_mask
from gemix_monai.engines.segmenter import evaluate_segmenter, train_segmenter
from gemix_monai.experiments.audit.pairs import _ks, mask_statistics, run_pair_audit

COUNTS = {"counts": [6, 5, 5], "val_counts": [3, 3, 3], "test_counts": [2, 2, 2]}
FAST = {"feature_epochs": 1, "kid_subsets": 5}


@pytest.fixture(scope="module")
def datalist(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(tmp_path_factory.mktemp("phantoms"), image_size=32, seed=0, **COUNTS)


@pytest.fixture(scope="module")
def phantoms(datalist):
    from gemix_monai.data import get_dataset

    return get_dataset(datalist, "training", 32), get_dataset(datalist, "validation", 32)


@pytest.fixture(scope="module")
def segmenter(phantoms, tmp_path_factory):
    train, _ = phantoms
    res = train_segmenter(train, train, tmp_path_factory.mktemp("seg"), epochs=1, batch_size=8, device="cpu")
    return res.checkpoint


class CopyingPairGenerator:
    """Returns the stacked training pairs of the requested classes, in order: a generator that memorised them."""

    z_dim = 8

    def __init__(self, train):
        self.items = [train[i] for i in range(len(train))]
        self.class_names = list(train.class_names)
        self.c_dim, self.img_channels, self.img_resolution = len(self.class_names), 2, 32
        self.returned = []

    def generate(self, soft_labels, seed=None, **_):
        out, seen = [], {}
        for c in torch.as_tensor(soft_labels).argmax(1).tolist():
            pool = [i for i, it in enumerate(self.items) if int(it["label"]) == c]
            i = pool[seen.get(c, 0) % len(pool)]
            seen[c] = seen.get(c, 0) + 1
            self.returned.append(i)
            out.append(
                stack_image_mask(torch.as_tensor(self.items[i]["image"]), torch.as_tensor(self.items[i]["mask"]))
            )
        return torch.stack(out)


def test_mask_statistics_equal_the_hand_computation():
    masks = torch.zeros(3, 1, 8, 8)
    masks[0, 0, 1:3, 1:3] = 1  # a 2x2 square: area 4, crack perimeter 8
    masks[1, 0, 1:3, 1:3] = 1
    masks[1, 0, 5:7, 5:7] = 1  # two separate squares
    stats = mask_statistics(masks)
    assert stats["area_fraction"][:, 0].tolist() == [4 / 64, 8 / 64, 0.0]
    assert stats["perimeter"][:, 0].tolist() == [8.0, 16.0, 0.0]
    assert stats["compactness"][0, 0] == pytest.approx(4 * math.pi * 4 / 64)
    assert math.isnan(stats["compactness"][2, 0])
    assert stats["components"][:, 0].tolist() == [1.0, 2.0, 0.0]
    assert stats["empty"][:, 0].tolist() == [0.0, 0.0, 1.0]


def test_diagonal_neighbours_are_one_component():
    masks = torch.zeros(1, 1, 4, 4)
    masks[0, 0, 0, 0] = masks[0, 0, 1, 1] = 1
    assert mask_statistics(masks)["components"][0, 0] == 1.0


def test_ks_of_a_set_against_itself_is_zero_and_undefined_values_are_left_out():
    values = np.array([0.1, 0.2, 0.3, np.nan])
    res = _ks(values, values)
    assert res["ks"] == 0.0 and res["n"] == 3


def test_soft_masks_are_refused_by_the_statistics():
    with pytest.raises(ValueError, match="masks must be binary"):
        mask_statistics(torch.full((1, 1, 4, 4), 0.5))


def test_a_memorising_generator_scores_the_segmenters_real_dice_and_the_hand_computed_mask_ks(
    phantoms, segmenter, tmp_path
):
    train, heldout = phantoms
    gen = CopyingPairGenerator(train)
    report = run_pair_audit(gen, train, heldout, tmp_path, segmenter=segmenter, seed=0, **FAST)
    copied = [train[i] for i in gen.returned]
    assert report["consistency"]["synthetic"] == evaluate_segmenter(segmenter, copied)
    assert report["consistency"]["real_floor"] == evaluate_segmenter(segmenter, heldout)
    area = report["mask_realism"]["structure_1"]["area_fraction"]
    expected = _ks(
        mask_statistics(torch.stack([torch.as_tensor(it["mask"]) for it in copied]))["area_fraction"][:, 0],
        mask_statistics(torch.stack([torch.as_tensor(train[i]["mask"]) for i in range(len(train))]))["area_fraction"][
            :, 0
        ],
    )
    assert area["synthetic"]["ks"] == pytest.approx(expected["ks"])
    assert report["images"]["fd"]["synthetic"] is not None
    for name in ("pairs.json", "pairs.md", "images/audit.json", "images/audit.md"):
        assert (tmp_path / name).is_file(), name
    assert json.loads((tmp_path / "pairs.json").read_text())["format"] == "gemix-pair-audit/1"
    md = (tmp_path / "pairs.md").read_text()
    assert "## Image–mask consistency" in md and "compactness" in md


def test_without_a_segmenter_the_audit_trains_one_on_the_training_pairs(phantoms, tmp_path):
    train, heldout = phantoms
    report = run_pair_audit(CopyingPairGenerator(train), train, heldout, tmp_path, segmenter_epochs=1, **FAST)
    assert (tmp_path / "segmenter" / "models" / "model.pt").is_file()
    assert "trained by this audit for 1 epochs" in report["segmenter"]


def test_a_generator_without_mask_channels_is_refused(phantoms, tmp_path):
    from gemix_monai.networks import Generator, get_preset

    train, heldout = phantoms
    images_only = Generator(c_dim=3, class_names=list(train.class_names), **get_preset("tiny")["G"])
    with pytest.raises(ValueError, match=r"makes 1 channel\(s\).+1 image \+ 1 mask channel\(s\)"):
        run_pair_audit(images_only, train, heldout, tmp_path, **FAST)


def test_cli_refuses_a_segmenter_for_an_images_only_generator(phantoms, tmp_path, capsys):
    from gemix_monai import cli
    from gemix_monai.networks import Generator, get_preset

    train, _ = phantoms
    path = Generator(c_dim=3, class_names=list(train.class_names), **get_preset("tiny")["G"]).save_checkpoint(
        tmp_path / "g.pt"
    )
    rc = cli.main(["audit", "--generator", str(path), "--out", str(tmp_path / "a"), "--segmenter", "x.pt"])
    assert rc == 2 and "--segmenter applies to generators of image-mask pairs" in capsys.readouterr().err


def test_cli_audit_of_a_pair_generator_writes_the_pair_audit(datalist, phantoms, segmenter, tmp_path, capsys):
    """`gemix-monai audit` on a generator trained on pairs (two steps): the pair audit, with the given segmenter."""
    from gemix_monai import cli

    train, _ = phantoms
    path = train_two_step_generator(train, tmp_path / "gan")
    out = tmp_path / "audit"
    args = ["audit", "--generator", str(path), "--datalist", str(datalist), "--out", str(out)]
    assert cli.main(args + ["--segmenter", str(segmenter), "--num-per-class", "2"]) == 0
    report = json.loads((out / "pairs.json").read_text())
    assert report["mask_channels"] == 1 and report["settings"]["num_per_class"] == [2, 2, 2]
    assert report["consistency"]["synthetic"]["num_cases"] == 6
    assert "seg Dice" in capsys.readouterr().out
