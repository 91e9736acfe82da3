"""Reading an image file (or an in-memory array) into MONAI's ``[C, x, y(, z)]``: the first step of the preprocessing
chain (:mod:`gemix_monai.data.preprocessing`; docs/data.md, "Decoding").

:class:`LoadMedicalImaged` is MONAI's ``LoadImage`` with the reader the file's content (else its suffix) calls for
(:func:`gemix_monai.data.files.image_format`): ``PydicomReader`` (rescale slope/intercept applied → HU),
``NibabelReader``, ``PILReader``. Pillow images are decoded by their mode (:func:`pil_to_standard_mode`: palette →
its colours, 1-bit → 0/255, CMYK → RGB, alpha composited onto black), and what was done is recorded in
``meta["decode"]``. Before the pixels are read, each file gets the header checks of its kind (:func:`check_header`):
one page only, at least :data:`MIN_IMAGE_SIDE` pixels a side, a finite non-zero DICOM rescale; after, a NIfTI
must be 2-D or 3-D and every voxel finite. Every refusal names the file.

Orientation: exactly MONAI's. Every array leaving :class:`LoadMedicalImaged` is what ``LoadImaged`` +
``EnsureChannelFirstd`` give: ``[C, x, y]`` where, for a PNG/JPEG, the first spatial axis runs along the image's
width (the transpose of ``numpy.asarray(PIL.Image.open(f))``).
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from .errors import DataError, ImageReadError
from .files import image_format

__all__ = [
    "MIN_IMAGE_SIDE",
    "source_name",
    "check_pil_header",
    "check_min_side",
    "check_dicom_rescale",
    "check_nifti_dims",
    "check_header",
    "pil_to_standard_mode",
    "pil_standard_mode_converter",
    "LoadMedicalImaged",
]

#: Smallest accepted image side in pixels (docs/data.md, "Decoding"): a 1×1 or 4×7 picture is a thumbnail, an icon or
#: a broken export, not an image to learn from; scaled up to the generator's size it would be a blur of one value.
MIN_IMAGE_SIDE = 8


def source_name(img, default: str = "<array>") -> str:
    """The file an image was read from (``meta["filename_or_obj"]``), for messages; ``default`` when it has none."""
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
        raise ImageReadError(f"unreadable image ({type(e).__name__}: {e})") from None
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
