"""LPIPS from a local weight file (no download): the distance's properties, the file checks, the audit's report."""

import pytest
import torch

from gemix_monai.metrics.lpips import LPIPS, LPIPS_FORMAT, mean_pairwise_lpips


@pytest.fixture
def weight_file(tmp_path):
    torch.manual_seed(0)
    model = LPIPS()
    for m in model.features:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.05)
    state = {k: v for k, v in model.state_dict().items() if k not in ("shift", "scale")}
    for i in range(5):
        state[f"lin{i}"] = torch.rand_like(state[f"lin{i}"])
    path = tmp_path / "lpips_alex.pt"
    torch.save({"format": LPIPS_FORMAT, "network": "alex", "state_dict": state}, path)
    return path


def test_lpips_is_zero_on_equal_images_symmetric_and_positive_otherwise(weight_file):
    model = LPIPS.from_file(weight_file)
    x, y = torch.rand(4, 1, 64, 64) * 2 - 1, torch.rand(4, 1, 64, 64) * 2 - 1
    torch.testing.assert_close(model(x, x), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(model(x, y), model(y, x))
    assert bool((model(x, y) > 0).all())
    # grey images are compared as RGB with three equal channels
    torch.testing.assert_close(model(x, y), model(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)))


def test_lpips_equals_its_definition_on_one_pair(weight_file):
    model = LPIPS.from_file(weight_file)
    x, y = torch.rand(1, 3, 64, 64) * 2 - 1, torch.rand(1, 3, 64, 64) * 2 - 1
    expected = 0.0
    for i, (fx, fy) in enumerate(zip(model._taps(x), model._taps(y))):
        nx, ny = fx / fx.norm(dim=1, keepdim=True), fy / fy.norm(dim=1, keepdim=True)
        expected += float((getattr(model, f"lin{i}") * (nx - ny) ** 2).sum(1).mean())
    assert float(model(x, y)) == pytest.approx(expected, rel=1e-5)


def test_diversity_of_a_set_of_copies_is_zero_and_needs_two_images(weight_file):
    model = LPIPS.from_file(weight_file)
    same = torch.rand(1, 1, 32, 32).repeat(5, 1, 1, 1)
    assert mean_pairwise_lpips(model, same) == pytest.approx(0.0, abs=1e-9)
    assert mean_pairwise_lpips(model, torch.rand(6, 1, 32, 32)) > 0
    with pytest.raises(ValueError, match="at least 2 images"):
        mean_pairwise_lpips(model, same[:1])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"format": "other"}, "not an LPIPS weight file"),
        ({"format": LPIPS_FORMAT, "network": "vgg", "state_dict": {}}, "network 'vgg'"),
        ({"format": LPIPS_FORMAT, "network": "alex", "state_dict": {}}, "LPIPS weights missing"),
    ],
)
def test_bad_weight_files_are_refused_naming_the_file(tmp_path, payload, message):
    path = tmp_path / "w.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=message) as info:
        LPIPS.from_file(path)
    assert str(path) in str(info.value)


def test_negative_linear_weights_are_refused(tmp_path, weight_file):
    payload = torch.load(weight_file, weights_only=True)
    payload["state_dict"]["lin2"] = -payload["state_dict"]["lin2"]
    torch.save(payload, tmp_path / "neg.pt")
    with pytest.raises(ValueError, match="must be non-negative"):
        LPIPS.from_file(tmp_path / "neg.pt")
