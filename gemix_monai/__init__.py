"""gemix-monai: generative mixup for medical imaging, MONAI-native.

Importing the package is cheap and never compiles anything: the custom ops look for their
compiled kernels (``gemix_monai._C``) the first time one of them runs.
"""

__version__ = "0.1.0"
