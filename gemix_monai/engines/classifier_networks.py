"""Classifier networks (2-D MONAI nets, randomly initialised) and the soft-target cross-entropy loss.

``build_classifier_network(name, in_channels, num_classes)``:

| name | network | parameters (1 channel, 3 classes) |
|---|---|---|
| ``tiny`` | :class:`TinyClassifier`: 3 strided ``Convolution`` blocks (8-16-32 channels), global average pool, linear | 6.1 k |
| ``resnet18`` / ``resnet50`` | ``monai.networks.nets.resnet18/50`` | 11.2 M / 23.5 M |
| ``densenet121`` | ``monai.networks.nets.DenseNet121`` | 7.0 M |
| ``efficientnet-b0`` | ``monai.networks.nets.EfficientNetBN("efficientnet-b0")`` | 4.0 M |

Nothing is downloaded (``pretrained=False``). ``FEATURE_LAYERS`` names, per network, the pooled
feature layer used by default for the t-SNE plot.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

__all__ = [
    "CLASSIFIER_NETWORKS",
    "FEATURE_LAYERS",
    "TinyClassifier",
    "build_classifier_network",
    "SoftTargetCrossEntropy",
]

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
