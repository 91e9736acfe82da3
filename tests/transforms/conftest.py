import pytest
import torch
from _helpers import DictDataset, StandInGenerator  # noqa: F401 (re-exported for the tests of this folder)

NUM_CLASSES = 3


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


@pytest.fixture
def real_dataset():
    return DictDataset(10)
