"""Classifier networks (2-D MONAI nets, randomly initialised), the soft-target cross-entropy loss, and the
classifier checkpoint (``model.pt`` + ``classifier.json``) read back into a network.

``build_classifier_network(name, in_channels, num_classes)``:

| name | network | parameters (1 channel, 3 classes) |
|---|---|---|
| ``tiny`` | :class:`TinyClassifier`: 3 strided ``Convolution`` blocks (8-16-32 channels), global average pool, linear | 6.1 k |
| ``resnet18`` / ``resnet50`` | ``monai.networks.nets.resnet18/50`` | 11.2 M / 23.5 M |
| ``densenet121`` | ``monai.networks.nets.DenseNet121`` | 7.0 M |
| ``efficientnet-b0`` | ``monai.networks.nets.EfficientNetBN("efficientnet-b0")`` | 4.0 M |

Nothing is downloaded (``pretrained=False``). ``FEATURE_LAYERS`` names, per network, the pooled
feature layer used by default for the t-SNE plot.

A trained classifier is two files in one folder: ``model.pt`` (a plain state dict, ``weights_only=True``) and
``classifier.json`` (``format: "gemix-classifier/1"``, ``network``, ``in_channels``, ``num_classes``,
``class_names``, ...; docs/design.md). :func:`load_classifier` rebuilds the network from them; it lives here, with
the networks, so that anything needing a trained classifier (the teacher labels of ``gemix_monai.transforms``,
the audits) reads it without the training engine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.networks.blocks import Convolution
from torch import nn

from gemix_monai.utils import safe_torch_load

__all__ = [
    "CLASSIFIER_NETWORKS",
    "FEATURE_LAYERS",
    "CHECKPOINT_NAME",
    "CHECKPOINT_INFO_NAME",
    "CLASSIFIER_FORMAT",
    "TinyClassifier",
    "build_classifier_network",
    "network_name_of",
    "SoftTargetCrossEntropy",
    "read_classifier_info",
    "load_classifier",
]

#: the trained network's weights and its description, side by side in one folder
CHECKPOINT_NAME = "model.pt"
CHECKPOINT_INFO_NAME = "classifier.json"
CLASSIFIER_FORMAT = "gemix-classifier/1"

CLASSIFIER_NETWORKS = ("tiny", "resnet18", "resnet50", "densenet121", "efficientnet-b0")
FEATURE_LAYERS = {
    "tiny": "pool",
    "resnet18": "avgpool",
    "resnet50": "avgpool",
    "densenet121": "class_layers.pool",
    "efficientnet-b0": "_avg_pooling",
}


class TinyClassifier(nn.Module):
    """A small CNN for CPU demos and tests, any input size: strided conv blocks, global pool, linear.

    Modules: ``features`` (the conv blocks), ``pool`` (global average, output ``[B, C_last]``), ``fc``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, channels: Sequence[int] = (8, 16, 32), spatial_dims: int = 2
    ):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out in channels:
            blocks.append(Convolution(spatial_dims, c_in, c_out, strides=2, kernel_size=3, act="PRELU", norm="BATCH"))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1), nn.Flatten()
        )
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


def build_classifier_network(
    name: str, in_channels: int, num_classes: int, spatial_dims: int = 2, **kwargs
) -> nn.Module:
    """A randomly initialised classifier returning logits ``[B, num_classes]`` (see the module table)."""
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if name == "tiny":
        return TinyClassifier(in_channels, num_classes, spatial_dims=spatial_dims, **kwargs)
    from monai.networks import nets

    if name in ("resnet18", "resnet50"):
        return getattr(nets, name)(
            pretrained=False, spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs
        )
    if name == "densenet121":
        return nets.DenseNet121(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, pretrained=False, **kwargs
        )
    if name == "efficientnet-b0":
        return nets.EfficientNetBN(
            "efficientnet-b0",
            pretrained=False,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            num_classes=num_classes,
            **kwargs,
        )
    raise ValueError(f"unknown network {name!r}; expected one of {list(CLASSIFIER_NETWORKS)}")


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy with soft targets: ``mean_b( -sum_k y[b, k] * log_softmax(logits)[b, k] )``.

    ``target`` is ``[B, K]`` on the simplex (soft or one-hot) or ``[B]`` class indices (made one-hot).
    With one-hot targets it equals ``torch.nn.functional.cross_entropy``.
    """

    def __init__(self, atol: float = 1e-3):
        super().__init__()
        self.atol = atol

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be [B, K], got shape {tuple(logits.shape)}")
        b, k = logits.shape
        target = torch.as_tensor(target, device=logits.device)
        if target.ndim == 2 and target.shape[1] == 1 and k > 1 and not target.is_floating_point():
            target = target[:, 0]
        if target.ndim == 1:
            if target.is_floating_point() and not bool((target == target.round()).all()):
                raise ValueError("target of shape [B] must hold integer class indices")
            idx = target.long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
                raise ValueError(f"target has class index out of range 0..{k - 1}")
            target = nn.functional.one_hot(idx, k).to(logits.dtype)
        if target.shape != (b, k):
            raise ValueError(
                f"target must be [B, K] = [{b}, {k}] soft labels or [B] indices, got {tuple(target.shape)}"
            )
        target = target.float()  # float32 even under autocast: log-probabilities of rare classes underflow in fp16
        sums = target.detach().sum(dim=1)
        if bool((target.detach() < -self.atol).any()) or bool(((sums - 1).abs() > self.atol).any()):
            raise ValueError("soft targets must be on the probability simplex (non-negative, rows summing to 1)")
        return -(target * torch.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def network_name_of(network: nn.Module, name: str | None, build=None) -> str | None:
    """``name`` when ``build(name, in_channels, out_channels)`` (default :func:`build_classifier_network`) makes a
    network of ``network``'s class and parameter shapes, so that the name alone rebuilds it; else ``None`` (a
    network of the user's own, e.g. a bundle's ``network_def`` override: its checkpoint is loaded by the caller)."""
    build = build or build_classifier_network
    state = network.state_dict()
    first = next((v for v in state.values() if v.ndim == 4), None)
    last = next((v for v in reversed(list(state.values())) if v.ndim >= 1), None)
    if name is None or first is None or last is None:
        return None
    try:
        candidate = build(name, int(first.shape[1]), int(last.shape[0]))
    except (ValueError, RuntimeError, TypeError):
        return None
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    same = type(candidate) is type(network) and shapes == {k: tuple(v.shape) for k, v in candidate.state_dict().items()}
    return name if same else None


def read_classifier_info(checkpoint: str | os.PathLike) -> dict:
    """``classifier.json`` beside ``model.pt`` (architecture, classes, stored contract), ``{}`` when absent."""
    path = Path(checkpoint).with_name(CHECKPOINT_INFO_NAME)
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def load_classifier(
    checkpoint: str | os.PathLike,
    *,
    network: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """``(network on device, classifier.json)``: the classifier of ``model.pt`` rebuilt from its ``classifier.json``
    (or from the explicit arguments, which win); a checkpoint that does not fit is a ``ValueError`` naming both."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {path}")
    state = safe_torch_load(path, map_location=device)
    fmt = state.get("format") if isinstance(state, dict) else None
    if isinstance(fmt, str):  # a plain state dict has parameter names as keys, never a format tag
        raise ValueError(
            f"{path} is not a classifier's weights but a {fmt!r} checkpoint"
            + (
                " (a generator: give it as the generator, e.g. models/generator/generator.pt)"
                if "gan" in fmt or "generator" in fmt or "dcgan" in fmt or "diffusion" in fmt
                else ""
            )
            + "; a classifier is models/model.pt beside its classifier.json"
        )
    info = read_classifier_info(path)
    network = network or info.get("network")
    in_channels = in_channels or info.get("in_channels")
    num_classes = num_classes or info.get("num_classes")
    missing = [
        n for n, v in (("network", network), ("in_channels", in_channels), ("num_classes", num_classes)) if v is None
    ]
    if missing:
        raise ValueError(
            f"cannot rebuild the classifier of {path}: no {CHECKPOINT_INFO_NAME} beside it; pass {missing}"
        )
    net = build_classifier_network(network, int(in_channels), int(num_classes))
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        # from None: the command line prints the innermost cause, and this message already names both sides
        raise ValueError(
            f"checkpoint {path} does not fit network {network!r} (in_channels={in_channels}, "
            f"num_classes={num_classes}): {str(e).splitlines()[0]}"
        ) from None
    return net.to(device), info
