"""MedMNIST ``.npz`` files: keys ``{train,val,test}_{images,labels}``, images ``uint8 [N, H, W]``
(grey) or ``[N, H, W, 3]`` (RGB), labels ``[N, 1]`` or ``[N]`` (single-label classification)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .datalist import canonical_split
from .errors import DataError

__all__ = ["MEDMNIST_CLASS_NAMES", "load_medmnist_items", "medmnist_class_names"]

_NPZ_SPLIT = {"training": "train", "validation": "val", "test": "test"}

#: Class names of the MedMNIST v2 single-label 2-D sets most used with this project, by file stem.
MEDMNIST_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "pneumoniamnist": ("normal", "pneumonia"),
    "breastmnist": ("malignant", "normal_or_benign"),
    "bloodmnist": (
        "basophil",
        "eosinophil",
        "erythroblast",
        "immature_granulocyte",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ),
    "organamnist": (
        "bladder",
        "femur_left",
        "femur_right",
        "heart",
        "kidney_left",
        "kidney_right",
        "liver",
        "lung_left",
        "lung_right",
        "pancreas",
        "spleen",
    ),
}


def _open(path: Path):
    if not path.is_file():
        raise DataError(f"MedMNIST file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None


def _array(npz, path: Path, key: str) -> np.ndarray:
    """``npz[key]`` as a numeric array; an object array (pickled Python objects) or an unreadable entry is a
    :class:`DataError` naming the file and key."""
    try:
        arr = npz[key]
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise DataError(
                f"{path}: key {key!r} holds Python objects (an object array, loadable only by unpickling, which is "
                "never done here); save it as a numeric array (e.g. np.savez with uint8 images and integer labels)"
            ) from None
        raise DataError(f"{path}: cannot read key {key!r} ({type(e).__name__}: {e})") from None
    except Exception as e:
        raise DataError(f"{path}: cannot read key {key!r} ({type(e).__name__}: {e})") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{path}: key {key!r} has dtype {arr.dtype}; expected numbers (uint8 images, integer labels)")
    return arr


def medmnist_class_names(path: str | os.PathLike, num_classes: int | None = None) -> list[str]:
    """Known names for a MedMNIST file (by its stem), else ``"0"``, ``"1"``, …"""
    stem = Path(path).name.split(".")[0].split("_")[0].lower()
    if stem in MEDMNIST_CLASS_NAMES:
        return list(MEDMNIST_CLASS_NAMES[stem])
    if num_classes is None:
        raise DataError(f"{path}: unknown MedMNIST set {stem!r}; pass class_names")
    return [str(i) for i in range(num_classes)]


def _class_count(path: Path) -> int:
    """K for a file without known names: the label values of all splits, which must be exactly 0..K-1."""
    seen: set[int] = set()
    with _open(path) as npz:
        for key in _NPZ_SPLIT.values():
            if f"{key}_labels" in npz.files:
                seen |= {int(v) for v in np.unique(_array(npz, path, f"{key}_labels"))}
    if sorted(seen) != list(range(len(seen))) or len(seen) < 2:
        raise DataError(
            f"{path}: label values {sorted(seen)} over all splits are not 0..K-1 with K >= 2; "
            "pass class_names to state the classes"
        )
    return len(seen)


def load_medmnist_items(
    path: str | os.PathLike,
    split: str = "training",
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[list[dict], list[str]]:
    """``([{"image": uint8 array [C, x, y], "label": int, "image_source": "file.npz:train[i]"}], class_names)``.

    Images are put in MONAI's order (the transpose of the stored rows × columns), like every reader here.

    Checks, naming the file and key: the file opens; ``<split>_images`` and ``<split>_labels``
    exist; their lengths match; images are ``[N, H, W]`` or ``[N, H, W, 1|3]``; labels are single
    integers in ``[0, len(class_names))`` (default names: :data:`MEDMNIST_CLASS_NAMES`, or the
    indices seen); the split is not empty.
    """
    path = Path(path)
    split = canonical_split(split)
    key = _NPZ_SPLIT[split]
    with _open(path) as npz:
        names = set(npz.files)
        for k in (f"{key}_images", f"{key}_labels"):
            if k not in names:
                raise DataError(
                    f"{path}: missing key {k!r}; found {sorted(names)} (expected {{train,val,test}}_{{images,labels}})"
                )
        images = _array(npz, path, f"{key}_images")
        labels = _array(npz, path, f"{key}_labels")
    if len(images) != len(labels):
        raise DataError(f"{path}: {key}_images has {len(images)} images but {key}_labels has {len(labels)} labels")
    if len(images) == 0:
        raise DataError(f"{path}: split {key!r} is empty")
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        images = np.moveaxis(images, -1, 1)
    elif images.ndim == 3:
        images = images[:, None]
    else:
        raise DataError(f"{path}: {key}_images must be [N, H, W] or [N, H, W, 1|3], got shape {images.shape}")
    # [N, C, rows, cols] → [N, C, x, y]: MONAI's order, as LoadImaged gives the same picture saved as PNG.
    images = np.ascontiguousarray(np.swapaxes(images, -1, -2))
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{path}: {key}_labels must be [N] or [N, 1] (single-label), got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            bad = int(np.flatnonzero(~np.isfinite(labels) | (labels != np.round(labels)))[0])
            raise DataError(f"{path}: {key}_labels[{bad}] = {labels[bad]!r} is not an integer class index")
        labels = labels.astype(np.int64)
    if class_names is None:
        class_names = medmnist_class_names(path, _class_count(path))
    class_names = [str(c) for c in class_names]
    out_of_range = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise DataError(
            f"{path}: {key}_labels[{i}] = {int(labels[i])} out of range [0, {len(class_names)}) for classes {class_names}"
            f" ({out_of_range.size} such label(s))"
        )
    items = [
        {"image": images[i], "label": int(labels[i]), "image_source": f"{path.name}:{key}[{i}]"}
        for i in range(len(images))
    ]
    return items, class_names
