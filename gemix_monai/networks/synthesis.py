"""The synthesis network: StyleGAN2's skip architecture from 4×4 to the output resolution."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from gemix_monai.networks.layers import FullyConnectedLayer, activation_gain
from gemix_monai.ops import bias_act, modulated_conv2d, setup_filter, upsample2d

__all__ = [
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "NOISE_MODES",
    "MIXED_PRECISION_DTYPES",
]

NOISE_MODES = ("random", "const", "none")
MIXED_PRECISION_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _check_noise_mode(noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


class SynthesisLayer(nn.Module):
    """A modulated 3×3 convolution (optionally upsampling by 2), per-pixel noise, bias and lrelu.

    The style of each sample is an affine map of its ``w`` (initialised to 1, i.e. no modulation);
    the convolution weight is modulated by it and demodulated (docs/maths.md §1.3). Noise: ``random`` draws
    N(0, 1) per sample and pixel, ``const`` uses the fixed buffer ``noise_const`` (deterministic
    images), ``none`` adds nothing; either is scaled by the learned ``noise_strength``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = int(in_channels), int(out_channels), int(resolution)
        self.kernel_size, self.up, self.use_noise = int(kernel_size), int(up), bool(use_noise)
        self.activation = activation
        self.act_gain = activation_gain(activation)
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)), persistent=False)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv=None, gain: float = 1.0
    ) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = (
                torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=torch.float32)
                * self.noise_strength
            )
        elif self.use_noise and noise_mode == "const":
            noise = (self.noise_const * self.noise_strength)[None, None]
        if noise is not None:
            noise = noise.to(x.dtype)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.kernel_size // 2,
            resample_filter=self.resample_filter,
            demodulate=True,
            fused=fused_modconv,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, resolution={self.resolution}, up={self.up}, activation={self.activation}"


class ToRGBLayer(nn.Module):
    """A modulated (not demodulated) 1×1 convolution to ``img_channels`` output channels plus bias."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1, conv_clamp: float | None = None
    ):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = int(kernel_size)
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv=None) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(
            x, self.weight, styles, padding=self.kernel_size // 2, demodulate=False, fused=fused_modconv
        )
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


class SynthesisBlock(nn.Module):
    """One resolution of the skip architecture: (const or 2× upsampling conv) → conv → toRGB.

    The running image ``img`` (always float32) is upsampled with ``upsample2d`` and this block's
    toRGB output is added to it. ``use_fp16`` runs the convolutions in ``mixed_precision_dtype``
    on CUDA (never on CPU), with activations clamped to ±``conv_clamp``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        resolution: int,
        img_channels: int,
        w_dim: int,
        use_noise: bool = True,
        use_fp16: bool = False,
        conv_clamp: float | None = None,
        mixed_precision_dtype: str = "float16",
        resample_filter=(1, 3, 3, 1),
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = int(in_channels), int(out_channels), int(resolution)
        self.img_channels = int(img_channels)
        self.use_fp16 = bool(use_fp16)
        self.mp_dtype = MIXED_PRECISION_DTYPES[mixed_precision_dtype]
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)), persistent=False)
        common = dict(
            w_dim=w_dim,
            resolution=resolution,
            conv_clamp=conv_clamp,
            resample_filter=resample_filter,
            use_noise=use_noise,
        )
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **common)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **common)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def compute_dtype(self, device: torch.device) -> torch.dtype:
        return self.mp_dtype if self.use_fp16 and device.type == "cuda" else torch.float32

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "random", fused_modconv=None):
        """``ws`` [N, num_conv + num_torgb, w_dim]; ``x`` [N, in_channels, R/2, R/2] (or None for the
        first block), ``img`` [N, img_channels, R/2, R/2] float32 (or None) → (x, img) at resolution R."""
        dtype = self.compute_dtype(ws.device)
        w_iter = iter(ws.unbind(dim=1))
        if self.conv0 is None:
            x = self.const.to(dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
        img = y if img is None else img + y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, in={self.in_channels}, out={self.out_channels}, use_fp16={self.use_fp16}"


def block_resolutions(img_resolution: int) -> list[int]:
    """4, 8, …, img_resolution."""
    return [2**i for i in range(2, int(np.log2(img_resolution)) + 1)]


def channels_per_resolution(img_resolution: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """``min(channel_base // res, channel_max)`` (at least 1) for every block resolution."""
    return {res: max(1, min(channel_base // res, channel_max)) for res in block_resolutions(img_resolution)}


class SynthesisNetwork(nn.Module):
    """``ws`` [N, num_ws, w_dim] → images [N, img_channels, R, R] (≈[-1, 1] once trained).

    Args:
        w_dim: size of each ``w``.
        img_resolution: R, a power of two >= 4.
        img_channels: output channels (1 for CT, several for multi-modal MR).
        channel_base, channel_max: a block at resolution r has ``min(channel_base // r, channel_max)``
            channels.
        num_fp16_res: the highest resolutions that run in mixed precision on CUDA. Default 4.
        mixed_precision_dtype: ``"float16"`` (default) or ``"bfloat16"``.
        conv_clamp: clamp activations to ±conv_clamp (256 in the presets); ``None`` to disable.
        resample_filter: taps of the separable up-sampling filter. Default [1, 3, 3, 1].
        use_noise: per-layer noise inputs. Default True.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        use_noise: bool = True,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        mixed_precision_dtype: str = "float16",
        conv_clamp: float | None = 256,
        resample_filter=(1, 3, 3, 1),
    ):
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"SynthesisNetwork: img_resolution must be a power of two >= 4, got {img_resolution}")
        if img_channels < 1:
            raise ValueError(f"SynthesisNetwork: img_channels must be >= 1, got {img_channels}")
        if mixed_precision_dtype not in MIXED_PRECISION_DTYPES:
            raise ValueError(
                f"SynthesisNetwork: mixed_precision_dtype must be one of {sorted(MIXED_PRECISION_DTYPES)}, "
                f"got {mixed_precision_dtype!r}"
            )
        self.w_dim, self.img_resolution, self.img_channels = int(w_dim), int(img_resolution), int(img_channels)
        self.block_resolutions = block_resolutions(img_resolution)
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        fp16_resolution = max(2 ** (int(np.log2(img_resolution)) + 1 - num_fp16_res), 8)
        self.num_ws = 0
        self.blocks = nn.ModuleList()
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0,
                channels[res],
                use_fp16=num_fp16_res > 0 and res >= fp16_resolution,
                resolution=res,
                img_channels=img_channels,
                w_dim=w_dim,
                use_noise=use_noise,
                conv_clamp=conv_clamp,
                mixed_precision_dtype=mixed_precision_dtype,
                resample_filter=resample_filter,
            )
            self.blocks.append(block)
            self.num_ws += block.num_conv
        self.num_ws += self.blocks[-1].num_torgb  # each toRGB shares its w with the next block's first conv

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv=None) -> torch.Tensor:
        _check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        index = 0
        for block in self.blocks:
            block_ws = ws.narrow(1, index, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
            index += block.num_conv
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
