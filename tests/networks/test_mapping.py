import pytest
import torch

from gemix_monai.mixing import to_soft_label
from gemix_monai.networks import MappingNetwork


def make_mapping(c_dim=3, num_ws=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    return MappingNetwork(z_dim=8, c_dim=c_dim, w_dim=16, num_ws=num_ws, num_layers=2, **kwargs)


def test_output_shape_is_n_by_num_ws_by_w_dim():
    mapping = make_mapping()
    ws = mapping(torch.randn(4, 8), torch.full((4, 3), 1 / 3))
    assert ws.shape == (4, 5, 16)
    assert torch.equal(ws[:, 0], ws[:, 4])  # the same w broadcast to every layer


def test_soft_label_equal_to_one_hot_gives_exactly_the_hard_label_output():
    mapping = make_mapping()
    z = torch.randn(3, 8)
    hard = to_soft_label(torch.tensor([0, 2, 1]), 3)
    lam = torch.tensor([[1.0], [0.0], [1.0]])  # mixing with λ ∈ {0, 1} lands exactly on a vertex
    soft = lam * hard + (1 - lam) * to_soft_label(torch.tensor([1, 2, 0]), 3)
    soft[1] = torch.tensor([0.0, 0.0, 1.0])
    assert torch.equal(mapping(z, soft), mapping(z, hard))


def test_embedding_of_a_soft_label_is_the_convex_combination_of_class_embeddings():
    mapping = make_mapping()
    eye = torch.eye(3)
    lam = torch.tensor([[0.7], [0.25], [0.5]])
    soft = lam * eye[[1, 0, 2]] + (1 - lam) * eye[[0, 2, 1]]
    expected = lam * mapping.embed(eye[[1, 0, 2]]) + (1 - lam) * mapping.embed(eye[[0, 2, 1]])
    torch.testing.assert_close(mapping.embed(soft), expected, rtol=1e-5, atol=1e-5)


def test_mapping_is_continuous_along_the_simplex():
    mapping = make_mapping(c_dim=4)
    with torch.no_grad():  # make the label matter as it would after training
        mapping.embed.weight.mul_(3)
    z = torch.randn(1, 8).repeat(201, 1)
    t = torch.linspace(0, 1, 201)[:, None]
    a, b = torch.tensor([0.7, 0.1, 0.2, 0.0]), torch.tensor([0.0, 0.0, 0.1, 0.9])
    c = (1 - t) * a + t * b
    w = mapping(z, c)[:, 0]
    steps = (w[1:] - w[:-1]).norm(dim=1) / (c[1:] - c[:-1]).norm(dim=1)
    assert torch.isfinite(steps).all()
    # Lipschitz-style: no step is much steeper than the average slope over the path (no jumps)
    assert steps.max() <= 4 * steps.mean()
    assert (w[-1] - w[0]).norm() > 0  # and the label does move w


def test_update_emas_moves_w_avg_by_beta():
    mapping = make_mapping(w_avg_beta=0.9)
    z, c = torch.randn(6, 8), torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    w = mapping(z, c)[:, 0]
    before = mapping.w_avg.clone()
    mapping(z, c, update_emas=True)
    torch.testing.assert_close(mapping.w_avg, 0.9 * before + 0.1 * w.mean(dim=0))
    mapping(z, c)  # without update_emas it stays
    torch.testing.assert_close(mapping.w_avg, 0.9 * before + 0.1 * w.mean(dim=0))


def test_truncation_psi_zero_gives_w_avg():
    mapping = make_mapping()
    z, c = torch.randn(4, 8), torch.eye(3)[[0, 1, 2, 0]]
    for _ in range(3):
        mapping(torch.randn(4, 8), c, update_emas=True)
    assert mapping.w_avg.abs().sum() > 0
    ws = mapping(z, c, truncation_psi=0)
    torch.testing.assert_close(ws, mapping.w_avg.expand_as(ws))


def test_truncation_cutoff_leaves_later_layers_untouched():
    mapping = make_mapping()
    mapping(torch.randn(4, 8), torch.eye(3)[[0, 1, 2, 0]], update_emas=True)
    z, c = torch.randn(2, 8), torch.eye(3)[[0, 1]]
    full, cut = mapping(z, c), mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], mapping.w_avg.lerp(full[:, :2], 0.5))
    assert torch.equal(cut[:, 2:], full[:, 2:])


@pytest.mark.parametrize(
    "labels, message",
    [
        ([[0.5, 0.5]], "length 3"),
        ([[1.2, -0.2, 0.0]], "row 0 has a negative entry"),
        ([[1.0, 0.0, 0.0], [0.5, 0.4, 0.0]], "row 1 sums to 0.9"),
        ([[1.0, 0.0, 0.0], [float("nan"), 0.5, 0.5]], "row 1 has a non-finite entry"),
        ([0, 1, 2], r"shape \[N, 3\]"),
    ],
)
def test_labels_off_the_simplex_are_refused_naming_c_and_the_row(labels, message):
    mapping = make_mapping()
    c = torch.tensor(labels)
    with pytest.raises(ValueError, match=message) as info:
        mapping(torch.randn(c.shape[0], 8), c)
    assert str(info.value).startswith("c ")


def test_rounding_noise_below_tolerance_is_accepted():
    mapping = make_mapping()
    c = torch.tensor([[0.7, 0.3, 1 - 0.7 - 0.3], [1 / 3, 1 / 3, 1 / 3 + 5e-5]])
    assert mapping(torch.randn(2, 8), c).shape == (2, 5, 16)


def test_z_of_the_wrong_size_is_refused():
    mapping = make_mapping()
    with pytest.raises(ValueError, match=r"z must have shape \[N, 8\]"):
        mapping(torch.randn(2, 7), torch.eye(3)[:2])
