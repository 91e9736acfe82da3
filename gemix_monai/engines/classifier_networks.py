"""Deprecated home of the classifier networks: they live in :mod:`gemix_monai.networks.classifiers` (docs/design.md,
"Deprecated import paths"). Kept so that existing imports and bundle configs keep working."""

from gemix_monai.networks.classifiers import (  # noqa: F401
    CLASSIFIER_NETWORKS,
    FEATURE_LAYERS,
    SoftTargetCrossEntropy,
    TinyClassifier,
    build_classifier_network,
)

__all__ = [
    "CLASSIFIER_NETWORKS",
    "FEATURE_LAYERS",
    "TinyClassifier",
    "build_classifier_network",
    "SoftTargetCrossEntropy",
]
