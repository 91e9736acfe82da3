"""The one preprocessing chain: from a file (or array) to the training stream
``{"image": float32 [C, S, S] in [-1, 1], "label": int}`` (docs/data.md, "Preprocessing").

The chain built by :func:`get_transforms`, one module per job::

    LoadMedicalImaged        (readers)   MONAI's LoadImage with the reader the file's content (else suffix) calls
                             for, channel first, DICOM rescale slope/intercept applied (→ HU); Pillow images by
                             their mode (palette → colours, 1-bit → 0/255, CMYK → RGB, alpha composited onto black);
                             multi-page files, images under 8 px a side and non-finite voxels refused
    ExtractSliced            (spatial)   3-D volume → one 2-D slice (by index, or where a mask is largest)
    CropBoxd                 (spatial)   optional bounding-box crop (COVIDx-CT boxes)
    ToChannelsd              (here)      RGB/RGBA → grey, or grey → N channels
    IntensityToTrainingRanged  (intensity)  the :class:`~gemix_monai.data.intensity.IntensityRule`: CT: HU window →
                             [-1, 1]; anything else: 8-bit range or per-image percentiles → [-1, 1]
    ResizeLongestd + SpatialPadd  (spatial)  longest side → image_size (bilinear, anti-aliased with
                             edge-replicated borders, so a constant image stays constant), pad to square with −1
    CheckLabeld              (here)      label → int (range-checked)

With ``mask_key`` (docs/segmentation.md) the mask is loaded, sliced and cropped exactly like the image,
then :class:`MaskToChannelsd` makes it ``[M, x, y]`` in {0, 1} (never intensity-scaled), and it is resized
with nearest neighbour and padded with 0, so mask and image stay aligned pixel for pixel.

Orientation: exactly MONAI's (:mod:`gemix_monai.data.readers`). In-memory arrays (MedMNIST) are put in the same
order by their readers. :func:`to_display` turns ``[C, x, y]`` back into rows × columns for pictures and PNG export,
so an exported PNG read with ``LoadImaged`` gives the generator's array back.

This module also re-exports the chain's pieces from :mod:`.readers`, :mod:`.intensity`, :mod:`.spatial` and
:mod:`.files`, so ``from gemix_monai.data.preprocessing import X`` finds every name that
``gemix_monai.data.transforms`` (its old, deprecated home) had.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import Compose, MapTransform, Resized, SpatialPadd

from .errors import DataError
from .files import IMAGE_SUFFIXES, image_format
from .intensity import (
    HU_WINDOWS,
    INTENSITY_MODES,
    IntensityRule,
    IntensityToTrainingRanged,
    check_intensity,
    resolve_hu_window,
    to_hu,
    to_uint8,
)
from .masks import label_map_to_channels
from .readers import MIN_IMAGE_SIDE, LoadMedicalImaged, pil_standard_mode_converter, pil_to_standard_mode, source_name
from .spatial import CropBoxd, ExtractSliced, ResizeLongestd

__all__ = [
    "HU_WINDOWS",
    "IntensityRule",
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
                raise DataError(f"{source_name(img)}: has {c} channels, expected {self.channels} (or 1/3/4 to convert)")
        return d


def mask_label_map(mask, where: str | None = None) -> torch.Tensor:
    """A loaded mask ``[C, x, y(, z)]`` → its integer label map ``[1, x, y(, z)]`` (float32), by the file rules
    of docs/segmentation.md: a mask must have one channel (or identical RGB(A) channels); an 8-bit PNG/JPEG/…
    mask whose values are all 0 or 255 is binary (255 → 1). Values are *not* checked here (see
    :func:`gemix_monai.data.masks.label_map_to_channels`)."""
    where = where or source_name(mask)
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
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            where = source_name(mask)
            labels = mask_label_map(mask, where)
            if labels.ndim != 3:
                raise DataError(f"{where}: a mask must be 2-D after slice selection, got shape {tuple(labels.shape)}")
            try:
                channels = label_map_to_channels(labels, self.mask_channels, where)
            except ValueError as e:
                raise DataError(str(e)) from None
            d[key] = MetaTensor(channels, meta=dict(getattr(mask, "meta", None) or {}))
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
        where = source_name(d[present[0]], "<item>") if present else "<item>"
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
    rule: IntensityRule | None = None,
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
        rule: both as an :class:`~gemix_monai.data.intensity.IntensityRule` (then ``hu_window`` and ``intensity``
            are not read); :meth:`Preprocessing.transforms <gemix_monai.data.contract.Preprocessing.transforms>`
            passes its own.
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
    if rule is None:
        rule = IntensityRule.parse(hu_window, intensity, allow_auto=False)
    steps.append(IntensityToTrainingRanged(keys, rule=rule))
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
