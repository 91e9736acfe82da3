"""Deprecated module path: the segmentation comparison is :mod:`gemix_monai.experiments.compare.segmentation`
(docs/design.md, "Deprecated import paths")."""

from gemix_monai.experiments.compare.segmentation import *  # noqa: F401,F403
