"""Folder classification: every image under a folder through a trained classifier into one CSV.

:func:`classify_folder` is the programmatic twin of the bundle's ``inference.json`` (which ``gemix-monai classify
INPUT_DIR`` runs): the same image discovery (:func:`find_images`), the same preprocessing (the contract recorded in
``classifier.json``, :func:`classifier_transform`) and the same CSV writer
(:func:`gemix_monai.handlers.classifier.write_predictions_csv`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from monai.data import DataLoader
from monai.data import Dataset as MonaiDataset

from gemix_monai.data.contract import contract_of
from gemix_monai.handlers.classifier import write_predictions_csv
from gemix_monai.metrics.clinical import validate_class_names
from gemix_monai.networks.classifiers import (
    CHECKPOINT_INFO_NAME,
    check_checkpoint_fits,
    classifier_weights,
    load_classifier,
    read_classifier_info,
)
from gemix_monai.utils import atomic_write_bytes, resolve_device

__all__ = [
    "DEFAULT_CLASSIFY_PREPROCESSING",
    "find_images",
    "classifier_transform",
    "stored_preprocessing",
    "declared_format",
    "preprocessing_values",
    "check_classify_inputs",
    "classify_datalist",
    "check_classify_run",
    "check_evaluate_run",
    "classify_folder",
]

logger = logging.getLogger(__name__)

#: Preprocessing of :func:`classify_folder` when ``classifier.json`` records none and the caller gives none
#: (the bundle's defaults: 32 px, abdomen CT window).
DEFAULT_CLASSIFY_PREPROCESSING = {"image_size": 32, "hu_window": "abdomen", "intensity": "auto"}


def _image_suffixes() -> list[str]:
    from gemix_monai.data.files import IMAGE_SUFFIXES

    return sorted(s for s in IMAGE_SUFFIXES if s)  # "" (suffix-less DICOM) would match every file


def find_images(input_dir: str | os.PathLike) -> list[Path]:
    """Every image under ``input_dir``: :func:`gemix_monai.data.discover_images`, the one rule training, validation and
    classification share (recursive; suffixes of ``IMAGE_SUFFIXES`` in any letter case, ``.nii.gz`` included, and
    DICOM files of any name; hidden files and folders, the ``.img`` of an Analyze pair and a mask ``<stem>_mask.<ext>``
    beside its image ``<stem>.<ext'>`` left out; files that are not images logged; dangling links and loops refused)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder not found: {root}")
    from gemix_monai.data.discover import discover_images

    return discover_images(root)


def _classify_transform(info: Mapping, fallback: Mapping | None = None):
    """The preprocessing of :func:`classify_folder` for a classifier described by ``info`` (its classifier.json).

    ``info["preprocessing"]`` (a dict of :func:`gemix_monai.data.get_transforms` keyword arguments recorded
    at training) wins; otherwise ``fallback`` (the caller's settings, e.g. the bundle config's), otherwise
    :data:`DEFAULT_CLASSIFY_PREPROCESSING`. ``channels`` is the network's ``in_channels`` unless recorded.
    """
    from gemix_monai.data import get_transforms

    stored = contract_of(info.get("contract")) if info.get("contract") else None
    if stored is not None:  # the contract recorded at training (docs/data.md) wins over any setting
        return stored.preprocessing.transforms(num_classes=len(stored.class_names))
    recorded = info.get("preprocessing")
    if recorded is not None and not isinstance(recorded, Mapping):
        raise ValueError(
            f"classifier.json 'preprocessing' must be a dict of get_transforms arguments, got {recorded!r}"
        )
    kwargs = dict(DEFAULT_CLASSIFY_PREPROCESSING)
    kwargs.update(fallback or {})
    kwargs["channels"] = int(info["in_channels"])
    kwargs.update(recorded or {})
    return get_transforms(**kwargs)


def check_classify_inputs(checkpoint, input_dir, output_csv, *, overwrite: bool = False) -> list[Path]:
    """What folder classification needs before any work: the checkpoint and its ``classifier.json``, an output CSV
    that may be written, and at least one image under ``input_dir``; returns the images (:func:`find_images`).

    Raises ``ValueError`` for an unset argument, ``FileExistsError`` for an existing CSV without ``overwrite``,
    ``FileNotFoundError`` naming a missing folder, checkpoint or ``classifier.json``, ``ValueError`` when the
    folder holds no supported image (naming it and the suffixes looked for).
    """
    for name, value in (("checkpoint", checkpoint), ("input_dir", input_dir), ("output_csv", output_csv)):
        if value is None:
            raise ValueError(f"classify: {name} is not set (bundle: set dataset_dir, ckpt_path and predictions_csv)")
    checkpoint, output_csv = Path(checkpoint), Path(output_csv)
    if output_csv.exists() and not overwrite:
        raise FileExistsError(
            f"{output_csv} already exists; pass overwrite=True (command line: --overwrite) to replace it, "
            "or choose another output file"
        )
    if not checkpoint.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {checkpoint}")
    classifier_weights(checkpoint)  # a generator's checkpoint given here says so before "no classifier.json"
    info_path = checkpoint.with_name(CHECKPOINT_INFO_NAME)
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: classification takes the network, class count and class names "
            f"from the {CHECKPOINT_INFO_NAME} that training writes beside {checkpoint.name}"
        )
    files = find_images(input_dir)
    if not files:
        raise ValueError(
            f"no images to classify in {input_dir} (searched recursively, any letter case, for "
            f"{', '.join(_image_suffixes())})"
        )
    return files


def unreadable_path(output_csv) -> Path:
    """Where a classification lists the files it could not read: ``<predictions>_unreadable.csv`` beside the CSV."""
    output_csv = Path(output_csv)
    return output_csv.with_name(f"{output_csv.stem}_unreadable.csv")


def readable_images(files: Sequence[Path], transform, output_csv) -> list[Path]:
    """The ``files`` that ``transform`` reads and prepares; the others (a zero-byte or truncated image, a text file
    named like an image, ...) are listed with the reason in :func:`unreadable_path` (removed when all are read), so
    the images that can be classified still are, and the command then says which could not (docs/data.md).

    Each file first gets the data layer's header checks (:func:`~gemix_monai.data.readers.check_header`: one page,
    the smallest side, a usable DICOM rescale), because a stock ``LoadImaged`` chain (the bundle's
    ``preprocessing``) would read page 1 of a multi-page TIFF or a blank slope-0 DICOM without a word; a reader's
    own failure is reported as an ``ImageReadError`` naming the file."""
    from gemix_monai.data.errors import DataError
    from gemix_monai.data.files import image_format
    from gemix_monai.data.readers import check_header
    from gemix_monai.handlers.classifier import printable_name

    good, bad = [], []
    for f in files:
        try:
            check_header(str(f), image_format(f))
            image = torch.as_tensor(transform({"image": str(f)})["image"])
            if not bool(torch.isfinite(image).all()):  # the stock chain passes NaN through its clipped scaling
                raise DataError(f"{f}: {int((~torch.isfinite(image)).sum())} voxels are NaN or infinite")
            good.append(f)
        except Exception as e:  # noqa: BLE001 - any failure to read one file is reported, not fatal to the rest
            cause = e
            while cause.__cause__ is not None:  # MONAI wraps the reader's error in "applying transform ..."
                cause = cause.__cause__
            if isinstance(cause, DataError):
                reason = f"{type(cause).__name__}: {cause}"
                if not str(cause).startswith(str(f)):
                    reason = f"{type(cause).__name__}: {f}: {cause}"
            else:
                reason = f"ImageReadError: {f}: unreadable image ({type(cause).__name__}: {cause})"
            bad.append((printable_name(str(f)), reason.splitlines()[0]))
    listing = unreadable_path(output_csv)
    if bad:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["filename", "reason"])
        writer.writerows(bad)
        atomic_write_bytes(listing, buf.getvalue().encode())
        logger.warning("%d of %d files could not be read; listed in %s", len(bad), len(files), listing)
    else:
        listing.unlink(missing_ok=True)
    if not good:
        raise ValueError(f"none of the {len(files)} files under the input folder could be read (listed in {listing})")
    return good


def declared_format(bundle_root) -> dict:
    """``{"in_channels", "num_classes", "class_names"}`` as ``configs/metadata.json``'s ``network_data_format``
    declares them (``image`` input, ``pred`` output): what inference.json builds before a model exists. Read from the
    file, not through ``@_meta_`` references, because MONAI Label parses inference.json without the metadata;
    ``{}`` when there is no such file (a ``bundle_root`` that is not the bundle folder)."""
    import json

    path = Path(bundle_root) / "configs" / "metadata.json"
    if not path.is_file():
        return {}
    fmt = json.loads(path.read_text(encoding="utf-8"))["network_data_format"]
    image, pred = fmt["inputs"]["image"], fmt["outputs"]["pred"]
    channel_def = pred["channel_def"]
    return {
        "in_channels": int(image["num_channels"]),
        "num_classes": int(pred["num_channels"]),
        "class_names": [channel_def[str(i)] for i in range(len(channel_def))],
    }


def classify_datalist(input_dir, output_csv=None, transform=None) -> list[dict]:
    """inference.json's datalist: ``[{"image": path}, ...]`` of every image under ``input_dir`` (:func:`find_images`),
    and ``[]`` while ``input_dir`` is unset or not a folder, so that the workflow builds — and MONAI's
    ``check_properties`` and MONAI Label run — before any data exists. With ``transform`` and ``output_csv``, only the
    images ``transform`` can read (:func:`readable_images` lists the others beside ``output_csv``). What is missing
    is reported at ``run`` (:func:`check_classify_run`), with the messages of ``gemix-monai classify``."""
    if input_dir is None or not Path(input_dir).is_dir():
        return []
    files = find_images(input_dir)
    if files and transform is not None and output_csv is not None:
        files = readable_images(files, transform, output_csv)
    return [{"image": str(f)} for f in files]


def check_classify_run(
    checkpoint, input_dir, output_csv, network: torch.nn.Module, datalist, *, overwrite=False, transform=None
) -> None:
    """What inference.json's ``run`` checks before its evaluator starts: :func:`check_classify_inputs` (the
    checkpoint and its ``classifier.json``, an output CSV that may be written, at least one image: the one-line
    messages of ``gemix-monai classify``), the checkpoint fitting ``network``
    (:func:`~gemix_monai.networks.classifiers.check_checkpoint_fits`), and the images found now being the ones the
    workflow was built with (a folder filled after ``initialize`` needs a new workflow); with ``transform``, the
    readable ones (:func:`readable_images`)."""
    files = check_classify_inputs(checkpoint, input_dir, output_csv, overwrite=overwrite)
    if transform is not None:
        files = readable_images(files, transform, output_csv)
    check_checkpoint_fits(network, checkpoint)
    if [str(f) for f in files] != [d["image"] for d in datalist]:
        raise ValueError(
            f"the images under {input_dir} changed after the workflow was built ({len(datalist)} then, {len(files)} "
            "now): initialize the workflow again"
        )


def check_evaluate_run(checkpoint, network: torch.nn.Module) -> None:
    """What evaluate.json's ``run`` checks before its evaluator starts: the checkpoint exists and fits ``network``
    (its messages name the file and the network's channels and classes)."""
    if checkpoint is None:
        raise ValueError("evaluate: ckpt_path is not set (bundle: set ckpt_path; command line: --ckpt-path)")
    check_checkpoint_fits(network, checkpoint)


def classify_folder(
    checkpoint: str | os.PathLike,
    input_dir: str | os.PathLike,
    output_csv: str | os.PathLike,
    *,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 32,
    transform: Callable | None = None,
    preprocessing: Mapping | None = None,
) -> Path:
    """Classify every image under ``input_dir`` with ``checkpoint`` (``model.pt`` + ``classifier.json``); write a CSV.

    The CSV has a header ``filename, predicted_class, p(<class name>)...`` (one probability column per class of
    the checkpoint, softmax, in label order) and one row per image, ``filename`` relative to ``input_dir``. Images are
    found by :func:`find_images`; the class count, names, input channels and network come from ``classifier.json``.

    Args:
        transform: preprocessing of ``{"image": path}`` items; default :func:`_classify_transform` (the record in
            ``classifier.json``, else ``preprocessing`` — ``get_transforms`` keyword arguments — else the defaults).
        overwrite: replace an existing ``output_csv`` (otherwise a ``FileExistsError`` naming it).

    Raises ``FileNotFoundError`` for a missing folder, checkpoint or ``classifier.json``, ``FileExistsError`` for an
    existing CSV without ``overwrite``, ``ValueError`` when the folder holds no supported image (naming it and the
    suffixes looked for) or the checkpoint does not fit its description. Files that cannot be read are left out and
    listed with the reason in ``<output stem>_unreadable.csv`` (:func:`readable_images`); the CSV of the others is
    written atomically at the end.
    """
    files = check_classify_inputs(checkpoint, input_dir, output_csv, overwrite=overwrite)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    checkpoint, input_dir, output_csv = Path(checkpoint), Path(input_dir), Path(output_csv)
    info_path = checkpoint.with_name(CHECKPOINT_INFO_NAME)
    device = resolve_device(device)
    net, info = load_classifier(checkpoint, device=device)
    k = int(info["num_classes"])
    names = validate_class_names(k, info.get("class_names"))
    tf = transform if transform is not None else _classify_transform(info, preprocessing)
    files = readable_images(files, tf, output_csv)
    logger.info("classifying %d images under %s with %s (%d classes)", len(files), input_dir, checkpoint, k)

    # The programmatic twin of the bundle's inference.json (SupervisedEvaluator + CheckpointLoader +
    # ClassificationCSVWriter): a plain loop, the same preprocessing and the same CSV writer.
    loader = DataLoader(
        MonaiDataset([{"image": str(f)} for f in files], tf), batch_size=batch_size, shuffle=False, num_workers=0
    )
    probs = []
    net.eval()
    with torch.no_grad():
        for batch in loader:
            x = torch.as_tensor(batch["image"]).to(device=device, dtype=torch.float32)
            logits = net(x)
            if logits.ndim != 2 or logits.shape[1] != k:
                raise ValueError(
                    f"{checkpoint}: the network returns shape {tuple(logits.shape)}, expected [N, {k}] "
                    f"(num_classes in {info_path})"
                )
            probs.append(torch.softmax(logits.float(), dim=1).cpu())
    write_predictions_csv(
        output_csv, [f.relative_to(input_dir).as_posix() for f in files], torch.cat(probs), names, where=str(checkpoint)
    )
    logger.info("wrote %s", output_csv)
    return output_csv


def stored_preprocessing(
    checkpoint: str | os.PathLike, *, image_size=None, hu_window="auto", intensity="auto", channels=None
):
    """The :class:`~gemix_monai.data.contract.Preprocessing` a classifier was trained with (its stored contract).

    Explicit options that differ from the stored contract raise naming both; without a stored contract (no model
    yet, or an older one) the options are used as given, ``image_size`` defaulting to 32 and ``hu_window="auto"``
    meaning no CT window. ``hu_window`` and ``intensity`` are parsed once into an
    :class:`~gemix_monai.data.intensity.IntensityRule`.
    """
    from gemix_monai.data.contract import Preprocessing
    from gemix_monai.data.intensity import IntensityRule

    info = read_classifier_info(checkpoint)
    rule = IntensityRule.parse(hu_window, intensity)
    stored = contract_of(info.get("contract")) if info.get("contract") else None
    if stored is None:
        return Preprocessing(
            image_size=int(image_size or 32),
            channels=int(channels or info.get("in_channels") or 1),
            hu_window=rule.window,
            intensity=rule.scaling,
        )
    pp = stored.preprocessing
    explicit = {k: v for k, v in {"image_size": image_size, "channels": channels}.items() if v is not None}
    explicit.update(rule.overrides())  # a window, a scaling other than "auto"
    if explicit:
        wanted = Preprocessing(
            **{**{k: getattr(pp, k) for k in ("image_size", "channels", "hu_window", "intensity")}, **explicit}
        )
        if wanted != pp:
            raise ValueError(
                f"classifier {checkpoint} was trained with [{pp.describe()}]; the options given ask for "
                f"[{wanted.describe()}]: leave them out to use the stored preprocessing"
            )
    return pp


def classifier_transform(
    checkpoint: str | os.PathLike, *, image_size=None, hu_window="auto", intensity="auto", channels=None
):
    """The project's preprocessing chain (:func:`gemix_monai.data.get_transforms`) of :func:`stored_preprocessing`:
    what :func:`classify_folder` applies; inference.json writes the same steps as MONAI components
    (:func:`preprocessing_values`)."""
    pp = stored_preprocessing(
        checkpoint, image_size=image_size, hu_window=hu_window, intensity=intensity, channels=channels
    )
    info = read_classifier_info(checkpoint)
    stored = contract_of(info.get("contract")) if info.get("contract") else None
    return pp.transforms(num_classes=len(stored.class_names) if stored is not None else info.get("num_classes"))


def preprocessing_values(
    checkpoint: str | os.PathLike, *, image_size=None, hu_window="auto", intensity="auto", channels=None
) -> dict:
    """The values inference.json's ``preprocessing`` components take from the stored contract
    (:func:`stored_preprocessing`): ``image_size``, ``channels``, ``keep_aspect``, ``intensity_rule`` and the
    rule's values.

    ``intensity_rule`` is ``"range"`` (a CT window in HU, ``uint8``, ``uint16`` or a fixed ``(low, high)``:
    ``ScaleIntensityRanged(a_min, a_max) → [-1, 1]``), ``"percentile"`` (``ScaleIntensityRangePercentilesd(lower,
    upper) → [-1, 1]``) or ``"per-file"`` (``auto``: 8-bit files by 0..255, others by percentiles; ``minmax``: a
    constant image becomes −1 where MONAI's ``ScaleIntensity`` would return −value): no stock component decides per
    file, so the project's ``IntensityToTrainingRanged`` applies them. Values a rule does not use are ``None``.
    ``describe`` is the contract in words.
    """
    from gemix_monai.data.intensity import PERCENTILES

    pp = stored_preprocessing(
        checkpoint, image_size=image_size, hu_window=hu_window, intensity=intensity, channels=channels
    )
    fixed = {"uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}
    a_min = a_max = lower = upper = None
    if pp.hu_window is not None:
        width, level = pp.hu_window
        rule, a_min, a_max = "range", level - width / 2, level + width / 2
    elif isinstance(pp.intensity, tuple):
        rule, (a_min, a_max) = "range", (float(v) for v in pp.intensity)
    elif pp.intensity in fixed:
        rule, (a_min, a_max) = "range", fixed[pp.intensity]
    elif pp.intensity == "percentile":
        rule, (lower, upper) = "percentile", PERCENTILES
    else:
        rule = "per-file"
    return {
        "image_size": pp.image_size,
        "channels": pp.channels,
        "keep_aspect": pp.keep_aspect,
        "intensity_rule": rule,
        "a_min": a_min,
        "a_max": a_max,
        "lower": lower,
        "upper": upper,
        "intensity": list(pp.intensity) if isinstance(pp.intensity, tuple) else pp.intensity,
        "describe": pp.describe(),
    }
