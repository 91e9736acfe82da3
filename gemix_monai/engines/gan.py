"""Conditional StyleGAN2-ADA training engine (docs/maths.md §2), built on an Ignite ``Engine``.

Why not MONAI's ``GanTrainer`` or ``Trainer``: ``monai.engines.GanTrainer`` draws latents with
``g_prepare_batch(num_latents, latent_size, device)``, which never sees the batch, so labels
cannot reach the generator; it also reuses one real batch for all D steps and has no notion of
lazy regularisation, gradient accumulation or EMA generators. MONAI's ``Trainer``/``Workflow``
is organised around one network, one optimizer, ``prepare_batch`` and key metrics, none of
which fit a two-player schedule. ``ConditionalGanTrainer`` is therefore a plain Ignite
``Engine`` whose process function runs the StyleGAN2-ADA phase schedule; everything else
(EMA, ADA, checkpoints, samples, TensorBoard, progress bar) is a handler from
:mod:`gemix_monai.handlers.gan` attached to it, so MONAI/Ignite handlers attach as usual.

One iteration consumes one *global batch* of ``batch_size`` real images:

====== ============================================================ ============ =========
phase  loss                                                         runs         gain
====== ============================================================ ============ =========
G main ``softplus(-D(aug(G(z, c)), c))``                            every step   1
G reg  path length ``(‖J_wᵀy‖ − a)²·pl_weight`` (if pl_weight > 0) every 4       4
D main ``softplus(D(aug(G(z, c')), c')) + softplus(-D(aug(x), c))`` every step   1
D reg  R1 ``γ/2·‖∇_x D(aug(x), c)‖²``                               every 16     16
====== ============================================================ ============ =========

Separate Adam optimizers for G and D, with the lazy-regularisation correction
``lr·k/(k+1)``, ``β^(k/(k+1))`` for interval ``k``.

**Batches, micro-batches and processes.** The global batch is split evenly across the
``world_size`` processes (``ignite.distributed``), and each process's share is split into
micro-batches of ``batch_gpu`` images whose gradients are accumulated. Every per-sample loss is
summed and divided by the *global* batch size, and gradients are summed across processes
(all-reduce), so each optimizer step follows the gradient of the global-batch mean whatever the
split. All randomness of a micro-batch (latents ``z``, synthesis noise, augmentation, style
mixing) is drawn from a generator seeded by ``(seed, iteration, phase, global micro-batch
index)``, and the data order is a pure function of ``(seed, batch index)``: one process with
two micro-batches and two processes with one micro-batch each see identical micro-batches and
produce the same parameters up to float summation order. The one batch-coupled op is D's
minibatch standard deviation: its group size must divide ``batch_gpu`` (checked), and
``batch_gpu`` must be the same in the runs being compared. Because nothing depends on hidden
RNG state, a run resumed from a checkpoint repeats the uninterrupted run exactly on CPU.

Labels arrive as integer class indices ``[N]`` (converted to one-hot) or soft labels ``[N, K]``;
images as ``[N, C, R, R]`` in [-1, 1] (``docs/design.md``). The generator is conditioned on the
real batch's labels (``gen_label_source="real"``) or on labels drawn from the dataset's class
distribution (``"dataset"``).

Output layout of :func:`train_gan` (only rank 0 writes)::

    output_dir/
      checkpoints/latest.pt        full training state (G, G_ema, D, optimizers, ADA p, counters, RNG)
      checkpoints/gan-<kimg>.pt    numbered snapshots when keep_snapshots=True
      models/generator/generator.pt  G_ema in the generator format of docs/design.md (a subfolder: MONAI Label
                                   offers every models/*.pt as a classifier weight file)
      samples/fakes-<images>.png   sample grids: one row per class, then class-to-class walks
      tensorboard/                 scalars (losses, R1, path length, ADA p and r_t, images/s)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from ignite.engine import Engine

from gemix_monai.data.masks import paired_for_training, trained_contract
from gemix_monai.fast import bf16_requested, cpu_bf16_math, cpu_has_native_bf16, training_fast
from gemix_monai.mixing.labels import labels_of, to_soft_label
from gemix_monai.mixing.samplers import check_class_balance, class_balance_shares, class_balance_weights
from gemix_monai.utils import plain_data, safe_torch_load

from . import gan_loss

__all__ = [
    "GanTrainingOptions",
    "ConditionalGanTrainer",
    "GlobalBatchEngine",
    "GlobalBatchSampler",
    "create_gan_trainer",
    "train_gan",
    "as_soft_labels",
    "validate_gan_dataset",
    "get_rng_state",
    "set_rng_state",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "gemix-gan-training/1"

_PHASE_G_MAIN, _PHASE_G_REG, _PHASE_D_MAIN, _PHASE_D_REG = range(4)


@dataclass
class GanTrainingOptions:
    """Hyper-parameters of one training run (units in brackets).

    ``batch_size`` is the global batch [images per optimizer step]; ``batch_gpu`` the
    micro-batch per process (default: the whole per-process share). ``max_kimg`` is the
    training length [thousands of real images shown]. ``ema_kimg`` is the half-life of the
    generator EMA [kimg]; ``ema_rampup`` limits it to ``ema_rampup·images_seen`` early on
    (``None``: no ramp-up). ``ada_target=None`` keeps ``augment_p`` fixed; otherwise p moves by
    ``batch_size·ada_interval/(ada_kimg·1000)`` every ``ada_interval`` steps towards making
    ``r_t = E[sign(D(real))]`` equal ``ada_target``.
    """

    batch_size: int = 32
    batch_gpu: int | None = None
    max_kimg: float = 100.0
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    r1_gamma: float = 1.0
    r1_interval: int = 16
    pl_weight: float = 0.0
    pl_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.0
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    augment_p: float = 0.0
    ada_target: float | None = 0.6
    ada_interval: int = 4
    ada_kimg: float = 100.0
    gen_label_source: str = "real"
    fast: bool | None = None
    class_balance: str = "none"

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        positive_ints = ("batch_size", "r1_interval", "pl_interval", "pl_batch_shrink", "ada_interval")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GanTrainingOptions.{name} must be a positive integer, got {value!r}")
        if self.batch_gpu is not None and (not isinstance(self.batch_gpu, int) or self.batch_gpu < 1):
            raise ValueError(f"GanTrainingOptions.batch_gpu must be a positive integer or None, got {self.batch_gpu!r}")
        for name in ("max_kimg", "g_lr", "d_lr", "ema_kimg", "ada_kimg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GanTrainingOptions.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("r1_gamma", "pl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"GanTrainingOptions.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"GanTrainingOptions.augment_p must be in [0, 1], got {self.augment_p!r}")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"GanTrainingOptions.style_mixing_prob must be in [0, 1], got {self.style_mixing_prob!r}")
        if self.fast is not None and not isinstance(self.fast, bool):
            raise ValueError(f"GanTrainingOptions.fast must be None, True or False, got {self.fast!r}")
        check_class_balance(self.class_balance, "GanTrainingOptions.class_balance")
        if self.gen_label_source not in ("real", "dataset"):
            raise ValueError(
                f"GanTrainingOptions.gen_label_source must be 'real' or 'dataset', got {self.gen_label_source!r}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GanTrainingOptions":
        """Build from a dict, ignoring keys that are not options (e.g. a preset's network kwargs)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out


# ---------------------------------------------------------------------------------------------
# labels and input validation


#: Batch labels (class indices ``[N]``/``[N, 1]`` or soft labels ``[N, K]``) -> ``[N, K]``: the one validator of
#: :mod:`gemix_monai.mixing.labels` with ``batched=True`` (a 1-D vector is always a batch of indices).
as_soft_labels = functools.partial(to_soft_label, batched=True)


def _item_labels(dataset) -> list | None:
    """Labels readable without loading images: a sequence of dicts, or MONAI's ``Dataset.data``."""
    items = getattr(dataset, "data", dataset)
    if isinstance(items, Sequence) and len(items) and all(isinstance(i, Mapping) for i in items):
        labels = [i.get("label") for i in items]
        if all(isinstance(v, (int, np.integer)) or (torch.is_tensor(v) and v.ndim == 0) for v in labels):
            return [int(v) for v in labels]
    return None


def validate_gan_dataset(dataset, *, img_resolution: int, img_channels: int, num_classes: int) -> None:
    """Fail early, with a message naming what is wrong, before any training step.

    Checks that the dataset is non-empty, that its first item is a dict with ``image``
    ``[C, R, R]`` matching the generator (``img_channels``, ``img_resolution``) and intensities
    in [-1, 1], and that every label readable without loading images is a class index in
    ``0..num_classes-1`` (the first item's label is always checked).
    """
    try:
        n = len(dataset)
    except TypeError as e:
        raise TypeError(f"train_data must be a map-style dataset with a length, got {type(dataset).__name__}") from e
    if n == 0:
        raise ValueError("train_data is empty")
    item = dataset[0]
    if not isinstance(item, Mapping) or "image" not in item or "label" not in item:
        found = sorted(item.keys()) if isinstance(item, Mapping) else type(item).__name__
        raise ValueError(f"train_data items must be dicts with keys 'image' and 'label', found {found}")
    image = item["image"]
    if isinstance(image, (str, os.PathLike)):
        raise ValueError(
            f"train_data[0]['image'] is a file path ({image!s}); pass a dataset that loads images "
            "(e.g. a MONAI Dataset with LoadImaged and scaling to [-1, 1] transforms)"
        )
    image = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image)
    expected = [img_channels, img_resolution, img_resolution]
    if list(image.shape) != expected:
        raise ValueError(
            f"train_data[0]['image'] has shape {list(image.shape)}, but the generator expects "
            f"[C, R, R] = {expected} (img_channels={img_channels}, img_resolution={img_resolution}); "
            "resize/crop the data or choose a preset with the matching resolution"
        )
    lo, hi = float(image.min()), float(image.max())
    if lo < -1.05 or hi > 1.05:
        raise ValueError(f"train_data[0]['image'] intensities span [{lo:.3g}, {hi:.3g}]; expected the range [-1, 1]")
    labels = _item_labels(dataset)
    if labels is not None:
        for row, lab in enumerate(labels):
            if not 0 <= lab < num_classes:
                raise ValueError(
                    f"train_data[{row}]['label'] = {lab} is out of range; expected a class index 0..{num_classes - 1}"
                )
    else:
        first = torch.as_tensor(item["label"])
        as_soft_labels(
            first.reshape(1) if first.ndim == 0 else first.reshape(1, -1), num_classes, name="train_data[0]['label']"
        )


# ---------------------------------------------------------------------------------------------
# data order


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Infinite, resumable batch sampler: global batch ``k`` is a pure function of ``(seed, k)``.

    The index stream is the concatenation of per-epoch permutations ``perm(seed, epoch)`` of the
    dataset; global batch ``k`` is its slice ``[k·B, (k+1)·B)``, and this process takes the
    contiguous ``rank``-th ``1/world_size`` of it. Iteration starts at ``start_batch``, so a
    resumed run continues the data order exactly. ``len()`` is the number of global batches per
    pass over the data (``ceil(N/B)``). With per-item ``weights`` (class balance), global batch ``k`` is instead
    ``B`` draws with replacement, probability ∝ weight, from a generator seeded by ``(seed, k)``.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        weights: Sequence[float] | None = None,
    ):
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes ({world_size})")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.weights = None
        if weights is not None:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.shape != (num_items,) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or w.sum() <= 0:
                raise ValueError(f"weights must be {num_items} finite non-negative numbers with a positive sum")
            self.weights = w

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.batch_size)

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch, 0xDA7A]).generate_state(1)[0]))
        return torch.randperm(self.num_items, generator=g)

    def global_batch(self, k: int) -> list[int]:
        if self.weights is not None:
            # Weighted draws (class balance) with replacement; still a pure function of (seed, k).
            state = np.random.SeedSequence([self.seed, k, 0xBA1A]).generate_state(1)[0]
            g = torch.Generator().manual_seed(int(state))
            return torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g).tolist()
        start = k * self.batch_size
        epoch, offset = divmod(start, self.num_items)
        out: list[int] = []
        while len(out) < self.batch_size:
            perm = self._perm(epoch)
            out.extend(perm[offset : offset + self.batch_size - len(out)].tolist())
            epoch, offset = epoch + 1, 0
        return out

    def __iter__(self) -> Iterator[list[int]]:
        share = self.batch_size // self.world_size
        k = self.start_batch
        while True:
            yield self.global_batch(k)[self.rank * share : (self.rank + 1) * share]
            k += 1


def _collate(items: list[Mapping]) -> dict:
    images = torch.stack(
        [
            torch.as_tensor(np.asarray(i["image"]) if not torch.is_tensor(i["image"]) else i["image"])
            .as_subclass(torch.Tensor)
            .float()
            for i in items
        ]
    )
    labels = [torch.as_tensor(i["label"]).as_subclass(torch.Tensor) for i in items]
    return {"image": images, "label": torch.stack(labels)}


# ---------------------------------------------------------------------------------------------
# RNG state (checkpointable with weights_only=True)


def get_rng_state() -> dict:
    """Global RNG states as tensors/lists/numbers: torch CPU, CUDA (if any), numpy, python."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss_next": py_state[2]},
    }


def set_rng_state(state: Mapping) -> None:
    """Inverse of :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


# ---------------------------------------------------------------------------------------------
# the trainer


def _lazy_adam(
    params, lr: float, betas: tuple[float, float], eps: float, interval: int, fused: bool = False
) -> torch.optim.Adam:
    # Regularising every `interval` steps with gain `interval` inflates the effective step size;
    # shrinking lr and the betas by interval/(interval+1) keeps the optimizer's dynamics unchanged.
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    extra = {"fused": True} if fused else {}  # one kernel for all parameters (the fast path)
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=eps, **extra)


def _dist():
    import ignite.distributed as idist

    return idist


class GlobalBatchEngine(Engine):
    """What every generator trainer shares: one step per *global batch*, a data order that is a pure function of
    ``(seed, batch index)``, per-step randomness keyed by position, and the checkpoint's common part.

    Used by :class:`ConditionalGanTrainer` and by the DCGAN/diffusion trainer
    (:class:`gemix_monai.engines.generative.GenerativeTrainer`). A subclass sets ``options`` (``batch_size``,
    ``max_kimg``), ``seed``, ``rank``, ``world_size``, ``device``, ``num_workers``, ``class_names``, ``G``, ``G_ema``,
    ``D``, ``stateful_handlers``, calls :meth:`_adopt_training_data`, and names its checkpoint format in
    ``training_format`` and its checkpoints in ``training_name`` (as in "not a GAN training checkpoint").
    """

    #: the checkpoint format tag, and what the checkpoints are called in messages
    training_format: str
    training_name: str

    # -- counters ------------------------------------------------------------------------------
    @property
    def images_seen(self) -> int:
        """Real images consumed so far (all processes): ``iteration × batch_size``."""
        return self.state.iteration * self.options.batch_size

    @property
    def max_iterations(self) -> int:
        return max(1, math.ceil(self.options.max_kimg * 1000 / self.options.batch_size))

    # -- data ----------------------------------------------------------------------------------
    def _adopt_training_data(self, G, train_data) -> None:
        self.train_data = train_data
        validate_gan_dataset(
            train_data, img_resolution=G.img_resolution, img_channels=G.img_channels, num_classes=self.num_classes
        )
        # The data's contract (classes + preprocessing, docs/data.md) travels with the generator so that
        # every later user of generator.pt can refuse data prepared differently.
        contract = getattr(train_data, "contract", None)
        self.contract = trained_contract(contract, train_data)  # mask_channels only when trained on pairs
        if self.contract is not None:
            if list(self.contract["class_names"]) != self.class_names:
                raise ValueError(
                    f"the training data's classes {self.contract['class_names']} differ from class_names "
                    f"{self.class_names}"
                )
            G.contract = self.contract

    @property
    def item_weights(self) -> list[float] | None:
        """Per-item sampling weights of ``options.class_balance`` (``None`` for ``"none"``: plain permutations)."""
        mode = getattr(self.options, "class_balance", "none")
        if mode == "none":
            return None
        if getattr(self, "_item_weights", None) is None:
            labels = labels_of(self.train_data)
            per_class = class_balance_weights(labels, self.num_classes, mode)
            self._item_weights = [per_class[y] for y in labels]
        return self._item_weights

    def class_shares(self) -> list[float]:
        """The share of each class among the real images this run shows (after ``class_balance``)."""
        return class_balance_shares(
            labels_of(self.train_data), self.num_classes, getattr(self.options, "class_balance", "none")
        )

    def training_record(self) -> dict:
        """What a generator file records about how it was trained (docs/generators.md, "Class balance"): family,
        kimg, seed, class balance and the class shares it gives, the options, and the training CPU/wall seconds."""
        record = {
            "family": getattr(self, "family", "stylegan2"),
            "kimg": round(self.images_seen / 1000, 6),
            "seed": self.seed,
            "class_balance": getattr(self.options, "class_balance", "none"),
            "class_shares": [round(v, 6) for v in self.class_shares()],
            "options": self.options.to_dict(),
        }
        clock = getattr(self, "clock", None)
        if clock is not None:
            record["train_cpu_seconds"] = round(clock.train_cpu_seconds, 3)
            record["wall_seconds"] = round(clock.wall_seconds, 3)
        return record

    def make_data_loader(self, start_batch: int = 0) -> torch.utils.data.DataLoader:
        sampler = GlobalBatchSampler(
            len(self.train_data),
            self.options.batch_size,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
            start_batch=start_batch,
            weights=self.item_weights,
        )
        return torch.utils.data.DataLoader(
            self.train_data,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_collate,
            generator=torch.Generator().manual_seed(self.seed * 1_000_003 + start_batch),
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def run(self, data=None, max_epochs=None, epoch_length=None, max_iters=None):  # noqa: D401
        """Train until ``options.max_kimg`` (or ``max_iters``), continuing from the current iteration.

        With ``data=None`` the trainer builds its own resumable loader starting at the next
        global batch; passing another iterable is the caller's responsibility for order.
        """
        if data is None:
            data = self.make_data_loader(start_batch=self.state.iteration)
        if max_epochs is None and max_iters is None:
            max_iters = self.max_iterations
        if epoch_length is None and self.state.epoch_length is None:
            epoch_length = len(data) if hasattr(data, "__len__") else None
        if max_iters is not None and self.state.iteration >= max_iters:
            return self.state
        return super().run(data, max_epochs=max_epochs, epoch_length=epoch_length, max_iters=max_iters)

    # -- randomness keyed by position in the schedule ------------------------------------------
    @contextmanager
    def _keyed_rng(self, iteration: int, phase: int, micro: int):
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type if devices else "cuda"):
            s = np.random.SeedSequence([self.seed, iteration, phase, micro]).generate_state(2)
            torch.manual_seed(int(s[0]) << 31 ^ int(s[1]))
            yield

    # -- checkpoints ---------------------------------------------------------------------------
    def training_state_dict(self) -> dict:
        """Everything needed to continue exactly; only tensors/numbers/strings/lists/dicts inside."""
        return {
            "format": self.training_format,
            "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "D": self.D.state_dict() if self.D is not None else {},
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict() if self.opt_D is not None else {},
            "counters": {
                "iteration": self.state.iteration,
                "epoch": self.state.epoch,
                "images_seen": self.images_seen,
                "batch_size": self.options.batch_size,
            },
            "data": {"seed": self.seed, "next_global_batch": self.state.iteration, "num_items": len(self.train_data)},
            "rng": get_rng_state(),
            "handlers": {name: h.state_dict() for name, h in self.stateful_handlers.items()},
            "config": {
                "G": dict(getattr(self.G, "init_kwargs", None) or {}),
                "D": dict(getattr(self.D, "init_kwargs", None) or {}),
                "options": self.options.to_dict(),
                "num_classes": self.num_classes,
            },
            "class_names": list(self.class_names),
            "contract": self.contract,
        }

    def load_training_state(self, state: Mapping) -> None:
        """Restore a :meth:`training_state_dict`; the next :meth:`run` continues where it stopped.

        Refuses a checkpoint of another format, global batch, classes or data preprocessing."""
        if state.get("format") != self.training_format:
            raise ValueError(
                f"not a {self.training_name} checkpoint: format={state.get('format')!r}, "
                f"expected {self.training_format!r}"
            )
        saved_batch = state["counters"]["batch_size"]
        if saved_batch != self.options.batch_size:
            raise ValueError(
                f"checkpoint was trained with batch_size={saved_batch}, this run uses "
                f"{self.options.batch_size}; exact resume needs the same global batch"
            )
        if list(state["class_names"]) != self.class_names:
            raise ValueError(f"checkpoint class_names {state['class_names']} differ from {self.class_names}")
        stored_balance = state.get("config", {}).get("options", {}).get("class_balance", "none")
        if stored_balance != getattr(self.options, "class_balance", "none"):
            raise ValueError(
                f"checkpoint was trained with class_balance={stored_balance!r}, this run asks for "
                f"{self.options.class_balance!r}; the data order would change mid-run"
            )
        stored = state.get("contract")
        if stored is not None and self.contract is not None and stored != self.contract:
            raise ValueError(
                f"the checkpoint was trained on data preprocessed as {stored.get('preprocessing')}, this run's "
                f"data is {self.contract.get('preprocessing')}; resume with the same data options or start "
                "over in a new output folder"
            )
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        if self.D is not None:
            self.D.load_state_dict(state["D"])
        if self.opt_D is not None:
            self.opt_D.load_state_dict(state["opt_D"])
        for name, h in self.stateful_handlers.items():
            if name in state["handlers"]:
                h.load_state_dict(state["handlers"][name])
        set_rng_state(state["rng"])
        it = int(state["counters"]["iteration"])
        epoch_length = math.ceil(len(self.train_data) / self.options.batch_size)
        self.load_state_dict({"iteration": it, "epoch_length": epoch_length, "max_iters": max(it, self.max_iterations)})

    def _describe_network_change(self, stored_g: Mapping, requested_g: Mapping, shown: str) -> str:
        return f"it was trained with other networks ({shown})"


class ConditionalGanTrainer(GlobalBatchEngine):
    """Ignite engine training a conditional StyleGAN2-ADA (see the module docstring).

    Args:
        G, D: the generator and discriminator (``gemix_monai.networks``); moved to ``device``.
        augment_pipe: ADA pipeline with a ``p`` buffer, or ``None`` (no augmentation).
        train_data: map-style dataset of ``{"image": [C, R, R], "label": int | [K]}``.
        options: :class:`GanTrainingOptions`.
        num_classes: K; ``class_names`` default to ``class_0..``.
        label_distribution: class probabilities ``[K]`` for ``gen_label_source="dataset"``
            (default: the frequencies of the dataset's labels when readable, else uniform).
        device: defaults to ``ignite.distributed.device()``.
        seed: seeds the networks' randomness per step and the data order.
        num_workers: DataLoader workers.

    Attributes: ``G``, ``G_ema``, ``D``, ``augment_pipe``, ``opt_G``, ``opt_D``, ``pl_mean``,
    ``options``, ``class_names``, ``images_seen``. ``run()`` without arguments trains until
    ``options.max_kimg`` (resuming from the current iteration); handlers with state register
    themselves in ``stateful_handlers`` and are saved in checkpoints.
    """

    def __init__(
        self,
        G,
        D,
        augment_pipe,
        train_data,
        options: GanTrainingOptions,
        *,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        label_distribution=None,
        device=None,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(self._iteration)
        idist = _dist()
        self.rank, self.world_size = idist.get_rank(), idist.get_world_size()
        self.device = torch.device(device) if device is not None else idist.device()
        self.options, self.seed, self.num_workers = options, int(seed), num_workers
        self.num_classes = int(num_classes)
        g_names = getattr(G, "class_names", None)
        if class_names is None:
            class_names = g_names if g_names is not None else [f"class_{i}" for i in range(num_classes)]
        elif g_names is not None and list(g_names) != list(class_names):
            raise ValueError(
                f"class_names {list(class_names)} differ from the generator's class_names {list(g_names)}; "
                "build the Generator with the same class_names (they are saved in models/generator/generator.pt)"
            )
        self.class_names = list(class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names but num_classes={num_classes}")
        c_dim = getattr(G, "c_dim", None)
        if c_dim is not None and c_dim != self.num_classes:
            raise ValueError(f"num_classes={num_classes} but the generator was built with c_dim={c_dim}")
        d_c_dim = getattr(D, "c_dim", None)
        if d_c_dim is not None and d_c_dim != self.num_classes:
            raise ValueError(f"num_classes={num_classes} but the discriminator was built with c_dim={d_c_dim}")

        share, rem = divmod(options.batch_size, self.world_size)
        if rem:
            raise ValueError(
                f"batch_size={options.batch_size} must be divisible by the number of processes ({self.world_size})"
            )
        self.batch_gpu = options.batch_gpu or share
        if share % self.batch_gpu:
            raise ValueError(
                f"batch_gpu={self.batch_gpu} must divide the per-process batch {share} "
                f"(batch_size={options.batch_size} over {self.world_size} processes)"
            )
        mbstd = next((m.group_size for m in D.modules() if type(m).__name__.startswith("MinibatchStd")), None)
        if mbstd and self.batch_gpu % min(int(mbstd), self.batch_gpu):
            raise ValueError(
                f"the discriminator's minibatch-stddev group size {mbstd} must divide batch_gpu={self.batch_gpu}"
            )
        if options.pl_weight > 0 and self.batch_gpu % options.pl_batch_shrink:
            raise ValueError(f"pl_batch_shrink={options.pl_batch_shrink} must divide batch_gpu={self.batch_gpu}")

        self._adopt_training_data(G, train_data)
        if label_distribution is None:
            # the classes of the images D sees: the class-balanced shares when class_balance is set
            label_distribution = self.class_shares()
        self.label_distribution = torch.as_tensor(label_distribution, dtype=torch.float64).float()
        if self.label_distribution.shape != (self.num_classes,) or torch.any(self.label_distribution < 0):
            raise ValueError(f"label_distribution must be {self.num_classes} non-negative numbers")

        # The CPU fast path (GEMIX_FAST=1 or options.fast=True, docs/benchmarks.md): channels_last
        # networks, the fused Adam and, with GEMIX_BF16=1 on a CPU with native bf16, bf16 math in
        # the convolutions of the main G and D steps. Off by default: it moves float rounding.
        self.fast = training_fast(options.fast) and self.device.type == "cpu"
        self.bf16 = self.fast and bf16_requested() and cpu_has_native_bf16()
        self._memory_format = torch.channels_last if self.fast else torch.contiguous_format
        self.G = G.to(self.device, memory_format=self._memory_format).train().requires_grad_(False)
        self.D = D.to(self.device, memory_format=self._memory_format).train().requires_grad_(False)
        self.augment_pipe = (
            augment_pipe.to(self.device).train().requires_grad_(False) if augment_pipe is not None else None
        )
        if self.augment_pipe is not None:
            self.augment_pipe.set_p(options.augment_p)
        if self.world_size > 1:  # every process starts from rank 0's weights
            for module in (self.G, self.D):
                for t in list(module.parameters()) + list(module.buffers()):
                    t.data.copy_(idist.broadcast(t.data, src=0))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_G = _lazy_adam(
            self.G.parameters(),
            options.g_lr,
            options.betas,
            options.eps,
            options.pl_interval if options.pl_weight > 0 else 0,
            fused=self.fast,
        )
        self.opt_D = _lazy_adam(
            self.D.parameters(),
            options.d_lr,
            options.betas,
            options.eps,
            options.r1_interval if options.r1_gamma > 0 else 0,
            fused=self.fast,
        )
        self.pl_mean = torch.zeros((), device=self.device)
        self.stateful_handlers: dict[str, Any] = {}

    def _sample_gen_c(self, real_c: torch.Tensor) -> torch.Tensor:
        if self.options.gen_label_source == "real":
            return real_c
        idx = torch.multinomial(self.label_distribution, real_c.shape[0], replacement=True)
        return torch.nn.functional.one_hot(idx, self.num_classes).float().to(self.device)

    def _reduce_and_step(self, module, opt) -> None:
        params = [p for p in module.parameters() if p.grad is not None]
        if self.world_size > 1 and params:
            flat = torch.cat([p.grad.flatten() for p in params])
            flat = _dist().all_reduce(flat)
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p))
        for p in params:
            torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()

    def _phase(self, phase: int, module, opt, micro_batches, fn) -> torch.Tensor:
        """Run ``fn(micro_batch) -> (loss_sum, stats)`` over micro-batches, accumulate, step.

        Returns the per-process sum of the stats vectors.
        """
        module.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        total = None
        rounds = len(micro_batches)
        for k, mb in enumerate(micro_batches):
            with self._keyed_rng(self.state.iteration, phase, self.rank * rounds + k):
                loss_sum, stats = fn(mb)
                loss_sum.backward()
            total = stats if total is None else total + stats
        module.requires_grad_(False)
        self._reduce_and_step(module, opt)
        return total

    def _iteration(self, engine, batch) -> dict:
        o, B, dev = self.options, self.options.batch_size, self.device
        image = batch["image"].to(dev, non_blocking=True).float().contiguous(memory_format=self._memory_format)
        label = as_soft_labels(batch["label"], self.num_classes, name="batch['label']").to(dev)
        if list(image.shape[1:]) != [self.G.img_channels, self.G.img_resolution, self.G.img_resolution]:
            raise ValueError(
                f"batch['image'] has shape {list(image.shape)}; expected "
                f"[N, {self.G.img_channels}, {self.G.img_resolution}, {self.G.img_resolution}]"
            )
        micro = list(zip(image.split(self.batch_gpu), label.split(self.batch_gpu)))
        step = self.state.iteration - 1
        z_dim = self.G.z_dim
        out: dict[str, float] = {}
        stats = []  # (name, tensor sum, divisor) reduced across processes in one all-reduce

        def g_main(mb):
            _, c = mb
            z = torch.randn(c.shape[0], z_dim, device=dev)
            loss, _ = gan_loss.generator_main_loss(
                self.G, self.D, self.augment_pipe, z, self._sample_gen_c(c), o.style_mixing_prob
            )
            return loss.sum() / B, loss.detach().sum().reshape(1)

        with cpu_bf16_math(self.bf16):
            stats.append(("loss_G", self._phase(_PHASE_G_MAIN, self.G, self.opt_G, micro, g_main), B))

        if o.pl_weight > 0 and step % o.pl_interval == 0:
            n_pl = self.batch_gpu // o.pl_batch_shrink
            pl_mean = self.pl_mean.clone()

            def g_reg(mb):
                _, c = mb
                c = self._sample_gen_c(c)[:n_pl]
                z = torch.randn(n_pl, z_dim, device=dev)
                penalty, lengths = gan_loss.path_length_penalty(self.G, z, c, pl_mean)
                loss = penalty.sum() * (o.pl_weight * o.pl_interval) / (B // o.pl_batch_shrink)
                return loss, torch.stack([penalty.detach().sum(), lengths.sum()])

            s = self._phase(_PHASE_G_REG, self.G, self.opt_G, micro, g_reg)
            stats.append(("pl", s, B // o.pl_batch_shrink))

        w_avg = getattr(getattr(self.G, "mapping", None), "w_avg", None)
        ws_sums = []

        def d_main(mb):
            x, c = mb
            z = torch.randn(c.shape[0], z_dim, device=dev)
            gen_c = self._sample_gen_c(c)
            if w_avg is not None:
                with torch.no_grad():
                    ws_sums.append(self.G.mapping(z, gen_c)[:, 0].sum(0))
            loss, real_logits, fake_logits = gan_loss.discriminator_main_loss(
                self.G, self.D, self.augment_pipe, x, c, z, gen_c
            )
            return loss.sum() / B, torch.stack(
                [loss.detach().sum(), real_logits.sign().sum(), real_logits.sum(), fake_logits.sum()]
            )

        with cpu_bf16_math(self.bf16):  # the R1 phase below stays in full float32
            stats.append(("d_main", self._phase(_PHASE_D_MAIN, self.D, self.opt_D, micro, d_main), B))

        if o.r1_gamma > 0 and step % o.r1_interval == 0:

            def d_reg(mb):
                x, c = mb
                penalty, _ = gan_loss.r1_penalty(self.D, self.augment_pipe, x, c)
                return penalty.sum() * (o.r1_gamma / 2 * o.r1_interval) / B, penalty.detach().sum().reshape(1)

            stats.append(("r1", self._phase(_PHASE_D_REG, self.D, self.opt_D, micro, d_reg), B))

        # one all-reduce for every statistic (and the w_avg sum) of this step
        extra = [torch.stack(ws_sums).sum(0)] if ws_sums else []
        flat = torch.cat([s for _, s, _ in stats] + extra)
        if self.world_size > 1:
            flat = _dist().all_reduce(flat)
        values = flat.tolist()
        if ws_sums:
            w_mean = flat[-extra[0].numel() :] / B
            beta = float(getattr(self.G.mapping, "w_avg_beta", 0.995))
            with torch.no_grad():
                w_avg.copy_(w_mean.to(w_avg.dtype).lerp(w_avg, beta))
        i = 0
        for name, s, div in stats:
            v = values[i : i + s.numel()]
            i += s.numel()
            if name == "loss_G":
                out["loss_G"] = v[0] / div
            elif name == "pl":
                out["pl_penalty"], out["pl_length"] = v[0] / div, v[1] / div
                with torch.no_grad():  # update the running mean once, with the global-batch mean
                    self.pl_mean.lerp_(torch.tensor(v[1] / div, device=dev), o.pl_decay)
            elif name == "d_main":
                out["loss_D"] = v[0] / div
                out["real_sign_sum"], out["real_count"] = v[1], float(B)
                out["D_real"], out["D_fake"] = v[2] / div, v[3] / div
            elif name == "r1":
                out["r1_penalty"] = v[0] / div
        return out

    # -- checkpoints ---------------------------------------------------------------------------
    training_format = CHECKPOINT_FORMAT
    training_name = "GAN training"

    def training_state_dict(self) -> dict:
        state = super().training_state_dict()
        state["augment_pipe"] = self.augment_pipe.state_dict() if self.augment_pipe is not None else {}
        state["augment_p"] = float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0
        state["pl_mean"] = self.pl_mean.detach().cpu().clone()
        return state

    def load_training_state(self, state: Mapping) -> None:
        super().load_training_state(state)
        if self.augment_pipe is not None and state["augment_pipe"]:
            self.augment_pipe.load_state_dict(state["augment_pipe"])
        for opt in (self.opt_G, self.opt_D):  # this run's choice of Adam kernel, not the stored one
            for group in opt.param_groups:
                group["fused"] = True if self.fast else None
        self.pl_mean.copy_(state["pl_mean"])

    def _describe_network_change(self, stored_g: Mapping, requested_g: Mapping, shown: str) -> str:
        return (
            f"it was trained with {_describe_networks(stored_g)}, this run asks for {_describe_networks(requested_g)} "
            f"({shown})"
        )


# ---------------------------------------------------------------------------------------------
# factories


def _resolve_preset(preset) -> dict:
    if isinstance(preset, Mapping):
        return dict(preset)
    from gemix_monai.networks.presets import get_preset

    return dict(get_preset(preset))


def build_networks(
    preset,
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    img_channels: int | None = None,
    img_resolution: int | None = None,
):
    """``(G, D, augment_pipe, preset_dict)`` from a preset name or dict, conditioned on K classes."""
    from gemix_monai.networks import AugmentPipe, Discriminator, Generator

    p = _resolve_preset(preset)
    g_kwargs, d_kwargs = dict(p.get("G", {})), dict(p.get("D", {}))
    for kw in (g_kwargs, d_kwargs):
        kw["c_dim"] = num_classes
        if img_channels is not None:
            kw["img_channels"] = img_channels
        if img_resolution is not None:
            kw["img_resolution"] = img_resolution
    G = Generator(class_names=list(class_names) if class_names is not None else None, **g_kwargs)
    D = Discriminator(**d_kwargs)
    augment_pipe = AugmentPipe(**dict(p.get("augment", {})))
    return G, D, augment_pipe, p


def create_gan_trainer(
    train_data,
    *,
    G,
    D,
    augment_pipe=None,
    options: GanTrainingOptions | Mapping | None = None,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    output_dir=None,
    device=None,
    seed: int = 0,
    num_workers: int = 0,
    label_distribution=None,
    checkpoint_kimg: float | None = None,
    sample_kimg: float | None = None,
    log_every: int = 10,
    keep_snapshots: bool = False,
    progress: bool = True,
    resume=None,
    selection=None,
) -> ConditionalGanTrainer:
    """Assemble a :class:`ConditionalGanTrainer` with its standard handlers.

    Handlers, in firing order: generator EMA, ADA p update (when ``options.ada_target`` is set
    and an ``augment_pipe`` is given), and — with an ``output_dir`` — checkpoints every
    ``checkpoint_kimg`` and at the end (plus ``models/generator/generator.pt``), sample grids every
    ``sample_kimg``, TensorBoard scalars every ``log_every`` steps, and a progress bar (rank 0); with a
    ``selection`` (:class:`~gemix_monai.handlers.selection.GeneratorSelection` with validation data) the
    training-time audit keeps ``models/generator/best.pt``. ``resume`` is ``None``, ``"auto"``
    (``output_dir/checkpoints/latest.pt`` when present) or a checkpoint path; a checkpoint that is damaged or was
    trained with other networks, batch size or classes is a ``ValueError`` naming the file, the difference and how
    to start over. Call ``trainer.run()`` to train.
    """
    from gemix_monai.handlers.gan import AdaptiveAugmentHandler, GeneratorEmaHandler

    if options is None:
        options = GanTrainingOptions()
    elif isinstance(options, Mapping):
        options = GanTrainingOptions.from_mapping(options)
    trainer = ConditionalGanTrainer(
        G,
        D,
        augment_pipe,
        train_data,
        options,
        num_classes=num_classes,
        class_names=class_names,
        label_distribution=label_distribution,
        device=device,
        seed=seed,
        num_workers=num_workers,
    )
    GeneratorEmaHandler(options.ema_kimg, options.ema_rampup).attach(trainer)
    if augment_pipe is not None and options.ada_target is not None:
        AdaptiveAugmentHandler(options.ada_target, options.ada_interval, options.ada_kimg).attach(trainer)
    _attach_output_handlers(
        trainer,
        output_dir,
        checkpoint_kimg=checkpoint_kimg,
        sample_kimg=sample_kimg,
        log_every=log_every,
        keep_snapshots=keep_snapshots,
        progress=progress,
        selection=selection,
    )
    _resume_if_asked(trainer, resume, output_dir)
    return trainer


def _attach_output_handlers(
    trainer: GlobalBatchEngine,
    output_dir,
    *,
    checkpoint_kimg: float | None,
    sample_kimg: float | None,
    log_every: int,
    keep_snapshots: bool,
    progress: bool,
    generate_options: Mapping | None = None,
    selection=None,
) -> None:
    """With an ``output_dir``: the training-time audit (``selection``, a :class:`GeneratorSelection` or mapping, when it
    has validation data), checkpoints, sample grids (``generate_options`` go to the generator), TensorBoard
    scalars, in that firing order; then a progress bar on rank 0. Checkpoints and grids default to every quarter
    of ``max_kimg`` (at least every step), the audit to every fifth."""
    from gemix_monai.engines.features import selection_feature_space
    from gemix_monai.handlers.gan import GanCheckpointHandler, GanTensorBoardHandler, SampleGridHandler, TrainingClock
    from gemix_monai.handlers.selection import GeneratorSelection, GeneratorSelectionHandler

    options = trainer.options
    TrainingClock().attach(trainer)
    if isinstance(selection, Mapping):
        selection = GeneratorSelection(**selection)
    if output_dir is not None:
        output_dir = Path(output_dir)
        every = max(options.max_kimg / 4, options.batch_size / 1000)
        if selection is not None and selection.enabled:
            every_audit = selection.every_kimg or max(options.max_kimg / 5, options.batch_size / 1000)
            GeneratorSelectionHandler(
                output_dir, selection, every_audit, generate_options, feature_space=selection_feature_space
            ).attach(trainer)
        GanCheckpointHandler(output_dir, every_kimg=checkpoint_kimg or every, keep_snapshots=keep_snapshots).attach(
            trainer
        )
        SampleGridHandler(
            output_dir / "samples",
            every_kimg=sample_kimg or every,
            seed=trainer.seed,
            generate_options=generate_options,
        ).attach(trainer)
        GanTensorBoardHandler(output_dir / "tensorboard", every_n_iterations=log_every).attach(trainer)
    if progress and trainer.rank == 0:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(
            trainer, output_transform=lambda out: {k: out[k] for k in ("loss_G", "loss_D") if k in out}
        )


def _resume_if_asked(trainer: GlobalBatchEngine, resume, output_dir) -> None:
    """``resume``: ``None`` (start fresh), ``"auto"`` (``output_dir/checkpoints/latest.pt`` when present) or a path."""
    if resume is None:
        return
    if resume == "auto":
        if output_dir is None:
            raise ValueError("resume='auto' needs an output_dir to look for checkpoints/latest.pt in")
        path = Path(output_dir) / "checkpoints" / "latest.pt"
        if not path.is_file():
            return
    else:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(
                f"resume checkpoint not found: {path} (resume takes None, 'auto' or a checkpoint path)"
            )
    _resume(trainer, path, output_dir)


def _preset_names_of(g_config: Mapping) -> list[str]:
    """Presets whose generator architecture (their ``G`` kwargs) matches ``g_config``."""
    from gemix_monai.networks.presets import PRESET_NAMES, get_preset

    g = plain_data(dict(g_config), otherwise="str")
    return [
        name
        for name in PRESET_NAMES
        if all(g.get(k) == v for k, v in plain_data(get_preset(name)["G"], otherwise="str").items())
    ]


def _describe_networks(g_config: Mapping) -> str:
    names = _preset_names_of(g_config)
    return f"preset {names[0]!r}" if names else "a custom network config"


def _resume_error(path: Path, output_dir, detail: str, what: str = "GAN training") -> ValueError:
    fresh = f"a new output_dir (instead of {output_dir})" if output_dir is not None else "a new output_dir"
    return ValueError(
        f"cannot resume {what} from {path}: {detail}. To start over, train into {fresh} "
        "or pass resume=None (command line: --set resume=None; this overwrites that folder's checkpoints)"
    )


def _resume(trainer: GlobalBatchEngine, path: Path, output_dir) -> None:
    """Load ``path`` into ``trainer``; every failure names the file, what differs and how to start over.

    A damaged ``latest.pt`` is an error, not a silent fall-back to an older snapshot: checkpoints are written
    atomically, so damage means something outside training touched the file and a person should choose
    (numbered snapshots, when kept, are listed in the message and resume with ``resume=<snapshot path>``).
    """
    what, expected = trainer.training_name, trainer.training_format

    def error(detail: str) -> ValueError:
        return _resume_error(path, output_dir, detail, what)

    try:
        state = safe_torch_load(path, map_location="cpu")
    except ValueError as e:
        snapshots = sorted(path.parent.glob("gan-*kimg.pt"))
        hint = f" (numbered snapshots beside it: {', '.join(p.name for p in snapshots)})" if snapshots else ""
        raise error(f"the file cannot be read, it is damaged or truncated{hint}: {e}") from e
    if not isinstance(state, Mapping) or state.get("format") != expected:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise error(f"not a {what} checkpoint (format {found!r}, expected {expected!r})")
    stored = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    requested = {net: dict(getattr(getattr(trainer, net), "init_kwargs", None) or {}) for net in ("G", "D")}
    diffs = []
    for net in ("G", "D"):
        a, b = (plain_data(dict(cfg), otherwise="str") for cfg in (stored.get(net) or {}, requested[net]))
        diffs += [
            f"{net}.{k}: stored {a.get(k)!r}, requested {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if k != "class_names" and a.get(k) != b.get(k)
        ]
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        raise error(trainer._describe_network_change(stored.get("G") or {}, requested["G"], shown))
    try:
        trainer.load_training_state(state)
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise error(f"{type(e).__name__}: {e}") from e
    trainer.logger.info("resumed from %s at iteration %d", path, trainer.state.iteration)


def _as_dataset(train_data):
    if isinstance(train_data, torch.utils.data.DataLoader):
        # the loader's own sampler cannot resume mid-epoch; its dataset is re-batched by a
        # GlobalBatchSampler so that the data order is reproducible and resumable
        return train_data.dataset
    if isinstance(train_data, torch.utils.data.Dataset):
        return train_data
    if isinstance(train_data, Sequence) and not isinstance(train_data, (str, bytes)):
        from monai.data import Dataset

        return Dataset(list(train_data))
    raise TypeError(
        f"train_data must be a Dataset, DataLoader or list of {{'image', 'label'}} dicts, "
        f"got {type(train_data).__name__}"
    )


def _resolve_classes(caller: str, num_classes, class_names, options: Mapping, options_type) -> tuple[int, list]:
    """``(K, class names)`` of a ``train_*`` entry point from either argument (``class_0..`` by default); refuses
    ``options`` that are not fields of the ``options_type`` dataclass."""
    if class_names is None and num_classes is None:
        raise ValueError(f"{caller} needs num_classes or class_names")
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
    num_classes = num_classes if num_classes is not None else len(class_names)
    class_names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    unknown = set(options) - {f.name for f in dataclasses.fields(options_type)}
    if unknown:
        raise TypeError(f"{caller} got unknown options {sorted(unknown)}; see {options_type.__name__}")
    return num_classes, class_names


def _data_channels(dataset) -> int | None:
    """Channels the networks need from the data's contract: ``channels`` plus ``mask_channels`` (image–mask pairs,
    docs/segmentation.md); ``None`` (the preset's) for data without a contract."""
    preprocessing = getattr(getattr(dataset, "contract", None), "preprocessing", None)
    if preprocessing is None:
        return None
    return int(preprocessing.channels) + int(getattr(preprocessing, "mask_channels", 0) or 0)


def _train_process(local_rank, cfg: dict):
    """Body of :func:`train_gan` in each process (also the single-process path)."""
    torch.manual_seed(cfg["seed"])  # network initialisation; identical in every process
    G, D, augment_pipe, preset = build_networks(
        cfg["preset"], num_classes=cfg["num_classes"], class_names=cfg["class_names"], img_channels=cfg["img_channels"]
    )
    opts = {k: v for k, v in preset.items() if k not in ("G", "D", "augment")}
    opts.update({k: v for k, v in cfg["options"].items() if v is not None})
    options = GanTrainingOptions.from_mapping(opts)
    trainer = create_gan_trainer(
        cfg["dataset"],
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=options,
        num_classes=cfg["num_classes"],
        class_names=cfg["class_names"],
        output_dir=cfg["output_dir"],
        device=cfg["device"],
        seed=cfg["seed"],
        num_workers=cfg["num_workers"],
        checkpoint_kimg=cfg["checkpoint_kimg"],
        sample_kimg=cfg["sample_kimg"],
        log_every=cfg["log_every"],
        keep_snapshots=cfg["keep_snapshots"],
        progress=cfg["progress"],
        resume=cfg["resume"],
        selection=cfg["selection"],
    )
    trainer.run()
    return trainer


def train_gan(
    train_data,
    output_dir,
    *,
    preset="tiny",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    max_kimg: float | None = None,
    batch_size: int | None = None,
    batch_gpu: int | None = None,
    seed: int = 0,
    resume=None,
    device=None,
    num_workers: int = 0,
    checkpoint_kimg: float | None = None,
    sample_kimg: float | None = None,
    log_every: int = 10,
    keep_snapshots: bool = False,
    progress: bool = True,
    nproc_per_node: int | None = None,
    backend: str | None = None,
    selection=None,
    **options,
) -> Path:
    """Train a conditional StyleGAN2-ADA on ``train_data`` and return ``output_dir/models/generator/generator.pt``.

    Args:
        train_data: a map-style dataset (e.g. ``monai.data.Dataset``), a ``DataLoader`` (its
            dataset is used; batching is redone reproducibly) or a list of
            ``{"image": [C, R, R] in [-1, 1], "label": int}`` dicts.
        output_dir: where ``checkpoints/``, ``models/generator/generator.pt``, ``samples/`` and
            ``tensorboard/`` go (see the module docstring).
        preset: a name for ``gemix_monai.networks.presets.get_preset`` or a dict with ``G``/``D``
            kwargs and training hyper-parameters.
        num_classes / class_names: K and the class names (one of the two is needed).
        max_kimg: training length in thousands of real images; ``batch_size`` the global batch,
            ``batch_gpu`` the micro-batch per process (the preset's values by default).
        seed: network initialisation, data order and every per-step random draw.
        resume: ``None``, ``"auto"`` (continue from ``output_dir/checkpoints/latest.pt`` if
            present) or a checkpoint path.
        device: defaults to CUDA when available (per process), else CPU.
        nproc_per_node: > 1 trains with that many processes through ``ignite.distributed``
            (``backend`` defaults to NCCL on GPUs, gloo on CPU).
        selection: the training-time audit (:class:`~gemix_monai.handlers.selection.GeneratorSelection` or a
            mapping of its fields); with validation data it keeps ``models/generator/best.pt`` by its criterion.
        **options: any :class:`GanTrainingOptions` field (e.g. ``r1_gamma``, ``ema_kimg``).
    """
    num_classes, class_names = _resolve_classes("train_gan", num_classes, class_names, options, GanTrainingOptions)
    options.update(max_kimg=max_kimg, batch_size=batch_size, batch_gpu=batch_gpu)
    dataset = paired_for_training(_as_dataset(train_data))  # masks in the data: train on pairs
    cfg = dict(
        dataset=dataset,
        img_channels=_data_channels(dataset),
        output_dir=str(output_dir),
        preset=preset,
        num_classes=num_classes,
        class_names=class_names,
        options=options,
        seed=seed,
        resume=resume,
        device=device,
        num_workers=num_workers,
        checkpoint_kimg=checkpoint_kimg,
        sample_kimg=sample_kimg,
        log_every=log_every,
        keep_snapshots=keep_snapshots,
        progress=progress,
        selection=selection,
    )
    if nproc_per_node and nproc_per_node > 1:
        idist = _dist()
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        with idist.Parallel(backend=backend, nproc_per_node=nproc_per_node) as parallel:
            parallel.run(_train_process, cfg)
    else:
        _train_process(0, cfg)
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    return Path(output_dir) / GENERATOR_SUBPATH
