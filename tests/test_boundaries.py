"""Numbers checked at the boundary: sampler parameters, seeds and truncation_psi fail with an error naming them,
never a NaN label, a flat image or a silently dropped setting."""

import json
import math
import sys
import types

import numpy as np
import pytest
import torch
from _helpers import error_chain, small_generator

from gemix_monai.mixing import (
    DirichletBetaSampler,
    DirichletSampler,
    OneHotSampler,
    TemperatureSoftmaxSampler,
    build_sampler,
)
from gemix_monai.networks import Generator
from gemix_monai.networks.presets import get_preset

K = 3


@pytest.fixture(scope="module")
def tiny_bundle_root(tmp_path_factory):
    """A bundle_root whose models/generator/generator.pt is a fresh tiny-preset generator over 3 classes."""
    root = tmp_path_factory.mktemp("root")
    torch.manual_seed(0)
    Generator(**get_preset("tiny")["G"], c_dim=K, class_names=["a", "b", "c"]).save_checkpoint(
        root / "models" / "generator" / "generator.pt"
    )
    return root


# ------------------------------------------------------------------------------------------------ samplers


@pytest.mark.parametrize(
    ("factory", "kwargs", "name", "bound"),
    [
        (TemperatureSoftmaxSampler, {"temperature": 1e-320}, "temperature", "must be in [1.46855e-306, 1.79769e+308]"),
        (TemperatureSoftmaxSampler, {"temperature": 1e-300, "bias": 1e10}, "temperature", "bias=10000000000.0"),
        (TemperatureSoftmaxSampler, {"bias": 1e308}, "bias", "must be in [-2.24712e+307, 2.24712e+307]"),
        (TemperatureSoftmaxSampler, {"bias": -1e308}, "bias", "must be in [-2.24712e+307, 2.24712e+307]"),
        (TemperatureSoftmaxSampler, {"sigma": 1e308}, "sigma", "must be in [0, 3.51112e+305]"),
        (DirichletBetaSampler, {"alpha_hi": 1e308}, "alpha_hi", "must be in [2.22507e-308, 1.49808e+307]"),
        (DirichletBetaSampler, {"alpha_lo": 1e-320}, "alpha_lo", "must be in [2.22507e-308, 1.49808e+307]"),
        (DirichletBetaSampler, {"beta": 1e308}, "beta", "must be in [2.22507e-308, 4.49423e+307]"),
        (DirichletSampler, {"alpha_lo": 1e308}, "alpha_lo", "must be in [2.22507e-308, 1.49808e+307]"),
    ],
)
def test_extreme_sampler_parameters_are_refused_with_the_safe_range(factory, kwargs, name, bound):
    with pytest.raises(ValueError) as info:
        factory(K, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{name} must be"), message
    assert bound in message and "float64" in message


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (TemperatureSoftmaxSampler, {"temperature": 1e-300}),
        (TemperatureSoftmaxSampler, {"temperature": 1e300, "bias": 1e300, "sigma": 1e300}),
        (TemperatureSoftmaxSampler, {"bias": -2.2e307, "temperature": 0.5}),
        (DirichletBetaSampler, {"alpha_hi": 1.49e307, "alpha_lo": 1.49e307, "beta": 4.49e307}),
        (DirichletBetaSampler, {"alpha_hi": 2.3e-308, "alpha_lo": 2.3e-308, "beta": 2.3e-308}),
        (DirichletSampler, {"alpha_hi": 1e-300, "alpha_lo": 1e300}),
    ],
)
def test_parameters_at_the_edge_of_the_range_draw_finite_labels_on_the_simplex(factory, kwargs):
    labels = factory(K, seed=0, **kwargs).sample(512)
    assert torch.isfinite(labels).all()
    assert (labels >= 0).all()
    torch.testing.assert_close(labels.sum(1), torch.ones(512))


def test_a_non_finite_draw_is_refused_naming_the_sampler_parameters(monkeypatch):
    sampler = TemperatureSoftmaxSampler(K, seed=0)
    monkeypatch.setattr(sampler, "_draw", lambda b, rng, primary: (np.full((b, K), np.nan), {}))
    with pytest.raises(ValueError, match=r"TemperatureSoftmaxSampler drew .*NaN.*'temperature': 1.0"):
        sampler.sample(2)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3", True])
@pytest.mark.parametrize("factory", [DirichletBetaSampler, DirichletSampler, TemperatureSoftmaxSampler, OneHotSampler])
def test_sampler_seed_outside_uint32_is_refused(factory, seed):
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\)"):
        factory(K, seed=seed)


def test_sampler_reseed_checks_the_seed_too():
    sampler = OneHotSampler(K)
    with pytest.raises(ValueError, match="seed"):
        sampler.set_random_state(seed=-5)
    assert sampler.set_random_state(seed=2**32 - 1) is sampler
    assert OneHotSampler(K, seed=np.uint32(7)).seed == 7


def test_build_sampler_names_an_argument_the_sampler_does_not_take():
    with pytest.raises(
        ValueError, match=r"sampler 'gemix' does not take \['temperature'\]; its arguments are .*alpha_hi"
    ):
        build_sampler("gemix", K, temperature=0.5)
    assert build_sampler("softmax_t", K, temperature=0.5).temperature == 0.5


# ------------------------------------------------------------------------------------------------ truncation_psi and seeds


@pytest.mark.parametrize("psi", [math.nan, math.inf, -math.inf, "0.7", None])
def test_generator_generate_refuses_a_non_finite_truncation_psi(psi):
    with pytest.raises(ValueError, match="truncation_psi must be a finite number"):
        small_generator().generate(torch.eye(K), truncation_psi=psi)


@pytest.mark.parametrize("psi", [math.nan, math.inf])
def test_generator_forward_and_mapping_refuse_a_non_finite_truncation_psi(psi):
    G = small_generator()
    z = torch.randn(2, G.z_dim)
    with pytest.raises(ValueError, match="truncation_psi"):
        G(z, torch.eye(K)[:2], truncation_psi=psi)
    with pytest.raises(ValueError, match="truncation_psi"):
        G.mapping(z, torch.eye(K)[:2], truncation_psi=psi)


def test_generator_refuses_a_truncation_psi_beyond_float32():
    with pytest.raises(ValueError, match=r"truncation_psi must be .* <= 3.40282e\+38 \(float32\), got 1e\+300"):
        small_generator().generate(torch.eye(K), truncation_psi=1e300)


def test_generator_refuses_an_output_that_is_not_finite():
    G = small_generator()
    with torch.no_grad():
        G.synthesis.state_dict()[next(k for k in G.synthesis.state_dict() if k.endswith("torgb.bias"))].fill_(math.nan)
    with pytest.raises(ValueError, match=r"NaN/inf values \(truncation_psi=0.5\)"):
        G.generate(torch.eye(K), truncation_psi=0.5)


@pytest.mark.parametrize("seed", [-1, 2**32, 0.5, "1"])
def test_generator_generate_refuses_a_seed_outside_uint32(seed):
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\)"):
        small_generator().generate(torch.eye(K), seed=seed)


def test_generator_generate_accepts_the_seed_range_ends():
    G = small_generator()
    assert G.generate(torch.eye(K), seed=0).shape == (K, 1, 16, 16)
    assert torch.isfinite(G.generate(torch.eye(K), seed=2**32 - 1)).all()


def test_synthetic_dataset_and_source_check_psi_and_seed():
    from gemix_monai.transforms import SyntheticDataset, SyntheticSource

    G = small_generator()
    with pytest.raises(ValueError, match="truncation_psi"):
        SyntheticDataset(G, OneHotSampler(K), num_images=2, truncation_psi=math.nan)
    with pytest.raises(ValueError, match="truncation_psi"):
        SyntheticSource(G, OneHotSampler(K), truncation_psi=math.inf)
    for seed in (-1, 2**32, 1.0, None):
        with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32\)"):
            SyntheticDataset(G, OneHotSampler(K), num_images=2, seed=seed)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"truncation_psi": math.nan}, "truncation_psi"), ({"seed": -3}, "seed"), ({"seed": 2**40}, "seed")],
)
def test_export_synthetic_refuses_before_writing_anything(tmp_path, kwargs, name):
    from gemix_monai.transforms import export_synthetic

    out = tmp_path / "export"
    with pytest.raises(ValueError, match=name):
        export_synthetic(small_generator(), OneHotSampler(K), out, num_images=2, **kwargs)
    assert not out.exists()


@pytest.fixture
def generate_task_cls(monkeypatch):
    """``GenerateImageTask`` importable without MONAI Label: a minimal stand-in for its ``InferTask`` base when needed."""
    try:
        import monailabel.interfaces.tasks.infer_v2  # noqa: F401
    except Exception:

        class InferTask:
            def __init__(self, type, labels, dimension, description, config=None):
                self._config = dict(config or {})

        mod = types.ModuleType("monailabel.interfaces.tasks.infer_v2")
        mod.InferTask, mod.InferType = InferTask, types.SimpleNamespace(OTHERS="others")
        for name in ("monailabel", "monailabel.interfaces", "monailabel.interfaces.tasks"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "monailabel.interfaces.tasks.infer_v2", mod)
        monkeypatch.delitem(sys.modules, "gemix_monai.monailabel.generator", raising=False)
    from gemix_monai.monailabel.generator import GenerateImageTask

    yield GenerateImageTask
    if "monailabel.interfaces.tasks.infer_v2" in sys.modules and not hasattr(sys.modules["monailabel"], "__file__"):
        sys.modules.pop("gemix_monai.monailabel.generator", None)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"label": 0, "truncation_psi": math.nan}, "truncation_psi must be a finite number"),
        ({"label": 0, "truncation_psi": "inf"}, "truncation_psi must be a finite number"),
        ({"label": 0, "truncation_psi": "abc"}, "request truncation_psi must be a finite number"),
        ({"label": 0, "seed": -1}, r"request seed must be an integer in \[0, 2\*\*32\)"),
        ({"label": 0, "seed": 2**32}, r"request seed must be an integer in \[0, 2\*\*32\)"),
    ],
)
def test_monai_label_generate_task_refuses_bad_numbers(generate_task_cls, tmp_path, request_, message):
    path = tmp_path / "generator.pt"
    small_generator().save_checkpoint(path)
    task = generate_task_cls(path, hu_window=None, output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=message):
        task(request_)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    image_path, info = task({"label": 1, "seed": "4", "truncation_psi": "0.5"})
    assert info["seed"] == 4 and info["truncation_psi"] == 0.5


# ------------------------------------------------------------------------------------------------ CLI generate


def _generate(root, tmp_path, *extra):
    from gemix_monai.cli import main

    out = tmp_path / "synthetic"
    rc = main(
        [
            "generate",
            "--bundle-root",
            str(root),
            "--output-dir",
            str(out),
            "--num-images",
            "2",
            "--device",
            "cpu",
            "--sampler",
            "softmax_t",
            *extra,
        ]
    )
    return rc, out


def test_cli_generate_passes_sampler_kwargs_to_the_sampler(tiny_bundle_root, tmp_path):
    rc, out = _generate(tiny_bundle_root, tmp_path, "--set", "sampler_kwargs={'temperature': 0.5, 'bias': 3.0}")
    assert rc == 0
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["sampler"]["sampler"] == "temperature_softmax"
    assert manifest["sampler"]["temperature"] == 0.5 and manifest["sampler"]["bias"] == 3.0
    assert json.loads((out / "datalist.json").read_text())["sampler"]["temperature"] == 0.5


def test_cli_generate_refuses_a_zero_temperature_naming_it(tiny_bundle_root, tmp_path):
    with pytest.raises(Exception) as info:
        _generate(tiny_bundle_root, tmp_path, "--set", "sampler_kwargs={'temperature': 0}", "--verbose")
    assert "temperature must be a finite number > 0, got 0" in error_chain(info.value)
    assert not (tmp_path / "synthetic" / "export.json").exists()


def test_cli_generate_refuses_a_sampler_kwarg_the_sampler_does_not_take(tiny_bundle_root, tmp_path):
    with pytest.raises(Exception) as info:
        _generate(
            tiny_bundle_root,
            tmp_path,
            "--sampler",
            "gemix",
            "--set",
            "sampler_kwargs={'temperature': 0.5}",
            "--verbose",
        )
    assert "sampler 'gemix' does not take ['temperature']" in error_chain(info.value)
