"""Conditional DCGAN baseline: training on tiny phantoms, checkpoint, exact resume, strategies."""

from __future__ import annotations

import torch
from _family_train import check_resume

from gemix_monai.generators import ConditionalGenerator, load_generator
from gemix_monai.networks.dcgan import DCGAN_FORMAT, DCGANDiscriminator, DCGANGenerator, dcgan_preset


def test_presets_cover_32_to_128():
    for name, res in (("tiny", 32), ("32", 32), ("64", 64), ("128", 128)):
        p = dcgan_preset(name)
        G = DCGANGenerator(c_dim=2, img_channels=1, **p["G"])
        D = DCGANDiscriminator(c_dim=2, img_channels=1, **p["D"])
        x = G.generate(torch.eye(2), seed=0)
        assert x.shape == (2, 1, res, res)
        assert D(x, torch.eye(2)).shape == (2, 1)


def test_discriminator_projection_depends_on_label():
    p = dcgan_preset("tiny")
    D = DCGANDiscriminator(c_dim=3, img_channels=1, **p["D"])
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    a, b = D(x, torch.tensor([[1.0, 0, 0]])), D(x, torch.tensor([[0.0, 0.5, 0.5]]))
    assert not torch.allclose(a, b)


def test_train_resume_and_strategies(phantom_train, tmp_path):
    from gemix_monai.transforms import build_strategy

    full = check_resume("dcgan", phantom_train, tmp_path)
    out = tmp_path / "full"
    ckpt = torch.load(out / "models" / "generator" / "generator.pt", weights_only=True)
    assert ckpt["format"] == DCGAN_FORMAT and ckpt["class_names"] == phantom_train.class_names
    images_only = phantom_train.contract.to_dict()
    images_only["preprocessing"]["mask_channels"] = 0  # trained on the images of data with masks: no mask claimed
    assert ckpt["contract"] == images_only
    assert torch.load(out / "checkpoints" / "latest.pt", weights_only=True)["format"] == "gemix-dcgan-training/1"
    assert list((out / "samples").glob("fakes-*.png"))
    G = load_generator(out / "models" / "generator" / "generator.pt")
    assert isinstance(G, DCGANGenerator) and isinstance(G, ConditionalGenerator)
    ref = full.G_ema.generate(torch.eye(3), seed=1)
    assert torch.equal(G.generate(torch.eye(3), seed=1), ref)

    strat = build_strategy(
        "gemix", phantom_train, 3, generator=out / "models" / "generator" / "generator.pt", seed=0, synthetic_ratio=1.0
    )
    items = strat.dataset.__getitems__([0, len(phantom_train)])
    assert items[1]["image"].shape == (1, 32, 32) and bool(items[1]["is_synthetic"])
    assert torch.isclose(items[1]["label"].sum(), torch.tensor(1.0))
    strat = build_strategy("genmix", phantom_train, 3, generator=out / "models" / "generator" / "generator.pt", seed=0)
    batch = strat.dataset.__getitems__([0, 1, 2, 3])
    batch = {k: torch.stack([b[k] for b in batch]) for k in ("image", "label")}
    mixed = strat.batch_transform(batch)
    assert mixed["image"].shape == (4, 1, 32, 32) and mixed["label"].shape == (4, 3)


def test_cli_train_gan_generator_dcgan_then_generate(phantom_datalist, tmp_path):
    from gemix_monai import cli

    root = tmp_path / "bundle_run"
    assert (
        cli.main(
            [
                "train-gan",
                "--generator",
                "dcgan",
                "--bundle-root",
                str(root),
                "--datalist",
                str(phantom_datalist),
                "--max-kimg",
                "0.008",
                "--batch-size",
                "4",
                "--set",
                "sample_kimg=100.0",
                "--set",
                "progress=False",
            ]
        )
        == 0
    )
    ckpt = torch.load(root / "models" / "generator" / "generator.pt", weights_only=True)
    assert ckpt["format"] == DCGAN_FORMAT
    assert cli.main(["generate", "--bundle-root", str(root), "--num-images", "4", "--sampler", "gemix"]) == 0
    # the phantoms have lesion masks: train-gan (--masks auto) trained on pairs, and each image has its mask
    assert len(list((root / "synthetic").rglob("synth_??????.nii.gz"))) == 4
    assert len(list((root / "synthetic").rglob("synth_??????_mask.nii.gz"))) == 4


def test_compare_plans_one_row_per_family_and_keeps_stylegan2_ids(tmp_path):
    from gemix_monai.experiments.compare import run_compare

    kw = dict(strategies=["real", "gemix"], seeds=1, list_cells=True, verbose=False)
    default = run_compare(tmp_path / "c", **kw)
    both = run_compare(tmp_path / "c", generators=["stylegan2", "dcgan"], **kw)
    assert set(default) < set(both)  # the StyleGAN2 cells keep their ids
    extra = sorted(set(both) - set(default))
    assert [c.split("/", 1)[1] for c in extra] == ["gan-dcgan/g0", "tiny/gemix@dcgan/g0-s0"]
    import pytest

    with pytest.raises(ValueError, match="unknown generator family 'vae'"):
        run_compare(tmp_path / "c", generators=["vae"], **kw)


def test_train_generator_writes_a_dcgan_file_takes_run_settings_and_refuses_other_options(phantom_train, tmp_path):
    import pytest

    from gemix_monai.engines.generative import train_generator

    kw = dict(family="dcgan", class_names=phantom_train.class_names, max_kimg=0.004, batch_size=4, progress=False)
    path = train_generator(phantom_train, tmp_path / "run", seed=3, ema_kimg=0.01, **kw)
    assert path == tmp_path / "run" / "models" / "generator" / "generator.pt"
    assert load_generator(path).family == "dcgan"
    with pytest.raises(TypeError, match=r"train_family got unknown options \['r1_gamma'\]"):
        train_generator(phantom_train, tmp_path / "other", r1_gamma=1.0, **kw)


def test_an_unknown_noise_mode_is_refused_by_every_family():
    import pytest

    from gemix_monai.networks.dcgan import DCGANGenerator

    G = DCGANGenerator(z_dim=8, c_dim=2, img_resolution=32, base_channels=16)
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.generate([[1.0, 0.0]], noise_mode="randm")
