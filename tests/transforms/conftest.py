import pytest
import torch

NUM_CLASSES = 3


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


@pytest.fixture(scope="session")
def standin_generator():
    return StandInGenerator()


@pytest.fixture(scope="session")
def tiny_generator():
    """A randomly initialised real Generator of the ``tiny`` preset (32 px, 1 channel), 3 classes."""
    from gemix_monai.networks import Generator, get_preset

    torch.manual_seed(0)
    kwargs = dict(get_preset("tiny")["G"])
    return (
        Generator(c_dim=NUM_CLASSES, class_names=["normal", "benign", "malignant"], **kwargs)
        .eval()
        .requires_grad_(False)
    )


@pytest.fixture(scope="session")
def tiny_generator_path(tiny_generator, tmp_path_factory):
    """The same generator written with ``save_checkpoint`` (loaded back through the path by the code under test)."""
    path = tmp_path_factory.mktemp("generator") / "generator.pt"
    tiny_generator.save_checkpoint(path)
    return path


class CountingGenerator:
    """Wraps a Generator, counts ``generate`` calls, and can fail on a given call (a simulated crash)."""

    def __init__(self, generator, fail_on_call: int | None = None):
        self.inner = generator
        self.calls = 0
        self.fail_on_call = fail_on_call
        for name in ("z_dim", "c_dim", "img_resolution", "img_channels", "class_names"):
            setattr(self, name, getattr(generator, name))

    def generate(self, *args, **kwargs):
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner.generate(*args, **kwargs)


@pytest.fixture
def counting_generator(standin_generator):
    return lambda fail_on_call=None: CountingGenerator(standin_generator, fail_on_call)


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


@pytest.fixture
def real_dataset():
    return DictDataset(10)
