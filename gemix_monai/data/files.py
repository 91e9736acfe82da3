"""What a file is, by its name and its first bytes: the helpers every other module of the data layer shares.

Nothing here reads pixels or imports another module of ``gemix_monai.data`` but :mod:`.errors`, so the readers
(:mod:`.readers`), the file search (:mod:`.discover`) and the datalists (:mod:`.datalist`) all stand on it and
none of them imports another to learn a file's kind (docs/design.md, "data").

* :data:`IMAGE_SUFFIXES` and :func:`file_suffix` — the suffixes read, ``.nii.gz`` counted as one;
* :func:`sniff_format` / :func:`has_dicom_preamble` — the reader family a file's *content* calls for;
* :func:`image_format` — content first, suffix second (docs/data.md, "Sources");
* :func:`image_stem` / :func:`mask_stem` and :data:`MASK_KEY` — an image's name and the ``<stem>_mask.<ext>``
  rule of segmentation masks (docs/segmentation.md);
* :func:`read_text_file` — a CSV or JSON as UTF-8 (a byte-order mark allowed), any other encoding named.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "file_suffix",
    "has_image_suffix",
    "has_dicom_preamble",
    "sniff_format",
    "image_format",
    "MASK_KEY",
    "MASK_ALIASES",
    "MASK_STEM_SUFFIX",
    "image_stem",
    "mask_stem",
    "read_text_file",
]

#: Suffix → reader family. ``.dcm`` files and suffix-less files (DICOM often has none) go to pydicom. The file's
#: content wins over its suffix where the first bytes say what it is (:func:`sniff_format`).
IMAGE_SUFFIXES: dict[str, str] = {
    ".dcm": "dicom",
    ".dicom": "dicom",
    "": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".img": "nifti",
    ".hdr": "nifti",
    ".png": "pil",
    ".jpg": "pil",
    ".jpeg": "pil",
    ".bmp": "pil",
    ".tif": "pil",
    ".tiff": "pil",
    ".gif": "pil",
}

#: Item key of an image's segmentation mask; ``MASK_ALIASES`` are read as it.
MASK_KEY = "mask"
MASK_ALIASES = ("label_mask",)
#: A class-folder file ``<stem>_mask.<ext>`` is the mask of the image ``<stem>.<ext'>``.
MASK_STEM_SUFFIX = "_mask"

#: Magic numbers of the formats Pillow reads (PNG, JPEG, GIF, BMP, TIFF): a file carrying one is decoded by Pillow
#: whatever its suffix says (a palette PNG named ``.jpg``).
_PIL_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")


def file_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of ``path`` (``.nii.gz`` counted as one; ``""`` when there is none)."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def has_image_suffix(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends in one of :data:`IMAGE_SUFFIXES` (any letter case; a name without a suffix does not)."""
    suffix = file_suffix(path)
    return bool(suffix) and suffix in IMAGE_SUFFIXES


def has_dicom_preamble(path: str | os.PathLike) -> bool:
    """Whether the file carries the DICOM Part 10 marker ``DICM`` at byte 128."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def sniff_format(path: str | os.PathLike) -> str | None:
    """The reader family the file's *content* calls for — ``"dicom"`` (``DICM`` at byte 128), ``"pil"`` (PNG, JPEG,
    GIF, TIFF or BMP magic) or ``"nifti"`` (NIfTI-1/2 magic) — or ``None`` when the first bytes say nothing
    (gzip, Analyze, unknown)."""
    try:
        with open(path, "rb") as f:
            head = f.read(352)
    except OSError:
        return None
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PIL_MAGIC) or (
        head[:2] == b"BM" and len(head) >= 26 and head[14] in (12, 40, 52, 56, 108, 124)
    ):
        return "pil"
    if (len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00")) or head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    return None


def image_format(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"pil"``: by the file's content where its first bytes say (a PNG named ``.jpg``, a
    DICOM named by its UID), else by its suffix; raises naming the file otherwise."""
    suffix = file_suffix(path)
    by_name = IMAGE_SUFFIXES.get(suffix)
    # Analyze/NIfTI pairs and gzip say nothing in their first bytes (and raw .img data may say anything).
    if by_name != "nifti" and os.path.isfile(path):
        by_content = sniff_format(path)
        if by_content is not None:
            return by_content
    if by_name is None:
        raise DataError(
            f"{path}: unsupported image suffix {suffix!r}; "
            f"expected one of {sorted(s for s in IMAGE_SUFFIXES if s)} (or a DICOM file of any name)"
        )
    return by_name


def image_stem(path: str | os.PathLike) -> str:
    """A file name without its image suffix (``.nii.gz`` counted as one)."""
    path = Path(path)
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def mask_stem(path: str | os.PathLike) -> str | None:
    """For a mask file ``<stem>_mask.<ext>``, its image's ``<stem>``; ``None`` for any other name."""
    stem = image_stem(path)
    return stem[: -len(MASK_STEM_SUFFIX)] if stem.endswith(MASK_STEM_SUFFIX) and len(stem) > 5 else None


def read_text_file(path: Path, what: str) -> str:
    """The text of a UTF-8 file (a byte-order mark, as Excel writes, is dropped); another encoding is a
    :class:`DataError` naming the file and the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: {what} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}, e.g. Latin-1 or "
            "Windows-1252); save it as UTF-8 (Excel: 'CSV UTF-8')"
        ) from None
