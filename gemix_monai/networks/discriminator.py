"""The discriminator: StyleGAN2's residual architecture with projection conditioning on soft labels."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from gemix_monai.networks.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer
from gemix_monai.networks.mapping import MappingNetwork
from gemix_monai.networks.synthesis import MIXED_PRECISION_DTYPES, channels_per_resolution

__all__ = ["DiscriminatorBlock", "DiscriminatorEpilogue", "Discriminator"]


class DiscriminatorBlock(nn.Module):
    """One resolution of the residual discriminator: (fromRGB) → conv → conv ↓2, plus a 1×1 ↓2 skip.

    Both branches are scaled by √½ so the sum keeps unit variance. ``use_fp16`` runs the block in
    ``mixed_precision_dtype`` on CUDA (never on CPU) with activations clamped to ±``conv_clamp``.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        mixed_precision_dtype: str = "float16",
        conv_clamp: float | None = None,
        resample_filter=(1, 3, 3, 1),
    ):
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = int(in_channels), int(resolution), int(img_channels)
        self.use_fp16 = bool(use_fp16)
        self.mp_dtype = MIXED_PRECISION_DTYPES[mixed_precision_dtype]
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            3,
            activation="lrelu",
            down=2,
            resample_filter=resample_filter,
            conv_clamp=conv_clamp,
        )
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter)

    def compute_dtype(self, device: torch.device) -> torch.dtype:
        return self.mp_dtype if self.use_fp16 and device.type == "cuda" else torch.float32

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        dtype = self.compute_dtype(img.device)
        if self.fromrgb is not None:
            x = self.fromrgb(img.to(dtype))
        else:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, use_fp16={self.use_fp16}"


class DiscriminatorEpilogue(nn.Module):
    """4×4 head: minibatch std → 3×3 conv → fully connected → ``cmap_dim`` features, then the
    projection score ``Σ_k features_k · cmap_k / √cmap_dim`` (docs/maths.md §2). Output [N, 1] logits."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int = 4,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = int(in_channels), int(cmap_dim), int(resolution)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        return (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))


class Discriminator(nn.Module):
    """Images [N, img_channels, R, R] and soft labels [N, c_dim] → realness logits [N, 1].

    Conditioning is by projection: the label goes through its own mapping network to ``cmap``
    [N, cmap_dim] and the score is the scaled dot product of ``cmap`` with the image features, so a
    soft label scores an image against the matching mixture of class directions. Everything is
    built from ops with exact second-order gradients, so R1 (``∇_x D`` then backward) works.

    ``init_kwargs`` holds the constructor arguments as a plain dict (``Discriminator(**D.init_kwargs)``).

    Args:
        c_dim: number of classes K.
        img_resolution: R, a power of two >= 8.
        img_channels: input channels.
        channel_base, channel_max: a block at resolution r has ``min(channel_base // r, channel_max)``
            channels.
        num_fp16_res: highest resolutions run in mixed precision on CUDA. Default 4.
        mixed_precision_dtype: ``"float16"`` (default) or ``"bfloat16"``.
        conv_clamp: activation clamp (256 in the presets); ``None`` to disable.
        cmap_dim: size of the projection space; default the 4×4 channel count.
        mbstd_group_size, mbstd_num_channels: minibatch standard deviation layer. Defaults 4, 1.
        mapping_kwargs: extra arguments of the label :class:`MappingNetwork` (e.g. ``num_layers``).
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        mixed_precision_dtype: str = "float16",
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        resample_filter=(1, 3, 3, 1),
        mapping_kwargs: dict | None = None,
    ):
        super().__init__()
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"Discriminator: img_resolution must be a power of two >= 8, got {img_resolution}")
        if img_channels < 1 or c_dim < 1:
            raise ValueError(f"Discriminator: img_channels and c_dim must be >= 1, got {img_channels}, {c_dim}")
        if mixed_precision_dtype not in MIXED_PRECISION_DTYPES:
            raise ValueError(
                f"Discriminator: mixed_precision_dtype must be one of {sorted(MIXED_PRECISION_DTYPES)}, "
                f"got {mixed_precision_dtype!r}"
            )
        self.init_kwargs = dict(
            c_dim=c_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            num_fp16_res=num_fp16_res,
            mixed_precision_dtype=mixed_precision_dtype,
            conv_clamp=conv_clamp,
            cmap_dim=cmap_dim,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            resample_filter=list(resample_filter),
            mapping_kwargs=dict(mapping_kwargs or {}),
        )
        self.c_dim, self.img_resolution, self.img_channels = int(c_dim), int(img_resolution), int(img_channels)
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        self.block_resolutions = [2**i for i in range(int(np.log2(img_resolution)), 2, -1)]
        fp16_resolution = max(2 ** (int(np.log2(img_resolution)) + 1 - num_fp16_res), 8)
        self.cmap_dim = channels[4] if cmap_dim is None else int(cmap_dim)
        self.blocks = nn.ModuleList()
        for res in self.block_resolutions:
            self.blocks.append(
                DiscriminatorBlock(
                    channels[res] if res < img_resolution else 0,
                    channels[res],
                    channels[res // 2],
                    resolution=res,
                    img_channels=img_channels,
                    use_fp16=num_fp16_res > 0 and res >= fp16_resolution,
                    mixed_precision_dtype=mixed_precision_dtype,
                    conv_clamp=conv_clamp,
                    resample_filter=resample_filter,
                )
            )
        self.mapping = MappingNetwork(
            z_dim=0, c_dim=c_dim, w_dim=self.cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {})
        )
        self.epilogue = DiscriminatorEpilogue(
            channels[4],
            cmap_dim=self.cmap_dim,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )

    def forward(self, img: torch.Tensor, c, update_emas: bool = False, check_labels: bool = True) -> torch.Tensor:
        """``img`` [N, img_channels, R, R], ``c`` [N, c_dim] soft labels → logits [N, 1] (float32).

        ``update_emas`` is accepted for symmetry with the generator (the discriminator keeps no
        running averages). ``check_labels=False`` skips the simplex check of ``c``.
        """
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(
                f"img must have shape [N, {self.img_channels}, {self.img_resolution}, {self.img_resolution}], "
                f"got {tuple(img.shape)}"
            )
        cmap = self.mapping(None, c, check_labels=check_labels)
        if cmap.shape[0] != img.shape[0]:
            raise ValueError(f"img and c must have the same batch size, got {img.shape[0]} and {cmap.shape[0]}")
        x = None
        for block in self.blocks:
            x = block(x, img)
        return self.epilogue(x, cmap)

    def extra_repr(self) -> str:
        return (
            f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, cmap_dim={self.cmap_dim}"
        )
