"""Helpers of test_dcgan.py / test_diffusion.py: train a family a few steps, interrupt, resume, compare."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Events

from gemix_monai.engines.generative import build_family_networks, create_generative_trainer

BATCH = 4


def make_trainer(family, data, out, steps, resume=None):
    torch.manual_seed(0)
    G, D, _ = build_family_networks(family, "tiny", num_classes=3, class_names=data.class_names)
    opts = {"batch_size": BATCH, "max_kimg": steps * BATCH / 1000, "sample_steps": 2, "ema_kimg": 0.01}
    return create_generative_trainer(family, data, G=G, D=D, options=opts, num_classes=3, class_names=data.class_names,
                                     output_dir=out, device="cpu", seed=3, progress=False,
                                     checkpoint_kimg=BATCH / 1000, sample_kimg=100.0, resume=resume)


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
