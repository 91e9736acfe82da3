import numpy as np
import pytest
import torch

from gemix_monai.networks import GENERATOR_FORMAT, Generator
from gemix_monai.utils import atomic_torch_save


@pytest.fixture
def trained_like(make_generator, with_noise_strength):
    """A generator with non-trivial noise strengths and w_avg, as after training."""
    G = with_noise_strength(make_generator(resolution=16, channels=2, c_dim=3), 0.5)
    G.mapping(torch.randn(32, G.z_dim), torch.eye(3)[torch.arange(32) % 3], update_emas=True)
    return G.eval()


def test_checkpoint_round_trip_gives_the_same_images(trained_like, tmp_path):
    path = trained_like.save_checkpoint(tmp_path / "models" / "generator.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == GENERATOR_FORMAT and raw["config"] == trained_like.init_kwargs
    loaded = Generator.from_checkpoint(path)
    labels = [[1.0, 0.0, 0.0], [0.7, 0.3, 0.0], [0.2, 0.3, 0.5]]
    expected = trained_like.generate(labels, seed=11, truncation_psi=0.7)
    torch.testing.assert_close(loaded.generate(labels, seed=11, truncation_psi=0.7), expected, rtol=0, atol=0)
    assert loaded.class_names == trained_like.class_names and not loaded.training


def test_class_names_travel_with_the_checkpoint(tmp_path):
    G = Generator(
        8, 2, 16, 16, 1, class_names=["normal", "pneumonia"], synthesis_kwargs=dict(channel_base=256, channel_max=16)
    )
    G.save_checkpoint(tmp_path / "g.pt")
    assert Generator.from_checkpoint(tmp_path / "g.pt").class_names == ["normal", "pneumonia"]


def test_training_checkpoint_loads_g_ema(trained_like, make_generator, tmp_path):
    other = make_generator(resolution=16, channels=2, c_dim=3, seed=5)
    training = {
        "format": "gemix-gan-training/1",
        "config": {"G": trained_like.init_kwargs, "D": {}},
        "G": other.state_dict(),
        "G_ema": trained_like.state_dict(),
        "D": {},
        "images_seen": 1000,
    }
    atomic_torch_save(training, tmp_path / "latest.pt")
    loaded = Generator.from_checkpoint(tmp_path / "latest.pt")
    labels = torch.eye(3)
    torch.testing.assert_close(loaded.generate(labels, seed=3), trained_like.generate(labels, seed=3), rtol=0, atol=0)


@pytest.mark.parametrize(
    "expected, message",
    [
        (dict(expected_resolution=32), r"resolution \(img_resolution\) is 16, expected 32"),
        (dict(expected_channels=1), r"number of image channels \(img_channels\) is 2, expected 1"),
        (dict(expected_num_classes=2), r"number of classes \(c_dim\) is 3, expected 2"),
    ],
)
def test_checkpoint_for_another_task_is_refused_saying_which(trained_like, tmp_path, expected, message):
    path = trained_like.save_checkpoint(tmp_path / "g.pt")
    with pytest.raises(ValueError, match=message):
        Generator.from_checkpoint(path, **expected)
    assert (
        Generator.from_checkpoint(path, expected_resolution=16, expected_channels=2, expected_num_classes=3).c_dim == 3
    )


def test_unknown_checkpoint_format_is_refused(trained_like, tmp_path):
    payload = torch.load(trained_like.save_checkpoint(tmp_path / "g.pt"), weights_only=True)
    payload["format"] = "gemix-generator/9"
    atomic_torch_save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="unsupported checkpoint format 'gemix-generator/9'"):
        Generator.from_checkpoint(tmp_path / "future.pt")


def test_a_file_that_is_no_generator_checkpoint_is_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "classifier.pt")
    with pytest.raises(ValueError, match="not a generator checkpoint.*found keys \\['model'\\]"):
        Generator.from_checkpoint(tmp_path / "classifier.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Generator.from_checkpoint(tmp_path / "missing.pt")


def test_weights_that_do_not_fit_the_config_are_refused(trained_like, make_generator, tmp_path):
    payload = torch.load(trained_like.save_checkpoint(tmp_path / "g.pt"), weights_only=True)
    payload["state_dict"] = make_generator(resolution=32, channels=2, c_dim=3).state_dict()
    atomic_torch_save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="stored weights do not fit"):
        Generator.from_checkpoint(tmp_path / "bad.pt")


def test_generate_returns_images_in_the_training_range(trained_like):
    labels = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.1, 0.1, 0.8], [0.0, 0.0, 1.0]], dtype=np.float64)
    with torch.no_grad():
        trained_like.synthesis.blocks[-1].torgb.bias.fill_(3.0)  # push the raw output outside [-1, 1]
    images = trained_like.generate(labels, seed=0)
    assert images.shape == (4, 2, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert (images == 1).any()  # it was clamped, not rescaled


def test_generate_in_batches_equals_one_big_batch_with_the_same_z(trained_like):
    labels = torch.distributions.Dirichlet(torch.ones(3)).sample((7,))
    labels = labels / labels.sum(1, keepdim=True)
    z = torch.randn(7, trained_like.z_dim)
    whole = trained_like.generate(labels, z=z, batch_size=64)
    batched = trained_like.generate(labels, z=z, batch_size=3)
    torch.testing.assert_close(batched, whole, rtol=1e-5, atol=1e-5)


def test_generate_with_a_seed_is_reproducible_also_with_random_noise(trained_like):
    labels = torch.eye(3)
    a = trained_like.generate(labels, seed=7, noise_mode="random")
    b = trained_like.generate(labels, seed=7, noise_mode="random")
    c = trained_like.generate(labels, seed=8, noise_mode="random")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_runs_without_recording_gradients(make_generator):
    G = make_generator()  # even a generator in training mode with trainable parameters
    assert not G.generate(torch.eye(3)).requires_grad


@pytest.mark.parametrize(
    "labels, message",
    [
        ([[0.6, 0.6, 0.0]], r"soft_labels must be points of the probability simplex.*row 0 sums to 1.2"),
        ([[1.0, 0.0, 0.0], [-0.1, 0.6, 0.5]], r"soft_labels .*row 1 has a negative entry"),
        ([[0.5, 0.5]], r"soft_labels rows must have length 3 \(the number of classes\), got rows of length 2"),
        ([1.0, 0.0, 0.0], r"soft_labels must have shape \[N, 3\]"),
    ],
)
def test_generate_refuses_bad_rows_naming_the_row(trained_like, labels, message):
    with pytest.raises(ValueError, match=message):
        trained_like.generate(labels)


def test_generate_refuses_z_of_the_wrong_shape(trained_like):
    with pytest.raises(ValueError, match=r"z must have shape \[N, z_dim\] = \[2, 8\]"):
        trained_like.generate(torch.eye(3)[:2], z=torch.randn(3, 8))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_generate_refuses_a_bad_batch_size(trained_like, batch_size):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        trained_like.generate(torch.eye(3), batch_size=batch_size)
