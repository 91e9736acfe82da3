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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from gemix_monai.data.masks import paired_for_training
from gemix_monai.engines.gan import train_gan
from gemix_monai.engines.global_batch import (
    GlobalBatchEngine,
    as_training_dataset,
    attach_output_handlers,
    engine_settings,
    resolve_classes,
    resume_if_asked,
    trainer_settings,
)
from gemix_monai.engines.run import RunSettings, merge_run_keywords
from gemix_monai.generators.protocol import GENERATOR_FAMILIES
from gemix_monai.mixing.labels import to_soft_label
from gemix_monai.mixing.samplers import check_class_balance
from gemix_monai.utils import resolve_device

__all__ = [
    "GENERATOR_FAMILIES",
    "GenerativeTrainingOptions",
    "GenerativeTrainer",
    "FAMILY_CLASS_BALANCE",
    "default_class_balance",
    "build_family_networks",
    "create_generative_trainer",
    "train_family",
    "train_generator",
]


#: The last key of every per-step random stream (``GlobalBatchEngine._keyed_rng``'s ``micro``): these trainers
#: have no micro-batches; a fixed value keeps the streams those of the first trained generators.
_STREAM = 0x6E4E


@dataclass
class GenerativeTrainingOptions:
    """Hyper-parameters of a DCGAN or diffusion run. ``batch_size`` [images per step]; ``max_kimg`` [thousands of
    real images]; ``g_lr``/``d_lr``/``betas``: the DCGAN's Adam; ``lr``: the diffusion model's AdamW;
    ``p_uncond``: probability of the null condition (diffusion); ``ema_kimg``/``ema_rampup``: generator EMA
    half-life [kimg] and ramp-up; ``sample_steps``: DDIM steps of the sample grids and the training-time audit
    (diffusion; as many as ``generate``); ``class_balance``: ``none``/``sqrt``/``uniform``
    class shares of the real images shown (docs/generators.md, "Class balance")."""

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
    sample_steps: int = 50
    class_balance: str | None = None

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        if self.class_balance is not None:  # None: the family's measured default (default_class_balance)
            check_class_balance(self.class_balance, "GenerativeTrainingOptions.class_balance")
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


#: Each family's default class balance, from the generator study (docs/experiments.md, "Minority generators"):
#: without it the DCGAN collapses on both datasets (minority recall 0.03 and 0.00 at 50 kimg; 0.63 and 0.41 with
#: ``uniform``); StyleGAN2-ADA and diffusion gain or lose with the dataset and budget, so they keep the data's shares.
FAMILY_CLASS_BALANCE = {"stylegan2": "none", "dcgan": "uniform", "diffusion": "none"}


def default_class_balance(family: str, class_balance: str | None = None) -> str:
    """``class_balance`` when given, else ``family``'s default (:data:`FAMILY_CLASS_BALANCE`)."""
    if class_balance is not None:
        return check_class_balance(class_balance)
    return FAMILY_CLASS_BALANCE[_check_family(family)]


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


class GenerativeTrainer(GlobalBatchEngine):
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
        self.device = resolve_device(device)
        if options.class_balance is None:
            options = dataclasses.replace(options, class_balance=default_class_balance(self.family))
        self.options, self.seed, self.num_workers = options, int(seed), num_workers
        self.num_classes = int(num_classes)
        if G.c_dim != self.num_classes:
            raise ValueError(f"num_classes={num_classes} but the generator was built with c_dim={G.c_dim}")
        self.class_names = list(class_names) if class_names is not None else list(G.class_names)
        if self.class_names != list(G.class_names):
            raise ValueError(
                f"class_names {self.class_names} differ from the generator's class_names {list(G.class_names)}"
            )
        self._adopt_training_data(G, train_data)
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

    # -- one step ----------------------------------------------------------------------------------
    def _iteration(self, engine, batch) -> dict:
        dev, it = self.device, self.state.iteration
        x = batch["image"].to(dev, non_blocking=True).float()
        c = to_soft_label(batch["label"], self.num_classes, name="batch['label']", batched=True).to(dev)
        if self.family == "dcgan":
            with self._keyed_rng(it, 0, _STREAM):
                self.D.requires_grad_(True)
                z = torch.randn(x.shape[0], self.G.z_dim, device=dev)
                with torch.no_grad():
                    fake = self.G(z, c, check_labels=False)
                real_logits, fake_logits = self.D(x, c), self.D(fake, c)
                loss_d = (F.softplus(fake_logits) + F.softplus(-real_logits)).mean()
                self.opt_D.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_D.step()
            with self._keyed_rng(it, 1, _STREAM):
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
        with self._keyed_rng(it, 0, _STREAM):
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

    @property
    def training_name(self) -> str:
        return f"{self.family} training"

    def training_state_dict(self) -> dict:
        state = super().training_state_dict()
        state["family"] = state["config"]["family"] = self.family
        return state


def create_generative_trainer(
    family: str,
    train_data,
    *,
    G,
    D=None,
    options=None,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    selection=None,
    run: RunSettings | None = None,
    output_dir=None,
    **run_keywords,
) -> GenerativeTrainer:
    """A :class:`GenerativeTrainer` with the StyleGAN2 engine's handlers (EMA; the outputs of ``run``: with an
    ``output_dir`` checkpoints, sample grids, TensorBoard); ``run.resume`` is ``None``, ``"auto"`` or a checkpoint
    path, as for ``create_gan_trainer``. ``output_dir`` and the run settings as keywords are deprecated."""
    from gemix_monai.handlers.gan import GeneratorEmaHandler

    run, options = trainer_settings(
        "create_generative_trainer", run, run_keywords, output_dir, options, GenerativeTrainingOptions
    )
    trainer = GenerativeTrainer(
        family,
        G,
        D,
        train_data,
        options,
        num_classes=num_classes,
        class_names=class_names,
        **engine_settings(run),
    )
    GeneratorEmaHandler(options.ema_kimg, options.ema_rampup).attach(trainer)
    sample_options = {"num_inference_steps": options.sample_steps} if trainer.family == "diffusion" else None
    attach_output_handlers(trainer, run, generate_options=sample_options, selection=selection)
    resume_if_asked(trainer, run.resume, run.output_dir)
    return trainer


def train_family(
    family: str,
    train_data,
    output_dir=None,
    *,
    preset="tiny",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    selection=None,
    run: RunSettings | None = None,
    **options,
) -> Path:
    """Train a ``dcgan`` or ``diffusion`` generator on ``train_data`` (as :func:`~gemix_monai.engines.gan.train_gan`)
    and return ``output_dir/models/generator/generator.pt``. ``preset``: a name (``tiny``, ``32``, ``64``, ``128``) or dict.

    ``run``: the :class:`~gemix_monai.engines.run.RunSettings` (the same names as keyword arguments are deprecated);
    other keywords: :class:`GenerativeTrainingOptions` fields (``max_kimg``, ``batch_size``, ...; the preset's values
    by default)."""
    family = _check_family(family)
    run = merge_run_keywords(run, options, "train_family", output_dir=output_dir)
    num_classes, class_names = resolve_classes(
        "train_family", num_classes, class_names, options, GenerativeTrainingOptions
    )
    dataset = as_training_dataset(train_data)
    if len(dataset) == 0:
        raise ValueError("train_data is empty")
    first = dataset[0]
    channels = int(torch.as_tensor(first["image"]).shape[0]) if isinstance(first, Mapping) and "image" in first else 1
    torch.manual_seed(run.seed)  # network initialisation
    G, D, p = build_family_networks(
        family, preset, num_classes=num_classes, class_names=class_names, img_channels=channels
    )
    opts = {k: v for k, v in p.items() if k not in ("G", "D", "name", "resolution")}
    opts.update({k: v for k, v in options.items() if v is not None})
    trainer = create_generative_trainer(
        family,
        dataset,
        G=G,
        D=D,
        options=GenerativeTrainingOptions.from_mapping(opts),
        num_classes=num_classes,
        class_names=class_names,
        selection=selection,
        run=run,
    )
    trainer.run()
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    return run.folder("train_family") / GENERATOR_SUBPATH


def train_generator(
    train_data,
    output_dir=None,
    *,
    family: str = "stylegan2",
    preset="tiny",
    nproc_per_node: int | None = None,
    backend: str | None = None,
    **kwargs,
) -> Path:
    """Train a generator of any family and return ``output_dir/models/generator/generator.pt`` (its format tag names the family).

    ``family="stylegan2"`` (default) is exactly :func:`~gemix_monai.engines.gan.train_gan`; ``"dcgan"`` and
    ``"diffusion"`` are :func:`train_family` (single process: ``nproc_per_node`` > 1 is refused). A dataset whose
    contract records masks is trained on as image–mask pairs (:func:`~gemix_monai.data.masks.paired_for_training`).
    ``kwargs``: ``run`` (:class:`~gemix_monai.engines.run.RunSettings`), ``selection``, ``num_classes``,
    ``class_names`` and the family's training options.
    """
    family = _check_family(family or "stylegan2")
    # the deprecated run keywords are named (and warned about) as this function's, then travel as one object
    kwargs["run"] = merge_run_keywords(kwargs.pop("run", None), kwargs, "train_generator", output_dir=output_dir)
    output_dir = None
    # Data with masks trains on [image channels…, mask channels] (docs/segmentation.md).
    train_data = paired_for_training(train_data)
    if family == "stylegan2":
        return train_gan(
            train_data, output_dir, preset=preset, nproc_per_node=nproc_per_node, backend=backend, **kwargs
        )
    if nproc_per_node and nproc_per_node > 1:
        raise ValueError(
            f"generator family {family!r} trains in one process; multi-process training "
            f"(nproc_per_node={nproc_per_node}) is available for stylegan2 only"
        )
    return train_family(family, train_data, output_dir, preset=preset, **kwargs)
