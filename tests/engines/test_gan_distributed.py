"""Two gloo processes train exactly like one process with the same global batch."""

from __future__ import annotations

import torch
from _distributed import one_and_two_processes
from _gan_dist_worker import blob_dataset, train_worker


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    # global batch 4 = 2 micro-batches of 2: accumulated in one process, or one per process
    cfg = dict(
        data=blob_dataset(16, seed=4), seed=5, options=dict(max_kimg=0.008, batch_gpu=2, r1_interval=1, pl_interval=1)
    )
    one, two = one_and_two_processes(train_worker, cfg, dict(cfg, output_dir=tmp_path / "run"), tmp_path)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert len(one["outputs"]) == len(two["outputs"]) == 2
    for a, b in zip(one["outputs"], two["outputs"]):
        assert a.keys() == b.keys() and "r1_penalty" in a and "pl_penalty" in a
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-4 * (1 + abs(a[k])), k
    for net in ("G", "D", "G_ema"):
        for k, v in one[net].items():
            torch.testing.assert_close(two[net][k], v, rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")
    assert abs(one["p"] - two["p"]) < 1e-6 and one["p"] != 0.3  # ADA statistics were reduced over both processes
    assert abs(one["pl_mean"] - two["pl_mean"]) <= 1e-5

    # only rank 0 wrote files: one TensorBoard stream, one checkpoint holding the trained weights
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 1
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["latest.pt"]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=True)
    assert all(torch.equal(saved["G"][k], v) for k, v in two["G"].items())
