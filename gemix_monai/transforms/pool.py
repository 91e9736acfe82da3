"""Offline synthetic pools: images and soft labels generated once, drawn from by every classifier (docs/mixing.md,
"Synthetic pools").

On-the-fly synthesis runs the generator inside every classifier step, so each generative strategy costs several
times a ``real`` run and a slow generator (a diffusion model) cannot feed training at all. The GeMix code instead
trains on a fixed set of pre-generated images. A *pool* is such a set: ``N`` items of one generator, one sampler and
one seed — item ``i`` exactly as :class:`~gemix_monai.transforms.SyntheticDataset` draws it (epoch 0) — stored as
``float32`` chunk files ``images/chunk_<k>.npy`` ``[B, C, R, R]`` with ``labels.npy`` ``[N, K]``, their sha256 in
``sha256sums.txt``, and ``pool.json`` written last (a pool without it is incomplete and is completed by writing it
again: the chunks already there are verified and kept). ``pool.json`` records the generator (its file's sha256,
family, how it was trained and why it was chosen), the data contract it was trained on, the sampler's parameters,
the seed and the truncation; :meth:`SyntheticPool.check` refuses a pool made with another generator, contract or
sampler, naming both.

A classifier draws its synthetic items for epoch ``e`` from the pool without replacement, in an order that is a pure
function of ``(seed, e)`` (:class:`PoolSyntheticDataset`); GenMix draws its partners from it
(:class:`PoolSource`). So a comparison makes one pool per generator and sampler and every seed reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from gemix_monai.mixing import SoftLabelSampler
from gemix_monai.mixing.samplers import as_rng, check_seed
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data

from .files import CHECKSUMS_NAME, generator_fingerprint, read_checksums, sha256_file
from .synthetic import GeneratedItems, SyntheticDataset

__all__ = ["POOL_FORMAT", "POOL_MANIFEST", "SyntheticPool", "PoolSyntheticDataset", "PoolSource", "write_pool"]

logger = logging.getLogger(__name__)

POOL_FORMAT = "gemix-synthetic-pool/1"
POOL_MANIFEST = "pool.json"


def _generator_description(dataset: SyntheticDataset) -> dict:
    if dataset.generator_path is not None:
        from gemix_monai.generators.protocol import generator_record

        record = generator_record(dataset.generator_path)
        return {k: record[k] for k in ("path", "sha256", "format", "family", "training", "selection")}
    return {"path": None, "sha256": generator_fingerprint(dataset.generator, None), "format": None, "family": None}


def write_pool(
    generator,
    sampler: SoftLabelSampler,
    out_dir: str | os.PathLike,
    num_images: int,
    *,
    seed: int = 0,
    truncation_psi: float = 1.0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    generate_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> "SyntheticPool":
    """Generate (or complete) a pool of ``num_images`` items in ``out_dir``; returns the loaded pool.

    Args:
        generator: a checkpoint path (a ``generator.pt`` with an audit-chosen ``best.pt`` beside it uses ``best.pt``)
            or a generator object; sampler: the soft-label sampler; seed: item ``i`` is a pure function of it.
        batch_size: items per chunk file (and per generator call).
        generate_options: passed to ``generate`` (e.g. ``{"num_inference_steps": 10}`` for a diffusion model);
            recorded in ``pool.json``.
    Raises:
        ValueError: ``out_dir`` holds a pool (or a partial one) of other settings — the message lists what differs.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(f"num_images must be an integer >= 1, got {num_images!r}")
    seed = check_seed(seed, allow_none=False)
    dataset = SyntheticDataset(
        generator, sampler, num_images=int(num_images), seed=seed, truncation_psi=truncation_psi, batch_size=batch_size
    )
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    settings = {
        "format": POOL_FORMAT,
        "num_images": int(num_images),
        "seed": seed,
        "truncation_psi": float(truncation_psi),
        "chunk_size": int(batch_size),
        "generate_options": plain_data(dict(generate_options or {}), "generate_options"),
        "sampler": sampler.params(),
        "class_names": dataset.class_names,
        "image_shape": list(dataset.image_shape),
        "generator": _generator_description(dataset),
        "contract": getattr(dataset.generator, "contract", None),
    }
    settings = plain_data(settings, "pool settings")
    partial = out / ".pool-settings.json"
    for previous_path in (out / POOL_MANIFEST, partial):
        if previous_path.is_file():
            previous = json.loads(previous_path.read_text(encoding="utf-8"))
            differs = _differences(previous, settings)
            if differs:
                raise ValueError(
                    f"{out} holds a pool made with other settings ({'; '.join(differs)}); write the pool to a new "
                    "folder or delete the old one"
                )
            if previous_path.name == POOL_MANIFEST:
                return SyntheticPool(out)
    atomic_write_json(partial, settings)
    recorded = read_checksums(out / CHECKSUMS_NAME)
    n_chunks = -(-int(num_images) // batch_size)
    names = [f"images/chunk_{c:06d}.npy" for c in range(n_chunks)]
    steps = range(n_chunks)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"pool {out}", unit="chunk")
    sums = {}
    options = dict(generate_options or {})
    with open(out / CHECKSUMS_NAME, "a", encoding="utf-8") as record:
        for c in steps:
            path = out / names[c]
            if names[c] in recorded and path.is_file() and sha256_file(path) == recorded[names[c]]:
                sums[names[c]] = recorded[names[c]]
                continue
            idx = list(range(c * batch_size, min((c + 1) * batch_size, int(num_images))))
            labels, z = dataset.labels_and_latents(idx)
            kwargs = {"z": z, "truncation_psi": dataset.truncation_psi, "noise_mode": "const", "batch_size": batch_size}
            if device is not None:
                kwargs["device"] = device
            images = dataset.generator.generate(labels, **kwargs, **options).detach().float().cpu().numpy()
            if not np.isfinite(images).all():
                raise ValueError(f"the generator returned NaN or infinite pixels in chunk {c} of {out}")
            buf = _npy_bytes(images)
            atomic_write_bytes(path, buf)
            sums[names[c]] = hashlib.sha256(buf).hexdigest()
            record.write(f"{sums[names[c]]}  {names[c]}\n")
            record.flush()
    labels, _ = dataset.labels_and_latents(range(int(num_images)))
    label_bytes = _npy_bytes(labels.numpy().astype(np.float32))
    atomic_write_bytes(out / "labels.npy", label_bytes)
    sums["labels.npy"] = hashlib.sha256(label_bytes).hexdigest()
    atomic_write_bytes(out / CHECKSUMS_NAME, "".join(f"{v}  {k}\n" for k, v in sums.items()).encode())
    atomic_write_json(out / POOL_MANIFEST, {**settings, "chunks": names, "sha256": sums})
    partial.unlink(missing_ok=True)
    return SyntheticPool(out)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _differences(previous: Mapping, now: Mapping) -> list[str]:
    """Settings that differ, ignoring the generator file's path (a moved folder is the same pool)."""
    out = []
    for key in sorted(set(now) | set(previous)):
        if key in ("chunks", "sha256"):
            continue
        a, b = previous.get(key), now.get(key)
        if key == "generator":
            a = {k: v for k, v in (a or {}).items() if k == "sha256"}
            b = {k: v for k, v in (b or {}).items() if k == "sha256"}
        if a != b:
            out.append(f"{key}: pool has {a!r}, asked for {b!r}")
    return out


class SyntheticPool:
    """A written pool, loaded into memory (checksums verified): ``images [N, C, R, R]``, ``labels [N, K]``.

    ``manifest`` is ``pool.json``; ``c_dim``, ``class_names``, ``image_shape`` and ``generator_sha256`` describe it.
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = True):
        self.folder = Path(folder)
        path = self.folder / POOL_MANIFEST
        if not path.is_file():
            hint = (
                " (a partial pool: write it again to complete it)"
                if (self.folder / ".pool-settings.json").exists()
                else ""
            )
            raise FileNotFoundError(f"{self.folder} is not a synthetic pool: no {POOL_MANIFEST}{hint}")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != POOL_FORMAT:
            raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {POOL_FORMAT!r}")
        self.manifest = manifest
        for name, digest in manifest["sha256"].items():
            file = self.folder / name
            if not file.is_file():
                raise FileNotFoundError(f"synthetic pool {self.folder}: {name} is missing")
            if verify and sha256_file(file) != digest:
                raise ValueError(f"synthetic pool {self.folder}: {name} does not match its recorded sha256 (damaged)")
        chunks = [np.load(self.folder / n, allow_pickle=False) for n in manifest["chunks"]]
        self.images = torch.from_numpy(np.concatenate(chunks)) if chunks else torch.empty(0)
        self.labels = torch.from_numpy(np.load(self.folder / "labels.npy", allow_pickle=False))
        n = int(manifest["num_images"])
        if self.images.shape[0] != n or self.labels.shape[0] != n:
            raise ValueError(
                f"synthetic pool {self.folder}: {self.images.shape[0]} images and {self.labels.shape[0]} labels, "
                f"pool.json says {n}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def c_dim(self) -> int:
        return int(self.labels.shape[1])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["image_shape"])

    @property
    def generator_sha256(self) -> str:
        return self.manifest["generator"]["sha256"]

    def describe(self) -> dict:
        """What a result records about the pool it drew from."""
        m = self.manifest
        return {
            "folder": str(self.folder),
            "num_images": m["num_images"],
            "seed": m["seed"],
            "sampler": m["sampler"],
            "generator_sha256": m["generator"]["sha256"],
            "generator_family": m["generator"].get("family"),
            "generator_file": m["generator"].get("path"),
        }

    def check(
        self,
        *,
        generator: str | os.PathLike | None = None,
        generator_sha256: str | None = None,
        sampler: SoftLabelSampler | Mapping | None = None,
        contract=None,
    ) -> "SyntheticPool":
        """Refuse this pool for a run that expects another generator (a checkpoint path — a ``generator.pt`` with
        ``best.pt`` beside it stands for ``best.pt`` — or its file's ``generator_sha256``), sampler (an object or its
        ``params()``) or data contract (classes + preprocessing); the error names both sides."""
        m = self.manifest
        if generator is not None or generator_sha256 is not None:
            if generator is not None:
                from gemix_monai.generators.protocol import preferred_generator

                file = preferred_generator(generator)
                digest = sha256_file(Path(file))
                where = f"{file} (sha256 {digest[:12]}…)"
            else:
                digest, where = str(generator_sha256), f"sha256 {str(generator_sha256)[:12]}…"
            if digest != self.generator_sha256:
                raise ValueError(
                    f"synthetic pool {self.folder} was generated by {m['generator'].get('path')} "
                    f"(sha256 {self.generator_sha256[:12]}…), but this run uses the generator {where}: make a pool "
                    "from this generator"
                )
        if sampler is not None:
            params = plain_data(sampler.params() if hasattr(sampler, "params") else dict(sampler), "sampler")
            if params != m["sampler"]:
                raise ValueError(
                    f"synthetic pool {self.folder} was drawn with the sampler {m['sampler']}, but this run asks for "
                    f"{params}: make a pool with this sampler"
                )
        if contract is not None:
            want = contract.to_dict() if hasattr(contract, "to_dict") else dict(contract)
            have = m.get("contract")
            if have is not None and _contract_core(have) != _contract_core(want):
                raise ValueError(
                    f"synthetic pool {self.folder} comes from a generator trained on data {_contract_core(have)}, "
                    f"but this run's data is {_contract_core(want)}"
                )
        return self


def _contract_core(contract: Mapping) -> dict:
    """Classes and image preprocessing (masks aside: a pool holds images)."""
    pre = {k: v for k, v in dict(contract.get("preprocessing") or {}).items() if k != "mask_channels"}
    return plain_data({"class_names": list(contract.get("class_names") or []), "preprocessing": pre}, "contract")


class PoolSyntheticDataset(GeneratedItems):
    """``num_images`` items per epoch drawn without replacement from a :class:`SyntheticPool`, in an order that is a
    pure function of ``(seed, epoch)``; the interface of :class:`~gemix_monai.transforms.SyntheticDataset` that
    :class:`~gemix_monai.transforms.RealSyntheticDataset` uses (``c_dim``, ``set_epoch``, ``generate(indices)``).
    When an epoch asks for more items than the pool holds, the pool is walked again in a new order."""

    def __init__(self, pool: SyntheticPool, num_images: int, seed: int = 0):
        if isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer)) or num_images < 0:
            raise ValueError(f"num_images must be an integer >= 0, got {num_images!r}")
        self.pool, self.num_images, self.seed = pool, int(num_images), check_seed(seed, allow_none=False)
        self.c_dim = pool.c_dim
        self.class_names = pool.class_names
        self.image_shape = pool.image_shape
        self.epoch = 0
        self._order: np.ndarray | None = None
        if num_images > len(pool):
            logger.warning(
                "synthetic pool %s holds %d images but an epoch draws %d: images repeat within an epoch",
                pool.folder,
                len(pool),
                num_images,
            )

    def __len__(self) -> int:
        return self.num_images

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._order = int(epoch), None

    def _indices(self, indices: Sequence[int]) -> np.ndarray:
        if self._order is None:
            n, reps = len(self.pool), -(-self.num_images // max(len(self.pool), 1))
            rng = np.random.default_rng([self.seed, self.epoch, 0x9001])
            self._order = np.concatenate([rng.permutation(n) for _ in range(max(reps, 1))])[: self.num_images]
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(
                f"PoolSyntheticDataset index out of range: {idx.min()}..{idx.max()}, length {self.num_images}"
            )
        return self._order[idx]

    def generate(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self._indices(indices))
        return self.pool.images[rows].clone(), self.pool.labels[rows].clone()


class PoolSource:
    """GenMix partners from a pool: ``draw(batch_size, rng) -> (images [B, C, R, R], labels [B, K])``, rows drawn
    uniformly with replacement by ``rng`` (the interface of :class:`~gemix_monai.transforms.SyntheticSource`)."""

    def __init__(self, pool: SyntheticPool, seed: int | None = None, output_device=None):
        self.pool, self.output_device = pool, output_device
        self.rng = np.random.default_rng(seed)

    @property
    def num_classes(self) -> int:
        return self.pool.c_dim

    def draw(self, batch_size: int, rng=None) -> tuple[torch.Tensor, torch.Tensor]:
        rng = as_rng(rng, self.rng)
        rows = torch.from_numpy(rng.integers(0, len(self.pool), size=int(batch_size)))
        images, labels = self.pool.images[rows].clone(), self.pool.labels[rows].clone()
        if self.output_device is not None:
            images, labels = images.to(self.output_device), labels.to(self.output_device)
        return images, labels
