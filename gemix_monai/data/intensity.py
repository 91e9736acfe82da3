"""Intensities → the training range ``[-1, 1]``: the rule (:class:`IntensityRule`), its transform and its inverses
(docs/data.md, "Preprocessing: what is decided, and why").

The options ``hu_window`` and ``intensity`` are words — ``"auto"``, ``"none"``, a CT window's name, a
``(width, level)`` pair, ``"uint8"``, ``"percentile"``, ``(low, high)``, ... — given on the command line, in a
bundle config, a datalist or a stored contract. :meth:`IntensityRule.parse` reads them **once**, where they enter
(``get_dataset``, ``classifier_transform``, a contract record), into an :class:`IntensityRule`; everything after
passes that object around and asks it (:meth:`~IntensityRule.mode_for`, :meth:`~IntensityRule.fixed_range`,
:meth:`~IntensityRule.describe`), so what ``"auto"`` and ``"none"`` mean is written here only.
:func:`gemix_monai.data.contract.decide_intensity` settles a rule whose window is ``"auto"`` from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, ScaleIntensityRange
from monai.transforms.utils_pytorch_numpy_unification import percentile

__all__ = [
    "HU_WINDOWS",
    "PERCENTILES",
    "INTENSITY_MODES",
    "IntensityRule",
    "resolve_hu_window",
    "check_intensity",
    "window_name",
    "IntensityToTrainingRanged",
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

#: Per-image percentiles used by ``intensity="percentile"`` (and by ``"auto"`` for anything not stored as 8-bit).
PERCENTILES = (0.5, 99.5)

#: Accepted ``intensity`` values for data that is not CT-windowed (see docs/data.md, "Preprocessing").
INTENSITY_MODES = ("auto", "uint8", "uint16", "minmax", "percentile")

#: The stored value ranges of the fixed-range modes.
_STORED_RANGES = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}

Scaling = str | tuple[float, float]


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


def window_name(window) -> str | None:
    """``"abdomen (W400/L50)"`` for a preset's window, ``"W120/L40"`` for any other, ``None`` for none."""
    if window is None:
        return None
    for name, value in HU_WINDOWS.items():
        if tuple(value) == tuple(window):
            return f"{name} (W{value[0]:g}/L{value[1]:g})"
    return f"W{window[0]:g}/L{window[1]:g}"


@dataclass(frozen=True)
class IntensityRule:
    """How a dataset's intensities become ``[-1, 1]``: the ``hu_window`` / ``intensity`` words, parsed once.

    Attributes:
        window: the CT window ``(width, level)`` in HU, or ``None``: no window, the image is scaled by ``scaling``.
        scaling: for images without a window — ``"auto"`` (files stored with 8 bits per sample by 0..255, anything
            else by its own 0.5th..99.5th percentiles), ``"uint8"``, ``"uint16"``, ``"percentile"``, ``"minmax"``,
            or ``(low, high)``, a fixed stored range.
        window_from_data: the window is still to be decided from the data (``hu_window="auto"``):
            :func:`gemix_monai.data.contract.decide_intensity` settles it (:meth:`decided`); until then the rule
            cannot scale an image.

    Build it with :meth:`parse` from the words; direct construction takes the parsed forms (a window as a preset
    name or a pair, a scaling as a mode or a pair) and checks them the same way.
    """

    window: tuple[float, float] | None = None
    scaling: Scaling = "auto"
    window_from_data: bool = False

    def __post_init__(self):
        window = resolve_hu_window(self.window)
        object.__setattr__(self, "window", None if window is None else (float(window[0]), float(window[1])))
        scaling = check_intensity(self.scaling)
        object.__setattr__(self, "scaling", tuple(scaling) if isinstance(scaling, list) else scaling)
        if self.window_from_data and self.window is not None:
            raise ValueError(f"an IntensityRule with the window {self.window} cannot also decide it from the data")

    @classmethod
    def parse(cls, hu_window="auto", intensity="auto", *, allow_auto: bool = True) -> "IntensityRule":
        """The rule that the words ``hu_window`` and ``intensity`` ask for.

        Args:
            hu_window: ``"auto"`` — decided from the data (with ``allow_auto``; elsewhere, e.g. a stored contract,
                it is refused); ``None`` or ``"none"`` (any letter case) — no CT window; a :data:`HU_WINDOWS` name;
                or ``(width, level)`` in HU with ``width > 0``.
            intensity: one of :data:`INTENSITY_MODES`, or ``(low, high)`` with finite ``high > low``.

        Raises:
            ValueError: naming the option (``hu_window`` or ``intensity``), what it accepts and the value given.
        """
        if isinstance(hu_window, str) and hu_window.lower() == "none":
            hu_window = None
        if allow_auto and isinstance(hu_window, str) and hu_window == "auto":
            return cls(None, intensity, window_from_data=True)
        if isinstance(hu_window, str) and hu_window not in HU_WINDOWS:
            words = ("'auto' (decided from the data), " if allow_auto else "") + "'none', "
            raise ValueError(
                f"hu_window must be {words}one of {sorted(HU_WINDOWS)} or a (width, level) pair in HU, got {hu_window!r}"
            )
        return cls(hu_window, intensity)

    def decided(self, window) -> "IntensityRule":
        """This rule with its window settled: ``window`` (a preset name, ``(width, level)`` or ``None``)."""
        return replace(self, window=resolve_hu_window(window), window_from_data=False)

    def mode_for(self, img) -> str:
        """The rule applied to ``img``: ``window``, ``uint8``, ``uint16``, ``range``, ``percentile`` or ``minmax``
        (``"auto"`` is ``uint8`` for an image read from a file with 8-bit samples, ``meta["source_dtype"]``)."""
        if self.window_from_data:
            raise ValueError("the CT window of this rule is still to be decided from the data (hu_window='auto')")
        if self.window is not None:
            return "window"
        if isinstance(self.scaling, tuple):
            return "range"
        if self.scaling == "auto":
            source = (getattr(img, "meta", None) or {}).get("source_dtype", "")
            return "uint8" if source == "uint8" else "percentile"
        return self.scaling

    def fixed_range(self, mode: str) -> tuple[float, float] | None:
        """The stored values mapped onto ``[-1, 1]`` by ``mode`` (of :meth:`mode_for`) when they are fixed: the
        window's ``[level − width/2, level + width/2]``, 0..255, 0..65535 or ``(low, high)``; ``None`` for the
        per-image modes (``percentile``, ``minmax``) and for a mode this rule does not have."""
        if mode == "window":
            return (
                None
                if self.window is None
                else (self.window[1] - self.window[0] / 2, self.window[1] + self.window[0] / 2)
            )
        if mode == "range":
            return self.scaling if isinstance(self.scaling, tuple) else None
        return _STORED_RANGES.get(mode)

    def overrides(self) -> dict:
        """What this rule fixes when given over a stored one, as ``Preprocessing`` fields: ``hu_window`` when it
        has a window, ``intensity`` when its scaling is not ``"auto"`` (``auto``, ``none`` and no window fix
        nothing)."""
        out: dict = {}
        if self.window is not None:
            out["hu_window"] = self.window
        if self.scaling != "auto":
            out["intensity"] = self.scaling
        return out

    def describe(self) -> str:
        """``"CT window abdomen (W400/L50) → [-1, 1]"`` or ``"intensity 'auto' → [-1, 1]"`` (for summaries)."""
        if self.window_from_data:
            return f"CT window decided from the data, else intensity {self.scaling!r} → [-1, 1]"
        if self.window is not None:
            return f"CT window {window_name(self.window)} → [-1, 1]"
        return f"intensity {self.scaling!r} → [-1, 1]"

    def to_dict(self) -> dict:
        """``{"hu_window": [width, level] | None | "auto", "intensity": mode | [low, high]}`` (JSON)."""
        window = "auto" if self.window_from_data else (list(self.window) if self.window is not None else None)
        return {
            "hu_window": window,
            "intensity": list(self.scaling) if isinstance(self.scaling, tuple) else self.scaling,
        }


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

    ``rule=`` gives both as an :class:`IntensityRule` (then ``hu_window`` and ``intensity`` are not read). The rule is
    part of the preprocessing contract stored with every model (docs/data.md).
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        hu_window=None,
        intensity="auto",
        allow_missing_keys: bool = False,
        *,
        rule: IntensityRule | None = None,
    ):
        super().__init__(keys, allow_missing_keys)
        from monai.transforms import ScaleIntensity

        self.rule = rule if rule is not None else IntensityRule.parse(hu_window, intensity, allow_auto=False)
        if self.rule.window_from_data:
            raise ValueError("hu_window 'auto' must be decided from the data first (decide_intensity)")
        self._fixed = {}
        for mode in ("window", "uint8", "uint16", "range"):
            stored = self.rule.fixed_range(mode)
            if stored is not None:
                self._fixed[mode] = ScaleIntensityRange(stored[0], stored[1], -1.0, 1.0, clip=True)
        self._minmax = ScaleIntensity(minv=-1.0, maxv=1.0)

    @property
    def window(self) -> tuple[float, float] | None:
        """The CT window ``(width, level)`` in HU, or ``None``."""
        return self.rule.window

    @property
    def intensity(self):
        """The scaling of images without a window: a mode name or ``[low, high]``."""
        return list(self.rule.scaling) if isinstance(self.rule.scaling, tuple) else self.rule.scaling

    def mode_for(self, img) -> str:
        """The rule applied to ``img``: ``window``, ``uint8``, ``uint16``, ``range``, ``percentile`` or ``minmax``."""
        return self.rule.mode_for(img)

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
                lo, hi = (float(percentile(img, q)) for q in PERCENTILES)
                # A sparse image (over 99 % one value, a few bright pixels) has equal percentiles: MONAI's range
                # scaling would then only shift it (values far outside [-1, 1]); its own min..max is the contrast.
                out = self._minmax(img) if hi <= lo else ScaleIntensityRange(lo, hi, -1.0, 1.0, clip=True)(img)
            elif mode == "minmax":
                out = self._minmax(img)
            else:
                out = self._fixed[mode](img)
            d[key] = out.float() if isinstance(out, torch.Tensor) else torch.as_tensor(out).float()
        return d


def to_hu(image, hu_window="abdomen"):
    """Invert windowing: ``[-1, 1]`` → HU on ``[level − width/2, level + width/2]`` (tensor or array, same type back).
    ``hu_window``: a preset name, ``(width, level)`` or an :class:`IntensityRule` with a window. Values clipped by the
    window cannot be recovered."""
    window = hu_window.window if isinstance(hu_window, IntensityRule) else resolve_hu_window(hu_window)
    if window is None:
        raise ValueError("to_hu needs a CT window (a preset name or (width, level)), got None")
    width, level = window
    return (image + 1.0) * (width / 2.0) + (level - width / 2.0)


def to_uint8(image):
    """``[-1, 1]`` → ``uint8`` 0–255 (rounded, clipped), for PNG export. Tensor or array, same type back."""
    if isinstance(image, torch.Tensor):
        return ((image.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return np.clip(np.rint((np.asarray(image, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
