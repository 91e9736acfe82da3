"""Fixtures of the generator-family tests (defined in ``_family_train``, shared with its helpers)."""

from _family_train import phantom_datalist, phantom_train

__all__ = ["phantom_datalist", "phantom_train"]
