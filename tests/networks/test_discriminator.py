import pytest
import torch

from gemix_monai.networks import AugmentPipe
from gemix_monai.networks.layers import MinibatchStdLayer


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [16, 32, 64, 128, 256])
def test_logits_shape_for_every_resolution_and_channel_count(resolution, channels, make_discriminator):
    D = make_discriminator(resolution=resolution, channels=channels)
    with torch.no_grad():
        logits = D(torch.randn(2, channels, resolution, resolution), torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5]]))
    assert logits.shape == (2, 1) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_projection_conditioning_depends_on_the_label(make_discriminator):
    D = make_discriminator()
    img = torch.randn(1, 1, 16, 16).repeat(3, 1, 1, 1)
    with torch.no_grad():
        logits = D(img, torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]]))[:, 0]
    assert len(set(logits.tolist())) == 3


def test_projection_score_is_the_scaled_dot_product_with_cmap(make_discriminator):
    D = make_discriminator()
    img, c = torch.randn(4, 1, 16, 16), torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        x = None
        for block in D.blocks:
            x = block(x, img)
        cmap = D.mapping(None, c)
        x = D.epilogue.mbstd(x)
        features = D.epilogue.out(D.epilogue.fc(D.epilogue.conv(x).flatten(1)))
        expected = (features * cmap).sum(1, keepdim=True) / D.cmap_dim**0.5
        torch.testing.assert_close(D(img, c), expected)


def test_labels_off_the_simplex_are_refused(make_discriminator):
    D = make_discriminator()
    with pytest.raises(ValueError, match="row 1 sums to 1.5"):
        D(torch.randn(2, 1, 16, 16), torch.tensor([[1.0, 0, 0], [1.0, 0.5, 0]]))


def test_image_of_the_wrong_shape_is_refused(make_discriminator):
    D = make_discriminator()
    with pytest.raises(ValueError, match=r"img must have shape \[N, 1, 16, 16\]"):
        D(torch.randn(2, 3, 16, 16), torch.eye(3)[:2])


@pytest.mark.parametrize("batch", [1, 4, 6, 7])
def test_minibatch_std_works_for_any_batch_size(batch):
    layer = MinibatchStdLayer(group_size=4, num_channels=2)
    x = torch.randn(batch, 4, 3, 3)
    y = layer(x)
    assert y.shape == (batch, 6, 3, 3)
    assert torch.equal(y[:, :4], x)
    assert torch.isfinite(y).all()


def test_minibatch_std_is_the_group_standard_deviation():
    layer = MinibatchStdLayer(group_size=2, num_channels=1)
    x = torch.randn(4, 3, 2, 2)
    y = layer(x)
    # groups: samples {0, 2} and {1, 3} (i mod 2)
    expected = x[[0, 2]].std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(y[0, 3, 0, 0], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y[2, 3], y[0, 3])


@pytest.mark.parametrize("use_augment", [False, True], ids=["plain", "through-augment-pipe"])
def test_r1_double_backward_through_the_discriminator(use_augment, make_discriminator):
    torch.manual_seed(0)
    D = make_discriminator()
    augment = AugmentPipe.from_preset("bgc", p=1.0) if use_augment else (lambda x: x)
    real = torch.randn(4, 1, 16, 16).requires_grad_(True)
    logits = D(augment(real), torch.eye(3)[[0, 1, 2, 0]])
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grad.square().sum(dim=(1, 2, 3)).mean()
    penalty.backward()
    assert torch.isfinite(penalty) and penalty > 0
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads)
    assert D.blocks[0].conv0.weight.grad.abs().sum() > 0
