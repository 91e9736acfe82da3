"""Preprocessing from a file (or array) to the training stream ``{"image": float32 [C, H, W] in [-1, 1], "label": int}``.

The chain built by :func:`get_transforms`::

    LoadMedicalImaged   MONAI readers (pydicom / nibabel / PIL) chosen by file suffix, channel first,
                        DICOM rescale slope/intercept applied (→ HU), spatial axes put in display
                        order [C, rows, cols(, slices)]
    ExtractSliced       3-D volume → one 2-D slice (by index, or where a mask is largest)
    CropBoxd            optional bounding-box crop (COVIDx-CT boxes)
    ToChannelsd         RGB/RGBA → grey, or grey → N channels
    HUWindowd           CT: [L − W/2, L + W/2] HU → [0, 1] (clipped)      — or —
    ScaleIntensityToUnitd  PNG/X-ray: uint8 / uint16 / min-max → [0, 1]
    Resized + pad       longest side → image_size (bilinear, anti-aliased), pad to square with black
    ToTrainingRanged    [0, 1] → [-1, 1]; label → int (range-checked)

:func:`to_hu` and :func:`to_uint8` invert the last steps for export.

Orientation: MONAI's readers return the first spatial axis as *x* (image columns). Every array
leaving :class:`LoadMedicalImaged` is in display order ``[C, rows, cols]``, the same as a MedMNIST
array or ``PIL.Image`` → ``numpy``; ``plt.imshow(image[0])`` shows the image the right way up.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
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
    "LoadMedicalImaged",
    "ExtractSliced",
    "CropBoxd",
    "ToChannelsd",
    "HUWindowd",
    "ScaleIntensityToUnitd",
    "ToTrainingRanged",
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

#: Suffix → reader family. ``.dcm`` files and suffix-less files (DICOM often has none) go to pydicom.
IMAGE_SUFFIXES: dict[str, str] = {
    ".dcm": "dicom", ".dicom": "dicom", "": "dicom",
    ".nii": "nifti", ".nii.gz": "nifti", ".img": "nifti", ".hdr": "nifti",
    ".png": "pil", ".jpg": "pil", ".jpeg": "pil", ".bmp": "pil", ".tif": "pil", ".tiff": "pil",
}


def resolve_hu_window(hu_window) -> tuple[float, float] | None:
    """``"abdomen"``/``"lung"``/… (see :data:`HU_WINDOWS`), ``(width, level)`` in HU, or ``None``."""
    if hu_window is None:
        return None
    if isinstance(hu_window, str):
        if hu_window not in HU_WINDOWS:
            raise ValueError(f"hu_window must be one of {sorted(HU_WINDOWS)}, a (width, level) pair in HU or None, got {hu_window!r}")
        return HU_WINDOWS[hu_window]
    try:
        width, level = (float(v) for v in hu_window)
    except (TypeError, ValueError):
        raise ValueError(f"hu_window must be a preset name, a (width, level) pair in HU or None, got {hu_window!r}") from None
    if not width > 0:
        raise ValueError(f"hu_window width must be > 0 HU, got {width}")
    return width, level


def image_format(path: str | os.PathLike) -> str:
    """``"dicom"``, ``"nifti"`` or ``"pil"`` from the file name; raises naming the file otherwise."""
    name = Path(path).name.lower()
    suffix = ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix
    if suffix not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: unsupported image suffix {suffix!r}; expected one of {sorted(s for s in IMAGE_SUFFIXES if s)} (or no suffix for DICOM)")
    return IMAGE_SUFFIXES[suffix]


def _filename(img, default: str = "<array>") -> str:
    meta = getattr(img, "meta", None) or {}
    return str(meta.get("filename_or_obj", default))


def _pil_dtype(path: str) -> str:
    """Stored sample type of a PIL-readable file (``uint8`` for L/RGB/RGBA/P, ``uint16`` for I;16)."""
    from PIL import Image

    with Image.open(path) as im:
        mode = im.mode
    if mode in ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr"):
        return "uint8"
    if mode.startswith("I;16"):
        return "uint16"
    return "float32"


class LoadMedicalImaged(MapTransform):
    """Read an image file with MONAI's ``LoadImage`` and the reader its suffix calls for.

    Output: ``MetaTensor`` float32 ``[C, rows, cols]`` (2-D) or ``[C, rows, cols, slices]`` (3-D),
    DICOM in HU (rescale slope/intercept applied by ``PydicomReader``). ``meta["source_dtype"]``
    records the stored sample type of PNG/JPEG/TIFF files (``uint8`` PNGs are scaled by 255 later). Arrays or tensors already in
    the item (MedMNIST) must be ``[C, rows, cols]`` and pass through as float32.
    """

    def __init__(self, keys: KeysCollection = "image", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self._loaders: dict[str, object] = {}

    def _loader(self, fmt: str):
        if fmt not in self._loaders:
            from monai.data import NibabelReader, PILReader, PydicomReader
            from monai.transforms import LoadImage

            reader = {"dicom": PydicomReader, "nifti": NibabelReader, "pil": PILReader}[fmt]()
            self._loaders[fmt] = LoadImage(reader=reader, image_only=True, dtype=np.float32, ensure_channel_first=True)
        return self._loaders[fmt]

    def load(self, path) -> MetaTensor:
        path = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")
        fmt = image_format(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # reader plugin chatter (nvImageCodec) is not the user's problem
                img = self._loader(fmt)(path)
        except Exception as e:
            raise ImageReadError(f"{path}: cannot read as {fmt} ({type(e).__name__}: {e})") from e
        source_dtype = _pil_dtype(path) if fmt == "pil" else "float32"
        if img.ndim < 3:
            raise ImageReadError(f"{path}: expected a 2-D or 3-D image, got shape {tuple(img.shape)}")
        # MONAI readers give [C, x, y, ...] with x = columns; swap to display order [C, rows, cols, ...].
        img = img.transpose(1, 2).contiguous()
        if isinstance(img, MetaTensor):
            affine = img.affine.clone()
            affine[:, [0, 1]] = affine[:, [1, 0]]
            img.affine = affine
            img.meta["source_dtype"] = source_dtype
            img.meta["source_format"] = fmt
        return img

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, os.PathLike)):
                d[key] = self.load(value)
            elif isinstance(value, (np.ndarray, torch.Tensor)):
                source_dtype = str(value.dtype).replace("torch.", "")
                arr = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).float()
                if arr.ndim != 3:
                    raise DataError(f"item[{key!r}]: an in-memory image must be [C, rows, cols], got shape {tuple(arr.shape)}")
                img = MetaTensor(arr)
                img.meta["source_dtype"] = source_dtype
                img.meta["source_format"] = "array"
                img.meta["filename_or_obj"] = str(d.get(f"{key}_source", "<array>"))
                d[key] = img
            else:
                raise DataError(f"item[{key!r}] must be a file path or an array, got {type(value).__name__}")
        return d


class ExtractSliced(MapTransform):
    """3-D ``[C, rows, cols, slices]`` → 2-D ``[C, rows, cols]``; 2-D input passes unchanged.

    A volume with a single slice is squeezed. Otherwise the slice is ``slice_index`` (negative
    counts from the end), or, with ``mask_key``, the slice where that mask (loaded the same way)
    has the largest area; with neither, :class:`NotASliceError` names the file.
    """

    def __init__(self, keys: KeysCollection = "image", slice_index: int | None = None, mask_key: str | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.slice_index = slice_index
        self.mask_key = mask_key

    def _choose(self, img, d) -> int:
        depth = img.shape[-1]
        if self.mask_key is not None:
            if self.mask_key not in d:
                raise DataError(f"{_filename(img)}: slice selection by mask needs item[{self.mask_key!r}], which is missing")
            mask = d[self.mask_key]
            if tuple(mask.shape[-3:]) != tuple(img.shape[-3:]):
                raise DataError(f"{_filename(img)}: mask {_filename(mask)} has spatial shape {tuple(mask.shape[-3:])}, image has {tuple(img.shape[-3:])}")
            area = (torch.as_tensor(mask) > 0).reshape(-1, depth).sum(0)
            if int(area.max()) == 0:
                raise DataError(f"{_filename(img)}: mask {_filename(mask)} is empty; cannot choose the largest-lesion slice")
            return int(area.argmax())
        if self.slice_index is not None:
            if not -depth <= self.slice_index < depth:
                raise DataError(f"{_filename(img)}: slice_index {self.slice_index} out of range for a volume of {depth} slices")
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
                raise DataError(f"{_filename(img)}: expected [C, rows, cols] or [C, rows, cols, slices], got shape {tuple(img.shape)}")
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
    """Crop ``[C, rows, cols]`` to ``item[box_key] = (xmin, ymin, xmax, ymax)`` pixels (x = column, exclusive max).
    Items without a box (``None``) pass unchanged."""

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
            rows, cols = img.shape[-2:]
            if not (0 <= xmin < xmax <= cols and 0 <= ymin < ymax <= rows):
                raise DataError(f"{_filename(img)}: box (xmin, ymin, xmax, ymax) = {tuple(box)} is empty or outside the image of {cols}×{rows} (cols×rows)")
            d[key] = img[..., ymin:ymax, xmin:xmax]
        return d


class ToChannelsd(MapTransform):
    """Make the channel count ``channels``: RGB(A) → grey by ITU-R BT.601 luma (alpha dropped),
    grey → repeated; any other mismatch raises naming the file."""

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
                d[key] = img.repeat(self.channels, *([1] * (img.ndim - 1)))
            else:
                raise DataError(f"{_filename(img)}: has {c} channels, expected {self.channels} (or 1/3/4 to convert)")
        return d


class HUWindowd(MapTransform):
    """CT window: ``[level − width/2, level + width/2]`` HU → ``[0, 1]``, clipped. Input must be HU
    (the DICOM rescale slope/intercept is applied by the reader)."""

    def __init__(self, keys: KeysCollection = "image", hu_window="abdomen", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        window = resolve_hu_window(hu_window)
        if window is None:
            raise ValueError("HUWindowd needs a window; use ScaleIntensityToUnitd for non-CT images")
        self.width, self.level = window

    def __call__(self, data):
        d = dict(data)
        low = self.level - self.width / 2
        for key in self.key_iterator(d):
            d[key] = ((d[key] - low) / self.width).clamp(0.0, 1.0)
        return d


class ScaleIntensityToUnitd(MapTransform):
    """Non-CT intensities → ``[0, 1]``.

    ``mode``: ``"auto"`` (stored ``uint8`` → ÷255, ``uint16`` → ÷65535, anything else min-max),
    ``"uint8"``, ``"uint16"``, ``"minmax"`` (per image; a constant image becomes 0), or ``(low, high)``.
    """

    def __init__(self, keys: KeysCollection = "image", mode="auto", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if not (mode in ("auto", "uint8", "uint16", "minmax") or (isinstance(mode, (tuple, list)) and len(mode) == 2 and mode[1] > mode[0])):
            raise ValueError(f"intensity must be 'auto', 'uint8', 'uint16', 'minmax' or (low, high) with high > low, got {mode!r}")
        self.mode = mode

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            mode = self.mode
            if mode == "auto":
                source = (getattr(img, "meta", None) or {}).get("source_dtype", "")
                mode = source if source in ("uint8", "uint16") else "minmax"
            if mode == "uint8":
                low, high = 0.0, 255.0
            elif mode == "uint16":
                low, high = 0.0, 65535.0
            elif mode == "minmax":
                low, high = float(img.min()), float(img.max())
                if high <= low:
                    d[key] = torch.zeros_like(img)
                    continue
            else:
                low, high = float(mode[0]), float(mode[1])
            d[key] = ((img - low) / (high - low)).clamp(0.0, 1.0)
        return d


class ToTrainingRanged(MapTransform):
    """``[0, 1]`` → ``[-1, 1]`` float32 for the image keys; ``label_key`` → python ``int`` in ``[0, num_classes)``."""

    def __init__(self, keys: KeysCollection = "image", label_key: str | None = "label", num_classes: int | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.label_key = label_key
        self.num_classes = num_classes

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key] * 2.0 - 1.0).float()
        if self.label_key is not None and self.label_key in d:
            raw = d[self.label_key]
            present = [k for k in self.key_iterator(d)]
            where = _filename(d[present[0]], "<item>") if present else "<item>"
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
    hu_window="abdomen",
    intensity="auto",
    channels: int = 1,
    slice_index: int | None = None,
    slice_mask_key: str | None = None,
    box_key: str | None = None,
    keep_aspect: bool = True,
    num_classes: int | None = None,
    keys: Sequence[str] = ("image",),
) -> DataCompose:
    """The preprocessing every layer uses: file or array → ``{"image": float32 [channels, S, S] in [-1, 1], "label": int}``.

    Args:
        image_size: output side ``S`` (the generator's resolution).
        hu_window: CT window applied in HU — ``"abdomen"`` (W400/L50), ``"lung"`` (W1500/L−600),
            another :data:`HU_WINDOWS` name, ``(width, level)``, or ``None`` for non-CT data, which
            is scaled by ``intensity`` instead.
        intensity: for ``hu_window=None``: ``"auto"`` (uint8 ÷255, uint16 ÷65535, else min-max),
            ``"uint8"``, ``"uint16"``, ``"minmax"`` or ``(low, high)``.
        channels: output channels (RGB → grey by luma, grey → repeated).
        slice_index / slice_mask_key: how to take a 2-D slice from a 3-D volume (index along the
            last axis, or the slice where ``item[slice_mask_key]`` is largest); without either a
            multi-slice volume raises :class:`~gemix_monai.data.errors.NotASliceError`.
        box_key: item key holding ``(xmin, ymin, xmax, ymax)`` to crop before resizing (COVIDx-CT).
        keep_aspect: resize the longest side to ``S`` and pad the other with black; ``False`` stretches.
        num_classes: if given, labels outside ``[0, num_classes)`` raise.
        keys: image keys (a mask key for slice selection is loaded alongside but not windowed).
    """
    if not isinstance(image_size, int) or image_size < 4:
        raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}")
    keys = [keys] if isinstance(keys, str) else list(keys)
    load_keys = keys + ([slice_mask_key] if slice_mask_key else [])
    window = resolve_hu_window(hu_window)
    steps: list = [
        LoadMedicalImaged(load_keys),
        ExtractSliced(load_keys, slice_index=slice_index, mask_key=slice_mask_key),
    ]
    if box_key:
        steps.append(CropBoxd(keys, box_key=box_key))
    steps.append(ToChannelsd(keys, channels=channels))
    steps.append(HUWindowd(keys, hu_window=window) if window is not None else ScaleIntensityToUnitd(keys, mode=intensity))
    if keep_aspect:
        steps += [
            Resized(keys, spatial_size=image_size, size_mode="longest", mode="bilinear", anti_aliasing=True),
            SpatialPadd(keys, spatial_size=(image_size, image_size), mode="constant", value=0.0),
        ]
    else:
        steps.append(Resized(keys, spatial_size=(image_size, image_size), mode="bilinear", anti_aliasing=True))
    steps.append(ToTrainingRanged(keys, num_classes=num_classes))
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
