"""Up-front validation of datalist entries, so bad input fails before training starts.

:func:`validate_items` checks every entry of a split — keys, label type and range, file presence,
format, readability (header and pixel-data size; ``deep=True`` decodes every image), and 2-D-ness —
and either raises one :class:`~gemix_monai.data.errors.DataValidationError` listing *all* problems,
or (``on_error="skip"``) drops the bad entries and reports them.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Sequence

import numpy as np
import torch

from .errors import DataError, DataValidationError
from .transforms import LoadMedicalImaged, image_format, mask_label_map

__all__ = ["validate_items", "check_label", "inspect_image_file", "summarize"]

ON_ERROR = ("raise", "skip")


def check_label(label, num_classes: int) -> int:
    """The label as an ``int`` in ``[0, num_classes)``; ``DataError`` otherwise (bools and fractions rejected)."""
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer, float, np.floating)):
        raise DataError(f"label must be an integer class index in [0, {num_classes}), got {label!r}")
    if float(label) != int(label):
        raise DataError(f"label must be an integer class index in [0, {num_classes}), got {label!r}")
    label = int(label)
    if not 0 <= label < num_classes:
        raise DataError(f"label {label} out of range [0, {num_classes})")
    return label


def _dicom_shape(path: str) -> tuple[int, ...]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as e:
        raise DataError(f"not a DICOM file ({e})") from None
    except Exception as e:  # truncated files surface as EOFError, OSError, struct errors...
        raise DataError(f"unreadable or truncated DICOM ({type(e).__name__}: {e})") from None
    if "PixelData" not in ds:
        raise DataError("DICOM file has no pixel data")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as e:
        raise DataError(f"DICOM image attributes missing or invalid ({e})") from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        expected = math.ceil(rows * cols * frames * samples * bits / 8)
        found = len(ds.PixelData)
        if found < expected:
            raise DataError(
                f"truncated DICOM: pixel data has {found} bytes, {rows}×{cols}×{frames} frames needs {expected}"
            )
    return (rows, cols, frames) if frames > 1 else (rows, cols)


def _nifti_shape(path: str) -> tuple[int, ...]:
    import nibabel as nib

    try:
        img = nib.load(path)
    except Exception as e:
        raise DataError(f"unreadable NIfTI ({type(e).__name__}: {e})") from None
    shape = tuple(int(s) for s in img.shape)
    if not path.lower().endswith(".gz"):
        offset = int(img.dataobj.offset)
        expected = offset + int(np.prod(shape)) * img.get_data_dtype().itemsize
        found = os.path.getsize(path)
        if found < expected:
            raise DataError(f"truncated NIfTI: {found} bytes, header says {expected}")
    return shape


def _pil_shape(path: str) -> tuple[int, ...]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()  # PNG: checks the whole stream (CRCs, truncation) without decoding
        with Image.open(path) as im:
            im.load()  # JPEG/TIFF/...: verify() does not see a truncated stream; decoding does
            return (im.height, im.width)
    except Exception as e:
        raise DataError(f"unreadable image ({type(e).__name__}: {e})") from None


def inspect_image_file(path: str | os.PathLike, *, allow_volumes: bool = False) -> tuple[int, ...]:
    """Spatial shape of an image file after cheap checks; ``DataError`` (without the path) otherwise.

    A 3-D volume with more than one slice is an error unless ``allow_volumes`` (the transforms will
    then need ``slice_index``/``slice_mask_key``).
    """
    path = str(path)
    if not os.path.exists(path):
        raise DataError("file not found")
    if not os.path.isfile(path):
        raise DataError("not a regular file")
    fmt = image_format(path)
    shape = {"dicom": _dicom_shape, "nifti": _nifti_shape, "pil": _pil_shape}[fmt](path)
    if fmt == "nifti":
        # Trailing singleton axes are a 2-D slice stored as 3-D/4-D; more slices is a volume.
        spatial = shape[:3]
        while len(spatial) > 2 and spatial[-1] == 1:
            spatial = spatial[:-1]
        if len(spatial) < 2:
            raise DataError(f"expected a 2-D image, got shape {shape}")
        if len(shape) > 4 or (len(shape) == 4 and shape[3] != 1 and len(spatial) == 3):
            raise DataError(f"volume of shape {shape} (4-D); expected a 2-D slice")
        if len(spatial) == 3 and not allow_volumes:
            raise DataError(
                f"volume of shape {shape} where a 2-D slice was expected; pass slice_index= or slice_mask_key= to choose one"
            )
    if fmt == "dicom" and len(shape) == 3 and not allow_volumes:
        raise DataError(
            f"multi-frame DICOM of shape {shape} where a 2-D slice was expected; pass slice_index= to choose one"
        )
    return shape


def validate_items(
    items: Sequence[dict],
    *,
    num_classes: int,
    split: str = "training",
    check_files: bool = True,
    deep: bool = False,
    allow_volumes: bool = False,
    on_error: str = "raise",
    context: str = "datalist",
    preprocessing=None,
    return_stats: bool = False,
    mask_channels: int = 0,
):
    """Check every entry of one split; return ``(good_items, problems)`` (``+ stats`` with ``return_stats``).

    Args:
        items: ``[{"image": path | array [C, H, W], "label": int, ...}, ...]``.
        num_classes: labels must lie in ``[0, num_classes)``.
        split: name used in messages (``"training[12] /path/x.dcm: ..."``).
        check_files: check that files exist and are readable (header + pixel-data size).
        deep: also decode every image through the MONAI reader (slower; catches corrupt compressed data).
        allow_volumes: accept 3-D volumes (when a slice will be chosen by the transforms).
        on_error: ``"raise"`` — one ``DataValidationError`` listing every problem; ``"skip"`` —
            drop bad entries, warn with the list, and return them in ``problems``.
        context: the source named in messages (datalist file, CSV, npz...).
        preprocessing: the :class:`~gemix_monai.data.contract.Preprocessing` the split will get; with
            ``deep``, an 8-bit image in a split that is CT-windowed is a problem (8-bit values cannot be HU).
        return_stats: also return one dict per good decoded item (format, stored type, shape, min, max).
        mask_channels: ``M > 0``: every entry must have a ``"mask"`` file (docs/segmentation.md), present and
            readable; with ``deep`` its spatial shape must equal its image's and its values must be integers in
            ``0..M`` (0/255 in an 8-bit PNG is binary). 0: masks are not checked.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if len(items) == 0:
        raise DataValidationError([(split, "split is empty: no images")], context)
    loader = LoadMedicalImaged("image") if deep else None
    windowed = preprocessing is not None and getattr(preprocessing, "hu_window", None) is not None
    good, problems, stats = [], [], []
    for i, item in enumerate(items):
        where = f"{split}[{i}]"
        try:
            if not isinstance(item, dict):
                raise DataError(f"entry must be a dict with 'image' and 'label', got {type(item).__name__}")
            for key in ("image", "label"):
                if key not in item:
                    raise DataError(f"entry has no {key!r} key (keys: {sorted(item)})")
            image = item["image"]
            if isinstance(image, (str, os.PathLike)):
                where = f"{where} {image}"
            label = check_label(item["label"], num_classes)
            decoded = None
            if isinstance(image, (np.ndarray, torch.Tensor)):
                if image.ndim != 3:
                    raise DataError(f"in-memory image must be [C, x, y], got shape {tuple(image.shape)}")
                if deep:
                    decoded = loader({"image": image, "image_source": item.get("image_source", f"{split}[{i}]")})[
                        "image"
                    ]
            elif isinstance(image, (str, os.PathLike)):
                if check_files:
                    inspect_image_file(image, allow_volumes=allow_volumes)
                    if loader is not None:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            decoded = loader.load(image)
            else:
                raise DataError(f"'image' must be a path or an array, got {type(image).__name__}")
            if mask_channels:
                _check_mask(item, decoded, mask_channels, check_files, loader)
            if decoded is not None:
                meta = getattr(decoded, "meta", {}) or {}
                source_dtype = str(meta.get("source_dtype", ""))
                if windowed and source_dtype == "uint8" and meta.get("source_format") != "array":
                    raise DataError(
                        "8-bit image in a split preprocessed with a CT window: 8-bit values cannot be "
                        "Hounsfield units; use hu_window=None (intensity scaling) for such data"
                    )
                stats.append(
                    {
                        "format": str(meta.get("source_format", "")),
                        "source_dtype": source_dtype,
                        "channels": int(decoded.shape[0]),
                        "shape": tuple(int(v) for v in decoded.shape[1:]),
                        "min": float(decoded.min()),
                        "max": float(decoded.max()),
                        "label": label,
                    }
                )
            good.append({**item, "label": label})
        except DataError as e:
            message = str(e)
            if isinstance(image := (item.get("image") if isinstance(item, dict) else None), (str, os.PathLike)):
                message = message.replace(f"{image}: ", "")  # the path is already in `where`
            problems.append((where, message))
    if problems and on_error == "raise":
        raise DataValidationError(problems, context)
    if problems:
        warnings.warn(
            str(DataValidationError(problems, context)).replace(
                "(fix them, or pass on_error='skip' to drop and report them)", "skipped"
            ),
            stacklevel=2,
        )
        if not good:
            raise DataValidationError(problems + [(split, "no valid entries left after skipping")], context)
    return (good, problems, stats) if return_stats else (good, problems)


def _check_mask(item: dict, decoded_image, mask_channels: int, check_files: bool, loader) -> None:
    """The entry's mask: present, readable, and (decoded) the image's spatial shape with values in 0..M."""
    from .masks import label_map_to_channels

    if "mask" not in item:
        raise DataError("entry has no 'mask' while the split's other entries have one (every image needs its mask)")
    mask = item["mask"]
    if not isinstance(mask, (str, os.PathLike)):
        raise DataError(f"'mask' must be a file path, got {type(mask).__name__}")
    if not check_files:
        return
    try:
        inspect_image_file(mask, allow_volumes=True)
    except DataError as e:
        raise DataError(f"mask {mask}: {e}") from None
    if loader is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        decoded_mask = loader.load(mask)
    if decoded_image is not None and tuple(decoded_mask.shape[1:]) != tuple(decoded_image.shape[1:]):
        raise DataError(
            f"mask {mask} has spatial shape {tuple(decoded_mask.shape[1:])}, its image {item['image']} has "
            f"{tuple(decoded_image.shape[1:])} (both in MONAI order [x, y]); a mask must match its image pixel for pixel"
        )
    labels = mask_label_map(decoded_mask, str(mask))
    try:
        label_map_to_channels(labels.reshape(1, labels.shape[1], -1), mask_channels, f"mask {mask}")
    except ValueError as e:
        raise DataError(str(e)) from None


def summarize(
    context: str, split: str, class_names, items, stats, problems, contract, *, split_file=None, dropped=()
) -> dict:
    """The one-paragraph summary every run logs (and ``gemix-monai validate`` prints), plus its numbers."""
    from collections import Counter

    counts = Counter(int(it["label"]) for it in items)
    per_class = {name: counts.get(k, 0) for k, name in enumerate(class_names)}
    out = {
        "source": context,
        "split": split,
        "count": len(items),
        "per_class": per_class,
        "problems": [list(p) for p in problems],
        "preprocessing": contract.preprocessing.to_dict(),
        "preprocessing_reason": contract.reason,
        "split_file": split_file,
        "dropped_duplicates": list(dropped),
    }
    parts = [f"{context} [{split}]: {len(items)} images ({', '.join(f'{n} {c}' for n, c in per_class.items())})"]
    if stats:
        formats = Counter(f"{s['format']}/{s['source_dtype']}" for s in stats)
        sizes = Counter("×".join(map(str, s["shape"])) for s in stats)
        lo, hi = min(s["min"] for s in stats), max(s["max"] for s in stats)
        out.update(
            {
                "formats": dict(formats),
                "num_sizes": len(sizes),
                "intensity_range": [lo, hi],
                "channels": dict(Counter(s["channels"] for s in stats)),
            }
        )
        common = ", ".join(f"{k} ({v})" for k, v in sizes.most_common(3))
        parts.append(
            f"stored as {dict(formats)}; {len(sizes)} size(s), most common {common}; stored intensities {lo:g}..{hi:g}"
        )
    parts.append(f"preprocessing: {contract.preprocessing.describe()} — because {contract.reason}")
    if split_file:
        parts.append(f"split fixed in {split_file}")
    if dropped:
        parts.append(f"{len(dropped)} held-out duplicate(s) of training images dropped")
    if problems:
        parts.append(
            f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'} skipped: "
            + "; ".join(f"{w}: {r}" for w, r in problems[:5])
            + (" ..." if len(problems) > 5 else "")
        )
    out["text"] = ". ".join(parts) + "."
    return out
