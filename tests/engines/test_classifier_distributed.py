"""Two gloo processes train the classifier exactly like one process with the same global batch."""

from __future__ import annotations

import math

import pytest
import torch
from _classifier_dist_worker import batchnorm_free_network, train_worker
from _distributed import one_and_two_processes


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    from gemix_monai.data import generate_phantom_dataset

    datalist = generate_phantom_dataset(
        tmp_path / "data", image_size=32, counts=(8, 4, 4), val_counts=(2, 2, 2), test_counts=(2, 2, 2)
    )
    cfg = dict(datalist=str(datalist), seed=3)
    one, two = one_and_two_processes(
        train_worker,
        dict(cfg, output_dir=tmp_path / "one"),
        dict(cfg, output_dir=tmp_path / "two", tensorboard=True),
        tmp_path,
    )
    assert one["world_size"] == 1 and two["world_size"] == 2
    # per-epoch validation metrics (reduced over both processes' halves of the validation split)
    assert len(one["history"]) == len(two["history"]) == 2
    for a, b in zip(one["history"], two["history"]):
        assert a.keys() == b.keys() and "macro_f1" in a and "fnr/cyst" in a
        for k in a:  # an undefined value (NaN: a class never predicted) must be undefined in both runs
            assert abs(a[k] - b[k]) <= 1e-5 or (math.isnan(a[k]) and math.isnan(b[k])), k
    assert one["best_epoch"] == two["best_epoch"] and abs(one["best_metric"] - two["best_metric"]) <= 1e-5
    assert one["report"].keys() == two["report"].keys()
    assert all(
        abs(one["report"][k] - two["report"][k]) <= 1e-5
        or (math.isnan(one["report"][k]) and math.isnan(two["report"][k]))
        for k in one["report"]
    )
    # the trained weights (the step of the global batch), saved once, without DDP's "module." prefix
    assert one["state"].keys() == two["state"].keys()
    for k, v in one["state"].items():
        torch.testing.assert_close(two["state"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    initial = batchnorm_free_network(3).state_dict()
    assert any(not torch.allclose(initial[k], v) for k, v in one["state"].items())  # training moved the weights
    # only rank 0 wrote files: the TensorBoard streams (trainer's and evaluator's) of one process, one report
    writers = {
        p.name.split(".")[-2] for p in (tmp_path / "two" / "tensorboard").iterdir()
    }  # events.out.tfevents.T.host.PID.N
    assert len(writers) == 1
    assert (tmp_path / "two" / "val_report" / "metrics.json").is_file()
