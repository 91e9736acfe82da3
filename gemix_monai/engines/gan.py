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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from gemix_monai.data.masks import paired_for_training
from gemix_monai.engines.global_batch import (  # noqa: F401  (GlobalBatchSampler, rng states: deprecated import path)
    GlobalBatchEngine,
    GlobalBatchSampler,
    _dist,
    as_soft_labels,
    as_training_dataset,
    attach_output_handlers,
    data_channels,
    engine_settings,
    get_rng_state,
    resolve_classes,
    resume_if_asked,
    set_rng_state,
    trainer_settings,
    validate_gan_dataset,
)
from gemix_monai.engines.run import RunSettings, merge_run_keywords
from gemix_monai.fast import bf16_requested, cpu_bf16_math, cpu_has_native_bf16, training_fast
from gemix_monai.mixing.samplers import check_class_balance
from gemix_monai.utils import plain_data

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
        if self.class_balance is None:  # the family's default, as for GenerativeTrainingOptions
            self.class_balance = "none"
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


def _lazy_adam(
    params, lr: float, betas: tuple[float, float], eps: float, interval: int, fused: bool = False
) -> torch.optim.Adam:
    # Regularising every `interval` steps with gain `interval` inflates the effective step size;
    # shrinking lr and the betas by interval/(interval+1) keeps the optimizer's dynamics unchanged.
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    extra = {"fused": True} if fused else {}  # one kernel for all parameters (the fast path)
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=eps, **extra)


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
        # each network's lazy regularisation interval (0: no regulariser, no correction)
        g_reg = options.pl_interval if options.pl_weight > 0 else 0
        d_reg = options.r1_interval if options.r1_gamma > 0 else 0
        adam = {"betas": options.betas, "eps": options.eps, "fused": self.fast}
        self.opt_G = _lazy_adam(self.G.parameters(), options.g_lr, interval=g_reg, **adam)
        self.opt_D = _lazy_adam(self.D.parameters(), options.d_lr, interval=d_reg, **adam)
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
    label_distribution=None,
    selection=None,
    run: RunSettings | None = None,
    output_dir=None,
    **run_keywords,
) -> ConditionalGanTrainer:
    """Assemble a :class:`ConditionalGanTrainer` with its standard handlers.

    Handlers, in firing order: generator EMA, ADA p update (when ``options.ada_target`` is set and an
    ``augment_pipe`` is given), and the outputs of ``run`` (:func:`~gemix_monai.engines.global_batch.
    attach_output_handlers`): with an ``output_dir``, checkpoints every ``run.checkpoint_kimg`` and at the end (plus
    ``models/generator/generator.pt``), sample grids every ``run.sample_kimg``, TensorBoard scalars every
    ``run.log_every`` steps, and a progress bar (rank 0); with a ``selection``
    (:class:`~gemix_monai.handlers.selection.GeneratorSelection` with validation data) the training-time audit keeps
    ``models/generator/best.pt``. ``run.resume`` is ``None``, ``"auto"`` (``output_dir/checkpoints/latest.pt`` when
    present) or a checkpoint path; a checkpoint that is damaged or was trained with other networks, batch size or
    classes is a ``ValueError`` naming the file, the difference and how to start over. ``output_dir`` and the other
    run settings as keywords (``device``, ``seed``, ...) are the deprecated spelling of ``run``. Call
    ``trainer.run()`` to train.
    """
    from gemix_monai.handlers.gan import AdaptiveAugmentHandler, GeneratorEmaHandler

    run, options = trainer_settings("create_gan_trainer", run, run_keywords, output_dir, options, GanTrainingOptions)
    trainer = ConditionalGanTrainer(
        G,
        D,
        augment_pipe,
        train_data,
        options,
        num_classes=num_classes,
        class_names=class_names,
        label_distribution=label_distribution,
        **engine_settings(run),
    )
    GeneratorEmaHandler(options.ema_kimg, options.ema_rampup).attach(trainer)
    if augment_pipe is not None and options.ada_target is not None:
        AdaptiveAugmentHandler(options.ada_target, options.ada_interval, options.ada_kimg).attach(trainer)
    attach_output_handlers(trainer, run, selection=selection)
    resume_if_asked(trainer, run.resume, run.output_dir)
    return trainer


def _train_process(local_rank, cfg: dict):
    """Body of :func:`train_gan` in each process (also the single-process path)."""
    run: RunSettings = cfg["run"]
    torch.manual_seed(run.seed)  # network initialisation; identical in every process
    G, D, augment_pipe, preset = build_networks(
        cfg["preset"], num_classes=cfg["num_classes"], class_names=cfg["class_names"], img_channels=cfg["img_channels"]
    )
    opts = {k: v for k, v in preset.items() if k not in ("G", "D", "augment")}
    opts.update({k: v for k, v in cfg["options"].items() if v is not None})
    trainer = create_gan_trainer(
        cfg["dataset"],
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=GanTrainingOptions.from_mapping(opts),
        num_classes=cfg["num_classes"],
        class_names=cfg["class_names"],
        selection=cfg["selection"],
        run=run,
    )
    trainer.run()
    return trainer


def train_gan(
    train_data,
    output_dir=None,
    *,
    preset="tiny",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    run: RunSettings | None = None,
    selection=None,
    nproc_per_node: int | None = None,
    backend: str | None = None,
    **options,
) -> Path:
    """Train a conditional StyleGAN2-ADA on ``train_data`` and return ``output_dir/models/generator/generator.pt``.

    Args:
        train_data: a map-style dataset (e.g. ``monai.data.Dataset``), a ``DataLoader`` (its
            dataset is used; batching is redone reproducibly) or a list of
            ``{"image": [C, R, R] in [-1, 1], "label": int}`` dicts.
        output_dir: where ``checkpoints/``, ``models/generator/generator.pt``, ``samples/`` and
            ``tensorboard/`` go (see the module docstring); or ``run.output_dir``.
        preset: a name for ``gemix_monai.networks.presets.get_preset`` or a dict with ``G``/``D``
            kwargs and training hyper-parameters.
        num_classes / class_names: K and the class names (one of the two is needed).
        run: :class:`~gemix_monai.engines.run.RunSettings`: ``seed`` (network initialisation, data order and every
            per-step random draw), ``resume`` (``None``, ``"auto"``: continue from
            ``output_dir/checkpoints/latest.pt`` if present, or a checkpoint path), ``device`` (CUDA when available,
            per process, else CPU), ``num_workers``, ``checkpoint_kimg``, ``sample_kimg``, ``log_every``,
            ``keep_snapshots``, ``tracking``, ``progress``. The same names as keyword arguments are deprecated.
        selection: the training-time audit (:class:`~gemix_monai.handlers.selection.GeneratorSelection` or a
            mapping of its fields); with validation data it keeps ``models/generator/best.pt`` by its criterion.
        nproc_per_node: > 1 trains with that many processes through ``ignite.distributed``
            (``backend`` defaults to NCCL on GPUs, gloo on CPU).
        **options: any :class:`GanTrainingOptions` field (e.g. ``max_kimg``: training length in thousands of real
            images; ``batch_size``: the global batch; ``batch_gpu``: the micro-batch per process; ``r1_gamma``;
            the preset's values by default).
    """
    run = merge_run_keywords(run, options, "train_gan", output_dir=output_dir)
    num_classes, class_names = resolve_classes("train_gan", num_classes, class_names, options, GanTrainingOptions)
    dataset = paired_for_training(as_training_dataset(train_data))  # masks in the data: train on pairs
    cfg = dict(
        dataset=dataset,
        img_channels=data_channels(dataset),
        preset=preset,
        num_classes=num_classes,
        class_names=class_names,
        options=options,
        selection=selection,
        run=run.replace(output_dir=str(run.folder("train_gan"))),
    )
    if nproc_per_node and nproc_per_node > 1:
        idist = _dist()
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        with idist.Parallel(backend=backend, nproc_per_node=nproc_per_node) as parallel:
            parallel.run(_train_process, cfg)
    else:
        _train_process(0, cfg)
    from gemix_monai.handlers.gan import GENERATOR_SUBPATH

    return Path(cfg["run"].output_dir) / GENERATOR_SUBPATH
