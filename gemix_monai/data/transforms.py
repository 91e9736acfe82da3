"""Deprecated home of the preprocessing chain: it lives in :mod:`gemix_monai.data.preprocessing` (the chain and
:func:`~gemix_monai.data.preprocessing.get_transforms`), split by job into :mod:`gemix_monai.data.readers`,
:mod:`gemix_monai.data.intensity`, :mod:`gemix_monai.data.spatial` and :mod:`gemix_monai.data.files`
(docs/design.md, "Deprecated keywords and import paths"). Kept for a deprecation period so that existing imports
keep working; import from :mod:`gemix_monai.data.preprocessing` (or :mod:`gemix_monai.data`) instead."""

from .intensity import PERCENTILES  # noqa: F401
from .preprocessing import *  # noqa: F401,F403
from .preprocessing import __all__  # noqa: F401
from .readers import (  # noqa: F401
    check_dicom_rescale,
    check_header,
    check_min_side,
    check_nifti_dims,
    check_pil_header,
)
