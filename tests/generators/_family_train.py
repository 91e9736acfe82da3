"""Helpers of the generator-family tests: tiny phantoms (3 classes, 32 px, 14 training images; fixtures imported by
the test modules, not a conftest.py, whose module name would shadow other folders' ``from conftest import``), and
training a family a few steps, interrupting, resuming, comparing."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

from gemix_monai.engines.generative import build_family_networks, create_generative_trainer


@pytest.fixture(scope="session")
def phantom_datalist(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(
        tmp_path_factory.mktemp("phantoms"),
        image_size=32,
        counts=(6, 4, 4),
        val_counts=(2, 2, 2),
        test_counts=(2, 2, 2),
    )


@pytest.fixture(scope="session")
def phantom_train(phantom_datalist):
    from gemix_monai.data import get_dataset

    return get_dataset(phantom_datalist, "training", 32, cache=True)


BATCH = 4


def make_trainer(family, data, out, steps, resume=None):
    torch.manual_seed(0)
    G, D, _ = build_family_networks(family, "tiny", num_classes=3, class_names=data.class_names)
    opts = {"batch_size": BATCH, "max_kimg": steps * BATCH / 1000, "sample_steps": 2, "ema_kimg": 0.01}
    return create_generative_trainer(
        family,
        data,
        G=G,
        D=D,
        options=opts,
        num_classes=3,
        class_names=data.class_names,
        output_dir=out,
        device="cpu",
        seed=3,
        progress=False,
        checkpoint_kimg=BATCH / 1000,
        sample_kimg=100.0,
        resume=resume,
    )


def perturb(module, scale: float = 0.05, seed: int = 0) -> None:
    """Add small noise to every parameter (a freshly built diffusion U-Net zero-initialises its output layers,
    so the label would not reach the image yet)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


class Killed(RuntimeError):
    pass


def check_resume(family, data, tmp_path, steps=4, kill_at=2):
    full = make_trainer(family, data, tmp_path / "full", steps)
    full.run()
    part = make_trainer(family, data, tmp_path / "part", steps)

    @part.on(Events.ITERATION_COMPLETED(once=kill_at))
    def _kill(engine):  # attached after the checkpoint handler: latest.pt holds iteration kill_at
        raise Killed("simulated kill")

    with pytest.raises(Killed):
        part.run()
    resumed = make_trainer(family, data, tmp_path / "part", steps, resume="auto")
    assert resumed.state.iteration == kill_at
    resumed.run()
    assert resumed.state.iteration == full.state.iteration == steps
    for name in ("G", "G_ema") + (("D",) if full.D is not None else ()):
        a, b = getattr(full, name).state_dict(), getattr(resumed, name).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{family}: {name}.{k} differs after resume"
    return full
