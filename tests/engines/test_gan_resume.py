"""Resuming GAN training from a checkpoint that does not fit: errors name the file, the difference and how to start over."""

from __future__ import annotations

import pytest
import torch
from _gan_dist_worker import blob_dataset, small_options

from gemix_monai.engines.gan import build_networks, create_gan_trainer
from gemix_monai.networks import get_preset

NAMES = ["normal", "pneumonia"]


def _trainer(data, out, preset="tiny", options=None, **kwargs):
    torch.manual_seed(0)
    G, D, augment_pipe, _ = build_networks(preset, num_classes=2, class_names=NAMES)
    return create_gan_trainer(
        data,
        G=G,
        D=D,
        augment_pipe=augment_pipe,
        options=options or small_options(max_kimg=0.004),
        num_classes=2,
        class_names=NAMES,
        output_dir=out,
        device="cpu",
        seed=0,
        progress=False,
        sample_kimg=1.0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def data():
    return blob_dataset(8, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan")
    _trainer(data, out).run()
    assert (out / "checkpoints" / "latest.pt").is_file()
    return out


def _copy(trained, tmp_path):
    import shutil

    return shutil.copytree(trained, tmp_path / "run")


def test_resume_with_another_preset_names_the_file_both_configs_and_how_to_start_over(trained, data, tmp_path):
    out = _copy(trained, tmp_path)
    other = get_preset("tiny")
    other["G"]["synthesis_kwargs"]["channel_max"] = 16
    other["D"]["channel_max"] = 16
    with pytest.raises(ValueError) as info:
        _trainer(data, out, preset=other, resume="auto")
    message = str(info.value)
    assert str(out / "checkpoints" / "latest.pt") in message
    assert "trained with preset 'tiny', this run asks for a custom network config" in message
    assert "G.synthesis_kwargs: stored" in message and "'channel_max': 32" in message and "'channel_max': 16" in message
    assert "D.channel_max: stored 32, requested 16" in message
    assert "resume=None" in message and "new output_dir" in message and str(out) in message


def test_resume_from_another_paper_preset_names_both_presets(trained, data, tmp_path):
    """Stored ``tiny`` and requested ``32`` are recognised by name (the comparison happens before any weights load)."""
    out = _copy(trained, tmp_path)
    with pytest.raises(
        ValueError, match=r"trained with preset 'tiny', this run asks for preset '32' \(G\.synthesis_kwargs"
    ):
        _trainer(data, out, preset="32", resume="auto")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_damaged_latest_checkpoint_names_the_file_and_how_to_start_over(trained, data, tmp_path, damage):
    out = _copy(trained, tmp_path)
    latest = out / "checkpoints" / "latest.pt"
    raw = latest.read_bytes()
    latest.write_bytes({"truncate": raw[: len(raw) // 3], "garbage": b"not a checkpoint", "empty": b""}[damage])
    with pytest.raises(ValueError) as info:
        _trainer(data, out, resume="auto")
    message = str(info.value)
    assert message.startswith(
        f"cannot resume GAN training from {latest}: the file cannot be read, it is damaged or truncated"
    )
    assert "resume=None" in message and "--set resume=None" in message


def test_a_damaged_checkpoint_lists_the_snapshots_kept_beside_it(data, tmp_path):
    out = tmp_path / "snap"
    _trainer(data, out, keep_snapshots=True).run()
    snapshots = sorted(p.name for p in (out / "checkpoints").glob("gan-*kimg.pt"))
    assert snapshots
    (out / "checkpoints" / "latest.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=f"numbered snapshots beside it: {snapshots[-1]}"):
        _trainer(data, out, resume="auto")
    # and the snapshot named there resumes
    resumed = _trainer(data, out, resume=str(out / "checkpoints" / snapshots[-1]))
    assert resumed.state.iteration == 1


def test_another_batch_size_names_the_file_and_how_to_start_over(trained, data, tmp_path):
    out = _copy(trained, tmp_path)
    with pytest.raises(
        ValueError,
        match=r"cannot resume GAN training from .*latest\.pt: ValueError: checkpoint was trained "
        r"with batch_size=4, this run uses 8.*resume=None",
    ):
        _trainer(data, out, options=small_options(max_kimg=0.008, batch_size=8, batch_gpu=8), resume="auto")


def test_a_file_that_is_not_a_training_checkpoint_is_named(trained, data, tmp_path):
    out = _copy(trained, tmp_path)
    with pytest.raises(ValueError, match=r"generator\.pt: not a GAN training checkpoint \(format 'gemix-generator/1'"):
        _trainer(data, out, resume=str(out / "models" / "generator" / "generator.pt"))


def test_a_missing_resume_path_lists_the_accepted_values(data, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"never \(resume takes None, 'auto' or a checkpoint path\)"):
        _trainer(data, tmp_path, resume="never")
