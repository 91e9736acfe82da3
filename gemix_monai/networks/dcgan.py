"""Conditional DCGAN baseline on MONAI's ``Generator``/``Discriminator`` blocks, conditioned on soft labels.

* Generator: ``[z, W_e c]`` (the soft label through a linear embedding, concatenated to ``z``) →
  ``monai.networks.nets.Generator`` (linear to a 4×4 start block, strided transposed convolutions
  with batch norm) → ``tanh``: images in [-1, 1].
* Discriminator: ``monai.networks.nets.Discriminator`` without its sigmoid; the logit is
  ``final(h) + <W_p c, flatten(h)>`` with ``h`` the convolutional features — a projection
  discriminator (Miyato & Koyama 2018), whose label term is linear in ``c`` and so defined on the
  whole simplex.

Presets (:func:`dcgan_preset`): ``tiny`` (32 px, CPU-sized), ``32``, ``64``, ``128``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gemix_monai.networks.conditional_base import ConditionalGeneratorBase
from gemix_monai.networks.labels import as_soft_labels

__all__ = [
    "DCGAN_FORMAT",
    "DCGAN_TRAINING_FORMAT",
    "DCGAN_PRESET_NAMES",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "dcgan_preset",
]

DCGAN_FORMAT = "gemix-dcgan/1"
DCGAN_TRAINING_FORMAT = "gemix-dcgan-training/1"
DCGAN_PRESET_NAMES = ("tiny", "32", "64", "128")
_LRELU = ("leakyrelu", {"negative_slope": 0.2})


def _num_up(img_resolution: int) -> int:
    return int(math.log2(img_resolution // 4))


class DCGANGenerator(ConditionalGeneratorBase):
    """``G(z [N, z_dim], c [N, K]) → [N, C, R, R]`` in [-1, 1].

    Args:
        z_dim: latent size; c_dim: number of classes K; img_resolution: R (power of two, 16..256);
        img_channels: C; class_names: K names.
        embed_dim: width of the label embedding concatenated to ``z``.
        base_channels: channels of the 4×4 start block; each upsampling halves them (not below ``min_channels``).
    """

    FORMAT = DCGAN_FORMAT
    TRAINING_FORMAT = DCGAN_TRAINING_FORMAT
    family = "dcgan"

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 1,
        class_names: Sequence[str] | None = None,
        embed_dim: int = 32,
        base_channels: int = 256,
        min_channels: int = 16,
    ):
        super().__init__()
        from monai.networks.nets import Generator as MonaiGenerator

        self._setup(
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                embed_dim=embed_dim,
                base_channels=base_channels,
                min_channels=min_channels,
            ),
            class_names,
        )
        if not isinstance(z_dim, int) or z_dim < 1:
            raise ValueError(f"DCGANGenerator: z_dim must be an int >= 1, got {z_dim!r}")
        self.z_dim, self.embed_dim = z_dim, embed_dim
        n = _num_up(img_resolution)
        channels = [max(base_channels // 2 ** (i + 1), min_channels) for i in range(n - 1)] + [img_channels]
        self.embed = nn.Linear(c_dim, embed_dim)
        self.net = MonaiGenerator(
            latent_shape=(z_dim + embed_dim,),
            start_shape=(base_channels, 4, 4),
            channels=channels,
            strides=[2] * n,
            kernel_size=3,
            num_res_units=0,
            act="relu",
            norm="batch",
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
        check_labels: bool = True,
    ) -> torch.Tensor:
        """``truncation_psi`` scales ``z`` towards 0 (the DCGAN analogue of StyleGAN's truncation); ``noise_mode``
        is accepted for the common sampler interface and has no effect (a DCGAN has no per-layer noise)."""
        c = as_soft_labels(c, self.c_dim, name="c", check=check_labels)
        x = torch.cat([z * truncation_psi, self.embed(c)], dim=1)
        return torch.tanh(self.net(x))

    def _sample(self, z, labels, truncation_psi, noise_mode):
        return self(z, labels, truncation_psi, check_labels=False)


class DCGANDiscriminator(nn.Module):
    """Projection discriminator on MONAI's ``Discriminator``: ``D(x [N, C, R, R], c [N, K]) → logits [N, 1]``."""

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 1,
        base_channels: int = 32,
        max_channels: int = 256,
        dropout: float | None = None,
    ):
        super().__init__()
        from monai.networks.nets import Discriminator as MonaiDiscriminator

        n = _num_up(img_resolution)
        channels = [min(base_channels * 2**i, max_channels) for i in range(n)]
        self.c_dim = c_dim
        self.init_kwargs = dict(
            c_dim=c_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            base_channels=base_channels,
            max_channels=max_channels,
            dropout=dropout,
        )
        self.net = MonaiDiscriminator(
            in_shape=(img_channels, img_resolution, img_resolution),
            channels=channels,
            strides=[2] * n,
            kernel_size=3,
            num_res_units=0,
            act=_LRELU,
            norm=None,
            dropout=dropout,
            last_act=None,
        )
        features = channels[-1] * (img_resolution // 2**n) ** 2
        self.project = nn.Linear(c_dim, features, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.net.net(x)
        flat = h.flatten(1)
        return self.net.final(h) + (self.project(c) * flat).sum(dim=1, keepdim=True)


def dcgan_preset(name: str = "tiny") -> dict:
    """Architecture and training hyper-parameters: ``{"name", "resolution", "G", "D", "batch_size", "g_lr", "d_lr",
    "betas", "ema_kimg", "ema_rampup"}`` (``G``/``D`` without ``c_dim``/``img_channels``, which come from the data)."""
    name = str(name)
    if name not in DCGAN_PRESET_NAMES:
        raise ValueError(f"unknown DCGAN preset {name!r}; expected one of {list(DCGAN_PRESET_NAMES)}")
    res = 32 if name == "tiny" else int(name)
    if name == "tiny":
        g = dict(z_dim=32, embed_dim=8, base_channels=32, min_channels=8)
        d = dict(base_channels=8, max_channels=32)
        batch = 16
    else:
        g = dict(z_dim=128, embed_dim=32, base_channels=min(64 * res // 8, 512), min_channels=32)
        d = dict(base_channels=32, max_channels=512)
        batch = 64
    return {
        "name": name,
        "resolution": res,
        "G": dict(g, img_resolution=res),
        "D": dict(d, img_resolution=res),
        "batch_size": batch,
        "g_lr": 2e-4,
        "d_lr": 2e-4,
        "betas": [0.5, 0.999],
        "ema_kimg": 1.0,
        "ema_rampup": 0.05,
    }
