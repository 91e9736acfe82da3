"""The preprocessing + class contract stored with every model (docs/data.md, "The stored contract").

A generator or classifier is only meaningful on data preprocessed the way its training data was, with
the classes in the same order. :class:`Preprocessing` is that recipe (size, channels, CT window or
intensity rule, orientation); :class:`DataContract` adds the class names. Both are written into
``models/generator/generator.pt`` and ``models/classifier.json``; :func:`check_contract` refuses data or a model
whose contract differs, naming both sides.

:func:`decide_intensity` is the one place where a dataset's intensity handling is chosen: a CT
window only for data known to be CT (the datalist's ``hu_window``/``modality``, or DICOM files whose
``Modality`` is CT), percentile/8-bit scaling for everything else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from .errors import DataError
from .files import image_format
from .intensity import IntensityRule
from .preprocessing import get_transforms

__all__ = [
    "CONTRACT_VERSION",
    "Preprocessing",
    "DataContract",
    "decide_intensity",
    "check_contract",
    "check_class_names",
    "contract_of",
]

#: Version of the stored contract layout (bumped when a rule changes meaning).
CONTRACT_VERSION = 1

#: MONAI's spatial order ([C, x, y], as LoadImaged + EnsureChannelFirstd give it) is the only one used.
ORIENTATION = "monai"


@dataclass(frozen=True)
class Preprocessing:
    """How files become training tensors; equal recipes give equal tensors.

    ``hu_window`` is ``(width, level)`` in HU for CT, else ``None`` and ``intensity`` applies: together they are
    the :class:`~gemix_monai.data.intensity.IntensityRule` :attr:`rule` (a stored record is parsed by it, so a
    window must be decided: ``"auto"`` is refused here). ``mask_channels`` is the number of
    segmentation-mask channels the data yields (0 = no masks; 1 = binary; M = labels 1..M one-hot;
    docs/segmentation.md); a contract stored before masks existed reads as 0.
    """

    image_size: int
    channels: int = 1
    hu_window: tuple[float, float] | None = None
    intensity: Any = "auto"
    keep_aspect: bool = True
    orientation: str = ORIENTATION
    mask_channels: int = 0

    def __post_init__(self):
        if not isinstance(self.image_size, int) or isinstance(self.image_size, bool) or self.image_size < 4:
            raise ValueError(f"image_size must be an integer >= 4, got {self.image_size!r}")
        if not isinstance(self.channels, int) or isinstance(self.channels, bool) or self.channels < 1:
            raise ValueError(f"channels must be a positive integer, got {self.channels!r}")
        rule = IntensityRule.parse(self.hu_window, self.intensity, allow_auto=False)
        object.__setattr__(self, "hu_window", rule.window)
        object.__setattr__(self, "intensity", rule.scaling)
        if self.orientation != ORIENTATION:
            raise ValueError(f"orientation must be {ORIENTATION!r} (MONAI's [C, x, y]), got {self.orientation!r}")
        if not isinstance(self.mask_channels, int) or isinstance(self.mask_channels, bool) or self.mask_channels < 0:
            raise ValueError(f"mask_channels must be a non-negative integer (0 = no masks), got {self.mask_channels!r}")

    @property
    def rule(self) -> IntensityRule:
        """The intensity rule of this recipe (its ``hu_window`` and ``intensity``)."""
        return IntensityRule(self.hu_window, self.intensity)

    def to_dict(self) -> dict:
        return {
            "version": CONTRACT_VERSION,
            "image_size": self.image_size,
            "channels": self.channels,
            "hu_window": list(self.hu_window) if self.hu_window is not None else None,
            "intensity": list(self.intensity) if isinstance(self.intensity, tuple) else self.intensity,
            "keep_aspect": self.keep_aspect,
            "orientation": self.orientation,
            "mask_channels": self.mask_channels,
        }

    @classmethod
    def from_dict(cls, values: Mapping, where: str = "contract") -> "Preprocessing":
        if not isinstance(values, Mapping):
            raise DataError(f"{where}: preprocessing must be a dict, got {type(values).__name__}")
        version = values.get("version", CONTRACT_VERSION)
        if version != CONTRACT_VERSION:
            raise DataError(
                f"{where}: preprocessing contract version {version!r}; this version reads {CONTRACT_VERSION}"
            )
        try:
            return cls(
                image_size=int(values["image_size"]),
                channels=int(values.get("channels", 1)),
                hu_window=values.get("hu_window"),
                intensity=values.get("intensity", "auto"),
                keep_aspect=bool(values.get("keep_aspect", True)),
                orientation=values.get("orientation", ORIENTATION),
                mask_channels=int(values.get("mask_channels", 0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: invalid preprocessing record {dict(values)!r}: {e}") from None

    def describe(self) -> str:
        scaling = self.rule.describe()
        masks = f", {self.mask_channels} mask channel(s)" if self.mask_channels else ""
        return f"{self.image_size}×{self.image_size} px, {self.channels} channel(s){masks}, {scaling}, MONAI orientation [C, x, y]"

    def transforms(self, *, num_classes: int | None = None, **extra):
        """The MONAI ``Compose`` that applies this recipe (extra: slice/box options of ``get_transforms``); with
        ``mask_channels > 0`` an item's ``"mask"`` goes through the mask chain (items without one pass)."""
        if self.mask_channels:
            extra = {"mask_key": "mask", "mask_channels": self.mask_channels, **extra}
        return get_transforms(
            self.image_size,
            rule=self.rule,
            channels=self.channels,
            keep_aspect=self.keep_aspect,
            num_classes=num_classes,
            **extra,
        )


@dataclass(frozen=True)
class DataContract:
    """Class names in label order plus the :class:`Preprocessing` — what every model records."""

    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    reason: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return {
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.to_dict(),
            "preprocessing_reason": self.reason,
        }

    @classmethod
    def from_dict(cls, values: Mapping, where: str = "contract") -> "DataContract":
        names = values.get("class_names")
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
            raise DataError(f"{where}: 'class_names' must be a non-empty list of strings, got {names!r}")
        if "preprocessing" not in values:
            raise DataError(
                f"{where}: no 'preprocessing' record (a model from before the stored contract); "
                "retrain it, or pass the preprocessing explicitly"
            )
        return cls(
            tuple(names),
            Preprocessing.from_dict(values["preprocessing"], where),
            str(values.get("preprocessing_reason", "")),
        )


def contract_of(obj) -> DataContract | None:
    """The contract carried by a dataset, a model's info dict, a generator, or ``None``."""
    if obj is None:
        return None
    if isinstance(obj, DataContract):
        return obj
    found = getattr(obj, "contract", None)
    if isinstance(found, DataContract):
        return found
    if isinstance(found, Mapping):
        return DataContract.from_dict(found)
    if isinstance(obj, Mapping) and "preprocessing" in obj and "class_names" in obj:
        return DataContract.from_dict(obj)
    return None


def check_class_names(expected: Sequence[str], found: Sequence[str], expected_where: str, found_where: str) -> None:
    """Same class names in the same order, else ``DataError`` naming both sides."""
    expected, found = list(expected), list(found)
    if expected == found:
        return
    if sorted(expected) == sorted(found):
        raise DataError(
            f"class order differs: {expected_where} has classes {expected}, {found_where} has {found} "
            "(same names, another order): labels would be silently permuted; give the data the model's "
            "class order (class_names=...)"
        )
    raise DataError(f"classes differ: {expected_where} has {expected}, {found_where} has {found}")


def check_contract(
    model: DataContract, data: DataContract, model_where: str, data_where: str, *, pairs: bool = False
) -> None:
    """The model's stored contract must equal the data's: class names/order and preprocessing.

    ``mask_channels`` (docs/segmentation.md): with ``pairs=False`` (image-only use: classifiers, the mixing
    strategies) one side without masks (0) is compatible with the other, since a mask-carrying generator's
    ``generate`` returns image channels only; two different non-zero counts are refused. With ``pairs=True``
    (image–mask use) both must be equal and non-zero.
    """
    check_class_names(model.class_names, data.class_names, model_where, data_where)
    m, d = model.preprocessing.mask_channels, data.preprocessing.mask_channels
    if pairs and (m == 0 or d == 0):
        which = model_where if m == 0 else data_where
        raise DataError(
            f"image–mask pairs need masks on both sides: {which} has none (mask_channels {m} vs {d}); "
            "train the generator on data with masks (train-gan --masks on) or give the data its masks"
        )
    compared_model, compared_data = model.preprocessing, data.preprocessing
    if not pairs and (m == 0 or d == 0):
        compared_model = replace(compared_model, mask_channels=0)
        compared_data = replace(compared_data, mask_channels=0)
    if compared_model != compared_data:
        a, b = model.preprocessing.to_dict(), data.preprocessing.to_dict()
        diffs = ", ".join(f"{k}: {a[k]!r} vs {b[k]!r}" for k in a if a[k] != b.get(k))
        raise DataError(
            f"preprocessing differs: {model_where} was trained with [{model.preprocessing.describe()}], "
            f"{data_where} is preprocessed with [{data.preprocessing.describe()}] ({diffs}); "
            "pass the model's options (e.g. --hu-window/--intensity/--image-size) or retrain"
        )


def _dicom_is_ct(path: str) -> bool | None:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:
        return None  # validation reports unreadable files with their names
    return ds.get("Modality") == "CT"


def decide_intensity(
    datalist: Mapping, items: Sequence[Mapping], rule: IntensityRule | None = None
) -> tuple[IntensityRule, str]:
    """``(rule, reason)`` for a dataset: ``rule`` (parsed from the options by
    :meth:`IntensityRule.parse <gemix_monai.data.intensity.IntensityRule.parse>`; default: ``hu_window="auto"``)
    with its CT window decided — a window only for data known to be CT.

    Order of evidence: an explicit window in ``rule`` (``hu_window=None``/``"none"`` switches windowing off);
    the datalist's own ``hu_window``; ``modality: "CT"`` in the datalist; the first file being a DICOM
    whose ``Modality`` is CT. Anything else (PNG/JPEG, MR NIfTI, arrays) is scaled by the rule's ``scaling``.
    """
    rule = IntensityRule.parse() if rule is None else rule
    if not rule.window_from_data:
        return rule, ("CT window given explicitly" if rule.window is not None else "no CT window (given explicitly)")
    if "hu_window" in datalist:
        try:
            decided = IntensityRule.parse(datalist["hu_window"], rule.scaling, allow_auto=False)
        except ValueError as e:
            raise DataError(f"the datalist's 'hu_window': {e}") from None
        return decided, "the datalist's own 'hu_window'"
    modality = str(datalist.get("modality", "")).upper()
    if modality == "CT":
        return rule.decided("abdomen"), "the datalist declares modality CT (abdomen window by default)"
    first = next((it.get("image") for it in items if isinstance(it.get("image"), (str, os.PathLike))), None)
    if first is not None and os.path.isfile(first):
        try:
            fmt = image_format(first)
        except DataError:
            fmt = None
        if fmt == "dicom" and _dicom_is_ct(str(first)):
            return rule.decided("abdomen"), f"CT DICOM ({os.path.basename(str(first))}: Modality CT; abdomen window)"
    if modality:
        return rule.decided(None), f"the datalist declares modality {modality} (not CT): intensity scaling"
    return rule.decided(None), "not known to be CT: intensity scaling"
