"""Segmentation networks (2-D MONAI U-Nets, randomly initialised), their loss, and the segmenter checkpoint
(``model.pt`` + ``segmenter.json``) read back into a network (docs/segmentation.md).

Loss: MONAI's ``DiceCELoss`` — sigmoid for ``M = 1`` (binary masks), softmax over ``[background, 1..M]`` for
``M > 1`` (mutually exclusive one-hot structures). Both accept soft targets (GenMix): the sigmoid CE is
``BCEWithLogitsLoss`` on probabilities, the softmax CE is ``CrossEntropyLoss`` with class-probability targets
(MONAI passes float targets with as many channels as the logits through), and the soft Dice is
``Σ p·t / (Σ p + Σ t)``, defined for ``t`` in [0, 1].
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from gemix_monai.networks.classifiers import network_name_of as _network_name_of
from gemix_monai.utils import resolve_device, safe_torch_load

__all__ = [
    "SEGMENTATION_NETWORKS",
    "SEGMENTER_CHECKPOINT_NAME",
    "SEGMENTER_INFO_NAME",
    "SEGMENTER_FORMAT",
    "segmentation_mode",
    "segmentation_out_channels",
    "build_segmentation_network",
    "build_segmentation_loss",
    "size_multiple",
    "network_name_of",
    "load_segmenter",
]

SEGMENTER_CHECKPOINT_NAME = "model.pt"
SEGMENTER_INFO_NAME = "segmenter.json"
SEGMENTER_FORMAT = "gemix-segmenter/1"

#: name -> (MONAI class, keyword arguments). ``tiny_unet`` is the CPU budget of ``compare --task segmentation``.
SEGMENTATION_NETWORKS: dict[str, tuple[str, dict]] = {
    "tiny_unet": ("UNet", {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1}),
    "unet": ("UNet", {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2}),
    "basic_unet": ("BasicUNet", {"features": (16, 16, 32, 64, 128, 16)}),
}


def segmentation_mode(mask_channels: int) -> str:
    """``"sigmoid"`` for one mask channel (binary masks), ``"softmax"`` over ``[background, 1..M]`` otherwise."""
    return "sigmoid" if int(mask_channels) == 1 else "softmax"


def segmentation_out_channels(mask_channels: int) -> int:
    """Logit channels of a segmenter of ``M`` mask channels: ``M`` (sigmoid, ``M = 1``) or ``M + 1`` (softmax over
    ``[background, 1..M]``)."""
    return int(mask_channels) if segmentation_mode(mask_channels) == "sigmoid" else int(mask_channels) + 1


def build_segmentation_network(name: str, in_channels: int, out_channels: int) -> torch.nn.Module:
    """A 2-D MONAI network from :data:`SEGMENTATION_NETWORKS` returning logits ``[B, out_channels, H, W]``."""
    import monai.networks.nets as nets

    if name not in SEGMENTATION_NETWORKS:
        raise ValueError(f"unknown segmentation network {name!r}; expected one of {list(SEGMENTATION_NETWORKS)}")
    cls, kwargs = SEGMENTATION_NETWORKS[name]
    return getattr(nets, cls)(spatial_dims=2, in_channels=int(in_channels), out_channels=int(out_channels), **kwargs)


def build_segmentation_loss(mask_channels: int) -> torch.nn.Module:
    """``DiceCELoss``: sigmoid for ``M = 1``, softmax over ``[background, 1..M]`` otherwise (module docstring)."""
    from monai.losses import DiceCELoss

    if segmentation_mode(mask_channels) == "sigmoid":
        return DiceCELoss(sigmoid=True)
    return DiceCELoss(softmax=True, include_background=False)


def size_multiple(network: str) -> int:
    """The factor an image side must be divisible by for ``network`` (1 for a network of the user's own)."""
    if network not in SEGMENTATION_NETWORKS:
        return 1
    cls, kwargs = SEGMENTATION_NETWORKS[network]
    return 2 ** len(kwargs["strides"]) if cls == "UNet" else 16


def network_name_of(network: torch.nn.Module, name: str | None) -> str | None:
    """``name`` when ``build_segmentation_network(name, ...)`` has ``network``'s class and parameter shapes (so
    :func:`load_segmenter` can rebuild it), else ``None`` (a network of the user's own: load it yourself)."""
    if name not in SEGMENTATION_NETWORKS:
        return None
    return _network_name_of(network, name, build_segmentation_network)


def load_segmenter(checkpoint: str | os.PathLike, device=None) -> tuple[torch.nn.Module, dict]:
    """``(network in eval mode, segmenter.json)`` from a ``model.pt`` written by :func:`train_segmenter`."""
    path = Path(checkpoint)
    info_path = path.with_name(SEGMENTER_INFO_NAME)
    if not path.is_file():
        raise FileNotFoundError(f"segmenter checkpoint not found: {path}")
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: a segmenter checkpoint is described by segmenter.json beside it"
        )
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("format") != SEGMENTER_FORMAT:
        raise ValueError(f"{info_path}: format {info.get('format')!r}, expected {SEGMENTER_FORMAT!r}")
    net = build_segmentation_network(info["network"], info["in_channels"], info["out_channels"])
    state = safe_torch_load(path, map_location="cpu")
    if isinstance(state, Mapping) and "model" in state and not any(k.endswith(".weight") for k in state):
        state = state["model"]
    net.load_state_dict(state)
    return net.to(resolve_device(device)).eval(), info
