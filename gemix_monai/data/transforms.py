"""Preprocessing from a file (or array) to the training stream ``{"image": float32 [C, S, S] in [-1, 1], "label": int}``.

The chain built by :func:`get_transforms` (docs/data.md, "Preprocessing")::

    LoadMedicalImaged        MONAI's LoadImage with the reader the file's content (else suffix) calls for, channel
                             first, DICOM rescale slope/intercept applied (→ HU); Pillow images by their mode
                             (palette → colours, 1-bit → 0/255, CMYK → RGB, alpha composited onto black);
                             multi-page files, images under 8 px a side and non-finite voxels refused
    ExtractSliced            3-D volume → one 2-D slice (by index, or where a mask is largest)
    CropBoxd                 optional bounding-box crop (COVIDx-CT boxes)
    ToChannelsd              RGB/RGBA → grey, or grey → N channels
    IntensityToTrainingRanged  CT: HU window → [-1, 1]; anything else: 8-bit range or per-image percentiles → [-1, 1]
    ResizeLongestd + SpatialPadd  longest side → image_size (bilinear, anti-aliased with edge-replicated
                             borders, so a constant image stays constant), pad to square with −1 (black)
    CheckLabeld              label → int (range-checked)

With ``mask_key`` (docs/segmentation.md) the mask is loaded, sliced and cropped exactly like the image,
then :class:`MaskToChannelsd` makes it ``[M, x, y]`` in {0, 1} (never intensity-scaled), and it is resized
with nearest neighbour and padded with 0, so mask and image stay aligned pixel for pixel.

Orientation: exactly MONAI's. Every array leaving :class:`LoadMedicalImaged` is what ``LoadImaged`` +
``EnsureChannelFirstd`` give: ``[C, x, y]`` where, for a PNG/JPEG, the first spatial axis runs along
the image's width (the transpose of ``numpy.asarray(PIL.Image.open(f))``). In-memory arrays
(MedMNIST) are put in the same order by their readers. :func:`to_display` turns ``[C, x, y]`` back into
rows × columns for pictures and PNG export, so an exported PNG read with ``LoadImaged`` gives the
generator's array back.
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, Resized, SpatialPadd

from .errors import DataError, ImageReadError, NotASliceError

__all__ = [
    "HU_WINDOWS",
    "resolve_hu_window",
    "image_format",
    "IMAGE_SUFFIXES",
    "MIN_IMAGE_SIDE",
    "pil_to_standard_mode",
    "pil_standard_mode_converter",
    "ResizeLongestd",
    "LoadMedicalImaged",
    "ExtractSliced",
    "CropBoxd",
    "ToChannelsd",
    "INTENSITY_MODES",
    "check_intensity",
    "IntensityToTrainingRanged",
    "CheckLabeld",
    "MaskToChannelsd",
    "mask_label_map",
    "to_display",
    "DataCompose",
    "get_transforms",
    "to_hu",
    "to_uint8",
]

#: Standard CT display windows, (width, level) in HU.
HU_WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (400.0, 50.0),
    "lung": (1500.0, -600.0),
    "liver": (150.0, 30.0),
    "mediastinum": (350.0, 50.0),
    "brain": (80.0, 40.0),
    "bone": (1800.0, 400.0),
}

#: Suffix → reader family. ``.dcm`` files and suffix-less files (DICOM often has none) go to pydicom. The file's
#: content wins over its suffix where the first bytes say what it is (:func:`gemix_monai.data.discover.sniff_format`).
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

#: Smallest accepted image side in pixels (docs/data.md, "Decoding"): a 1×1 or 4×7 picture is a thumbnail, an icon or
#: a broken export, not an image to learn from; scaled up to the generator's size it would be a blur of one value.
MIN_IMAGE_SIDE = 8


def resolve_hu_window(hu_window) -> tuple[float, float] | None:
    """``"abdomen"``/``"lung"``/… (see :data:`HU_WINDOWS`), ``(width, level)`` in HU, or ``None``."""
    if hu_window is None:
        return None
    if isinstance(hu_window, str):
        if hu_window not in HU_WINDOWS:
            raise ValueError(
                f"hu_window must be one of {sorted(HU_WINDOWS)}, a (width, level) pair in HU or None, got {hu_window!r}"
            )
        return HU_WINDOWS[hu_window]
    try:
        width, level = (float(v) for v in hu_window)
    except (TypeError, ValueError):
        raise ValueError(
            f"hu_window must be a preset name, a (width, level) pair in HU or None, got {hu_window!r}"
        ) from None
    if not width > 0:
        raise ValueError(f"hu_window width must be > 0 HU, got {width}")
    return width, level


def image_format(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"pil"``: by the file's content where its first bytes say (a PNG named ``.jpg``, a
    DICOM named by its UID), else by its suffix; raises naming the file otherwise."""
    from .discover import file_suffix, sniff_format

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


def _filename(img, default: str = "<array>") -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", default))


def _pil_dtype(path: str) -> str:
    """Stored sample type of a PIL-readable file (``uint8`` for L/RGB/RGBA/P, ``uint16`` for I;16)."""
    from PIL import Image

    with Image.open(path) as im:
        return _mode_dtype(im.mode)


def _mode_dtype(mode: str) -> str:
    if mode.startswith("I;16"):
        return "uint16"
    if mode in ("I", "F"):
        return "float32"
    return "uint8"  # 1, L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, ...: 8-bit samples (1-bit becomes 0/255)


def check_pil_header(path: str, min_side: int = MIN_IMAGE_SIDE) -> tuple[int, int]:
    """``(rows, cols)`` of a Pillow-readable file after the checks every Pillow image gets (docs/data.md, "Decoding"):
    one page only (a multi-page TIFF or animated GIF is refused naming its page count) and at least
    :data:`MIN_IMAGE_SIDE` pixels a side. Raises :class:`DataError` without the path (the caller adds it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            pages = int(getattr(im, "n_frames", 1) or 1)
            size, mode, kind = im.size, im.mode, im.format
    except Exception as e:
        raise DataError(f"unreadable image ({type(e).__name__}: {e})") from None
    # A camera JPEG with a Multi-Picture (MPO) index holds one picture plus previews or a depth map: its first
    # frame is the picture. Any other file with several pages is refused.
    if pages > 1 and kind != "MPO":
        raise DataError(
            f"{pages} pages ({mode}, {size[0]}×{size[1]} px each): one file must hold one 2-D image; save each page as "
            "its own file (only page 1 would be read)"
        )
    check_min_side((size[1], size[0]), "rows × cols", min_side)
    return size[1], size[0]


def check_min_side(shape, order: str = "x × y", minimum: int = MIN_IMAGE_SIDE) -> None:
    """Refuse a 2-D image (its first two spatial sides, in ``order``) under ``minimum`` pixels a side."""
    sides = tuple(int(v) for v in shape[:2])
    if len(sides) == 2 and min(sides) < minimum:
        raise DataError(
            f"image of {sides[0]}×{sides[1]} px ({order}) is below the minimum of {minimum} px a side "
            "(a thumbnail or broken export, not an image to learn from)"
        )


def check_dicom_rescale(ds) -> None:
    """``RescaleSlope`` / ``RescaleIntercept`` of a pydicom dataset must be finite and the slope non-zero: a slope of 0
    maps every pixel to the intercept (a blank image), NaN/inf to nothing. Raises :class:`DataError` without the
    path."""
    import math

    for key in ("RescaleSlope", "RescaleIntercept"):
        if key not in ds:
            continue
        raw = ds[key].value
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"DICOM {key} {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise DataError(f"DICOM {key} is {value}: not a finite number; fix the header")
        if key == "RescaleSlope" and value == 0:
            raise DataError(
                "DICOM RescaleSlope is 0: every pixel would become the intercept (a blank image); fix the header"
            )


def check_nifti_dims(shape) -> None:
    """A NIfTI/Analyze image must be 2-D or 3-D: axes beyond the third must be 1 (docs/data.md: a 4-D file such as
    ``(x, y, 1, t)`` is refused — its time or vector axis would be read as colour channels)."""
    shape = tuple(int(v) for v in shape)
    if len(shape) > 3 and any(v != 1 for v in shape[3:]):
        raise DataError(
            f"4-D image of shape {shape} (a time or vector axis of {shape[3:]}); expected a 2-D slice or a 3-D volume: "
            "save one time point per file"
        )


class _Notes(threading.local):
    last: str | None = None


_NOTES = _Notes()


def _on_black(rgba):
    from PIL import Image

    return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")


def pil_to_standard_mode(im):
    """``(image, note)``: a Pillow image in a mode the pipeline reads as it looks (docs/data.md, "Decoding"), and what
    was done (``None`` for L, RGB, 16/32-bit grey and float, which pass unchanged).

    * palette (``P``/``PA``) → its colours (RGB; with transparency composited onto black); a palette whose colours
      are all grey → those grey levels (L) — never the palette indices;
    * 1-bit → 0/255 (L);
    * ``LA``/``RGBA`` (and premultiplied ``La``/``RGBa``) → alpha composited onto black with Pillow's
      ``Image.alpha_composite`` (transparent = no signal, the colour of the padding), to L/RGB;
    * ``CMYK`` (and ``YCbCr``, ``LAB``, ``HSV``, ...) → RGB by Pillow's ``convert("RGB")``.
    """
    mode = im.mode
    if mode in ("L", "RGB", "I", "F") or mode.startswith("I;16"):
        return im, None
    if mode == "1":
        return im.convert("L"), "1-bit → 0/255"
    if mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in im.info
        out = _on_black(im.convert("RGBA")) if alpha else im.convert("RGB")
        arr = np.asarray(out)
        grey = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
        how = " (transparency composited onto black)" if alpha else ""
        return (out.convert("L"), f"palette → its grey levels{how}") if grey else (out, f"palette → its colours{how}")
    if mode in ("LA", "La", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        opaque = rgba.getchannel("A").getextrema() == (255, 255)
        out = _on_black(rgba)
        if mode in ("LA", "La"):
            out = out.convert("L")
        return out, f"{mode} → alpha {'fully opaque, dropped' if opaque else 'composited onto black'}"
    return im.convert("RGB"), f"{mode} → RGB"


def pil_standard_mode_converter(im):
    """:func:`pil_to_standard_mode`'s image alone: the ``converter`` of a MONAI ``PILReader`` (so ``LoadImaged``
    reads a palette PNG as its colours, not its palette indices; bundle/configs/inference.json)."""
    return pil_to_standard_mode(im)[0]


def _pil_converter(im):
    out, _NOTES.last = pil_to_standard_mode(im)
    frames = int(getattr(im, "n_frames", 1) or 1)
    if getattr(im, "format", None) == "MPO" and frames > 1:
        _NOTES.last = f"MPO: its main picture (frame 1 of {frames})" + (f"; {_NOTES.last}" if _NOTES.last else "")
    return out


def check_header(path: str, fmt: str, min_side: int = MIN_IMAGE_SIDE) -> None:
    """The header checks a file gets before its pixels are read (``fmt`` from :func:`image_format`): Pillow —
    one page, :data:`MIN_IMAGE_SIDE`; DICOM — finite rescale, non-zero slope (a NIfTI's dimensions are checked on the
    loaded image, which shows them without a second read). Raises :class:`DataError` without the path."""
    if fmt == "pil":
        check_pil_header(path, min_side)
    elif fmt == "dicom":
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            return  # the reader says what is wrong with the file
        check_dicom_rescale(ds)


def _check_finite(img, where: str) -> None:
    finite = torch.isfinite(torch.as_tensor(img))
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise DataError(f"{where}: {bad} of {finite.numel()} voxels are NaN or infinite; fix or drop this image")


class LoadMedicalImaged(MapTransform):
    """Read an image file with MONAI's ``LoadImage`` and the reader its content (else its suffix) calls for.

    Why not MONAI's ``LoadImaged`` + ``EnsureChannelFirstd`` (whose arrays it returns; equal, tested): those pick a
    reader by suffix only (a PNG named .jpg, a DICOM named by its UID), read a palette PNG as its indices, check
    nothing (multi-page files, 4-D NIfTI, DICOM rescale, tiny or non-finite images) and do not record the stored
    sample type the ``auto`` intensity rule needs.

    Output: ``MetaTensor`` float32 ``[C, x, y]`` (2-D) or ``[C, x, y, z]`` (3-D) in MONAI's order,
    DICOM in HU (rescale slope/intercept applied by ``PydicomReader``). ``meta["source_dtype"]``
    records the stored sample type of PNG/JPEG/TIFF files (8-bit files are scaled by their 0..255
    range later). Pillow images are read by their mode (:func:`pil_to_standard_mode`, through
    ``PILReader(converter=...)``); what was done is ``meta["decode"]``. Arrays or tensors already in the
    item (MedMNIST) must be ``[C, x, y]`` and pass through as float32; an image this transform already
    loaded (a ``MetaTensor`` with ``meta["source_format"]``) passes unchanged. A missing file, an unreadable or
    truncated one, a multi-page file, a DICOM rescale slope of 0 or non-finite, a 4-D NIfTI, an image under
    :data:`MIN_IMAGE_SIDE` px a side and NaN/inf voxels raise naming the file.
    """

    def __init__(
        self, keys: KeysCollection = "image", allow_missing_keys: bool = False, min_side: int = MIN_IMAGE_SIDE
    ):
        super().__init__(keys, allow_missing_keys)
        self._loaders: dict[str, object] = {}
        self.min_side = int(min_side)  # 1 for masks: a mask's size is checked against its image's

    def _loader(self, fmt: str):
        if fmt not in self._loaders:
            from monai.data import NibabelReader, PILReader, PydicomReader
            from monai.transforms import LoadImage

            reader = (
                PILReader(converter=_pil_converter)
                if fmt == "pil"
                else {"dicom": PydicomReader, "nifti": NibabelReader}[fmt]()
            )
            self._loaders[fmt] = LoadImage(reader=reader, image_only=True, dtype=np.float32, ensure_channel_first=True)
        return self._loaders[fmt]

    def load(self, path) -> MetaTensor:
        path = str(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file does not exist: {path}")
        if not os.path.isfile(path):
            raise DataError(f"{path}: not a regular file")
        fmt = image_format(path)
        try:
            check_header(path, fmt, self.min_side)
        except DataError as e:
            raise ImageReadError(f"{path}: {e}") from None
        _NOTES.last = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # reader plugin chatter (nvImageCodec) is not the user's problem
                img = self._loader(fmt)(path)
        except Exception as e:
            raise ImageReadError(f"{path}: cannot read as {fmt} ({type(e).__name__}: {e})") from e
        note = _NOTES.last if fmt == "pil" else None
        source_dtype = _pil_dtype(path) if fmt == "pil" else "float32"
        if img.ndim < 3:
            raise ImageReadError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(img.shape)}")
        try:
            if fmt == "nifti" and (img.shape[0] != 1 or img.ndim > 4):
                # MONAI reads a 4th NIfTI axis as channels: a (x, y, 1, t) series would become t colours
                import nibabel as nib

                check_nifti_dims(nib.load(path).shape)
            check_min_side(img.shape[1:], minimum=self.min_side)
        except DataError as e:
            raise ImageReadError(f"{path}: {e}") from None
        _check_finite(img, path)
        # No transpose: [C, x, y(, z)] exactly as MONAI's LoadImaged + EnsureChannelFirstd give it.
        if isinstance(img, MetaTensor):
            img.meta["source_dtype"] = source_dtype
            img.meta["source_format"] = fmt
            if note:
                img.meta["decode"] = note
        return img

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, os.PathLike)):
                d[key] = self.load(value)
            elif isinstance(value, MetaTensor) and "source_format" in value.meta:
                continue  # already loaded by this transform (validation decodes once, then runs the chain)
            elif isinstance(value, (np.ndarray, torch.Tensor)):
                source_dtype = str(value.dtype).replace("torch.", "")
                arr = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).float()
                if arr.ndim != 3:
                    raise DataError(
                        f"item[{key!r}]: an in-memory image must be [C, x, y], got shape {tuple(arr.shape)}"
                    )
                where = str(d.get(f"{key}_source", "<array>"))
                _check_finite(arr, where)
                img = MetaTensor(arr)
                img.meta["source_dtype"] = source_dtype
                img.meta["source_format"] = "array"
                img.meta["filename_or_obj"] = str(d.get(f"{key}_source", "<array>"))
                d[key] = img
            else:
                raise DataError(f"item[{key!r}] must be a file path or an array, got {type(value).__name__}")
        return d


class ExtractSliced(MapTransform):
    """3-D ``[C, x, y, z]`` → 2-D ``[C, x, y]``; 2-D input passes unchanged.

    A volume with a single slice is squeezed. Otherwise the slice is ``slice_index`` (negative
    counts from the end), or, with ``mask_key``, the slice where that mask (loaded the same way)
    has the largest area; with neither, :class:`NotASliceError` names the file.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        slice_index: int | None = None,
        mask_key: str | None = None,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.slice_index = slice_index
        self.mask_key = mask_key

    def _choose(self, img, d) -> int:
        depth = img.shape[-1]
        if self.mask_key is not None:
            if self.mask_key not in d:
                raise DataError(
                    f"{_filename(img)}: slice selection by mask needs item[{self.mask_key!r}], which is missing"
                )
            mask = d[self.mask_key]
            if tuple(mask.shape[-3:]) != tuple(img.shape[-3:]):
                raise DataError(
                    f"{_filename(img)}: mask {_filename(mask)} has spatial shape {tuple(mask.shape[-3:])}, "
                    f"image has {tuple(img.shape[-3:])}"
                )
            area = (torch.as_tensor(mask) > 0).reshape(-1, depth).sum(0)
            if int(area.max()) == 0:
                raise DataError(
                    f"{_filename(img)}: mask {_filename(mask)} is empty; cannot choose the largest-lesion slice"
                )
            return int(area.argmax())
        if self.slice_index is not None:
            if not -depth <= self.slice_index < depth:
                raise DataError(
                    f"{_filename(img)}: slice_index {self.slice_index} out of range for a volume of {depth} slices"
                )
            return self.slice_index % depth
        raise NotASliceError(
            f"{_filename(img)}: expected a 2-D slice, got a volume of shape {tuple(img.shape[1:])} "
            f"({depth} slices); pass slice_index=... or slice_mask_key=... to choose one"
        )

    def __call__(self, data):
        d = dict(data)
        chosen = None
        for key in self.key_iterator(d):
            img = d[key]
            if img.ndim == 3:
                continue
            if img.ndim != 4:
                raise DataError(f"{_filename(img)}: expected [C, x, y] or [C, x, y, z], got shape {tuple(img.shape)}")
            if img.shape[-1] == 1:
                d[key] = img[..., 0]
                continue
            if chosen is None:
                chosen = self._choose(img, d)
            d[key] = img[..., chosen]
            if isinstance(d[key], MetaTensor):
                d[key].meta["slice_index"] = chosen
        if self.mask_key is not None and self.mask_key in d and d[self.mask_key].ndim == 4 and chosen is not None:
            d[self.mask_key] = d[self.mask_key][..., chosen]
        return d


class CropBoxd(MapTransform):
    """Crop ``[C, x, y]`` to ``item[box_key] = (xmin, ymin, xmax, ymax)`` pixels (x = column of the picture,
    exclusive max). Items without a box (``None``) pass unchanged."""

    def __init__(self, keys: KeysCollection = "image", box_key: str = "box", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.box_key = box_key

    def __call__(self, data):
        d = dict(data)
        box = d.get(self.box_key)
        if box is None:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            xmin, ymin, xmax, ymax = (int(v) for v in box)
            cols, rows = img.shape[-2:]
            if not (0 <= xmin < xmax <= cols and 0 <= ymin < ymax <= rows):
                raise DataError(
                    f"{_filename(img)}: box (xmin, ymin, xmax, ymax) = {tuple(box)} is empty or outside the image of "
                    f"{cols}×{rows} (cols×rows)"
                )
            d[key] = img[..., xmin:xmax, ymin:ymax]
        return d


class ToChannelsd(MapTransform):
    """Make the channel count ``channels``: RGB(A) → grey by ITU-R BT.601 luma (alpha dropped),
    grey → repeated (MONAI's ``RepeatChannel``); any other mismatch raises naming the file."""

    # Kept beside MONAI's RepeatChanneld (which it calls for grey → N): MONAI has no RGB → grey transform, and
    # RepeatChanneld would turn an RGB image into 3·N channels instead of refusing or converting it (tests/data).

    LUMA = (0.299, 0.587, 0.114)

    def __init__(self, keys: KeysCollection = "image", channels: int = 1, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            c = img.shape[0]
            if c == self.channels:
                continue
            if c in (3, 4) and self.channels == 1:
                w = torch.tensor(self.LUMA, dtype=img.dtype).view(3, *([1] * (img.ndim - 1)))
                d[key] = (img[:3] * w).sum(0, keepdim=True)
            elif c == 4 and self.channels == 3:
                d[key] = img[:3]
            elif c == 1:
                from monai.transforms import RepeatChannel

                d[key] = RepeatChannel(repeats=self.channels)(img)
            else:
                raise DataError(f"{_filename(img)}: has {c} channels, expected {self.channels} (or 1/3/4 to convert)")
        return d


#: Per-image percentiles used by ``intensity="percentile"`` (and by ``"auto"`` for anything not stored as 8-bit).
PERCENTILES = (0.5, 99.5)

#: Accepted ``intensity`` values for data that is not CT-windowed (see docs/data.md, "Preprocessing").
INTENSITY_MODES = ("auto", "uint8", "uint16", "minmax", "percentile")


def check_intensity(intensity):
    """``intensity`` as stored in a contract: a mode name or a ``(low, high)`` list; ``ValueError`` otherwise."""
    if isinstance(intensity, str) and intensity in INTENSITY_MODES:
        return intensity
    if isinstance(intensity, (tuple, list)) and len(intensity) == 2:
        try:
            low, high = float(intensity[0]), float(intensity[1])
        except (TypeError, ValueError):
            low = high = float("nan")
        if np.isfinite(low) and np.isfinite(high) and high > low:
            return [low, high]
    raise ValueError(
        f"intensity must be one of {list(INTENSITY_MODES)} or (low, high) with finite high > low, got {intensity!r}"
    )


class IntensityToTrainingRanged(MapTransform):
    """Intensities → the training range ``[-1, 1]``, clipped, through MONAI's own scaling transforms.

    Why one transform over MONAI's ``ScaleIntensityRange`` / ``ScaleIntensityRangePercentiles`` (which do the
    scaling; equal to them, tested): they cannot decide the rule per file (``auto`` reads a file's stored sample
    type, which only :class:`LoadMedicalImaged` records) nor map a constant image to −1 (MONAI's ``ScaleIntensity``
    returns −value).

    * ``hu_window=(width, level)``: CT in HU, ``[level − width/2, level + width/2]`` → ``[-1, 1]``
      (``ScaleIntensityRange(clip=True)``).
    * otherwise by ``intensity``: ``"uint8"`` (0..255), ``"uint16"`` (0..65535) or ``(low, high)`` — a fixed
      range (``ScaleIntensityRange``); ``"percentile"`` — the image's own 0.5th..99.5th percentiles
      (``ScaleIntensityRangePercentiles``), a constant image becomes −1; ``"minmax"`` — the image's own
      min..max; ``"auto"`` — ``"uint8"`` for files stored with 8 bits per sample (``meta["source_dtype"]``),
      ``"percentile"`` for everything else (16-bit PNG, MR NIfTI, float arrays).

    The rule is part of the preprocessing contract stored with every model (docs/data.md).
    """

    def __init__(
        self, keys: KeysCollection = "image", hu_window=None, intensity="auto", allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        from monai.transforms import ScaleIntensity, ScaleIntensityRange, ScaleIntensityRangePercentiles

        self.window = resolve_hu_window(hu_window)
        self.intensity = check_intensity(intensity)
        self._fixed = {}
        if self.window is not None:
            width, level = self.window
            self._fixed["window"] = ScaleIntensityRange(level - width / 2, level + width / 2, -1.0, 1.0, clip=True)
        self._fixed["uint8"] = ScaleIntensityRange(0.0, 255.0, -1.0, 1.0, clip=True)
        self._fixed["uint16"] = ScaleIntensityRange(0.0, 65535.0, -1.0, 1.0, clip=True)
        if isinstance(self.intensity, list):
            self._fixed["range"] = ScaleIntensityRange(self.intensity[0], self.intensity[1], -1.0, 1.0, clip=True)
        self._percentile = ScaleIntensityRangePercentiles(*PERCENTILES, -1.0, 1.0, clip=True)
        self._minmax = ScaleIntensity(minv=-1.0, maxv=1.0)

    def mode_for(self, img) -> str:
        """The rule applied to ``img``: ``window``, ``uint8``, ``uint16``, ``range``, ``percentile`` or ``minmax``."""
        if self.window is not None:
            return "window"
        if isinstance(self.intensity, list):
            return "range"
        if self.intensity == "auto":
            source = (getattr(img, "meta", None) or {}).get("source_dtype", "")
            return "uint8" if source == "uint8" else "percentile"
        return self.intensity

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            mode = self.mode_for(img)
            if mode in ("percentile", "minmax") and float(img.max()) <= float(img.min()):
                out = torch.full_like(torch.as_tensor(img), -1.0)  # a constant image has no contrast to scale
                if isinstance(img, MetaTensor):
                    out = MetaTensor(out, meta=img.meta)
            elif mode == "percentile":
                out = self._percentile(img)
            elif mode == "minmax":
                out = self._minmax(img)
            else:
                out = self._fixed[mode](img)
            d[key] = out.float() if isinstance(out, torch.Tensor) else torch.as_tensor(out).float()
        return d


def mask_label_map(mask, where: str | None = None) -> torch.Tensor:
    """A loaded mask ``[C, x, y(, z)]`` → its integer label map ``[1, x, y(, z)]`` (float32), by the file rules
    of docs/segmentation.md: a mask must have one channel (or identical RGB(A) channels); an 8-bit PNG/JPEG/…
    mask whose values are all 0 or 255 is binary (255 → 1). Values are *not* checked here (see
    :func:`gemix_monai.data.masks.label_map_to_channels`)."""
    where = where or _filename(mask)
    arr = torch.as_tensor(mask).float()
    if arr.shape[0] > 1:
        colour = arr[:3] if arr.shape[0] in (3, 4) else arr
        if arr.shape[0] not in (3, 4) or not bool((colour == colour[:1]).all()):
            raise DataError(
                f"{where}: a mask must be a single-channel label map; got {arr.shape[0]} channels that differ"
            )
        arr = arr[:1]
    meta = getattr(mask, "meta", None) or {}
    if meta.get("source_format") == "pil" and meta.get("source_dtype") == "uint8":
        values = torch.unique(arr)
        if bool(((values == 0) | (values == 255)).all()):
            arr = arr / 255.0  # the common 0/255 PNG mask is binary
    return arr


class MaskToChannelsd(MapTransform):
    """Loaded masks → float32 ``[mask_channels, x, y]`` in {0, 1} (binary, or one-hot without background).

    The file rules are :func:`mask_label_map`'s; the channel rule is
    :func:`gemix_monai.data.masks.label_map_to_channels`'s (docs/segmentation.md). A value outside
    ``0..mask_channels`` (a greyscale or interpolated mask) raises :class:`DataError` naming the file and
    the values found. Items without the key pass unchanged.
    """

    def __init__(self, keys: KeysCollection = "mask", mask_channels: int = 1, allow_missing_keys: bool = True):
        super().__init__(keys, allow_missing_keys)
        if isinstance(mask_channels, bool) or not isinstance(mask_channels, int) or mask_channels < 1:
            raise ValueError(f"mask_channels must be a positive integer, got {mask_channels!r}")
        self.mask_channels = mask_channels

    def __call__(self, data):
        from .masks import label_map_to_channels

        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            where = _filename(mask)
            labels = mask_label_map(mask, where)
            if labels.ndim != 3:
                raise DataError(f"{where}: a mask must be 2-D after slice selection, got shape {tuple(labels.shape)}")
            try:
                channels = label_map_to_channels(labels, self.mask_channels, where)
            except ValueError as e:
                raise DataError(str(e)) from None
            d[key] = MetaTensor(channels, meta=dict(getattr(mask, "meta", None) or {}))
        return d


class ResizeLongestd(MapTransform):
    """Resize ``[C, x, y]`` with MONAI's ``Resized`` (bilinear): the longest side to ``spatial_size`` (``keep_aspect``)
    or both sides to it, anti-aliased on down-sizing — with the borders replicated for the smoothing.

    MONAI's own anti-aliasing (``Resize(anti_aliasing=True)``) smooths with zero padding, so a down-sized image gets a
    border pulled towards 0 (an all-white scan in [-1, 1] became +0.88 at the edges and +0.77 in the corners): an
    artefact real images carried and generated ones need not. Here the same Gaussian (σ = (factor − 1) / 2 per axis,
    skimage's default, as MONAI uses) runs on an edge-replicated copy, so a constant image stays constant; inside the
    image the result equals MONAI's.
    """

    def __init__(
        self, keys: KeysCollection, spatial_size: int, keep_aspect: bool = True, allow_missing_keys: bool = False
    ):
        super().__init__(keys, allow_missing_keys)
        self.spatial_size = int(spatial_size)
        self.keep_aspect = keep_aspect

    def out_size(self, shape) -> tuple[int, ...]:
        if not self.keep_aspect:
            return (self.spatial_size,) * len(shape)
        scale = self.spatial_size / max(shape)
        return tuple(int(round(s * scale)) for s in shape)  # MONAI Resize(size_mode="longest")

    def __call__(self, data):
        from monai.networks.layers import GaussianFilter

        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            shape = tuple(int(v) for v in img.shape[1:])
            out = self.out_size(shape)
            sigma = [max(0.0, (s / o - 1) / 2) for s, o in zip(shape, out)]
            x = torch.as_tensor(img).float()
            if any(v > 0 for v in sigma):
                gauss = GaussianFilter(len(shape), sigma=sigma)  # truncated at 4 σ, zero-padded "same" convolution
                pad = [int(np.ceil(4.0 * v)) + 1 for v in sigma]
                flat = [p for v in reversed(pad) for p in (v, v)]
                padded = torch.nn.functional.pad(x[None], flat, mode="replicate")
                # MONAI's sampled kernel sums to 1 − 5e-5, not 1: divide by its sum so a constant stays exactly constant
                ones = torch.ones((1, 1, *(2 * p + 1 for p in pad)))
                total = gauss(ones)[(0, 0, *pad)]
                smooth = gauss(padded)[0] / total
                # a weighted mean never leaves [min, max]: clamping only removes float rounding (1 stays 1)
                smooth = smooth.clamp(float(x.min()), float(x.max()))
                x = smooth[(slice(None), *(slice(p, p + s) for p, s in zip(pad, shape)))]
            x = MetaTensor(x, meta=dict(getattr(img, "meta", None) or {}))
            d[key] = Resized(key, spatial_size=out, mode="bilinear", anti_aliasing=False)({key: x})[key]
        return d


class CheckLabeld(MapTransform):
    """``label_key`` → python ``int`` in ``[0, num_classes)``; anything else raises naming the image file.

    With ``class_names`` a label may also be a class name (MONAI Label's datastores label by name): it becomes that
    name's index; an unknown name raises naming it and the classes.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_key: str = "label",
        num_classes: int | None = None,
        allow_missing_keys: bool = True,
        class_names: Sequence[str] | None = None,
    ):
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        self.class_names = list(class_names) if class_names is not None else None
        self.num_classes = num_classes if num_classes is not None or class_names is None else len(self.class_names)

    def __call__(self, data):
        d = dict(data)
        if self.label_key not in d:
            return d
        raw = d[self.label_key]
        present = [k for k in self.key_iterator(d)]
        where = _filename(d[present[0]], "<item>") if present else "<item>"
        if isinstance(raw, str) and self.class_names is not None:
            if raw not in self.class_names:
                raise DataError(f"{where}: label {raw!r} is not one of the classes {self.class_names}")
            raw = self.class_names.index(raw)
        try:
            label = int(raw)
            ok = float(raw) == label
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"{where}: label must be an integer class index, got {raw!r}")
        if label < 0 or (self.num_classes is not None and label >= self.num_classes):
            raise DataError(f"{where}: label {label} out of range [0, {self.num_classes})")
        d[self.label_key] = label
        return d


class DataCompose(Compose):
    """``Compose`` that re-raises the data layer's own errors (and missing files) as themselves
    instead of MONAI's generic ``RuntimeError("applying transform ...")`` wrapper."""

    def __call__(self, input_, *args, **kwargs):
        try:
            return super().__call__(input_, *args, **kwargs)
        except RuntimeError as e:
            cause = e
            while isinstance(cause, RuntimeError) and cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, (DataError, FileNotFoundError)):
                raise cause from None
            raise


def get_transforms(
    image_size: int = 64,
    *,
    hu_window=None,
    intensity="auto",
    channels: int = 1,
    slice_index: int | None = None,
    slice_mask_key: str | None = None,
    box_key: str | None = None,
    keep_aspect: bool = True,
    num_classes: int | None = None,
    keys: Sequence[str] = ("image",),
    mask_key: str | None = None,
    mask_channels: int = 1,
) -> DataCompose:
    """The preprocessing every layer uses: file or array → ``{"image": float32 [channels, S, S] in [-1, 1], "label": int}``.

    Args:
        image_size: output side ``S`` (the generator's resolution).
        hu_window: CT window in HU — ``"abdomen"`` (W400/L50), ``"lung"`` (W1500/L−600), another
            :data:`HU_WINDOWS` name or ``(width, level)`` — for data known to be CT in HU; ``None``
            (default) for everything else, which is scaled by ``intensity``. Which one a dataset gets
            is decided by :func:`gemix_monai.data.contract.decide_intensity` (docs/data.md).
        intensity: for ``hu_window=None``: ``"auto"`` (8-bit files: 0..255; anything else: per-image
            0.5–99.5th percentiles), ``"uint8"``, ``"uint16"``, ``"percentile"``, ``"minmax"`` or ``(low, high)``.
        channels: output channels (RGB → grey by luma, grey → repeated).
        slice_index / slice_mask_key: how to take a 2-D slice from a 3-D volume (index along the
            last axis, or the slice where ``item[slice_mask_key]`` is largest); without either a
            multi-slice volume raises :class:`~gemix_monai.data.errors.NotASliceError`.
        box_key: item key holding ``(xmin, ymin, xmax, ymax)`` to crop before resizing (COVIDx-CT).
        keep_aspect: resize the longest side to ``S`` and pad the other with black; ``False`` stretches.
        num_classes: if given, labels outside ``[0, num_classes)`` raise.
        keys: image keys (a mask key for slice selection is loaded alongside but not scaled).
        mask_key: the item key of a segmentation mask (``"mask"``), or ``None``: loaded, sliced and cropped like
            the image, made ``[mask_channels, S, S]`` in {0, 1} by :class:`MaskToChannelsd`, resized with nearest
            neighbour and padded with 0 (docs/segmentation.md). Items without it pass unchanged.
        mask_channels: ``M`` (1 = binary; ``M > 1``: labels ``1..M`` one-hot, background dropped).
    """
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 4:
        raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
    keys = [keys] if isinstance(keys, str) else list(keys)
    masks = [mask_key] if mask_key else []
    if mask_key in keys:
        raise ValueError(f"mask_key {mask_key!r} is also an image key; a mask is never intensity-scaled")
    slice_mask = [slice_mask_key] if slice_mask_key and slice_mask_key != mask_key else []
    # Masks are optional per item (allow_missing_keys): get_dataset refuses a split where only some have one.
    steps: list = [LoadMedicalImaged(keys + slice_mask)]
    if masks:
        steps.append(LoadMedicalImaged(masks, allow_missing_keys=True, min_side=1))
    steps.append(
        ExtractSliced(
            keys + masks + slice_mask, slice_index=slice_index, mask_key=slice_mask_key, allow_missing_keys=True
        )
    )
    if box_key:
        steps.append(CropBoxd(keys + masks, box_key=box_key, allow_missing_keys=True))
    steps.append(ToChannelsd(keys, channels=channels))
    steps.append(IntensityToTrainingRanged(keys, hu_window=hu_window, intensity=intensity))
    if masks:
        steps.append(MaskToChannelsd(masks, mask_channels=mask_channels))
    steps.append(ResizeLongestd(keys, image_size, keep_aspect=keep_aspect))
    if keep_aspect:
        steps += [SpatialPadd(keys, spatial_size=(image_size, image_size), mode="constant", value=-1.0)]
        if masks:
            steps += [
                Resized(masks, spatial_size=image_size, size_mode="longest", mode="nearest", allow_missing_keys=True),
                SpatialPadd(
                    masks, spatial_size=(image_size, image_size), mode="constant", value=0.0, allow_missing_keys=True
                ),
            ]
    elif masks:
        steps.append(Resized(masks, spatial_size=(image_size, image_size), mode="nearest", allow_missing_keys=True))
    steps.append(CheckLabeld(keys, num_classes=num_classes))
    return DataCompose(steps)


def to_hu(image, hu_window="abdomen"):
    """Invert windowing: ``[-1, 1]`` → HU on ``[level − width/2, level + width/2]`` (tensor or array, same type back).
    Values clipped by the window cannot be recovered."""
    window = resolve_hu_window(hu_window)
    if window is None:
        raise ValueError("to_hu needs a CT window (a preset name or (width, level)), got None")
    width, level = window
    return (image + 1.0) * (width / 2.0) + (level - width / 2.0)


def to_uint8(image):
    """``[-1, 1]`` → ``uint8`` 0–255 (rounded, clipped), for PNG export. Tensor or array, same type back."""
    if isinstance(image, torch.Tensor):
        return ((image.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.clip(np.rint((np.asarray(image, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_display(image) -> np.ndarray:
    """``[C, x, y]`` (MONAI order) in [-1, 1] → ``uint8`` rows × columns for a picture: ``[y, x]`` for one
    channel, ``[y, x, 3]`` for three (more channels: the first three). Tensor or array in, array out."""
    arr = to_uint8(image.detach().cpu() if isinstance(image, torch.Tensor) else image)
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"to_display expects one image [C, x, y], got shape {tuple(arr.shape)}")
    if arr.shape[0] >= 3:
        return np.ascontiguousarray(np.transpose(arr[:3], (2, 1, 0)))
    return np.ascontiguousarray(arr[0].T)
