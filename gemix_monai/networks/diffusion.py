"""Conditional diffusion generator on MONAI's generative components, conditioned on soft labels.

* Network: ``monai.networks.nets.DiffusionModelUNet(with_conditioning=True, cross_attention_dim=K)``; the soft
  label ``c`` [N, K] enters as a one-token cross-attention context ``c[:, None, :]`` [N, 1, K].
  Why not ``num_class_embeds``: that path looks an *integer* class up in an embedding table; a soft label is a
  point of the simplex (``0.7·e_1 + 0.3·e_2``), which a table cannot index. The context path takes any real
  vector, so soft labels pass through unchanged (the attention's key/value projections are linear in ``c``).
* Training: ``DDPMScheduler`` noise schedule and ``DiffusionInferer`` noise prediction (ε-MSE); the condition is
  replaced by the null context (all zeros — not a point of the simplex, so never confused with a label) with
  probability ``p_uncond`` (classifier-free guidance).
* Sampling: ``DDIMScheduler`` with ``num_inference_steps`` (default 50) and η = 0, so an image is a deterministic
  function of its starting noise ``x_T`` (the latent ``z``, flattened: ``z_dim = C·R·R``) and label;
  ``guidance_scale`` w gives ``ε = ε(∅) + w·(ε(c) − ε(∅))`` (w = 1: the plain conditional model, one pass).

Presets (:func:`diffusion_preset`): ``tiny`` (32 px, few channels, CPU), ``32``, ``64``, ``128``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from gemix_monai.networks.conditional_base import ConditionalGeneratorBase

__all__ = [
    "DIFFUSION_FORMAT",
    "DIFFUSION_TRAINING_FORMAT",
    "DIFFUSION_PRESET_NAMES",
    "ConditionalDiffusionGenerator",
    "diffusion_preset",
]

DIFFUSION_FORMAT = "gemix-diffusion/1"
DIFFUSION_TRAINING_FORMAT = "gemix-diffusion-training/1"
DIFFUSION_PRESET_NAMES = ("tiny", "32", "64", "128")


def _check_steps(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_scale(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"guidance_scale must be a finite number >= 0 (1 = no guidance), got {value!r}")
    return float(value)


class ConditionalDiffusionGenerator(ConditionalGeneratorBase):
    """Soft-label conditional DDPM/DDIM generator (see the module docstring).

    Args:
        c_dim, img_resolution, img_channels, class_names: as every generator.
        channels, attention_levels, num_res_blocks, num_head_channels, norm_num_groups: ``DiffusionModelUNet``
            arguments (cross-attention runs at the levels with attention).
        num_train_timesteps, schedule, beta_start, beta_end: the DDPM noise schedule (shared by DDIM sampling).
        num_inference_steps: default DDIM steps of :meth:`generate`; guidance_scale: its default guidance.
    """

    FORMAT = DIFFUSION_FORMAT
    TRAINING_FORMAT = DIFFUSION_TRAINING_FORMAT
    family = "diffusion"

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int = 1,
        class_names: Sequence[str] | None = None,
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, True, True),
        num_res_blocks: int = 1,
        num_head_channels: int = 32,
        norm_num_groups: int = 16,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        beta_start: float = 1e-4,
        beta_end: float = 2e-2,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
    ):
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet

        channels, attention_levels = [int(c) for c in channels], [bool(a) for a in attention_levels]
        self._setup(
            dict(
                c_dim=c_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                channels=channels,
                attention_levels=attention_levels,
                num_res_blocks=num_res_blocks,
                num_head_channels=num_head_channels,
                norm_num_groups=norm_num_groups,
                num_train_timesteps=num_train_timesteps,
                schedule=schedule,
                beta_start=beta_start,
                beta_end=beta_end,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
            ),
            class_names,
        )
        if not any(attention_levels):
            raise ValueError(
                "ConditionalDiffusionGenerator: at least one attention level is needed (the label enters "
                "through cross-attention)"
            )
        self.z_dim = img_channels * img_resolution * img_resolution
        self.num_train_timesteps, self.schedule = _check_steps(num_train_timesteps, "num_train_timesteps"), schedule
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.num_inference_steps = _check_steps(num_inference_steps, "num_inference_steps")
        self.guidance_scale = _check_scale(guidance_scale)
        self.unet = DiffusionModelUNet(
            spatial_dims=2,
            in_channels=img_channels,
            out_channels=img_channels,
            channels=channels,
            attention_levels=attention_levels,
            num_res_blocks=num_res_blocks,
            num_head_channels=num_head_channels,
            norm_num_groups=norm_num_groups,
            with_conditioning=True,
            cross_attention_dim=c_dim,
        )

    # -- schedules ---------------------------------------------------------------------------------
    def train_scheduler(self):
        from monai.networks.schedulers import DDPMScheduler

        return DDPMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            schedule=self.schedule,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
        )

    def sample_scheduler(self, num_inference_steps: int | None = None):
        from monai.networks.schedulers import DDIMScheduler

        scheduler = DDIMScheduler(
            num_train_timesteps=self.num_train_timesteps,
            schedule=self.schedule,
            beta_start=self.beta_start,
            beta_end=self.beta_end,
            clip_sample=True,
        )
        steps = (
            self.num_inference_steps
            if num_inference_steps is None
            else _check_steps(num_inference_steps, "num_inference_steps")
        )
        scheduler.set_timesteps(min(steps, self.num_train_timesteps))
        return scheduler

    @staticmethod
    def context(c: torch.Tensor) -> torch.Tensor:
        """Soft labels [N, K] → cross-attention context [N, 1, K]."""
        return c[:, None, :]

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Noise prediction ε(x_t, t, c); ``c=None`` is the null (unconditional) context."""
        ctx = torch.zeros(x.shape[0], 1, self.c_dim, device=x.device, dtype=x.dtype) if c is None else self.context(c)
        return self.unet(x, timesteps=timesteps, context=ctx)

    def _sampling_options(self, truncation_psi, noise_mode, options: dict) -> tuple[float, dict]:
        """``num_inference_steps`` (DDIM steps, default the model's) and ``guidance_scale`` (classifier-free guidance,
        default the model's); ``truncation_psi`` other than 1 is refused (a diffusion model has no truncation);
        ``noise_mode`` is accepted for the common interface (DDIM with η = 0 adds no noise)."""
        steps, scale = options.pop("num_inference_steps", None), options.pop("guidance_scale", None)
        if options:
            raise TypeError(f"ConditionalDiffusionGenerator.generate got unknown options {sorted(options)}")
        if float(truncation_psi) != 1.0:
            raise ValueError(
                f"truncation_psi={truncation_psi!r}: a diffusion generator has no truncation (use 1.0; "
                "guidance_scale trades diversity for fidelity instead)"
            )
        scale = self.guidance_scale if scale is None else _check_scale(scale)
        return 1.0, {"scheduler": self.sample_scheduler(steps), "scale": scale}

    def _sample(self, z, labels, truncation_psi, noise_mode, scheduler, scale):
        """DDIM (η = 0) from ``x_T = z.view(B, C, R, R)``."""
        from monai.inferers import DiffusionInferer

        return DiffusionInferer(scheduler).sample(
            z.reshape(-1, *self.image_shape),
            self.unet,
            scheduler,
            conditioning=self.context(labels),
            mode="crossattn",
            verbose=False,
            cfg=None if scale == 1.0 else scale,
            cfg_fill_value=0.0,
        )


def diffusion_preset(name: str = "tiny") -> dict:
    """``{"name", "resolution", "G": ConditionalDiffusionGenerator kwargs (without c_dim/img_channels), "batch_size",
    "lr", "p_uncond", "ema_kimg", "ema_rampup", "sample_steps"}``."""
    name = str(name)
    if name not in DIFFUSION_PRESET_NAMES:
        raise ValueError(f"unknown diffusion preset {name!r}; expected one of {list(DIFFUSION_PRESET_NAMES)}")
    if name == "tiny":
        g = dict(
            img_resolution=32,
            channels=[8, 16, 16],
            attention_levels=[False, False, True],
            num_res_blocks=1,
            num_head_channels=8,
            norm_num_groups=4,
            num_train_timesteps=1000,
            num_inference_steps=50,
        )
        return {
            "name": name,
            "resolution": 32,
            "G": g,
            "batch_size": 16,
            "lr": 1e-3,
            "p_uncond": 0.1,
            "ema_kimg": 1.0,
            "ema_rampup": 0.05,
            # what generate() draws (its 50 DDIM steps): at 10 steps the same 50-kimg model draws images with 10x
            # the real high-frequency energy (docs/generators.md, "Diffusion: budget or defect")
            "sample_steps": 50,
        }
    res = int(name)
    channels = [64, 128, 128] if res == 32 else [64, 128, 256, 256]
    attention = [False, True, True] if res == 32 else [False, False, True, True]
    g = dict(
        img_resolution=res,
        channels=channels,
        attention_levels=attention,
        num_res_blocks=2,
        num_head_channels=32,
        norm_num_groups=32,
        num_train_timesteps=1000,
        num_inference_steps=50,
    )
    return {
        "name": name,
        "resolution": res,
        "G": g,
        "batch_size": 32 if res <= 64 else 16,
        "lr": 1e-4,
        "p_uncond": 0.1,
        "ema_kimg": 10.0,
        "ema_rampup": 0.05,
        "sample_steps": 50,
    }
