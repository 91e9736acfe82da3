"""Deprecated module path: the pair audit is :mod:`gemix_monai.experiments.audit.pairs` (docs/design.md,
"Deprecated import paths")."""

from gemix_monai.experiments.audit.pairs import *  # noqa: F401,F403
