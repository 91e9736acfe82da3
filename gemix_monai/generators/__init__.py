"""Generators: the protocol every family follows, and generators made elsewhere.

* :mod:`gemix_monai.generators.protocol` — :class:`ConditionalGenerator` (the one contract of StyleGAN2, DCGAN and
  diffusion generators), :func:`load_generator` (any checkpoint, by its format tag; docs/generators.md) and
  :func:`generate_pairs` (image–mask pairs from a generator trained on them; docs/segmentation.md);

* :mod:`gemix_monai.generators.stylegan2_ada` — NVIDIA StyleGAN2-ADA (PyTorch) training snapshots
  (``network-snapshot-*.pkl``), read without executing anything from the file (docs/generators.md).
"""

from gemix_monai.generators.protocol import (
    GENERATOR_FAMILIES,
    GENERATOR_FORMATS,
    ConditionalGenerator,
    ImageMaskGenerator,
    as_image_generator,
    check_generator,
    generate_pairs,
    generator_family,
    load_generator,
    mask_channels_of,
)
from gemix_monai.generators.stylegan2_ada import (
    SnapshotError,
    UnsafePickleError,
    convert_stylegan2_ada,
    import_stylegan2_ada,
    import_stylegan2_ada_state_dict,
    load_stylegan2_ada_snapshot,
)

__all__ = [
    "ConditionalGenerator",
    "GENERATOR_FAMILIES",
    "GENERATOR_FORMATS",
    "check_generator",
    "generator_family",
    "load_generator",
    "ImageMaskGenerator",
    "as_image_generator",
    "generate_pairs",
    "mask_channels_of",
    "SnapshotError",
    "UnsafePickleError",
    "convert_stylegan2_ada",
    "import_stylegan2_ada",
    "import_stylegan2_ada_state_dict",
    "load_stylegan2_ada_snapshot",
]
