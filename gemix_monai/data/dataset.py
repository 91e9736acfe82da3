"""One entry point for every source: :func:`get_dataset` and :func:`build_datalist`.

Sources (``source=``):

* ``None`` or ``"phantom"`` — the embedded CT liver-lesion phantoms, generated on first use into
  :func:`default_data_dir` (reused afterwards), windowed with the abdomen window;
* a datalist ``.json`` (MONAI format with ``class_names``);
* a folder of class folders (``<root>/<class>/*`` or ``<root>/<split>/<class>/*``);
* a CSV manifest (``image``, ``label``, optional ``split`` columns);
* a MedMNIST ``.npz``;
* a COVIDx-CT label ``.txt`` (``image_dir=`` the folder of slices; boxes cropped).

Every dataset yields ``{"image": float32 [C, S, S] in [-1, 1], "label": int, ...}`` (MONAI's
orientation), plus ``"mask": float32 [M, S, S]`` in {0, 1} when the datalist has masks
(docs/segmentation.md; ``masks="off"`` drops them), and has ``class_names``, ``contract`` (classes + preprocessing, what every model
records), ``hu_window`` (the window used, or ``None``), ``bad_items`` (what ``on_error="skip"``
dropped) and ``summary`` (the validation summary). The intensity handling follows the data
(docs/data.md): a CT window only for data known to be CT.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from monai.data import CacheDataset, Dataset

from .contract import DataContract, Preprocessing, check_class_names, check_contract, contract_of, decide_intensity
from .covidx import COVIDX_CLASS_NAMES, read_covidx_labels
from .datalist import (
    SPLITS,
    build_datalist_from_csv,
    build_datalist_from_folder,
    canonical_split,
    datalist_from_dict,
    read_datalist,
)
from .errors import DataError
from .intensity import IntensityRule
from .medmnist import load_medmnist_items
from .phantoms import ensure_default_dataset
from .preprocessing import mask_label_map
from .readers import LoadMedicalImaged
from .splits import check_leakage, fixed_split_datalist
from .validate import check_datalist, summarize, validate_items

logger = logging.getLogger(__name__)

__all__ = [
    "default_data_dir",
    "build_datalist",
    "get_dataset",
    "GemixDataset",
    "source_kind",
    "datalist_has_masks",
    "decide_mask_channels",
    "check_split_seed",
]

PHANTOM_SOURCES = (None, "phantom", "phantoms", "default")
MASK_MODES = ("auto", "on", "off")
#: Deciding ``mask_channels`` from the data stops here: more structures must be declared (docs/segmentation.md).
MAX_DECIDED_MASK_CHANNELS = 8


def datalist_has_masks(datalist) -> bool:
    """Whether any entry of any split carries a ``"mask"``."""
    return any("mask" in item for split in SPLITS for item in datalist.get(split, []) if isinstance(item, dict))


def decide_mask_channels(datalist, context: str = "datalist") -> tuple[int, str]:
    """``(M, reason)`` for a datalist with masks, decided once for all its splits (docs/segmentation.md).

    The datalist's own ``"mask_channels"`` if it declares one; otherwise every mask file is read: values within
    {0, 1} are binary (0/255 in an 8-bit PNG counts as 0/1), and integer labels must be exactly ``0..M`` with
    ``M <= 8``; a gap (labels 0, 1, 3) or a larger value (a greyscale mask) is refused, naming a file with it, and
    more structures must be declared (``mask_channels=``).
    """
    import torch

    if "mask_channels" in datalist:
        declared = datalist["mask_channels"]
        if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
            raise DataError(f"{context}: the datalist's 'mask_channels' must be a positive integer, got {declared!r}")
        return declared, "the datalist's own 'mask_channels'"
    loader = LoadMedicalImaged("mask", min_side=1)
    found: dict[int, str] = {}
    for split in SPLITS:
        for item in datalist.get(split, []):
            path = item.get("mask") if isinstance(item, dict) else None
            if path is None or not os.path.isfile(str(path)):
                continue  # validation names missing masks
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    values = torch.unique(mask_label_map(loader.load(path), str(path)))
            except DataError:
                continue  # validation names unreadable masks
            for v in values.tolist():
                found.setdefault(v, str(path))
    labels = sorted(found)
    if not labels:
        return 1, "no readable mask to decide from (binary assumed; validation names the files)"
    if set(labels) <= {0.0, 1.0}:
        return 1, "binary masks (values 0/1 found)"
    bad = [v for v in labels if v != int(v) or v < 0 or v > MAX_DECIDED_MASK_CHANNELS]
    if not bad:  # integer labels: every one of 1..max must occur, else it is not a label map (e.g. 0, 1, 3)
        gaps = [v for v in range(1, int(labels[-1])) if float(v) not in found]
        bad = [v for v in labels if gaps and v > gaps[0]]
    if bad:
        raise DataError(
            f"{context}: mask values {labels[:12]} are neither binary (0/1, or 0/255 in an 8-bit PNG) nor integer "
            f"labels 0..M with every label present and M <= {MAX_DECIDED_MASK_CHANNELS}: e.g. {bad[0]:g} in "
            f"{found[bad[0]]}; fix the masks, or pass mask_channels= (or add 'mask_channels' to the datalist) for a "
            "label map with more structures or absent labels"
        )
    return int(labels[-1]), f"labels 0..{int(labels[-1])} found in the masks"


def default_data_dir() -> Path:
    """Where the default phantoms live: ``$GEMIX_DATA_DIR`` or ``~/.cache/gemix_monai``."""
    return Path(os.environ.get("GEMIX_DATA_DIR") or Path.home() / ".cache" / "gemix_monai")


def default_phantom_datalist(image_size: int = 64, seed: int = 0, fmt: str = "nifti", data_dir=None) -> Path:
    """Datalist of the default phantom dataset for ``image_size``, generating it once (under a file
    lock, so parallel workers do not race)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    out_dir = root / f"phantoms_{image_size}px_seed{seed}_{fmt}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ensure_default_dataset(out_dir, image_size=image_size, seed=seed, fmt=fmt)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_split_seed(split_seed) -> int:
    """``split_seed`` must be a non-negative integer (numpy's generators refuse negative seeds)."""
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or int(split_seed) < 0:
        raise DataError(f"split_seed (--split-seed) must be a non-negative integer, got {split_seed!r}")
    return int(split_seed)


def source_kind(source) -> str:
    """``"phantom"``, ``"datalist"`` (a file, or a datalist dict in memory), ``"folder"``, ``"csv"``, ``"medmnist"`` or
    ``"covidx"``."""
    if isinstance(source, dict):
        return "datalist"
    if source in PHANTOM_SOURCES:
        return "phantom"
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"dataset source does not exist: {path} (expected a folder of class folders, a .json datalist, "
            "a .csv manifest, a .npz MedMNIST file or a .txt COVIDx-CT label file)"
        )
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    kinds = {".json": "datalist", ".csv": "csv", ".npz": "medmnist", ".txt": "covidx"}
    if suffix not in kinds:
        raise DataError(
            f"source {source!r}: expected 'phantom', a folder, or a .json datalist, .csv manifest, "
            ".npz MedMNIST file or .txt COVIDx-CT label file"
        )
    return kinds[suffix]


def build_datalist(
    source=None,
    *,
    image_size: int = 64,
    split_seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    class_names: Sequence[str] | None = None,
    image_dir=None,
    data_dir=None,
    on_error: str = "raise",
    split_dir=None,
    near_duplicates=None,
    **csv_kwargs,
) -> dict:
    """Datalist dict (absolute image paths) for a file-based source: phantom, datalist JSON, folder,
    CSV or COVIDx-CT labels (all of a COVIDx file goes to ``"training"``; split with separate files).

    Folders and CSVs without their own split are split once with ``split_seed`` — copies of one image (and with
    ``near_duplicates`` near-identical images) in one split — and the split is kept on disk
    (:func:`gemix_monai.data.splits.fixed_split_datalist`: beside the data, else under ``split_dir``, the caller's
    run folder, else under ``data_dir``). The default phantoms are generated with ``split_seed`` as their dataset
    seed: the training seed never changes the data. A relative ``source`` is made absolute once, here.
    """
    check_split_seed(split_seed)
    if isinstance(source, dict):
        return datalist_from_dict(source)
    if source not in PHANTOM_SOURCES:
        source = os.path.abspath(source)
    kind = source_kind(source)
    fallback = Path(data_dir) if data_dir is not None else default_data_dir()
    if kind == "phantom":
        return read_datalist(default_phantom_datalist(image_size, split_seed, data_dir=data_dir))
    if kind == "datalist":
        return read_datalist(source)
    if kind in ("folder", "csv"):
        # split once with split_seed, then the stored split is reused (gemix_monai.data.splits)
        build, options = (
            (build_datalist_from_folder, {"on_error": on_error})
            if kind == "folder"
            else (build_datalist_from_csv, csv_kwargs)
        )
        split = dict(val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed)
        return fixed_split_datalist(
            source,
            lambda: build(source, class_names=class_names, near_duplicates=near_duplicates, **split, **options),
            split_seed=split_seed,
            fallback_dir=fallback,
            split_dir=split_dir,
        )
    if kind == "covidx":
        names = list(class_names or COVIDX_CLASS_NAMES)
        # COVIDx-CT slices are 8-bit PNGs already windowed by the dataset's authors: no HU window.
        return {
            "class_names": names,
            "modality": "CT",
            "hu_window": None,
            "training": read_covidx_labels(source, image_dir, class_names=names),
            "validation": [],
            "test": [],
        }
    raise DataError(f"{source}: a MedMNIST .npz holds arrays, not files; use get_dataset({str(source)!r}, split)")


def _without_masks(items):
    return [{k: v for k, v in it.items() if k != "mask"} if isinstance(it, dict) else it for it in items]


def _mask_channels(datalist, masks, given, model_contract, context) -> tuple[int, str]:
    """``(M, reason)`` for :func:`get_dataset`'s ``masks``/``mask_channels`` options (0 = no masks)."""
    if masks not in MASK_MODES:
        raise ValueError(f"masks must be one of {MASK_MODES}, got {masks!r}")
    if given is not None and (isinstance(given, bool) or not isinstance(given, int) or given < 0):
        raise ValueError(f"mask_channels must be a non-negative integer, got {given!r}")
    has = datalist_has_masks(datalist)
    stored = model_contract.preprocessing.mask_channels if model_contract is not None else None
    if masks == "off" or given == 0:
        return 0, ""
    if masks == "auto" and (not has or stored == 0):
        return 0, ""  # a model without masks reads the images only
    if not has:
        raise DataError(
            f"{context}: masks='on' but no entry has a 'mask' (datalist key 'mask' or 'label_mask', CSV column "
            "'mask', or <stem>_mask.<ext> beside each image in class folders)"
        )
    if given is not None:
        return given, "given"
    if stored:
        return stored, "the model's contract"
    return decide_mask_channels(datalist, context)


class _GemixDatasetMixin:
    def _set_facts(self, data, *, class_names, contract, bad_items, source, split, summary):
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.contract = contract
        self.preprocessing = contract.preprocessing
        self.hu_window = contract.preprocessing.hu_window
        self.bad_items = list(bad_items)
        self.source = source
        self.split = split
        self.summary = summary
        self.labels = [int(d["label"]) for d in data]


class GemixDataset(_GemixDatasetMixin, Dataset):
    """``monai.data.Dataset`` with the facts other layers need: ``class_names``, ``num_classes``,
    ``contract`` (:class:`~gemix_monai.data.contract.DataContract`: classes + preprocessing, what models
    record), ``preprocessing``, ``hu_window``, ``labels`` (one int per item), ``bad_items``, ``source``,
    ``summary`` (the validation summary)."""

    def __init__(self, data, transform, **facts):
        Dataset.__init__(self, data, transform)
        self._set_facts(data, **facts)


class GemixCacheDataset(_GemixDatasetMixin, CacheDataset):
    """As :class:`GemixDataset`, caching the deterministic preprocessing in memory."""

    def __init__(self, data, transform, num_workers=0, **facts):
        CacheDataset.__init__(self, data, transform, num_workers=num_workers, progress=False)
        self._set_facts(data, **facts)


def get_dataset(
    source=None,
    split: str = "training",
    image_size: int | None = None,
    *,
    hu_window="auto",
    intensity="auto",
    channels: int | None = None,
    slice_index: int | None = None,
    slice_mask_key: str | None = None,
    on_error: str = "raise",
    validate: str = "full",
    deep_validate: bool | None = None,
    on_duplicate: str = "error",
    cache: bool = False,
    split_seed: int = 0,
    class_names: Sequence[str] | None = None,
    image_dir=None,
    data_dir=None,
    contract=None,
    transform=None,
    masks: str = "auto",
    mask_channels: int | None = None,
    split_dir=None,
    near_duplicates=None,
    **source_kwargs,
):
    """A MONAI dataset of one split of ``source``, validated up front, yielding the training stream.

    Args:
        source: see the module docstring; ``None`` = the default phantoms.
        split: ``"training"``/``"train"``, ``"validation"``/``"val"`` or ``"test"``.
        image_size: output side (default: the model contract's, else 64).
        hu_window: ``"auto"`` — decided from the data (:func:`~gemix_monai.data.contract.decide_intensity`:
            a CT window only for data known to be CT) —, a preset name, ``(width, level)``, or ``None``/``"none"``.
        intensity: scaling of non-CT data (``"auto"``: 8-bit files by 0..255, else per-image percentiles).
            Both are parsed once, here, into an :class:`~gemix_monai.data.intensity.IntensityRule` (a word it does
            not know is a ``ValueError`` naming the option and the value).
        channels: output channels (default: the contract's, else 1); slice_index, slice_mask_key: see
            :func:`get_transforms`.
        on_error: ``"raise"`` (default) or ``"skip"`` bad entries and files (listed in ``dataset.bad_items``).
        validate: ``"full"`` (default: decode every image, finite values, shape), ``"headers"`` (cheap
            checks only) or ``"none"``. ``deep_validate`` (older name): ``True`` = full, ``False`` = headers.
        on_duplicate: ``"error"`` (default) — an image in two splits or with two labels stops the run;
            ``"drop"`` — held-out copies of training images are removed and reported.
        cache: keep preprocessed items in memory (``CacheDataset``).
        split_seed: seed of the split of folders/CSVs without their own (written once, then reused) and
            of the default phantoms. The training seed never enters here.
        class_names, image_dir, data_dir, **source_kwargs: passed to the source readers.
        contract: a model's :class:`~gemix_monai.data.contract.DataContract` (or its dict): the data
            must have the same classes in the same order and the same preprocessing (sizes default to
            the contract's); a difference raises naming both.
        transform: replace the default preprocessing entirely (the dataset's contract then describes
            the options given here, not your transform).
        masks: ``"auto"`` (default) — items carry ``"mask"`` when the datalist has masks (with a model
            ``contract``: when the contract has them); ``"on"`` — masks required; ``"off"`` — ignored.
        mask_channels: ``M`` of the masks (docs/segmentation.md); default the contract's, else
            :func:`decide_mask_channels`.
        split_dir: the run's own output folder (bundle root, output dir): where the split of a folder/CSV is kept
            when the data folder cannot be written (read-only mount); looked up there on later runs. The summary
            names the split file and why it is where it is.
        near_duplicates: also keep near-identical images (perceptual hash within ``True`` = 4 bits, or the given
            number of bits of 64; docs/data.md, "Splits") in one split when a folder/CSV is split automatically.
            Byte-identical copies are always kept together.

    Every check is made whatever ``split`` is asked for, so ``gemix-monai validate`` refuses exactly what training
    refuses: the datalist's class names (:func:`~gemix_monai.data.validate.check_datalist`), leakage, and each
    image decoded and run through the preprocessing (``validate="full"``). A class with no image in a validation or
    test split is a warning naming it (its metrics are undefined), kept in ``summary["absent_classes"]``.
    """
    if "seed" in source_kwargs:
        raise TypeError(
            "get_dataset(seed=...) no longer exists: the training seed must not change the split; "
            "use split_seed= for the split (and the phantoms' dataset seed)"
        )
    split = canonical_split(split)
    check_split_seed(split_seed)
    if not isinstance(source, dict) and source not in PHANTOM_SOURCES:
        source = os.path.abspath(source)  # relative paths are resolved once, against the working folder now
    model_contract = _model_contract(contract)
    image_size, channels = _sizes(image_size, channels, model_contract)
    validate = _validation_mode(validate, deep_validate)
    rule = IntensityRule.parse(hu_window, intensity)  # the options' words, read once (docs/data.md)
    kind = source_kind(source)
    reader_options = dict(class_names=class_names, image_dir=image_dir, data_dir=data_dir, on_error=on_error)
    reader_options.update(split_dir=split_dir, near_duplicates=near_duplicates, **source_kwargs)
    datalist, context = _read_source(source, kind, split, image_size, split_seed, reader_options)
    names = datalist["class_names"]
    datalist = _checked_datalist(datalist, kind, context, class_names, on_duplicate)
    mask_channels, mask_reason = _mask_channels(datalist, masks, mask_channels, model_contract, context)
    if not mask_channels:
        datalist = {k: _without_masks(v) if k in SPLITS else v for k, v in datalist.items()}
    items = datalist.get(split, [])
    sizes = dict(image_size=image_size, channels=channels, mask_channels=mask_channels)
    data_contract = _data_contract(datalist, items, names, rule, sizes, mask_reason, context)
    if model_contract is not None:
        check_contract(model_contract, data_contract, "the model", context)
    own_transform = transform is None
    if own_transform:
        box_key = "box" if kind == "covidx" else None
        options = dict(slice_index=slice_index, slice_mask_key=slice_mask_key, box_key=box_key)
        transform = data_contract.preprocessing.transforms(num_classes=len(names), **options)
    allow_volumes = slice_index is not None or slice_mask_key is not None
    checked_by = transform if own_transform else None
    good, problems, stats = _validated(
        items, split, data_contract, validate, on_error, context, allow_volumes, checked_by
    )
    problems = [tuple(p) for p in datalist.get("skipped", [])] + list(problems)
    summary = _summary(datalist, context, split, good, stats, problems, data_contract)
    facts = dict(class_names=names, contract=data_contract, bad_items=problems, split=split, summary=summary)
    facts["source"] = "phantom" if kind == "phantom" else context if isinstance(source, dict) else str(source)
    return GemixCacheDataset(good, transform, **facts) if cache else GemixDataset(good, transform, **facts)


def _model_contract(contract) -> DataContract | None:
    """The model's contract given to :func:`get_dataset` (a :class:`DataContract` or its dict), or ``None``."""
    model_contract = contract_of(contract) if contract is not None else None
    if contract is not None and model_contract is None:
        raise TypeError(f"contract must be a DataContract or its dict, got {type(contract).__name__}")
    return model_contract


def _sizes(image_size, channels, model_contract) -> tuple:
    """``(image_size, channels)``: as given, else the model contract's, else 64 and 1."""
    if model_contract is not None:
        image_size = image_size if image_size is not None else model_contract.preprocessing.image_size
        channels = channels if channels is not None else model_contract.preprocessing.channels
    return (64 if image_size is None else image_size), (1 if channels is None else channels)


def _validation_mode(validate: str, deep_validate: bool | None) -> str:
    """``"full"``, ``"headers"`` or ``"none"`` (``deep_validate``, the older name, wins when given)."""
    if deep_validate is not None:
        validate = "full" if deep_validate else "headers"
    if validate not in ("full", "headers", "none"):
        raise ValueError(f"validate must be 'full', 'headers' or 'none', got {validate!r}")
    return validate


def _read_source(source, kind: str, split: str, image_size: int, split_seed: int, options: dict) -> tuple[dict, str]:
    """``(datalist, context)`` of ``source``: a MedMNIST file read split by split (every split: the leakage check
    compares them; only the asked one must exist), anything else through :func:`build_datalist`."""
    if kind != "medmnist":
        datalist = build_datalist(source, image_size=image_size, split_seed=split_seed, **options)
        if isinstance(source, dict):  # items given in memory (MONAI Label's BundleTrainTask): no path to name
            return datalist, f"datalist given ({sum(len(datalist.get(k, [])) for k in SPLITS)} items)"
        return datalist, f"{kind} {source if source is not None else 'phantom (default)'}"
    datalist = {}
    for each in SPLITS:
        try:
            datalist[each], names = load_medmnist_items(source, each, class_names=options.get("class_names"))
        except DataError:
            if each == split:
                raise
            datalist[each] = []
    datalist["class_names"] = names
    return datalist, f"MedMNIST {source}"


def _checked_datalist(datalist: dict, kind: str, context: str, class_names, on_duplicate: str) -> dict:
    """The checks of the whole datalist, whatever split is asked for: the class names given match a datalist's,
    :func:`check_datalist`, and leakage (:func:`check_leakage`; ``on_duplicate="drop"`` returns the datalist without
    the held-out copies)."""
    if class_names is not None and kind in ("phantom", "datalist"):
        check_class_names(class_names, datalist["class_names"], "class_names given", context)
    check_datalist(datalist, context, every_class_trained=kind in ("phantom", "datalist", "folder", "csv"))
    try:
        return check_leakage(datalist, on_duplicate=on_duplicate, context=context)
    except DataError as e:
        if "split_file" in datalist and "split" in datalist and "leaks between splits" in str(e):
            raise DataError(
                f"{e}\nThe split in {datalist['split_file']} was drawn by an older version that did not keep copies "
                "together; delete it to split again (models trained on the old split may then have seen new test images)"
            ) from None
        raise


def _data_contract(datalist, items, names, rule: IntensityRule, sizes: dict, mask_reason: str, context: str):
    """The data's :class:`DataContract`: its classes and the preprocessing of ``sizes`` (``image_size``,
    ``channels``, ``mask_channels``) with ``rule``'s window decided from the data (:func:`decide_intensity`); its
    reason says why (and how the mask channels were decided)."""
    rule, reason = decide_intensity(datalist, items, rule)
    if mask_reason:
        reason = f"{reason}; {sizes['mask_channels']} mask channel(s): {mask_reason}"
    try:
        preprocessing = Preprocessing(**sizes, hu_window=rule.window, intensity=rule.scaling)
    except ValueError as e:
        raise DataError(f"{context}: {e}") from None
    return DataContract(tuple(names), preprocessing, reason)


def _absent_classes(good: list, names, split: str, context: str) -> list[str]:
    """The classes without an image in a validation or test split, each named in a warning (their metrics are
    undefined, not 0); ``[]`` for training."""
    if split == "training" or not good:
        return []
    present = {int(it["label"]) for it in good}
    absent = [n for k, n in enumerate(names) if k not in present]
    if absent:
        message = (
            f"{context} [{split}]: no image of class(es) {absent} ({len(good)} images): their {split} metrics "
            "are undefined, not 0"
        )
        logger.warning("%s", message)
        warnings.warn(message, stacklevel=4)  # get_dataset's caller
    return absent


def _validated(items, split, data_contract, validate, on_error, context, allow_volumes, transform):
    """``(good items, problems, stats)`` of the split by :func:`validate_items` with the dataset's options
    (``validate``: ``"full"`` decodes every image and runs it through ``transform``, ``"headers"`` reads headers,
    ``"none"`` checks the entries only)."""
    return validate_items(
        items,
        num_classes=len(data_contract.class_names),
        split=split,
        deep=validate == "full",
        check_files=validate != "none",
        allow_volumes=allow_volumes,
        on_error=on_error,
        context=context,
        preprocessing=data_contract.preprocessing,
        return_stats=True,
        mask_channels=data_contract.preprocessing.mask_channels,
        transform=transform,
    )


def _summary(datalist, context, split, good, stats, problems, data_contract) -> dict:
    """The split's validation summary (:func:`summarize`), logged: counts, formats, the preprocessing and why, the
    split file, duplicate groups, absent classes and skipped entries."""
    names = list(data_contract.class_names)
    absent = _absent_classes(good, names, split, context)
    summary = summarize(
        context,
        split,
        names,
        good,
        stats,
        problems,
        data_contract,
        split_file=datalist.get("split_file"),
        dropped=datalist.get("dropped_duplicates", []),
        split_note=datalist.get("split_note"),
        groups=datalist.get("duplicate_groups", []),
        absent=absent,
    )
    logger.info("%s", summary["text"])
    return summary
