"""Tiny phantoms shared by the generator-family tests (3 classes, 32 px, 14 training images)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(tmp_path_factory.mktemp("phantoms"), image_size=32, counts=(6, 4, 4),
                                    val_counts=(2, 2, 2), test_counts=(2, 2, 2))


@pytest.fixture(scope="session")
def phantom_train(phantom_datalist):
    from gemix_monai.data import get_dataset

    return get_dataset(phantom_datalist, "training", 32, cache=True)


def perturb(module, scale: float = 0.05, seed: int = 0) -> None:
    """Add small noise to every parameter (a freshly built diffusion U-Net zero-initialises its output layers,
    so the label would not reach the image yet)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
