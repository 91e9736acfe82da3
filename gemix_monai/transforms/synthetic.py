"""Generator-backed synthesis: a batch source for transforms, and datasets a MONAI ``DataLoader`` can read.

``generator`` arguments accept a checkpoint path of any family (StyleGAN2, DCGAN, diffusion; loaded with
``gemix_monai.generators.load_generator``, which dispatches on the format tag) or any object following
``gemix_monai.generators.ConditionalGenerator`` (``generate(soft_labels, z=..., truncation_psi=..., noise_mode=...,
batch_size=...)``, ``z_dim``, ``c_dim``, ``img_resolution``, ``img_channels``).

Reproducibility: synthetic item ``i`` is a pure function of ``(seed, epoch, i)`` — its label and latent ``z``
come from a random state keyed on ``(seed, epoch, i // BLOCK)`` and the generator runs with constant noise —
so the stream is the same with 0 or 8 ``DataLoader`` workers, in any order, and after a restart.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gemix_monai.mixing import SoftLabelSampler, to_soft_label
from gemix_monai.mixing.samplers import as_rng, check_seed
from gemix_monai.utils import check_truncation_psi

__all__ = ["load_generator", "SyntheticSource", "SyntheticDataset", "RealSyntheticDataset", "BLOCK"]

#: Items whose labels and latents are drawn together from one random state (vectorised draws).
BLOCK = 256
_GENERATOR_API = ("generate", "c_dim", "z_dim")


def load_generator(generator, device: str | torch.device | None = None):
    """A generator of any family from a checkpoint path (``gemix_monai.generators.load_generator``, onto ``device``,
    default CPU), or ``generator`` itself after checking it has the generator API (an ``nn.Module`` is moved to
    ``device`` when one is given)."""
    if isinstance(generator, (str, os.PathLike)):
        from gemix_monai.generators.protocol import load_generator as load_any  # imported lazily to keep imports light

        return load_any(generator, device="cpu" if device is None else device)
    missing = [a for a in _GENERATOR_API if not hasattr(generator, a)]
    if missing:
        raise TypeError(
            f"generator must be a checkpoint path or have the Generator API; {type(generator).__name__} lacks {missing}"
        )
    if device is not None and isinstance(generator, torch.nn.Module):
        generator = generator.to(device)  # generate() runs where the parameters are
    from gemix_monai.generators.protocol import as_image_generator

    return as_image_generator(
        generator
    )  # a network trained on image–mask pairs gives its images (docs/segmentation.md)


def _preferred_path(generator) -> Path | None:
    """The file a generator path stands for (the audit-chosen ``best.pt`` beside a ``generator.pt``, when present);
    ``None`` for a generator object."""
    if not isinstance(generator, (str, os.PathLike)):
        return None
    from gemix_monai.generators.protocol import preferred_generator

    return preferred_generator(generator)


def _check_sampler(sampler, c_dim: int) -> SoftLabelSampler:
    if not hasattr(sampler, "sample") or not hasattr(sampler, "num_classes"):
        raise TypeError(f"sampler must be a soft-label sampler (gemix_monai.mixing), got {type(sampler).__name__}")
    if sampler.num_classes != c_dim:
        raise ValueError(
            f"sampler draws labels over {sampler.num_classes} classes but the generator is conditioned on c_dim={c_dim}"
        )
    return sampler


class SyntheticSource:
    """Draws batches ``(images [B, C, R, R], labels [B, K])`` from a generator and a sampler.

    Generation runs on the generator's device in chunks of ``batch_size``; images are returned on
    ``output_device`` (default: where the generator put them). Used by :class:`GenMixd` inside a training loop.
    """

    def __init__(
        self,
        generator,
        sampler: SoftLabelSampler,
        truncation_psi: float = 1.0,
        batch_size: int = 64,
        device: str | torch.device | None = None,
        output_device: str | torch.device | None = None,
    ):
        self.truncation_psi = check_truncation_psi(truncation_psi)
        self.generator = load_generator(generator, device)
        self.sampler = _check_sampler(sampler, int(self.generator.c_dim))
        self.batch_size = int(batch_size)
        self.device = device
        self.output_device = output_device

    @property
    def num_classes(self) -> int:
        return self.sampler.num_classes

    @torch.no_grad()
    def draw(self, batch_size: int, rng=None) -> tuple[torch.Tensor, torch.Tensor]:
        rng = as_rng(rng, self.sampler.rng)
        labels = self.sampler.sample(batch_size, rng=rng)
        z = torch.from_numpy(rng.standard_normal((batch_size, int(self.generator.z_dim))).astype(np.float32))
        images = _generate(self.generator, labels, z, self.truncation_psi, self.batch_size, self.device)
        if self.output_device is not None:
            images, labels = images.to(self.output_device), labels.to(self.output_device)
        else:
            labels = labels.to(images.device)
        return images, labels


def _generate(
    generator, labels: torch.Tensor, z: torch.Tensor, truncation_psi: float, batch_size: int, device
) -> torch.Tensor:
    kwargs = {"z": z, "truncation_psi": truncation_psi, "noise_mode": "const", "batch_size": batch_size}
    if device is not None:
        kwargs["device"] = device
    images = generator.generate(labels, **kwargs)
    if images.ndim != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"generator.generate returned shape {tuple(images.shape)}; expected [{labels.shape[0]}, C, R, R]"
        )
    return images.float()


class GeneratedItems(Dataset):
    """Items ``{"image", "label"}`` of a dataset that makes them in batches with ``generate(indices) -> (images [B, C,
    R, R], soft labels [B, K])``: a ``DataLoader`` fetching a whole batch calls ``__getitems__`` once."""

    def generate(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        images, labels = self.generate(indices)
        return [{"image": images[n], "label": labels[n]} for n in range(labels.shape[0])]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([int(index)])[0]


class SyntheticDataset(GeneratedItems):
    """``{"image": [C, R, R] float32 in [-1, 1], "label": [K] float32 soft label}`` items drawn from a generator.

    Args:
        generator: checkpoint path or Generator-like object (see the module docstring). A path is loaded lazily in
            each process, so the dataset pickles cheaply to ``DataLoader`` workers.
        sampler: soft-label sampler (its ``num_classes`` must equal the generator's ``c_dim``).
        num_images: length of the dataset (items per epoch), or
        per_class: N items built around each class in turn (items ``k*N .. k*N+N-1`` have primary class k).
        seed: base seed; item ``i`` depends only on ``(seed, epoch, i)``.
        truncation_psi: truncation of the generator's ``w`` (1 = none).
        batch_size: generator chunk size when a ``DataLoader`` fetches a whole batch (``__getitems__``).
        device: where the generator runs (``None``: where it already is; a path loads to CPU).

    With a CUDA generator use ``num_workers=0`` (the GPU is the fast path) or a ``spawn`` context.
    ``set_epoch(e)`` draws new images for epoch ``e`` (not seen by persistent workers).
    """

    def __init__(
        self,
        generator,
        sampler: SoftLabelSampler,
        num_images: int | None = None,
        per_class: int | None = None,
        seed: int = 0,
        truncation_psi: float = 1.0,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ):
        if (num_images is None) == (per_class is None):
            raise ValueError("give exactly one of num_images (items per epoch) or per_class (items per class)")
        n = per_class if num_images is None else num_images
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(
                f"{'per_class' if num_images is None else 'num_images'} must be an integer >= 0, got {n!r}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.seed = check_seed(seed, allow_none=False)
        self.truncation_psi = check_truncation_psi(truncation_psi)
        self.generator_path = _preferred_path(generator)
        self.device = device
        self._generator = None if self.generator_path is not None else load_generator(generator, device)
        gen = self.generator
        self.c_dim, self.z_dim = int(gen.c_dim), int(gen.z_dim)
        self.image_shape = (
            int(getattr(gen, "img_channels", 0)),
            int(getattr(gen, "img_resolution", 0)),
            int(getattr(gen, "img_resolution", 0)),
        )
        self.class_names = list(getattr(gen, "class_names", None) or [str(k) for k in range(self.c_dim)])
        self.sampler = _check_sampler(sampler, self.c_dim)
        self.per_class = None if per_class is None else int(per_class)
        self.num_images = int(n) * (self.c_dim if per_class is not None else 1)
        self.batch_size = int(batch_size)
        self.epoch = 0
        self._blocks: OrderedDict[int, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    # --- pickling: a generator loaded from a path is reloaded in the worker, not shipped ---
    def __getstate__(self):
        state = self.__dict__.copy()
        if self.generator_path is not None:
            state["_generator"] = None
        state["_blocks"] = OrderedDict()
        return state

    @property
    def generator(self):
        self._check_cuda_in_worker()
        if self._generator is None:
            self._generator = load_generator(self.generator_path, self.device)
        return self._generator

    def __len__(self) -> int:
        return self.num_images

    def _check_cuda_in_worker(self) -> None:
        """A CUDA generator cannot run in a DataLoader worker forked after CUDA started: say so instead of crashing."""
        wants_cuda = self.device is not None and torch.device(self.device).type == "cuda"
        if not wants_cuda and self._generator is not None and isinstance(self._generator, torch.nn.Module):
            wants_cuda = any(p.is_cuda for p in self._generator.parameters())
        bad_fork = getattr(torch.cuda, "_is_in_bad_fork", lambda: False)()
        if wants_cuda and bad_fork and torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "SyntheticDataset: a CUDA generator cannot run in DataLoader workers forked after CUDA was "
                "initialised; use num_workers=0 (generation already runs on the GPU) or "
                "multiprocessing_context='spawn'"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._blocks.clear()

    def _block(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        if b in self._blocks:
            self._blocks.move_to_end(b)
            return self._blocks[b]
        rng = np.random.default_rng([self.seed, self.epoch, b])
        primary = None
        if self.per_class is not None:
            idx = np.arange(b * BLOCK, (b + 1) * BLOCK)
            primary = np.minimum(idx // max(self.per_class, 1), self.c_dim - 1)
        labels = self.sampler.sample(BLOCK, rng=rng, primary=primary)
        z = torch.from_numpy(rng.standard_normal((BLOCK, self.z_dim)).astype(np.float32))
        self._blocks[b] = (labels, z)
        while len(self._blocks) > 8:
            self._blocks.popitem(last=False)
        return labels, z

    def _check_indices(self, indices: Sequence[int]) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(
                f"SyntheticDataset index out of range: got {idx.min()}..{idx.max()}, length {self.num_images}"
            )
        return idx

    def labels_and_latents(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft labels ``[N, K]`` and latents ``[N, z_dim]`` of the given items, without running the generator."""
        idx = self._check_indices(indices)
        labels = torch.empty(idx.size, self.c_dim)
        z = torch.empty(idx.size, self.z_dim)
        for b in np.unique(idx // BLOCK):
            sel = np.nonzero(idx // BLOCK == b)[0]
            lb, zb = self._block(int(b))
            labels[sel], z[sel] = lb[idx[sel] % BLOCK], zb[idx[sel] % BLOCK]
        return labels, z

    @torch.no_grad()
    def generate(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[N, C, R, R]`` (CPU) and labels ``[N, K]`` of the given items, generated in chunks."""
        labels, z = self.labels_and_latents(indices)
        chunks = [
            _generate(
                self.generator,
                labels[s : s + self.batch_size],
                z[s : s + self.batch_size],
                self.truncation_psi,
                self.batch_size,
                self.device,
            ).cpu()
            for s in range(0, labels.shape[0], self.batch_size)
        ]
        images = torch.cat(chunks) if chunks else torch.empty((0, *self.image_shape))
        return images, labels


class RealSyntheticDataset(Dataset):
    """One stream of real and synthetic items for a MONAI ``DataLoader``: indices ``0..R-1`` are real, the rest synthetic.

    Every item is ``{"image": tensor [C, H, W] float32, "label": [K] float32, "is_synthetic": bool tensor}``;
    real labels (class indices) are made one-hot, real images lose their ``MetaTensor`` metadata so that
    real and synthetic items collate together, and keys other than image/label are dropped. With
    ``synthetic=None`` the dataset is the real data with soft labels.

    Args:
        real: map-style dataset of dicts with ``image_key`` and ``label_key``.
        synthetic: a :class:`SyntheticDataset` (or ``None``).
        num_classes: K.
        ratio: synthetic items per real item (e.g. 2.0 for the GeMix code's 1:2); ``None`` uses all of ``synthetic``.
        Shuffle in the ``DataLoader`` to interleave them.
    """

    def __init__(
        self,
        real: Dataset,
        synthetic: SyntheticDataset | None,
        num_classes: int,
        ratio: float | None = None,
        image_key: str = "image",
        label_key: str = "label",
    ):
        to_soft_label(0, num_classes)
        self.real, self.synthetic, self.num_classes = real, synthetic, int(num_classes)
        self.image_key, self.label_key = image_key, label_key
        self.num_real = len(real)
        if synthetic is None:
            if ratio not in (None, 0, 0.0):
                raise ValueError(f"ratio={ratio} needs a synthetic dataset")
            self.num_synthetic = 0
        else:
            if synthetic.c_dim != self.num_classes:
                raise ValueError(f"synthetic dataset has {synthetic.c_dim} classes, num_classes is {self.num_classes}")
            if ratio is None:
                self.num_synthetic = len(synthetic)
            else:
                if ratio < 0:
                    raise ValueError(f"ratio must be >= 0 synthetic items per real item, got {ratio}")
                self.num_synthetic = int(round(ratio * self.num_real))
                if self.num_synthetic > len(synthetic):
                    raise ValueError(
                        f"ratio {ratio} needs {self.num_synthetic} synthetic items, the synthetic dataset has {len(synthetic)}"
                    )

    def __len__(self) -> int:
        return self.num_real + self.num_synthetic

    def set_epoch(self, epoch: int) -> None:
        if self.synthetic is not None:
            self.synthetic.set_epoch(epoch)

    def _real_item(self, i: int) -> dict[str, torch.Tensor]:
        item = self.real[i]
        for key in (self.image_key, self.label_key):
            if key not in item:
                raise KeyError(f"real item {i} has no key {key!r} (keys: {sorted(map(str, item))})")
        image = torch.as_tensor(item[self.image_key])
        image = (image.as_tensor() if hasattr(image, "as_tensor") else image).float()
        label = to_soft_label(item[self.label_key], self.num_classes)
        label = torch.as_tensor(label).reshape(self.num_classes)
        return {"image": image, "label": label, "is_synthetic": torch.tensor(False)}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        idx = [int(i) for i in indices]
        for i in idx:
            if not 0 <= i < len(self):
                raise IndexError(f"RealSyntheticDataset index {i} out of range (length {len(self)})")
        out: list = [None] * len(idx)
        syn_pos = [p for p, i in enumerate(idx) if i >= self.num_real]
        for p, i in enumerate(idx):
            if i < self.num_real:
                out[p] = self._real_item(i)
        if syn_pos:
            images, labels = self.synthetic.generate([idx[p] - self.num_real for p in syn_pos])
            for n, p in enumerate(syn_pos):
                out[p] = {"image": images[n], "label": labels[n], "is_synthetic": torch.tensor(True)}
        real_shapes = {tuple(o["image"].shape) for o in out if not bool(o["is_synthetic"])}
        syn_shapes = {tuple(o["image"].shape) for o in out if bool(o["is_synthetic"])}
        if real_shapes and syn_shapes and real_shapes != syn_shapes:
            raise ValueError(
                f"real images {sorted(real_shapes)} and synthetic images {sorted(syn_shapes)} differ in shape; "
                "resize the real data to the generator's resolution"
            )
        return out

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]
