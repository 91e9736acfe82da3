"""Issue 19: class-balanced generator training, checkpoints chosen by the training-time audit, the generator study."""

import json
import math

import numpy as np
import pytest
import torch

from gemix_monai.engines.gan import GlobalBatchSampler
from gemix_monai.generators.protocol import load_generator, preferred_generator
from gemix_monai.handlers.selection import GeneratorSelection, GeneratorSelectionHandler, score_row
from gemix_monai.mixing import class_balance_shares, class_balance_weights

LABELS = [0] * 80 + [1] * 15 + [2] * 5  # 80 / 15 / 5 images per class


# ------------------------------------------------------------------------------------------ class balance


@pytest.mark.parametrize(
    ("mode", "shares"),
    [
        ("none", [0.80, 0.15, 0.05]),
        ("sqrt", np.sqrt([80, 15, 5]) / np.sqrt([80, 15, 5]).sum()),
        ("uniform", [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_class_balance_shares_follow_the_mode(mode, shares):
    np.testing.assert_allclose(class_balance_shares(LABELS, 3, mode), shares, rtol=1e-12)


@pytest.mark.parametrize("mode", ["sqrt", "uniform"])
def test_weighted_global_batches_draw_the_classes_at_the_documented_frequencies(mode):
    per_class = class_balance_weights(LABELS, 3, mode)
    sampler = GlobalBatchSampler(len(LABELS), 20, seed=3, weights=[per_class[y] for y in LABELS])
    drawn = np.array([LABELS[i] for k in range(2000) for i in sampler.global_batch(k)])
    freq = np.bincount(drawn, minlength=3) / drawn.size
    # 40,000 draws: the standard error of a share is below 0.0025
    np.testing.assert_allclose(freq, class_balance_shares(LABELS, 3, mode), atol=0.012)


def test_weighted_global_batch_is_a_pure_function_of_seed_and_index():
    w = class_balance_weights(LABELS, 3, "uniform")
    a = GlobalBatchSampler(100, 16, seed=1, weights=[w[y] for y in LABELS])
    b = GlobalBatchSampler(100, 16, seed=1, weights=[w[y] for y in LABELS], start_batch=7)
    assert a.global_batch(7) == next(iter(b))
    assert a.global_batch(7) != GlobalBatchSampler(100, 16, seed=2, weights=[w[y] for y in LABELS]).global_batch(7)


def test_class_balance_none_shows_every_image_once_per_pass():
    plain = GlobalBatchSampler(100, 20, seed=1)
    assert sorted(i for k in range(5) for i in plain.global_batch(k)) == list(range(100))


@pytest.mark.parametrize("mode", ["balanced", "", "None", 1])
def test_unknown_class_balance_is_refused_naming_the_option(mode):
    from gemix_monai.engines.gan import GanTrainingOptions
    from gemix_monai.engines.generative import GenerativeTrainingOptions

    with pytest.raises(ValueError, match="GanTrainingOptions.class_balance must be one of"):
        GanTrainingOptions(class_balance=mode)
    with pytest.raises(ValueError, match="GenerativeTrainingOptions.class_balance must be one of"):
        GenerativeTrainingOptions(class_balance=mode)


def _items(n=40, minority_every=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": (torch.randn(1, 32, 32, generator=g) * 0.3 + (0.5 if i % minority_every == 0 else -0.5)).clamp(
                -1, 1
            ),
            "label": int(i % minority_every == 0),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("family", ["stylegan2", "dcgan", "diffusion"])
def test_the_generator_file_records_the_class_balance_and_resume_refuses_another(tmp_path, family):
    from gemix_monai.engines.generative import train_generator

    items = _items()
    kwargs = dict(family=family, class_names=["a", "b"], batch_size=8, progress=False, device="cpu", seed=0)
    path = train_generator(items, tmp_path, max_kimg=0.016, class_balance="uniform", **kwargs)
    record = torch.load(path, weights_only=True)["training"]
    assert record["class_balance"] == "uniform" and record["class_shares"] == [0.5, 0.5]
    assert record["family"] == family and record["kimg"] == pytest.approx(0.016)
    assert record["train_cpu_seconds"] > 0
    with pytest.raises(ValueError, match="class_balance='uniform', this run asks for 'none'"):
        train_generator(items, tmp_path, max_kimg=0.032, class_balance="none", resume="auto", **kwargs)


@pytest.mark.parametrize(("family", "expected"), [("stylegan2", "none"), ("dcgan", "uniform"), ("diffusion", "none")])
def test_without_a_class_balance_each_family_takes_its_measured_default(tmp_path, family, expected):
    from gemix_monai.engines.gan import GanTrainingOptions
    from gemix_monai.engines.generative import FAMILY_CLASS_BALANCE, default_class_balance, train_generator

    assert FAMILY_CLASS_BALANCE[family] == expected == default_class_balance(family)
    assert GanTrainingOptions(class_balance=None).class_balance == "none"
    assert default_class_balance(family, "sqrt") == "sqrt"
    with pytest.raises(ValueError, match="class_balance must be one of"):
        default_class_balance(family, "balanced")
    kwargs = dict(family=family, class_names=["a", "b"], batch_size=8, progress=False, device="cpu", seed=0)
    path = train_generator(_items(), tmp_path, max_kimg=0.008, class_balance=None, **kwargs)
    assert torch.load(path, weights_only=True)["training"]["class_balance"] == expected
    # resuming without naming it again continues with the stored (= default) mode
    train_generator(_items(), tmp_path, max_kimg=0.016, resume="auto", **kwargs)
    assert torch.load(path, weights_only=True)["training"]["class_balance"] == expected


# ------------------------------------------------------------------------------------------ selection


class _ScriptedEngine:
    """The attributes the selection handler reads, with a G_ema whose weights record the step."""

    def __init__(self, out_dir):
        from _helpers import small_generator

        self.G_ema = small_generator(c_dim=2)
        self.class_names, self.num_classes, self.rank = ["a", "b"], 2, 0
        self.stateful_handlers = {}
        self.images_seen = 0

        class _State:
            iteration = 0

        self.state = _State()


@pytest.mark.parametrize(
    ("criterion", "curve", "best_at"),
    [
        # (fd, minority recall) per audit
        ("fd", [(0.9, 0.1), (0.5, 0.0), (0.7, 0.6)], 2),
        ("minority_recall", [(0.9, 0.1), (0.5, 0.0), (0.7, 0.6)], 3),
        ("minority_recall", [(0.9, 0.4), (0.5, 0.4), (0.7, 0.2)], 2),  # a tie goes to the lower FD
        ("minority_recall", [(0.5, 0.4), (0.5, 0.4), (0.7, 0.2)], 1),  # a full tie to the earlier checkpoint
    ],
)
def test_best_checkpoint_follows_the_criterion_on_a_scripted_curve(tmp_path, criterion, curve, best_at):
    engine = _ScriptedEngine(tmp_path)
    handler = GeneratorSelectionHandler(tmp_path, GeneratorSelection(val_data=[1], criterion=criterion), every_kimg=1)
    handler._feature_space = lambda e: None
    for step, (fd, recall) in enumerate(curve, start=1):
        engine.state.iteration, engine.images_seen = step, step * 1000
        handler._row = lambda e, fd=fd, recall=recall: {
            "images": e.images_seen,
            "kimg": e.images_seen / 1000,
            "fd": fd,
            "minority_recall": recall,
        }
        torch.nn.init.constant_(next(engine.G_ema.parameters()), float(step))
        handler.save(engine)
    assert handler.best["kimg"] == best_at
    best = torch.load(tmp_path / "models" / "generator" / "best.pt", weights_only=True)
    assert best["selection"]["criterion"] == criterion and best["selection"]["row"]["kimg"] == best_at
    assert float(next(iter(best["state_dict"].values())).flatten()[0]) == best_at
    history = json.loads((tmp_path / "audit" / "selection.json").read_text())["history"]
    assert [r["kimg"] for r in history] == [1, 2, 3]
    assert (tmp_path / "audit" / "selection.png").stat().st_size > 0


def test_undefined_criterion_values_never_win():
    assert score_row({"fd": 0.1, "minority_recall": None}, "minority_recall")[0] == math.inf
    assert score_row({"fd": 0.1, "minority_recall": 0.0}, "minority_recall") < score_row(
        {"fd": 0.1, "minority_recall": None}, "minority_recall"
    )


def test_selection_settings_are_checked():
    with pytest.raises(ValueError, match="criterion must be one of"):
        GeneratorSelection(criterion="best")
    with pytest.raises(ValueError, match="per_class must be a positive integer"):
        GeneratorSelection(per_class=0)


def test_a_generator_pt_with_best_beside_it_loads_best_and_says_so(tmp_path, caplog):
    from _helpers import small_generator

    folder = tmp_path / "models" / "generator"
    small_generator(seed=1).save_checkpoint(folder / "generator.pt")
    assert preferred_generator(folder / "generator.pt") == folder / "generator.pt"  # no best.pt yet
    with pytest.raises(FileNotFoundError, match="no audit-chosen generator"):
        preferred_generator(folder / "generator.pt", "best")
    small_generator(seed=2).save_checkpoint(
        folder / "best.pt", extra={"selection": {"criterion": "fd", "row": {"fd": 0.2, "kimg": 4}}}
    )
    with caplog.at_level("INFO"):
        G = load_generator(folder / "generator.pt")
    assert G.checkpoint_path == str(folder / "best.pt")
    assert "chosen by the training-time audit (fd = 0.2 at 4 kimg)" in caplog.text
    assert load_generator(folder / "generator.pt", choice="file").checkpoint_path == str(folder / "generator.pt")


def test_training_with_a_validation_split_keeps_best_and_resumes_the_audit(tmp_path):
    from gemix_monai.engines.generative import train_generator

    items, val = _items(), _items(20, seed=1)
    sel = GeneratorSelection(
        val_data=val, per_class=8, every_kimg=0.016, cache_dir=str(tmp_path / "cache"), feature_epochs=2
    )
    kw = dict(family="dcgan", class_names=["a", "b"], batch_size=8, progress=False, device="cpu", selection=sel)
    train_generator(items, tmp_path / "run", max_kimg=0.032, **kw)
    first = json.loads((tmp_path / "run" / "audit" / "selection.json").read_text())
    assert [r["kimg"] for r in first["history"]] == [0.016, 0.032]
    assert (tmp_path / "run" / "models" / "generator" / "best.pt").is_file()
    train_generator(items, tmp_path / "run", max_kimg=0.048, resume="auto", **kw)
    second = json.loads((tmp_path / "run" / "audit" / "selection.json").read_text())
    assert [r["kimg"] for r in second["history"]] == [0.016, 0.032, 0.048]
    assert second["history"][:2] == first["history"]
    assert len(list((tmp_path / "cache").iterdir())) == 1  # one cached feature network, trained once


def test_data_without_a_validation_split_trains_without_the_audit(tmp_path, caplog):
    from gemix_monai.handlers.selection import validation_split

    datalist = tmp_path / "d.json"
    images = []
    for i in range(6):
        import nibabel as nib

        path = tmp_path / f"i{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.random.default_rng(i).random((16, 16)).astype(np.float32), np.eye(4)), path)
        images.append({"image": str(path), "label": i % 2})
    datalist.write_text(json.dumps({"class_names": ["a", "b"], "training": images}))
    with caplog.at_level("INFO"):
        assert validation_split(str(datalist), image_size=16) is None
    assert "no validation split" in caplog.text


# ------------------------------------------------------------------------------------------ the study


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stylegan2:none", "expected FAMILY:BALANCE:KIMG"),
        ("gan:none:10", "family 'gan' is not one of"),
        ("dcgan:half:10", "class balance 'half' is not one of"),
        ("dcgan:none:ten", "budgets 'ten' must be numbers"),
        ("dcgan:none:0,10", "budgets must be positive kimg"),
    ],
)
def test_study_run_specs_are_checked(spec, message):
    from gemix_monai.experiments.generator_study import parse_run_spec

    with pytest.raises(ValueError, match=message):
        parse_run_spec(spec)


def test_study_run_spec_snapshot_interval_is_the_gcd_of_the_budgets():
    from gemix_monai.experiments.generator_study import parse_run_spec

    run = parse_run_spec("stylegan2:uniform:100,10,50")
    assert run.kimgs == (10.0, 50.0, 100.0) and run.snapshot_kimg == 10.0 and run.id == "stylegan2-uniform"
