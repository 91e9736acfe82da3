"""Splits made once and kept, and checks that no image leaks between them (docs/data.md, "Splits").

A folder or CSV without its own split is divided per class with ``split_seed`` — never the training
``--seed`` — and the result is written as a MONAI datalist beside the data on first use
(``<folder>/gemix_split_seed<S>.json``, or ``<manifest>.split_seed<S>.json``; under
``$GEMIX_DATA_DIR/splits/`` when the data folder is read-only). Every later run — GAN, classifiers,
evaluation, whatever their seeds — reads that file, so a test image never becomes a training image.
If the files on disk no longer match the stored split, the run stops and says what changed.

:func:`check_leakage` refuses the same image in two splits (same path, or same content by sha256),
and one image with two labels, naming both files; ``on_duplicate="drop"`` instead removes the
held-out copies of training images (validation/test) and reports them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from .datalist import SPLITS, read_datalist, write_datalist
from .errors import DataError, DataValidationError

__all__ = ["split_file_for", "fixed_split_datalist", "check_leakage", "content_hash", "ON_DUPLICATE"]

logger = logging.getLogger(__name__)

ON_DUPLICATE = ("error", "drop")


def split_file_for(source: str | os.PathLike, split_seed: int, fallback_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(preferred, fallback)`` locations of the split datalist of ``source``."""
    source = Path(source).resolve()
    name = f"gemix_split_seed{int(split_seed)}.json"
    preferred = (
        source / name if source.is_dir() else source.with_name(f"{source.name}.split_seed{int(split_seed)}.json")
    )
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    fallback = Path(fallback_dir) / "splits" / f"{source.name}-{digest}" / name
    return preferred, fallback


def _key_set(datalist: dict) -> set[tuple[str, int]]:
    return {(str(Path(it["image"]).resolve()), int(it["label"])) for s in SPLITS for it in datalist.get(s, [])}


def _take_masks(stored: dict, scanned: dict) -> None:
    """Masks found now beside the images (docs/segmentation.md) apply to a split fixed before they existed:
    the split fixes which images go where, the scan says which masks they have."""
    masks = {str(Path(it["image"]).resolve()): it["mask"] for s in SPLITS for it in scanned.get(s, []) if "mask" in it}
    for split in SPLITS:
        items = []
        for item in stored.get(split, []):
            item = {k: v for k, v in item.items() if k != "mask"}
            mask = masks.get(str(Path(item["image"]).resolve()))
            if mask is not None:
                item["mask"] = mask
            items.append(item)
        stored[split] = items


def fixed_split_datalist(source, build: Callable[[], dict], *, split_seed: int, fallback_dir) -> dict:
    """The datalist of ``source`` with its split fixed on disk (see the module docstring).

    ``build()`` scans the source and splits it with ``split_seed``; the first call writes the result,
    later calls return the stored split after checking that the same files with the same labels are
    still there (a changed file set raises, naming what was added and removed).
    """
    scanned = build()
    if "split" not in scanned:
        return scanned  # the source has its own split (split folders or a split column)
    preferred, fallback = split_file_for(source, split_seed, fallback_dir)
    for path in (preferred, fallback):
        if path.is_file():
            stored = read_datalist(path)
            if list(stored["class_names"]) != list(scanned["class_names"]):
                raise DataError(
                    f"{path}: stored split has classes {stored['class_names']}, {source} now has "
                    f"{scanned['class_names']}; delete {path} to split again"
                )
            now, then = _key_set(scanned), _key_set(stored)
            if now != then:
                added, removed = sorted(now - then), sorted(then - now)
                raise DataError(
                    f"{source} changed since its split was fixed in {path}: {len(added)} image(s) added or relabelled "
                    f"{[a[0] for a in added[:3]]}, {len(removed)} removed {[r[0] for r in removed[:3]]}. Delete {path} to split "
                    "again (models trained on the old split may then have seen new test images), or restore the files"
                )
            stored["split_file"] = str(path)
            _take_masks(stored, scanned)
            for key in ("skipped",):
                if key in scanned:
                    stored[key] = scanned[key]
            return stored
    record = dict(scanned)
    for path in (preferred, fallback):
        try:
            write_datalist(record, path, relative=False)
        except OSError as e:
            logger.info("cannot write the split file %s (%s); trying %s", path, e, fallback)
            continue
        logger.info("fixed the split of %s (split_seed=%d) in %s", source, split_seed, path)
        record["split_file"] = str(path)
        return record
    raise DataError(
        f"cannot write the split of {source} to {preferred} or {fallback}; pass a datalist with explicit splits"
    )


def content_hash(image) -> str:
    """sha256 of a file's bytes, or of an array's dtype, shape and bytes."""
    h = hashlib.sha256()
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        arr = np.ascontiguousarray(np.asarray(image))
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _name(item, split: str, index: int) -> str:
    image = item.get("image")
    if isinstance(image, (str, os.PathLike)):
        return f"{split}[{index}] {image}"
    return f"{split}[{index}] {item.get('image_source', '<array>')}"


def check_leakage(datalist: dict, *, on_duplicate: str = "error", context: str = "datalist") -> dict:
    """Refuse images shared between splits and images with two labels (see the module docstring).

    Returns the datalist (with held-out duplicates removed and listed under ``"dropped_duplicates"``
    when ``on_duplicate="drop"``). Unreadable files are left to validation, which names them.
    """
    if on_duplicate not in ON_DUPLICATE:
        raise ValueError(f"on_duplicate must be one of {ON_DUPLICATE}, got {on_duplicate!r}")
    seen_path: dict[str, tuple[str, int, object]] = {}
    seen_hash: dict[str, tuple[str, int, object]] = {}
    problems: list[tuple[str, str]] = []
    drop: dict[str, set[int]] = {s: set() for s in SPLITS}
    dropped: list[tuple[str, str]] = []
    for split in SPLITS:
        for i, item in enumerate(datalist.get(split, []) or []):
            if not isinstance(item, dict) or "image" not in item or "label" not in item:
                continue  # structural problems are validation's to report
            image = item["image"]
            keys = []
            if isinstance(image, (str, os.PathLike)):
                keys.append(("path", str(Path(image).resolve()), seen_path))
                try:
                    keys.append(("content", content_hash(image), seen_hash))
                except OSError:
                    pass
            else:
                keys.append(("content", content_hash(image), seen_hash))
            for kind, key, seen in keys:
                if key not in seen:
                    seen[key] = (split, i, item)
                    continue
                first_split, j, first = seen[key]
                a, b = _name(first, first_split, j), _name(item, split, i)
                same = "the same file" if kind == "path" else "identical content (sha256)"
                if first.get("label") != item.get("label"):
                    problems.append(
                        (b, f"{same} as {a} but label {item.get('label')} vs {first.get('label')}: conflicting labels")
                    )
                elif first_split != split:
                    if on_duplicate == "drop":  # splits are visited training → validation → test: drop the later copy
                        drop[split].add(i)
                        dropped.append((b, f"dropped: {same} as {a}"))
                    else:
                        problems.append(
                            (b, f"{same} as {a}: an image in both {first_split} and {split} leaks between splits")
                        )
                elif kind == "path":
                    problems.append((b, f"listed twice in {split} (also {a}): it would count double"))
                break  # one report per item
    if problems:
        hint = "" if on_duplicate == "drop" else " (on_duplicate='drop' removes held-out copies of training images)"
        raise DataValidationError(problems, f"{context}: leakage check{hint}")
    if dropped:
        warnings.warn(
            f"{context}: {len(dropped)} held-out image(s) dropped as duplicates of training images:\n"
            + "\n".join(f"  - {w}: {r}" for w, r in dropped[:20]),
            stacklevel=2,
        )
        out = dict(datalist)
        for split in SPLITS:
            if drop[split]:
                out[split] = [it for i, it in enumerate(datalist.get(split, [])) if i not in drop[split]]
        out["dropped_duplicates"] = [list(d) for d in dropped]
        return out
    return datalist


def summarize_splits(datalist: dict) -> dict:
    """Counts per split and class (for the run summary)."""
    names = list(datalist.get("class_names", []))
    out = {}
    for split in SPLITS:
        labels = [int(it["label"]) for it in datalist.get(split, []) or [] if isinstance(it, dict) and "label" in it]
        out[split] = {n: labels.count(k) for k, n in enumerate(names)}
    return out
