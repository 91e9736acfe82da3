"""Where the pixels go: a 2-D slice from a volume, a box crop, and the resize to the generator's side — the spatial
steps of the preprocessing chain (:mod:`gemix_monai.data.preprocessing`; docs/data.md, "Preprocessing").

Every step works on MONAI's ``[C, x, y(, z)]`` and names the image's file in its errors.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resized

from .errors import DataError, NotASliceError
from .readers import source_name

__all__ = ["ExtractSliced", "CropBoxd", "ResizeLongestd"]


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
                    f"{source_name(img)}: slice selection by mask needs item[{self.mask_key!r}], which is missing"
                )
            mask = d[self.mask_key]
            if tuple(mask.shape[-3:]) != tuple(img.shape[-3:]):
                raise DataError(
                    f"{source_name(img)}: mask {source_name(mask)} has spatial shape {tuple(mask.shape[-3:])}, "
                    f"image has {tuple(img.shape[-3:])}"
                )
            area = (torch.as_tensor(mask) > 0).reshape(-1, depth).sum(0)
            if int(area.max()) == 0:
                raise DataError(
                    f"{source_name(img)}: mask {source_name(mask)} is empty; cannot choose the largest-lesion slice"
                )
            return int(area.argmax())
        if self.slice_index is not None:
            if not -depth <= self.slice_index < depth:
                raise DataError(
                    f"{source_name(img)}: slice_index {self.slice_index} out of range for a volume of {depth} slices"
                )
            return self.slice_index % depth
        raise NotASliceError(
            f"{source_name(img)}: expected a 2-D slice, got a volume of shape {tuple(img.shape[1:])} "
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
                raise DataError(f"{source_name(img)}: expected [C, x, y] or [C, x, y, z], got shape {tuple(img.shape)}")
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
                    f"{source_name(img)}: box (xmin, ymin, xmax, ymax) = {tuple(box)} is empty or outside the image of "
                    f"{cols}×{rows} (cols×rows)"
                )
            d[key] = img[..., xmin:xmax, ymin:ymax]
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
