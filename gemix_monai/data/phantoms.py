"""The embedded default dataset: 2-D CT-like focal liver lesion phantoms in Hounsfield units.

Three classes, modelled on the lesion descriptions of the GenMix liver-lesion dataset (portal-venous
phase CT, lesion-centred crops):

* ``cyst`` – water-like (about 0–25 HU), homogeneous, round, sharp boundary;
* ``hemangioma`` – hypodense centre with *peripheral nodular enhancement*: discontinuous bright
  nodules (vessel-like HU) along the rim, sometimes filling in centripetally;
* ``metastasis`` – hypodense (about 35–75 HU), indistinct boundary, inhomogeneous interior,
  sometimes a continuous enhancing rim or a necrotic centre.

Every image also has liver parenchyma (about 95–135 HU) with a smooth texture, bright tubular
vessels, sometimes the liver edge with fat outside it, and correlated quantum noise. Parameter
ranges overlap between classes (faint or few nodules, low-contrast metastases, necrotic centres as
dark as a cyst) so the task is learnable but not trivial.

Image ``i`` of class ``c`` in split ``s`` is drawn from its own random stream,
``numpy.random.SeedSequence([seed, s, c, i])``: the same seed gives identical pixels (and, through
deterministic writers, identical file bytes), and growing the class counts keeps existing images.

Files are written one per image (NIfTI ``.nii.gz`` by default, or DICOM ``.dcm``), each atomically
(temporary file in the same folder, then ``os.replace``), with a MONAI datalist JSON
(``training``/``validation``/``test``) and a manifest of parameters and file hashes that
:func:`ensure_default_dataset` uses to decide whether an existing dataset can be reused.

Orientation: pixel arrays here are ``[rows, cols]`` (display order). NIfTI files store the
transpose (NIfTI's first axis is *x* = column) and DICOM stores rows × columns, so MONAI's
readers (and :func:`gemix_monai.data.preprocessing.get_transforms`) give ``[1, x, y]`` = ``[1, cols, rows]``
from either format, MONAI's usual order.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gemix_monai.utils import atomic_write_bytes

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_TRAIN_COUNTS",
    "DEFAULT_VAL_COUNTS",
    "DEFAULT_TEST_COUNTS",
    "SPLITS",
    "PHANTOM_FOV_MM",
    "render_phantom",
    "render_phantoms",
    "split_counts",
    "generate_phantom_dataset",
    "ensure_default_dataset",
]

CLASS_NAMES: tuple[str, ...] = ("cyst", "hemangioma", "metastasis")
#: GenMix liver-lesion training split: cyst 433, hemangioma 70, metastasis 178 (681 images).
DEFAULT_TRAIN_COUNTS: tuple[int, int, int] = (433, 70, 178)
#: Validation and test splits are each 20 % of the training counts, rounded: 87 / 14 / 36.
HELD_OUT_FRACTION = 0.2
DEFAULT_VAL_COUNTS: tuple[int, int, int] = tuple(max(1, round(c * HELD_OUT_FRACTION)) for c in DEFAULT_TRAIN_COUNTS)
DEFAULT_TEST_COUNTS: tuple[int, int, int] = DEFAULT_VAL_COUNTS
#: Datalist keys, in the order used for the random streams (split index 0, 1, 2).
SPLITS: tuple[str, ...] = ("training", "validation", "test")
#: Field of view of one crop, whatever the pixel count: pixdim = PHANTOM_FOV_MM / image_size.
PHANTOM_FOV_MM = 80.0
SLICE_THICKNESS_MM = 5.0
MIN_SIZE, MAX_SIZE = 32, 256
FORMATS = {"nifti": ".nii.gz", "dicom": ".dcm"}
MANIFEST_NAME = "manifest.json"
DATALIST_NAME = "datalist.json"
# Bump when rendering changes, so ensure_default_dataset regenerates stale datasets.
GENERATOR_VERSION = 1
# Bump when the files written change (2: a lesion mask per image), for the same reason; the images
# themselves are unchanged, byte for byte.
LAYOUT_VERSION = 2
#: Suffix of the lesion mask file beside each image: ``<class>_<k>_mask.nii.gz`` (NIfTI for both formats).
MASK_SUFFIX = "_mask.nii.gz"


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
_KERNEL_CACHE: dict[tuple[int, float], np.ndarray] = {}


def _gaussian_ft(size: int, sigma_px: float) -> np.ndarray:
    """Fourier transform (rfft2 layout) of a periodic Gaussian blur with std ``sigma_px`` pixels."""
    key = (size, round(sigma_px, 4))
    if key not in _KERNEL_CACHE:
        fy = np.fft.fftfreq(size)[:, None]
        fx = np.fft.rfftfreq(size)[None, :]
        _KERNEL_CACHE[key] = np.exp(-2.0 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    return _KERNEL_CACHE[key]


def _smooth_noise(rng: np.random.Generator, size: int, sigmas_px: Sequence[float]) -> np.ndarray:
    """Unit-variance Gaussian random fields ``[len(sigmas), size, size]``, one per correlation length."""
    white = rng.standard_normal((len(sigmas_px), size, size))
    spec = np.fft.rfft2(white)
    kernels = np.stack([_gaussian_ft(size, s) for s in sigmas_px])
    fields = np.fft.irfft2(spec * kernels, s=(size, size))
    fields /= fields.std(axis=(1, 2), keepdims=True) + 1e-12
    return fields


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def render_phantom(
    label: int, image_size: int = 64, rng: np.random.Generator | int | None = None, return_mask: bool = False
):
    """One phantom: ``float32 [image_size, image_size]`` in HU, rows × columns.

    With ``return_mask=True`` returns ``(hu, lesion_mask)``, the mask ``bool`` where the lesion
    weight exceeds 0.5 (for tests, figures and largest-lesion slice selection).

    Args:
        label: class index into :data:`CLASS_NAMES` (0 cyst, 1 hemangioma, 2 metastasis).
        image_size: pixels per side, 32–256; the field of view is always :data:`PHANTOM_FOV_MM`.
        rng: a numpy ``Generator``, a seed, or ``None`` (fresh entropy).
    """
    if label not in (0, 1, 2):
        raise ValueError(f"label must be 0 (cyst), 1 (hemangioma) or 2 (metastasis), got {label!r}")
    _check_size(image_size)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    S = image_size
    px = 2.0 / S  # pixel pitch in normalised coordinates [-1, 1]
    scale = S / 64.0  # correlation lengths are defined at 64 px and scale with the grid
    coords = (np.arange(S) + 0.5) * px - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")

    # Random fields: parenchyma texture, lesion interior texture, quantum-noise grain.
    tex_liver, tex_lesion, grain = _smooth_noise(rng, S, (2.5 * scale, 1.6 * scale, 0.6 * scale))

    # --- background: liver parenchyma, sometimes its edge with fat beyond -------------------
    liver_hu = rng.uniform(95, 135)
    img = liver_hu + rng.uniform(4, 10) * tex_liver
    if rng.random() < 0.45:
        phi = rng.uniform(0, 2 * np.pi)
        proj = np.cos(phi) * x + np.sin(phi) * y
        bend = rng.uniform(-0.3, 0.3) * (-np.sin(phi) * x + np.cos(phi) * y) ** 2
        edge = rng.uniform(0.6, 0.95)
        outside = _sigmoid((proj + bend - edge) / (0.6 * px))
        fat_hu = rng.uniform(-120, -80) + 6 * tex_lesion
        img = img * (1 - outside) + fat_hu * outside
    else:
        outside = np.zeros_like(x)

    # --- vessels: bright curved tubes of portal-venous contrast --------------------------------
    vessel_hu = liver_hu + rng.uniform(40, 90)
    for _ in range(rng.integers(0, 4)):
        phi = rng.uniform(0, np.pi)
        tx, ty = np.cos(phi), np.sin(phi)
        along = tx * x + ty * y
        across = -ty * x + tx * y - rng.uniform(-0.9, 0.9)
        across = across - rng.uniform(-0.15, 0.15) * np.sin(rng.uniform(1, 4) * along + rng.uniform(0, 2 * np.pi))
        width = rng.uniform(0.035, 0.09)
        profile = np.exp(-((across / width) ** 2)) * (1 - outside)
        img = img + (vessel_hu - img) * profile * rng.uniform(0.5, 1.0)

    # --- lesion geometry: perturbed ellipse ---------------------------------------------------
    cx, cy = np.clip(rng.normal(0, 0.12, size=2), -0.3, 0.3)
    r0 = rng.uniform(0.22, 0.6)
    aspect = rng.uniform(0.7, 1.0)
    theta = rng.uniform(0, np.pi)
    dx, dy = x - cx, y - cy
    u = np.cos(theta) * dx + np.sin(theta) * dy
    v = (-np.sin(theta) * dx + np.cos(theta) * dy) / aspect
    ang = np.arctan2(v, u)
    lobulation = {0: 0.03, 1: 0.06, 2: 0.09}[label]
    radius = np.full_like(x, r0)
    for k in (2, 3, 4, 5):
        radius = radius * (1 + rng.normal(0, lobulation / k * 2) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)))
    rho = np.hypot(u, v) / np.maximum(radius, 1e-3)  # 1 on the lesion boundary

    if label == 0:  # cyst: near-water, homogeneous, sharp
        inside_hu = rng.uniform(-5, 28) + rng.uniform(0, 4) * tex_lesion
        width = rng.uniform(0.3, 0.8) * px / r0
        mask = _sigmoid((1 - rho) / width)
        lesion = inside_hu
    elif label == 1:  # hemangioma: hypodense centre, discontinuous nodular rim enhancement
        centre_hu = rng.uniform(25, 65)
        width = rng.uniform(1.5, 3.5) * px / r0
        mask = _sigmoid((1 - rho) / width)
        lesion = centre_hu + rng.uniform(2, 8) * tex_lesion
        nodule_hu = vessel_hu * rng.uniform(0.85, 1.1)
        strength = rng.uniform(0.6, 1.0)
        n_nodules = rng.integers(3, 9)
        start = rng.uniform(0, 2 * np.pi)
        # Nodules clustered on an arc, not a continuous ring: that is the discriminating sign.
        angles = start + np.sort(rng.uniform(0, rng.uniform(0.6, 1.6) * np.pi, size=n_nodules))
        fill_in = rng.uniform(0.0, 0.35)  # centripetal progression of the enhancement
        for a in angles:
            rr = rng.uniform(0.7, 0.95) - fill_in * rng.random()
            nx = cx + r0 * rr * (np.cos(theta) * np.cos(a) - aspect * np.sin(theta) * np.sin(a))
            ny = cy + r0 * rr * (np.sin(theta) * np.cos(a) + aspect * np.cos(theta) * np.sin(a))
            size = r0 * rng.uniform(0.12, 0.22)
            blob = np.exp(-((x - nx) ** 2 + (y - ny) ** 2) / (2 * size**2))
            lesion = lesion + (nodule_hu - lesion) * blob * strength
    else:  # metastasis: hypodense, ill-defined, inhomogeneous, ring or necrosis
        inside_hu = rng.uniform(35, 78)
        width = rng.uniform(0.08, 0.25)
        mask = _sigmoid((1 - rho) / width)
        lesion = inside_hu + rng.uniform(6, 16) * tex_lesion
        if rng.random() < 0.5:  # continuous enhancing rim ("target" appearance)
            ring = np.exp(-(((rho - rng.uniform(0.8, 0.95)) / rng.uniform(0.08, 0.15)) ** 2))
            lesion = lesion + rng.uniform(15, 55) * ring
        if rng.random() < 0.4:  # necrotic centre, can be as dark as a cyst
            core = _sigmoid((rng.uniform(0.35, 0.6) - rho) / 0.1)
            lesion = lesion + (rng.uniform(10, 35) - lesion) * core

    mask = mask * (1 - outside)
    img = img * (1 - mask) + lesion * mask

    # --- correlated quantum noise --------------------------------------------------------------
    img = img + rng.uniform(8, 18) * grain
    if return_mask:
        return img.astype(np.float32), mask > 0.5
    return img.astype(np.float32)


def render_phantoms(
    labels: Sequence[int], image_size: int = 64, seed: int = 0, split: int = 0, return_masks: bool = False
):
    """Phantoms ``float32 [N, image_size, image_size]`` (HU) for ``labels``.

    Image ``n`` is rendered from ``SeedSequence([seed, split, label, k])`` where ``k`` counts the
    earlier entries of ``labels`` with the same label: deterministic and independent of the other
    classes' counts. With ``return_masks=True`` returns ``(images, masks)``, the lesion masks
    ``bool [N, image_size, image_size]`` of :func:`render_phantom` (computed from the same draws: the
    images are identical either way).
    """
    _check_size(image_size)
    seen = [0, 0, 0]
    out = np.empty((len(labels), image_size, image_size), np.float32)
    masks = np.zeros((len(labels), image_size, image_size), bool)
    for n, lab in enumerate(labels):
        lab = int(lab)
        if lab not in (0, 1, 2):
            raise ValueError(f"labels[{n}] must be 0, 1 or 2 ({', '.join(CLASS_NAMES)}), got {lab!r}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, split, lab, seen[lab]]))
        out[n], masks[n] = render_phantom(lab, image_size, rng, return_mask=True)
        seen[lab] += 1
    return (out, masks) if return_masks else out


# --------------------------------------------------------------------------------------------
# writers (atomic, byte-deterministic)
# --------------------------------------------------------------------------------------------
def _write_file(path: Path, data: bytes) -> None:
    # Many small files that can be regenerated from the seed: atomic, but not fsynced one by one.
    atomic_write_bytes(path, data, durable=False)


def _nifti_bytes(hu: np.ndarray, pixdim_mm: float) -> bytes:
    return _nifti_array_bytes(np.rint(hu).astype(np.int16), pixdim_mm, b"gemix-monai liver lesion phantom (HU)")


def _nifti_mask_bytes(mask: np.ndarray, pixdim_mm: float) -> bytes:
    return _nifti_array_bytes(mask.astype(np.uint8), pixdim_mm, b"gemix-monai lesion mask (0/1)")


def _nifti_array_bytes(pixels: np.ndarray, pixdim_mm: float, description: bytes) -> bytes:
    import gzip

    import nibabel as nib

    # NIfTI axis 0 is x (columns): store the transpose so MONAI's reader gives [x, y] = [cols, rows].
    data = np.ascontiguousarray(pixels.T)
    affine = np.diag([pixdim_mm, pixdim_mm, SLICE_THICKNESS_MM, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = description
    raw = img.to_bytes()
    # mtime=0 and no file name in the gzip header: identical inputs give identical bytes.
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _dicom_bytes(hu: np.ndarray, pixdim_mm: float, uid_seed: str, instance: int, description: str) -> bytes:
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    stored = np.clip(np.rint(hu) + 1024, 0, 4095).astype(np.uint16)  # HU = stored * 1 - 1024
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    sop_uid = generate_uid(entropy_srcs=[uid_seed, "sop"])
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_seed, "series"])
    ds.Modality = "CT"
    ds.PatientName = "Phantom^Liver"
    ds.PatientID = "GEMIX-PHANTOM"
    ds.StudyDate = ds.SeriesDate = "20240101"
    ds.SeriesDescription = "gemix-monai liver lesion phantom"
    ds.ImageComments = description
    ds.InstanceNumber = instance
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = [f"{pixdim_mm:.6g}", f"{pixdim_mm:.6g}"]
    ds.SliceThickness = f"{SLICE_THICKNESS_MM:g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.WindowCenter, ds.WindowWidth = 50, 400
    ds.PixelData = stored.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# dataset generation
# --------------------------------------------------------------------------------------------
def _check_size(image_size) -> None:
    if not isinstance(image_size, (int, np.integer)) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(f"image_size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {image_size!r}")


def _check_size_and_format(image_size, fmt) -> None:
    _check_size(image_size)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")


def _check_counts(name: str, counts) -> tuple[int, int, int]:
    try:
        counts = tuple(int(c) for c in counts)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be three non-negative integers (cyst, hemangioma, metastasis), got {counts!r}"
        ) from None
    if len(counts) != len(CLASS_NAMES) or any(c < 0 for c in counts):
        raise ValueError(f"{name} must be three non-negative integers (cyst, hemangioma, metastasis), got {counts!r}")
    return counts


def split_counts(counts=None, val_counts=None, test_counts=None) -> dict[str, tuple[int, int, int]]:
    """Per-split class counts: training ``counts`` (default 433/70/178); validation and test
    default to 20 % of the training counts each (rounded, at least 1 per class when the class is present)."""
    train = _check_counts("counts", DEFAULT_TRAIN_COUNTS if counts is None else counts)
    held_out = tuple(max(1, round(c * HELD_OUT_FRACTION)) if c else 0 for c in train)
    val = held_out if val_counts is None else _check_counts("val_counts", val_counts)
    test = held_out if test_counts is None else _check_counts("test_counts", test_counts)
    return {"training": train, "validation": val, "test": test}


def _parameters(image_size, counts, seed, fmt) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "layout_version": LAYOUT_VERSION,
        "image_size": int(image_size),
        "seed": int(seed),
        "format": fmt,
        "counts": {k: list(v) for k, v in counts.items()},
        "class_names": list(CLASS_NAMES),
        "fov_mm": PHANTOM_FOV_MM,
    }


def generate_phantom_dataset(
    out_dir: str | os.PathLike,
    image_size: int = 64,
    counts: Sequence[int] | None = None,
    seed: int = 0,
    fmt: str = "nifti",
    *,
    val_counts: Sequence[int] | None = None,
    test_counts: Sequence[int] | None = None,
) -> Path:
    """Render the phantom dataset and write it under ``out_dir``; return the datalist JSON path.

    Layout: ``out_dir/{training,validation,test}/<class>/<class>_<k>.nii.gz`` (or ``.dcm``), beside each
    image its lesion mask ``<class>_<k>_mask.nii.gz`` (uint8 0/1, the image's geometry and orientation;
    NIfTI for the DICOM format too — docs/segmentation.md), ``out_dir/datalist.json`` (MONAI datalist
    with ``class_names``, ``modality: "CT"``, ``hu_window: "abdomen"`` and ``mask_channels: 1``; items
    ``{"image", "mask", "label"}`` with paths relative to ``out_dir``) and ``out_dir/manifest.json``
    (parameters and the sha256 of every file, written last: a dataset without it is incomplete).

    Args:
        out_dir: folder to write into (created).
        image_size: pixels per side, 32–256.
        counts: training images per class (cyst, hemangioma, metastasis); default 433, 70, 178.
        seed: random seed; the same seed and parameters give byte-identical files.
        fmt: ``"nifti"`` (int16 HU, affine with pixdim = 80 mm / image_size) or ``"dicom"``
            (CT Image Storage, uint16 stored values with RescaleSlope 1 / RescaleIntercept -1024).
        val_counts, test_counts: per-class counts of the held-out splits; default 20 % of ``counts``.
    """
    _check_size_and_format(image_size, fmt)
    per_split = split_counts(counts, val_counts, test_counts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        manifest_path.unlink()  # the dataset is incomplete until the new manifest is written
    pixdim = PHANTOM_FOV_MM / image_size
    ext = FORMATS[fmt]
    datalist: dict = {
        "description": "gemix-monai CT liver lesion phantoms (HU), generated by gemix_monai.data.phantoms",
        "class_names": list(CLASS_NAMES),
        "modality": "CT",
        "hu_window": "abdomen",
        "mask_channels": 1,
    }
    hashes: dict[str, str] = {}
    for split_index, split in enumerate(SPLITS):
        labels = [c for c, n in enumerate(per_split[split]) for _ in range(n)]
        images, masks = render_phantoms(labels, image_size, seed=seed, split=split_index, return_masks=True)
        items = []
        seen = [0, 0, 0]
        for hu, mask, lab in zip(images, masks, labels):
            k = seen[lab]
            seen[lab] += 1
            rel = Path(split) / CLASS_NAMES[lab] / f"{CLASS_NAMES[lab]}_{k:04d}{ext}"
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "nifti":
                data = _nifti_bytes(hu, pixdim)
            else:
                data = _dicom_bytes(
                    hu, pixdim, f"gemix-phantom/{seed}/{image_size}/{split}/{lab}/{k}", k + 1, CLASS_NAMES[lab]
                )
            _write_file(path, data)
            hashes[rel.as_posix()] = hashlib.sha256(data).hexdigest()
            mask_rel = rel.with_name(f"{CLASS_NAMES[lab]}_{k:04d}{MASK_SUFFIX}")
            mask_data = _nifti_mask_bytes(mask, pixdim)
            _write_file(out_dir / mask_rel, mask_data)
            hashes[mask_rel.as_posix()] = hashlib.sha256(mask_data).hexdigest()
            items.append({"image": rel.as_posix(), "mask": mask_rel.as_posix(), "label": lab})
        datalist[split] = items
    datalist_path = out_dir / DATALIST_NAME
    datalist_bytes = (json.dumps(datalist, indent=1) + "\n").encode()
    _write_file(datalist_path, datalist_bytes)
    hashes[DATALIST_NAME] = hashlib.sha256(datalist_bytes).hexdigest()
    manifest = {"parameters": _parameters(image_size, per_split, seed, fmt), "files": hashes}
    _write_file(manifest_path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    return datalist_path


def _existing_dataset_matches(out_dir: Path, params: dict, verify_hashes: bool) -> bool:
    manifest_path = out_dir / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("parameters") != params:
        return False
    files = manifest.get("files", {})
    if DATALIST_NAME not in files:
        return False
    for rel, digest in files.items():
        path = out_dir / rel
        if not path.is_file():
            return False
        if verify_hashes and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return False
    return True


def ensure_default_dataset(out_dir: str | os.PathLike, *args, verify_hashes: bool = True, **options) -> Path:
    """Datalist JSON of a phantom dataset in ``out_dir`` generated with these parameters.

    ``args`` / ``options`` are :func:`generate_phantom_dataset`'s (``image_size=64, counts=None, seed=0,
    fmt="nifti", *, val_counts=None, test_counts=None``). Reuses what is there when its manifest records the same
    parameters and every listed file is present with the recorded sha256 (``verify_hashes=False`` checks presence
    only); otherwise (re)generates it with :func:`generate_phantom_dataset`.
    """
    given = inspect.signature(generate_phantom_dataset).bind(out_dir, *args, **options)
    given.apply_defaults()
    p = given.arguments
    _check_size_and_format(p["image_size"], p["fmt"])
    per_split = split_counts(p["counts"], p["val_counts"], p["test_counts"])
    out_dir = Path(out_dir)
    if _existing_dataset_matches(out_dir, _parameters(p["image_size"], per_split, p["seed"], p["fmt"]), verify_hashes):
        return out_dir / DATALIST_NAME
    return generate_phantom_dataset(*given.args, **given.kwargs)
