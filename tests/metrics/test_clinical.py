"""Functional clinical metrics equal scikit-learn where defined; an undefined value (a 0/0, a per-class
metric of a class absent from the truth) is flagged and NaN in the named scalars, never 0."""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from gemix_monai.metrics import clinical as cl

SCENARIOS = ("random", "class_never_predicted", "class_absent_from_truth", "single_true_class")


def make_case(scenario: str, k: int, n: int = 97, seed: int = 0):
    """Labels [N] and probabilities [N, K] (rows on the simplex) for one edge-case scenario."""
    g = torch.Generator().manual_seed(seed * 31 + k)
    y = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64)
    logits[torch.arange(n), y] += 1.0  # better than chance, so there is something to measure
    if scenario == "class_never_predicted":
        logits[:, k - 1] = -1e3
    elif scenario == "class_absent_from_truth":
        y[y == 0] = 1
    elif scenario == "single_true_class":
        y[:] = k // 2
    probs = torch.softmax(logits, dim=1)
    # Round to a coarse grid so that tied scores occur and the AUROC tie rule is exercised.
    probs = torch.round(probs * 20) / 20
    probs[:, 0] += 1 - probs.sum(dim=1)
    probs = probs.clamp_min(0)
    probs = probs / probs.sum(dim=1, keepdim=True)
    return y, probs


GRID = [(s, k) for s in SCENARIOS for k in (2, 3, 11)]


@pytest.mark.parametrize("scenario,k", GRID)
def test_confusion_matrix_equals_sklearn(scenario, k):
    y, p = make_case(scenario, k)
    pred = p.argmax(1)
    expected = skm.confusion_matrix(y.numpy(), pred.numpy(), labels=list(range(k)))
    np.testing.assert_array_equal(cl.confusion_matrix(y, pred, k).numpy(), expected)


@pytest.mark.parametrize("scenario,k", GRID)
def test_per_class_ratios_equal_sklearn(scenario, k):
    y, p = make_case(scenario, k)
    yn, pn = y.numpy(), p.argmax(1).numpy()
    cm = cl.confusion_matrix(y, p.argmax(1), k)
    labels = list(range(k))
    kw = dict(labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(cl.sensitivity(cm).value.numpy(), skm.recall_score(yn, pn, **kw), atol=1e-12)
    np.testing.assert_allclose(cl.precision(cm).value.numpy(), skm.precision_score(yn, pn, **kw), atol=1e-12)
    np.testing.assert_allclose(cl.fbeta(cm, 1).value.numpy(), skm.f1_score(yn, pn, **kw), atol=1e-12)
    np.testing.assert_allclose(cl.fbeta(cm, 2).value.numpy(), skm.fbeta_score(yn, pn, beta=2, **kw), atol=1e-12)
    np.testing.assert_allclose(
        cl.false_negative_rate(cm).value.numpy()[~cl.sensitivity(cm).undefined.numpy()],
        1 - skm.recall_score(yn, pn, **kw)[~cl.sensitivity(cm).undefined.numpy()],
        atol=1e-12,
    )
    spec = [skm.recall_score(yn != c, pn != c, zero_division=0) for c in labels]
    np.testing.assert_allclose(cl.specificity(cm).value.numpy(), spec, atol=1e-12)


@pytest.mark.parametrize("scenario,k", GRID)
def test_summary_scalars_equal_sklearn(scenario, k):
    y, p = make_case(scenario, k)
    yn, pn = y.numpy(), p.argmax(1).numpy()
    r = cl.clinical_metrics(y, p)
    kw = dict(labels=list(range(k)), average="macro", zero_division=0)
    assert r.scalars["accuracy"] == pytest.approx(skm.accuracy_score(yn, pn), abs=1e-12)
    assert r.scalars["macro_f1"] == pytest.approx(skm.f1_score(yn, pn, **kw), abs=1e-12)
    assert r.scalars["macro_f2"] == pytest.approx(skm.fbeta_score(yn, pn, beta=2, **kw), abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn warns about classes absent from the truth
        assert r.scalars["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yn, pn), abs=1e-12)
    for c in range(k):
        positives = int((y == c).sum())
        if 0 < positives < len(y):
            expected = skm.roc_auc_score(yn == c, p[:, c].numpy())
            assert r.scalars[f"auroc/{c}"] == pytest.approx(expected, abs=1e-12)
            assert f"auroc/{c}" not in r.undefined
        else:
            assert math.isnan(r.scalars[f"auroc/{c}"]) and f"auroc/{c}" in r.undefined


@pytest.mark.parametrize("k", (2, 3, 11))
def test_macro_auroc_equals_sklearn_ovr_when_every_class_is_present(k):
    y, p = make_case("random", k, n=400)
    assert set(y.tolist()) == set(range(k))
    r = cl.clinical_metrics(y, p)
    if k == 2:
        expected = skm.roc_auc_score(y.numpy(), p[:, 1].numpy())
    else:
        expected = skm.roc_auc_score(y.numpy(), p.numpy(), multi_class="ovr", average="macro", labels=list(range(k)))
    assert r.scalars["macro_auroc"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("scenario,k", GRID)
def test_a_value_is_nan_exactly_when_it_is_flagged_undefined(scenario, k):
    y, p = make_case(scenario, k)
    r = cl.clinical_metrics(y, p)
    assert {name for name, v in r.scalars.items() if not np.isfinite(v)} == set(r.undefined)
    assert all(math.isnan(r.scalars[name]) for name in r.undefined)


def test_class_absent_from_truth_has_undefined_per_class_metrics_never_zero():
    y, p = make_case("class_absent_from_truth", 3)
    assert (p.argmax(1) == 0).any()  # the absent class is predicted (wrongly): its F1 would read 0
    r = cl.clinical_metrics(y, p, class_names=["normal", "benign", "malignant"], positive_class="normal")
    assert r.absent_classes == ("normal",)
    for name in ("sensitivity/normal", "fnr/normal", "f1/normal", "f2/normal", "auroc/normal"):
        assert math.isnan(r.scalars[name]) and name in r.undefined, name
    for name in ("positive_fnr", "positive_sensitivity", "positive_auroc"):
        assert math.isnan(r.scalars[name]) and name in r.undefined, name
    # about the other classes' samples: defined (specificity), and precision 0 = every prediction wrong
    assert r.scalars["specificity/normal"] > 0 and "specificity/normal" not in r.undefined
    assert r.scalars["precision/normal"] == 0.0 and "precision/normal" not in r.undefined
    assert "sensitivity/benign" not in r.undefined and np.isfinite(r.scalars["sensitivity/benign"])
    # the macro averages keep scikit-learn's rule (the absent class counts 0 in macro-F1)
    yn, pn = y.numpy(), p.argmax(1).numpy()
    assert r.scalars["macro_f1"] == pytest.approx(
        skm.f1_score(yn, pn, labels=[0, 1, 2], average="macro", zero_division=0), abs=1e-12
    )
    assert r.reported()["fnr/normal"] is None and r.reported()["fnr/benign"] == r.scalars["fnr/benign"]


def test_class_never_predicted_flags_its_precision_only():
    y, p = make_case("class_never_predicted", 3)
    r = cl.clinical_metrics(y, p)
    assert math.isnan(r.scalars["precision/2"]) and "precision/2" in r.undefined
    # present in the truth but never predicted: F1 is a genuine 0, not a 0/0
    assert r.scalars["f1/2"] == 0.0 and "f1/2" not in r.undefined
    assert r.absent_classes == ()


def _ece_reference(y, p, n_bins=15):
    conf, pred = p.max(1)
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (conf.numpy() > lo) & (conf.numpy() <= hi)
        if i == 0:
            mask |= conf.numpy() == 0
        if mask.any():
            acc = (pred.numpy()[mask] == y.numpy()[mask]).mean()
            total += mask.mean() * abs(acc - conf.numpy()[mask].mean())
    return total


@pytest.mark.parametrize("scenario,k", GRID)
def test_ece_equals_the_binned_definition(scenario, k):
    y, p = make_case(scenario, k)
    assert cl.expected_calibration_error(y, p) == pytest.approx(_ece_reference(y, p), abs=1e-12)


def test_ece_of_a_hand_worked_example():
    # confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct): bins (0.8667, 0.9333] and (0.5333, 0.6]
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    assert cl.expected_calibration_error(y, p) == pytest.approx(2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1 - 0.6))


def test_positive_class_publishes_its_miss_rate():
    y, p = make_case("random", 3)
    r = cl.clinical_metrics(y, p, class_names=["normal", "benign", "malignant"], positive_class="malignant")
    assert r.positive_class == "malignant"
    assert r.scalars["positive_fnr"] == r.scalars["fnr/malignant"]
    assert r.scalars["positive_sensitivity"] == pytest.approx(1 - r.scalars["positive_fnr"])


def test_y_pred_without_probabilities_gives_confusion_metrics_only():
    y = torch.tensor([0, 1, 1, 0])
    r = cl.clinical_metrics(y, y_pred=torch.tensor([0, 1, 0, 0]), num_classes=2)
    assert r.scalars["accuracy"] == 0.75 and "ece" not in r.scalars and "macro_auroc" not in r.scalars


@pytest.mark.parametrize(
    "name,higher",
    [("macro_f1", True), ("sensitivity/a", True), ("fnr/a", False), ("positive_fnr", False), ("ece", False)],
)
def test_metric_direction(name, higher):
    assert cl.metric_higher_is_better(name) is higher


# ---------------------------------------------------------------------------------------------- bad input

P2 = torch.tensor([[0.7, 0.3], [0.2, 0.8]])


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(y_true=torch.tensor([0, 2]), probs=P2), ValueError, "y_true has label 2 out of range"),
        (dict(y_true=torch.tensor([0, -1]), probs=P2), ValueError, "out of range"),
        (
            dict(y_true=torch.tensor([0, 1]), probs=torch.tensor([[0.7, 0.7], [0.2, 0.8]])),
            ValueError,
            "row 0 sums to 1.4",
        ),
        (dict(y_true=torch.tensor([0, 1]), probs=torch.tensor([[2.0, -1.0], [0.2, 0.8]])), ValueError, r"\[0, 1\]"),
        (dict(y_true=torch.tensor([0, 1, 1]), probs=P2), ValueError, "3 samples but probs has 2"),
        (dict(y_true=torch.tensor([0, 1]), probs=torch.tensor([0.7, 0.3])), ValueError, "num_classes is required"),
        (dict(y_true=torch.tensor([0, 0]), probs=torch.ones(2, 1)), ValueError, "at least 2"),
        (dict(y_true=torch.tensor([0.5, 1.0]), probs=P2), ValueError, "integer class indices"),
        (dict(y_true=torch.tensor([]), probs=torch.zeros(0, 2)), ValueError, "at least one sample"),
        (dict(y_true=torch.tensor([0, 1]), probs=P2, class_names=["a"]), ValueError, "class_names has 1 entries"),
        (dict(y_true=torch.tensor([0, 1]), probs=P2, class_names=["a", "a"]), ValueError, "unique"),
        (dict(y_true=torch.tensor([0, 1]), probs=P2, class_names=["a/b", "c"]), ValueError, "'/'"),
        (dict(y_true=torch.tensor([0, 1]), probs=P2, positive_class="tumour"), ValueError, "positive_class 'tumour'"),
        (dict(y_true=torch.tensor([[0.5, 0.5], [0, 1]]), probs=P2), ValueError, "one-hot"),
    ],
)
def test_bad_input_gives_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        cl.clinical_metrics(**kwargs)


def test_confusion_matrix_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        cl.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 2)


def test_summary_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        cl.summarize_clinical_metrics(torch.zeros(2, 3))


# ---------------------------------------------------------------------------------------------- property


@st.composite
def predictions(draw):
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 30))
    y = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    p = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    return k, np.array(y), np.array(p)


@settings(max_examples=60, deadline=None)
@given(predictions())
def test_any_predictions_match_sklearn(case):
    k, y, p = case
    r = cl.clinical_metrics(torch.from_numpy(y), y_pred=torch.from_numpy(p), num_classes=k)
    kw = dict(labels=list(range(k)), zero_division=0)
    assert r.scalars["macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro", **kw), abs=1e-12)
    assert r.scalars["macro_f2"] == pytest.approx(skm.fbeta_score(y, p, beta=2, average="macro", **kw), abs=1e-12)
    recall = skm.recall_score(y, p, average=None, **kw)
    prec = skm.precision_score(y, p, average=None, **kw)
    for c in range(k):
        for name, expected in ((f"sensitivity/{c}", recall[c]), (f"precision/{c}", prec[c])):
            if name in r.undefined:  # a 0/0 (scikit-learn's zero_division) or a class absent from y
                assert math.isnan(r.scalars[name])
            else:
                assert r.scalars[name] == pytest.approx(expected, abs=1e-12)
        assert (f"sensitivity/{c}" in r.undefined) == (c not in y)
    assert {name for name, v in r.scalars.items() if not np.isfinite(v)} == set(r.undefined)


def test_monai_confusion_matrix_f1_is_micro_averaged_so_macro_f1_is_computed_here():
    """Why this module exists: MONAI's pooled "f1 score" equals accuracy, not the macro-F1 clinicians report."""
    from monai.metrics import ConfusionMatrixMetric

    g = torch.Generator().manual_seed(0)
    y, p = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 3, (50,), generator=g)
    monai_f1 = ConfusionMatrixMetric(include_background=True, metric_name="f1 score", reduction="mean")
    monai_f1(y_pred=torch.nn.functional.one_hot(p, 3), y=torch.nn.functional.one_hot(y, 3))
    r = cl.clinical_metrics(y, y_pred=p, num_classes=3)
    assert float(monai_f1.aggregate()[0]) == pytest.approx(r.scalars["accuracy"])
    assert r.scalars["macro_f1"] == pytest.approx(skm.f1_score(y.numpy(), p.numpy(), average="macro"))
    assert r.scalars["macro_f1"] != pytest.approx(r.scalars["accuracy"])
