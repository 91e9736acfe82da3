"""GAN handlers: EMA half-life, ADA controller, atomic checkpoints, sample grids."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest
import torch
from _gan_dist_worker import blob_dataset, small_options, tiny_networks
from ignite.engine import Events
from torch import nn

from gemix_monai.engines.gan import create_gan_trainer
from gemix_monai.handlers.gan import (
    GanCheckpointHandler,
    compose_sample_grid,
    ema_beta,
    render_sample_grid,
    update_ema,
    walk_pairs,
)


@pytest.mark.parametrize("batch_size, half_life_images", [(4, 40), (32, 3200), (8, 8)])
def test_ema_moves_half_way_to_a_constant_target_after_one_half_life(batch_size, half_life_images):
    G, G_ema = nn.Linear(3, 2), nn.Linear(3, 2)
    nn.init.ones_(G.weight), nn.init.zeros_(G_ema.weight)
    beta = ema_beta(batch_size, images_seen=10**9, ema_kimg=half_life_images / 1000, ema_rampup=None)
    for _ in range(half_life_images // batch_size):
        update_ema(G, G_ema, beta)
    torch.testing.assert_close(G_ema.weight, torch.full((2, 3), 0.5), rtol=0, atol=1e-4)


def test_ema_rampup_shortens_the_half_life_early_in_training():
    # after 1000 images with ramp-up 0.05 the half-life is 50 images, not 10 kimg
    assert ema_beta(10, 1000, ema_kimg=10, ema_rampup=0.05) == pytest.approx(0.5 ** (10 / 50))
    assert ema_beta(10, 10**7, ema_kimg=10, ema_rampup=0.05) == pytest.approx(0.5 ** (10 / 10_000))


class _ConstantD(nn.Module):
    """A toy discriminator whose logit is ``offset`` for every image: "real" if > 0, "fake" if < 0."""

    def __init__(self, offset: float):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(float(offset)))

    def forward(self, img, c):
        return (self.offset + 0 * img.mean(dim=(1, 2, 3))).unsqueeze(1)


@pytest.mark.parametrize(
    "offset, direction", [(5.0, +1), (-5.0, -1)], ids=["D-says-real-p-rises", "D-says-fake-p-falls"]
)
def test_ada_p_tracks_the_sign_of_r_t_minus_target(offset, direction):
    G, _, augment_pipe, _ = tiny_networks()
    # one update after 2 steps of 4 images: step = batch·interval/(ada_kimg·1000) = 4·2/(0.04·1000) = 0.2
    options = small_options(max_kimg=0.008, augment_p=0.5, ada_kimg=0.04, ada_interval=2, r1_gamma=0.0, pl_weight=0.0)
    trainer = create_gan_trainer(
        blob_dataset(8),
        G=G,
        D=_ConstantD(offset),
        augment_pipe=augment_pipe,
        options=options,
        num_classes=2,
        progress=False,
    )
    trainer.run()
    assert trainer.state.iteration == 2
    assert trainer.state.metrics["ada_r_t"] == direction  # sign(D(real)) is constant
    assert float(trainer.augment_pipe.p) == pytest.approx(0.5 + direction * 0.2, abs=1e-6)


def _fake_engine(state: dict, iteration: int = 1):
    return types.SimpleNamespace(
        rank=0,
        state=types.SimpleNamespace(iteration=iteration),
        images_seen=iteration,
        training_state_dict=lambda: state,
    )


def test_checkpoint_write_failure_keeps_the_previous_file_and_leaves_no_temp_files(tmp_path, monkeypatch):
    handler = GanCheckpointHandler(tmp_path, every_kimg=1.0, export_generator=False)
    handler.save(_fake_engine({"weights": torch.arange(4)}, iteration=1))
    before = handler.latest_path.read_bytes()

    real_save = torch.save

    def save_then_crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", save_then_crash)
    with pytest.raises(OSError, match="disk full"):
        handler.save(_fake_engine({"weights": torch.arange(1000)}, iteration=2))
    monkeypatch.undo()
    assert handler.latest_path.read_bytes() == before
    assert torch.equal(torch.load(handler.latest_path, weights_only=True)["weights"], torch.arange(4))
    assert sorted(os.listdir(handler.latest_path.parent)) == ["latest.pt"]


def test_walk_rows_cover_each_edge_of_the_class_cycle():
    assert walk_pairs(1) == []
    assert walk_pairs(2) == [(0, 1)]
    assert walk_pairs(3) == [(0, 1), (1, 2), (2, 0)]
    assert walk_pairs(4, max_rows=2) == [(0, 1), (1, 2)]


def test_sample_grid_has_a_row_per_class_then_simplex_walks_with_labels():
    torch.manual_seed(0)
    from gemix_monai.networks import Generator, get_preset

    G = Generator(c_dim=3, class_names=["a", "b", "c"], **get_preset("tiny")["G"]).eval()
    tiles, labels = render_sample_grid(G, G.class_names, num_columns=4, seed=1)
    assert tiles.shape == (6, 4, 1, 32, 32)
    assert labels == ["a", "b", "c", "a->b", "b->c", "c->a"]
    # same latents down a column: rows differ only through the label
    again, _ = render_sample_grid(G, G.class_names, num_columns=4, seed=1)
    assert torch.equal(tiles, again)
    # a walk row holds one latent while the label moves from one class to the other
    assert not torch.equal(tiles[3, 0], tiles[3, -1])

    image = np.asarray(compose_sample_grid(tiles, labels))
    assert image.shape[0] == 6 * (32 + 2) + 2
    margin = image.shape[1] - 4 * (32 + 2) - 2
    for r in range(6):  # every row has its label drawn in the margin
        band = image[2 + r * 34 : 2 + r * 34 + 32, :margin]
        assert band.max() > 0, labels[r]


@pytest.mark.parametrize("channels, expect_grey", [(1, True), (2, True), (3, False)])
def test_grid_maps_minus_one_to_black_and_one_to_white(channels, expect_grey):
    tiles = torch.full((1, 2, channels, 32, 32), -1.0)
    tiles[0, 1] = 1.0
    if channels == 3:
        tiles[0, 1, 1] = -1.0  # green off: magenta tile
    image = np.asarray(compose_sample_grid(tiles, ["x"]))
    right_tile = image[2:34, -34:-2]
    left_tile = image[2:34, -68:-36]
    assert (left_tile == 0).all()
    if expect_grey:
        assert (right_tile == 255).all()
    else:
        assert (right_tile[..., [0, 2]] == 255).all() and (right_tile[..., 1] == 0).all()


# ------------------------------------------------------------------------------- against Ignite's EMA and Checkpoint


def test_ema_equals_ignites_ema_handler_without_ramp_up():
    """Issue 22: where the schedules coincide (no ramp-up, one batch size) the generator EMA is Ignite's EMAHandler."""
    from ignite.engine import Engine
    from ignite.handlers import EMAHandler

    torch.manual_seed(0)
    G, G_ema = nn.Linear(4, 3), nn.Linear(4, 3)
    G.register_buffer("w_avg", torch.zeros(3))
    G_ema.register_buffer("w_avg", torch.zeros(3))
    G_ema.load_state_dict(G.state_dict())
    beta = ema_beta(16, images_seen=10**6, ema_kimg=0.5, ema_rampup=None)
    ignite_ema = EMAHandler(G, momentum=1 - beta)

    def step(engine, _):
        with torch.no_grad():
            G.weight.add_(torch.randn_like(G.weight) * 0.1)
            G.w_avg.add_(1.0)

    engine = Engine(step)
    ignite_ema.attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: update_ema(G, G_ema, beta))
    engine.run(range(20), max_epochs=1)
    for ours, theirs in zip(G_ema.state_dict().values(), ignite_ema.ema_model.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_ema_ramp_up_is_no_linear_warm_up_and_buffers_are_copies_not_aliases():
    from ignite.handlers import EMAHandler

    # StyleGAN2-ADA's ramp-up: momentum 1 - beta after s steps of batch B is 1 - 0.5^(1 / (rampup * s)), a hyperbola;
    # Ignite's warm-up interpolates linearly between two momenta, so three steps already disagree
    momentum = [1 - ema_beta(16, 16 * s, ema_kimg=10, ema_rampup=0.05) for s in (10, 20, 30)]
    assert abs((momentum[0] + momentum[2]) / 2 - momentum[1]) > 0.01
    G, G_ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    ignite_ema = EMAHandler(G, handle_buffers="copy")
    ignite_ema._update_ema_model(type("E", (), {"state": type("S", (), {"m": 0.5})()})(), "m")
    assert ignite_ema.ema_model.running_mean.data_ptr() == G.running_mean.data_ptr()  # Ignite: the same tensor
    update_ema(G, G_ema, 0.5)
    assert G_ema.running_mean.data_ptr() != G.running_mean.data_ptr()  # ours: a copy, as StyleGAN2-ADA's


def test_ignites_atomic_checkpoint_ignores_the_umask_and_skips_fsync_where_ours_does_not(tmp_path, monkeypatch):
    from ignite.engine import Engine
    from ignite.handlers import Checkpoint, DiskSaver

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    old = os.umask(0o077)
    try:
        ignite_dir, ours_dir = tmp_path / "ignite", tmp_path / "ours"
        checkpoint = Checkpoint(
            {"m": nn.Linear(2, 2)}, DiskSaver(ignite_dir, atomic=True), filename_pattern="latest.pt", n_saved=1
        )
        engine = Engine(lambda e, b: None)
        engine.add_event_handler(Events.ITERATION_COMPLETED, checkpoint)
        engine.run([0], max_epochs=1)
        assert not synced
        assert (ignite_dir / "latest.pt").stat().st_mode & 0o077 == 0o044  # group and others may read
        handler = GanCheckpointHandler(ours_dir, every_kimg=1.0, export_generator=False)
        trainer = type("T", (), {"rank": 0, "images_seen": 4, "training_state_dict": lambda self: {"w": 1}})()
        trainer.state = type("S", (), {"iteration": 1})()
        handler.save(trainer)
        assert synced
        assert handler.latest_path.stat().st_mode & 0o077 == 0  # the umask's 0600
    finally:
        os.umask(old)
