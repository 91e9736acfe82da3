"""The class-conditional generator and its user API (load a checkpoint, generate images from soft labels)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from gemix_monai.networks.conditional_base import (
    SamplingTemplate,
    check_class_names,
    load_checkpoint_dict,
    rebuild_generator,
    save_generator_checkpoint,
)
from gemix_monai.networks.mapping import MappingNetwork
from gemix_monai.networks.synthesis import SynthesisNetwork
from gemix_monai.utils import plain_data

__all__ = ["Generator", "GENERATOR_FORMAT", "MIN_RESOLUTION", "MAX_RESOLUTION"]

#: ``format`` tag of a generator checkpoint file (see docs/design.md).
GENERATOR_FORMAT = "gemix-generator/1"
#: ``format`` tag prefix of the GAN trainer's full checkpoints, whose ``G_ema`` this module can load.
TRAINING_FORMAT_PREFIX = "gemix-gan-training/"
MIN_RESOLUTION, MAX_RESOLUTION = 16, 1024


class Generator(SamplingTemplate, nn.Module):
    """Class-conditional StyleGAN2 generator: ``G(z, c)`` with ``c`` any point of the label simplex.

    Args:
        z_dim: latent size (e.g. 512; 64 in the ``tiny`` preset).
        c_dim: number of classes K (>= 1).
        w_dim: intermediate latent size.
        img_resolution: output size R, a power of two in 16..1024 (the presets stop at 256; larger
            generators come from imported StyleGAN2-ADA snapshots, see docs/generators.md).
        img_channels: output channels (1 for CT and X-ray, several for multi-modal MR).
        class_names: K names, in label order; default ``["class_0", …]``.
        mapping_kwargs: extra :class:`~gemix_monai.networks.mapping.MappingNetwork` arguments
            (``num_layers``, ``lr_multiplier``, ``w_avg_beta``, …).
        synthesis_kwargs: extra :class:`~gemix_monai.networks.synthesis.SynthesisNetwork` arguments
            (``channel_base``, ``channel_max``, ``num_fp16_res``, ``conv_clamp``, …).

    ``init_kwargs`` holds these arguments as a plain dict, so ``Generator(**G.init_kwargs)``
    rebuilds the architecture (that is what checkpoints store).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        class_names: Sequence[str] | None = None,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
    ):
        super().__init__()
        for name, value in (
            ("z_dim", z_dim),
            ("c_dim", c_dim),
            ("w_dim", w_dim),
            ("img_resolution", img_resolution),
            ("img_channels", img_channels),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Generator: {name} must be an int, got {value!r}")
        if z_dim < 1 or c_dim < 1 or w_dim < 1 or img_channels < 1:
            raise ValueError(
                f"Generator: z_dim, c_dim, w_dim and img_channels must be >= 1, got {z_dim}, {c_dim}, {w_dim}, {img_channels}"
            )
        if not (MIN_RESOLUTION <= img_resolution <= MAX_RESOLUTION) or img_resolution & (img_resolution - 1):
            raise ValueError(
                f"Generator: img_resolution must be a power of two in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {img_resolution}"
            )
        class_names = check_class_names("Generator", class_names, c_dim)
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = plain_data(
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                w_dim=w_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                class_names=list(class_names),
                mapping_kwargs=mapping_kwargs,
                synthesis_kwargs=synthesis_kwargs,
            ),
            "init_kwargs",
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.class_names = list(class_names)
        #: classes + preprocessing of the data it was trained on (a dict, docs/data.md), or None
        self.contract = None
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        check_labels: bool = True,
    ) -> torch.Tensor:
        """``z`` [N, z_dim], soft labels ``c`` [N, c_dim] → images [N, img_channels, R, R] (≈[-1, 1]).

        ``noise_mode``: ``"random"`` (training), ``"const"`` (deterministic) or ``"none"``.
        ``update_emas=True`` updates the mapping's ``w_avg`` (training only).
        """
        ws = self.mapping(
            z,
            c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
            check_labels=check_labels,
        )
        return self.synthesis(ws, noise_mode=noise_mode)

    # ------------------------------------------------------------------------------------------
    # The generator protocol (gemix_monai.generators.protocol.ConditionalGenerator)

    #: generator family (``gemix_monai.generators.protocol.GENERATOR_FAMILIES``); ``num_classes`` and
    #: ``image_shape`` come from :class:`~gemix_monai.networks.conditional_base.GeneratorShape`
    family = "stylegan2"

    # ------------------------------------------------------------------------------------------
    # User API

    #: the EMA generator samples in the mode it is in (training's sample grids and audits use it as it is)
    generate_in_eval_mode = False

    def _sample(self, z, labels, truncation_psi, noise_mode):
        return self(z, labels, truncation_psi=truncation_psi, noise_mode=noise_mode, check_labels=False)

    def save_checkpoint(self, path: str | os.PathLike, *, extra: dict | None = None) -> str:
        """Write this generator (architecture, class names, weights) to ``path`` atomically.

        The file is ``{"format": "gemix-generator/1", "config": init_kwargs, "class_names": [...],
        "state_dict": ...}`` (tensors on CPU), readable with ``torch.load(weights_only=True)``.
        ``extra`` adds further top-level entries of plain data (e.g. ``"imported_from"``, see
        docs/generators.md); :meth:`from_checkpoint` ignores them. They may not replace the four above.
        """
        return save_generator_checkpoint(self, GENERATOR_FORMAT, path, extra)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: torch.device | str = "cpu",
        *,
        expected_resolution: int | None = None,
        expected_channels: int | None = None,
        expected_num_classes: int | None = None,
    ) -> "Generator":
        """Load a generator file or a GAN training checkpoint (its ``G_ema``), in eval mode on ``device``.

        Accepted layouts (read with ``weights_only=True``):

        * generator file: ``{"format": "gemix-generator/1", "config": {...}, "class_names": [...], "state_dict": {...}}``;
        * training checkpoint (``"format": "gemix-gan-training/1"``, written by
          ``gemix_monai.engines.gan``): ``{"config": {"G": {...}, "D": {...}}, "G_ema": {...}, "class_names": [...], ...}``.

        The ``expected_*`` arguments refuse a checkpoint made for another resolution, number of
        image channels or number of classes, with a ``ValueError`` that says which.
        """
        ckpt = load_checkpoint_dict(path)
        fmt = ckpt.get("format")
        if fmt == GENERATOR_FORMAT:
            missing = [k for k in ("config", "state_dict") if k not in ckpt]
            if missing:
                raise ValueError(f"{path}: generator checkpoint lacks the keys {missing}")
            config, state = dict(ckpt["config"]), ckpt["state_dict"]
        elif "G_ema" in ckpt and (fmt is None or str(fmt).startswith(TRAINING_FORMAT_PREFIX)):
            config = ckpt["config"].get("G") if isinstance(ckpt.get("config"), dict) else None
            if not isinstance(config, dict):
                raise ValueError(
                    f"{path}: training checkpoint has 'G_ema' but no 'config' -> 'G' (the generator's init kwargs)"
                )
            config, state = dict(config), ckpt["G_ema"]
        elif fmt is not None:
            raise ValueError(
                f"{path}: unsupported checkpoint format {fmt!r}; "
                f"this version reads {GENERATOR_FORMAT!r} and {TRAINING_FORMAT_PREFIX}* files"
            )
        else:
            raise ValueError(
                f"{path}: not a generator checkpoint: expected format {GENERATOR_FORMAT!r} or a training checkpoint with "
                f"'G_ema' and 'config', found keys {sorted(map(str, ckpt))}"
            )
        return rebuild_generator(
            cls,
            ckpt,
            config,
            state,
            str(path),
            device,
            expected_resolution=expected_resolution,
            expected_channels=expected_channels,
            expected_num_classes=expected_num_classes,
        )

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, num_ws={self.num_ws}"
        )
