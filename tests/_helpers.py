"""Helpers shared by test modules in several folders (``tests/`` is on ``sys.path`` through its conftest)."""

from __future__ import annotations

import torch

#: classes of the stand-in generator and data (tests/transforms)
NUM_CLASSES = 3


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


class StandInGenerator(torch.nn.Module):
    """A small randomly initialised conditional generator with the Generator API (``generate``, ``z_dim``, ``c_dim``,
    ``img_resolution``, ``img_channels``, ``class_names``): image = tanh(linear(z, c)). Deterministic given (z, c).

    Most transform tests use it so they test this package's code, not the GAN's; the end-to-end tests use the
    real ``tiny`` Generator through a checkpoint path.
    """

    def __init__(self, c_dim=NUM_CLASSES, z_dim=16, img_resolution=32, img_channels=1, seed=0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, img_resolution, img_channels
        self.class_names = [f"class{k}" for k in range(c_dim)]
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(
            torch.randn(z_dim + c_dim, img_channels * img_resolution**2, generator=g) / (z_dim + c_dim) ** 0.5
        )

    @torch.no_grad()
    def generate(
        self, soft_labels, z=None, truncation_psi=1.0, noise_mode="const", batch_size=64, device=None, seed=None
    ):
        c = torch.as_tensor(soft_labels, dtype=torch.float32)
        assert c.ndim == 2 and c.shape[1] == self.c_dim, c.shape
        if z is None:
            z = torch.randn(c.shape[0], self.z_dim, generator=torch.Generator().manual_seed(seed or 0))
        assert z.shape == (c.shape[0], self.z_dim), z.shape
        device = torch.device(device) if device is not None else self.weight.device
        out = [
            torch.tanh(
                truncation_psi
                * torch.cat([z[i : i + batch_size], c[i : i + batch_size]], 1).to(device)
                @ self.weight.to(device)
            )
            for i in range(0, c.shape[0], batch_size)
        ]
        out = torch.cat(out) if out else torch.empty(0, self.img_channels * self.img_resolution**2, device=device)
        return out.view(-1, self.img_channels, self.img_resolution, self.img_resolution)


class DictDataset(torch.utils.data.Dataset):
    """Real data stand-in at the generator's resolution: ``{"image": [1, 32, 32], "label": int}``."""

    def __init__(self, n: int, num_classes: int = NUM_CLASSES, size: int = 32, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        self.labels = torch.randint(0, num_classes, (n,), generator=g).tolist()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": self.labels[i]}
