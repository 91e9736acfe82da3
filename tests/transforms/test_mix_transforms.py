import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from monai.data import MetaTensor
from monai.transforms import Compose

from gemix_monai.mixing import to_soft_label
from gemix_monai.transforms import GenMix, GenMixd, SoftMixUp, SoftMixUpd, ToSoftLabel, ToSoftLabeld

K = 3


def _batch(b, seed=0, meta=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, 6, 6, generator=g) * 2 - 1
    if meta:
        x = MetaTensor(x, meta={"filename_or_obj": [f"img{i}.nii.gz" for i in range(b)], "modality": "CT"})
    y = torch.randint(0, K, (b,), generator=g)
    return x, y


def _synthetic(b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 6, 6, generator=g) * 2 - 1, torch.softmax(torch.randn(b, K, generator=g), 1)


# ---------------------------------------------------------------- ToSoftLabel(d)


def test_to_soft_labeld_converts_the_label_key_only():
    out = ToSoftLabeld(keys="label", num_classes=K)({"image": torch.zeros(1, 2, 2), "label": 2})
    assert torch.equal(out["label"], torch.tensor([0.0, 0.0, 1.0])) and out["image"].shape == (1, 2, 2)


def test_to_soft_labeld_allows_missing_keys_when_asked():
    assert ToSoftLabeld(keys="label", num_classes=K, allow_missing_keys=True)({"image": 1}) == {"image": 1}
    with pytest.raises(KeyError):
        ToSoftLabeld(keys="label", num_classes=K)({"image": 1})


def test_to_soft_label_rejects_bad_num_classes_at_construction():
    with pytest.raises(ValueError, match="num_classes"):
        ToSoftLabel(1)


# ---------------------------------------------------------------- SoftMixUp(d)


@pytest.mark.parametrize("b", [1, 2, 7, 16])
def test_soft_mixup_accepts_soft_labels_and_any_batch_size(b):
    x, y = _batch(b)
    soft = to_soft_label(y, K)
    mx, my = SoftMixUp(alpha=0.4).set_random_state(0)(x, soft)
    assert mx.shape == x.shape and my.shape == (b, K)
    torch.testing.assert_close(my.sum(1), torch.ones(b))


def test_soft_mixup_matches_the_functional_blend():
    x, y = _batch(8)
    t = SoftMixUp(alpha=0.4, num_classes=K).set_random_state(3)
    mx, my = t(x, y)
    lam, perm = t._lam, t._perm
    soft = to_soft_label(y, K)
    torch.testing.assert_close(mx, lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x[perm])
    torch.testing.assert_close(my, lam.view(-1, 1) * soft + (1 - lam.view(-1, 1)) * soft[perm])


def test_soft_mixup_handles_a_short_last_batch_after_full_ones():
    t = SoftMixUp(alpha=0.4, num_classes=K).set_random_state(0)
    for b in (8, 8, 3):
        x, y = _batch(b)
        assert t(x, y)[0].shape[0] == b


def test_soft_mixup_keeps_meta_tensor_metadata():
    x, y = _batch(4, meta=True)
    mx, _ = SoftMixUp(num_classes=K).set_random_state(0)(x, y)
    assert isinstance(mx, MetaTensor) and mx.meta["modality"] == "CT"


def test_soft_mixup_same_seed_reproduces():
    x, y = _batch(6)
    a = SoftMixUp(num_classes=K).set_random_state(5)(x, y)
    b = SoftMixUp(num_classes=K).set_random_state(5)(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_soft_mixup_needs_num_classes_for_indices():
    x, y = _batch(4)
    with pytest.raises(ValueError, match="pass num_classes"):
        SoftMixUp()(x, y)


def test_soft_mixupd_agrees_with_the_array_form():
    x, y = _batch(5)
    mask = (x > 0).float()
    d = SoftMixUpd(keys=("image", "mask"), label_keys="label", num_classes=K).set_random_state(11)(
        {"image": x, "mask": mask, "label": y}
    )
    t = SoftMixUp(num_classes=K).set_random_state(11)
    mx, my = t(x, y)
    mm, _ = t(mask, y, randomize=False)
    assert torch.equal(d["image"], mx) and torch.equal(d["label"], my) and torch.equal(d["mask"], mm)


def test_soft_mixupd_rejects_a_single_sample():
    with pytest.raises(ValueError, match="works on (collated )?batches"):
        SoftMixUpd(num_classes=K)({"image": torch.zeros(1, 4, 4), "label": torch.tensor([1.0, 0.0, 0.0])})


def test_soft_mixupd_names_a_missing_label_key():
    with pytest.raises(KeyError, match="'target'"):
        SoftMixUpd(label_keys="target", num_classes=K)(
            {"image": torch.zeros(2, 1, 4, 4), "label": torch.tensor([0, 1])}
        )


# ---------------------------------------------------------------- GenMix(d)


@pytest.mark.parametrize("b", [1, 4, 9])
def test_genmix_matches_the_formula_with_its_drawn_lambda(b):
    xr, yr = _batch(b)
    xs, ys = _synthetic(b)
    t = GenMix(alpha=0.3, num_classes=K).set_random_state(0)
    mx, my = t(xr, yr, xs, ys)
    lam = t._lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(mx, lam * xs + (1 - lam) * xr)
    torch.testing.assert_close(my, lam.view(-1, 1) * ys + (1 - lam.view(-1, 1)) * to_soft_label(yr, K))


def test_genmix_weights_the_synthetic_partner_with_beta_alpha_one():
    t = GenMix(alpha=0.3).set_random_state(0)
    t.randomize(100_000)
    lam = t._lam.double()
    assert abs(lam.mean().item() - 0.3 / 1.3) < 0.005


def test_genmix_single_sample_uses_a_scalar_lambda():
    xr, yr = _batch(1)
    xs, ys = _synthetic(1)
    t = GenMix(num_classes=K).set_random_state(2)
    mx, my = t(xr[0], to_soft_label(yr, K)[0], xs[0], ys[0])
    assert mx.shape == xr[0].shape and my.shape == (K,) and t._lam.ndim == 0


def test_genmix_union_partner_comes_from_real_or_synthetic_batch():
    b = 6
    xr, yr = _batch(b)
    xs, ys = _synthetic(b)
    t = GenMix(partner="union", num_classes=K).set_random_state(4)
    t.randomize(400)
    assert ((t._partner_index >= 0) & (t._partner_index < 800)).all()
    idx = t._partner_index
    assert (idx < 400).any() and (idx >= 400).any()  # both halves of the pool are used
    mx, my = t(xr, yr, xs, ys)
    pool_x, pool_y = torch.cat([xs, xr]), torch.cat([ys, to_soft_label(yr, K)])
    lam = t._lam
    for n in range(b):
        p = t._partner_index[n]
        torch.testing.assert_close(mx[n], lam[n] * pool_x[p] + (1 - lam[n]) * xr[n])
        torch.testing.assert_close(my[n], lam[n] * pool_y[p] + (1 - lam[n]) * to_soft_label(yr, K)[n])


def test_genmix_union_needs_a_batch():
    xr, yr = _batch(1)
    xs, ys = _synthetic(1)
    with pytest.raises(ValueError, match="partner='union'"):
        GenMix(partner="union")(xr[0], to_soft_label(yr, K)[0], xs[0], ys[0])


@pytest.mark.parametrize(
    "kwargs, match", [({"alpha": 0}, "alpha must be"), ({"partner": "pool"}, "partner must be one of")]
)
def test_genmix_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenMix(**kwargs)


def test_genmix_rejects_mismatched_partner_shapes():
    xr, yr = _batch(4)
    xs, ys = _synthetic(3)
    with pytest.raises(ValueError, match="same shape"):
        GenMix(num_classes=K)(xr, yr, xs, ys)


def test_genmix_keeps_meta_tensor_metadata():
    xr, yr = _batch(3, meta=True)
    xs, ys = _synthetic(3)
    mx, _ = GenMix(num_classes=K).set_random_state(0)(xr, yr, xs, ys)
    assert isinstance(mx, MetaTensor) and mx.meta["modality"] == "CT"


@pytest.mark.parametrize("partner", ["synthetic", "union"])
def test_genmixd_agrees_with_the_array_form(partner):
    xr, yr = _batch(5)
    xs, ys = _synthetic(5)
    data = {"image": xr, "label": yr, "synthetic_image": xs, "synthetic_label": ys}
    d = GenMixd(keys="image", partner=partner, num_classes=K).set_random_state(7)(data)
    mx, my = GenMix(partner=partner, num_classes=K).set_random_state(7)(xr, yr, xs, ys)
    assert torch.equal(d["image"], mx) and torch.equal(d["label"], my)


def test_genmixd_works_per_sample_in_a_compose():
    xr, yr = _batch(1)
    xs, ys = _synthetic(1)
    pipeline = Compose([ToSoftLabeld(keys="label", num_classes=K), GenMixd(keys="image")])
    pipeline.set_random_state(0)
    out = pipeline({"image": xr[0], "label": int(yr[0]), "synthetic_image": xs[0], "synthetic_label": ys[0]})
    assert out["image"].shape == xr[0].shape and out["label"].shape == (K,)
    torch.testing.assert_close(out["label"].sum(), torch.tensor(1.0))


def test_genmixd_names_the_missing_synthetic_key():
    xr, yr = _batch(2)
    with pytest.raises(KeyError, match="synthetic_image"):
        GenMixd(num_classes=K)({"image": xr, "label": yr})


def test_genmixd_with_a_source_generates_partners(standin_generator):
    from gemix_monai.mixing import OneHotSampler
    from gemix_monai.transforms import SyntheticSource

    real = torch.rand(4, 1, 32, 32) * 2 - 1
    source = SyntheticSource(standin_generator, OneHotSampler(K, seed=0))
    t = GenMixd(keys="image", synthetic=source, num_classes=K).set_random_state(0)
    out = t({"image": real, "label": torch.tensor([0, 1, 2, 0])})
    assert out["image"].shape == real.shape and not torch.equal(out["image"], real)
    assert (out["image"].abs() <= 1).all()
    again = GenMixd(keys="image", synthetic=source, num_classes=K).set_random_state(0)(
        {"image": real, "label": torch.tensor([0, 1, 2, 0])}
    )
    assert torch.equal(out["image"], again["image"]) and torch.equal(out["label"], again["label"])


def test_genmixd_with_a_source_needs_one_image_key(standin_generator):
    from gemix_monai.mixing import OneHotSampler
    from gemix_monai.transforms import SyntheticSource

    with pytest.raises(ValueError, match="one image key"):
        GenMixd(keys=("image", "mask"), synthetic=SyntheticSource(standin_generator, OneHotSampler(K)))


# ---------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 9),
    spatial=st.sampled_from([(5,), (4, 6), (3, 4, 2)]),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
    device=st.sampled_from(["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]),
    partner=st.sampled_from(["synthetic", "union"]),
    seed=st.integers(0, 2**16),
)
def test_property_batch_and_dictionary_forms_agree_on_any_batch(b, spatial, dtype, device, partner, seed):
    g = torch.Generator().manual_seed(seed)
    xr = (torch.rand(b, 2, *spatial, generator=g) * 2 - 1).to(device, dtype)
    xs = (torch.rand(b, 2, *spatial, generator=g) * 2 - 1).to(device, dtype)
    yr = torch.randint(0, K, (b,), generator=g).to(device)
    ys = torch.softmax(torch.randn(b, K, generator=g), 1).to(device)

    mx, my = GenMix(partner=partner, num_classes=K).set_random_state(seed)(xr, yr, xs, ys)
    d = GenMixd(keys="image", partner=partner, num_classes=K).set_random_state(seed)(
        {"image": xr, "label": yr, "synthetic_image": xs, "synthetic_label": ys}
    )
    assert torch.equal(d["image"], mx) and torch.equal(d["label"], my)
    assert mx.shape == xr.shape and mx.dtype == dtype and mx.device.type == device
    assert my.shape == (b, K) and my.dtype == torch.float32 and my.device.type == device
    torch.testing.assert_close(my.sum(1).cpu(), torch.ones(b), atol=1e-5, rtol=0)

    px, py = SoftMixUp(num_classes=K).set_random_state(seed)(xr, yr)
    pd = SoftMixUpd(keys="image", num_classes=K).set_random_state(seed)({"image": xr, "label": yr})
    assert torch.equal(pd["image"], px) and torch.equal(pd["label"], py)
    assert px.shape == xr.shape and px.dtype == dtype and px.device.type == device and py.shape == (b, K)


def test_soft_mixup_reads_a_float_label_vector_as_a_batch_of_indices():
    # K float-cast indices in a batch of K would otherwise look like one soft label.
    x, _ = _batch(2)
    mx, my = SoftMixUp(num_classes=2).set_random_state(0)(x, torch.tensor([0.0, 1.0]))
    assert my.shape == (2, 2)


# ---------------------------------------------------------------- MONAI shape (issue 22): prob, label_keys, NumPy


@pytest.mark.parametrize("cls", [SoftMixUp, GenMix])
def test_prob_zero_passes_the_batch_unchanged_with_soft_labels(cls):
    x, y = _batch(4)
    args = (x, y) if cls is SoftMixUp else (x, y, *_synthetic(4))
    mx, my = cls(num_classes=K, prob=0.0).set_random_state(0)(*args)
    assert mx is x
    torch.testing.assert_close(my, to_soft_label(y, K))


def test_prob_mixes_about_that_share_of_batches():
    mixer = SoftMixUp(num_classes=K, prob=0.3).set_random_state(0)
    x, y = _batch(4)
    mixed = sum(mixer(x, y)[0] is not x for _ in range(400))
    assert 90 <= mixed <= 150  # 120 expected; a binomial(400, 0.3) lies in this range with probability > 0.999


def test_prob_one_draws_the_same_stream_as_before_prob_existed():
    from gemix_monai.mixing import blend, sample_mixup_lambda, sample_permutation

    x, y = _batch(8)
    mx, my = SoftMixUp(num_classes=K).set_random_state(3)(x, y)
    rng = np.random.RandomState(3)
    lam, perm = sample_mixup_lambda(8, 0.4, rng), sample_permutation(8, rng)
    ex, ey = blend(x, to_soft_label(y, K), x[perm], to_soft_label(y, K)[perm], lam)
    torch.testing.assert_close(mx, ex)
    torch.testing.assert_close(my, ey)


def test_numpy_batches_come_back_as_numpy():
    x, y = _batch(4)
    mx, my = SoftMixUp(num_classes=K).set_random_state(0)(x.numpy(), y.numpy())
    tx, ty = SoftMixUp(num_classes=K).set_random_state(0)(x, y)
    assert isinstance(mx, np.ndarray) and isinstance(my, np.ndarray)
    np.testing.assert_allclose(mx, tx.numpy(), rtol=1e-6)
    sx, sy = _synthetic(4)
    gx, gy = GenMix(num_classes=K).set_random_state(0)(x.numpy(), y.numpy(), sx.numpy(), sy.numpy())
    assert isinstance(gx, np.ndarray) and gx.shape == (4, 1, 6, 6) and isinstance(gy, np.ndarray)
    d = SoftMixUpd(keys="image", label_keys="label", num_classes=K).set_random_state(0)(
        {"image": x.numpy(), "label": y.numpy()}
    )
    assert isinstance(d["image"], np.ndarray) and isinstance(d["label"], np.ndarray)


def test_functional_mixes_accept_numpy():
    from gemix_monai.mixing import blend, pixel_mixup

    x, y = _batch(4)
    soft = to_soft_label(y, K).numpy()
    bx, by = blend(x.numpy(), soft, x.numpy()[::-1].copy(), soft[::-1].copy(), 0.5)
    assert isinstance(bx, np.ndarray) and by.shape == (4, K)
    px, _ = pixel_mixup(x.numpy(), soft, 0.5, np.arange(4))
    np.testing.assert_allclose(px, x.numpy(), rtol=1e-6)


def test_label_key_is_a_deprecated_alias_of_label_keys():
    with pytest.warns(DeprecationWarning, match="label_keys"):
        old = SoftMixUpd(keys="image", label_key="label", num_classes=K)
    assert old.label_keys == ("label",)
    with pytest.raises(ValueError, match="not also the deprecated label_key"):
        GenMixd(label_keys="label", label_key="label")
    with pytest.raises(ValueError, match="the one label key"):
        SoftMixUpd(label_keys=("a", "b"))


def test_to_soft_labeld_needs_num_classes():
    with pytest.raises(ValueError, match="num_classes is required"):
        ToSoftLabeld(keys="label")


def test_to_soft_label_equals_monai_asdiscrete_on_class_indices():
    from monai.transforms import AsDiscrete

    for k in range(K):
        torch.testing.assert_close(
            ToSoftLabel(K)(k), AsDiscrete(to_onehot=K)(torch.tensor([k])).float(), check_dtype=False
        )


@pytest.mark.parametrize("cls", [ToSoftLabel, ToSoftLabeld, SoftMixUp, SoftMixUpd, GenMix, GenMixd])
def test_every_transform_documents_its_arguments(cls):
    assert "Args:" in cls.__doc__


def test_genmixd_gives_numpy_labels_back_as_numpy():
    xr, yr = _batch(4)
    xs, ys = _synthetic(4)
    data = {"image": xr.numpy(), "label": yr.numpy(), "synthetic_image": xs.numpy(), "synthetic_label": ys.numpy()}
    d = GenMixd(keys="image", num_classes=K).set_random_state(7)(data)
    mx, my = GenMix(num_classes=K).set_random_state(7)(xr, yr, xs, ys)
    assert isinstance(d["label"], np.ndarray) and np.allclose(d["label"], my.numpy())


def test_genmixd_draws_no_synthetic_partners_for_a_batch_it_leaves_unmixed():
    class Counting:
        num_classes = K

        def __init__(self):
            self.calls = 0

        def draw(self, n, rng=None):
            self.calls += 1
            return _synthetic(n)

    xr, yr = _batch(4)
    source = Counting()
    t = GenMixd(keys="image", synthetic=source, num_classes=K, prob=0.0).set_random_state(0)
    out = t({"image": xr, "label": yr})
    assert source.calls == 0 and torch.equal(out["image"], xr)
    assert torch.equal(out["label"], ToSoftLabel(num_classes=K)(yr))
    t = GenMixd(keys="image", synthetic=source, num_classes=K, prob=1.0).set_random_state(0)
    t({"image": xr, "label": yr})
    assert source.calls == 1
