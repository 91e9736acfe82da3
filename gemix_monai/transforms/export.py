"""Offline export of synthetic images: NIfTI or PNG files plus ``labels.csv`` and a MONAI datalist JSON.

Resumable and idempotent: item ``i`` is a pure function of the generator, sampler and seed
(see :class:`~gemix_monai.transforms.SyntheticDataset`), each file is written to a temporary name and renamed
into place, so a file with its final name is always complete; re-running generates only the missing files.
Re-running into the same folder with different settings is an error that lists what differs.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from gemix_monai.mixing import SoftLabelSampler
from gemix_monai.utils import atomic_write_bytes

from .synthetic import SyntheticDataset

__all__ = ["export_synthetic", "EXPORT_FORMAT", "MANIFEST_NAME", "DATALIST_NAME", "LABELS_CSV_NAME"]

EXPORT_FORMAT = "gemix-synthetic-export/1"
MANIFEST_NAME = "export.json"
DATALIST_NAME = "datalist.json"
LABELS_CSV_NAME = "labels.csv"
_EXTENSIONS = {"nifti": ".nii.gz", "png": ".png"}


def _encode(image: torch.Tensor, fmt: str) -> bytes:
    """``image`` [C, H, W] in [-1, 1] -> file bytes. NIfTI keeps float32 intensities (``[H, W]`` for one channel,
    ``[H, W, C]`` otherwise); PNG maps [-1, 1] to 0..255 (1 channel: grey, 3 channels: RGB)."""
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
    u8 = np.clip(np.rint((arr + 1.0) * 127.5), 0, 255).astype(np.uint8)
    img = Image.fromarray(u8[0]) if arr.shape[0] == 1 else Image.fromarray(np.moveaxis(u8, 0, -1), mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _generator_fingerprint(generator, path: Path | None) -> str:
    """sha256 of the checkpoint file, or of the module's state (names, shapes, values)."""
    h = hashlib.sha256()
    if path is not None:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if isinstance(generator, torch.nn.Module):
        for name, t in generator.state_dict().items():
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()
    h.update(repr((type(generator).__qualname__, generator.c_dim, generator.z_dim)).encode())
    return h.hexdigest()


def export_synthetic(generator, sampler: SoftLabelSampler, out_dir: str | os.PathLike, num_images: int | None = None,
                     per_class: int | None = None, seed: int = 0, fmt: str = "nifti", truncation_psi: float = 1.0,
                     batch_size: int = 64, device: str | torch.device | None = None, progress: bool = False) -> Path:
    """Generate synthetic images to ``out_dir`` and index them; returns the path of ``datalist.json``.

    Layout: ``out_dir/images/synth_000000.nii.gz`` (or ``.png``), ``labels.csv`` (``image`` then one soft-label
    column per class name), ``datalist.json`` (``{"class_names", "training": [{"image", "label": [K floats]}],
    "sampler", "seed"}``) and ``export.json`` (the settings, checked on re-runs).

    Args:
        generator: checkpoint path or Generator-like object; ``sampler``: soft-label sampler over ``c_dim`` classes.
        num_images: total sampler draws, or ``per_class``: N images built around each class.
        seed: item ``i`` is the same for the same generator, sampler parameters and seed.
        fmt: ``"nifti"`` (float32 in [-1, 1]) or ``"png"`` (8-bit).
    """
    if fmt not in _EXTENSIONS:
        raise ValueError(f"fmt must be one of {sorted(_EXTENSIONS)}, got {fmt!r}")
    # seed and truncation_psi are checked (ValueError naming them) by SyntheticDataset before anything is written
    dataset = SyntheticDataset(generator, sampler, num_images=num_images, per_class=per_class, seed=seed,
                               truncation_psi=truncation_psi, batch_size=batch_size, device=device)
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
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
            "sha256": _generator_fingerprint(dataset.generator, dataset.generator_path),
            "c_dim": dataset.c_dim,
            "z_dim": dataset.z_dim,
            "image_shape": list(dataset.image_shape),
        },
    }
    manifest_path = out / MANIFEST_NAME
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest_path} is not valid JSON ({e}); remove it or export to another folder") from e
        comparable = {k: v for k, v in manifest.items() if k != "generator"}
        comparable["generator"] = {k: v for k, v in manifest["generator"].items() if k != "checkpoint"}
        prev_cmp = {k: v for k, v in previous.items() if k != "generator"}
        prev_cmp["generator"] = {k: v for k, v in previous.get("generator", {}).items() if k != "checkpoint"}
        differs = sorted(k for k in set(comparable) | set(prev_cmp) if comparable.get(k) != prev_cmp.get(k))
        if differs:
            detail = "; ".join(f"{k}: folder has {prev_cmp.get(k)!r}, asked for {comparable.get(k)!r}" for k in differs)
            raise ValueError(f"{out} already holds an export made with different settings ({detail}); "
                             "export to a new folder or delete the old one")
    else:
        atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    # Temporary files of an interrupted run are never complete: remove them.
    for stale in images_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)

    ext = _EXTENSIONS[fmt]
    names = [f"synth_{i:06d}{ext}" for i in range(len(dataset))]
    missing = [i for i, name in enumerate(names) if not (images_dir / name).is_file()]
    steps = range(0, len(missing), batch_size)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"export to {out}", unit="batch")
    for s in steps:
        chunk = missing[s : s + batch_size]
        images, _ = dataset.generate(chunk)
        for n, i in enumerate(chunk):
            atomic_write_bytes(images_dir / names[i], _encode(images[n], fmt))

    labels, _ = dataset.labels_and_latents(range(len(dataset)))
    rows = labels.tolist()
    datalist = {
        "class_names": dataset.class_names,
        "training": [{"image": f"images/{names[i]}", "label": rows[i]} for i in range(len(dataset))],
        "sampler": sampler.params(),
        "seed": int(seed),
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", *dataset.class_names])
    for i in range(len(dataset)):
        writer.writerow([f"images/{names[i]}", *(f"{v:.8g}" for v in rows[i])])
    atomic_write_bytes(out / LABELS_CSV_NAME, buf.getvalue().encode())
    datalist_path = out / DATALIST_NAME
    atomic_write_bytes(datalist_path, (json.dumps(datalist, indent=1) + "\n").encode())
    return datalist_path
