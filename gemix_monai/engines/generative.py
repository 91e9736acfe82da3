"""Ignite training of the DCGAN and diffusion generator families, and ``train_generator`` for all three.

The engine follows the StyleGAN2 engine (:mod:`gemix_monai.engines.gan`): a plain Ignite ``Engine`` whose
process function runs one optimisation step per *global batch*; the data order is a pure function of
``(seed, batch index)`` (``GlobalBatchSampler``) and every random draw of a step (latents, diffusion noise and
timesteps, condition dropout) comes from a generator seeded by ``(seed, iteration, phase)``, so a run killed and
resumed from ``checkpoints/latest.pt`` repeats the uninterrupted run exactly (CPU). The StyleGAN2 handlers are
reused: EMA of the generator (``GeneratorEmaHandler``), atomic checkpoints + ``models/generator/generator.pt``
(``GanCheckpointHandler``), sample grids (``SampleGridHandler``), TensorBoard scalars.

Steps:

* ``dcgan``: D step ``softplus(D(G(z, c), c)) + softplus(-D(x, c))``, then G step ``softplus(-D(G(z, c), c))``
  (non-saturating), Adam(β = 0.5, 0.999); the generator is conditioned on the real batch's labels.
* ``diffusion``: ``DDPMScheduler`` noise at uniform timesteps, ε-MSE through ``DiffusionInferer``; the condition
  is replaced by the null (zero) context with probability ``p_uncond`` (classifier-free guidance); AdamW.

Single process only (multi-GPU training is the StyleGAN2 engine's). Output layout as :func:`~gemix_monai.engines.gan.train_gan`:
``checkpoints/latest.pt`` (format ``gemix-dcgan-training/1`` / ``gemix-diffusion-training/1``), ``models/generator/generator.pt``
(``gemix-dcgan/1`` / ``gemix-diffusion/1``, the EMA generator), ``samples/fakes-<images>.png``, ``tensorboard/``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine

from gemix_monai.data.masks import paired_for_training, trained_contract
from gemix_monai.mixing.labels import to_soft_label
from gemix_monai.utils import safe_torch_load

from .gan import (
    GlobalBatchSampler,
    _as_dataset,
    _collate,
    _item_labels,
    _plain_config,
    get_rng_state,
    set_rng_state,
    train_gan,
    validate_gan_dataset,
)

__all__ = [
    "GENERATOR_FAMILIES",
    "GenerativeTrainingOptions",
    "GenerativeTrainer",
    "build_family_networks",
    "create_generative_trainer",
    "train_family",
    "train_generator",
]

GENERATOR_FAMILIES = ("stylegan2", "dcgan", "diffusion")


@dataclass
class GenerativeTrainingOptions:
    """Hyper-parameters of a DCGAN or diffusion run. ``batch_size`` [images per step]; ``max_kimg`` [thousands of
    real images]; ``g_lr``/``d_lr``/``betas``: the DCGAN's Adam; ``lr``: the diffusion model's AdamW;
    ``p_uncond``: probability of the null condition (diffusion); ``ema_kimg``/``ema_rampup``: generator EMA
    half-life [kimg] and ramp-up; ``sample_steps``: DDIM steps of the sample grids (diffusion)."""

    batch_size: int = 16
    max_kimg: float = 1.0
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr: float = 1e-3
    weight_decay: float = 0.0
    p_uncond: float = 0.1
    ema_kimg: float = 1.0
    ema_rampup: float | None = 0.05
    sample_steps: int = 10

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        for name in ("batch_size", "sample_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GenerativeTrainingOptions.{name} must be a positive integer, got {value!r}")
        for name in ("max_kimg", "g_lr", "d_lr", "lr", "ema_kimg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"GenerativeTrainingOptions.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.p_uncond < 1.0:
            raise ValueError(f"GenerativeTrainingOptions.p_uncond must be in [0, 1), got {self.p_uncond!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "GenerativeTrainingOptions":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None})

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out


def _check_family(family: str) -> str:
    if family not in GENERATOR_FAMILIES:
        raise ValueError(f"unknown generator family {family!r}; expected one of {list(GENERATOR_FAMILIES)}")
    return family


def build_family_networks(
    family: str, preset="tiny", *, num_classes: int, class_names: Sequence[str] | None = None, img_channels: int = 1
):
    """``(G, D or None, preset dict)`` for ``family`` in ``dcgan``/``diffusion`` (``preset`` a name or dict)."""
    family = _check_family(family)
    if family == "dcgan":
        from gemix_monai.networks.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_preset

        p = dict(preset) if isinstance(preset, Mapping) else dcgan_preset(preset)
        G = DCGANGenerator(c_dim=num_classes, img_channels=img_channels, class_names=class_names, **p["G"])
        D = DCGANDiscriminator(c_dim=num_classes, img_channels=img_channels, **p["D"])
        return G, D, p
    if family == "diffusion":
        from gemix_monai.networks.diffusion import ConditionalDiffusionGenerator, diffusion_preset

        p = dict(preset) if isinstance(preset, Mapping) else diffusion_preset(preset)
        G = ConditionalDiffusionGenerator(
            c_dim=num_classes, img_channels=img_channels, class_names=class_names, **p["G"]
        )
        return G, None, p
    raise ValueError(
        "build_family_networks builds dcgan/diffusion networks; StyleGAN2 networks come from "
        "gemix_monai.engines.gan.build_networks"
    )


class GenerativeTrainer(Engine):
    """Ignite engine training a DCGAN (``D`` given) or a diffusion generator (``D=None``); see the module docstring.

    Attributes used by the shared handlers: ``G``, ``G_ema``, ``D``, ``options`` (``batch_size``), ``images_seen``,
    ``class_names``, ``rank``, ``stateful_handlers``, ``training_state_dict()``.
    """

    def __init__(
        self,
        family: str,
        G,
        D,
        train_data,
        options: GenerativeTrainingOptions,
        *,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        device=None,
        seed: int = 0,
        num_workers: int = 0,
    ):
        super().__init__(self._iteration)
        self.family = _check_family(family)
        if self.family == "stylegan2":
            raise ValueError("StyleGAN2 is trained by gemix_monai.engines.gan (train_gan / ConditionalGanTrainer)")
        if (D is None) != (self.family == "diffusion"):
            raise ValueError(
                f"family {family!r}: {'no discriminator' if family == 'diffusion' else 'a discriminator'} expected"
            )
        self.rank, self.world_size = 0, 1
        self.device = (
            torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.options, self.seed, self.num_workers = options, int(seed), num_workers
        self.num_classes = int(num_classes)
        if G.c_dim != self.num_classes:
            raise ValueError(f"num_classes={num_classes} but the generator was built with c_dim={G.c_dim}")
        self.class_names = list(class_names) if class_names is not None else list(G.class_names)
        if self.class_names != list(G.class_names):
            raise ValueError(
                f"class_names {self.class_names} differ from the generator's class_names {list(G.class_names)}"
            )
        self.train_data = train_data
        validate_gan_dataset(
            train_data, img_resolution=G.img_resolution, img_channels=G.img_channels, num_classes=self.num_classes
        )
        contract = getattr(train_data, "contract", None)
        self.contract = trained_contract(contract, train_data)  # mask_channels only when trained on pairs
        if self.contract is not None:
            if list(self.contract["class_names"]) != self.class_names:
                raise ValueError(
                    f"the training data's classes {self.contract['class_names']} differ from class_names "
                    f"{self.class_names}"
                )
            G.contract = self.contract
        self.G = G.to(self.device).train()
        self.D = D.to(self.device).train() if D is not None else None
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        o = options
        if self.family == "dcgan":
            self.opt_G = torch.optim.Adam(self.G.parameters(), lr=o.g_lr, betas=o.betas)
            self.opt_D = torch.optim.Adam(self.D.parameters(), lr=o.d_lr, betas=o.betas)
        else:
            from monai.inferers import DiffusionInferer

            self.opt_G = torch.optim.AdamW(self.G.parameters(), lr=o.lr, weight_decay=o.weight_decay)
            self.opt_D = None
            self.scheduler = self.G.train_scheduler()
            self.inferer = DiffusionInferer(self.scheduler)
        self.stateful_handlers: dict[str, Any] = {}
        labels = _item_labels(train_data)
        self.label_counts = np.bincount(labels, minlength=self.num_classes).tolist() if labels else None

    # -- counters / data (as the StyleGAN2 engine) -------------------------------------------------
    @property
    def images_seen(self) -> int:
        return self.state.iteration * self.options.batch_size

    @property
    def max_iterations(self) -> int:
        return max(1, math.ceil(self.options.max_kimg * 1000 / self.options.batch_size))

    def make_data_loader(self, start_batch: int = 0) -> torch.utils.data.DataLoader:
        sampler = GlobalBatchSampler(
            len(self.train_data), self.options.batch_size, seed=self.seed, start_batch=start_batch
        )
        return torch.utils.data.DataLoader(
            self.train_data,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
        )

    def run(self, data=None, max_epochs=None, epoch_length=None, max_iters=None):  # noqa: D401
        """Train until ``options.max_kimg`` (or ``max_iters``), continuing from the current iteration."""
        if data is None:
            data = self.make_data_loader(start_batch=self.state.iteration)
        if max_epochs is None and max_iters is None:
            max_iters = self.max_iterations
        if epoch_length is None and self.state.epoch_length is None:
            epoch_length = len(data) if hasattr(data, "__len__") else None
        if max_iters is not None and self.state.iteration >= max_iters:
            return self.state
        return super().run(data, max_epochs=max_epochs, epoch_length=epoch_length, max_iters=max_iters)

    @contextmanager
    def _keyed_rng(self, iteration: int, phase: int):
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=self.device.type if devices else "cuda"):
            s = np.random.SeedSequence([self.seed, iteration, phase, 0x6E4E]).generate_state(2)
            torch.manual_seed(int(s[0]) << 31 ^ int(s[1]))
            yield

    # -- one step ----------------------------------------------------------------------------------
    def _iteration(self, engine, batch) -> dict:
        dev, it = self.device, self.state.iteration
        x = batch["image"].to(dev, non_blocking=True).float()
        c = to_soft_label(batch["label"], self.num_classes, name="batch['label']", batched=True).to(dev)
        if self.family == "dcgan":
            with self._keyed_rng(it, 0):
                self.D.requires_grad_(True)
                z = torch.randn(x.shape[0], self.G.z_dim, device=dev)
                with torch.no_grad():
                    fake = self.G(z, c, check_labels=False)
                real_logits, fake_logits = self.D(x, c), self.D(fake, c)
                loss_d = (F.softplus(fake_logits) + F.softplus(-real_logits)).mean()
                self.opt_D.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_D.step()
            with self._keyed_rng(it, 1):
                self.D.requires_grad_(False)
                z = torch.randn(x.shape[0], self.G.z_dim, device=dev)
                loss_g = F.softplus(-self.D(self.G(z, c, check_labels=False), c)).mean()
                self.opt_G.zero_grad(set_to_none=True)
                loss_g.backward()
                self.opt_G.step()
            return {
                "loss_G": float(loss_g.detach()),
                "loss_D": float(loss_d.detach()),
                "D_real": float(real_logits.detach().mean()),
                "D_fake": float(fake_logits.detach().mean()),
            }
        with self._keyed_rng(it, 0):
            noise = torch.randn_like(x)
            t = torch.randint(0, self.scheduler.num_train_timesteps, (x.shape[0],), device=dev).long()
            keep = (torch.rand(x.shape[0], device=dev) >= self.options.p_uncond).float()[:, None]
            cond = self.G.context(c * keep)  # dropped rows: the zero (null) context
            pred = self.inferer(
                inputs=x, diffusion_model=self.G.unet, noise=noise, timesteps=t, condition=cond, mode="crossattn"
            )
            loss = F.mse_loss(pred.float(), noise)
            self.opt_G.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_G.step()
        return {"loss_G": float(loss.detach())}

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def training_format(self) -> str:
        return type(self.G).TRAINING_FORMAT

    def training_state_dict(self) -> dict:
        """Everything needed to continue exactly; only tensors/numbers/strings/lists/dicts inside."""
        return {
            "format": self.training_format,
            "family": self.family,
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
                "G": dict(self.G.init_kwargs),
                "D": dict(getattr(self.D, "init_kwargs", {}) or {}),
                "options": self.options.to_dict(),
                "num_classes": self.num_classes,
                "family": self.family,
            },
            "class_names": list(self.class_names),
            "contract": self.contract,
        }

    def load_training_state(self, state: Mapping) -> None:
        if state.get("format") != self.training_format:
            raise ValueError(
                f"not a {self.family} training checkpoint: format={state.get('format')!r}, "
                f"expected {self.training_format!r}"
            )
        if state["counters"]["batch_size"] != self.options.batch_size:
            raise ValueError(
                f"checkpoint was trained with batch_size={state['counters']['batch_size']}, this run uses "
                f"{self.options.batch_size}; exact resume needs the same batch size"
            )
        if list(state["class_names"]) != self.class_names:
            raise ValueError(f"checkpoint class_names {state['class_names']} differ from {self.class_names}")
        stored = state.get("contract")
        if stored is not None and self.contract is not None and stored != self.contract:
            raise ValueError(
                f"the checkpoint was trained on data preprocessed as {stored.get('preprocessing')}, this "
                f"run's data is {self.contract.get('preprocessing')}"
            )
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        if self.D is not None:
            self.D.load_state_dict(state["D"])
            self.opt_D.load_state_dict(state["opt_D"])
        for name, h in self.stateful_handlers.items():
            if name in state["handlers"]:
                h.load_state_dict(state["handlers"][name])
        set_rng_state(state["rng"])
        it = int(state["counters"]["iteration"])
        epoch_length = math.ceil(len(self.train_data) / self.options.batch_size)
        self.load_state_dict({"iteration": it, "epoch_length": epoch_length, "max_iters": max(it, self.max_iterations)})


def _resume(trainer: GenerativeTrainer, path: Path, output_dir) -> None:
    def error(detail):
        return ValueError(
            f"cannot resume {trainer.family} training from {path}: {detail}. To start over, train into a "
            f"new output_dir (instead of {output_dir}) or pass resume=None"
        )

    try:
        state = safe_torch_load(path, map_location="cpu")
    except ValueError as e:
        raise error(f"the file cannot be read, it is damaged or truncated: {e}") from e
    if not isinstance(state, Mapping) or state.get("format") != trainer.training_format:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise error(f"format {found!r}, expected {trainer.training_format!r} (another generator family or file)")
    stored = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    diffs = []
    for net, mod in (("G", trainer.G), ("D", trainer.D)):
        a = _plain_config(dict(stored.get(net) or {}))
        b = _plain_config(dict(getattr(mod, "init_kwargs", {}) or {}))
        diffs += [
            f"{net}.{k}: stored {a.get(k)!r}, requested {b.get(k)!r}"
            for k in sorted(set(a) | set(b))
            if k != "class_names" and a.get(k) != b.get(k)
        ]
    if diffs:
        raise error("it was trained with other networks (" + "; ".join(diffs[:8]) + ")")
    try:
        trainer.load_training_state(state)
    except (ValueError, KeyError, RuntimeError, TypeError) as e:
        raise error(f"{type(e).__name__}: {e}") from e
    trainer.logger.info("resumed from %s at iteration %d", path, trainer.state.iteration)


def create_generative_trainer(
    family: str,
    train_data,
    *,
    G,
    D=None,
    options=None,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    output_dir=None,
    device=None,
    seed: int = 0,
    num_workers: int = 0,
    checkpoint_kimg: float | None = None,
    sample_kimg: float | None = None,
    log_every: int = 10,
    keep_snapshots: bool = False,
    progress: bool = True,
    resume=None,
) -> GenerativeTrainer:
    """A :class:`GenerativeTrainer` with the StyleGAN2 engine's handlers (EMA; with an ``output_dir``: checkpoints,
    sample grids, TensorBoard); ``resume`` is ``None``, ``"auto"`` or a checkpoint path, as for ``create_gan_trainer``."""
    from gemix_monai.handlers.gan import (
        GanCheckpointHandler,
        GanTensorBoardHandler,
        GeneratorEmaHandler,
        SampleGridHandler,
    )

    if options is None:
        options = GenerativeTrainingOptions()
    elif isinstance(options, Mapping):
        options = GenerativeTrainingOptions.from_mapping(options)
    trainer = GenerativeTrainer(
        family,
        G,
        D,
        train_data,
        options,
        num_classes=num_classes,
        class_names=class_names,
        device=device,
        seed=seed,
        num_workers=num_workers,
    )
    GeneratorEmaHandler(options.ema_kimg, options.ema_rampup).attach(trainer)
    if output_dir is not None:
        output_dir = Path(output_dir)
        every = max(options.max_kimg / 4, options.batch_size / 1000)
        GanCheckpointHandler(output_dir, every_kimg=checkpoint_kimg or every, keep_snapshots=keep_snapshots).attach(
            trainer
        )
        grid_options = {"num_inference_steps": options.sample_steps} if trainer.family == "diffusion" else {}
        SampleGridHandler(
            output_dir / "samples", every_kimg=sample_kimg or every, seed=seed, generate_options=grid_options
        ).attach(trainer)
        GanTensorBoardHandler(output_dir / "tensorboard", every_n_iterations=log_every).attach(trainer)
    if progress:
        from ignite.handlers import ProgressBar

        ProgressBar(persist=False).attach(
            trainer, output_transform=lambda out: {k: out[k] for k in ("loss_G", "loss_D") if k in out}
        )
    if resume is not None:
        if resume == "auto":
            if output_dir is None:
                raise ValueError("resume='auto' needs an output_dir to look for checkpoints/latest.pt in")
            candidate = Path(output_dir) / "checkpoints" / "latest.pt"
            path = candidate if candidate.is_file() else None
        else:
            path = Path(resume)
            if not path.is_file():
                raise FileNotFoundError(
                    f"resume checkpoint not found: {path} (resume takes None, 'auto' or a checkpoint path)"
                )
        if path is not None:
            _resume(trainer, path, output_dir)
    return trainer


def train_family(
    family: str,
    train_data,
    output_dir,
    *,
    preset="tiny",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    max_kimg: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    resume=None,
    device=None,
    num_workers: int = 0,
    checkpoint_kimg: float | None = None,
    sample_kimg: float | None = None,
    log_every: int = 10,
    keep_snapshots: bool = False,
    progress: bool = True,
    **options,
) -> Path:
    """Train a ``dcgan`` or ``diffusion`` generator on ``train_data`` (as :func:`~gemix_monai.engines.gan.train_gan`)
    and return ``output_dir/models/generator/generator.pt``. ``preset``: a name (``tiny``, ``32``, ``64``, ``128``) or dict;
    ``**options``: :class:`GenerativeTrainingOptions` fields (the preset's values by default)."""
    family = _check_family(family)
    if class_names is None and num_classes is None:
        raise ValueError("train_family needs num_classes or class_names")
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but num_classes={num_classes}")
    num_classes = num_classes if num_classes is not None else len(class_names)
    class_names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    unknown = set(options) - {f.name for f in dataclasses.fields(GenerativeTrainingOptions)}
    if unknown:
        raise TypeError(f"train_family got unknown options {sorted(unknown)}; see GenerativeTrainingOptions")
    dataset = _as_dataset(train_data)
    if len(dataset) == 0:
        raise ValueError("train_data is empty")
    first = dataset[0]
    channels = int(torch.as_tensor(first["image"]).shape[0]) if isinstance(first, Mapping) and "image" in first else 1
    torch.manual_seed(seed)  # network initialisation
    G, D, p = build_family_networks(
        family, preset, num_classes=num_classes, class_names=class_names, img_channels=channels
    )
    opts = {k: v for k, v in p.items() if k not in ("G", "D", "name", "resolution")}
    opts.update({k: v for k, v in options.items() if v is not None})
    opts.update({k: v for k, v in (("max_kimg", max_kimg), ("batch_size", batch_size)) if v is not None})
    trainer = create_generative_trainer(
        family,
        dataset,
        G=G,
        D=D,
        options=GenerativeTrainingOptions.from_mapping(opts),
        num_classes=num_classes,
        class_names=class_names,
        output_dir=output_dir,
        device=device,
        seed=seed,
        num_workers=num_workers,
        checkpoint_kimg=checkpoint_kimg,
        sample_kimg=sample_kimg,
        log_every=log_every,
        keep_snapshots=keep_snapshots,
        progress=progress,
        resume=resume,
    )
    trainer.run()
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    return Path(output_dir) / GENERATOR_SUBPATH


def train_generator(
    train_data,
    output_dir,
    *,
    family: str = "stylegan2",
    preset="tiny",
    nproc_per_node: int | None = None,
    batch_gpu: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Path:
    """Train a generator of any family and return ``output_dir/models/generator/generator.pt`` (its format tag names the family).

    ``family="stylegan2"`` (default) is exactly :func:`~gemix_monai.engines.gan.train_gan`; ``"dcgan"`` and
    ``"diffusion"`` are :func:`train_family` (single process: ``nproc_per_node`` > 1 is refused). A dataset whose
    contract records masks is trained on as image–mask pairs (:func:`~gemix_monai.data.masks.paired_for_training`).
    """
    family = _check_family(family or "stylegan2")
    # Data with masks trains on [image channels…, mask channels] (docs/segmentation.md).
    train_data = paired_for_training(train_data)
    if family == "stylegan2":
        return train_gan(
            train_data,
            output_dir,
            preset=preset,
            nproc_per_node=nproc_per_node,
            batch_gpu=batch_gpu,
            backend=backend,
            **kwargs,
        )
    if nproc_per_node and nproc_per_node > 1:
        raise ValueError(
            f"generator family {family!r} trains in one process; multi-process training "
            f"(nproc_per_node={nproc_per_node}) is available for stylegan2 only"
        )
    return train_family(family, train_data, output_dir, preset=preset, **kwargs)
