"""Offline export of synthetic images: NIfTI or PNG files plus ``labels.csv`` and a MONAI datalist JSON.

Resumable and idempotent: item ``i`` is a pure function of the generator, sampler and seed
(see :class:`~gemix_monai.transforms.SyntheticDataset`), each file is written to a temporary name and renamed
into place, and its sha256 is appended to ``sha256sums.txt`` (``sha256sum -c`` format) as soon as it is written.
Re-running re-hashes the files already there and regenerates every one that is missing, has no recorded
checksum (written by a run killed between the rename and the record) or no longer matches it (damaged,
truncated or replaced: a warning names them). Re-running into the same folder with different settings is
an error that lists what differs.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from gemix_monai.mixing import SoftLabelSampler
from gemix_monai.utils import atomic_write_bytes, atomic_write_json

from .files import CHECKSUMS_NAME, generator_fingerprint, read_checksums, sha256_file
from .pool import POOL_MANIFEST, write_pool
from .synthetic import SyntheticDataset

__all__ = ["export_synthetic", "EXPORT_FORMAT", "MANIFEST_NAME", "DATALIST_NAME", "LABELS_CSV_NAME", "CHECKSUMS_NAME"]

EXPORT_FORMAT = "gemix-synthetic-export/1"
MANIFEST_NAME = "export.json"
DATALIST_NAME = "datalist.json"
LABELS_CSV_NAME = "labels.csv"
_EXTENSIONS = {"nifti": ".nii.gz", "png": ".png"}


def _encode(image: torch.Tensor, fmt: str) -> bytes:
    """``image`` [C, x, y] in [-1, 1] -> file bytes. NIfTI keeps float32 intensities (``[x, y]`` for one channel,
    ``[x, y, C]`` otherwise); PNG maps [-1, 1] to 0..255 (1 channel: grey, 3 channels: RGB). Either file read
    with MONAI's ``LoadImaged`` + ``EnsureChannelFirstd`` gives the array back in the same orientation."""
    arr = image.detach().cpu().float().numpy()
    if fmt == "nifti":
        import nibabel as nib

        data = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
        nii = nib.Nifti1Image(np.ascontiguousarray(data, dtype=np.float32), affine=np.eye(4))
        nii.header.set_xyzt_units("mm")
        return gzip.compress(nii.to_bytes(), mtime=0)
    from PIL import Image

    if arr.shape[0] not in (1, 3):
        raise ValueError(f"PNG export supports 1 or 3 channels, the generator makes {arr.shape[0]}; use fmt='nifti'")
    from gemix_monai.data.preprocessing import to_display

    # [C, x, y] → rows × columns, so LoadImaged reads the generator's array back (docs/data.md, orientation)
    display = to_display(arr)
    img = Image.fromarray(display) if display.ndim == 2 else Image.fromarray(display, mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _encode_mask(mask: torch.Tensor, fmt: str) -> bytes:
    """Binary/one-hot ``mask`` [M, x, y] → a label-map file (docs/segmentation.md): NIfTI uint8 ``[x, y]`` with labels
    0..M; PNG rows × columns, a binary mask as 0/255 and labels 1..M as their values. Read back through the data
    layer (``get_dataset`` with ``"mask"`` items) either gives ``mask`` again."""
    from gemix_monai.data.masks import channels_to_label_map

    labels = channels_to_label_map(mask.detach().cpu())[0].numpy()
    if fmt == "nifti":
        import nibabel as nib

        nii = nib.Nifti1Image(np.ascontiguousarray(labels, dtype=np.uint8), affine=np.eye(4))
        nii.header.set_xyzt_units("mm")
        return gzip.compress(nii.to_bytes(), mtime=0)
    from PIL import Image

    pixels = labels.T * (255 if mask.shape[0] == 1 else 1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def export_synthetic(
    generator,
    sampler: SoftLabelSampler,
    out_dir: str | os.PathLike,
    num_images: int | None = None,
    per_class: int | None = None,
    seed: int = 0,
    fmt: str = "nifti",
    truncation_psi: float = 1.0,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Path:
    """Generate synthetic images to ``out_dir`` and index them; returns the path of ``datalist.json``.

    Layout: ``out_dir/images/synth_000000.nii.gz`` (or ``.png``), ``sha256sums.txt`` (the images' checksums,
    verified on re-runs), ``labels.csv`` (``image`` then one soft-label column per class name), ``datalist.json``
    (``{"class_names", "training": [{"image", "label": [K floats]}], "sampler", "seed"}``) and ``export.json``
    (the settings, checked on re-runs). A generator trained on image–mask pairs (docs/segmentation.md) also writes
    ``images/synth_000000_mask.nii.gz`` (or ``.png``) beside each image, its binarised mask as a label map, and the
    datalist items gain ``"mask"``.

    Args:
        generator: checkpoint path or Generator-like object; ``sampler``: soft-label sampler over ``c_dim`` classes.
        num_images: total sampler draws, or ``per_class``: N images built around each class.
        seed: item ``i`` is the same for the same generator, sampler parameters and seed.
        fmt: ``"nifti"`` (float32 in [-1, 1]), ``"png"`` (8-bit) or ``"npy"``: a synthetic pool
            (:func:`~gemix_monai.transforms.pool.write_pool`; returns the path of its ``pool.json``), which
            ``train_classifier(synthetic_pool=...)`` and ``compare`` draw from.
    """
    if fmt == "npy":  # a synthetic pool (docs/mixing.md, "Synthetic pools")
        if per_class is not None:
            raise ValueError("a synthetic pool (fmt='npy') is drawn with num_images, not per_class")
        pool = write_pool(
            generator,
            sampler,
            out_dir,
            num_images,
            seed=seed,
            truncation_psi=truncation_psi,
            device=device,
            progress=progress,
        )
        return pool.folder / POOL_MANIFEST
    if fmt not in _EXTENSIONS:
        raise ValueError(f"fmt must be one of {sorted(_EXTENSIONS) + ['npy']}, got {fmt!r}")
    # seed and truncation_psi are checked (ValueError naming them) by SyntheticDataset before anything is written
    dataset = SyntheticDataset(
        generator,
        sampler,
        num_images=num_images,
        per_class=per_class,
        seed=seed,
        truncation_psi=truncation_psi,
        batch_size=batch_size,
        device=device,
    )
    from gemix_monai.generators.protocol import mask_channels_of

    mask_channels = mask_channels_of(dataset.generator)
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    _claim_folder(out, _manifest(dataset, sampler, seed, per_class, fmt, truncation_psi, mask_channels))
    # Temporary files of an interrupted run are never complete: remove them.
    for stale in images_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    ext = _EXTENSIONS[fmt]
    items = [
        (f"synth_{i:06d}{ext}",) + ((f"synth_{i:06d}_mask{ext}",) if mask_channels else ()) for i in range(len(dataset))
    ]
    sums, todo = _verified_files(out, items)
    _write_items(dataset, out, items, todo, sums, fmt, batch_size, device, progress, mask_channels)
    return _write_index(dataset, sampler, seed, out, items, mask_channels)


def _manifest(dataset, sampler, seed, per_class, fmt, truncation_psi, mask_channels) -> dict:
    """``export.json``: every setting that decides the files (compared on re-runs)."""
    manifest = {
        "format": EXPORT_FORMAT,
        "sampler": sampler.params(),
        "seed": int(seed),
        "num_images": len(dataset),
        "per_class": per_class,
        "fmt": fmt,
        "truncation_psi": float(truncation_psi),
        "class_names": dataset.class_names,
        "generator": {
            "checkpoint": str(dataset.generator_path) if dataset.generator_path else None,
            "sha256": generator_fingerprint(dataset.generator, dataset.generator_path),
            "c_dim": dataset.c_dim,
            "z_dim": dataset.z_dim,
            "image_shape": list(dataset.image_shape),
        },
    }
    if mask_channels:
        manifest["mask_channels"] = mask_channels
    return manifest


def _claim_folder(out: Path, manifest: dict) -> None:
    """Write ``export.json``, or refuse a folder whose ``export.json`` records other settings (listing them)."""
    manifest_path = out / MANIFEST_NAME
    if not manifest_path.exists():
        atomic_write_json(manifest_path, manifest)
        return
    try:
        previous = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{manifest_path} is not valid JSON ({e}); remove it or export to another folder") from e

    def comparable(m: dict) -> dict:  # the checkpoint's path may move; its sha256 may not
        return {**m, "generator": {k: v for k, v in m.get("generator", {}).items() if k != "checkpoint"}}

    now, before = comparable(manifest), comparable(previous)
    differs = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
    if differs:
        detail = "; ".join(f"{k}: folder has {before.get(k)!r}, asked for {now.get(k)!r}" for k in differs)
        raise ValueError(
            f"{out} already holds an export made with different settings ({detail}); "
            "export to a new folder or delete the old one"
        )


def _verified_files(out: Path, items: list[tuple[str, ...]]) -> tuple[dict[str, str], set[int]]:
    """``(sha256 of every intact file by relative path, indices of the items to (re)generate)``: an item is its
    image and, for an image–mask generator, its mask, written together. Damaged files are named in a warning."""
    images_dir = out / "images"
    checksums_path = out / CHECKSUMS_NAME
    recorded = read_checksums(checksums_path)
    sums: dict[str, str] = {}
    todo, damaged = set(), set()
    for i, files in enumerate(items):
        for file in files:
            rel = f"images/{file}"
            if not (images_dir / file).is_file() or rel not in recorded:
                todo.add(i)  # missing, or renamed into place and killed before its checksum was appended
            elif sha256_file(images_dir / file) != recorded[rel]:
                damaged.add(i)
            else:
                sums[rel] = recorded[rel]
    if damaged:
        shown = ", ".join(str(images_dir / items[i][0]) for i in sorted(damaged)[:10])
        more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
        warnings.warn(
            f"export_synthetic: {len(damaged)} file(s) in {out} do not match the checksum recorded in "
            f"{checksums_path.name} (damaged, truncated or replaced) and are regenerated: {shown}{more}",
            stacklevel=3,
        )
    return sums, todo | damaged


def _write_items(dataset, out: Path, items, todo: set[int], sums: dict, fmt, batch_size, device, progress, masks):
    """Generate and write the items in ``todo``, appending each file's sha256 as soon as it is in place; then
    rewrite ``sha256sums.txt`` with one line per file, in order (dropping superseded lines)."""
    from gemix_monai.generators.protocol import generate_pairs

    checksums_path = out / CHECKSUMS_NAME
    # Generate whole aligned chunks [c*batch_size, (c+1)*batch_size), as a fresh run does, and write only the files
    # needed: float results depend on the batch a sample is computed in, so this regenerates the same bytes.
    steps = sorted({i // batch_size for i in todo})
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"export to {out}", unit="batch")
    with open(checksums_path, "a", encoding="utf-8") as record:
        for c in steps:
            chunk = list(range(c * batch_size, min((c + 1) * batch_size, len(items))))
            if masks:
                # the same labels, latents and options as dataset.generate(chunk), so the images are the same
                chunk_labels, chunk_z = dataset.labels_and_latents(chunk)
                options = {"z": chunk_z, "truncation_psi": dataset.truncation_psi, "noise_mode": "const"}
                options.update({"batch_size": dataset.batch_size, **({"device": device} if device is not None else {})})
                images, mask_batch = (t.cpu() for t in generate_pairs(dataset.generator, chunk_labels, **options))
            else:
                images, _ = dataset.generate(chunk)
            for n, i in enumerate(chunk):
                if i not in todo:
                    continue
                data = [_encode(images[n], fmt)] + ([_encode_mask(mask_batch[n], fmt)] if masks else [])
                for file, payload in zip(items[i], data):
                    atomic_write_bytes(out / "images" / file, payload)
                    rel = f"images/{file}"
                    sums[rel] = hashlib.sha256(payload).hexdigest()
                    record.write(f"{sums[rel]}  {rel}\n")
                record.flush()
    lines = "".join(f"{sums[f'images/{f}']}  images/{f}\n" for files in items for f in files)
    atomic_write_bytes(checksums_path, lines.encode())


def _write_index(dataset, sampler, seed, out: Path, items, mask_channels) -> Path:
    """``labels.csv`` and ``datalist.json`` of the export; returns the datalist's path."""
    labels, _ = dataset.labels_and_latents(range(len(dataset)))
    rows = labels.tolist()
    datalist = {
        "class_names": dataset.class_names,
        "training": [
            {
                "image": f"images/{files[0]}",
                **({"mask": f"images/{files[1]}"} if mask_channels else {}),
                "label": rows[i],
            }
            for i, files in enumerate(items)
        ],
        "sampler": sampler.params(),
        "seed": int(seed),
        **({"mask_channels": mask_channels} if mask_channels else {}),
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", *dataset.class_names])
    for i, files in enumerate(items):
        writer.writerow([f"images/{files[0]}", *(f"{v:.8g}" for v in rows[i])])
    atomic_write_bytes(out / LABELS_CSV_NAME, buf.getvalue().encode())
    datalist_path = out / DATALIST_NAME
    atomic_write_bytes(datalist_path, (json.dumps(datalist, indent=1) + "\n").encode())
    return datalist_path
