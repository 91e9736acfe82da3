"""Generators made elsewhere, brought into this project's :class:`~gemix_monai.networks.Generator`.

* :mod:`gemix_monai.generators.stylegan2_ada` — NVIDIA StyleGAN2-ADA (PyTorch) training snapshots
  (``network-snapshot-*.pkl``), read without executing anything from the file (docs/generators.md).
"""

from gemix_monai.generators.stylegan2_ada import (
    SnapshotError,
    UnsafePickleError,
    convert_stylegan2_ada,
    import_stylegan2_ada,
    import_stylegan2_ada_state_dict,
    load_stylegan2_ada_snapshot,
)

__all__ = [
    "SnapshotError",
    "UnsafePickleError",
    "convert_stylegan2_ada",
    "import_stylegan2_ada",
    "import_stylegan2_ada_state_dict",
    "load_stylegan2_ada_snapshot",
]
