"""Shared fixtures of the GAN engine tests, importable by spawned worker processes.

``blob_dataset`` makes class-dependent images (a bright Gaussian blob whose position depends on the
class) in [-1, 1]; ``tiny_networks`` builds the real ``tiny`` preset networks from a seed;
``train_worker`` is the body of one process of the 2-process gloo test.
"""

from __future__ import annotations

import math

import torch

from gemix_monai.engines.gan import GanTrainingOptions, build_networks, create_gan_trainer


def blob_dataset(n: int, num_classes: int = 2, resolution: int = 32, channels: int = 1, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
    items = []
    for i in range(n):
        label = i % num_classes
        angle = 2 * math.pi * label / num_classes
        cy = resolution / 2 + resolution / 4 * math.sin(angle) + float(torch.randn((), generator=g))
        cx = resolution / 2 + resolution / 4 * math.cos(angle) + float(torch.randn((), generator=g))
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (resolution / 10) ** 2))
        image = (blob * 2 - 1 + 0.05 * torch.randn(resolution, resolution, generator=g)).clamp(-1, 1)
        items.append({"image": image.expand(channels, -1, -1).clone(), "label": label})
    return items


def tiny_networks(num_classes: int = 2, seed: int = 0, class_names=None):
    torch.manual_seed(seed)
    return build_networks("tiny", num_classes=num_classes, class_names=class_names)


def small_options(**overrides) -> GanTrainingOptions:
    """The tiny preset's options, a batch of 4 in one micro-batch, every phase active within 3 steps."""
    from gemix_monai.networks import get_preset

    values = get_preset("tiny")
    values.update(
        batch_size=4,
        batch_gpu=4,
        max_kimg=0.012,
        pl_weight=2.0,
        pl_interval=2,
        r1_interval=2,
        ada_interval=1,
        ada_kimg=0.1,
        augment_p=0.3,
        style_mixing_prob=0.5,
    )
    values.update(overrides)
    return GanTrainingOptions.from_mapping(values)


def two_class_trainer(run=None, **option_overrides):
    """A tiny two-class StyleGAN2-ADA trainer on 24 blob images (seed 3) with ``small_options(**option_overrides)``;
    ``run`` a RunSettings (default: no output folder, CPU, seed 3, no progress bar)."""
    from gemix_monai.engines.run import RunSettings

    names = ["normal", "pneumonia"]
    G, D, augment_pipe, _ = tiny_networks(seed=3, class_names=names)
    return create_gan_trainer(
        blob_dataset(24, seed=1),
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=small_options(**option_overrides),
        num_classes=2,
        class_names=names,
        run=run if run is not None else RunSettings(device="cpu", seed=3, progress=False),
    )


def train_worker(local_rank: int, cfg: dict) -> None:
    """One process of a distributed run; rank 0 saves the final state to ``cfg['result']``."""
    import ignite.distributed as idist
    from ignite.engine import Events

    torch.set_num_threads(1)
    G, D, augment_pipe, _ = tiny_networks(seed=cfg["seed"])
    trainer = create_gan_trainer(
        cfg["data"],
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=small_options(**cfg["options"]),
        num_classes=2,
        device="cpu",
        seed=cfg["seed"],
        progress=False,
        output_dir=cfg.get("output_dir"),
        sample_kimg=1.0,
    )
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    if idist.get_rank() == 0:
        torch.save(
            {
                "G": trainer.G.state_dict(),
                "D": trainer.D.state_dict(),
                "G_ema": trainer.G_ema.state_dict(),
                "p": float(trainer.augment_pipe.p),
                "pl_mean": float(trainer.pl_mean),
                "outputs": outputs,
                "world_size": idist.get_world_size(),
            },
            cfg["result"],
        )
