"""Adaptive discriminator augmentation (ADA): differentiable, invertible-in-distribution augmentations.

Every image shown to the discriminator (reals and fakes alike) passes through :class:`AugmentPipe`.
Each augmentation is applied to a sample with probability ``p · multiplier``, so the adjustable
strength ``p`` (a buffer: it is saved with the module's state) sets how often the discriminator
sees augmented images. As long as ``p`` stays below ≈0.8 the augmentations do not "leak" into the
generated distribution, because the discriminator still sees un-augmented images often enough to
tell the augmentations apart from the data. The ADA controller (a training handler) moves ``p``
from outside; this module only applies it.

Geometric augmentations (``xflip``, ``rotate90``, ``xint``, ``scale``, ``rotate``, ``aniso``,
``xfrac``) are composed into one 3×3 matrix per sample and applied in a single resampling: reflect
padding, 2× upsampling with a windowed-sinc low-pass filter (``upsample2d``), bilinear
``grid_sample`` on the 2× grid, and 2× downsampling with the same filter (``upfirdn2d``). Every
step is linear in the image with exact second-order gradients, so R1 can be computed through the
pipe. Samples whose matrix is the identity are passed through untouched, not resampled.

Intensity augmentations, chosen for medical images (no RGB-specific luma flip, hue or
saturation): ``brightness`` adds one N(0, brightness_std²) offset per sample, ``contrast``
multiplies the deviation from the sample's mean intensity by ``2^N(0, contrast_std²)``; both act
on all channels of a sample alike, so the relation between modalities (e.g. T1/T2 channels) is
kept. ``noise`` adds Gaussian noise with a per-sample σ ~ |N(0, noise_std²)|; ``cutout`` zeroes
(mid-grey in [-1, 1]) a square of side ``cutout_size`` (a fraction of the image) at a random place.

``p = 0`` is exactly the identity: the input tensor itself is returned.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gemix_monai.ops import upfirdn2d, upsample2d

__all__ = ["AugmentPipe", "AUGMENT_PRESETS", "lowpass_filter_taps"]

_GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
_INTENSITY = ("brightness", "contrast", "noise", "cutout")

#: Probability multipliers of the usual combinations (names as in the ADA paper: blit, geom, color).
AUGMENT_PRESETS: dict[str, dict[str, float]] = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1),
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1),
    "bgcn": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, noise=1),
    "bgcc": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1, cutout=1),
}


def lowpass_filter_taps(num_taps: int = 12, beta: float = 4.0) -> list[float]:
    """Kaiser-windowed sinc for 2× resampling (cut-off at the original Nyquist), normalised to sum 1.

    Even length, so that with ``upsample2d``/``downsample2d`` padding the fine and coarse pixel
    grids share their edges. 12 taps, β = 4: gain ≥ 0.91 up to 0.7 × Nyquist, ≤ 0.09 beyond 1.3 × Nyquist.
    """
    if num_taps < 2 or num_taps % 2:
        raise ValueError(f"num_taps must be even and >= 2, got {num_taps}")
    t = np.arange(num_taps) - (num_taps - 1) / 2
    taps = np.sinc(t / 2) * np.kaiser(num_taps, beta)
    return (taps / taps.sum()).tolist()


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=tx.device).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=sx.device).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=theta.device).repeat(theta.shape[0], 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def _reflect_pad(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Reflect padding (x0, x1, y0, y1) of any size: repeated passes, each below the current size."""
    pads = list(pads)
    while any(pads):
        h, w = x.shape[2], x.shape[3]
        step = [min(pads[0], w - 1), min(pads[1], w - 1), min(pads[2], h - 1), min(pads[3], h - 1)]
        if not any(step):  # a 1-pixel axis cannot be reflected: extend it with zeros
            return F.pad(x, pads)
        x = F.pad(x, step, mode="reflect")
        pads = [a - b for a, b in zip(pads, step)]
    return x


class AugmentPipe(nn.Module):
    """ADA augmentation of a batch [N, C, H, W] (any C), applied with strength ``p``.

    Args:
        p: initial augmentation strength in [0, 1]. Default 0.
        xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast, noise, cutout:
            probability multipliers (≥ 0) of each augmentation; an augmentation is applied to a
            sample with probability ``min(p · multiplier, 1)``. ``rotate`` is applied as two
            rotations around the anisotropic scaling, each with probability ``1 − √(1 − p·rotate)``.
            See :data:`AUGMENT_PRESETS`; all default to 0 (no augmentation).
        xint_max: largest integer translation, as a fraction of the image size. Default 0.125.
        scale_std, aniso_std: log2 standard deviations of isotropic / anisotropic scaling. 0.2.
        rotate_max: largest rotation, as a fraction of a half turn. Default 1 (any angle).
        xfrac_std: standard deviation of fractional translation, fraction of the size. 0.125.
        brightness_std: standard deviation of the brightness offset (intensity units). 0.2.
        contrast_std: log2 standard deviation of the contrast factor. 0.5.
        noise_std: standard deviation of the per-sample noise σ. 0.1.
        cutout_size: side of the cutout square, fraction of the image size. 0.5.
    """

    def __init__(
        self,
        p: float = 0.0,
        xflip: float = 0,
        rotate90: float = 0,
        xint: float = 0,
        scale: float = 0,
        rotate: float = 0,
        aniso: float = 0,
        xfrac: float = 0,
        brightness: float = 0,
        contrast: float = 0,
        noise: float = 0,
        cutout: float = 0,
        xint_max: float = 0.125,
        scale_std: float = 0.2,
        rotate_max: float = 1.0,
        aniso_std: float = 0.2,
        xfrac_std: float = 0.125,
        brightness_std: float = 0.2,
        contrast_std: float = 0.5,
        noise_std: float = 0.1,
        cutout_size: float = 0.5,
    ):
        super().__init__()
        self.multipliers = dict(
            xflip=xflip,
            rotate90=rotate90,
            xint=xint,
            scale=scale,
            rotate=rotate,
            aniso=aniso,
            xfrac=xfrac,
            brightness=brightness,
            contrast=contrast,
            noise=noise,
            cutout=cutout,
        )
        self.magnitudes = dict(
            xint_max=xint_max,
            scale_std=scale_std,
            rotate_max=rotate_max,
            aniso_std=aniso_std,
            xfrac_std=xfrac_std,
            brightness_std=brightness_std,
            contrast_std=contrast_std,
            noise_std=noise_std,
            cutout_size=cutout_size,
        )
        for name, value in {**self.multipliers, **self.magnitudes}.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"AugmentPipe: {name} must be a finite number >= 0, got {value!r}")
        self.register_buffer("p", torch.zeros([]))
        self.set_p(p)
        self.register_buffer("lowpass", torch.tensor(lowpass_filter_taps(), dtype=torch.float32), persistent=False)

    @classmethod
    def from_preset(cls, name: str, p: float = 0.0, **magnitudes) -> "AugmentPipe":
        """An ``AugmentPipe`` with the multipliers of :data:`AUGMENT_PRESETS` [``name``] (e.g. ``"bgc"``)."""
        if name not in AUGMENT_PRESETS:
            raise ValueError(f"unknown augmentation preset {name!r}; choose from {sorted(AUGMENT_PRESETS)}")
        return cls(p=p, **AUGMENT_PRESETS[name], **magnitudes)

    def set_p(self, value: float) -> None:
        """Set the augmentation strength (the ADA controller's knob), in [0, 1]."""
        value = float(value)
        if not (0.0 <= value <= 1.0):
            raise ValueError(f"AugmentPipe: p must be in [0, 1], got {value}")
        self.p.fill_(value)

    def extra_repr(self) -> str:
        active = ", ".join(f"{k}={v:g}" for k, v in self.multipliers.items() if v)
        return f"p={float(self.p):.4f}, {active or 'no augmentations'}"

    # ------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"AugmentPipe: images must be a float tensor [N, C, H, W], got {getattr(images, 'shape', type(images).__name__)}"
            )
        p = float(self.p)
        if p == 0:
            return images
        x = images
        if any(self.multipliers[k] for k in _GEOMETRIC):
            x = self._geometric(x, p)
        if any(self.multipliers[k] for k in _INTENSITY):
            x = self._intensity(x, p)
        return x

    def _gate(self, n: int, prob: float, device) -> torch.Tensor:
        """[n] float mask: 1 where the augmentation is applied (probability ``prob``)."""
        return (torch.rand(n, device=device) < min(prob, 1.0)).to(torch.float32)

    def _geometric(self, images: torch.Tensor, p: float) -> torch.Tensor:
        n, _, h, w = images.shape
        device = images.device
        mult, mag = self.multipliers, self.magnitudes
        # G maps output pixel coordinates to input ones (centred, in pixels). Each random transform's
        # distribution is symmetric, so drawing the inverse is drawing the transform.
        g = torch.eye(3, device=device).repeat(n, 1, 1)
        if mult["xflip"]:
            flip = torch.randint(2, (n,), device=device) * self._gate(n, p * mult["xflip"], device)
            g = g @ _scale(1 - 2 * flip, torch.ones(n, device=device))
        if mult["rotate90"]:
            quarter = torch.randint(4, (n,), device=device) * self._gate(n, p * mult["rotate90"], device)
            g = g @ _rotate(-math.pi / 2 * quarter)
            # exact zeros/ones for multiples of 90° (cos(π/2) is 6e-17 in floating point)
            g = torch.where(g.abs() < 1e-6, torch.zeros_like(g), g).round(decimals=6)
        if mult["xint"]:
            gate = self._gate(n, p * mult["xint"], device)
            t = (torch.rand(n, 2, device=device) * 2 - 1) * mag["xint_max"] * gate[:, None]
            g = g @ _translate(torch.round(t[:, 0] * w), torch.round(t[:, 1] * h))
        if mult["scale"]:
            s = torch.exp2(torch.randn(n, device=device) * mag["scale_std"] * self._gate(n, p * mult["scale"], device))
            g = g @ _scale(s, s)
        p_rot = 1 - math.sqrt(max(1 - min(p * mult["rotate"], 1.0), 0.0))
        if mult["rotate"]:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * mag["rotate_max"] * self._gate(n, p_rot, device)
            g = g @ _rotate(-theta)
        if mult["aniso"]:
            s = torch.exp2(torch.randn(n, device=device) * mag["aniso_std"] * self._gate(n, p * mult["aniso"], device))
            g = g @ _scale(s, 1 / s)
        if mult["rotate"]:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * mag["rotate_max"] * self._gate(n, p_rot, device)
            g = g @ _rotate(-theta)
        if mult["xfrac"]:
            gate = self._gate(n, p * mult["xfrac"], device)
            t = torch.randn(n, 2, device=device) * mag["xfrac_std"] * gate[:, None]
            g = g @ _translate(t[:, 0] * w, t[:, 1] * h)

        identity = (g - torch.eye(3, device=device)).abs().amax(dim=(1, 2)) == 0  # [n]: untouched samples

        taps = self.lowpass.shape[0]
        m = taps // 2 - 1  # fine-grid margin that makes the final 'valid' downsampling return H×W
        # The input region the (extended) output grid reads, plus the upsampling filter's reach.
        reach = taps / 4 + 1
        cx, cy = w / 2 + m / 2 + 0.5, h / 2 + m / 2 + 0.5
        corners = torch.tensor(
            [[-cx, -cy, 1], [cx, -cy, 1], [-cx, cy, 1], [cx, cy, 1]], device=device, dtype=torch.float32
        )
        reached = corners @ g[:, :2, :].transpose(1, 2)  # [n, 4, 2]
        lo, hi = reached.amin(dim=(0, 1)), reached.amax(dim=(0, 1))
        stats = torch.cat(
            [-lo - torch.tensor([w / 2, h / 2], device=device), hi - torch.tensor([w / 2, h / 2], device=device)]
        )
        needs = torch.cat([stats + reach, (~identity).any().to(torch.float32)[None]]).tolist()  # the one host sync
        if needs[4] == 0:
            return images
        cap_x, cap_y = 4 * w, 4 * h  # beyond four image sizes, sample zeros rather than pad forever
        px0, py0, px1, py1 = (
            int(min(max(math.ceil(v), 0), cap)) for v, cap in zip(needs[:4], (cap_x, cap_y, cap_x, cap_y))
        )

        x = _reflect_pad(images, [px0, px1, py0, py1])
        hp, wp = x.shape[2], x.shape[3]
        x = upsample2d(x, self.lowpass)  # [n, c, 2hp, 2wp], pixel edges aligned with the coarse grid

        # Output grid: fine pixels q in [-m, 2W + m), centres at (q + 1/2) / 2 in coarse pixel units.
        u = (torch.arange(-m, 2 * w + m, device=device, dtype=torch.float32) + 0.5) / 2 - w / 2
        v = (torch.arange(-m, 2 * h + m, device=device, dtype=torch.float32) + 0.5) / 2 - h / 2
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        base = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)  # [hf, wf, 3]
        src = base.reshape(1, -1, 3) @ g[:, :2, :].transpose(1, 2)  # [n, hf·wf, 2] centred input coords
        gx = (src[..., 0] + w / 2 + px0) / wp * 2 - 1
        gy = (src[..., 1] + h / 2 + py0) / hp * 2 - 1
        grid = torch.stack([gx, gy], dim=-1).reshape(n, base.shape[0], base.shape[1], 2).to(x.dtype)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = upfirdn2d(x, self.lowpass, down=2)  # 'valid' 2× decimation: back to [n, c, h, w]
        return torch.where(identity[:, None, None, None], images, x)

    def _intensity(self, x: torch.Tensor, p: float) -> torch.Tensor:
        n, _, h, w = x.shape
        device = x.device
        mult, mag = self.multipliers, self.magnitudes
        if mult["brightness"]:
            b = torch.randn(n, device=device) * mag["brightness_std"] * self._gate(n, p * mult["brightness"], device)
            x = x + b.to(x.dtype)[:, None, None, None]
        if mult["contrast"]:
            c = torch.exp2(
                torch.randn(n, device=device) * mag["contrast_std"] * self._gate(n, p * mult["contrast"], device)
            )
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = mean + (x - mean) * c.to(x.dtype)[:, None, None, None]
        if mult["noise"]:
            sigma = torch.randn(n, device=device).abs() * mag["noise_std"] * self._gate(n, p * mult["noise"], device)
            x = x + torch.randn_like(x) * sigma.to(x.dtype)[:, None, None, None]
        if mult["cutout"]:
            gate = self._gate(n, p * mult["cutout"], device)
            centre = torch.rand(n, 2, 1, 1, device=device)
            yy = ((torch.arange(h, device=device) + 0.5) / h).view(1, h, 1)
            xx = ((torch.arange(w, device=device) + 0.5) / w).view(1, 1, w)
            half = mag["cutout_size"] / 2
            inside = ((xx - centre[:, 0]).abs() < half) & ((yy - centre[:, 1]).abs() < half)  # [n, h, w]
            keep = 1 - inside.to(torch.float32) * gate[:, None, None]
            x = x * keep.to(x.dtype)[:, None]
        return x
