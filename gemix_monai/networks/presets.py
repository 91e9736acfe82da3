"""Architectures and training hyper-parameters by resolution.

``get_preset(name)`` returns a fresh dict::

    {"name": ..., "resolution": R,
     "G": Generator kwargs (without c_dim, which comes from the data),
     "D": Discriminator kwargs (without c_dim),
     "augment": AugmentPipe kwargs,
     training options named as ``gemix_monai.engines.gan.GanTrainingOptions``:
     "batch_size", "g_lr", "d_lr", "betas", "eps", "r1_gamma", "r1_interval", "pl_weight",
     "pl_interval", "style_mixing_prob", "ema_kimg" (EMA half-life in thousands of images),
     "ema_rampup", "ada_target", "ada_interval", "ada_kimg"}

The ``"32"`` … ``"256"`` presets follow the scaling rules of the StyleGAN2-ADA paper's automatic
configuration for one GPU: ``channel_base = 16384`` (i.e. 0.5 × 32768, capped at 512 channels),
a 2-layer mapping network, minibatch ``min(4096 // R, 32)``, learning rate 0.0025,
``r1_gamma = 0.0002 · R² / batch`` and an EMA half-life of ``batch · 10 / 32`` kimg (ramp-up
0.05), mixed precision in the 4 highest resolutions with activations clamped to ±256, ADA target
0.6 with p adjusted every 4 steps over 500 kimg, augmentations "bgc".

``"tiny"`` is a 32 px model small enough to train on two CPU cores (smoke tests, CI, demos).
"""

from __future__ import annotations

import copy

__all__ = ["PRESET_NAMES", "get_preset"]

PRESET_NAMES = ("tiny", "32", "64", "128", "256")

_BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1)


def _paper_preset(resolution: int) -> dict:
    batch = max(min(4096 // resolution, 32), 1)
    common = dict(channel_base=16384, channel_max=512, num_fp16_res=4, conv_clamp=256)
    return {
        "name": str(resolution),
        "resolution": resolution,
        "G": dict(
            z_dim=512,
            w_dim=512,
            img_resolution=resolution,
            img_channels=1,
            mapping_kwargs=dict(num_layers=2),
            synthesis_kwargs=dict(common),
        ),
        "D": dict(img_resolution=resolution, img_channels=1, mbstd_group_size=4, **common),
        "augment": dict(_BGC),
        "batch_size": batch,
        "g_lr": 0.0025,
        "d_lr": 0.0025,
        "betas": [0.0, 0.99],
        "eps": 1e-8,
        "r1_gamma": 0.0002 * resolution**2 / batch,
        "r1_interval": 16,
        "pl_weight": 2.0,
        "pl_interval": 4,
        "style_mixing_prob": 0.9,
        "ema_kimg": batch * 10 / 32,
        "ema_rampup": 0.05,
        "ada_target": 0.6,
        "ada_interval": 4,
        "ada_kimg": 500.0,
    }


def _tiny_preset() -> dict:
    # 32 channels at every resolution: ≈6 GFLOP per G+D step at batch 16, i.e. tens of images/s on 2 cores
    common = dict(channel_base=1024, channel_max=32, num_fp16_res=0, conv_clamp=256)
    return {
        "name": "tiny",
        "resolution": 32,
        "G": dict(
            z_dim=64,
            w_dim=64,
            img_resolution=32,
            img_channels=1,
            mapping_kwargs=dict(num_layers=2),
            synthesis_kwargs=dict(common),
        ),
        "D": dict(img_resolution=32, img_channels=1, mbstd_group_size=4, mapping_kwargs=dict(num_layers=2), **common),
        "augment": dict(_BGC),
        "batch_size": 16,
        "g_lr": 0.0025,
        "d_lr": 0.0025,
        "betas": [0.0, 0.99],
        "eps": 1e-8,
        "r1_gamma": 0.01,
        "r1_interval": 16,
        "pl_weight": 0.0,
        "pl_interval": 4,
        "style_mixing_prob": 0.0,
        "ema_kimg": 1.0,
        "ema_rampup": 0.05,
        "ada_target": 0.6,
        "ada_interval": 4,
        "ada_kimg": 20.0,
    }


def get_preset(name: str | int) -> dict:
    """The preset ``name`` (``"tiny"``, ``"32"``, ``"64"``, ``"128"`` or ``"256"``; an int resolution works too)."""
    key = str(name)
    if key not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; choose from {list(PRESET_NAMES)}")
    preset = _tiny_preset() if key == "tiny" else _paper_preset(int(key))
    return copy.deepcopy(preset)
