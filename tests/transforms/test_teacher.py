"""Teacher labels: a classifier trained on real data relabels or filters synthetic images (docs/mixing.md)."""

import numpy as np
import pytest
import torch

from gemix_monai.mixing import DirichletBetaSampler
from gemix_monai.transforms import SyntheticDataset
from gemix_monai.transforms.strategies import build_strategy
from gemix_monai.transforms.teacher import TeacherLabelledSynthetic, deficit_class_weights

K = 3


class AlwaysClass(torch.nn.Module):
    """A teacher that sees class ``k`` in every image (probability ≈ 1)."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.full((x.shape[0], K), -20.0)
        logits[:, self.k] = 20.0
        return logits + 0 * self.anchor


def _synthetic(gen, n, seed=0):
    return SyntheticDataset(gen, DirichletBetaSampler(K), num_images=n, seed=seed)


def test_blend_mixes_the_asked_label_with_what_the_teacher_sees(standin_generator):
    inner = _synthetic(standin_generator, 8)
    wrapped = TeacherLabelledSynthetic(_synthetic(standin_generator, 8), AlwaysClass(1), mode="blend", weight=0.25)
    images, labels = wrapped.generate(range(8))
    asked_images, asked = inner.generate(range(8))
    torch.testing.assert_close(images, asked_images)
    torch.testing.assert_close(labels, 0.25 * asked + 0.75 * torch.eye(K)[1].expand(8, K), atol=1e-5, rtol=0)
    torch.testing.assert_close(labels.sum(1), torch.ones(8))


def test_filter_keeps_only_images_whose_teacher_agrees_or_blends_the_closest(standin_generator):
    tries = 4
    pool = _synthetic(standin_generator, 10 * tries)
    wrapped = TeacherLabelledSynthetic(pool, AlwaysClass(0), mode="filter", tolerance=0.5, tries=tries, weight=0.5)
    assert len(wrapped) == 10
    _, labels = wrapped.generate(range(10))
    _, all_labels = pool.generate(range(10 * tries))
    teacher = torch.eye(K)[0]
    for i in range(10):
        candidates = all_labels[[i + t * 10 for t in range(tries)]]
        distances = 0.5 * (candidates - teacher).abs().sum(1)
        if bool((distances <= 0.5).any()):  # the first agreeing candidate, label unchanged
            first = int(torch.nonzero(distances <= 0.5)[0])
            torch.testing.assert_close(labels[i], candidates[first])
        else:  # none agrees: the closest, with its label blended towards what the teacher sees
            closest = candidates[int(distances.argmin())]
            torch.testing.assert_close(labels[i], 0.5 * closest + 0.5 * teacher)
    assert wrapped.stats["seen"] == 10


def test_items_are_a_function_of_the_index(standin_generator):
    a = TeacherLabelledSynthetic(_synthetic(standin_generator, 24), AlwaysClass(2), mode="filter", tries=4)
    b = TeacherLabelledSynthetic(_synthetic(standin_generator, 24), AlwaysClass(2), mode="filter", tries=4)
    torch.testing.assert_close(a.generate([5, 1])[1], torch.stack([b.generate([5])[1][0], b.generate([1])[1][0]]))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "vote"}, "mode"),
        ({"weight": 1.5}, "weight"),
        ({"tolerance": 0.0}, "tolerance"),
        ({"mode": "filter", "tries": 0}, "tries"),
    ],
)
def test_bad_teacher_settings_are_named(standin_generator, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherLabelledSynthetic(_synthetic(standin_generator, 8), AlwaysClass(0), **kwargs)


def test_deficit_weights_fill_the_minority_first():
    weights = deficit_class_weights([0] * 8 + [1] * 2 + [2] * 6, 3)
    np.testing.assert_allclose(weights, np.array([0, 6, 2]) / 8 * 3)
    assert deficit_class_weights([0, 1, 2], 3) == [1.0, 1.0, 1.0]


def test_strategy_with_a_teacher_and_deficit_weights(standin_generator):
    real = [{"image": torch.zeros(1, 32, 32), "label": y} for y in [0] * 6 + [1] * 2 + [2] * 4]
    strat = build_strategy(
        "gemix",
        real,
        K,
        generator=standin_generator,
        synthetic_ratio=1.0,
        class_weights="deficit",
        teacher=AlwaysClass(0),
        teacher_mode="filter",
        teacher_tries=2,
    )
    assert len(strat.dataset) == 24 and strat.info["teacher"]["mode"] == "filter"
    np.testing.assert_allclose(strat.sampler.class_probabilities, [0.0, 4 / 6, 2 / 6])
    with pytest.raises(ValueError, match="not to genmix"):
        build_strategy("genmix", real, K, generator=standin_generator, teacher=AlwaysClass(0))
