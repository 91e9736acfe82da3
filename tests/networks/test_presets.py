import dataclasses

import pytest
import torch

from gemix_monai.networks import PRESET_NAMES, AugmentPipe, Discriminator, Generator, get_preset

TRAINING_KEYS = {
    "batch_size",
    "g_lr",
    "d_lr",
    "betas",
    "r1_gamma",
    "ema_kimg",
    "ema_rampup",
    "ada_target",
    "ada_interval",
    "ada_kimg",
}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_has_networks_augmentation_and_training_options(name):
    preset = get_preset(name)
    assert {"G", "D", "augment", "resolution"} <= preset.keys()
    assert TRAINING_KEYS <= preset.keys()
    assert preset["G"]["img_resolution"] == preset["D"]["img_resolution"] == preset["resolution"]
    AugmentPipe(**preset["augment"])  # the augmentation kwargs are valid


def test_training_options_are_named_as_the_gan_trainer_expects():
    from gemix_monai.engines import gan

    fields = {f.name for f in dataclasses.fields(gan.GanTrainingOptions)}
    for name in PRESET_NAMES:
        preset = get_preset(name)
        assert TRAINING_KEYS <= fields
        gan.GanTrainingOptions.from_mapping(preset)  # values pass the trainer's validation


@pytest.mark.parametrize(
    "name, batch, gamma, ema",
    [("32", 32, 0.0064, 10.0), ("64", 32, 0.0256, 10.0), ("128", 32, 0.1024, 10.0), ("256", 16, 0.8192, 5.0)],
)
def test_paper_presets_scale_gamma_batch_and_ema_with_resolution(name, batch, gamma, ema):
    preset = get_preset(name)
    assert preset["batch_size"] == batch
    assert preset["r1_gamma"] == pytest.approx(gamma)
    assert preset["ema_kimg"] == pytest.approx(ema)
    assert preset["G"]["synthesis_kwargs"]["channel_base"] == 16384


def test_presets_are_fresh_copies():
    preset = get_preset("tiny")
    preset["G"]["z_dim"] = 1
    assert get_preset("tiny")["G"]["z_dim"] == 64


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match=r"unknown preset '512'"):
        get_preset("512")


def test_tiny_preset_builds_and_runs_a_training_step():
    preset = get_preset("tiny")
    torch.manual_seed(0)
    G = Generator(c_dim=2, class_names=["normal", "pneumonia"], **preset["G"])
    D = Discriminator(c_dim=2, **preset["D"])
    augment = AugmentPipe(p=0.5, **preset["augment"])
    c = torch.eye(2)[[0, 1, 1, 0]]
    fake = G(torch.randn(4, G.z_dim), c)
    loss = torch.nn.functional.softplus(-D(augment(fake), c)).mean()
    loss.backward()
    assert fake.shape == (4, 1, 32, 32)
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)
    assert sum(p.numel() for p in G.parameters()) < 1_000_000
