"""The trainer's CPU fast path (options.fast / GEMIX_FAST=1): same schedule, channels_last, fused Adam."""

from __future__ import annotations

import math

import torch
from _gan_dist_worker import two_class_trainer
from ignite.engine import Events


def _run(fast, tmp_path):
    trainer = two_class_trainer(fast=fast)
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    return trainer, outputs


def test_fast_path_trains_with_channels_last_and_fused_adam_and_tracks_the_old_path(tmp_path):
    fast, out_fast = _run(True, tmp_path)
    old, out_old = _run(False, tmp_path)
    assert fast.fast and not old.fast
    conv_weights = [p for p in fast.D.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in conv_weights)
    assert all(g["fused"] for g in fast.opt_G.param_groups + fast.opt_D.param_groups)
    assert len(out_fast) == len(out_old) == 3
    for a, b in zip(out_fast, out_old):
        for key in ("loss_G", "loss_D"):
            assert math.isfinite(a[key])
            # float rounding only (bf16 is off unless GEMIX_BF16=1): the losses agree closely
            assert abs(a[key] - b[key]) <= 1e-3 * max(1.0, abs(b[key])), (key, a[key], b[key])
