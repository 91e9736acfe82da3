"""gemix-monai compare --task segmentation: the plan, the Dice/HD95 table with intervals, resume, refusals, CLI."""

import math
from pathlib import Path

import numpy as np
import pytest
from _helpers import read_csv, write_fake_generator
from scipy import stats as scipy_stats

from gemix_monai.experiments.compare import segmentation as segcmp
from gemix_monai.experiments.compare.segmentation import SEGMENTATION_COMPARE_DEFAULTS, run_segmentation_compare

COUNTS = {"phantom_counts": (4, 2, 3), "val_counts": (1, 1, 1), "test_counts": (2, 2, 2)}
ARMS = ("real", "real+synthetic", "genmix", "gemix")
FAKE = {"seeds": 3, "device": "cpu", "verbose": False, **COUNTS}


def fake_dice(arm, seed):
    return 0.6 + 0.05 * ARMS.index(arm) + 0.01 * seed**2


def fake_hd95(arm, seed):
    return 5.0 - 0.5 * ARMS.index(arm) + 0.3 * seed


class FakeRunners:
    def __init__(self):
        self.calls = []

    def gan(self, config, runtime, cell_dir):
        self.calls.append(str(cell_dir))
        return {**write_fake_generator(cell_dir), "image_channels": 1, "mask_channels": 1}

    def segmenter(self, config, runtime, cell_dir):
        self.calls.append(str(cell_dir))
        arm, seed = config["arm"], config["seed"]
        metrics = {
            "dice": fake_dice(arm, seed),
            "hd95": fake_hd95(arm, seed),
            "dice_excluded_empty_truth": 0,
            "empty_truth_false_positive": 1,
            "hd95_excluded_empty_truth": 0,
            "hd95_excluded_empty_prediction": seed,
        }
        return {"metrics": metrics, "class_names": ["cyst", "hemangioma", "metastasis"]}

    def install(self, monkeypatch):
        monkeypatch.setitem(segcmp.SEGMENTATION_RUNNERS, "pair_gan", self.gan)
        monkeypatch.setitem(segcmp.SEGMENTATION_RUNNERS, "segmenter", self.segmenter)
        return self


def t_interval(values):
    x = np.asarray(values, dtype=float)
    half = scipy_stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def test_defaults_are_the_four_strategies_over_five_seeds_on_a_tiny_unet():
    assert SEGMENTATION_COMPARE_DEFAULTS["strategies"] == ARMS
    assert SEGMENTATION_COMPARE_DEFAULTS["seeds"] == 5
    assert SEGMENTATION_COMPARE_DEFAULTS["networks"] == ("tiny_unet",)


def test_cells_are_planned_in_dependency_order(tmp_path):
    ids = run_segmentation_compare(tmp_path, seeds=2, list_cells=True, verbose=False, **COUNTS)
    assert ids == [
        "phantoms/gan-pairs/g0",
        "phantoms/seg-tiny_unet/real/s0",
        "phantoms/seg-tiny_unet/real+synthetic/g0-s0",
        "phantoms/seg-tiny_unet/genmix/g0-s0",
        "phantoms/seg-tiny_unet/gemix/g0-s0",
        "phantoms/seg-tiny_unet/real/s1",
        "phantoms/seg-tiny_unet/real+synthetic/g0-s1",
        "phantoms/seg-tiny_unet/genmix/g0-s1",
        "phantoms/seg-tiny_unet/gemix/g0-s1",
    ]


def test_real_alone_needs_no_generator(tmp_path):
    ids = run_segmentation_compare(tmp_path, strategies=["real"], seeds=2, list_cells=True, verbose=False, **COUNTS)
    assert ids == ["phantoms/seg-tiny_unet/real/s0", "phantoms/seg-tiny_unet/real/s1"]


def test_the_table_holds_dice_and_hd95_intervals_and_paired_differences_against_real(tmp_path, monkeypatch):
    runners = FakeRunners().install(monkeypatch)
    result = run_segmentation_compare(tmp_path, **FAKE)
    assert len(runners.calls) == 1 + 4 * 3
    rows = read_csv(tmp_path / "summary.csv")
    plain = {(r["strategy"], r["metric"]): r for r in rows if not r["comparison"]}
    assert set(plain) == {(a, m) for a in ARMS for m in ("dice", "hd95")}
    for arm in ARMS:
        for metric, fn in (("dice", fake_dice), ("hd95", fake_hd95)):
            mean, lo, hi = t_interval([fn(arm, s) for s in range(3)])
            r = plain[(arm, metric)]
            assert r["n"] == "3"
            assert float(r["mean"]) == pytest.approx(mean)
            assert float(r["ci_lo"]) == pytest.approx(lo) and float(r["ci_hi"]) == pytest.approx(hi)
    paired = {(r["strategy"], r["metric"]): r for r in rows if r["comparison"] == "- real"}
    assert {a for a, _ in paired} == set(ARMS) - {"real"}
    for arm in ("real+synthetic", "genmix", "gemix"):
        diffs = [fake_dice(arm, s) - fake_dice("real", s) for s in range(3)]
        # the differences are constant across seeds: a zero-width interval at 0.05 * index
        assert float(paired[(arm, "dice")]["mean"]) == pytest.approx(np.mean(diffs))
        assert paired[(arm, "dice")]["excludes_zero"] == "True"
    md = (tmp_path / "summary.md").read_text()
    assert "# Segmentation strategy comparison" in md and "Paired differences: strategy - `real`" in md
    assert "`hd95_excluded_empty_prediction` = 12" in md  # 0 + 1 + 2 per arm, 4 arms
    for arm in ARMS:
        assert f"| {arm} | 3 |" in md
    cells = read_csv(tmp_path / "cells.csv")
    assert len(cells) == 12 and "empty_truth_false_positive" in cells[0]
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert result.files["summary.md"] == tmp_path / "summary.md"


def test_a_second_run_reuses_every_finished_cell(tmp_path, monkeypatch):
    FakeRunners().install(monkeypatch)
    run_segmentation_compare(tmp_path, **FAKE)
    again = FakeRunners().install(monkeypatch)
    result = run_segmentation_compare(tmp_path, **FAKE)
    assert again.calls == [] and result.ran == []


def test_a_changed_budget_is_refused_naming_the_field(tmp_path, monkeypatch):
    from gemix_monai.experiments.compare import CellConfigError

    FakeRunners().install(monkeypatch)
    run_segmentation_compare(tmp_path, strategies=["real"], **FAKE)
    with pytest.raises(CellConfigError, match="'epochs'"):
        run_segmentation_compare(tmp_path, strategies=["real"], epochs=1, **FAKE)


@pytest.mark.parametrize("strategy", ["pixel_mixup", "softmax_t"])
def test_a_strategy_that_does_not_apply_to_masks_is_refused(tmp_path, strategy):
    with pytest.raises(ValueError, match=f"strategy {strategy!r} is not offered for segmentation"):
        run_segmentation_compare(tmp_path, strategies=["real", strategy], list_cells=True, verbose=False, **COUNTS)


def test_a_classifier_network_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown segmentation network 'tiny'"):
        run_segmentation_compare(tmp_path, networks=["tiny"], list_cells=True, verbose=False, **COUNTS)


def test_cli_task_segmentation_lists_the_cells(tmp_path, capsys):
    from gemix_monai import cli

    code = cli.main(
        [
            "compare",
            "--task",
            "segmentation",
            "--out",
            str(tmp_path),
            "--seeds",
            "1",
            "--strategies",
            "real",
            "--list-cells",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.split() == ["phantoms/seg-tiny_unet/real/s0"]


def test_a_real_segmenter_cell_trains_and_scores_on_the_phantoms_masks(tmp_path):
    import json

    result = run_segmentation_compare(tmp_path, strategies=["real"], epochs=1, **FAKE | {"seeds": 2})
    assert result.ran == ["phantoms/seg-tiny_unet/real/s0", "phantoms/seg-tiny_unet/real/s1"]
    for cid in result.ran:
        res = json.loads((tmp_path / "cells" / cid / "result.json").read_text())
        report = json.loads((tmp_path / "cells" / cid / "test_report" / "metrics.json").read_text())
        assert res["metrics"] == report["metrics"] and res["num_test_samples"] == 6
        assert res["metrics"]["num_cases"] == 6 and 0.0 <= res["metrics"]["dice"] <= 1.0
        assert res["config"]["data"] == {"masks": "on"}
    rows = read_csv(tmp_path / "summary.csv")
    assert {(r["strategy"], r["metric"], r["n"]) for r in rows} == {("real", "dice", "2"), ("real", "hd95", "2")}


def test_a_pair_gan_cell_whose_generator_makes_images_only_fails_naming_it(tmp_path, monkeypatch):
    from gemix_monai.experiments import compare
    from gemix_monai.networks import Generator, get_preset

    def images_only_gan(config, runtime, cell_dir):
        path = Path(cell_dir) / "models" / "generator" / "generator.pt"
        path.parent.mkdir(parents=True)
        Generator(c_dim=3, class_names=["cyst", "hemangioma", "metastasis"], **get_preset("tiny")["G"]).save_checkpoint(
            path
        )
        return {"generator": "models/generator/generator.pt"}

    monkeypatch.setitem(compare.RUNNERS, "gan", images_only_gan)
    with pytest.raises(ValueError, match=r"generator of cell .*gan-pairs/g0 makes 1 channel\(s\).+1 mask channel"):
        run_segmentation_compare(tmp_path, cell="phantoms/gan-pairs/g0", **FAKE)


def test_every_strategy_runs_end_to_end_on_a_pair_gan_of_one_step(tmp_path):
    import json

    result = run_segmentation_compare(tmp_path, epochs=1, gan_kimg=0.016, **FAKE | {"seeds": 1})
    assert len(result.ran) == 5
    gan = json.loads((tmp_path / "cells" / "phantoms" / "gan-pairs" / "g0" / "result.json").read_text())
    assert gan["image_channels"] == 1 and gan["mask_channels"] == 1
    for arm in ("real+synthetic", "genmix", "gemix"):
        res = json.loads(
            (tmp_path / "cells" / "phantoms" / "seg-tiny_unet" / arm / "g0-s0" / "result.json").read_text()
        )
        assert res["strategy_info"]["mask_channels"] == 1 and 0.0 <= res["metrics"]["dice"] <= 1.0
    md = (tmp_path / "summary.md").read_text()
    assert all(f"| {arm} | 1 |" in md for arm in ARMS)
