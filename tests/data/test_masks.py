"""The image–mask pair convention (gemix_monai.data.masks; docs/segmentation.md, docs/maths.md §6)."""

import pytest
import torch

from gemix_monai.data.masks import (
    binarise_masks,
    channels_to_label_map,
    label_map_to_channels,
    split_image_mask,
    stack_image_mask,
)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("image_channels,mask_channels", [(1, 1), (2, 1), (1, 3), (2, 2)])
def test_stack_then_split_gives_the_image_and_the_mask_back(batched, image_channels, mask_channels):
    g = torch.Generator().manual_seed(0)
    lead = (3,) if batched else ()
    image = torch.rand(*lead, image_channels, 8, 6, generator=g) * 2 - 1
    mask = (torch.rand(*lead, mask_channels, 8, 6, generator=g) > 0.5).float()
    x = stack_image_mask(image, mask)
    assert x.shape == (*lead, image_channels + mask_channels, 8, 6)
    assert set(x[..., image_channels:, :, :].unique().tolist()) <= {-1.0, 1.0}
    back_image, soft = split_image_mask(x, mask_channels)
    torch.testing.assert_close(back_image, image)
    torch.testing.assert_close(soft, mask)


def test_stack_maps_zero_to_minus_one_and_one_to_plus_one():
    x = stack_image_mask(torch.zeros(1, 2, 2), torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]))
    assert x[1].tolist() == [[-1.0, 1.0], [1.0, -1.0]]


def test_stack_refuses_mask_values_outside_zero_one():
    with pytest.raises(ValueError, match="mask values must lie in \\[0, 1\\], found 0..255"):
        stack_image_mask(torch.zeros(1, 2, 2), torch.tensor([[[0.0, 255.0], [0.0, 0.0]]]))


def test_stack_refuses_spatial_disagreement():
    with pytest.raises(ValueError, match=r"image \(1, 4, 4\) and mask \(1, 4, 5\)"):
        stack_image_mask(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))


def test_split_clips_the_soft_mask_to_zero_one():
    x = torch.tensor([[[0.25]], [[1.7]], [[-1.4]]])
    image, soft = split_image_mask(x, 2)
    assert image.tolist() == [[[0.25]]]
    assert soft.flatten().tolist() == [1.0, 0.0]


def test_split_with_no_mask_channels_returns_the_input_and_none():
    x = torch.zeros(2, 1, 4, 4)
    image, soft = split_image_mask(x, 0)
    assert image is x and soft is None


def test_split_refuses_a_mask_count_leaving_no_image_channel():
    with pytest.raises(ValueError, match="x has 1 channels; with mask_channels=1"):
        split_image_mask(torch.zeros(1, 4, 4), 1)


def test_binary_masks_are_thresholded_at_one_half():
    soft = torch.tensor([[[0.0, 0.49, 0.5, 0.51, 1.0]]])
    assert binarise_masks(soft).tolist() == [[[0.0, 0.0, 0.0, 1.0, 1.0]]]


def test_one_hot_masks_take_the_largest_channel_above_one_half():
    # pixels: background (all low), channel 0 wins, channel 1 wins, tie at 0.5 goes to background,
    # two channels above 0.5 -> only the larger
    soft = torch.tensor(
        [
            [[0.2, 0.9, 0.1, 0.5, 0.7]],
            [[0.3, 0.2, 0.6, 0.5, 0.8]],
        ]
    )
    out = binarise_masks(soft)
    assert out.tolist() == [[[0, 1, 0, 0, 0]], [[0, 0, 1, 0, 1]]]
    assert float(out.sum(0).max()) <= 1.0


def test_label_map_with_integer_labels_becomes_one_hot_channels_without_background():
    labels = torch.tensor([[[0, 1, 2], [3, 0, 2]]])
    out = label_map_to_channels(labels, 3)
    assert out.dtype == torch.float32 and out.shape == (3, 2, 3)
    for m in range(3):
        torch.testing.assert_close(out[m], (labels[0] == m + 1).float())
    torch.testing.assert_close(channels_to_label_map(out), labels.to(torch.uint8))


def test_binary_label_map_stays_one_channel():
    labels = torch.tensor([[[0, 1], [1, 0]]])
    torch.testing.assert_close(label_map_to_channels(labels, 1), labels.float())


@pytest.mark.parametrize("values,found", [([0, 3], "0, 3"), ([0, 0.5], "0, 0.5")])
def test_label_map_refuses_values_outside_the_labels_naming_them(values, found):
    labels = torch.tensor([[values]], dtype=torch.float32)
    with pytest.raises(ValueError, match=f"seg.nii.gz: mask values must be integers in 0..2, found {found}"):
        label_map_to_channels(labels, 2, where="seg.nii.gz")
