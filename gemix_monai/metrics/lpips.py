"""LPIPS (learned perceptual image patch similarity) from a local weight file, and LPIPS diversity of a set.

LPIPS compares two images by the deep features of an AlexNet: at each of its five ReLU outputs, the features are
unit-normalised along channels, their squared difference is weighted per channel by a learned linear layer,
averaged over space, and the five layers are summed (Zhang et al., CVPR 2018; docs/quality.md states it in full).
The *diversity* of a set is the mean LPIPS distance over pairs of its images: higher is more varied.

Why our own module rather than MONAI's ``PerceptualLoss`` (which wraps the ``lpips`` package): both download their
weights and need ``torchvision``, which cannot be installed beside the CPU torch wheel this project runs on, and
nothing can be downloaded here. The network below is AlexNet's feature stack with torchvision's layer names, so a
weight file built from torchvision's ``alexnet`` weights and the ``lpips`` package's ``alex.pth`` linear layers (the
recipe is in docs/quality.md) gives the published LPIPS; no file means no LPIPS, said in the report.

Weight file: a ``torch.save`` of a plain dict ``{"format": "gemix-lpips/1", "network": "alex", "state_dict": {...}}``
with keys ``features.{0,3,6,8,10}.{weight,bias}`` (AlexNet convolutions) and ``lin{0..4}.weight``
(``[1, C_l, 1, 1]``, non-negative); read with ``weights_only=True``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from gemix_monai.utils import safe_torch_load

__all__ = ["LPIPS", "LPIPS_FORMAT", "mean_pairwise_lpips", "ALEX_CHANNELS"]

LPIPS_FORMAT = "gemix-lpips/1"
#: channels of AlexNet's five tapped ReLU outputs
ALEX_CHANNELS = (64, 192, 384, 256, 256)
# the lpips package's input scaling of [-1, 1] images (its ScalingLayer)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """LPIPS distance ``d(x, y)`` ``[N]`` of images ``[N, C, H, W]`` in [-1, 1] (``C`` = 1 is repeated to RGB)."""

    network = "alex"

    def __init__(self):
        super().__init__()
        c = ALEX_CHANNELS
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c[0], c[1], 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c[1], c[2], 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3, padding=1),
            nn.ReLU(),
        )
        self.taps = (1, 4, 7, 9, 11)  # indices of the ReLUs whose outputs are compared
        for i, ch in enumerate(c):
            self.register_parameter(f"lin{i}", nn.Parameter(torch.full((1, ch, 1, 1), 1.0 / ch)))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "LPIPS":
        """Load a ``gemix-lpips/1`` weight file; errors name the file and the missing or misshapen entries."""
        payload = safe_torch_load(path, map_location="cpu")
        if not isinstance(payload, dict) or payload.get("format") != LPIPS_FORMAT:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ValueError(f"{path}: not an LPIPS weight file (format {LPIPS_FORMAT!r} expected, found {found!r})")
        if payload.get("network") != cls.network:
            raise ValueError(f"{path}: LPIPS network {payload.get('network')!r}; this version reads 'alex'")
        model = cls()
        state = payload.get("state_dict")
        expected = {k: v.shape for k, v in model.state_dict().items() if k not in ("shift", "scale")}
        if not isinstance(state, dict):
            raise ValueError(f"{path}: 'state_dict' must be a dict of tensors")
        missing = sorted(set(expected) - set(state))
        wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k]))
        if missing or wrong:
            raise ValueError(f"{path}: LPIPS weights missing {missing} or of the wrong shape {wrong}")
        if any(bool((state[f"lin{i}"] < 0).any()) for i in range(5)):
            raise ValueError(f"{path}: LPIPS linear weights must be non-negative (a distance)")
        model.load_state_dict({**state, "shift": model.shift, "scale": model.scale})
        return model

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != 3:
            raise ValueError(f"LPIPS takes 1- or 3-channel images, got {x.shape[1]} channels")
        h = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out

    @torch.no_grad()
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4:
            raise ValueError(
                f"LPIPS needs two image batches of one shape [N, C, H, W], got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        total = torch.zeros(x.shape[0], dtype=torch.float64)
        for i, (fx, fy) in enumerate(zip(self._taps(x.float()), self._taps(y.float()))):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (getattr(self, f"lin{i}") * (nx - ny).pow(2)).sum(1)
            total += d.mean(dim=(1, 2)).double()
        return total


def mean_pairwise_lpips(model: LPIPS, images: torch.Tensor, *, max_pairs: int = 2000, seed: int = 0) -> float:
    """Mean LPIPS over up to ``max_pairs`` distinct pairs of ``images [N, C, H, W]`` (all pairs when fewer; pairs
    drawn with ``numpy.random.default_rng(seed)`` otherwise). Needs N >= 2."""
    n = int(images.shape[0])
    if n < 2:
        raise ValueError(f"LPIPS diversity needs at least 2 images, got {n}")
    ii, jj = np.triu_indices(n, k=1)
    if ii.size > max_pairs:
        pick = np.random.default_rng(seed).choice(ii.size, size=max_pairs, replace=False)
        ii, jj = ii[pick], jj[pick]
    values = []
    for s in range(0, ii.size, 256):
        a, b = torch.as_tensor(ii[s : s + 256]), torch.as_tensor(jj[s : s + 256])
        values.append(model(images[a], images[b]))
    return float(torch.cat(values).mean())
