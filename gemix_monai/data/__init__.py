"""gemix_monai.data: readers, CT windowing and the embedded phantom dataset.

All sources — the default CT liver-lesion phantoms, DICOM / NIfTI / PNG files (folders, CSV
manifests, MONAI datalists, COVIDx-CT label files) and MedMNIST ``.npz`` — become the same stream
``{"image": float32 [C, x, y] in [-1, 1], "label": int}`` (MONAI's orientation) through
:func:`get_dataset`, which fixes the split, checks for leakage, decodes and validates every entry
before training starts, and records the preprocessing contract (:mod:`.contract`) that models store.
:func:`get_transforms` is the preprocessing alone; :func:`to_hu` / :func:`to_uint8` / :func:`to_display`
invert it for export and pictures.
"""

from .contract import DataContract, Preprocessing, check_class_names, check_contract, contract_of, decide_intensity
from .covidx import COVIDX_CLASS_NAMES, read_covidx_labels
from .datalist import (
    build_datalist_from_csv,
    build_datalist_from_folder,
    canonical_split,
    load_split,
    read_datalist,
    write_datalist,
)
from .dataset import (
    GemixDataset,
    build_datalist,
    check_split_seed,
    default_data_dir,
    default_phantom_datalist,
    get_dataset,
    source_kind,
)
from .discover import ImageScan, discover_images, scan_images
from .errors import DataError, DataValidationError, ImageReadError, NotASliceError
from .groups import NEAR_DUPLICATE_BITS, perceptual_hash
from .intensity import IntensityRule
from .medmnist import MEDMNIST_CLASS_NAMES, load_medmnist_items
from .phantoms import CLASS_NAMES as PHANTOM_CLASS_NAMES
from .phantoms import ensure_default_dataset, generate_phantom_dataset, render_phantoms
from .preprocessing import (
    HU_WINDOWS,
    INTENSITY_MODES,
    MIN_IMAGE_SIDE,
    CheckLabeld,
    CropBoxd,
    ExtractSliced,
    IntensityToTrainingRanged,
    LoadMedicalImaged,
    ToChannelsd,
    get_transforms,
    resolve_hu_window,
    to_display,
    to_hu,
    to_uint8,
)
from .splits import check_leakage, check_output_outside_data, fixed_split_datalist
from .validate import check_datalist, inspect_image_file, summarize, validate_items

__all__ = [
    "COVIDX_CLASS_NAMES",
    "read_covidx_labels",
    "build_datalist_from_csv",
    "build_datalist_from_folder",
    "canonical_split",
    "load_split",
    "read_datalist",
    "write_datalist",
    "GemixDataset",
    "build_datalist",
    "check_split_seed",
    "ImageScan",
    "discover_images",
    "scan_images",
    "NEAR_DUPLICATE_BITS",
    "perceptual_hash",
    "check_output_outside_data",
    "MIN_IMAGE_SIDE",
    "check_datalist",
    "default_data_dir",
    "default_phantom_datalist",
    "get_dataset",
    "source_kind",
    "DataError",
    "DataValidationError",
    "ImageReadError",
    "NotASliceError",
    "MEDMNIST_CLASS_NAMES",
    "load_medmnist_items",
    "PHANTOM_CLASS_NAMES",
    "ensure_default_dataset",
    "generate_phantom_dataset",
    "render_phantoms",
    "DataContract",
    "Preprocessing",
    "check_class_names",
    "check_contract",
    "contract_of",
    "decide_intensity",
    "check_leakage",
    "fixed_split_datalist",
    "HU_WINDOWS",
    "INTENSITY_MODES",
    "IntensityRule",
    "CheckLabeld",
    "CropBoxd",
    "ExtractSliced",
    "IntensityToTrainingRanged",
    "LoadMedicalImaged",
    "ToChannelsd",
    "get_transforms",
    "resolve_hu_window",
    "to_display",
    "to_hu",
    "to_uint8",
    "inspect_image_file",
    "summarize",
    "validate_items",
]
