"""What every generator trainer shares (StyleGAN2 in :mod:`gemix_monai.engines.gan`, DCGAN and diffusion in
:mod:`gemix_monai.engines.generative`): the global-batch engine, its resumable data order, per-step randomness
keyed by position, exact resume from a checkpoint, and the output handlers a :class:`RunSettings` asks for.

One iteration consumes one *global batch* of ``batch_size`` real images; the data order is a pure function of
``(seed, batch index)`` (:class:`GlobalBatchSampler`) and every random draw of a step comes from a generator seeded
by ``(seed, iteration, phase, micro-batch)``, so a run killed and resumed from ``checkpoints/latest.pt`` repeats the
uninterrupted run exactly (CPU). Details: docs/maths.md §2 and the module docstring of :mod:`gemix_monai.engines.gan`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from ignite.engine import Engine

from gemix_monai.data.masks import trained_contract
from gemix_monai.engines.run import RunSettings, merge_run_keywords
from gemix_monai.mixing.labels import labels_of, to_soft_label
from gemix_monai.mixing.samplers import class_balance_shares, class_balance_weights
from gemix_monai.utils import plain_data, safe_torch_load

__all__ = [
    "GlobalBatchEngine",
    "GlobalBatchSampler",
    "validate_gan_dataset",
    "get_rng_state",
    "set_rng_state",
    "attach_output_handlers",
    "trainer_settings",
    "engine_settings",
    "resume_if_asked",
    "as_training_dataset",
    "resolve_classes",
    "data_channels",
]


def as_soft_labels(labels, num_classes: int, name: str = "labels"):
    """Batch labels (class indices ``[N]``/``[N, 1]`` or soft labels ``[N, K]``) -> ``[N, K]``: the one validator of
    :mod:`gemix_monai.mixing.labels` with ``batched=True`` (a 1-D vector is always a batch of indices)."""
    return to_soft_label(labels, num_classes, name=name, batched=True)


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
    if not bool(torch.isfinite(image).all()):  # NaN compares false with any bound: the range check would pass it
        raise ValueError("train_data[0]['image'] holds NaN or infinite values; fix or drop that image")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1.05 or hi > 1.05:
        raise ValueError(f"train_data[0]['image'] intensities span [{lo:.3g}, {hi:.3g}]; expected the range [-1, 1]")
    labels = labels_of(dataset, load_items=False)  # only labels readable without loading images
    for row, lab in enumerate(labels or ()):
        if not 0 <= lab < num_classes:
            raise ValueError(
                f"train_data[{row}]['label'] = {lab} is out of range; expected a class index 0..{num_classes - 1}"
            )
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
        weights: Sequence[float] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
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


def _dist():
    import ignite.distributed as idist

    return idist


def dataset_fingerprint(dataset) -> dict:
    """``{"sha256", "source", "num_items"}`` of a training set, so that a resumed run can refuse other data.

    The hash covers every item's label and, for items read from files, the file's path relative to the items' common
    folder and its size (a moved or copied folder keeps its fingerprint; another dataset, even with the same class
    names, does not), or, for items held in memory, the image bytes. Reading no image, it costs a ``stat`` per file.
    """
    import hashlib

    base = getattr(dataset, "dataset", dataset)  # image–mask pair views wrap the dataset
    items = getattr(base, "data", base)
    h = hashlib.sha256()
    h.update(np.asarray(labels_of(dataset), dtype=np.int64).tobytes())
    if isinstance(items, Sequence) and items and all(isinstance(i, Mapping) for i in items):
        paths = [i.get("image") for i in items]
        if all(isinstance(p, (str, os.PathLike)) for p in paths):
            absolute = [os.path.abspath(p) for p in paths]
            root = os.path.commonpath(absolute) if len(absolute) > 1 else os.path.dirname(absolute[0])
            for p in absolute:
                h.update(os.path.relpath(p, root).encode())
                h.update(str(os.path.getsize(p) if os.path.exists(p) else -1).encode())
        else:
            for p in paths:
                h.update(np.ascontiguousarray(np.asarray(torch.as_tensor(p).cpu())).tobytes())
    source = getattr(dataset, "source", None) or getattr(base, "source", None)
    described = str(source) if source is not None else "in-memory data"
    return {"sha256": h.hexdigest(), "source": described, "num_items": len(dataset)}


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
        self.train_data, self._train_labels = train_data, None
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
            labels = self.train_labels
            per_class = class_balance_weights(labels, self.num_classes, mode)
            self._item_weights = [per_class[y] for y in labels]
        return self._item_weights

    def class_shares(self) -> list[float]:
        """The share of each class among the real images this run shows (after ``class_balance``)."""
        return class_balance_shares(self.train_labels, self.num_classes, getattr(self.options, "class_balance", "none"))

    @property
    def train_labels(self) -> list[int]:
        """The training items' labels, read once (``labels_of`` may load every item of a dataset without a
        ``labels`` attribute; the class shares are recorded at every checkpoint)."""
        if getattr(self, "_train_labels", None) is None:
            self._train_labels = labels_of(self.train_data)
        return self._train_labels

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
            "data": {
                "seed": self.seed,
                "next_global_batch": self.state.iteration,
                "num_items": len(self.train_data),
                "fingerprint": self.data_fingerprint,
            },
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

    @property
    def data_fingerprint(self) -> dict:
        """What identifies the training data across runs and moves (:func:`dataset_fingerprint`), computed once."""
        if getattr(self, "_data_fingerprint", None) is None:
            self._data_fingerprint = dataset_fingerprint(self.train_data)
        return self._data_fingerprint

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
        stored_data = (state.get("data") or {}).get("fingerprint")
        if stored_data and stored_data["sha256"] != self.data_fingerprint["sha256"]:
            raise ValueError(
                f"it was trained on other data ({stored_data['source']}: {stored_data['num_items']} images, "
                f"fingerprint {stored_data['sha256'][:12]}) than this run's ({self.data_fingerprint['source']}: "
                f"{self.data_fingerprint['num_items']} images, fingerprint {self.data_fingerprint['sha256'][:12]}); "
                "continuing would mix two datasets in one generator"
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


# ---------------------------------------------------------------------------------------------
# run settings: output handlers and exact resume


def engine_settings(run: RunSettings) -> dict:
    """The trainer classes' keyword arguments that come from ``run``: ``device``, ``seed``, ``num_workers``."""
    return {"device": run.device, "seed": run.seed, "num_workers": run.num_workers}


def trainer_settings(caller: str, run, run_keywords: dict, output_dir, options, options_type):
    """``(RunSettings, options)`` of a ``create_*_trainer``: ``run`` with the deprecated run keywords and
    ``output_dir`` applied (anything else in ``run_keywords`` is a ``TypeError`` naming it), and ``options`` as an
    ``options_type`` (default its defaults; a mapping through ``options_type.from_mapping``)."""
    run = merge_run_keywords(run, run_keywords, caller, output_dir=output_dir, stacklevel=4)
    if run_keywords:
        raise TypeError(f"{caller} got unexpected keyword arguments {sorted(run_keywords)}")
    if options is None:
        options = options_type()
    elif isinstance(options, Mapping):
        options = options_type.from_mapping(options)
    return run, options


def attach_output_handlers(
    trainer: GlobalBatchEngine, run: RunSettings, *, generate_options: Mapping | None = None, selection=None
) -> None:
    """The handlers ``run`` asks for, in firing order: the training clock; with an ``output_dir`` the training-time
    audit (``selection``, a :class:`GeneratorSelection` or mapping, when it has validation data), checkpoints, sample
    grids (``generate_options`` go to the generator), TensorBoard scalars (``run.tracking``); then the kimg progress
    (:class:`~gemix_monai.handlers.progress.KimgProgress`: tick lines in the log, and a bar on rank 0 with
    ``run.progress``). Checkpoints and grids default to every quarter of ``max_kimg`` (at least every step),
    the audit to every fifth."""
    from gemix_monai.engines.features import selection_feature_space
    from gemix_monai.handlers.gan import GanCheckpointHandler, GanTensorBoardHandler, SampleGridHandler, TrainingClock
    from gemix_monai.handlers.progress import KimgProgress
    from gemix_monai.handlers.selection import GeneratorSelection, GeneratorSelectionHandler

    options = trainer.options
    TrainingClock().attach(trainer)
    if isinstance(selection, Mapping):
        selection = GeneratorSelection(**selection)
    if run.output_dir is not None:
        output_dir = Path(run.output_dir)
        every = max(options.max_kimg / 4, options.batch_size / 1000)
        if selection is not None and selection.enabled:
            every_audit = selection.every_kimg or max(options.max_kimg / 5, options.batch_size / 1000)
            GeneratorSelectionHandler(
                output_dir, selection, every_audit, generate_options, feature_space=selection_feature_space
            ).attach(trainer)
        GanCheckpointHandler(
            output_dir, every_kimg=run.checkpoint_kimg or every, keep_snapshots=run.keep_snapshots
        ).attach(trainer)
        SampleGridHandler(
            output_dir / "samples",
            every_kimg=run.sample_kimg or every,
            seed=trainer.seed,
            generate_options=generate_options,
        ).attach(trainer)
        if run.tracking:
            GanTensorBoardHandler(output_dir / "tensorboard", every_n_iterations=run.log_every).attach(trainer)
    # kimg, not passes over the data: the budget's own unit, ending at 100 % (handlers/progress.py)
    KimgProgress(bar=run.progress and trainer.rank == 0).attach(trainer)


def resume_if_asked(trainer: GlobalBatchEngine, resume, output_dir) -> None:
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
        # from None: the command line prints the innermost cause of a chain, and this message already carries it
        # together with the file and how to start over
        raise error(f"{type(e).__name__}: {e}") from None
    trainer.logger.info("resumed from %s at iteration %d", path, trainer.state.iteration)


def as_training_dataset(train_data):
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


def resolve_classes(caller: str, num_classes, class_names, options: Mapping, options_type) -> tuple[int, list]:
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


def data_channels(dataset) -> int | None:
    """Channels the networks need from the data's contract: ``channels`` plus ``mask_channels`` (image–mask pairs,
    docs/segmentation.md); ``None`` (the preset's) for data without a contract."""
    preprocessing = getattr(getattr(dataset, "contract", None), "preprocessing", None)
    if preprocessing is None:
        return None
    return int(preprocessing.channels) + int(getattr(preprocessing, "mask_channels", 0) or 0)
