"""Splits made once and kept, and checks that no image leaks between them (docs/data.md, "Splits").

A folder or CSV without its own split is divided per class with ``split_seed`` — never the training
``--seed`` — copies of one image kept in one split (:mod:`.groups`), and the result is written on first use
as a MONAI datalist beside the data (``<folder>/gemix_split_seed<S>.json``, or
``<manifest>.split_seed<S>.json``). The file stores each image's path *relative to the data folder* and its
sha256, so a moved or copied folder keeps its split, verified by content. When the data folder cannot be
written (a read-only mount) the split goes under the caller's run folder (``split_dir``: e.g. the bundle root),
else under ``$GEMIX_DATA_DIR/splits/``; the summary says where. Every later run — GAN, classifiers,
evaluation, whatever their seeds — reads that file, so a test image never becomes a training image.
If the files on disk no longer match the stored split (added, removed, relabelled or changed content), the run
stops and says what changed.

:func:`check_leakage` refuses the same image in two splits (same path, or same content by sha256),
and one image with two labels, naming both files; ``on_duplicate="drop"`` instead removes the
held-out copies of training images (validation/test) and reports them. :func:`check_output_outside_data`
refuses a run folder inside a data folder (its outputs would become data).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

from .datalist import SPLITS, read_datalist, write_datalist
from .errors import DataError, DataValidationError
from .files import read_text_file
from .groups import content_hash

__all__ = [
    "split_file_for",
    "split_locations",
    "fixed_split_datalist",
    "check_leakage",
    "content_hash",
    "check_output_outside_data",
    "ON_DUPLICATE",
    "SPLIT_FORMAT",
]

logger = logging.getLogger(__name__)

ON_DUPLICATE = ("error", "drop")

#: Layout of the split files written here: 2 = paths relative to the data folder + sha256 per image.
SPLIT_FORMAT = 2


def _data_root(source: Path) -> Path:
    """The folder a split's relative paths are relative to: the folder itself, or a manifest's folder."""
    return source if source.is_dir() else source.parent


def split_file_for(source: str | os.PathLike, split_seed: int, fallback_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(preferred, fallback)`` locations of the split datalist of ``source``."""
    source = Path(os.path.abspath(source))
    name = f"gemix_split_seed{int(split_seed)}.json"
    preferred = (
        source / name if source.is_dir() else source.with_name(f"{source.name}.split_seed{int(split_seed)}.json")
    )
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    fallback = Path(fallback_dir) / "splits" / f"{source.name}-{digest}" / name
    return preferred, fallback


def split_locations(
    source: str | os.PathLike, split_seed: int, fallback_dir: str | os.PathLike, split_dir=None
) -> list[Path]:
    """Where the split of ``source`` is looked for and written, in order: beside the data; under ``split_dir`` (the
    caller's run folder: ``<split_dir>/gemix_split_<name>_seed<S>.json``); under ``fallback_dir/splits/``."""
    preferred, fallback = split_file_for(source, split_seed, fallback_dir)
    out = [preferred]
    if split_dir is not None:
        out.append(
            Path(os.path.abspath(split_dir))
            / f"gemix_split_{Path(os.path.abspath(source)).name}_seed{int(split_seed)}.json"
        )
    out.append(fallback)
    return out


def _key(path: str, root: Path) -> str:
    """An image's identity in a split: its path relative to the data folder (posix), else its absolute path."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        pass
    real = absolute.resolve()  # split files before format 2 stored resolved absolute paths
    try:
        return real.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(real)


def _entries(datalist: dict, root: Path) -> dict[str, tuple[int, str]]:
    return {_key(it["image"], root): (int(it["label"]), split) for split in SPLITS for it in datalist.get(split, [])}


def _take_masks(stored: dict, scanned: dict) -> None:
    """Masks found now beside the images (docs/segmentation.md) apply to a split fixed before they existed:
    the split fixes which images go where, the scan says which masks they have."""
    masks = {os.path.abspath(it["image"]): it["mask"] for s in SPLITS for it in scanned.get(s, []) if "mask" in it}
    for split in SPLITS:
        items = []
        for item in stored.get(split, []):
            item = {k: v for k, v in item.items() if k not in ("mask", "sha256")}
            mask = masks.get(os.path.abspath(item["image"]))
            if mask is not None:
                item["mask"] = mask
            items.append(item)
        stored[split] = items


def _split_record(scanned: dict, root: Path, source: Path) -> dict:
    """The split file's content: image (and mask) paths relative to the data folder, each image's sha256. The masks
    are kept for readers of the file; a run takes them from its own scan (:func:`_take_masks`)."""
    record = {k: v for k, v in scanned.items() if k not in (*SPLITS, "skipped", "split_file", "split_note")}
    record["split"] = {**scanned.get("split", {}), "format": SPLIT_FORMAT}
    record["source"] = source.name
    for split in SPLITS:
        items = []
        for it in scanned.get(split, []):
            item = dict(it)
            for key in ("image", "mask"):
                if key in item:
                    item[key] = _key(it[key], root)
            try:
                item["sha256"] = content_hash(it["image"])
            except OSError:
                pass  # validation names the unreadable file
            items.append(item)
        record[split] = items
    return record


def _read_stored(path: Path, root: Path) -> dict:
    """A stored split with absolute image paths: format 2 relative to the data folder *as it is now* (so a moved
    folder keeps its split), older files as written (absolute)."""
    stored = read_datalist(path)
    if stored.get("split", {}).get("format") == SPLIT_FORMAT:
        import json

        raw = json.loads(read_text_file(path, "the split file"))
        for split in SPLITS:
            stored[split] = [
                {**item, **{k: os.path.normpath(os.path.join(root, item[k])) for k in ("image", "mask") if k in item}}
                for item in raw.get(split, [])
            ]
    return stored


def _compare(stored: dict, scanned: dict, root: Path, path: Path, source: Path) -> None:
    """Same images with the same labels and (format 2) the same content, else a DataError naming the differences."""
    then, now = _entries(stored, root), _entries(scanned, root)
    if list(stored["class_names"]) != list(scanned["class_names"]):
        raise DataError(
            f"{path}: stored split has classes {stored['class_names']}, {source} now has "
            f"{scanned['class_names']}; delete {path} to split again"
        )
    added = sorted(k for k in now if k not in then)
    removed = sorted(k for k in then if k not in now)
    relabelled = sorted(k for k in now if k in then and now[k][0] != then[k][0])
    changed = []
    for split in SPLITS:
        for item in stored.get(split, []):
            key = _key(item["image"], root)
            if "sha256" in item and key in now and key not in relabelled:
                try:
                    if content_hash(item["image"]) != item["sha256"]:
                        changed.append(key)
                except OSError:
                    changed.append(key)
    if added or removed or relabelled or changed:
        parts = [
            f"{len(v)} image(s) {what} {v[:3]}"
            for what, v in (
                ("added", added),
                ("removed", removed),
                ("relabelled", relabelled),
                ("with changed content", changed),
            )
            if v
        ]
        raise DataError(
            f"{source} changed since its split was fixed in {path}: " + ", ".join(parts) + f". Delete {path} "
            "to split again (models trained on the old split may then have seen new test images), or restore the files"
        )


def fixed_split_datalist(source, build: Callable[[], dict], *, split_seed: int, fallback_dir, split_dir=None) -> dict:
    """The datalist of ``source`` with its split fixed on disk (see the module docstring).

    ``build()`` scans the source and splits it with ``split_seed``; the first call writes the result (relative
    paths + sha256) to the first writable of :func:`split_locations`, later calls return the stored split after
    checking that the same files with the same labels and content are still there (else a ``DataError`` naming what
    was added, removed, relabelled or changed). The result has ``"split_file"`` (where the split is) and
    ``"split_note"`` (why there, when not beside the data).
    """
    source = Path(os.path.abspath(source))
    scanned = build()
    if "split" not in scanned:
        return scanned  # the source has its own split (split folders or a split column)
    root = _data_root(source)
    locations = split_locations(source, split_seed, fallback_dir, split_dir)
    for path in locations:
        if path.is_file():
            stored = _read_stored(path, root)
            _compare(stored, scanned, root, path, source)
            wanted = scanned.get("split", {}).get("groups", "sha256")
            kept = stored.get("split", {}).get("groups", "sha256")
            if wanted != kept and "phash" in wanted:
                raise DataError(
                    f"{path}: this split was drawn grouping duplicates by {kept}; near_duplicates asks for {wanted}. "
                    f"Delete {path} to split again with near-duplicates grouped (models trained on the old split may "
                    "then have seen new test images), or drop near_duplicates"
                )
            stored["split_file"] = str(path)
            if path != locations[0]:
                stored["split_note"] = f"not beside the data: {locations[0]} is not there"
            _take_masks(stored, scanned)
            for key in ("skipped",):
                if key in scanned:
                    stored[key] = scanned[key]
            return stored
    record = _split_record(scanned, root, source)
    for i, path in enumerate(locations):
        # beside the data the relative paths are MONAI's (relative to the JSON); elsewhere they name their root
        record["data_root"] = "." if i == 0 else str(root)
        try:
            write_datalist(record, path, relative=False)
        except OSError as e:
            logger.warning("cannot write the split file %s (%s)", path, e.strerror or e)
            continue
        out = dict(scanned)
        out["split_file"] = str(path)
        if i:
            out["split_note"] = f"the data folder {root} cannot be written"
        logger.info("fixed the split of %s (split_seed=%d) in %s", source, split_seed, path)
        return out
    raise DataError(
        f"cannot write the split of {source} to any of {[str(p) for p in locations]}; pass split_dir= (a writable "
        "run folder) or a datalist with explicit splits"
    )


def check_output_outside_data(output_dir: str | os.PathLike, data_source) -> None:
    """Refuse a run/bundle output folder equal to or inside a dataset *folder*: its ``checkpoints/``, ``models/`` and
    ``samples/`` would become class folders (or files among the images) of the next run. Sources that are files
    (CSV, datalist, npz) and the phantoms are not checked — nothing there is found by searching a folder.
    Raises :class:`DataError` naming both."""
    if data_source is None or isinstance(data_source, str) and data_source in ("phantom", "phantoms", "default"):
        return
    data = Path(os.path.abspath(data_source))
    if not data.is_dir():
        return
    out = Path(os.path.abspath(output_dir))
    real_data, real_out = data.resolve(), out.resolve()
    if real_out == real_data or real_data in real_out.parents:
        raise DataError(
            f"the output folder {out} is inside the dataset folder {data}: checkpoints, models and samples written "
            "there would be read as data by the next run; choose an output folder outside the dataset"
        )


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
