import pytest
import torch
from monai.data import DataLoader

from gemix_monai.transforms import (
    STRATEGIES,
    GenMixd,
    RealSyntheticDataset,
    SoftMixUpd,
    SyntheticDataset,
    build_strategy,
)

K = 3


def _first_batch(strategy, batch_size=6):
    batch = next(
        iter(
            DataLoader(
                strategy.dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
            )
        )
    )
    return strategy.batch_transform(batch) if strategy.batch_transform is not None else batch


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_yields_soft_labelled_batches(name, standin_generator, real_dataset):
    strategy = build_strategy(name, real_dataset, K, generator=standin_generator, seed=0)
    batch = _first_batch(strategy)
    assert batch["image"].shape == (6, 1, 32, 32)
    assert batch["label"].shape == (6, K) and batch["label"].dtype == torch.float32
    torch.testing.assert_close(batch["label"].sum(1), torch.ones(6))


@pytest.mark.parametrize(
    "name, dataset_type, transform_type, n_items",
    [
        ("real", RealSyntheticDataset, type(None), 10),
        ("pixel_mixup", RealSyntheticDataset, SoftMixUpd, 10),
        ("synthetic_only", SyntheticDataset, type(None), 10),
        ("real+synthetic", RealSyntheticDataset, type(None), 30),
        ("gemix", RealSyntheticDataset, type(None), 30),
        ("gemix_code", RealSyntheticDataset, type(None), 30),
        ("softmax_t", RealSyntheticDataset, type(None), 30),
        ("genmix", RealSyntheticDataset, GenMixd, 10),
    ],
)
def test_strategy_is_one_dataset_and_at_most_one_transform(
    name, dataset_type, transform_type, n_items, standin_generator, real_dataset
):
    strategy = build_strategy(name, real_dataset, K, generator=standin_generator)
    assert isinstance(strategy.dataset, dataset_type) and isinstance(strategy.batch_transform, transform_type)
    assert len(strategy.dataset) == n_items


@pytest.mark.parametrize(
    "name, sampler",
    [
        ("real+synthetic", "one_hot"),
        ("gemix", "dirichlet_beta"),
        ("gemix_code", "dirichlet"),
        ("softmax_t", "temperature_softmax"),
    ],
)
def test_strategy_uses_its_sampler(name, sampler, standin_generator, real_dataset):
    assert build_strategy(name, real_dataset, K, generator=standin_generator).sampler.name == sampler


def test_real_plus_synthetic_draws_hard_synthetic_labels(standin_generator, real_dataset):
    strategy = build_strategy("real+synthetic", real_dataset, K, generator=standin_generator)
    labels = torch.stack([strategy.dataset[i]["label"] for i in range(len(strategy.dataset))])
    assert set(labels.flatten().tolist()) <= {0.0, 1.0}


def test_sampler_options_reach_the_sampler(standin_generator, real_dataset):
    strategy = build_strategy(
        "softmax_t",
        real_dataset,
        K,
        generator=standin_generator,
        sampler_kwargs={"temperature": 0.5},
        class_weights=[1, 2, 3],
    )
    assert strategy.sampler.temperature == 0.5 and strategy.sampler.class_weights == [1.0, 2.0, 3.0]


def test_generative_strategies_need_a_generator(real_dataset):
    with pytest.raises(ValueError, match="needs a generator"):
        build_strategy("gemix", real_dataset, K)


def test_unknown_strategy_lists_the_known_ones(real_dataset):
    with pytest.raises(ValueError, match="expected one of"):
        build_strategy("cutmix", real_dataset, K)
