"""gemix-monai: generative mixup for medical imaging, MONAI-native.

Importing the package is cheap and never compiles anything: the custom ops look for their
compiled kernels (``gemix_monai._C``) the first time one of them runs. Imported before
``torch``, it defaults ``OMP_WAIT_POLICY`` to ``PASSIVE`` (see :mod:`gemix_monai.fast`).
"""

from gemix_monai.fast import configure_openmp as _configure_openmp

_configure_openmp()

__version__ = "0.1.0"
