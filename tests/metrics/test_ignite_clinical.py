"""ClinicalMetrics over batches (and over processes) equals the functional metrics over the whole set."""

import socket

import pytest
import torch
import torch.multiprocessing as mp
from ignite.engine import Engine
from ignite.exceptions import NotComputableError

from gemix_monai.metrics import ClinicalMetrics, clinical_metrics

NAMES = ["normal", "pneumonia", "covid"]


def _data(n=53, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g), torch.randint(0, k, (n,), generator=g)


def _run(metric, logits, labels, batch_size, as_dicts=False):
    batches = list(zip(logits.split(batch_size), labels.split(batch_size)))

    def step(engine, batch):
        pred, y = batch
        if as_dicts:  # MONAI's decollated output: one dict per sample
            return [{"pred": p, "label": t} for p, t in zip(pred, y)]
        return {"pred": pred, "label": y}

    engine = Engine(step)
    metric.attach(engine, "key")
    engine.run(batches, max_epochs=1)
    return engine.state.metrics


@pytest.mark.parametrize("batch_size", [1, 7, 53])
def test_batched_equals_whole_set(batch_size):
    logits, labels = _data()
    metrics = _run(ClinicalMetrics(3, NAMES), logits, labels, batch_size)
    expected = clinical_metrics(labels, torch.softmax(logits.double(), 1), class_names=NAMES).scalars
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name


def test_decollated_output_is_read_like_a_batch():
    logits, labels = _data()
    a = _run(ClinicalMetrics(3, NAMES), logits, labels, 8)
    b = _run(ClinicalMetrics(3, NAMES), logits, labels, 8, as_dicts=True)
    assert a == b


def test_attached_name_holds_the_key_metric():
    logits, labels = _data()
    metrics = _run(ClinicalMetrics(3, NAMES, key_metric="fnr/covid"), logits, labels, 10)
    assert metrics["key"] == metrics["fnr/covid"]
    assert all(isinstance(v, float) for v in metrics.values())


def test_positive_class_scalars_are_published():
    logits, labels = _data()
    metrics = _run(ClinicalMetrics(3, NAMES, positive_class="pneumonia"), logits, labels, 10)
    assert metrics["positive_fnr"] == metrics["fnr/pneumonia"]


def test_probability_input_is_used_as_is():
    logits, labels = _data()
    probs = torch.softmax(logits, 1)
    a = _run(ClinicalMetrics(3, input_type="probabilities"), probs, labels, 10)
    b = _run(ClinicalMetrics(3), logits, labels, 10)
    assert a["macro_auroc"] == pytest.approx(b["macro_auroc"], abs=1e-6)


def test_result_keeps_confusion_matrix_for_reports():
    logits, labels = _data()
    metric = ClinicalMetrics(3, NAMES)
    _run(metric, logits, labels, 10)
    assert metric.result.confusion_matrix.sum() == 53 and metric.result.class_names == tuple(NAMES)


def test_reset_between_epochs():
    logits, labels = _data()
    metric = ClinicalMetrics(3)
    first = _run(metric, logits, labels, 10)
    second = _run(metric, logits, labels, 10)
    assert first == second


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_classes=1), "at least 2"),
        (dict(num_classes=3, input_type="scores"), "input_type"),
        (dict(num_classes=3, key_metric="f1"), "key_metric 'f1'"),
        (dict(num_classes=3, positive_class=5), "positive_class index 5"),
    ],
)
def test_bad_construction_gives_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClinicalMetrics(**kwargs)


@pytest.mark.parametrize(
    "pred,label,match",
    [
        (torch.randn(4, 2), torch.zeros(4), r"shape \[B, 3\]"),
        (torch.randn(4, 3), torch.full((4,), 3), "label has label 3 out of range"),
        (torch.randn(4, 3), torch.zeros(5), "4 samples but label has 5"),
    ],
)
def test_bad_batch_gives_a_clear_error(pred, label, match):
    with pytest.raises(ValueError, match=match):
        ClinicalMetrics(3).update((pred, label))


def test_probabilities_not_summing_to_one_are_rejected():
    with pytest.raises(ValueError, match="sums to"):
        ClinicalMetrics(3, input_type="probabilities").update((torch.full((2, 3), 0.5), torch.zeros(2)))


def test_no_samples_is_not_computable():
    with pytest.raises(NotComputableError):
        ClinicalMetrics(3).compute()


# ---------------------------------------------------------------------------------------------- 2 processes


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, queue):
    import ignite.distributed as idist
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        logits, labels = _data()
        # unequal shards (27 and 26 samples), as a DistributedSampler without padding gives
        mine = slice(rank, None, world)
        metric = ClinicalMetrics(3, NAMES, device=idist.device())
        for pred, y in zip(logits[mine].split(5), labels[mine].split(5)):
            metric.update((pred, y))
        queue.put((rank, metric.compute()))
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_reduction_equals_one_process():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    logits, labels = _data()
    expected = clinical_metrics(labels, torch.softmax(logits.double(), 1), class_names=NAMES).scalars
    for rank in (0, 1):
        for name, value in expected.items():
            assert results[rank][name] == pytest.approx(value, abs=1e-12), (rank, name)


# ---------------------------------------------------------------------------------------------- a class without a sample


def test_a_class_absent_from_the_split_warns_once_per_evaluation_naming_it_and_the_split():
    import math
    import warnings

    from gemix_monai.metrics import AbsentClassWarning

    logits, labels = _data()
    labels[labels == 2] = 0  # no "covid" in this split
    metric = ClinicalMetrics(3, NAMES, split="validation")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # two evaluations of 8 batches each: one warning each
            metrics = _run(metric, logits, labels, 7)
    absent = [w for w in caught if issubclass(w.category, AbsentClassWarning)]
    assert len(absent) == 2
    assert str(absent[0].message) == (
        "the validation split holds no image of class 'covid' (of 53 images): its sensitivity, FNR, F1, F2 and "
        "AUROC are undefined, reported as null/NaN and listed under 'undefined' (not 0); macro averages follow "
        "scikit-learn (docs/maths.md §4)"
    )
    for name in ("sensitivity/covid", "fnr/covid", "f1/covid", "f2/covid", "auroc/covid"):
        assert math.isnan(metrics[name]) and name in metric.result.undefined
    assert metric.result.absent_classes == ("covid",)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AbsentClassWarning)
        _run(ClinicalMetrics(3, NAMES), *_data(), 7)  # every class present: no warning


def test_an_undefined_key_metric_is_an_error_not_a_silent_checkpoint_choice():
    logits, labels = _data()
    labels[labels == 2] = 0
    with pytest.raises(ValueError) as caught:
        _run(ClinicalMetrics(3, NAMES, key_metric="fnr/covid", split="validation"), logits, labels, 10)
    assert str(caught.value) == (
        "key_metric 'fnr/covid' is undefined on the validation split (classes without an image there: ['covid']), "
        "so no checkpoint can be chosen by it; choose a key metric that is defined there, e.g. 'macro_f1'"
    )
