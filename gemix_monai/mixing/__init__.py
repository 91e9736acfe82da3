"""Soft-label samplers and mixing maths (docs/maths.md §3): plain torch/numpy, no MONAI, no I/O.

The MONAI transforms and datasets built on these live in :mod:`gemix_monai.transforms`.
"""

from .labels import SIMPLEX_ATOL, as_soft_labels, check_simplex, labels_of, to_soft_label
from .mix import blend, genmix, pixel_mixup, sample_genmix_lambda, sample_mixup_lambda, sample_permutation
from .samplers import (
    CLASS_BALANCE_MODES,
    SAMPLERS,
    DirichletBetaSampler,
    DirichletSampler,
    OneHotSampler,
    SoftLabelSampler,
    TemperatureSoftmaxSampler,
    as_rng,
    build_sampler,
    class_balance_shares,
    class_balance_weights,
    gemix_code_sampler,
    inverse_frequency_weights,
)

__all__ = [
    "SIMPLEX_ATOL",
    "as_soft_labels",
    "check_simplex",
    "labels_of",
    "to_soft_label",
    "blend",
    "genmix",
    "pixel_mixup",
    "sample_genmix_lambda",
    "sample_mixup_lambda",
    "sample_permutation",
    "SAMPLERS",
    "DirichletBetaSampler",
    "DirichletSampler",
    "OneHotSampler",
    "SoftLabelSampler",
    "TemperatureSoftmaxSampler",
    "as_rng",
    "build_sampler",
    "gemix_code_sampler",
    "inverse_frequency_weights",
    "CLASS_BALANCE_MODES",
    "class_balance_weights",
    "class_balance_shares",
]
