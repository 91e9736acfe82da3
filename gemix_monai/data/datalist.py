"""MONAI datalists: build them from class folders or CSV manifests, write and read them.

Format (readable by ``monai.data.load_decathlon_datalist``)::

    {"class_names": ["cyst", ...], "training": [{"image": "rel/or/abs/path", "label": 0}, ...],
     "validation": [...], "test": [...], "modality": "CT", "hu_window": "abdomen"}

``modality`` and ``hu_window`` are optional hints for :func:`gemix_monai.data.get_dataset`.
Relative image paths are relative to the JSON file's folder.

Masks (docs/segmentation.md): an item may carry ``"mask"`` (``"label_mask"`` is read as an alias) — the path
of its segmentation mask, relative like the image's; a CSV a ``mask`` column; in class folders a file
``<stem>_mask.<ext>`` beside an image is that image's mask (not an image). A datalist may declare
``"mask_channels"`` (see :func:`gemix_monai.data.masks.label_map_to_channels`).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from gemix_monai.utils import atomic_write_bytes

from .errors import DataError, DataValidationError
from .transforms import IMAGE_SUFFIXES

__all__ = [
    "SPLITS",
    "canonical_split",
    "stratified_split",
    "build_datalist_from_folder",
    "build_datalist_from_csv",
    "write_datalist",
    "read_datalist",
    "load_split",
    "MASK_KEY",
    "mask_stem",
    "image_stem",
]

#: Item key of an image's segmentation mask; ``MASK_ALIASES`` are read as it.
MASK_KEY = "mask"
MASK_ALIASES = ("label_mask",)
#: A class-folder file ``<stem>_mask.<ext>`` is the mask of the image ``<stem>.<ext'>``.
MASK_STEM_SUFFIX = "_mask"

SPLITS = ("training", "validation", "test")
_SPLIT_ALIASES = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}


def canonical_split(split: str) -> str:
    """``"train"``/``"val"``/``"test"`` (and long forms) → ``"training"``/``"validation"``/``"test"``."""
    key = str(split).strip().lower()
    if key not in _SPLIT_ALIASES:
        raise ValueError(f"split must be one of train/training, val/validation, test; got {split!r}")
    return _SPLIT_ALIASES[key]


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    if name.startswith("."):
        return False
    suffix = ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()
    return suffix in IMAGE_SUFFIXES and suffix != ""


def image_stem(path: str | os.PathLike) -> str:
    """A file name without its image suffix (``.nii.gz`` counted as one)."""
    path = Path(path)
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def mask_stem(path: str | os.PathLike) -> str | None:
    """For a mask file ``<stem>_mask.<ext>``, its image's ``<stem>``; ``None`` for any other name."""
    stem = image_stem(path)
    return stem[: -len(MASK_STEM_SUFFIX)] if stem.endswith(MASK_STEM_SUFFIX) and len(stem) > 5 else None


def _pair_masks(files: list[Path]) -> tuple[list[Path], dict[Path, Path], list[Path]]:
    """``(images, image → mask, orphan masks)`` of one class folder's image files."""
    by_stem = {image_stem(p): p for p in files if mask_stem(p) is None}
    images = [p for p in files if mask_stem(p) is None]
    masks: dict[Path, Path] = {}
    orphans = []
    for p in files:
        stem = mask_stem(p)
        if stem is None:
            continue
        if stem in by_stem:
            masks[by_stem[stem]] = p
        else:
            orphans.append(p)
    return images, masks, orphans


def stratified_split(labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int = 0) -> list[str]:
    """Assign each index a split, per class: ``round(n·test_fraction)`` test, ``round(n·val_fraction)``
    validation, the rest training; shuffled with ``seed``."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with sum < 1, got {val_fraction}, {test_fraction}"
        )
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = ["training"] * len(labels)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        for i in idx[:n_test]:
            out[i] = "test"
        for i in idx[n_test : n_test + n_val]:
            out[i] = "validation"
    return out


def build_datalist_from_folder(
    root: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    on_error: str = "raise",
) -> dict:
    """Datalist from ``root/<class_name>/*.{png,dcm,nii,nii.gz,...}``, or, when ``root`` has
    ``train|training``, ``val|validation`` and/or ``test`` subfolders, from ``root/<split>/<class_name>/*``.

    Without split folders the images are split per class (``val_fraction``, ``test_fraction``,
    ``split_seed`` — never the training seed; :func:`gemix_monai.data.splits.fixed_split_datalist`
    writes the split once and reuses it). ``class_names`` fixes the label order (default: the class
    folders sorted by name); a class folder not in ``class_names`` is an error, as are an empty
    ``root``, a single class, an empty class folder and files with unsupported suffixes
    (``on_error="skip"`` drops unsupported files and lists them under ``"skipped"``). Image paths in
    the result are absolute.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = {canonical_split(p.name): p for p in subdirs if p.name.lower() in _SPLIT_ALIASES}
    if split_dirs and len(split_dirs) != len(subdirs):
        others = [p.name for p in subdirs if p.name.lower() not in _SPLIT_ALIASES]
        raise DataError(
            f"{root}: mixes split folders {sorted(p.name for p in split_dirs.values())} with other folders {others}"
        )
    groups = split_dirs if split_dirs else {None: root}
    found_classes = sorted(
        {p.name for g in groups.values() for p in g.iterdir() if p.is_dir() and not p.name.startswith(".")}
    )
    if not found_classes:
        raise DataError(
            f"{root}: no class folders found; expected {root}/<class_name>/<images> (or {root}/train/<class_name>/...)"
        )
    if class_names is None:
        class_names = found_classes
    class_names = [str(c) for c in class_names]
    if len(class_names) < 2:
        where = ", ".join(str(g / class_names[0]) for g in groups.values()) if class_names else str(root)
        raise DataError(
            f"{root}: only one class folder ({where}); classification needs at least two classes "
            f"(expected {root}/<class_name>/<images> with one folder per class)"
        )
    unknown = sorted(set(found_classes) - set(class_names))
    if unknown:
        raise DataError(f"{root}: unknown class folder(s) {unknown}; class_names are {class_names}")
    problems: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    per_group: dict = {}
    for split, folder in groups.items():
        entries = []
        for label, name in enumerate(class_names):
            cdir = folder / name
            if not cdir.is_dir():
                continue
            files = sorted(p for p in cdir.iterdir() if p.is_file() and not p.name.startswith("."))
            readable = [p for p in files if _is_image(p)]
            for p in files:
                if p not in readable:
                    problem = (
                        str(p),
                        f"unsupported file type; expected one of {sorted(s for s in IMAGE_SUFFIXES if s)}",
                    )
                    (skipped if on_error == "skip" else problems).append(problem)
            images, masks, orphans = _pair_masks(readable)
            for p in orphans:
                problem = (str(p), f"mask file without its image {mask_stem(p)}.<ext> in the same folder")
                (skipped if on_error == "skip" else problems).append(problem)
            if not images:
                problems.append((str(cdir), "class folder holds no images"))
            for p in images:
                entry = {"image": str(p.resolve()), "label": label}
                if p in masks:
                    entry[MASK_KEY] = str(masks[p].resolve())
                entries.append(entry)
        per_group[split] = entries
    if problems:
        raise DataValidationError(problems, f"folder {root}")
    if skipped:
        warnings.warn(
            str(DataValidationError(skipped, f"folder {root}")).replace(
                "(fix them, or pass on_error='skip' to drop and report them)", "skipped"
            ),
            stacklevel=2,
        )
    datalist: dict = {"class_names": class_names}
    if skipped:
        datalist["skipped"] = [list(p) for p in skipped]
    if split_dirs:
        for split in SPLITS:
            datalist[split] = per_group.get(split, [])
    else:
        entries = per_group[None]
        assign = stratified_split([e["label"] for e in entries], val_fraction, test_fraction, split_seed)
        for split in SPLITS:
            datalist[split] = [e for e, s in zip(entries, assign) if s == split]
        datalist["split"] = {"split_seed": split_seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    return datalist


def build_datalist_from_csv(
    csv_path: str | os.PathLike,
    *,
    image_column: str = "image",
    label_column: str = "label",
    split_column: str | None = "split",
    mask_column: str | None = "mask",
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> dict:
    """Datalist from a CSV manifest with one row per image.

    Columns: ``image_column`` (path, relative to the CSV's folder or absolute), ``label_column``
    (a class name from ``class_names`` or an integer index) and optionally ``split_column``
    (train/val/test); without a split column the rows are split per class like folders. An optional
    ``mask_column`` holds each image's segmentation mask (relative like the image; an empty cell is an
    error when other rows have one). Errors name the CSV file and row number (1 = first data row).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"CSV manifest not found: {csv_path}")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    for col in (image_column, label_column):
        if col not in columns:
            raise DataError(f"{csv_path}: missing column {col!r}; found columns {columns}")
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    has_split = split_column is not None and split_column in columns
    has_mask = mask_column is not None and mask_column in columns
    raw_labels = [(r.get(label_column) or "").strip() for r in rows]
    if class_names is None:
        if all(v.lstrip("-").isdigit() for v in raw_labels if v):
            # Integer labels without names: the classes are exactly the values seen, which must be
            # 0..K-1 (a stray "7" must not silently make an 8-class problem).
            seen = sorted({int(v) for v in raw_labels if v})
            if seen and seen != list(range(len(seen))):
                rows_of = {s: [n for n, v in enumerate(raw_labels, start=1) if v and int(v) == s] for s in seen}
                gaps = sorted(set(range(max(seen) + 1)) - set(seen))
                odd = [s for s in seen if s < 0 or s >= len(seen)]
                raise DataError(
                    f"{csv_path}: integer labels {seen} are not 0..{len(seen) - 1} (missing {gaps}; "
                    f"suspicious {odd} in rows {sum((rows_of[s][:5] for s in odd), [])}); "
                    "fix the labels or pass class_names to fix the class count"
                )
            class_names = [str(i) for i in seen]
        else:
            class_names = sorted({v for v in raw_labels if v})
        if len(class_names) < 2:
            raise DataError(
                f"{csv_path}: column {label_column!r} holds a single class {class_names}; classification needs at least two"
            )
    class_names = [str(c) for c in class_names]
    problems: list[tuple[str, str]] = []
    entries, splits = [], []
    for n, (row, value) in enumerate(zip(rows, raw_labels), start=1):
        where = f"row {n}"
        image = (row.get(image_column) or "").strip()
        if not image:
            problems.append((where, f"empty {image_column!r}"))
            continue
        if not value:
            problems.append((where, f"{image}: empty {label_column!r} (image without a label)"))
            continue
        if value in class_names:
            label = class_names.index(value)
        elif value.lstrip("-").isdigit():
            label = int(value)
            if not 0 <= label < len(class_names):
                problems.append(
                    (where, f"{image}: label {label} out of range [0, {len(class_names)}) for classes {class_names}")
                )
                continue
        else:
            problems.append((where, f"{image}: unknown class name {value!r}; expected one of {class_names}"))
            continue
        split = "training"
        if has_split:
            try:
                split = canonical_split(row.get(split_column) or "")
            except ValueError as e:
                problems.append((where, f"{image}: {e}"))
                continue
        path = Path(image)
        path = path if path.is_absolute() else (csv_path.parent / path)
        entry = {"image": str(path), "label": label}
        if has_mask:
            mask = (row.get(mask_column) or "").strip()
            if not mask:
                problems.append((where, f"{image}: empty {mask_column!r} (the other rows' images have masks)"))
                continue
            mask_path = Path(mask)
            entry[MASK_KEY] = str(mask_path if mask_path.is_absolute() else (csv_path.parent / mask_path))
        entries.append(entry)
        splits.append(split)
    if problems:
        raise DataValidationError(problems, f"CSV {csv_path}")
    if not has_split:
        splits = stratified_split([e["label"] for e in entries], val_fraction, test_fraction, split_seed)
    datalist: dict = {"class_names": class_names}
    for split in SPLITS:
        datalist[split] = [e for e, s in zip(entries, splits) if s == split]
    if not has_split:
        datalist["split"] = {"split_seed": split_seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    return datalist


def write_datalist(datalist: dict, path: str | os.PathLike, *, relative: bool = True) -> Path:
    """Write ``datalist`` as JSON atomically; with ``relative`` image paths under the JSON's folder are stored relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    out = dict(datalist)
    for split in SPLITS:
        if split not in datalist:
            continue
        items = []
        for item in datalist[split]:
            item = dict(item)
            for key in ("image", MASK_KEY):
                if key not in item:
                    continue
                path_ = Path(item[key])
                if relative and path_.is_absolute():
                    try:
                        item[key] = path_.resolve().relative_to(base).as_posix()
                    except ValueError:
                        item[key] = str(path_)
                else:
                    item[key] = str(path_) if path_.is_absolute() else path_.as_posix()
            items.append(item)
        out[split] = items
    atomic_write_bytes(path, (json.dumps(out, indent=1) + "\n").encode())
    return path


def read_datalist(path: str | os.PathLike) -> dict:
    """Read and structurally check a datalist JSON; image paths are made absolute (via MONAI's
    ``load_decathlon_datalist``). Missing split keys become empty lists."""
    from monai.data import load_decathlon_datalist

    path = Path(path)
    if not path.is_file():
        raise DataError(f"datalist not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object with 'class_names' and split lists, got {type(raw).__name__}")
    names = raw.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: 'class_names' must be a non-empty list of strings, got {names!r}")
    if not any(split in raw for split in SPLITS):
        raise DataError(f"{path}: no split lists; expected some of {list(SPLITS)}")
    out = {k: v for k, v in raw.items() if k not in SPLITS}
    for split in SPLITS:
        items = raw.get(split, [])
        if not isinstance(items, list):
            raise DataError(
                f"{path}: {split!r} must be a list of {{'image', 'label'}} entries, got {type(items).__name__}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item:
                raise DataError(f"{path}: {split}[{i}] must be an object with an 'image' key, got {item!r}")
            _check_mask_entry(item, f"{path}: {split}[{i}]")
        loaded = (
            load_decathlon_datalist(path, is_segmentation=False, data_list_key=split, base_dir=path.parent)
            if items
            else []
        )
        out[split] = [_absolute_mask(entry, raw_item, path.parent) for entry, raw_item in zip(loaded, items)]
    return out


def _check_mask_entry(item: dict, where: str) -> None:
    keys = [k for k in (MASK_KEY, *MASK_ALIASES) if k in item]
    if len(keys) > 1:
        raise DataError(f"{where}: has both {keys}; give the mask once, as {MASK_KEY!r}")
    if keys and not isinstance(item[keys[0]], str):
        raise DataError(f"{where}: {keys[0]!r} must be a file path, got {item[keys[0]]!r}")


def _absolute_mask(item: dict, raw_item: dict, base: Path) -> dict:
    """``label_mask`` → ``mask``; a relative mask path is made relative to the datalist's folder (as MONAI does for images).

    The path is taken from the datalist as written (``raw_item``): MONAI's loader already joins any value that names an
    existing file to a relative ``base``, and joining that result again would double the folder."""
    item = dict(item)
    for key in (MASK_KEY, *MASK_ALIASES):
        item.pop(key, None)
    raw = next((raw_item[k] for k in (MASK_KEY, *MASK_ALIASES) if k in raw_item), None)
    if raw is not None:
        mask = Path(raw)
        item[MASK_KEY] = str(mask) if mask.is_absolute() else os.path.normpath(base / mask)
    return item


def load_split(path: str | os.PathLike, split: str = "training") -> list[dict]:
    """Entries of one split with absolute image paths."""
    return read_datalist(path)[canonical_split(split)]
