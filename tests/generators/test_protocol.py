"""Every generator family satisfies ConditionalGenerator; load_generator dispatches on the format tag."""

from __future__ import annotations

import pytest
import torch
from _family_train import perturb

from gemix_monai.generators import GENERATOR_FORMATS, ConditionalGenerator, load_generator


def _build(family):
    torch.manual_seed(0)
    if family == "stylegan2":
        from gemix_monai.networks import Generator, get_preset

        return Generator(c_dim=3, class_names=["a", "b", "c"], **get_preset("tiny")["G"]).eval()
    from gemix_monai.engines.generative import build_family_networks

    G = build_family_networks(family, "tiny", num_classes=3, class_names=["a", "b", "c"])[0]
    perturb(G)
    return G.eval()


FAMILIES = ("stylegan2", "dcgan", "diffusion")
OPTS = {"diffusion": {"num_inference_steps": 3}}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_follows_protocol(family, tmp_path):
    G = _build(family)
    assert isinstance(G, ConditionalGenerator)
    assert G.num_classes == G.c_dim == 3 and G.class_names == ["a", "b", "c"]
    assert G.image_shape == (1, 32, 32) == (G.img_channels, G.img_resolution, G.img_resolution)
    assert G.contract is None and getattr(G, "family", "stylegan2") == family
    c = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])
    x = G.generate(c, seed=7, **OPTS.get(family, {}))
    assert x.shape == (3, 1, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert torch.equal(x, G.generate(c, seed=7, **OPTS.get(family, {})))
    assert not torch.equal(x, G.generate(c, seed=8, **OPTS.get(family, {})))
    same_z = G.generate(torch.tensor([[0.0, 0, 1]] * 3), seed=7, **OPTS.get(family, {}))
    assert not torch.allclose(x[0], same_z[0])  # the soft label reaches the image
    with pytest.raises(ValueError, match="simplex"):
        G.generate(torch.tensor([[0.5, 0.7, 0.0]]), seed=0)

    path = tmp_path / "generator.pt"
    G.save_checkpoint(path)
    raw = torch.load(path, weights_only=True)
    assert GENERATOR_FORMATS[raw["format"]] == family
    H = load_generator(path)
    assert type(H) is type(G) and H.class_names == G.class_names
    assert torch.equal(H.generate(c, seed=7, **OPTS.get(family, {})), x)

    from gemix_monai.transforms.synthetic import load_generator as synthetic_load

    assert type(synthetic_load(path)) is type(G)
    with pytest.raises(ValueError, match="number of classes"):
        load_generator(path, expected_num_classes=2)


def test_unknown_tag_and_class_mismatch(tmp_path):
    from gemix_monai.mixing import build_sampler
    from gemix_monai.transforms import SyntheticDataset

    bad = tmp_path / "bad.pt"
    torch.save({"format": "gemix-vae/7", "state_dict": {}}, bad)
    with pytest.raises(ValueError, match=r"unknown generator format tag 'gemix-vae/7'.*gemix-dcgan/1"):
        load_generator(bad)
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="no 'format' tag"):
        load_generator(bad)
    G = _build("dcgan")
    with pytest.raises(ValueError, match="c_dim=3"):
        SyntheticDataset(G, build_sampler("gemix", 2), num_images=4)


def test_classifier_refuses_generator_of_other_classes(tmp_path):
    from gemix_monai.data.errors import DataError
    from gemix_monai.engines.classifier import check_generator_fits

    G = _build("diffusion")
    path = tmp_path / "g.pt"
    G.save_checkpoint(path)
    with pytest.raises(DataError, match="classes differ"):
        check_generator_fits(path, ["x", "y"], None)


@pytest.mark.parametrize("family", ["dcgan", "diffusion"])
def test_audit_takes_any_family(family, phantom_datalist, phantom_train, tmp_path):
    from gemix_monai.data import get_dataset
    from gemix_monai.experiments.audit import run_audit

    G = _build(family)
    G.class_names = list(phantom_train.class_names)
    if family == "diffusion":
        G.num_inference_steps = 2
    path = tmp_path / "g.pt"
    G.save_checkpoint(path)
    heldout = get_dataset(phantom_datalist, "validation", 32)
    result = run_audit(path, phantom_train, heldout, tmp_path / "audit", feature_epochs=1, kid_subsets=2, seed=0)
    assert (tmp_path / "audit" / "audit.json").is_file() and "fd" in result.report["metrics"]["synthetic"]["overall"]
