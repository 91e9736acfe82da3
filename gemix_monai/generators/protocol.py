"""One contract for every generator behind the mixing: :class:`ConditionalGenerator` and :func:`load_generator`.

Every family — the conditional StyleGAN2 (``gemix_monai.networks.Generator``), the DCGAN baseline
(``gemix_monai.networks.dcgan.DCGANGenerator``) and the diffusion model
(``gemix_monai.networks.diffusion.ConditionalDiffusionGenerator``) — has the same face, so the samplers,
``SyntheticDataset``/``export_synthetic``, the strategies, the audit, the bundle's ``generate`` and the MONAI
Label task use any of them unchanged. A checkpoint's ``format`` tag says which class reads it.

Image–mask generators (docs/segmentation.md): a generator trained on ``[image channels…, mask channels…]``
records ``mask_channels = M > 0`` in its contract. :func:`load_generator` returns it as an
:class:`ImageMaskGenerator`, whose ``generate`` gives the ``C`` image channels only (``img_channels = C``), so every
image consumer works unchanged; :func:`generate_pairs` gives ``(images, masks)``, the masks binarised by the rule of
:mod:`gemix_monai.data.masks`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from gemix_monai.utils import safe_torch_load

logger = logging.getLogger(__name__)

__all__ = [
    "ConditionalGenerator",
    "GENERATOR_FORMATS",
    "GENERATOR_FAMILIES",
    "load_generator",
    "preferred_generator",
    "generator_record",
    "GENERATOR_CHOICES",
    "generator_family",
    "check_generator",
    "ImageMaskGenerator",
    "mask_channels_of",
    "generate_pairs",
    "as_image_generator",
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


#: ``choice`` of :func:`preferred_generator`: ``auto`` (the audit-chosen ``best.pt`` when it lies beside the
#: ``generator.pt`` given, else that file), ``best`` (``best.pt``, required), ``file`` (exactly the path given).
GENERATOR_CHOICES = ("auto", "best", "file")

_announced: set[tuple[str, str]] = set()


def preferred_generator(path: str | os.PathLike, choice: str = "auto") -> Path:
    """The generator file to use for ``path`` (docs/generators.md, "Checkpoints chosen by the audit").

    A training run with a validation split keeps ``models/generator/best.pt`` (chosen by the training-time audit)
    beside ``models/generator/generator.pt`` (the latest). With ``choice="auto"`` a ``generator.pt`` that has a
    ``best.pt`` beside it resolves to ``best.pt``, and the choice is logged once per process naming both files and
    the criterion; ``"file"`` takes ``path`` as it is; ``"best"`` requires the ``best.pt``.
    """
    if choice not in GENERATOR_CHOICES:
        raise ValueError(f"generator choice must be one of {list(GENERATOR_CHOICES)}, got {choice!r}")
    path = Path(path)
    if choice == "file" or path.name != "generator.pt":
        return path
    best = path.with_name("best.pt")
    if not best.is_file():
        if choice == "best":
            raise FileNotFoundError(
                f"no audit-chosen generator beside {path}: {best} does not exist (train with a validation split "
                "and the training-time audit, or use choice 'auto'/'file')"
            )
        return path
    key = (str(path), str(best))
    if key not in _announced:
        _announced.add(key)
        selection = generator_record(best).get("selection") or {}
        row = selection.get("row") or {}
        crit = selection.get("criterion", "?")
        value = row.get(crit)
        logger.info(
            "generator: using %s, chosen by the training-time audit (%s = %s at %s kimg), instead of the latest %s",
            best,
            crit,
            "n/a" if value is None else f"{value:.4g}",
            row.get("kimg", "?"),
            path.name,
        )
    return best


def generator_record(path: str | os.PathLike) -> dict:
    """What a generator file says about itself, without building the network: ``format``, ``family``,
    ``class_names``, ``contract``, ``training`` (how it was trained) and ``selection`` (why it was chosen), plus the
    file's ``sha256``."""
    import hashlib

    ckpt = safe_torch_load(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    fmt = ckpt.get("format")
    return {
        "path": str(path),
        "sha256": digest.hexdigest(),
        "format": fmt,
        "family": GENERATOR_FORMATS.get(fmt),
        "class_names": ckpt.get("class_names"),
        "contract": ckpt.get("contract"),
        "training": ckpt.get("training"),
        "selection": ckpt.get("selection"),
    }


def load_generator(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    expected_num_classes: int | None = None,
    expected_resolution: int | None = None,
    expected_channels: int | None = None,
    choice: str = "auto",
):
    """Load any generator checkpoint by its ``format`` tag, in eval mode on ``device``.

    Tags: ``gemix-generator/1`` (StyleGAN2), ``gemix-dcgan/1``, ``gemix-diffusion/1`` and the training checkpoints of
    each family (their EMA generator); a file without a tag but with ``G_ema`` is an old StyleGAN2 training
    checkpoint. An unknown tag is a ``ValueError`` naming it and the known ones; ``expected_*`` refuse another
    class count, resolution or channel count with a ``ValueError`` naming both numbers. ``choice``: see
    :func:`preferred_generator` (by default a ``generator.pt`` with an audit-chosen ``best.pt`` beside it loads
    ``best.pt``); the file loaded is the generator's ``checkpoint_path`` attribute.
    """
    path = preferred_generator(path, choice)
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
    mask_channels = mask_channels_of(ckpt)
    expected = dict(
        expected_num_classes=expected_num_classes,
        expected_resolution=expected_resolution,
        # a mask-carrying network has C + M output channels; its image channels are checked below
        expected_channels=None if mask_channels else expected_channels,
    )
    cls = _family_class(family)
    if family == "stylegan2":
        generator = cls.from_checkpoint(path, device=device, **expected)
    else:
        generator = cls.from_payload(ckpt, str(path), device, **expected)
    if mask_channels:
        generator = ImageMaskGenerator(generator, mask_channels)
        if expected_channels is not None and generator.img_channels != expected_channels:
            raise ValueError(
                f"{path}: the generator's number of image channels is {generator.img_channels} (plus "
                f"{mask_channels} mask channel(s)), expected {expected_channels}"
            )
    generator.checkpoint_path = str(path)
    return generator


def mask_channels_of(obj) -> int:
    """``M``, the mask channels of a generator, its checkpoint dict or a contract (0 when it records none)."""
    if isinstance(obj, ImageMaskGenerator):
        return obj.mask_channels
    if isinstance(obj, dict):
        contract = obj if "preprocessing" in obj else obj.get("contract")  # a contract dict, or a checkpoint
    elif hasattr(obj, "preprocessing"):
        contract = obj  # a DataContract
    else:
        contract = getattr(obj, "contract", None)  # a network
    if contract is None:
        return 0
    preprocessing = contract.get("preprocessing") if isinstance(contract, dict) else contract.preprocessing
    if preprocessing is None:
        return 0
    value = preprocessing.get("mask_channels", 0) if isinstance(preprocessing, dict) else preprocessing.mask_channels
    return int(value or 0)


class ImageMaskGenerator(torch.nn.Module):
    """A generator trained on image–mask pairs, seen as an image generator (docs/segmentation.md).

    ``network`` outputs ``C + M`` channels (images then masks in {−1, +1}, :func:`~gemix_monai.data.masks.stack_image_mask`);
    here ``img_channels = C``, ``mask_channels = M`` and ``generate`` returns ``[B, C, R, R]``, so samplers,
    ``SyntheticDataset``, the strategies and the audit use it as any image generator. :meth:`generate_pairs` gives
    the masks too. Every other attribute (``c_dim``, ``z_dim``, ``class_names``, ``contract``, ``family``,
    ``save_checkpoint`` …) is the network's.
    """

    def __init__(self, network: torch.nn.Module, mask_channels: int):
        super().__init__()
        if isinstance(mask_channels, bool) or not isinstance(mask_channels, int) or mask_channels < 1:
            raise ValueError(f"mask_channels must be a positive integer, got {mask_channels!r}")
        if int(network.img_channels) <= mask_channels:
            raise ValueError(
                f"the network makes {network.img_channels} channels; {mask_channels} mask channel(s) leave no image channel"
            )
        self.network = network
        self.mask_channels = mask_channels
        self.img_channels = int(network.img_channels) - mask_channels

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules (``network``)
        except AttributeError:
            if name == "network":
                raise
            return getattr(self.network, name)

    @property
    def image_shape(self) -> tuple:
        return (self.img_channels, self.network.img_resolution, self.network.img_resolution)

    @property
    def num_classes(self) -> int:
        return int(self.network.c_dim)

    def forward(self, *args, **kwargs):
        """The network's own output, all ``C + M`` channels (as the sample grids and training see it)."""
        return self.network(*args, **kwargs)

    def generate(self, soft_labels, seed: int | None = None, **options) -> torch.Tensor:
        """Images ``[B, C, R, R]`` in [-1, 1]: the network's output without its mask channels."""
        return self.network.generate(soft_labels, seed=seed, **options)[:, : self.img_channels]

    def generate_pairs(self, soft_labels, seed: int | None = None, *, soft: bool = False, **options):
        """``(images [B, C, R, R], masks [B, M, R, R])``: see :func:`generate_pairs`."""
        return generate_pairs(self, soft_labels, seed=seed, soft=soft, **options)


def as_image_generator(generator):
    """``generator`` as an image generator: a raw network whose contract records ``mask_channels > 0`` is wrapped in an
    :class:`ImageMaskGenerator` (its ``generate`` then gives the image channels only); anything else is returned as
    it is (docs/segmentation.md)."""
    if isinstance(generator, ImageMaskGenerator) or not isinstance(generator, torch.nn.Module):
        return generator
    mask_channels = mask_channels_of(generator)
    return ImageMaskGenerator(generator, mask_channels) if mask_channels else generator


def generate_pairs(generator, soft_labels, seed: int | None = None, *, soft: bool = False, **options):
    """Image–mask pairs from a generator trained on them (docs/segmentation.md).

    Args:
        generator: an :class:`ImageMaskGenerator` (what :func:`load_generator` returns for such a checkpoint), or the
            raw network whose ``contract`` records ``mask_channels`` (e.g. ``trainer.G_ema``).
        soft_labels: ``[B, K]`` points of the simplex, as for ``generate``.
        seed / **options: as ``generate`` (``z``, ``truncation_psi``, ``noise_mode``, ``batch_size``, ``device`` …);
            the images equal ``generator.generate(...)``'s for the same arguments.
        soft: return the soft masks in [0, 1] instead of binarising them.

    Returns:
        ``(images [B, C, R, R] float32 in [-1, 1], masks [B, M, R, R] float32)``, the masks in {0, 1} by
        :func:`gemix_monai.data.masks.binarise_masks` (binary: soft > 0.5; several structures: the largest channel
        when above 0.5, so at most one per pixel).

    Raises:
        ValueError: the generator records no mask channels (trained on images alone).
    """
    from gemix_monai.data.masks import binarise_masks, split_image_mask

    mask_channels = mask_channels_of(generator)
    if mask_channels == 0:
        raise ValueError(
            "this generator makes images only (its contract records mask_channels=0); train it on data with masks "
            "(gemix-monai train-gan --masks on) to generate image–mask pairs"
        )
    network = generator.network if isinstance(generator, ImageMaskGenerator) else generator
    images, soft_masks = split_image_mask(network.generate(soft_labels, seed=seed, **options), mask_channels)
    return images, (soft_masks if soft else binarise_masks(soft_masks))


def check_generator(generator, where: str = "generator") -> ConditionalGenerator:
    """``generator`` itself when it satisfies :class:`ConditionalGenerator`, else a ``TypeError`` naming what lacks."""
    missing = [a for a in ("generate", "c_dim", "z_dim", "img_resolution", "img_channels") if not hasattr(generator, a)]
    if missing:
        raise TypeError(
            f"{where} must be a generator checkpoint path or a ConditionalGenerator; "
            f"{type(generator).__name__} lacks {missing}"
        )
    return generator
