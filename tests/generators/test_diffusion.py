"""Conditional diffusion generator: soft-label context, DDIM sampling, guidance, training, exact resume, strategies."""

from __future__ import annotations

import pytest
import torch
from _family_train import check_resume, perturb

from gemix_monai.generators import ConditionalGenerator, load_generator
from gemix_monai.networks.diffusion import DIFFUSION_FORMAT, ConditionalDiffusionGenerator, diffusion_preset


def _model():
    torch.manual_seed(0)
    G = ConditionalDiffusionGenerator(c_dim=3, img_channels=1, **diffusion_preset("tiny")["G"])
    perturb(G)
    return G.eval()


def test_guidance_steps_and_latent():
    G = _model()
    c = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]])
    base = G.generate(c, seed=0, num_inference_steps=3)
    assert base.shape == (2, 1, 32, 32) and G.z_dim == 32 * 32
    assert not torch.equal(base, G.generate(c, seed=0, num_inference_steps=3, guidance_scale=3.0))
    assert not torch.equal(base, G.generate(c, seed=0, num_inference_steps=5))
    z = torch.Generator().manual_seed(0)
    z = torch.randn(2, G.z_dim, generator=z)
    assert torch.equal(base, G.generate(c, z=z, num_inference_steps=3))  # x_T = z: the latent is the start noise
    with pytest.raises(ValueError, match="truncation"):
        G.generate(c, seed=0, truncation_psi=0.7)
    with pytest.raises(ValueError, match="guidance_scale"):
        G.generate(c, seed=0, guidance_scale=float("nan"))


def test_presets_build():
    for name, res in (("tiny", 32), ("32", 32), ("64", 64), ("128", 128)):
        p = diffusion_preset(name)
        assert p["G"]["img_resolution"] == res
    G = ConditionalDiffusionGenerator(c_dim=2, img_channels=1, **diffusion_preset("64")["G"])
    assert G.image_shape == (1, 64, 64)


def test_train_resume_and_strategies(phantom_train, tmp_path):
    from gemix_monai.transforms import build_strategy

    full = check_resume("diffusion", phantom_train, tmp_path, steps=3, kill_at=2)
    out = tmp_path / "full"
    ckpt = torch.load(out / "models" / "generator" / "generator.pt", weights_only=True)
    images_only = phantom_train.contract.to_dict()
    images_only["preprocessing"]["mask_channels"] = 0  # trained on the images of data with masks: no mask claimed
    assert ckpt["format"] == DIFFUSION_FORMAT and ckpt["contract"] == images_only
    assert list((out / "samples").glob("fakes-*.png"))
    G = load_generator(out / "models" / "generator" / "generator.pt")
    assert isinstance(G, ConditionalDiffusionGenerator) and isinstance(G, ConditionalGenerator)
    assert torch.equal(
        G.generate(torch.eye(3), seed=1, num_inference_steps=2),
        full.G_ema.generate(torch.eye(3), seed=1, num_inference_steps=2),
    )

    path = out / "models" / "generator" / "generator.pt"
    G.num_inference_steps = 2  # keep the strategy's generation cheap
    strat = build_strategy("gemix", phantom_train, 3, generator=G, seed=0, synthetic_ratio=1.0)
    item = strat.dataset[len(phantom_train)]
    assert item["image"].shape == (1, 32, 32) and bool(item["is_synthetic"])
    strat = build_strategy("genmix", phantom_train, 3, generator=G, seed=0)
    batch = strat.dataset.__getitems__([0, 1])
    batch = {k: torch.stack([b[k] for b in batch]) for k in ("image", "label")}
    assert strat.batch_transform(batch)["image"].shape == (2, 1, 32, 32)
    assert build_strategy("real+synthetic", phantom_train, 3, generator=path, seed=0).info["synthetic_ratio"] == 2.0
