"""One entry point for every source: :func:`get_dataset` and :func:`build_datalist`.

Sources (``source=``):

* ``None`` or ``"phantom"`` — the embedded CT liver-lesion phantoms, generated on first use into
  :func:`default_data_dir` (reused afterwards), windowed with the abdomen window;
* a datalist ``.json`` (MONAI format with ``class_names``);
* a folder of class folders (``<root>/<class>/*`` or ``<root>/<split>/<class>/*``);
* a CSV manifest (``image``, ``label``, optional ``split`` columns);
* a MedMNIST ``.npz``;
* a COVIDx-CT label ``.txt`` (``image_dir=`` the folder of slices; boxes cropped).

Every dataset yields ``{"image": float32 [C, S, S] in [-1, 1], "label": int, ...}`` and has
``class_names``, ``hu_window`` (the window used, or ``None``) and ``bad_items`` (what
``on_error="skip"`` dropped).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Sequence

from monai.data import CacheDataset, Dataset

from .covidx import COVIDX_CLASS_NAMES, read_covidx_labels
from .datalist import (
    build_datalist_from_csv,
    build_datalist_from_folder,
    canonical_split,
    read_datalist,
)
from .errors import DataError
from .medmnist import load_medmnist_items
from .phantoms import ensure_default_dataset
from .transforms import get_transforms, image_format, resolve_hu_window
from .validate import validate_items

__all__ = ["default_data_dir", "build_datalist", "get_dataset", "GemixDataset", "source_kind"]

PHANTOM_SOURCES = (None, "phantom", "phantoms", "default")


def default_data_dir() -> Path:
    """Where the default phantoms live: ``$GEMIX_DATA_DIR`` or ``~/.cache/gemix_monai``."""
    return Path(os.environ.get("GEMIX_DATA_DIR") or Path.home() / ".cache" / "gemix_monai")


def default_phantom_datalist(image_size: int = 64, seed: int = 0, fmt: str = "nifti", data_dir=None) -> Path:
    """Datalist of the default phantom dataset for ``image_size``, generating it once (under a file
    lock, so parallel workers do not race)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    out_dir = root / f"phantoms_{image_size}px_seed{seed}_{fmt}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ensure_default_dataset(out_dir, image_size=image_size, seed=seed, fmt=fmt)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def source_kind(source) -> str:
    """``"phantom"``, ``"datalist"``, ``"folder"``, ``"csv"``, ``"medmnist"`` or ``"covidx"``."""
    if source in PHANTOM_SOURCES:
        return "phantom"
    path = Path(source)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    kinds = {".json": "datalist", ".csv": "csv", ".npz": "medmnist", ".txt": "covidx"}
    if suffix not in kinds:
        raise DataError(f"source {source!r}: expected 'phantom', a folder, or a .json datalist, .csv manifest, .npz MedMNIST file or .txt COVIDx-CT label file")
    if not path.exists():
        raise DataError(f"source not found: {path}")
    return kinds[suffix]


def build_datalist(source=None, *, image_size: int = 64, seed: int = 0, val_fraction: float = 0.2,
                   test_fraction: float = 0.2, class_names: Sequence[str] | None = None,
                   image_dir=None, data_dir=None, **csv_kwargs) -> dict:
    """Datalist dict (absolute image paths) for a file-based source: phantom, datalist JSON, folder,
    CSV or COVIDx-CT labels (all of a COVIDx file goes to ``"training"``; split with separate files)."""
    kind = source_kind(source)
    if kind == "phantom":
        return read_datalist(default_phantom_datalist(image_size, seed, data_dir=data_dir))
    if kind == "datalist":
        return read_datalist(source)
    if kind == "folder":
        return build_datalist_from_folder(source, class_names=class_names, val_fraction=val_fraction,
                                          test_fraction=test_fraction, seed=seed)
    if kind == "csv":
        return build_datalist_from_csv(source, class_names=class_names, val_fraction=val_fraction,
                                       test_fraction=test_fraction, seed=seed, **csv_kwargs)
    if kind == "covidx":
        names = list(class_names or COVIDX_CLASS_NAMES)
        # COVIDx-CT slices are 8-bit PNGs already windowed by the dataset's authors: no HU window.
        return {"class_names": names, "modality": "CT", "hu_window": None, "training": read_covidx_labels(source, image_dir, class_names=names),
                "validation": [], "test": []}
    raise DataError(f"{source}: a MedMNIST .npz holds arrays, not files; use get_dataset({str(source)!r}, split)")


class GemixDataset(Dataset):
    """``monai.data.Dataset`` with the facts other layers need: ``class_names``, ``num_classes``,
    ``hu_window``, ``labels`` (one int per item, for class weights), ``bad_items``, ``source``."""

    def __init__(self, data, transform, *, class_names, hu_window, bad_items, source, split):
        super().__init__(data, transform)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.hu_window = hu_window
        self.bad_items = list(bad_items)
        self.source = source
        self.split = split
        self.labels = [int(d["label"]) for d in data]


class GemixCacheDataset(CacheDataset):
    """As :class:`GemixDataset`, caching the deterministic preprocessing in memory."""

    def __init__(self, data, transform, *, class_names, hu_window, bad_items, source, split, num_workers=0):
        super().__init__(data, transform, num_workers=num_workers, progress=False)
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.hu_window = hu_window
        self.bad_items = list(bad_items)
        self.source = source
        self.split = split
        self.labels = [int(d["label"]) for d in data]


def _auto_window(datalist: dict, items: list[dict]):
    if "hu_window" in datalist:
        return datalist["hu_window"]
    first = next((it["image"] for it in items if isinstance(it.get("image"), (str, os.PathLike))), None)
    if first is not None and image_format(first) == "dicom" and os.path.isfile(first):
        import pydicom

        try:
            if pydicom.dcmread(first, stop_before_pixels=True).get("Modality") == "CT":
                return "abdomen"
        except Exception:
            pass  # validation reports unreadable files with their names
    if datalist.get("modality") == "CT":
        return "abdomen"
    return None


def get_dataset(
    source=None,
    split: str = "training",
    image_size: int = 64,
    *,
    hu_window="auto",
    intensity="auto",
    channels: int = 1,
    slice_index: int | None = None,
    slice_mask_key: str | None = None,
    on_error: str = "raise",
    deep_validate: bool = False,
    cache: bool = False,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    image_dir=None,
    data_dir=None,
    transform=None,
    **source_kwargs,
):
    """A MONAI dataset of one split of ``source``, validated up front, yielding the training stream.

    Args:
        source: see the module docstring; ``None`` = the default phantoms.
        split: ``"training"``/``"train"``, ``"validation"``/``"val"`` or ``"test"``.
        image_size: output side (the generator's resolution).
        hu_window: ``"auto"`` (the datalist's ``hu_window``; ``"abdomen"`` for CT DICOM or
            ``modality: "CT"`` datalists; ``None`` otherwise), a preset name, ``(width, level)`` or ``None``.
        intensity, channels, slice_index, slice_mask_key: see :func:`get_transforms`.
        on_error: ``"raise"`` (default) or ``"skip"`` bad entries (listed in ``dataset.bad_items``).
        deep_validate: decode every image during validation, not only headers.
        cache: keep preprocessed items in memory (``CacheDataset``).
        seed, class_names, image_dir, data_dir, **source_kwargs: passed to the source readers
            (split seed for folders/CSV, class order, COVIDx image folder, phantom cache folder, CSV columns).
        transform: replace the default preprocessing entirely.
    """
    split = canonical_split(split)
    kind = source_kind(source)
    if kind == "medmnist":
        items, names = load_medmnist_items(source, split, class_names=class_names)
        datalist = {"class_names": names}
        context = f"MedMNIST {source}"
    else:
        datalist = build_datalist(source, image_size=image_size, seed=seed, class_names=class_names,
                                  image_dir=image_dir, data_dir=data_dir, **source_kwargs)
        items = datalist.get(split, [])
        names = datalist["class_names"]
        context = f"{kind} {source if source is not None else 'phantom (default)'}"
    if hu_window == "auto":
        hu_window = _auto_window(datalist, items)
    window = resolve_hu_window(hu_window)
    allow_volumes = slice_index is not None or slice_mask_key is not None
    good, problems = validate_items(items, num_classes=len(names), split=split, deep=deep_validate,
                                    allow_volumes=allow_volumes, on_error=on_error, context=context)
    if transform is None:
        transform = get_transforms(image_size, hu_window=window, intensity=intensity, channels=channels,
                                   slice_index=slice_index, slice_mask_key=slice_mask_key,
                                   box_key="box" if kind == "covidx" else None, num_classes=len(names))
    cls = GemixCacheDataset if cache else GemixDataset
    return cls(good, transform, class_names=names, hu_window=window, bad_items=problems,
               source="phantom" if kind == "phantom" else str(source), split=split)

