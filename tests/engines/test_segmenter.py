"""Segmenter training/evaluation: scores equal MONAI's, every strategy runs on a tiny budget, bad input is refused."""

import json

import numpy as np
import pytest
import torch
from _helpers import small_generator
from monai.data import Dataset
from monai.metrics import compute_dice, compute_hausdorff_distance

from gemix_monai.data.masks import stack_image_mask
from gemix_monai.engines.segmenter import (
    NOT_FOR_MASKS,
    SEGMENTATION_STRATEGIES,
    SEGMENTER_INFO_NAME,
    BinarisedMaskGenerator,
    SegmentationPrepareBatch,
    build_segmentation_loss,
    build_segmentation_strategy,
    check_pair_generator,
    evaluate_segmenter,
    load_segmenter,
    segmentation_scores,
    summarise_scores,
    train_segmenter,
)
from gemix_monai.generators import ImageMaskGenerator

NAMES = ["cyst", "hemangioma", "metastasis"]
SIZE = 16


def disc(cy, cx, r, size=SIZE):
    y, x = np.mgrid[:size, :size]
    return torch.tensor(((y - cy) ** 2 + (x - cx) ** 2 <= r * r).astype(np.float32))


def make_pairs(n, seed, mask_channels=1):
    """A bright disc (the lesion) on noise; the mask marks the disc. ``mask_channels=2``: a second, separate disc."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        label = i % 3
        masks = [disc(rng.integers(5, 11), rng.integers(5, 11), 2 + label)]
        if mask_channels == 2:
            second = disc(2, 2, 1) * (1 - masks[0])
            masks.append(second)
        mask = torch.stack(masks)
        image = (
            0.2 * torch.tensor(rng.standard_normal((1, SIZE, SIZE)), dtype=torch.float32) + mask.sum(0) - 0.5
        ).clamp(-1, 1)
        items.append({"image": image, "mask": mask, "label": label})
    return items


def pair_generator(mask_channels=1, channels=None):
    channels = channels if channels is not None else 1 + mask_channels
    return small_generator(
        resolution=SIZE, channels=channels, w_dim=8, channel_base=64, channel_max=8, class_names=NAMES
    )


@pytest.fixture(scope="module")
def generator_checkpoint(tmp_path_factory):
    return pair_generator().save_checkpoint(tmp_path_factory.mktemp("gen") / "generator.pt")


# ---------------------------------------------------------------------------------------------- scores


def test_dice_of_a_tiny_example_equals_the_hand_computation():
    truth = torch.zeros(1, 1, 4, 4)
    truth[0, 0, :2, :2] = 1  # 4 pixels
    pred = torch.zeros(1, 1, 4, 4)
    pred[0, 0, :2, :3] = 1  # 6 pixels, 4 of them overlap
    scores = segmentation_scores(pred, truth)
    assert scores["dice"].item() == pytest.approx(2 * 4 / (4 + 6))


def test_scores_equal_monai_functions_on_hand_made_masks():
    truth = torch.stack([disc(8, 8, 4)[None], disc(5, 9, 3)[None], disc(10, 4, 2)[None]])
    pred = torch.stack([disc(8, 9, 4)[None], disc(5, 9, 2)[None], disc(4, 12, 2)[None]])
    scores = segmentation_scores(pred, truth)
    expected_dice = compute_dice(pred, truth, include_background=True)
    expected_hd = compute_hausdorff_distance(pred, truth, include_background=True, percentile=95)
    torch.testing.assert_close(scores["dice"], expected_dice.double())
    torch.testing.assert_close(scores["hd95"], expected_hd.double())
    summary = summarise_scores(scores)
    assert summary["dice"] == pytest.approx(float(expected_dice.mean()))
    assert summary["hd95"] == pytest.approx(float(expected_hd.mean()))
    assert summary["dice_cases"] == summary["hd95_cases"] == 3


def test_empty_masks_are_excluded_and_counted_never_averaged_as_nan():
    truth = torch.stack([disc(8, 8, 3)[None], torch.zeros(1, SIZE, SIZE), disc(8, 8, 3)[None]])
    pred = torch.stack([disc(8, 8, 3)[None], disc(2, 2, 1)[None], torch.zeros(1, SIZE, SIZE)])
    summary = summarise_scores(segmentation_scores(pred, truth))
    # image 0 perfect; image 1 empty truth with a false alarm (no Dice, no HD95); image 2 missed (Dice 0, no HD95)
    assert summary["dice"] == pytest.approx(0.5)
    assert summary["dice_cases"] == 2 and summary["dice_excluded_empty_truth"] == 1
    assert summary["empty_truth_false_positive"] == 1
    assert summary["hd95"] == pytest.approx(0.0)
    assert summary["hd95_cases"] == 1
    assert summary["hd95_excluded_empty_truth"] == 1 and summary["hd95_excluded_empty_prediction"] == 1


def test_prediction_and_truth_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match=r"prediction \(1, 1, 8, 8\) and truth \(1, 2, 8, 8\)"):
        segmentation_scores(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 8))


def test_soft_predictions_are_refused_by_the_scores():
    with pytest.raises(ValueError, match="prediction must be binary"):
        segmentation_scores(torch.full((1, 1, 8, 8), 0.7), torch.zeros(1, 1, 8, 8))


# ---------------------------------------------------------------------------------------------- loss, batches


@pytest.mark.parametrize("mask_channels", [1, 2])
def test_dice_ce_loss_takes_soft_targets_and_is_lowest_at_them(mask_channels):
    """GenMix targets are soft: the loss must accept them and prefer logits that reproduce them."""
    loss = build_segmentation_loss(mask_channels)
    out = mask_channels if mask_channels == 1 else mask_channels + 1
    target = torch.softmax(torch.randn(2, out, 8, 8), dim=1) if out > 1 else torch.rand(2, 1, 8, 8)
    matching = torch.log(target.clamp_min(1e-6)) if out > 1 else torch.logit(target.clamp(1e-6, 1 - 1e-6))
    value = loss(matching, target)
    assert torch.isfinite(value)
    assert float(value) < float(loss(torch.zeros_like(matching), target))


def test_prepare_batch_splits_stacks_and_genmix_gives_soft_masks():
    items = make_pairs(4, 0)
    stacked = torch.stack([stack_image_mask(it["image"], it["mask"]) for it in items])
    plain = SegmentationPrepareBatch(1, 3)
    image, target = plain({"image": stacked, "label": torch.tensor([0, 1, 2, 0])})
    torch.testing.assert_close(image, torch.stack([it["image"] for it in items]))
    torch.testing.assert_close(target, torch.stack([it["mask"] for it in items]))

    def half_blend(d):  # a stand-in for GenMixd: lambda 0.5 with an all-empty partner mask
        x = d["image"].clone()
        x[:, 1:] = 0.5 * (x[:, 1:] + 1) - 1
        return {**d, "image": x}

    _, soft = SegmentationPrepareBatch(1, 3, half_blend)({"image": stacked, "label": torch.tensor([0, 1, 2, 0])})
    assert set(torch.unique(soft).tolist()) == {0.0, 0.5}


def test_softmax_targets_carry_a_background_channel():
    items = make_pairs(2, 0, mask_channels=2)
    batch = {"image": torch.stack([it["image"] for it in items]), "mask": torch.stack([it["mask"] for it in items])}
    _, target = SegmentationPrepareBatch(2, stacked=False)(batch)
    assert target.shape == (2, 3, SIZE, SIZE)
    torch.testing.assert_close(target.sum(1), torch.ones(2, SIZE, SIZE))


def test_binarised_generator_gives_binary_masks():
    g = BinarisedMaskGenerator(pair_generator(), 1)
    out = g.generate(torch.eye(3), z=torch.randn(3, 8), noise_mode="const")
    assert out.shape == (3, 2, SIZE, SIZE)
    assert set(torch.unique(out[:, 1]).tolist()) <= {-1.0, 1.0}


# ---------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("strategy,num_items", [("real", 12), ("real+synthetic", 18), ("genmix", 12), ("gemix", 18)])
def test_every_strategy_trains_on_a_tiny_budget(strategy, num_items, generator_checkpoint, tmp_path):
    res = train_segmenter(
        Dataset(make_pairs(12, 0)),
        Dataset(make_pairs(6, 1)),
        tmp_path,
        strategy=strategy,
        generator_checkpoint=None if strategy == "real" else generator_checkpoint,
        strategy_kwargs={} if strategy in ("real", "genmix") else {"synthetic_ratio": 0.5},
        class_names=NAMES,
        epochs=2,
        batch_size=6,
        device="cpu",
    )
    assert res.num_train_items == num_items
    assert res.checkpoint.is_file() and res.best_epoch in (1, 2)
    info = json.loads((res.checkpoint.with_name(SEGMENTER_INFO_NAME)).read_text())
    assert info["format"] == "gemix-segmenter/1" and info["strategy"] == strategy
    assert info["best_metric"] == pytest.approx(res.best_dice)
    assert len(info["history"]) == 2
    metrics = evaluate_segmenter(res.checkpoint, make_pairs(6, 2), tmp_path / "test")
    assert 0.0 <= metrics["dice"] <= 1.0 and metrics["dice_cases"] == 6
    assert (tmp_path / "test" / "metrics.json").is_file() and (tmp_path / "test" / "per_image.csv").is_file()


def test_the_checkpoint_reloads_with_weights_only_and_gives_the_same_scores(tmp_path):
    res = train_segmenter(
        make_pairs(12, 0), make_pairs(6, 1), tmp_path, class_names=NAMES, epochs=1, batch_size=6, device="cpu"
    )
    net, info = load_segmenter(res.checkpoint)
    state = torch.load(res.checkpoint, weights_only=True)
    assert set(state) == set(net.state_dict())
    assert info["mask_channels"] == 1 and info["mode"] == "sigmoid"
    a = evaluate_segmenter(res.checkpoint, make_pairs(6, 2))
    b = evaluate_segmenter(net, make_pairs(6, 2), mask_channels=1)
    assert a == b


def test_several_structures_train_with_softmax(tmp_path):
    res = train_segmenter(
        make_pairs(12, 0, 2), make_pairs(6, 1, 2), tmp_path, class_names=NAMES, epochs=1, batch_size=6, device="cpu"
    )
    _, info = load_segmenter(res.checkpoint)
    assert info["mode"] == "softmax" and info["out_channels"] == 3
    metrics = evaluate_segmenter(res.checkpoint, make_pairs(6, 2, 2))
    assert metrics["num_cases"] == 12  # 6 images x 2 structures, background not scored


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("strategy", sorted(NOT_FOR_MASKS))
def test_strategies_that_do_not_apply_to_masks_are_refused_with_the_reason(strategy, tmp_path):
    with pytest.raises(ValueError, match=f"strategy {strategy!r} is not offered for segmentation: .+expected one of"):
        train_segmenter(make_pairs(6, 0), make_pairs(3, 1), tmp_path, strategy=strategy, class_names=NAMES)


def test_a_generator_without_mask_channels_is_refused_for_real_plus_synthetic():
    with pytest.raises(ValueError, match=r"makes 1 channel\(s\).+1 image \+ 1 mask channel\(s\) = 2"):
        build_segmentation_strategy(
            "real+synthetic",
            Dataset(make_pairs(6, 0)),
            3,
            pair_generator(channels=1),
            image_channels=1,
            mask_channels=1,
        )


def test_a_mask_whose_shape_differs_from_its_image_is_refused(tmp_path):
    items = make_pairs(6, 0)
    items[0] = {**items[0], "mask": torch.zeros(1, SIZE - 2, SIZE)}
    with pytest.raises(ValueError, match=r"train_data item 0: image \(1, 16, 16\) and mask \(1, 14, 16\)"):
        train_segmenter(items, make_pairs(3, 1), tmp_path, class_names=NAMES, epochs=1)


def test_a_non_binary_mask_is_refused(tmp_path):
    items = make_pairs(6, 0)
    items[2] = {**items[2], "mask": items[2]["mask"] * 0.5}
    with pytest.raises(ValueError, match=r"train_data item 2: mask values must be 0 or 1, found 0.5"):
        train_segmenter(items, make_pairs(3, 1), tmp_path, class_names=NAMES, epochs=1, batch_size=6, device="cpu")


def test_data_without_masks_is_refused_naming_the_key(tmp_path):
    items = [{"image": it["image"], "label": it["label"]} for it in make_pairs(6, 0)]
    with pytest.raises(KeyError, match="train_data item 0 has no 'mask'"):
        train_segmenter(items, make_pairs(3, 1), tmp_path, class_names=NAMES)


def test_strategy_keywords_of_the_classifier_only_are_refused():
    with pytest.raises(ValueError, match=r"strategy_kwargs \['teacher'\] do not apply"):
        build_segmentation_strategy(
            "gemix", Dataset(make_pairs(6, 0)), 3, pair_generator(), image_channels=1, mask_channels=1, teacher="x"
        )


def test_the_offered_strategies_are_the_four_of_the_issue():
    assert SEGMENTATION_STRATEGIES == ("real", "real+synthetic", "genmix", "gemix")


def test_genmix_blends_image_and_mask_with_the_same_lambda():
    strat = build_segmentation_strategy(
        "genmix", Dataset(make_pairs(6, 0)), 3, pair_generator(), image_channels=1, mask_channels=1, seed=3
    )
    real = torch.stack([strat.dataset[i]["image"] for i in range(6)])
    prepare = SegmentationPrepareBatch(1, 3, strat.batch_transform)
    image, soft = prepare({"image": real, "label": torch.tensor([0, 1, 2, 0, 1, 2])})
    lam = strat.batch_transform.mixer._lam
    real_mask = (real[:, 1:] + 1) / 2
    for b in range(6):
        # mixed = lam * synthetic + (1 - lam) * real for image and (binary) mask alike
        allowed = torch.tensor([0.0, 1.0, float(lam[b]), 1 - float(lam[b])])
        assert torch.isclose(soft[b].reshape(-1, 1), allowed.reshape(1, -1), atol=1e-5).any(1).all()
        syn_mask = (soft[b] - (1 - lam[b]) * real_mask[b]) / lam[b]
        syn_image = (image[b] - (1 - lam[b]) * real[b, :1]) / lam[b]
        assert torch.all((syn_mask - syn_mask.round()).abs() < 1e-3)  # the partner's mask was binary
        assert syn_image.abs().max() <= 1.0 + 1e-3
    assert ((soft > 0) & (soft < 1)).any()


def test_the_image_view_of_a_pair_generator_gives_its_stacked_network():
    """``load_generator`` gives a pair checkpoint as an ``ImageMaskGenerator``: images only, the network behind."""
    network = pair_generator()
    assert check_pair_generator(ImageMaskGenerator(network, 1), 1, 1) is network
    strat = build_segmentation_strategy(
        "gemix", Dataset(make_pairs(6, 0)), 3, ImageMaskGenerator(network, 1), image_channels=1, mask_channels=1
    )
    item = strat.dataset[len(strat.dataset) - 1]
    assert item["image"].shape == (2, SIZE, SIZE) and set(torch.unique(item["image"][1]).tolist()) <= {-1.0, 1.0}


def test_an_image_view_with_other_mask_channels_is_refused():
    with pytest.raises(ValueError, match=r"makes 1 image \+ 2 mask channel\(s\)"):
        check_pair_generator(ImageMaskGenerator(pair_generator(channels=3), 2), 1, 1)


def test_strategy_options_given_to_real_are_refused_not_ignored():
    with pytest.raises(
        ValueError, match=r"strategy 'real' uses no generator and takes no strategy_kwargs, got \['synthetic_ratio'\]"
    ):
        build_segmentation_strategy(
            "real", Dataset(make_pairs(6, 0)), 3, image_channels=1, mask_channels=1, synthetic_ratio=0.5
        )
