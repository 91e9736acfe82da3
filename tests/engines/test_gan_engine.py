"""Conditional StyleGAN2-ADA trainer: losses, regularisers, checkpoints, exact resume, input checks."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from _gan_dist_worker import blob_dataset, small_options, tiny_networks
from ignite.engine import Events

from gemix_monai.engines import gan_loss
from gemix_monai.engines.gan import (
    CHECKPOINT_FORMAT,
    GlobalBatchSampler,
    as_soft_labels,
    create_gan_trainer,
    train_gan,
)
from gemix_monai.networks import AugmentPipe, Generator
from gemix_monai.utils import safe_torch_load

SEED = 3
ITERATIONS = 3  # small_options: batch 4 -> max_kimg 0.012 is 3 steps


def _trainer(data, output_dir, **kwargs):
    G, D, augment_pipe, _ = tiny_networks(seed=SEED, class_names=["normal", "pneumonia"])
    return create_gan_trainer(
        data,
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=small_options(),
        num_classes=2,
        class_names=["normal", "pneumonia"],
        output_dir=output_dir,
        device="cpu",
        seed=SEED,
        progress=False,
        checkpoint_kimg=0.004,
        sample_kimg=1.0,
        **kwargs,
    )


def _record(trainer):
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    return outputs


@pytest.fixture(scope="module")
def data():
    return blob_dataset(24, seed=1)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """A 3-step run (R1, path length, ADA, style mixing and augmentation all active)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    trainer = _trainer(data, out)
    outputs = _record(trainer)
    trainer.run()
    return trainer, outputs, out


def test_every_step_reports_finite_losses_and_lazy_regularisers_run_on_schedule(uninterrupted):
    _, outputs, _ = uninterrupted
    assert len(outputs) == ITERATIONS
    for step, out in enumerate(outputs):
        for key in ("loss_G", "loss_D", "D_real", "D_fake"):
            assert math.isfinite(out[key]), (step, key, out[key])
        # r1_interval = pl_interval = 2: regularisers run on steps 0, 2, ... only
        assert ("r1_penalty" in out) == (step % 2 == 0)
        assert ("pl_penalty" in out) == (step % 2 == 0)
        if step % 2 == 0:
            assert math.isfinite(out["r1_penalty"]) and out["r1_penalty"] >= 0
            assert math.isfinite(out["pl_length"]) and out["pl_length"] > 0
        assert out["real_count"] == 4 and abs(out["real_sign_sum"]) <= 4


@pytest.mark.parametrize("augment_p", [0.0, 1.0])
def test_r1_penalty_backpropagates_into_D_through_augmentation(augment_p):
    _, D, _, _ = tiny_networks()
    augment = AugmentPipe.from_preset("bgc", p=augment_p)
    real = torch.stack([d["image"] for d in blob_dataset(4)])
    c = torch.eye(2)[[0, 1, 0, 1]]
    D.requires_grad_(True)
    penalty, logits = gan_loss.r1_penalty(D, augment, real, c)
    assert penalty.shape == (4,) and torch.isfinite(penalty).all() and (penalty > 0).all()
    penalty.sum().backward()  # double backward through D's ops and the augmentation
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_path_length_penalty_backpropagates_into_the_synthesis_network():
    G, _, _, _ = tiny_networks()
    G.requires_grad_(True)
    penalty, lengths = gan_loss.path_length_penalty(G, torch.randn(2, G.z_dim), torch.eye(2), torch.zeros(()))
    assert torch.isfinite(penalty).all() and (lengths > 0).all()
    penalty.sum().backward()
    synthesis_grads = [p.grad for p in G.synthesis.parameters() if p.grad is not None]
    assert synthesis_grads and sum(float(g.abs().sum()) for g in synthesis_grads) > 0
    assert all(torch.isfinite(g).all() for g in synthesis_grads)


def test_resume_after_a_kill_repeats_the_uninterrupted_losses_exactly(uninterrupted, data, tmp_path):
    _, reference, _ = uninterrupted

    class Killed(RuntimeError):
        pass

    first = _trainer(data, tmp_path)  # checkpoints after every step
    first_outputs = _record(first)

    def kill(engine):
        if engine.state.iteration == 3:
            raise Killed("simulated kill in the middle of step 3")

    first.add_event_handler(Events.ITERATION_STARTED, kill)
    with pytest.raises(Killed):
        first.run()
    assert first_outputs == reference[:2]

    resumed = _trainer(data, tmp_path, resume="auto")
    assert resumed.state.iteration == 2
    resumed_outputs = _record(resumed)
    resumed.run()
    assert resumed.state.iteration == ITERATIONS
    assert resumed_outputs == reference[2:]  # bit-identical, not approximately equal
    assert "r1_penalty" in resumed_outputs[0] and "pl_penalty" in resumed_outputs[0]
    for a, b in zip(resumed.G_ema.state_dict().values(), uninterrupted[0].G_ema.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_restores_every_piece(uninterrupted, data, tmp_path):
    trainer, _, out = uninterrupted
    path = out / "checkpoints" / "latest.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT
    assert state["counters"] == {
        "iteration": ITERATIONS,
        "epoch": state["counters"]["epoch"],
        "images_seen": 4 * ITERATIONS,
        "batch_size": 4,
    }

    # disturb every global RNG, then restore into a fresh trainer
    torch.manual_seed(12345), np.random.seed(12345), random.seed(12345)
    fresh = _trainer(data, tmp_path)
    fresh.load_training_state(state)
    assert fresh.state.iteration == ITERATIONS
    assert fresh.images_seen == trainer.images_seen
    for name in ("G", "G_ema", "D", "augment_pipe"):
        ours, theirs = getattr(fresh, name).state_dict(), getattr(trainer, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    for name in ("opt_G", "opt_D"):
        ours, theirs = getattr(fresh, name).state_dict(), getattr(trainer, name).state_dict()
        assert ours["param_groups"] == theirs["param_groups"]
        for k in theirs["state"]:
            for field in theirs["state"][k]:
                assert torch.equal(ours["state"][k][field], theirs["state"][k][field]), (name, k, field)
    assert float(fresh.augment_pipe.p) == float(trainer.augment_pipe.p) != 0.3  # ADA moved p
    assert torch.equal(fresh.pl_mean, trainer.pl_mean) and float(trainer.pl_mean) > 0
    assert fresh.stateful_handlers["ada"].state_dict() == trainer.stateful_handlers["ada"].state_dict()
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert np.array_equal(np.random.get_state()[1], state["rng"]["numpy"]["key"].numpy().astype(np.uint32))
    assert list(random.getstate()[1]) == state["rng"]["python"]["state"]


def test_exported_generator_is_the_ema_generator_and_loads_safely(uninterrupted):
    trainer, _, out = uninterrupted
    raw = safe_torch_load(out / "models" / "generator" / "generator.pt")
    assert raw["format"] == "gemix-generator/1" and raw["class_names"] == ["normal", "pneumonia"]
    G = Generator.from_checkpoint(out / "models" / "generator" / "generator.pt")
    for k, v in trainer.G_ema.state_dict().items():
        assert torch.equal(G.state_dict()[k], v), k


def test_train_gan_smoke_writes_checkpoint_generator_sample_grid_and_tensorboard(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = blob_dataset(256, num_classes=2, seed=2)
    path = train_gan(
        data,
        tmp_path,
        preset="tiny",
        class_names=["left", "right"],
        max_kimg=0.008,
        batch_size=4,
        seed=0,
        log_every=1,
        sample_kimg=1.0,
        progress=False,
    )
    assert path == tmp_path / "models" / "generator" / "generator.pt" and path.is_file()
    assert (tmp_path / "checkpoints" / "latest.pt").is_file()
    assert not [p for p in tmp_path.rglob("*.tmp")]

    grids = sorted((tmp_path / "samples").glob("fakes-*.png"))
    assert [g.name for g in grids] == ["fakes-000000008.png"]  # sample_kimg > run length: only the final grid
    grid = np.asarray(Image.open(grids[-1]).convert("RGB")).astype(float)
    rows = 2 + 1  # one per class, one walk left -> right
    # 32-px tiles shown at 128 px (issue 22: large enough to judge) under a title band
    assert rows * (128 + 2) + 2 < grid.shape[0] <= rows * (128 + 2) + 2 + 40
    assert grid[:, -128:].std() > 1.0  # generated tiles are not a constant image

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"Loss/G", "Loss/D", "Loss/r1_penalty", "ADA/p", "Speed/images_per_s"} <= tags
    losses = [e.value for e in events.Scalars("Loss/G")] + [e.value for e in events.Scalars("Loss/D")]
    assert len(losses) == 2 * 2 and all(math.isfinite(v) for v in losses)
    # the sample grid reaches TensorBoard too, at the step (images seen) of its PNG
    images = events.Images("Samples/grid")
    assert [e.step for e in images] == [8] and (images[0].height, images[0].width) == grid.shape[:2]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d[0].update(image=torch.zeros(1, 16, 16)), r"shape \[1, 16, 16\].*\[1, 32, 32\]"),
        (lambda d: d[0].update(image=torch.zeros(3, 32, 32)), r"shape \[3, 32, 32\].*img_channels=1"),
        (lambda d: d[5].update(label=2), r"train_data\[5\]\['label'\] = 2 is out of range.*0\.\.1"),
        (
            lambda d: d[0].update(image=torch.full((1, 32, 32), 255.0)),
            r"intensities span .*expected the range \[-1, 1\]",
        ),
        (lambda d: d[0].update(image="/data/img0.nii.gz"), r"file path"),
        (lambda d: d[0]["image"].__setitem__((0, 3, 3), float("nan")), r"NaN or infinite"),
    ],
    ids=["resolution", "channels", "label-out-of-range", "intensity-range", "unloaded-path", "nan"],
)
def test_bad_input_fails_before_training_with_a_clear_message(mutate, message, tmp_path):
    data = blob_dataset(8)
    mutate(data)
    with pytest.raises(ValueError, match=message):
        train_gan(data, tmp_path / "run", num_classes=2, max_kimg=0.008, batch_size=4, progress=False)
    assert not (tmp_path / "run").exists()


def test_micro_batch_must_respect_the_minibatch_std_group(data):
    G, D, augment_pipe, _ = tiny_networks()
    with pytest.raises(ValueError, match="minibatch-stddev group size 4 must divide batch_gpu=6"):
        create_gan_trainer(
            data,
            G=G,
            D=D,
            augment_pipe=augment_pipe,
            options=small_options(batch_size=12, batch_gpu=6),
            num_classes=2,
            progress=False,
        )
    with pytest.raises(ValueError, match="batch_gpu=3 must divide the per-process batch 4"):
        create_gan_trainer(
            data, G=G, D=D, augment_pipe=augment_pipe, options=small_options(batch_gpu=3), num_classes=2, progress=False
        )


def test_soft_label_conversion_accepts_indices_and_simplex_rows_and_names_bad_values():
    assert torch.equal(as_soft_labels(torch.tensor([1, 0]), 3), torch.tensor([[0.0, 1, 0], [1, 0, 0]]))
    soft = torch.tensor([[0.25, 0.75]])
    assert torch.equal(as_soft_labels(soft, 2), soft)
    with pytest.raises(ValueError, match=r"batch\['label'\]: class index 3 is out of range; expected 0\.\.2"):
        as_soft_labels(torch.tensor([0, 3]), 3, name="batch['label']")
    with pytest.raises(ValueError, match=r"soft labels must be \[N, 3\]"):
        as_soft_labels(torch.ones(2, 2) / 2, 3)
    with pytest.raises(ValueError, match="simplex"):
        as_soft_labels(torch.tensor([[0.5, 0.7]]), 2)


def test_global_batch_sampler_order_is_resumable_and_partitioned_across_ranks():
    full = GlobalBatchSampler(10, 4, seed=7)
    stream = iter(full)
    batches = [next(stream) for _ in range(5)]
    # every pass over the data visits each item once (20 = two epochs of 10)
    flat = sum(batches, [])
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    resumed = iter(GlobalBatchSampler(10, 4, seed=7, start_batch=3))
    assert [next(resumed) for _ in range(2)] == batches[3:]
    ranks = [iter(GlobalBatchSampler(10, 4, seed=7, rank=r, world_size=2)) for r in range(2)]
    for b in batches:
        assert next(ranks[0]) + next(ranks[1]) == b
    assert [next(iter(GlobalBatchSampler(10, 4, seed=8)))] != batches[:1]


@pytest.mark.parametrize("distribution, expected_class", [([1.0, 0.0], 0), ([0.0, 1.0], 1)])
def test_dataset_label_source_conditions_G_on_the_class_distribution(data, distribution, expected_class):
    G, D, augment_pipe, _ = tiny_networks()
    trainer = create_gan_trainer(
        data,
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=small_options(gen_label_source="dataset"),
        num_classes=2,
        label_distribution=distribution,
        progress=False,
    )
    real_c = torch.eye(2)[[0, 1, 0, 1]]
    gen_c = trainer._sample_gen_c(real_c)
    assert torch.equal(gen_c, torch.eye(2)[[expected_class] * 4])


def test_default_label_distribution_is_the_class_frequency_of_the_data():
    G, D, augment_pipe, _ = tiny_networks()
    data = blob_dataset(9, num_classes=2)[:7]  # labels 0,1,0,1,0,1,0
    trainer = create_gan_trainer(
        data, G=G, D=D, augment_pipe=augment_pipe, options=small_options(), num_classes=2, progress=False
    )
    torch.testing.assert_close(trainer.label_distribution, torch.tensor([4 / 7, 3 / 7]))


def test_train_gan_names_unknown_options_and_a_missing_class_count(tmp_path):
    data = blob_dataset(8)
    with pytest.raises(TypeError, match=r"unknown options \['r1_gama'\]"):
        train_gan(data, tmp_path, num_classes=2, r1_gama=1.0)
    with pytest.raises(ValueError, match="needs num_classes or class_names"):
        train_gan(data, tmp_path)
    with pytest.raises(ValueError, match="class_names has 3 names but num_classes=2"):
        train_gan(data, tmp_path, num_classes=2, class_names=["a", "b", "c"])
    with pytest.raises(TypeError, match="train_data must be a Dataset, DataLoader or list"):
        train_gan(42, tmp_path, num_classes=2)
    assert not any(tmp_path.iterdir())


def test_a_dataloader_is_rebatched_reproducibly_from_its_dataset(data):
    from gemix_monai.engines.global_batch import as_training_dataset as _as_dataset

    loader = torch.utils.data.DataLoader(data, batch_size=5, shuffle=True)
    assert _as_dataset(loader) is data
