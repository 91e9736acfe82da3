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
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gemix_monai.utils import atomic_write_bytes

from .discover import scan_images
from .errors import DataError, DataValidationError
from .files import (
    IMAGE_SUFFIXES,
    MASK_ALIASES,
    MASK_KEY,
    has_image_suffix,
    image_stem,
    mask_stem,
    read_text_file,
)
from .groups import check_group_labels, check_near_duplicates, content_hash, duplicate_groups, grouped_split
from .validate import check_class_name_list

__all__ = [
    "SPLITS",
    "AutoSplit",
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


def _top_level(root: Path) -> tuple[list[Path], list[Path], list[tuple[str, str]]]:
    """``(folders, files, problems)`` directly under ``root`` (hidden entries left out; links followed; a dangling
    link or a link loop is a problem naming it)."""
    folders, files, problems = [], [], []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():
            problems.append((str(p), f"dangling link or link loop: it points to {os.readlink(p)}"))
        elif p.is_dir():
            folders.append(p)
        elif p.is_file():
            files.append(p)
    return folders, files, problems


def _refuse_case_twins(names, root: Path, what: str) -> None:
    by_key: dict[str, list[str]] = {}
    for n in names:
        by_key.setdefault(n.casefold(), []).append(n)
    twins = [sorted(v) for v in by_key.values() if len(v) > 1]
    if twins:
        listed = "; ".join(" and ".join(f"{root / n}/" for n in t) for t in twins)
        raise DataError(
            f"{root}: {what} {listed} differ only by letter case: they would become separate classes of one thing; "
            "merge them into one folder"
        )


@dataclass(frozen=True)
class AutoSplit:
    """How a folder or CSV without its own split is split (docs/data.md, "Splits"): per class, ``val_fraction`` and
    ``test_fraction`` of the images drawn with ``split_seed`` (never the training seed), copies of one image (and
    with ``near_duplicates`` near-identical images: :func:`gemix_monai.data.groups.check_near_duplicates`) kept
    in one split."""

    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    near_duplicates: Any = None

    def record(self) -> dict:
        """The ``"split"`` record of the datalist (what :mod:`gemix_monai.data.splits` stores and compares)."""
        bits = check_near_duplicates(self.near_duplicates)
        return {
            "split_seed": self.split_seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "groups": "sha256" if bits is None else f"sha256+phash<={bits}",
        }


def split_with_groups(
    entries: list[dict],
    class_names: Sequence[str],
    split: AutoSplit,
    *,
    base: Path | None = None,
    context: str = "datalist",
) -> tuple[list[str], list[dict]]:
    """``(split of each entry, duplicate-group records)``: :func:`gemix_monai.data.groups.grouped_split` over the
    groups of identical (and with ``split.near_duplicates`` near-identical) images, after checking that each group
    holds one label. Records name the images relative to ``base`` when under it."""
    bits = check_near_duplicates(split.near_duplicates)
    paths = [e["image"] for e in entries]
    labels = [int(e["label"]) for e in entries]

    def shown(i: int) -> str:
        p = Path(paths[i])
        if base is not None:
            try:
                return p.relative_to(base).as_posix()
            except ValueError:
                pass
        return str(p)

    groups = duplicate_groups(paths, bits)
    check_group_labels(groups, labels, list(class_names), shown, context)
    assign = grouped_split(labels, groups, split.val_fraction, split.test_fraction, split.split_seed)
    records = []
    for members in groups:
        if len(members) < 2:
            continue
        try:
            identical = len({content_hash(paths[m]) for m in members}) == 1
        except OSError:
            identical = False
        records.append(
            {
                "images": [shown(m) for m in members],
                "split": assign[members[0]],
                "label": class_names[labels[members[0]]],
                "kind": "identical (sha256)" if identical else f"near-identical (perceptual hash within {bits} bits)",
            }
        )
    return assign, records


def _by_split(entries: list[dict], assign: Sequence[str]) -> dict[str, list[dict]]:
    """``{split: its entries}`` for every split of :data:`SPLITS`, in the entries' order."""
    return {split: [e for e, s in zip(entries, assign) if s == split] for split in SPLITS}


def build_datalist_from_folder(
    root: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    on_error: str = "raise",
    near_duplicates=None,
) -> dict:
    """Datalist from ``root/<class_name>/**`` (images at any depth below the class folder), or, when ``root`` has
    ``train|training``, ``val|validation`` and/or ``test`` subfolders, from ``root/<split>/<class_name>/**``.

    Which files are images is :func:`gemix_monai.data.discover.scan_images`'s rule (the one ``classify`` uses too).
    Without split folders the images are split per class (``val_fraction``, ``test_fraction``,
    ``split_seed`` — never the training seed), byte-identical copies (and with ``near_duplicates``, near-identical
    ones: :mod:`gemix_monai.data.groups`) kept in one split and listed under ``"duplicate_groups"``;
    :func:`gemix_monai.data.splits.fixed_split_datalist` writes the split once and reuses it. ``class_names`` fixes
    the label order (default: the class folders sorted by name); a class folder not in ``class_names`` is an error,
    as are an empty ``root``, a single class, class folders differing only by letter case, an empty class folder,
    dangling links and link loops, copies of one image under two classes, and files that are not images
    (``on_error="skip"`` drops those files and lists them under ``"skipped"``). Image files directly in ``root``
    belong to no class: they are named in a warning and not used. Image paths in the result are absolute (``root``
    made absolute once, links kept).
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}")
    subdirs, loose, top_problems = _top_level(root)
    if top_problems:
        raise DataValidationError(top_problems, f"folder {root}", hint="fix or remove them")
    split_dirs = _split_folders(root, subdirs)
    groups = split_dirs if split_dirs else {None: root}
    class_names = _folder_class_names(root, groups, subdirs, loose, class_names)
    per_group, skipped = _class_folder_entries(root, groups, class_names, on_error)
    _warn_left_out(root, skipped, loose)
    datalist: dict = {"class_names": class_names}
    if skipped:
        datalist["skipped"] = [list(p) for p in skipped]
    if split_dirs:
        for split in SPLITS:
            datalist[split] = per_group.get(split, [])
        return datalist
    split = AutoSplit(val_fraction, test_fraction, split_seed, near_duplicates)
    entries = per_group[None]
    assign, records = split_with_groups(entries, class_names, split, base=root, context=f"folder {root}")
    datalist.update(_by_split(entries, assign))
    datalist["split"] = split.record()
    datalist["duplicate_groups"] = records
    return datalist


def _split_folders(root: Path, subdirs: list[Path]) -> dict[str, Path]:
    """``{split: its folder}`` when ``root``'s folders are split folders (``train``, ``val``, ``test``, ...), else
    ``{}``; split folders mixed with other folders, or two folders for one split, are refused naming them."""
    split_dirs: dict[str, Path] = {}
    for p in subdirs:
        if p.name.lower() in _SPLIT_ALIASES:
            split = canonical_split(p.name)
            if split in split_dirs:
                raise DataError(f"{root}: split folders {split_dirs[split].name}/ and {p.name}/ both mean {split!r}")
            split_dirs[split] = p
    if split_dirs and len(split_dirs) != len(subdirs):
        others = [p.name for p in subdirs if p.name.lower() not in _SPLIT_ALIASES]
        raise DataError(
            f"{root}: mixes split folders {sorted(p.name for p in split_dirs.values())} with other folders {others}"
        )
    return split_dirs


def _folder_class_names(root: Path, groups: dict, subdirs, loose, class_names) -> list[str]:
    """The class names of a folder dataset: ``class_names`` when given (every class folder must be one of them), else
    the class folders sorted by name; at least two, none differing from another only by letter case."""
    found_classes: set[str] = set()
    for g in groups.values():
        folders, files, problems_here = _top_level(g) if g is not root else (subdirs, loose, [])
        if problems_here:
            raise DataValidationError(problems_here, f"folder {root}", hint="fix or remove them")
        names_here = [p.name for p in folders]
        _refuse_case_twins(names_here, g, "class folders")
        found_classes |= set(names_here)
    found_classes = sorted(found_classes)
    _refuse_case_twins(found_classes, root, "class folders")
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
    return class_names


def _class_folder_entries(root: Path, groups: dict, class_names: list[str], on_error: str):
    """``({split folder key: entries}, skipped)``: every image of every class folder as ``{"image", "label"[,
    "mask"]}``; files that are not images and masks without their image are problems (``on_error="skip"``: skipped),
    as are an empty class folder, dangling links and link loops — raised together, naming each."""
    problems: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    per_group: dict = {}
    for split, folder in groups.items():
        entries = []
        for label, name in enumerate(class_names):
            cdir = folder / name
            if not cdir.is_dir():
                continue
            scan = scan_images(cdir)
            problems.extend(scan.problems)
            for p in scan.others:
                problem = (
                    str(p),
                    f"unsupported file type; expected one of {sorted(s for s in IMAGE_SUFFIXES if s)} "
                    "(or a DICOM file of any name)",
                )
                (skipped if on_error == "skip" else problems).append(problem)
            for p in scan.orphan_masks:
                problem = (str(p), f"mask file without its image {mask_stem(p)}.<ext> in the same folder")
                (skipped if on_error == "skip" else problems).append(problem)
            if not scan.images:
                problems.append((str(cdir), "class folder holds no images"))
            for p in scan.images:
                entry = {"image": str(p), "label": label}
                if p in scan.masks:
                    entry[MASK_KEY] = str(scan.masks[p])
                entries.append(entry)
        per_group[split] = entries
    if problems:
        raise DataValidationError(problems, f"folder {root}")
    return per_group, skipped


def _warn_left_out(root: Path, skipped, loose) -> None:
    """Nothing is left out without a word: the skipped files, and image files directly in ``root`` (in no class)."""
    if skipped:
        warnings.warn(
            str(DataValidationError(skipped, f"folder {root}")).replace(f"({DataValidationError.HINT})", "skipped"),
            stacklevel=3,
        )
    unplaced = [p for p in loose if has_image_suffix(p)]
    if unplaced:
        warnings.warn(
            f"{root}: {len(unplaced)} image file(s) directly in the dataset folder belong to no class folder and are "
            f"not used: {[p.name for p in unplaced[:10]]}",
            stacklevel=3,
        )


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _number(value: str) -> float | None:
    """The value of a label written as a number (``1``, ``1.0``, ``1e0``), else ``None``."""
    return float(value) if _NUMBER.match(value) else None


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
    near_duplicates=None,
) -> dict:
    """Datalist from a CSV manifest with one row per image (UTF-8, with or without a byte-order mark).

    Columns: ``image_column`` (path, relative to the CSV's folder or absolute), ``label_column``
    (a class name from ``class_names`` or an integer index) and optionally ``split_column``
    (train/val/test); without a split column the rows are split per class like folders (copies of one image kept
    in one split). An optional ``mask_column`` holds each image's segmentation mask (relative like the image; an
    empty cell is an error when other rows have one). Errors name the CSV file and row number (1 = first data row).

    Labels written as numbers are compared as numbers: ``1``, ``1.0`` and ``1e0`` are class 1 (pandas writes integer
    labels as ``1.0``); a number that is not an integer (``1.5``) is refused naming its row. Class names that differ
    only by letter case (``yes``/``Yes``) are refused naming them. The CSV path is made absolute once, so relative
    image paths always mean "relative to the CSV's folder" whatever the working directory later is.
    """
    csv_path = Path(os.path.abspath(csv_path))
    if not csv_path.is_file():
        raise DataError(f"CSV manifest not found: {csv_path}")
    columns, rows = _read_csv(csv_path, (image_column, label_column))
    raw_labels = _csv_labels(rows, csv_path, label_column)
    if class_names is None:
        class_names = _csv_class_names(raw_labels, csv_path, label_column)
    class_names = [str(c) for c in class_names]
    has_split = split_column is not None and split_column in columns
    mask_column = mask_column if mask_column is not None and mask_column in columns else None
    columns_read = (image_column, label_column, split_column if has_split else None, mask_column)
    problems: list[tuple[str, str]] = []
    entries, splits = [], []
    for n, (row, value) in enumerate(zip(rows, raw_labels), start=1):
        try:
            entry, split = _csv_entry(row, value, class_names, csv_path, columns_read)
        except _RowProblem as e:
            problems.append((f"row {n}", str(e)))
            continue
        entries.append(entry)
        splits.append(split)
    if problems:
        raise DataValidationError(problems, f"CSV {csv_path}")
    datalist: dict = {"class_names": class_names}
    auto = None if has_split else AutoSplit(val_fraction, test_fraction, split_seed, near_duplicates)
    if auto is not None:
        splits, datalist["duplicate_groups"] = split_with_groups(
            entries, class_names, auto, base=csv_path.parent, context=f"CSV {csv_path}"
        )
    datalist.update(_by_split(entries, splits))
    if auto is not None:
        datalist["split"] = auto.record()
    return datalist


def _read_csv(csv_path: Path, required: Sequence[str]) -> tuple[list[str], list[dict]]:
    """``(columns, rows)`` of a CSV manifest that has the ``required`` columns and at least one row."""
    text = read_text_file(csv_path, "the CSV manifest")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    rows = list(reader)
    for col in required:
        if col not in columns:
            raise DataError(f"{csv_path}: missing column {col!r}; found columns {columns}")
    if not rows:
        raise DataError(f"{csv_path}: no rows")
    return columns, rows


def _csv_labels(rows: list[dict], csv_path: Path, label_column: str) -> list[str]:
    """Each row's label as written, stripped; labels that are all numbers become integers written plainly (``1.0`` →
    ``"1"``), and a number that is not an integer is refused naming its row."""
    raw_labels = [(r.get(label_column) or "").strip() for r in rows]
    numbers = [_number(v) for v in raw_labels]
    if not all(n is not None for v, n in zip(raw_labels, numbers) if v):
        return raw_labels
    # Labels written as numbers: 1 and 1.0 are one class; 1.5 is no class index.
    for n, (v, x) in enumerate(zip(raw_labels, numbers), start=1):
        if v and x != int(x):
            raise DataError(
                f"{csv_path}: row {n}: label {v!r} in column {label_column!r} is not an integer class index"
            )
    return [str(int(x)) if v else v for v, x in zip(raw_labels, numbers)]


def _csv_class_names(raw_labels: list[str], csv_path: Path, label_column: str) -> list[str]:
    """The classes of a CSV given without ``class_names``: integer labels must be exactly ``0..K-1``; names are
    sorted and must not differ only by letter case; at least two classes."""
    numeric = all(_number(v) is not None for v in raw_labels if v)
    if numeric:
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
        _refuse_label_twins(raw_labels, csv_path, label_column)
    if len(class_names) < 2:
        raise DataError(
            f"{csv_path}: column {label_column!r} holds a single class {class_names}; classification needs at least two"
        )
    return class_names


class _RowProblem(Exception):
    """What is wrong with one CSV row (collected, then raised together naming each row)."""


def _csv_entry(row: dict, value: str, class_names: list[str], csv_path: Path, columns) -> tuple[dict, str]:
    """``(entry, split)`` of one CSV row; ``columns`` are the image, label, split (or ``None``) and mask (or ``None``)
    columns. A row that cannot be used raises :class:`_RowProblem` saying why."""
    image_column, label_column, split_column, mask_column = columns
    image = (row.get(image_column) or "").strip()
    if not image:
        raise _RowProblem(f"empty {image_column!r}")
    if not value:
        raise _RowProblem(f"{image}: empty {label_column!r} (image without a label)")
    number = _number(value)
    if value in class_names:
        label = class_names.index(value)
    elif number is not None and number == int(number):
        label = int(number)
        if not 0 <= label < len(class_names):
            raise _RowProblem(f"{image}: label {label} out of range [0, {len(class_names)}) for classes {class_names}")
    else:
        raise _RowProblem(f"{image}: unknown class name {value!r}; expected one of {class_names}")
    split = "training"
    if split_column is not None:
        try:
            split = canonical_split(row.get(split_column) or "")
        except ValueError as e:
            raise _RowProblem(f"{image}: {e}") from None
    entry = {"image": _beside(csv_path, image), "label": label}
    if mask_column is not None:
        mask = (row.get(mask_column) or "").strip()
        if not mask:
            raise _RowProblem(f"{image}: empty {mask_column!r} (the other rows' images have masks)")
        entry[MASK_KEY] = _beside(csv_path, mask)
    return entry, split


def _beside(csv_path: Path, value: str) -> str:
    """A path written in the CSV: absolute as written, else relative to the CSV's folder (normalised)."""
    path = Path(value)
    return os.path.normpath(path if path.is_absolute() else (csv_path.parent / path))


def _refuse_label_twins(labels, csv_path: Path, column: str) -> None:
    """Class names that differ only by letter case (``yes``/``Yes``/``YES``) are refused naming each spelling's first row."""
    first: dict[str, int] = {}
    for n, v in enumerate(labels, start=1):
        if v and v not in first:
            first[v] = n
    by_key: dict[str, list[str]] = {}
    for v in first:
        by_key.setdefault(v.casefold(), []).append(v)
    twins = [v for v in by_key.values() if len(v) > 1]
    if twins:
        listed = "; ".join(", ".join(f"{v!r} (row {first[v]})" for v in t) for t in twins)
        raise DataError(
            f"{csv_path}: labels in column {column!r} differ only by letter case: {listed}; they would become "
            "separate classes of one thing: write each class one way (or pass class_names)"
        )


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
    """Read and structurally check a datalist JSON (UTF-8, a byte-order mark allowed); image paths are made absolute
    the way MONAI's ``load_decathlon_datalist`` does — relative to the JSON's folder, or to its ``"data_root"`` when
    it has one (a split file kept away from its data, :mod:`gemix_monai.data.splits`). Missing split keys become empty
    lists. ``class_names`` must be distinct strings (not two spellings of one name)."""
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise DataError(f"datalist not found: {path}")
    try:
        raw = json.loads(read_text_file(path, "the datalist"))
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not valid JSON ({e})") from None
    return datalist_from_dict(raw, str(path), path.parent)


def datalist_from_dict(raw, where: str = "the datalist given", base: str | os.PathLike | None = None) -> dict:
    """The checks and path rules of :func:`read_datalist` on a datalist already in memory (e.g. the items MONAI
    Label's ``BundleTrainTask`` gives a bundle): relative image paths are joined to ``base`` (default: the current
    folder); errors name ``where``."""
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected a JSON object with 'class_names' and split lists, got {type(raw).__name__}")
    names = raw.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{where}: 'class_names' must be a non-empty list of strings, got {names!r}")
    check_class_name_list(names, f"{where}: 'class_names'")
    if not any(split in raw for split in SPLITS):
        raise DataError(f"{where}: no split lists; expected some of {list(SPLITS)}")
    base = Path(os.path.abspath(base if base is not None else os.curdir))
    if "data_root" in raw:
        if not isinstance(raw["data_root"], str):
            raise DataError(f"{where}: 'data_root' must be a folder path, got {raw['data_root']!r}")
        base = base / raw["data_root"]
    out = {k: v for k, v in raw.items() if k not in SPLITS}
    for split in SPLITS:
        items = raw.get(split, [])
        if not isinstance(items, list):
            raise DataError(
                f"{where}: {split!r} must be a list of {{'image', 'label'}} entries, got {type(items).__name__}"
            )
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "image" not in item:
                raise DataError(f"{where}: {split}[{i}] must be an object with an 'image' key, got {item!r}")
            _check_mask_entry(item, f"{where}: {split}[{i}]")
        out[split] = [_absolute_paths(item, base) for item in items]
    return out


def _absolute_paths(item: dict, base: Path) -> dict:
    """MONAI's rule (``monai.data.load_decathlon_datalist``): ``image`` joined to ``base``; any other string value
    joined when that names an existing file. ``label_mask`` → ``mask``; the mask path is joined like the image."""
    out = {}
    for key, value in item.items():
        if key in (MASK_KEY, *MASK_ALIASES):
            continue
        if isinstance(value, (str, os.PathLike)):
            joined = os.path.normpath(os.path.join(base, value))
            value = joined if key == "image" or os.path.exists(joined) else value
        out[key] = value
    raw = next((item[k] for k in (MASK_KEY, *MASK_ALIASES) if k in item), None)
    if raw is not None:
        out[MASK_KEY] = os.path.normpath(os.path.join(base, raw))
    return out


def _check_mask_entry(item: dict, where: str) -> None:
    keys = [k for k in (MASK_KEY, *MASK_ALIASES) if k in item]
    if len(keys) > 1:
        raise DataError(f"{where}: has both {keys}; give the mask once, as {MASK_KEY!r}")
    if keys and not isinstance(item[keys[0]], str):
        raise DataError(f"{where}: {keys[0]!r} must be a file path, got {item[keys[0]]!r}")


def load_split(path: str | os.PathLike, split: str = "training") -> list[dict]:
    """Entries of one split with absolute image paths."""
    return read_datalist(path)[canonical_split(split)]
