"""Small network configurations so that every resolution stays cheap on two CPU cores."""

import pytest
import torch

from gemix_monai.networks import Discriminator, Generator

#: Channel widths that keep even a 256 px network to a few thousand parameters per block.
NARROW = dict(channel_base=256, channel_max=16, num_fp16_res=0)


def make_generator(resolution=16, channels=1, c_dim=3, z_dim=8, w_dim=16, seed=0, **synthesis):
    torch.manual_seed(seed)
    return Generator(
        z_dim=z_dim,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs={**NARROW, **synthesis},
    )


def make_discriminator(resolution=16, channels=1, c_dim=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    return Discriminator(
        c_dim=c_dim,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        **{**NARROW, **kwargs},
    )


def with_noise_strength(G, value=1.0):
    """Trained generators have non-zero noise strengths; fresh ones start at 0."""
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(value)
    return G


@pytest.fixture
def generator():
    return make_generator()


@pytest.fixture
def discriminator():
    return make_discriminator()


@pytest.fixture(name="make_generator")
def make_generator_fixture():
    return make_generator


@pytest.fixture(name="make_discriminator")
def make_discriminator_fixture():
    return make_discriminator


@pytest.fixture(name="with_noise_strength")
def with_noise_strength_fixture():
    return with_noise_strength
