"""Sampler specification: distributions (>= 1e5 draws against closed forms or quadrature), simplex, seeds, weights."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gemix_monai.mixing import (
    SAMPLERS,
    DirichletBetaSampler,
    DirichletSampler,
    OneHotSampler,
    TemperatureSoftmaxSampler,
    build_sampler,
    gemix_code_sampler,
    inverse_frequency_weights,
)

N = 100_000
FACTORIES = {
    "gemix": lambda k, **kw: DirichletBetaSampler(k, **kw),
    "gemix_code": lambda k, **kw: gemix_code_sampler(k, **kw),
    "softmax_t": lambda k, **kw: TemperatureSoftmaxSampler(k, **kw),
    "one_hot": lambda k, **kw: OneHotSampler(k, **kw),
}


def _assert_on_simplex(labels):
    assert labels.dtype == torch.float32
    assert (labels >= 0).all()
    torch.testing.assert_close(labels.sum(-1), torch.ones(labels.shape[0]), atol=1e-5, rtol=0)


def _dirichlet_moments(k, cls, a_hi, a_lo):
    a = np.full(k, a_lo)
    a[cls] = a_hi
    total = a.sum()
    return a / total, a * (a + 1) / (total * (total + 1))  # E[y], E[y^2]


def _gemix_pair_moments(k, i, j, a_hi, a_lo, beta):
    """Exact E[c] and Var[c] of lam*y1 + (1-lam)*y2 for classes (i, j)."""
    m1, s1 = _dirichlet_moments(k, i, a_hi, a_lo)
    m2, s2 = _dirichlet_moments(k, j, a_hi, a_lo)
    e_l2 = 0.25 + 1.0 / (4 * (2 * beta + 1))  # E[lam^2] = E[(1-lam)^2] for Beta(beta, beta)
    e_l1l = 0.5 - e_l2  # E[lam (1 - lam)]
    mean = 0.5 * (m1 + m2)
    second = e_l2 * s1 + 2 * e_l1l * m1 * m2 + e_l2 * s2
    return mean, second - mean**2


# ---------------------------------------------------------------- every sampler


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("k", [2, 3, 7])
def test_every_label_lies_on_the_simplex(name, k):
    _assert_on_simplex(FACTORIES[name](k, seed=0).sample(20_000))


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_reproduces_exactly(name):
    a = FACTORIES[name](4, seed=123).sample(1000)
    b = FACTORIES[name](4, seed=123).sample(1000)
    c = FACTORIES[name](4, seed=124).sample(1000)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("rng_kind", ["int", "generator", "random_state"])
def test_explicit_rng_reproduces_exactly(name, rng_kind):
    make = {
        "int": lambda: 7,
        "generator": lambda: np.random.default_rng(7),
        "random_state": lambda: np.random.RandomState(7),
    }[rng_kind]
    sampler = FACTORIES[name](5, seed=0)
    assert torch.equal(sampler.sample(500, rng=make()), sampler.sample(500, rng=make()))


@pytest.mark.parametrize("name", FACTORIES)
def test_set_random_state_restarts_the_stream(name):
    sampler = FACTORIES[name](3, seed=9)
    first = sampler.sample(300)
    sampler.set_random_state(9)
    assert torch.equal(sampler.sample(300), first)


@pytest.mark.parametrize("name", FACTORIES)
def test_class_weights_set_primary_class_frequencies(name):
    weights = [1.0, 2.0, 3.0, 4.0]
    _, info = FACTORIES[name](4, class_weights=weights, seed=1).sample_with_info(N)
    freq = torch.bincount(info["classes"][:, 0], minlength=4).double() / N
    np.testing.assert_allclose(freq.numpy(), np.array(weights) / 10, atol=0.01)


@pytest.mark.parametrize("name", FACTORIES)
def test_zero_weight_class_is_never_primary(name):
    _, info = FACTORIES[name](3, class_weights=[0.0, 1.0, 1.0], seed=2).sample_with_info(20_000)
    assert (info["classes"][:, 0] != 0).all()


@pytest.mark.parametrize("name", FACTORIES)
def test_primary_argument_fixes_the_class(name):
    labels, info = FACTORIES[name](4, seed=3).sample_with_info(500, primary=2)
    assert (info["classes"][:, 0] == 2).all()
    _assert_on_simplex(labels)


@pytest.mark.parametrize("name", FACTORIES)
def test_zero_draws_give_an_empty_batch(name):
    assert FACTORIES[name](3).sample(0).shape == (0, 3)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(FACTORIES)),
    k=st.integers(2, 12),
    b=st.integers(0, 40),
    seed=st.integers(0, 2**31 - 1),
    device=st.sampled_from(["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]),
)
def test_property_shape_dtype_device_simplex(name, k, b, seed, device):
    labels = FACTORIES[name](k, seed=seed).sample(b, device=device)
    assert labels.shape == (b, k) and labels.dtype == torch.float32 and labels.device.type == device
    if b:
        _assert_on_simplex(labels.cpu())


# ---------------------------------------------------------------- GeMix (two Dirichlets, Beta blend)


def test_gemix_defaults_follow_spec():
    s = DirichletBetaSampler(3)
    assert (s.alpha_hi, s.alpha_lo, s.beta) == (10.0, 1.0, 0.4)


@pytest.mark.parametrize("weights", [None, [1.0, 1.0, 5.0, 0.5]])
def test_gemix_two_classes_of_a_draw_are_distinct(weights):
    _, info = DirichletBetaSampler(4, class_weights=weights, seed=4).sample_with_info(N)
    assert (info["classes"][:, 0] != info["classes"][:, 1]).all()


def test_gemix_two_classes_on_two_class_problem_are_both_classes():
    _, info = DirichletBetaSampler(2, seed=5).sample_with_info(10_000)
    assert (info["classes"].sum(1) == 1).all()


@pytest.mark.parametrize("k, a_hi, a_lo, beta", [(3, 10.0, 1.0, 0.4), (4, 5.0, 0.5, 2.0)])
def test_gemix_mean_and_variance_per_class_pair_match_theory(k, a_hi, a_lo, beta):
    labels, info = DirichletBetaSampler(k, alpha_hi=a_hi, alpha_lo=a_lo, beta=beta, seed=6).sample_with_info(N)
    labels, classes = labels.double().numpy(), info["classes"].numpy()
    for i, j in itertools.permutations(range(k), 2):
        sel = labels[(classes[:, 0] == i) & (classes[:, 1] == j)]
        n = len(sel)
        assert n > N / (k * (k - 1)) * 0.9
        mean, var = _gemix_pair_moments(k, i, j, a_hi, a_lo, beta)
        np.testing.assert_allclose(sel.mean(0), mean, atol=5 * np.sqrt(var.max() / n))
        np.testing.assert_allclose(sel.var(0), var, rtol=6 * np.sqrt(2 / n), atol=1e-4)


def test_gemix_marginal_mean_and_variance_match_theory():
    k, a_hi, a_lo, beta = 3, 10.0, 1.0, 0.4
    labels = DirichletBetaSampler(k, seed=7).sample(N).double().numpy()
    pairs = list(itertools.permutations(range(k), 2))
    means = np.array([_gemix_pair_moments(k, i, j, a_hi, a_lo, beta)[0] for i, j in pairs])
    seconds = np.array([v + m**2 for m, v in (_gemix_pair_moments(k, i, j, a_hi, a_lo, beta) for i, j in pairs)])
    mean = means.mean(0)
    var = seconds.mean(0) - mean**2
    np.testing.assert_allclose(labels.mean(0), mean, atol=0.004)
    np.testing.assert_allclose(labels.var(0), var, rtol=0.03)


@pytest.mark.parametrize("beta", [0.4, 1.0, 3.0])
def test_gemix_blend_weight_is_beta_distributed(beta):
    _, info = DirichletBetaSampler(3, beta=beta, seed=8).sample_with_info(N)
    lam = info["lam"].double().numpy()
    np.testing.assert_allclose(lam.mean(), 0.5, atol=0.005)
    np.testing.assert_allclose(lam.var(), 1 / (4 * (2 * beta + 1)), rtol=0.03)


def test_gemix_code_preset_is_single_dirichlet_two_one_one():
    k = 4
    labels, info = gemix_code_sampler(k, seed=9).sample_with_info(N)
    assert isinstance(gemix_code_sampler(k), DirichletSampler)
    labels, cls = labels.double().numpy(), info["classes"][:, 0].numpy()
    for c in range(k):
        sel = labels[cls == c]
        m, s = _dirichlet_moments(k, c, 2.0, 1.0)
        np.testing.assert_allclose(sel.mean(0), m, atol=5 * np.sqrt((s - m**2).max() / len(sel)))
        np.testing.assert_allclose(sel.var(0), s - m**2, rtol=6 * np.sqrt(2 / len(sel)))


# ---------------------------------------------------------------- temperature softmax


def _normal_pdf(x):
    return np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)


def test_softmax_defaults_follow_spec():
    s = TemperatureSoftmaxSampler(3)
    assert (s.bias, s.temperature, s.sigma) == (2.0, 1.0, 1.0)


@pytest.mark.parametrize("k, bias, sigma", [(3, 2.0, 1.0), (5, 1.0, 2.0)])
def test_softmax_primary_wins_with_the_gaussian_probability(k, bias, sigma):
    # P(u_c + b is the largest logit) = integral phi(t) Phi(t + b/sigma)^(K-1) dt; independent of T.
    t = np.linspace(-12, 12, 40001)
    cdf = torch.special.ndtr(torch.from_numpy(t + bias / sigma)).numpy()
    expected = np.trapezoid(_normal_pdf(t) * cdf ** (k - 1), t)
    labels, info = TemperatureSoftmaxSampler(k, bias=bias, sigma=sigma, temperature=0.7, seed=10).sample_with_info(N)
    won = (labels.argmax(1) == info["classes"][:, 0]).double().mean().item()
    assert abs(won - expected) < 5 * np.sqrt(expected * (1 - expected) / N)


@pytest.mark.parametrize("bias, temperature, sigma", [(2.0, 1.0, 1.0), (1.0, 0.5, 0.5), (0.0, 2.0, 1.0)])
def test_softmax_two_class_mean_and_variance_match_quadrature(bias, temperature, sigma):
    # K = 2: label_c = sigmoid((u_c - u_o) / T) with u_c - u_o ~ N(b, 2 sigma^2).
    s = np.sqrt(2) * sigma
    x = np.linspace(bias - 12 * s, bias + 12 * s, 40001)
    pdf = _normal_pdf((x - bias) / s) / s
    f = 1 / (1 + np.exp(-x / temperature))
    mean = np.trapezoid(pdf * f, x)
    var = np.trapezoid(pdf * f**2, x) - mean**2
    labels, info = TemperatureSoftmaxSampler(
        2, bias=bias, temperature=temperature, sigma=sigma, seed=11
    ).sample_with_info(N)
    primary = labels.double()[torch.arange(N), info["classes"][:, 0]].numpy()
    assert abs(primary.mean() - mean) < 5 * np.sqrt(var / N)
    np.testing.assert_allclose(primary.var(), var, rtol=6 * np.sqrt(2 / N))


def test_softmax_sharpens_as_temperature_falls():
    temps = [4.0, 2.0, 1.0, 0.5, 0.25]
    max_prob, entropy = [], []
    for t in temps:
        labels = TemperatureSoftmaxSampler(4, temperature=t, seed=12).sample(N).double()
        max_prob.append(labels.max(1).values.mean().item())
        entropy.append(-(labels * labels.clamp_min(1e-30).log()).sum(1).mean().item())
    assert all(a < b for a, b in zip(max_prob, max_prob[1:]))
    assert all(a > b for a, b in zip(entropy, entropy[1:]))


def test_softmax_with_zero_noise_is_deterministic_given_the_class():
    labels = TemperatureSoftmaxSampler(3, bias=2.0, sigma=0.0, seed=13).sample(100, primary=1)
    expected = torch.softmax(torch.tensor([0.0, 2.0, 0.0]), 0)
    torch.testing.assert_close(labels, expected.expand(100, 3))


# ---------------------------------------------------------------- validation and registry


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: DirichletBetaSampler(1), "num_classes must be an integer >= 2"),
        (lambda: DirichletBetaSampler(3, alpha_hi=0), "alpha_hi must be a finite number > 0"),
        (lambda: DirichletBetaSampler(3, alpha_lo=-1), "alpha_lo must be a finite number > 0"),
        (lambda: DirichletBetaSampler(3, beta=float("nan")), "beta must be a finite number > 0"),
        (lambda: DirichletBetaSampler(3, class_weights=[1.0, 0.0, 0.0]), "at least two classes a positive weight"),
        (lambda: TemperatureSoftmaxSampler(3, temperature=0), "temperature must be a finite number > 0"),
        (lambda: TemperatureSoftmaxSampler(3, sigma=-0.1), "sigma must be a finite number >= 0"),
        (lambda: TemperatureSoftmaxSampler(3, bias=float("inf")), "bias must be a finite number"),
        (lambda: OneHotSampler(3, class_weights=[1.0, 2.0]), r"length 3\), got shape \(2,\)"),
        (lambda: OneHotSampler(3, class_weights=[1.0, -2.0, 1.0]), "non-negative"),
        (lambda: OneHotSampler(3, class_weights=[0.0, 0.0, 0.0]), "positive sum"),
        (lambda: OneHotSampler(3).sample(-1), "batch_size must be an integer >= 0"),
        (lambda: OneHotSampler(3).sample(2, primary=3), r"primary class indices must lie in 0..2"),
        (lambda: build_sampler("mixup", 3), "unknown sampler 'mixup'"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_registry_builds_each_sampler_with_its_parameters(name):
    sampler = build_sampler(name, 3, seed=0)
    assert sampler.params()["num_classes"] == 3
    _assert_on_simplex(sampler.sample(10))


def test_inverse_frequency_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    w = inverse_frequency_weights(labels, 2)
    np.testing.assert_allclose(w, [100 / 180, 100 / 20])
    _, info = OneHotSampler(2, class_weights=w, seed=14).sample_with_info(N)
    assert abs(info["classes"][:, 0].double().mean().item() - 0.9) < 0.01
