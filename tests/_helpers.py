"""Helpers shared by test modules in several folders (``tests/`` is on ``sys.path`` through its conftest)."""

from __future__ import annotations


def error_chain(exc: BaseException) -> str:
    """All messages of an exception and its causes (config evaluation and the CLI wrap the real error)."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def small_generator(
    seed: int = 0,
    c_dim: int = 3,
    *,
    resolution: int = 16,
    channels: int = 1,
    w_dim: int = 16,
    channel_base: int = 256,
    channel_max: int = 16,
    class_names=None,
):
    """A randomly initialised StyleGAN2 ``Generator`` (``z_dim`` 8, two mapping layers, no fp16) small enough for
    many calls per test: by default 16 px, 1 channel; ``channels = C + M`` makes a generator of image-mask pairs."""
    import torch

    from gemix_monai.networks import Generator

    torch.manual_seed(seed)
    G = Generator(
        z_dim=8,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0),
    )
    if class_names is not None:
        G.class_names = list(class_names)
    return G


def train_two_step_generator(dataset, out, family: str = "stylegan2"):
    """The generator checkpoint of ``family`` (``tiny`` preset) trained two steps of batch 4 on ``dataset`` (with its
    masks, when it has them: what ``train-gan`` does on such data)."""
    from gemix_monai.engines.generative import train_generator

    return train_generator(
        dataset,
        out,
        family=family,
        preset="tiny",
        class_names=dataset.class_names,
        max_kimg=0.008,
        batch_size=4,
        seed=0,
        sample_kimg=1.0,
        progress=False,
    )


def read_csv(path) -> list[dict]:
    """The rows of a CSV file with a header, as dicts."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_fake_generator(cell_dir) -> dict:
    """What a stand-in GAN cell runner writes (a placeholder ``models/generator/generator.pt``, where ``train_gan``
    exports the generator) and returns (its path relative to the cell)."""
    from pathlib import Path

    (Path(cell_dir) / "models" / "generator").mkdir(parents=True, exist_ok=True)
    (Path(cell_dir) / "models" / "generator" / "generator.pt").write_bytes(b"fake")
    return {"generator": "models/generator/generator.pt"}
