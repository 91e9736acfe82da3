"""Classifier networks and the soft-target cross-entropy."""

import pytest
import torch

from gemix_monai.engines.classifier_networks import (
    CLASSIFIER_NETWORKS,
    FEATURE_LAYERS,
    SoftTargetCrossEntropy,
    build_classifier_network,
)


@pytest.mark.parametrize("name", CLASSIFIER_NETWORKS)
def test_network_maps_images_to_logits_and_has_its_feature_layer(name):
    torch.manual_seed(0)
    net = build_classifier_network(name, in_channels=1, num_classes=3).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert FEATURE_LAYERS[name] in dict(net.named_modules())


def test_tiny_network_takes_any_image_size_and_channels():
    net = build_classifier_network("tiny", in_channels=3, num_classes=4).eval()
    assert net(torch.randn(1, 3, 24, 40)).shape == (1, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(name="vgg", in_channels=1, num_classes=2), "unknown network 'vgg'"),
        (dict(name="tiny", in_channels=0, num_classes=2), "in_channels"),
        (dict(name="tiny", in_channels=1, num_classes=1), "num_classes"),
    ],
)
def test_bad_network_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_classifier_network(**kwargs)


def test_soft_ce_with_one_hot_targets_equals_cross_entropy():
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = SoftTargetCrossEntropy()
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert torch.allclose(loss(logits, y), expected)
    assert torch.allclose(loss(logits, torch.nn.functional.one_hot(y, 4).float()), expected)


def test_soft_ce_with_soft_targets_is_the_expected_negative_log_likelihood():
    logits = torch.randn(5, 3)
    target = torch.softmax(torch.randn(5, 3), 1)
    expected = -(target * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(SoftTargetCrossEntropy()(logits, target), expected)


def test_soft_ce_gradient_flows_to_logits():
    logits = torch.randn(4, 3, requires_grad=True)
    SoftTargetCrossEntropy()(logits, torch.full((4, 3), 1 / 3)).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "target,match",
    [
        (torch.full((4, 3), 0.5), "simplex"),
        (torch.tensor([0, 1, 3, 0]), "out of range"),
        (torch.full((4, 2), 0.5), r"\[4, 3\]"),
    ],
)
def test_soft_ce_rejects_bad_targets(target, match):
    with pytest.raises(ValueError, match=match):
        SoftTargetCrossEntropy()(torch.randn(4, 3), target)


@pytest.mark.parametrize("kind", ["soft", "one_hot", "indices"])
def test_soft_ce_is_pytorchs_cross_entropy_with_probability_targets(kind):
    """Issue 22: the loss is torch.nn.CrossEntropyLoss (probability targets); the subclass only checks targets."""
    torch.manual_seed(0)
    logits = torch.randn(8, 3, requires_grad=True)
    indices = torch.randint(0, 3, (8,))
    target = {
        "soft": torch.softmax(torch.randn(8, 3), 1),
        "one_hot": torch.nn.functional.one_hot(indices, 3).float(),
        "indices": indices,
    }[kind]
    ours = SoftTargetCrossEntropy()(logits, target)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    theirs = torch.nn.CrossEntropyLoss()(logits, target)
    (grad_theirs,) = torch.autograd.grad(theirs, logits)
    assert isinstance(SoftTargetCrossEntropy(), torch.nn.CrossEntropyLoss)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=0)


def test_soft_ce_refuses_what_pytorch_silently_takes():
    # PyTorch reads any float [B, K] as probabilities: a row summing to 2 simply weighs twice
    logits, doubled = torch.randn(2, 3), torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert torch.isfinite(torch.nn.CrossEntropyLoss()(logits, doubled))
    with pytest.raises(ValueError, match="simplex"):
        SoftTargetCrossEntropy()(logits, doubled)
