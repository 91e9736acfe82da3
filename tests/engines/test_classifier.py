"""Classifier training/evaluation: one call per strategy, best checkpoint, reports, clear errors."""

import json

import numpy as np
import pytest
import torch
from _helpers import small_generator
from monai.data import DataLoader, Dataset

from gemix_monai.engines.classifier import (
    CHECKPOINT_INFO_NAME,
    ClassifierInfoWriter,
    ClassifierTrainingOptions,
    StrategyPrepareBatch,
    class_balanced_weights,
    create_classifier_evaluator,
    create_classifier_trainer,
    evaluate_classifier,
    key_metric_cmp_fn,
    load_classifier,
    train_classifier,
)
from gemix_monai.engines.classifier_networks import build_classifier_network
from gemix_monai.handlers.report import REPORT_FILES
from gemix_monai.metrics import clinical_metrics

NAMES = ["normal", "benign", "malignant"]
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
SIZE = 16
#: one quick run: the tiny network, one epoch of batches of 8, no TensorBoard, no final report (tests override)
QUICK = ClassifierTrainingOptions(
    network="tiny", class_names=NAMES, epochs=1, batch_size=8, tensorboard=False, final_report=False
)


def make_items(n, seed):
    """Class k images are noise plus a class-dependent offset, so a tiny CNN can learn something."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    return [
        {"image": (torch.randn(1, SIZE, SIZE, generator=g) * 0.3 + (int(y) - 1) * 0.5).clamp(-1, 1), "label": int(y)}
        for y in labels
    ]


@pytest.fixture(scope="module")
def train_ds():
    return Dataset(make_items(24, 0))


@pytest.fixture(scope="module")
def val_ds():
    return Dataset(make_items(12, 1))


@pytest.fixture(scope="module")
def generator_checkpoint(tmp_path_factory):
    """A small randomly initialised generator at the data's resolution, saved as a checkpoint."""
    G = small_generator(resolution=SIZE, w_dim=8, channel_base=64, channel_max=8, class_names=NAMES)
    return G.save_checkpoint(tmp_path_factory.mktemp("gen") / "generator.pt")


# every name of STRATEGY_NAMES: items per epoch (24 real, synthetic_ratio 0.5) and whether targets are soft
@pytest.mark.parametrize(
    "strategy,num_items,soft_targets",
    [
        ("real", 24, False),
        ("pixel_mixup", 24, True),
        ("synthetic_only", 24, True),
        ("real+synthetic", 36, False),
        ("gemix", 36, True),
        ("gemix_code", 36, True),
        ("softmax_t", 36, True),
        ("genmix", 24, True),
    ],
)
def test_each_strategy_trains_on_its_own_data_and_keeps_a_loadable_best_checkpoint(
    strategy, num_items, soft_targets, train_ds, val_ds, generator_checkpoint, tmp_path
):
    targets = []

    def recording_loss(logits, target):
        targets.append(target.detach())
        return torch.nn.functional.cross_entropy(logits, target)

    result = train_classifier(
        train_ds,
        val_ds,
        tmp_path,
        QUICK,
        strategy=strategy,
        generator_checkpoint=None if strategy in ("real", "pixel_mixup") else generator_checkpoint,
        batch_size=12,
        loss_function=recording_loss,
        strategy_kwargs={"synthetic_ratio": 0.5} if num_items == 36 else None,
    )
    assert result.num_train_items == num_items
    target = torch.cat(targets)
    assert torch.allclose(target.sum(1), torch.ones(len(target)), atol=1e-5)
    is_one_hot = bool(((target == 0) | (target == 1)).all())
    assert is_one_hot is not soft_targets
    build_classifier_network("tiny", 1, 3).load_state_dict(torch.load(result.checkpoint, weights_only=True))
    assert result.best_epoch == 1 and 0.0 <= result.best_metric <= 1.0
    info = json.loads((tmp_path / "models" / CHECKPOINT_INFO_NAME).read_text())
    assert info["strategy"] == strategy and info["class_names"] == NAMES and info["network"] == "tiny"


def test_the_strategy_grid_covers_every_strategy():
    from gemix_monai.engines.classifier import STRATEGY_NAMES
    from gemix_monai.transforms.strategies import STRATEGIES

    assert (
        set(STRATEGY_NAMES)
        == set(STRATEGIES)
        == {"real", "pixel_mixup", "synthetic_only", "real+synthetic", "gemix", "gemix_code", "softmax_t", "genmix"}
    )


def test_training_writes_the_validation_report_and_tensorboard(train_ds, val_ds, tmp_path):
    result = train_classifier(
        train_ds,
        val_ds,
        tmp_path,
        strategy="real",
        network="tiny",
        class_names=NAMES,
        epochs=2,
        batch_size=8,
        positive_class="malignant",
    )
    assert all((tmp_path / "val_report" / f).is_file() for f in REPORT_FILES)
    data = json.loads((tmp_path / "val_report" / "metrics.json").read_text())
    assert data["metrics"]["macro_f1"] == pytest.approx(result.best_metric)
    assert "positive_fnr" in data["metrics"]
    assert [h["epoch"] for h in result.history] == [1.0, 2.0]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in (tmp_path / "tensorboard").iterdir():
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train_loss", "macro_f1", "fnr/malignant", "positive_fnr"} <= tags


def test_evaluation_from_checkpoint_equals_functional_metrics(train_ds, val_ds, tmp_path):
    train_classifier(train_ds, val_ds, tmp_path / "run", QUICK, strategy="real")
    result = evaluate_classifier(tmp_path / "run" / "models" / "model.pt", val_ds, tmp_path / "report")
    net, _ = load_classifier(tmp_path / "run" / "models" / "model.pt")
    net.eval()
    with torch.no_grad():
        x = torch.stack([torch.as_tensor(it["image"]) for it in val_ds])
        probs = torch.softmax(net(x).double(), 1)
    y = torch.tensor([it["label"] for it in val_ds])
    expected = clinical_metrics(y, probs, class_names=NAMES)
    for name, value in expected.scalars.items():  # NaN where undefined (e.g. a class never predicted)
        assert result.scalars[name] == pytest.approx(value, abs=1e-6, nan_ok=True), name
    assert all((tmp_path / "report" / f).is_file() for f in REPORT_FILES)


def test_feature_tsne_of_real_and_mixed_points(train_ds, val_ds, tmp_path):
    train_classifier(
        train_ds,
        val_ds,
        tmp_path,
        QUICK,
        strategy="pixel_mixup",
        final_report=True,
        tsne_layer="default",
        tsne_max_points=24,
    )
    assert (tmp_path / "val_report" / "tsne.png").is_file()


def test_datalist_input_loads_images_and_class_names(tmp_path):
    from monai.transforms import Compose, EnsureTyped, LoadImaged

    entries = {}
    for split, seed, n in (("training", 0, 12), ("validation", 1, 6)):
        rows = []
        for i, item in enumerate(make_items(n, seed)):
            path = tmp_path / f"{split}_{i}.npy"
            np.save(path, item["image"].numpy())
            rows.append({"image": path.name, "label": item["label"]})
        entries[split] = rows
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"class_names": NAMES, **entries}))
    transform = Compose([LoadImaged("image", reader="NumpyReader"), EnsureTyped("image")])
    result = train_classifier(
        datalist,
        datalist,
        tmp_path / "run",
        network="tiny",
        epochs=1,
        batch_size=4,
        train_transform=transform,
        val_transform=transform,
        tensorboard=False,
        final_report=False,
    )
    info = json.loads((tmp_path / "run" / "models" / CHECKPOINT_INFO_NAME).read_text())
    assert info["class_names"] == NAMES and result.best_epoch == 1


def test_early_stopping_ends_training_when_the_key_metric_stalls(train_ds, val_ds, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIZE * SIZE, 3))
    evaluator = create_classifier_evaluator(
        net, DataLoader(val_ds, batch_size=6), 3, NAMES, key_metric="fnr/benign", device="cpu"
    )
    # lr = 0: the network never changes, so the validation metric never improves after epoch 1
    trainer = create_classifier_trainer(
        net,
        DataLoader(train_ds, batch_size=8),
        3,
        max_epochs=6,
        lr=0.0,
        evaluator=evaluator,
        early_stopping_patience=1,
        device="cpu",
        checkpoint_path=tmp_path / "model.pt",
    )
    trainer.run()
    assert trainer.state.epoch == 2
    assert evaluator.state.best_metric_epoch == 1
    assert json.loads((tmp_path / CHECKPOINT_INFO_NAME).read_text())["best_epoch"] == 1


@pytest.mark.parametrize(
    "key,values,best_epoch",
    [("macro_f1", [0.2, 0.5, 0.4], 2), ("fnr/benign", [0.3, 0.1, 0.2], 2), ("fnr/benign", [0.0, 0.1, 0.2], 1)],
)
def test_checkpoint_saver_and_info_follow_the_metric_direction(tmp_path, key, values, best_epoch):
    """MONAI's CheckpointSaver (atomic subclass) + classifier.json, driven by MONAI's best-metric bookkeeping."""
    from ignite.engine import Engine, Events
    from monai.engines.utils import default_metric_cmp_fn  # noqa: F401  (MONAI's default is '>' only)

    from gemix_monai.handlers.checkpoint import AtomicCheckpointSaver
    from gemix_monai.metrics.clinical import metric_higher_is_better

    net = torch.nn.Linear(2, 2)
    engine = Engine(lambda e, b: None)
    engine.state.key_metric_name, engine.state.best_metric, engine.state.best_metric_epoch = key, -1, -1
    cmp = key_metric_cmp_fn(key)

    @engine.on(Events.EPOCH_COMPLETED)
    def _compare(e):  # what MONAI's Workflow registers for its key metric
        if cmp(e.state.metrics[key], e.state.best_metric):
            e.state.best_metric, e.state.best_metric_epoch = e.state.metrics[key], e.state.epoch

    AtomicCheckpointSaver(
        str(tmp_path),
        {"model": net},
        save_key_metric=True,
        key_metric_name=key,
        key_metric_filename="model.pt",
        key_metric_negative_sign=not metric_higher_is_better(key),
    ).attach(engine)
    ClassifierInfoWriter(tmp_path / CHECKPOINT_INFO_NAME, {"network": "x"}).attach(engine)
    for epoch, value in enumerate(values, start=1):
        engine.state.epoch, engine.state.metrics = epoch, {key: value}
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        engine.fire_event(Events.EPOCH_COMPLETED)
    assert engine.state.best_metric_epoch == best_epoch
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].eq(float(best_epoch)).all()
    info = json.loads((tmp_path / CHECKPOINT_INFO_NAME).read_text())
    assert (
        info["best_epoch"] == best_epoch and info["best_metric"] == values[best_epoch - 1] and info["key_metric"] == key
    )


def test_fnr_key_metric_is_minimised_by_default():
    cmp = key_metric_cmp_fn("fnr/malignant")
    assert cmp(0.0, -1) and cmp(0.1, 0.2) and not cmp(0.3, 0.2)
    assert key_metric_cmp_fn("macro_f1")(0.3, 0.2)


def test_prepare_batch_makes_one_hot_labels_and_applies_the_batch_transform():
    batch = {"image": torch.zeros(4, 1, 8, 8), "label": torch.tensor([0, 1, 2, 1])}
    image, label = StrategyPrepareBatch(3)(batch, "cpu")
    assert torch.equal(label, torch.nn.functional.one_hot(batch["label"], 3).float())

    def halve(d):
        return {"image": d["image"] + 1, "label": d["label"] * 0.5 + 0.5 / 3}

    image, label = StrategyPrepareBatch(3, halve)(batch, "cpu")
    assert torch.equal(image, torch.ones(4, 1, 8, 8)) and torch.allclose(label.sum(1), torch.ones(4))


def test_class_balanced_weights_are_inverse_frequency():
    w = class_balanced_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0], dtype=torch.float64))


def test_class_weighted_sampling_balances_the_classes_seen_in_training(train_ds, val_ds, tmp_path):
    items = list(train_ds)
    unbalanced = Dataset([it for it in items if it["label"] == 0] + [it for it in items if it["label"] == 1][:2])
    seen = []

    def recording_loss(logits, target):
        seen.append(target.argmax(1))
        return torch.nn.functional.cross_entropy(logits, target)

    train_classifier(
        unbalanced,
        val_ds,
        tmp_path,
        QUICK,
        epochs=4,
        batch_size=5,
        class_weighted_sampling=True,
        loss_function=recording_loss,
    )
    counts = torch.bincount(torch.cat(seen), minlength=3)
    # 8 normal vs 2 benign items: drawn uniformly, benign would be ~20 % of the draws; balanced, ~50 %
    assert counts[2] == 0 and counts[1] >= 0.3 * counts.sum()


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(strategy="cutmix"), ValueError, "unknown strategy 'cutmix'"),
        (dict(strategy="gemix"), ValueError, "needs a generator"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(class_names=None), ValueError, "num_classes is required"),
        (dict(class_names=["a", "b"]), ValueError, "out of range"),
    ],
)
def test_bad_training_arguments_give_clear_errors(kwargs, error, match, train_ds, val_ds, tmp_path):
    with pytest.raises(error, match=match):
        train_classifier(train_ds, val_ds, tmp_path, QUICK, **{"strategy": "real", **kwargs})


def test_bad_data_type_is_named(val_ds, tmp_path):
    with pytest.raises(TypeError, match="train_data must be a Dataset"):
        train_classifier(42, val_ds, tmp_path, network="tiny", class_names=NAMES)


def test_checkpoint_without_info_needs_the_architecture(tmp_path):
    torch.save(build_classifier_network("tiny", 1, 3).state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="pass \\['network', 'in_channels', 'num_classes'\\]"):
        load_classifier(tmp_path / "model.pt")
    net, _ = load_classifier(tmp_path / "model.pt", network="tiny", in_channels=1, num_classes=3)
    with pytest.raises(ValueError, match="does not fit network"):
        load_classifier(tmp_path / "model.pt", network="tiny", in_channels=1, num_classes=4)


@requires_cuda
def test_amp_training_on_cuda_keeps_a_float32_checkpoint(train_ds, val_ds, tmp_path):
    result = train_classifier(train_ds, val_ds, tmp_path, QUICK, device="cuda", amp=True, final_report=True)
    state = torch.load(result.checkpoint, weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())
    assert state["fc.weight"].dtype == torch.float32
    assert result.report.num_samples == len(val_ds)


def test_class_balanced_weights_equal_sklearn_balanced_weights():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y.numpy())
    np.testing.assert_allclose(class_balanced_weights(y, 3).numpy(), expected)


@pytest.mark.parametrize(
    "strategy,sources",
    [
        ("real", {"real"}),
        ("pixel_mixup", {"real", "mixed"}),
        ("synthetic_only", {"real", "synthetic"}),
        ("gemix", {"real", "synthetic"}),
        ("genmix", {"real", "mixed"}),
    ],
)
def test_feature_sources_show_what_each_strategy_trains_on(strategy, sources, train_ds, val_ds, generator_checkpoint):
    from gemix_monai.engines.classifier import strategy_feature_sources
    from gemix_monai.handlers.tsne import extract_features
    from gemix_monai.transforms.strategies import build_strategy

    strat = build_strategy(
        strategy,
        train_ds,
        3,
        generator=None if strategy in ("real", "pixel_mixup") else generator_checkpoint,
        synthetic_ratio=0.5,
    )
    found = strategy_feature_sources(
        strat, DataLoader(strat.dataset, batch_size=8), DataLoader(val_ds, batch_size=8), 3, 10
    )
    assert set(found) == sources
    net = build_classifier_network("tiny", 1, 3)
    for name, batches in found.items():
        features, labels = extract_features(net, "pool", batches, max_points=10)
        assert features.shape == (10, 32) and labels.max() < 3, name


def test_options_dataclass_and_keywords_are_one_api(tmp_path):
    from gemix_monai.engines.classifier import ClassifierTrainingOptions

    options = ClassifierTrainingOptions(strategy="gemix", epochs=3)
    assert options.batch_size == 32 and options.key_metric == "macro_f1"
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):  # a keyword overrides a field
        train_classifier([], [], tmp_path, options=options, epochs=0)
    with pytest.raises(ValueError, match="unknown strategy 'mixup'"):
        train_classifier([], [], tmp_path, strategy="mixup")
    with pytest.raises(TypeError, match="epoch"):
        train_classifier([], [], tmp_path, epoch=3)


def test_a_class_without_a_validation_or_test_image_warns_and_its_metrics_are_undefined(train_ds, tmp_path):
    import csv
    import math
    import warnings

    from gemix_monai.metrics import AbsentClassWarning

    no_malignant = Dataset([it for it in make_items(12, 1) if it["label"] != 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_classifier(train_ds, no_malignant, tmp_path / "run", QUICK, strategy="real")
        result = evaluate_classifier(tmp_path / "run" / "models" / "model.pt", no_malignant, tmp_path / "report")
    absent = [str(w.message) for w in caught if issubclass(w.category, AbsentClassWarning)]
    assert len(absent) == 2  # one per evaluation: the validation of the single epoch, then the test
    assert absent[0].startswith("the validation split holds no image of class 'malignant' (of 8 images)")
    assert absent[1].startswith("the test split holds no image of class 'malignant' (of 8 images)")

    for name in ("sensitivity/malignant", "fnr/malignant", "f1/malignant", "f2/malignant", "auroc/malignant"):
        assert math.isnan(result.scalars[name]) and name in result.undefined, name
    assert result.absent_classes == ("malignant",)
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert report["metrics"]["fnr/malignant"] is None and "fnr/malignant" in report["undefined"]
    assert report["absent_classes"] == ["malignant"]
    with open(tmp_path / "report" / "metrics.csv", newline="") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    assert rows["fnr/malignant"]["value"] == "nan" and rows["fnr/malignant"]["undefined"] == "1"
    md = (tmp_path / "report" / "metrics.md").read_text()
    assert "No image of class malignant in this split" in md
    row = next(line for line in md.splitlines() if line.startswith("| malignant |"))
    # sensitivity, fnr, f1, f2, auroc; precision too where the class was never predicted either
    assert row.count("undefined*") == 5 + ("precision/malignant" in result.undefined)

    # where defined, the numbers are the functional metrics' (scikit-learn's)
    net, _ = load_classifier(tmp_path / "run" / "models" / "model.pt")
    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(torch.stack([torch.as_tensor(it["image"]) for it in no_malignant])).double(), 1)
    expected = clinical_metrics(torch.tensor([it["label"] for it in no_malignant]), probs, class_names=NAMES)
    for name, value in expected.scalars.items():
        if name not in result.undefined:
            assert result.scalars[name] == pytest.approx(value, abs=1e-6), name


def test_validation_data_in_another_class_order_is_refused(tmp_path):
    from gemix_monai.data.errors import DataError
    from gemix_monai.engines.classifier import train_classifier

    class Named(torch.utils.data.Dataset):  # as gemix_monai.data.get_dataset's datasets carry their classes
        def __init__(self, items, class_names):
            self.items, self.class_names = items, class_names

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    items = [{"image": torch.zeros(1, 32, 32) + 0.1 * i, "label": i % 2} for i in range(8)]
    train, val = Named(items, ["normal", "pneumonia"]), Named(items[:4], ["pneumonia", "normal"])
    with pytest.raises(DataError, match="pneumonia"):
        train_classifier(train, val, tmp_path, network="tiny", epochs=1, device="cpu")
