"""One contract for every generator behind the mixing: :class:`ConditionalGenerator` and :func:`load_generator`.

Every family — the conditional StyleGAN2 (``gemix_monai.networks.Generator``), the DCGAN baseline
(``gemix_monai.networks.dcgan.DCGANGenerator``) and the diffusion model
(``gemix_monai.networks.diffusion.ConditionalDiffusionGenerator``) — has the same face, so the samplers,
``SyntheticDataset``/``export_synthetic``, the strategies, the audit, the bundle's ``generate`` and the MONAI
Label task use any of them unchanged. A checkpoint's ``format`` tag says which class reads it.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import torch

from gemix_monai.utils import safe_torch_load

__all__ = [
    "ConditionalGenerator",
    "GENERATOR_FORMATS",
    "GENERATOR_FAMILIES",
    "load_generator",
    "generator_family",
    "check_generator",
]

#: checkpoint ``format`` tag -> generator family (training checkpoints load their EMA generator).
GENERATOR_FORMATS: dict[str, str] = {
    "gemix-generator/1": "stylegan2",
    "gemix-gan-training/1": "stylegan2",
    "gemix-dcgan/1": "dcgan",
    "gemix-dcgan-training/1": "dcgan",
    "gemix-diffusion/1": "diffusion",
    "gemix-diffusion-training/1": "diffusion",
}
#: the families, default first.
GENERATOR_FAMILIES = ("stylegan2", "dcgan", "diffusion")


@runtime_checkable
class ConditionalGenerator(Protocol):
    """A generator conditioned on soft labels (points of the probability simplex).

    Attributes:
        num_classes / c_dim: K; class_names: K names in label order.
        image_shape: ``(C, R, R)``; img_resolution: R; img_channels: C.
        z_dim: length of the latent ``z`` a ``generate(..., z=...)`` call takes per image (the diffusion
            family's latent is its starting noise ``x_T``, flattened: ``C·R·R``).
        contract: the stored data contract (classes + preprocessing, a dict, docs/data.md) or ``None``.

    ``generate(soft_labels [B, K], seed=None, **options) -> images [B, C, R, R]`` float32 in [-1, 1]; the same
    seed (or ``z``) and labels give the same images. Common options: ``z``, ``batch_size``, ``device``,
    ``truncation_psi``, ``noise_mode``; family options (diffusion: ``num_inference_steps``, ``guidance_scale``).
    """

    c_dim: int
    class_names: list
    img_resolution: int
    img_channels: int
    z_dim: int
    contract: Any

    @property
    def num_classes(self) -> int: ...

    @property
    def image_shape(self) -> tuple: ...

    def generate(self, soft_labels, seed: int | None = None, **options) -> torch.Tensor: ...


def generator_family(generator) -> str:
    """``"stylegan2"``, ``"dcgan"`` or ``"diffusion"`` (the ``family`` attribute; StyleGAN2 by default)."""
    return str(getattr(generator, "family", "stylegan2"))


def _family_class(family: str):
    if family == "stylegan2":
        from gemix_monai.networks import Generator

        return Generator
    if family == "dcgan":
        from gemix_monai.networks.dcgan import DCGANGenerator

        return DCGANGenerator
    from gemix_monai.networks.diffusion import ConditionalDiffusionGenerator

    return ConditionalDiffusionGenerator


def load_generator(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    expected_num_classes: int | None = None,
    expected_resolution: int | None = None,
    expected_channels: int | None = None,
):
    """Load any generator checkpoint by its ``format`` tag, in eval mode on ``device``.

    Tags: ``gemix-generator/1`` (StyleGAN2), ``gemix-dcgan/1``, ``gemix-diffusion/1`` and the training checkpoints of
    each family (their EMA generator); a file without a tag but with ``G_ema`` is an old StyleGAN2 training
    checkpoint. An unknown tag is a ``ValueError`` naming it and the known ones; ``expected_*`` refuse another
    class count, resolution or channel count with a ``ValueError`` naming both numbers.
    """
    ckpt = safe_torch_load(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    fmt = ckpt.get("format")
    if fmt is None and "G_ema" in ckpt:
        fmt = "gemix-gan-training/1"
    if fmt not in GENERATOR_FORMATS:
        what = (
            f"unknown generator format tag {fmt!r}"
            if fmt is not None
            else f"no 'format' tag (keys {sorted(map(str, ckpt))})"
        )
        raise ValueError(f"{path}: {what}; this version reads {sorted(GENERATOR_FORMATS)}")
    family = GENERATOR_FORMATS[fmt]
    expected = dict(
        expected_num_classes=expected_num_classes,
        expected_resolution=expected_resolution,
        expected_channels=expected_channels,
    )
    cls = _family_class(family)
    if family == "stylegan2":
        generator = cls.from_checkpoint(path, device=device, **expected)
    else:
        generator = cls.from_payload(ckpt, str(path), device, **expected)
    return generator


def check_generator(generator, where: str = "generator") -> ConditionalGenerator:
    """``generator`` itself when it satisfies :class:`ConditionalGenerator`, else a ``TypeError`` naming what lacks."""
    missing = [a for a in ("generate", "c_dim", "z_dim", "img_resolution", "img_channels") if not hasattr(generator, a)]
    if missing:
        raise TypeError(
            f"{where} must be a generator checkpoint path or a ConditionalGenerator; "
            f"{type(generator).__name__} lacks {missing}"
        )
    return generator
