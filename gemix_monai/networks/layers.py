"""Building blocks shared by the generator and the discriminator.

Every layer uses the *equalised learning rate* of StyleGAN: parameters are initialised from
N(0, 1) (divided by the learning-rate multiplier) and scaled at run time by
``lr_multiplier / sqrt(fan_in)``, so that Adam's per-parameter step size acts alike on every
layer whatever its fan-in. Activations go through :func:`gemix_monai.ops.bias_act` (bias,
non-linearity, gain and clamping in one op), resampling through :func:`gemix_monai.ops.upfirdn2d`,
so that every layer has exact first- and second-order gradients (R1 needs the second).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gemix_monai.ops import bias_act, downsample2d, setup_filter, upfirdn2d

__all__ = ["FullyConnectedLayer", "Conv2dLayer", "MinibatchStdLayer", "activation_gain", "normalize_2nd_moment"]

_DEFAULT_GAIN = {
    "linear": 1.0,
    "relu": math.sqrt(2),
    "lrelu": math.sqrt(2),
    "tanh": 1.0,
    "sigmoid": 1.0,
    "elu": 1.0,
    "selu": 1.0,
    "softplus": 1.0,
    "swish": math.sqrt(2),
}


def activation_gain(activation: str) -> float:
    """The gain that keeps the activations' second moment ≈ 1 after ``activation`` (docs/maths.md §1.2 table)."""
    try:
        return _DEFAULT_GAIN[activation]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(_DEFAULT_GAIN)}, got {activation!r}") from None


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x², dim) + eps)``: the ``norm2`` of docs/maths.md §2."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """``act(x @ (W·g)ᵀ + b·lr_multiplier)`` with ``g = lr_multiplier / sqrt(in_features)``.

    Args:
        in_features, out_features: sizes of the input [N, in] and output [N, out].
        bias: learn a bias. Default True.
        activation: any :func:`gemix_monai.ops.bias_act` activation. Default ``"linear"``.
        lr_multiplier: scales the effective learning rate of this layer (0.01 in the mapping
            network, which makes W space change slowly). Default 1.
        bias_init: the initial value of the *effective* bias. Default 0.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"FullyConnectedLayer: in_features and out_features must be >= 1, got {in_features}, {out_features}"
            )
        activation_gain(activation)  # validates the name
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate 2-D convolution, optionally low-pass filtered and downsampled by 2.

    ``down=2`` filters with ``resample_filter`` (through ``upfirdn2d``) and then convolves with
    stride 2; the padding is chosen so that output pixel ``j`` is centred on input pixels
    ``2j, 2j+1`` (the pixel-edge-aligned convention of ``downsample2d``). Otherwise the convolution
    is 'same' (padding ``kernel_size // 2``).

    Args:
        in_channels, out_channels, kernel_size: as for ``nn.Conv2d`` (odd kernel sizes).
        bias: learn a bias. Default True.
        activation: a ``bias_act`` activation. Default ``"linear"``.
        down: 1 or 2.
        resample_filter: taps of the separable low-pass filter used when ``down=2``.
        conv_clamp: clamp the output to ``±conv_clamp`` (times the call's ``gain``); ``None``: no clamp.
            Needed for float16 activations.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        resample_filter=(1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"Conv2dLayer: kernel_size must be odd and >= 1, got {kernel_size}")
        if down not in (1, 2):
            raise ValueError(f"Conv2dLayer: down must be 1 or 2, got {down}")
        self.in_channels, self.out_channels, self.kernel_size = int(in_channels), int(out_channels), int(kernel_size)
        self.activation = activation
        self.act_gain = activation_gain(activation)
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)), persistent=False)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        k = self.kernel_size
        if self.down == 2:
            fw = self.resample_filter.shape[-1]
            if k == 1:  # a 1x1 convolution commutes with the filter: downsample first, on fewer pixels
                x = downsample2d(x, self.resample_filter, down=2)
                x = torch.nn.functional.conv2d(x, w)
            else:
                # Output pixel j is centred on input 2j + 1/2 when the filter stage pads (fw + k - 3) / 2 per side.
                x = upfirdn2d(x, self.resample_filter, padding=(fw + k - 3) // 2)
                x = torch.nn.functional.conv2d(x, w, stride=2)
        else:
            x = torch.nn.functional.conv2d(x, w, padding=k // 2)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"activation={self.activation}, down={self.down}"
        )


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation of features across a group of samples as extra channels.

    The batch is split into groups of ``group_size`` samples (the largest divisor of the batch size
    not above ``group_size``, so any batch size works); within each group the per-feature standard
    deviation is averaged over ``num_channels`` slices of the channels and the spatial positions,
    and broadcast back as ``num_channels`` constant feature maps. A generator that collapses to
    few modes produces a small value here, which the discriminator learns to punish.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        if group_size < 1 or num_channels < 1:
            raise ValueError(
                f"MinibatchStdLayer: group_size and num_channels must be >= 1, got {group_size}, {num_channels}"
            )
        self.group_size = int(group_size)
        self.num_channels = int(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c % self.num_channels != 0:
            raise ValueError(
                f"MinibatchStdLayer: {c} channels cannot be split into num_channels={self.num_channels} slices"
            )
        g = min(self.group_size, n)
        while n % g != 0:
            g -= 1
        f = self.num_channels
        # Sample i = a * (n // g) + b sits at y[a, b]: group b holds the samples with equal i mod (n // g).
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=(2, 3, 4))  # [n // g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # back to sample order: sample i gets group i mod (n // g)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
