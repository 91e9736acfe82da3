"""End to end with the real ``tiny`` Generator (randomly initialised), saved with ``save_checkpoint`` and read back
through its path by the code under test."""

import json
import pickle

import torch
from monai.data import DataLoader

from gemix_monai.mixing import DirichletBetaSampler
from gemix_monai.transforms import SyntheticDataset, build_strategy, export_synthetic

K = 3


def test_synthetic_dataset_from_a_checkpoint_path_in_dataloader_workers(tiny_generator_path, tiny_generator):
    ds = SyntheticDataset(tiny_generator_path, DirichletBetaSampler(K), num_images=4, seed=1, batch_size=2)
    assert ds.generator_path == tiny_generator_path
    loaded = list(DataLoader(ds, batch_size=2, num_workers=2))
    images = torch.cat([b["image"] for b in loaded])
    labels = torch.cat([b["label"] for b in loaded])
    assert images.shape == (4, 1, 32, 32) and (images.abs() <= 1).all()
    expected_labels, z = ds.labels_and_latents(range(4))
    assert torch.equal(labels, expected_labels)
    torch.testing.assert_close(
        images, tiny_generator.generate(expected_labels, z=z, noise_mode="const"), rtol=1e-4, atol=1e-5
    )
    # Workers receive the path, not the loaded network.
    assert pickle.loads(pickle.dumps(ds))._generator is None


def test_export_from_a_checkpoint_path_resumes_and_indexes(tiny_generator_path, tmp_path):
    first = export_synthetic(tiny_generator_path, DirichletBetaSampler(K), tmp_path, num_images=2, seed=0, batch_size=2)
    (tmp_path / "images" / "synth_000001.nii.gz").unlink()  # as if the run had stopped before writing it
    again = export_synthetic(tiny_generator_path, DirichletBetaSampler(K), tmp_path, num_images=2, seed=0, batch_size=2)
    assert first == again and len(json.loads(again.read_text())["training"]) == 2
    assert (tmp_path / "images" / "synth_000001.nii.gz").is_file()
    manifest = json.loads((tmp_path / "export.json").read_text())
    assert manifest["generator"]["checkpoint"] == str(tiny_generator_path) and manifest["generator"]["c_dim"] == K


def test_genmix_strategy_with_a_checkpoint_path(tiny_generator_path, real_dataset):
    strategy = build_strategy("genmix", real_dataset, K, generator=tiny_generator_path, seed=0)
    batch = next(iter(DataLoader(strategy.dataset, batch_size=3)))
    mixed = strategy.batch_transform(batch)
    assert mixed["image"].shape == (3, 1, 32, 32)
    torch.testing.assert_close(mixed["label"].sum(1), torch.ones(3))
