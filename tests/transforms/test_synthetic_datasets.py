import pickle

import pytest
import torch
from monai.data import DataLoader

from gemix_monai.mixing import DirichletBetaSampler, OneHotSampler, TemperatureSoftmaxSampler
from gemix_monai.transforms import RealSyntheticDataset, SyntheticDataset, SyntheticSource, load_generator

K = 3


def _dataset(gen, n=12, seed=0, **kw):
    return SyntheticDataset(gen, DirichletBetaSampler(K), num_images=n, seed=seed, batch_size=5, **kw)


def test_items_are_image_and_soft_label(standin_generator):
    item = _dataset(standin_generator)[3]
    assert set(item) == {"image", "label"}
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert (item["image"].abs() <= 1).all()
    assert item["label"].shape == (K,) and abs(item["label"].sum().item() - 1) < 1e-5


def test_item_depends_only_on_seed_and_index(standin_generator):
    a, b = _dataset(standin_generator), _dataset(standin_generator)
    forward = [a[i] for i in range(12)]
    backward = [b[i] for i in reversed(range(12))][::-1]
    # Labels are exact; images agree to float rounding (the convolutions' BLAS blocking depends on the
    # batch size and thread count, so bit equality across batch compositions is not promised).
    for x, y in zip(forward, backward):
        torch.testing.assert_close(x["image"], y["image"], atol=1e-5, rtol=0)
        assert torch.equal(x["label"], y["label"])
    batched = a.__getitems__([7, 2, 11])
    torch.testing.assert_close(batched[0]["image"], forward[7]["image"], atol=1e-5, rtol=0)
    assert torch.equal(batched[2]["label"], forward[11]["label"])


def test_different_seeds_and_epochs_give_different_items(standin_generator):
    a = _dataset(standin_generator, seed=0)
    assert not torch.equal(a[0]["label"], _dataset(standin_generator, seed=1)[0]["label"])
    first = a[0]["image"]
    a.set_epoch(1)
    assert not torch.equal(a[0]["image"], first)
    a.set_epoch(0)
    assert torch.equal(a[0]["image"], first)


def test_per_class_builds_each_block_around_its_class(standin_generator):
    ds = SyntheticDataset(standin_generator, OneHotSampler(K), per_class=4)
    assert len(ds) == 4 * K
    labels, _ = ds.labels_and_latents(range(len(ds)))
    assert torch.equal(labels.argmax(1), torch.arange(K).repeat_interleave(4))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_monai_dataloader_with_workers_reproduces_the_stream(standin_generator, num_workers):
    ds = _dataset(standin_generator, n=10)
    batches = list(DataLoader(ds, batch_size=4, num_workers=num_workers, shuffle=False))
    assert [b["image"].shape[0] for b in batches] == [4, 4, 2]  # a short last batch
    images = torch.cat([b["image"] for b in batches])
    labels = torch.cat([b["label"] for b in batches])
    expected = _dataset(standin_generator, n=10).generate(range(10))
    # Labels and latents are identical; images may differ in the last bit because BLAS blocks by batch size.
    assert torch.equal(labels, expected[1])
    torch.testing.assert_close(images, expected[0], rtol=1e-5, atol=1e-6)


def test_dataset_pickles_with_an_in_memory_generator(standin_generator):
    ds = _dataset(standin_generator)
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[5]["image"], ds[5]["image"])


def test_sampler_must_match_the_generators_classes(standin_generator):
    with pytest.raises(ValueError, match="c_dim=3"):
        SyntheticDataset(standin_generator, DirichletBetaSampler(4), num_images=3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one of"),
        ({"num_images": 2, "per_class": 2}, "exactly one of"),
        ({"num_images": -1}, "num_images must be"),
    ],
)
def test_length_arguments_are_checked(standin_generator, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticDataset(standin_generator, OneHotSampler(K), **kwargs)


def test_index_out_of_range_raises_index_error(standin_generator):
    with pytest.raises(IndexError, match="length 12"):
        _dataset(standin_generator)[12]


def test_generator_without_the_api_is_refused():
    with pytest.raises(TypeError, match="lacks"):
        load_generator(object())


def test_source_draws_reproducible_batches(standin_generator):
    source = SyntheticSource(standin_generator, TemperatureSoftmaxSampler(K))
    a, b = source.draw(6, rng=3), source.draw(6, rng=3)
    assert a[0].shape == (6, 1, 32, 32) and a[1].shape == (6, K)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ---------------------------------------------------------------- real + synthetic stream


@pytest.mark.parametrize("ratio, expected_synthetic", [(2.0, 20), (0.5, 5), (0.0, 0)])
def test_ratio_sets_the_number_of_synthetic_items(standin_generator, real_dataset, ratio, expected_synthetic):
    syn = SyntheticDataset(standin_generator, DirichletBetaSampler(K), num_images=40)
    ds = RealSyntheticDataset(real_dataset, syn, K, ratio=ratio)
    flags = torch.stack([ds[i]["is_synthetic"] for i in range(len(ds))])
    assert len(ds) == 10 + expected_synthetic and int(flags.sum()) == expected_synthetic


def test_real_items_get_one_hot_labels(standin_generator, real_dataset):
    ds = RealSyntheticDataset(real_dataset, None, K)
    item = ds[0]
    assert torch.equal(item["label"], torch.nn.functional.one_hot(torch.tensor(real_dataset.labels[0]), K).float())
    assert torch.equal(item["image"], real_dataset.images[0]) and not bool(item["is_synthetic"])


def test_shuffled_loader_sees_one_stream_of_real_and_synthetic(standin_generator, real_dataset):
    syn = SyntheticDataset(standin_generator, DirichletBetaSampler(K), num_images=20)
    ds = RealSyntheticDataset(real_dataset, syn, K, ratio=2.0)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([b["is_synthetic"] for b in loader])
    labels = torch.cat([b["label"] for b in loader])
    assert len(seen) == 30 and int(seen.sum()) == 20
    torch.testing.assert_close(labels.sum(1), torch.ones(30))


def test_ratio_larger_than_the_synthetic_dataset_is_refused(standin_generator, real_dataset):
    syn = SyntheticDataset(standin_generator, DirichletBetaSampler(K), num_images=5)
    with pytest.raises(ValueError, match="needs 20 synthetic items"):
        RealSyntheticDataset(real_dataset, syn, K, ratio=2.0)


def test_real_images_at_another_resolution_are_refused(standin_generator):
    from _helpers import DictDataset

    syn = SyntheticDataset(standin_generator, DirichletBetaSampler(K), num_images=4)
    ds = RealSyntheticDataset(DictDataset(2, size=16), syn, K)
    with pytest.raises(ValueError, match="differ in shape"):
        ds.__getitems__([0, 2])
