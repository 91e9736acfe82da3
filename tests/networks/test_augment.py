import math

import pytest
import torch

from gemix_monai.networks import AUGMENT_PRESETS, AugmentPipe
from gemix_monai.networks.augment import lowpass_filter_taps


def smooth_images(n, channels=1, size=32):
    """Band-limited test images, so that resampling is exact up to the low-pass filter's ripple."""
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    base = torch.sin(2 * math.pi * xx / size * 2) * torch.cos(2 * math.pi * yy / size * 1.5 + 0.3) + 0.5 * xx / size
    return torch.stack([base * (1 + 0.5 * k) for k in range(channels)])[None].repeat(n, 1, 1, 1)


@pytest.mark.parametrize("preset", sorted(AUGMENT_PRESETS))
def test_p_zero_returns_the_input_unchanged(preset):
    images = torch.randn(3, 2, 16, 16)
    assert AugmentPipe.from_preset(preset, p=0.0)(images) is images


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", ["bgc", "bgcn", "bgcc"])
def test_p_one_changes_images_keeping_shape_and_dtype(preset, channels):
    torch.manual_seed(0)
    images = torch.randn(4, channels, 16, 16)
    out = AugmentPipe.from_preset(preset, p=1.0)(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.isfinite(out).all()
    changed = (out - images).flatten(1).abs().amax(dim=1) > 1e-3
    assert changed.all()


@pytest.mark.parametrize("preset", ["blit", "geom", "bg"])
def test_geometric_augmentations_preserve_a_constant_image_away_from_borders(preset):
    torch.manual_seed(0)
    images = torch.full((8, 2, 32, 32), 0.3)
    out = AugmentPipe.from_preset(preset, p=1.0)(images)
    torch.testing.assert_close(out[:, :, 8:24, 8:24], images[:, :, 8:24, 8:24], rtol=0, atol=1e-5)


def test_xflip_is_a_mirror_image_or_the_identity():
    torch.manual_seed(0)
    images = smooth_images(16)
    out = AugmentPipe(p=1.0, xflip=1)(images)
    flipped = 0
    for original, augmented in zip(images, out):
        if torch.equal(augmented, original):
            continue
        flipped += 1
        torch.testing.assert_close(augmented[:, 4:-4, 4:-4], original.flip(-1)[:, 4:-4, 4:-4], rtol=0, atol=5e-3)
    assert 0 < flipped < 16  # x-flip is a coin toss per selected sample


def test_rotate90_turns_images_by_quarter_turns():
    torch.manual_seed(1)
    images = smooth_images(12)
    out = AugmentPipe(p=1.0, rotate90=1)(images)
    for original, augmented in zip(images, out):
        errors = [(augmented - torch.rot90(original, k, (1, 2)))[:, 4:-4, 4:-4].abs().max() for k in range(4)]
        assert min(errors) < 5e-3


def test_integer_translation_shifts_by_whole_pixels():
    torch.manual_seed(2)
    images = smooth_images(8)
    out = AugmentPipe(p=1.0, xint=1, xint_max=0.125)(images)
    for original, augmented in zip(images, out):
        best = min(
            (augmented - torch.roll(original, (dy, dx), (1, 2)))[:, 8:-8, 8:-8].abs().max()
            for dy in range(-4, 5)
            for dx in range(-4, 5)
        )
        assert best < 5e-3


def test_intensity_augmentations_act_on_all_channels_alike():
    torch.manual_seed(3)
    images = torch.rand(6, 1, 16, 16).repeat(1, 3, 1, 1)
    out = AugmentPipe(p=1.0, brightness=1, contrast=1)(images)
    assert not torch.equal(out, images)
    torch.testing.assert_close(out[:, 1], out[:, 0])
    torch.testing.assert_close(out[:, 2], out[:, 0])


def test_r1_style_double_backward_through_the_pipe():
    torch.manual_seed(4)
    pipe = AugmentPipe.from_preset("bgcn", p=1.0)
    x = torch.randn(4, 2, 16, 16, requires_grad=True)
    weight = torch.randn(1, 2, 16, 16, requires_grad=True)
    score = (pipe(x) * weight).tanh().sum()
    (grad,) = torch.autograd.grad(score, x, create_graph=True)
    grad.square().sum().backward()
    assert weight.grad is not None and torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_p_is_a_checkpointed_buffer_set_from_outside():
    pipe = AugmentPipe.from_preset("bgc")
    pipe.set_p(0.35)
    assert "p" in pipe.state_dict()
    restored = AugmentPipe.from_preset("bgc")
    restored.load_state_dict(pipe.state_dict())
    assert float(restored.p) == pytest.approx(0.35)
    pipe.p.copy_(torch.tensor(0.5))  # what an ADA handler does
    assert float(pipe.p) == 0.5


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_p_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="p must be in"):
        AugmentPipe(p=bad)


def test_negative_multiplier_is_refused():
    with pytest.raises(ValueError, match="rotate must be a finite number >= 0"):
        AugmentPipe(rotate=-1)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation preset 'rgb'"):
        AugmentPipe.from_preset("rgb")


def test_lowpass_filter_is_even_normalised_and_symmetric():
    taps = torch.tensor(lowpass_filter_taps())
    assert taps.numel() % 2 == 0
    torch.testing.assert_close(taps.sum(), torch.tensor(1.0))
    torch.testing.assert_close(taps, taps.flip(0))
