"""Up-front validation of datalist entries, so bad input fails before training starts.

:func:`validate_items` checks every entry of a split — keys, label type and range, file presence,
format, readability (header and pixel-data size; ``deep=True`` decodes every image and runs it through the
split's own preprocessing, so validation refuses exactly what training would), and 2-D-ness —
and either raises one :class:`~gemix_monai.data.errors.DataValidationError` listing *all* problems,
or (``on_error="skip"``) drops the bad entries and reports them. :func:`check_datalist` holds the checks of a
whole datalist (class names, classes without training images) that every run and ``gemix-monai validate`` apply.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .errors import DataError, DataValidationError
from .files import image_format
from .intensity import IntensityToTrainingRanged
from .masks import label_map_to_channels
from .preprocessing import DataCompose, mask_label_map
from .readers import LoadMedicalImaged, check_dicom_rescale, check_min_side, check_nifti_dims, check_pil_header
from .spatial import ResizeLongestd

__all__ = [
    "validate_items",
    "check_label",
    "inspect_image_file",
    "summarize",
    "check_datalist",
    "check_class_name_list",
]

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
    check_dicom_rescale(ds)
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
    # The pixel data lives in the file itself (.nii) or beside it (Analyze / NIfTI pair: the .img of a .hdr).
    data_file = str(img.file_map["image"].filename or path)
    if not data_file.lower().endswith(".gz"):
        offset = int(img.dataobj.offset)
        expected = offset + int(np.prod(shape)) * img.get_data_dtype().itemsize
        found = os.path.getsize(data_file)
        if found < expected:
            kind = "NIfTI" if data_file == path else f"image data {os.path.basename(data_file)}"
            raise DataError(f"truncated {kind}: {found} bytes, header says {expected}")
    return shape


def _pil_shape(path: str) -> tuple[int, ...]:
    from PIL import Image

    check_pil_header(path)  # one page, minimum size
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
    if os.path.islink(path) and not os.path.exists(path):
        raise DataError(f"dangling link (or a link loop): it points to {os.readlink(path)}")
    if not os.path.exists(path):
        raise DataError("file not found")
    if not os.path.isfile(path):
        raise DataError("not a regular file")
    fmt = image_format(path)
    shape = {"dicom": _dicom_shape, "nifti": _nifti_shape, "pil": _pil_shape}[fmt](path)
    if fmt == "nifti":
        check_nifti_dims(shape)  # a 4-D (x, y, 1, t) is refused, never read as t colour channels
        # Trailing singleton axes are a 2-D slice stored as 3-D/4-D; more slices is a volume.
        spatial = shape[:3]
        while len(spatial) > 2 and spatial[-1] == 1:
            spatial = spatial[:-1]
        if len(spatial) < 2:
            raise DataError(f"expected a 2-D image, got shape {shape}")
        check_min_side(spatial, "x × y")
        if len(spatial) == 3 and not allow_volumes:
            raise DataError(
                f"volume of shape {shape} where a 2-D slice was expected; pass slice_index= or slice_mask_key= to choose one"
            )
    if fmt == "dicom":
        check_min_side(shape, "rows × cols")
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
    transform=None,
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
        transform: with ``deep``, the split's own preprocessing (what training applies, e.g.
            ``Preprocessing.transforms()``): every decoded item is run through it, so what training would refuse
            (a channel count that does not convert, a bad crop box, ...) is refused here.

    Images of a single value (all black, all white) pass with a warning naming them (``stats[i]["constant"]``):
    they carry no picture, but a held-out blank scan can be a real case (docs/data.md, "Decoding").
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if len(items) == 0:
        raise DataValidationError([(split, "split is empty: no images")], context)
    loader = LoadMedicalImaged("image") if deep else None
    steps = _checking_steps(transform) if deep and transform is not None else None
    windowed = preprocessing is not None and getattr(preprocessing, "hu_window", None) is not None
    check = _ItemChecks(num_classes, split, check_files, allow_volumes, mask_channels, loader, steps, windowed)
    good, problems, stats = [], [], []
    for i, item in enumerate(items):
        where = _where(split, i, item)
        try:
            entry, stat = check(i, item, where)
        except DataError as e:
            message = str(e)
            if isinstance(image := (item.get("image") if isinstance(item, dict) else None), (str, os.PathLike)):
                message = message.replace(f"{image}: ", "")  # the path is already in `where`
            problems.append((where, message))
            continue
        if stat is not None:
            stats.append(stat)
        good.append(entry)
    _report(good, problems, stats, split, on_error, context)
    return (good, problems, stats) if return_stats else (good, problems)


def _where(split: str, i: int, item) -> str:
    """How messages name entry ``i``: ``"training[12]"``, with its file (``"training[12] /data/x.dcm"``) once the entry
    is a dict with an image path and a label."""
    image = item.get("image") if isinstance(item, dict) and "label" in item else None
    return f"{split}[{i}] {image}" if isinstance(image, (str, os.PathLike)) else f"{split}[{i}]"


@dataclass(frozen=True)
class _ItemChecks:
    """The checks :func:`validate_items` makes of each entry of a split (its options, fixed for the split)."""

    num_classes: int
    split: str
    check_files: bool
    allow_volumes: bool
    mask_channels: int
    loader: Any  # LoadMedicalImaged when every image is decoded (deep), else None
    transform: Any  # the split's checking steps (deep, with the split's preprocessing), else None
    windowed: bool  # the split gets a CT window

    def __call__(self, i: int, item, where: str) -> tuple[dict, dict | None]:
        """``(the entry with its label as an int, the decoded image's stats or None)``; a :class:`DataError` says
        what is wrong with it."""
        if not isinstance(item, dict):
            raise DataError(f"entry must be a dict with 'image' and 'label', got {type(item).__name__}")
        for key in ("image", "label"):
            if key not in item:
                raise DataError(f"entry has no {key!r} key (keys: {sorted(item)})")
        label = check_label(item["label"], self.num_classes)
        decoded = self._decoded(i, item)
        decoded_mask = (
            _check_mask(item, decoded, self.mask_channels, self.check_files, self.loader)
            if self.mask_channels
            else None
        )
        if decoded is not None and self.transform is not None:
            _run_chain(self.transform, item, decoded, label, decoded_mask)
        return {**item, "label": label}, (None if decoded is None else self._stat(decoded, label, where))

    def _decoded(self, i: int, item: dict):
        """The entry's image checked (its file's header and size) and, when decoding, decoded; else ``None``."""
        image = item["image"]
        if isinstance(image, (np.ndarray, torch.Tensor)):
            if image.ndim != 3:
                raise DataError(f"in-memory image must be [C, x, y], got shape {tuple(image.shape)}")
            if self.loader is None:
                return None
            source = item.get("image_source", f"{self.split}[{i}]")
            return self.loader({"image": image, "image_source": source})["image"]
        if not isinstance(image, (str, os.PathLike)):
            raise DataError(f"'image' must be a path or an array, got {type(image).__name__}")
        if not self.check_files:
            return None
        inspect_image_file(image, allow_volumes=self.allow_volumes)
        if self.loader is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.loader.load(image)

    def _stat(self, decoded, label: int, where: str) -> dict:
        """What the summary counts of a decoded image; an 8-bit file in a CT-windowed split is refused."""
        meta = getattr(decoded, "meta", {}) or {}
        source_dtype = str(meta.get("source_dtype", ""))
        if self.windowed and source_dtype == "uint8" and meta.get("source_format") != "array":
            raise DataError(
                "8-bit image in a split preprocessed with a CT window: 8-bit values cannot be "
                "Hounsfield units; use hu_window=None (intensity scaling) for such data"
            )
        lo, hi = float(decoded.min()), float(decoded.max())
        return {
            "format": str(meta.get("source_format", "")),
            "source_dtype": source_dtype,
            "channels": int(decoded.shape[0]),
            "shape": tuple(int(v) for v in decoded.shape[1:]),
            "min": lo,
            "max": hi,
            "label": label,
            "decode": meta.get("decode"),
            "constant": lo == hi,
            "where": where,
        }


def _report(good, problems, stats, split: str, on_error: str, context: str) -> None:
    """Warn about images of a single value; raise every problem (``on_error="raise"``), or warn with the list of
    the skipped ones — and raise when nothing is left."""
    constant = [(s["where"], s["min"]) for s in stats if s["constant"]]
    if constant:
        warnings.warn(
            f"{context}: {len(constant)} image(s) of a single value (no picture: a blank scan or a broken export) in "
            f"{split}: "
            + "; ".join(f"{w} (every pixel {v:g})" for w, v in constant[:10])
            + (" ..." if len(constant) > 10 else ""),
            stacklevel=3,
        )
    if problems and on_error == "raise":
        raise DataValidationError(problems, context)
    if problems:
        warnings.warn(
            str(DataValidationError(problems, context)).replace(
                "(fix them, or pass on_error='skip' to drop and report them)", "skipped"
            ),
            stacklevel=3,
        )
        if not good:
            raise DataValidationError(problems + [(split, "no valid entries left after skipping")], context)


def _checking_steps(transform):
    """The steps of a preprocessing ``Compose`` that can refuse an item (loading, slicing, cropping, channels, masks,
    labels): the pure arithmetic of intensity scaling, resizing and padding cannot, and is left out to keep validation
    cheap (it is the same arithmetic for every image)."""
    from monai.transforms import Compose, Resized, SpatialPadd

    if not isinstance(transform, Compose):
        return transform
    arithmetic = (IntensityToTrainingRanged, ResizeLongestd, Resized, SpatialPadd)
    return DataCompose([t for t in transform.transforms if not isinstance(t, arithmetic)])


def _run_chain(transform, item: dict, decoded, label: int, decoded_mask=None) -> None:
    """Run the split's preprocessing on an item whose image (and mask) is already decoded; its errors become this
    item's."""
    loaded = {"image": decoded, "label": label}
    if decoded_mask is not None:
        loaded["mask"] = decoded_mask
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transform({**item, **loaded})
    except DataError as e:
        raise DataError(str(e).replace(f"{item['image']}: ", "")) from None
    except FileNotFoundError as e:
        raise DataError(str(e)) from None
    except Exception as e:  # MONAI wraps its transforms' errors; the cause is what the user can act on
        cause = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise DataError(f"preprocessing fails ({type(cause).__name__}: {cause})") from None


def check_class_name_list(names, where: str) -> list[str]:
    """``names`` as a list of distinct strings; two names equal but for letter case (``yes``/``Yes``) or equal as
    numbers (``1``/``1.0``) are refused naming them — they would become two classes of one thing."""
    names = [str(n) for n in names]
    seen: dict[str, str] = {}
    for name in names:
        key = _class_key(name)
        if key in seen:
            other = seen[key]
            same = (
                "twice"
                if other == name
                else f"as {other!r} and {name!r}, which differ only by letter case or number format"
            )
            raise DataError(
                f"{where}: class {name!r} is named {same}; every class must have one name (class names {names})"
            )
        seen[key] = name
    return names


def _class_key(name: str) -> str:
    text = name.strip()
    try:
        value = float(text)
    except ValueError:
        return text.casefold()
    return repr(value) if math.isfinite(value) else text.casefold()


def check_datalist(datalist: dict, context: str = "datalist", *, every_class_trained: bool = True) -> None:
    """The checks of a whole datalist that every run and ``gemix-monai validate`` apply (whatever split is asked
    for): distinct class names (:func:`check_class_name_list`), and — with ``every_class_trained`` and when the
    datalist has training images — at least one training image per class (a class without one would train a model
    with an empty class). ``get_dataset`` asks the latter of datalists, folders and CSVs, not of a COVIDx label file
    (one file per split, which may lack a class) or a MedMNIST file."""
    names = check_class_name_list(datalist.get("class_names", []), f"{context}: class_names")
    training = [it for it in datalist.get("training", []) or [] if isinstance(it, dict)]
    if not training or not every_class_trained:
        return
    present = set()
    for it in training:
        try:
            present.add(check_label(it.get("label"), len(names)))
        except DataError:
            return  # validation names the labels that are not class indices first
    missing = [(k, n) for k, n in enumerate(names) if k not in present]
    if missing:
        listed = ", ".join(f"{n!r} (label {k})" for k, n in missing)
        raise DataError(
            f"{context}: class {listed} has no training image ({len(training)} training images); a model would "
            "train with an empty class: add its images or remove it from class_names"
        )


def _check_mask(item: dict, decoded_image, mask_channels: int, check_files: bool, loader):
    """The entry's mask: present, readable, and (decoded) the image's spatial shape with values in 0..M; returns the
    decoded mask (``None`` when not decoded)."""
    if "mask" not in item:
        raise DataError("entry has no 'mask' while the split's other entries have one (every image needs its mask)")
    mask = item["mask"]
    if not isinstance(mask, (str, os.PathLike)):
        raise DataError(f"'mask' must be a file path, got {type(mask).__name__}")
    if not check_files:
        return None
    try:
        inspect_image_file(mask, allow_volumes=True)
    except DataError as e:
        raise DataError(f"mask {mask}: {e}") from None
    if loader is None:
        return None
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
    return decoded_mask


def summarize(
    context: str,
    split: str,
    class_names,
    items,
    stats,
    problems,
    contract,
    *,
    split_file=None,
    dropped=(),
    split_note=None,
    groups=(),
    absent=(),
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
        decoded = Counter(s["decode"] for s in stats if s.get("decode"))
        if decoded:
            out["decoded"] = dict(decoded)
            parts.append("decoded by mode: " + ", ".join(f"{n} × {what}" for what, n in decoded.most_common()))
        constant = [s["where"] for s in stats if s.get("constant")]
        if constant:
            out["constant_images"] = constant
            parts.append(
                f"{len(constant)} image(s) of a single value (no picture): "
                + ", ".join(constant[:5])
                + (" ..." if len(constant) > 5 else "")
            )
    parts.append(f"preprocessing: {contract.preprocessing.describe()} — because {contract.reason}")
    if split_file:
        parts.append(f"split fixed in {split_file}" + (f" ({split_note})" if split_note else ""))
    if groups:
        out["duplicate_groups"] = list(groups)
        shown = "; ".join(
            f"[{', '.join(g['images'][:3])}{', ...' if len(g['images']) > 3 else ''}] ({g['kind']}, {g['split']})"
            for g in groups[:5]
        )
        parts.append(
            f"{len(groups)} group(s) of duplicate images kept within one split: {shown}"
            + (" ..." if len(groups) > 5 else "")
        )
    if absent:
        out["absent_classes"] = list(absent)
        parts.append(f"no {split} image of class(es) {list(absent)}: their metrics are undefined")
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
