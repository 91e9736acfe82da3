"""MONAI face of :mod:`gemix_monai.mixing`: soft-label mixing transforms, generator-backed datasets, export.

- ``ToSoftLabel(d)``: class index -> one-hot soft label.
- ``SoftMixUp(d)``: pixel mixup with soft labels (baseline), any batch size.
- ``GenMix(d)``: synthetic <-> real mixing, lambda ~ Beta(alpha, 1).
- ``SyntheticSource``, ``SyntheticDataset``, ``RealSyntheticDataset``: synthesis on the fly.
- ``export_synthetic``: offline export (NIfTI/PNG + labels.csv + datalist JSON), resumable.
- ``build_strategy``: the classifier's training-data strategies, one line each.
"""

from .export import export_synthetic
from .mix import GENMIX_PARTNERS, GenMix, GenMixd, SoftMixUp, SoftMixUpd, ToSoftLabel, ToSoftLabeld
from .strategies import STRATEGIES, Strategy, build_strategy
from .synthetic import RealSyntheticDataset, SyntheticDataset, SyntheticSource, load_generator

__all__ = [
    "export_synthetic",
    "GENMIX_PARTNERS",
    "GenMix",
    "GenMixd",
    "SoftMixUp",
    "SoftMixUpd",
    "ToSoftLabel",
    "ToSoftLabeld",
    "STRATEGIES",
    "Strategy",
    "build_strategy",
    "RealSyntheticDataset",
    "SyntheticDataset",
    "SyntheticSource",
    "load_generator",
]
