"""Deprecated module path: the shared command-line options are :mod:`gemix_monai.cli.args` (docs/design.md,
"Deprecated import paths")."""

from gemix_monai.cli.args import add_data_arguments, data_options, pair_or_name  # noqa: F401
