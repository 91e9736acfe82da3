"""gemix-monai compare: cells, resume, refusal of changed settings, summary files, CLI and bundle config."""

import fcntl
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from _helpers import read_csv, write_fake_generator

from gemix_monai import cli
from gemix_monai.experiments import compare
from gemix_monai.experiments.compare import COMPARE_DEFAULTS, CellConfigError, run_compare

COUNTS = {"phantom_counts": (8, 4, 6), "val_counts": (2, 2, 2), "test_counts": (3, 3, 3)}
TINY = {
    "strategies": ["real", "pixel_mixup", "gemix"],
    "seeds": 2,
    "networks": ["tiny"],
    "gan_kimg": 0.016,
    "epochs": 1,
    "device": "cpu",
    "verbose": False,
    **COUNTS,
}
CLASSES = ["cyst", "hemangioma", "metastasis"]
ARMS = ("real", "pixel_mixup", "gemix")
EXPECTED_IDS = [
    "phantoms/gan/g0",
    "phantoms/tiny/real/s0",
    "phantoms/tiny/pixel_mixup/s0",
    "phantoms/tiny/gemix/g0-s0",
    "phantoms/tiny/real/s1",
    "phantoms/tiny/pixel_mixup/s1",
    "phantoms/tiny/gemix/g0-s1",
]


@pytest.fixture(scope="module")
def tiny_compare(tmp_path_factory):
    """One real tiny comparison (GAN one step, 1 epoch per classifier), shared by the read-only tests."""
    out = tmp_path_factory.mktemp("compare") / "run"
    t0 = time.perf_counter()
    result = run_compare(out, **TINY)
    return result, time.perf_counter() - t0


@pytest.fixture(scope="module")
def tiny_datalist(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(
        tmp_path_factory.mktemp("phantoms"),
        image_size=32,
        counts=(8, 4, 6),
        val_counts=(2, 2, 2),
        test_counts=(3, 3, 3),
    )


class FakeRunners:
    """Stand-ins for the GAN and classifier runners: count calls, optionally fail after ``fail_after`` calls."""

    def __init__(self, fail_after=None):
        self.calls: list[str] = []
        self.fail_after = fail_after

    def _count(self, cell_dir):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated interruption")
        self.calls.append(str(cell_dir))

    def gan(self, config, runtime, cell_dir):
        self._count(cell_dir)
        return write_fake_generator(cell_dir)

    def classifier(self, config, runtime, cell_dir):
        self._count(cell_dir)
        base = 0.5 + 0.1 * ARMS.index(config["strategy"]) + 0.01 * config["seed"]
        metrics = {m: base for m in compare.SUMMARY_METRICS} | {f"fnr/{c}": 1 - base for c in CLASSES}
        return {"metrics": metrics, "class_names": CLASSES, "undefined": []}

    def install(self, monkeypatch):
        monkeypatch.setitem(compare.RUNNERS, "gan", self.gan)
        monkeypatch.setitem(compare.RUNNERS, "classifier", self.classifier)
        return self


# ---------------------------------------------------------------------------------------------- the tiny run


def test_tiny_compare_writes_summary_and_cells(tiny_compare):
    result, seconds = tiny_compare
    out = result.out_dir
    assert [c.id for c in result.cells] == EXPECTED_IDS
    assert result.ran == EXPECTED_IDS
    for name in ("summary.md", "summary.csv", "summary.png", "cells.csv"):
        assert (out / name).is_file(), name
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cells = read_csv(out / "cells.csv")
    assert [r["cell_id"] for r in cells] == EXPECTED_IDS[1:]
    assert {(r["strategy"], r["seed"], r["gan_seed"]) for r in cells} == {
        ("real", "0", ""),
        ("real", "1", ""),
        ("pixel_mixup", "0", ""),
        ("pixel_mixup", "1", ""),
        ("gemix", "0", "0"),
        ("gemix", "1", "0"),
    }
    for r in cells:  # every metric of the test report, numbers as written in the cell's result.json
        res = json.loads((out / "cells" / r["cell_id"] / "result.json").read_text())
        report = json.loads((out / "cells" / r["cell_id"] / "test_report" / "metrics.json").read_text())
        assert res["metrics"] == report["metrics"] and report["num_samples"] == 9
        # null (undefined, e.g. the precision of a class the 1-epoch model never predicts) is "nan", never 0
        assert all(float(r[k]) == v if v is not None else r[k] == "nan" for k, v in res["metrics"].items())

    rows = read_csv(out / "summary.csv")
    metrics = list(compare.SUMMARY_METRICS) + [f"fnr/{c}" for c in CLASSES]
    plain = [r for r in rows if not r["comparison"]]
    assert [(r["strategy"], r["metric"]) for r in plain] == [(a, m) for a in ARMS for m in metrics]
    paired = {(r["strategy"], r["comparison"]) for r in rows if r["comparison"]}
    assert paired == {("pixel_mixup", "- real"), ("gemix", "- real"), ("gemix", "- pixel_mixup")}
    assert len(rows) == 3 * len(metrics) + 3 * len(metrics)
    assert all(r["n"] == "2" and r["network"] == "tiny" and r["defined"] == "True" for r in rows)
    f1 = {r["strategy"]: float(r["mean"]) for r in plain if r["metric"] == "macro_f1"}
    by_cell = {(r["strategy"], r["seed"]): float(r["macro_f1"]) for r in cells}
    for arm in ARMS:
        assert f1[arm] == pytest.approx((by_cell[(arm, "0")] + by_cell[(arm, "1")]) / 2)

    md = (out / "summary.md").read_text()
    assert "0.016 kimg" in md and "1 epochs" in md and "n = 2" in md
    for arm in ARMS:
        assert f"| {arm} | 2 |" in md
    assert "Paired differences: strategy - `real`" in md and "Paired differences: strategy - `pixel_mixup`" in md
    print(f"tiny compare: {seconds:.1f} s")


def test_resume_recomputes_only_the_unfinished_cells(tiny_compare, tmp_path, monkeypatch):
    src = tiny_compare[0].out_dir
    out = tmp_path / "run"
    shutil.copytree(src, out)
    for name in ("summary.md", "summary.csv", "summary.png", "cells.csv"):
        (out / name).unlink()
    lost = ["phantoms/tiny/gemix/g0-s1", "phantoms/tiny/real/s1"]  # "interrupted" before their result.json
    for cid in lost:
        (out / "cells" / cid / "result.json").unlink()
    kept = {cid: (out / "cells" / cid / "result.json").stat().st_mtime_ns for cid in EXPECTED_IDS if cid not in lost}
    calls = []
    real_runner = compare.run_classifier_cell

    def counting(config, runtime, cell_dir):
        calls.append(Path(cell_dir).relative_to(out / "cells").as_posix())
        return real_runner(config, runtime, cell_dir)

    monkeypatch.setitem(compare.RUNNERS, "classifier", counting)
    monkeypatch.setitem(compare.RUNNERS, "gan", lambda *a: pytest.fail("the finished GAN cell was rerun"))
    result = run_compare(out, **TINY)
    assert sorted(calls) == sorted(lost) and sorted(result.ran) == sorted(lost)
    assert {cid: (out / "cells" / cid / "result.json").stat().st_mtime_ns for cid in kept} == kept
    assert len(read_csv(out / "cells.csv")) == 6
    assert all(r["n"] == "2" for r in read_csv(out / "summary.csv"))


def test_interrupted_run_continues_and_a_finished_run_only_rebuilds_the_summary(tmp_path, monkeypatch):
    out = tmp_path / "run"
    FakeRunners(fail_after=3).install(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_compare(out, **TINY)
    finished = sorted(p.parent.relative_to(out / "cells").as_posix() for p in (out / "cells").rglob("result.json"))
    assert finished == sorted(EXPECTED_IDS[:3])
    assert not (out / "summary.md").exists()
    mtimes = {cid: (out / "cells" / cid / "result.json").stat().st_mtime_ns for cid in finished}

    runners = FakeRunners().install(monkeypatch)
    result = run_compare(out, **TINY)
    assert result.ran == EXPECTED_IDS[3:] and len(runners.calls) == 4
    assert {cid: (out / "cells" / cid / "result.json").stat().st_mtime_ns for cid in finished} == mtimes
    assert len(read_csv(out / "cells.csv")) == 6

    (out / "summary.md").unlink()
    again = FakeRunners().install(monkeypatch)
    result = run_compare(out, **TINY)
    assert result.ran == [] and again.calls == []
    assert (out / "summary.md").is_file()
    rows = read_csv(out / "summary.csv")
    gemix_f1 = next(
        r for r in rows if r["strategy"] == "gemix" and r["metric"] == "macro_f1" and r["comparison"] == "- real"
    )
    assert float(gemix_f1["mean"]) == pytest.approx(0.2) and gemix_f1["excludes_zero"] == "True"


# ---------------------------------------------------------------------------------------------- CLI, refusals


def _cli_args(out, datalist, *extra):
    return [
        "compare",
        "--out",
        str(out),
        "--datalist",
        str(datalist),
        "--strategies",
        "real",
        "gemix",
        "--seeds",
        "2",
        "--networks",
        "tiny",
        "--gan-kimg",
        "0.016",
        "--epochs",
        "1",
        "--device",
        "cpu",
        *extra,
    ]


def test_cell_runs_exactly_that_cell_and_list_cells_is_in_dependency_order(
    tmp_path, tiny_datalist, monkeypatch, capsys
):
    out = tmp_path / "run"
    runners = FakeRunners().install(monkeypatch)
    assert cli.main(_cli_args(out, tiny_datalist, "--list-cells")) == 0
    ids = capsys.readouterr().out.split()
    tag = tiny_datalist.parent.name
    assert ids == [
        f"{tag}/gan/g0",
        f"{tag}/tiny/real/s0",
        f"{tag}/tiny/gemix/g0-s0",
        f"{tag}/tiny/real/s1",
        f"{tag}/tiny/gemix/g0-s1",
    ]
    assert not out.exists() and runners.calls == []

    with pytest.raises(RuntimeError, match=f"needs cell {tag}/gan/g0 first"):
        cli.main(_cli_args(out, tiny_datalist, "--cell", ids[4]))
    assert cli.main(_cli_args(out, tiny_datalist, "--cell", ids[0])) == 0
    assert cli.main(_cli_args(out, tiny_datalist, "--cell", ids[4])) == 0
    assert [Path(c).relative_to(out / "cells").as_posix() for c in runners.calls] == [ids[0], ids[4]]
    finished = sorted(p.parent.relative_to(out / "cells").as_posix() for p in (out / "cells").rglob("result.json"))
    assert finished == sorted([ids[0], ids[4]])
    assert not (out / "summary.md").exists()
    cell = json.loads((out / "cells" / ids[4] / "cell.json").read_text())
    assert cell["config"]["epochs"] == 1 and cell["config"]["gan"]["kimg"] == 0.016 and cell["config"]["seed"] == 1
    assert cell["deps"] == [ids[0]]

    assert cli.main(_cli_args(out, tiny_datalist, "--cell", ids[4])) == 0  # finished: not recomputed
    assert len(runners.calls) == 2
    with pytest.raises(ValueError, match="unknown cell"):
        cli.main(_cli_args(out, tiny_datalist, "--cell", "nope/gan/g9", "--verbose"))


def test_changed_budget_is_refused_naming_the_field(tmp_path, tiny_datalist, monkeypatch):
    out = tmp_path / "run"
    runners = FakeRunners().install(monkeypatch)
    assert cli.main(_cli_args(out, tiny_datalist)) == 0
    assert len(runners.calls) == 5
    with pytest.raises(CellConfigError, match="'epochs' was 1 .* now 2"):
        cli.main(_cli_args(out, tiny_datalist, "--epochs", "2", "--verbose"))  # the last --epochs wins
    with pytest.raises(CellConfigError, match="'gan.kimg'"):
        cli.main(_cli_args(out, tiny_datalist, "--gan-kimg", "0.5", "--verbose"))
    with pytest.raises(CellConfigError, match="'strategy_kwargs.synthetic_ratio'"):
        _edit_kwargs_and_rerun(out, tiny_datalist)
    assert len(runners.calls) == 5  # nothing ran after the refusals


def _edit_kwargs_and_rerun(out, datalist):
    """Edit one finished cell's recorded kwargs, as if it had been made with another setting."""
    cid = f"{datalist.parent.name}/tiny/gemix/g0-s0"
    path = out / "cells" / cid / "cell.json"
    meta = json.loads(path.read_text())
    meta["config"]["strategy_kwargs"] = {"synthetic_ratio": 0.5}
    path.write_text(json.dumps(meta))
    run_compare(
        out,
        datalist=datalist,
        strategies=["real", "gemix"],
        seeds=2,
        networks=["tiny"],
        gan_kimg=0.016,
        epochs=1,
        device="cpu",
        verbose=False,
    )


def test_unknown_strategy_variant_or_keyword_is_refused_naming_it(tmp_path, tiny_datalist):
    with pytest.raises(ValueError, match="'mixmatch'"):
        cli.main(
            [
                "compare",
                "--out",
                str(tmp_path),
                "--datalist",
                str(tiny_datalist),
                "--strategies",
                "real",
                "mixmatch",
                "--verbose",
            ]
        )
    with pytest.raises(ValueError, match="'mixmatch'"):
        run_compare(tmp_path, datalist=tiny_datalist, variants=["x=mixmatch:{}"], list_cells=True, verbose=False)
    with pytest.raises(ValueError, match="synthetic_ration"):
        run_compare(
            tmp_path,
            datalist=tiny_datalist,
            variants=["g=gemix:{'synthetic_ration': 1}"],
            list_cells=True,
            verbose=False,
        )
    with pytest.raises(ValueError, match="'vgg'"):
        run_compare(tmp_path, datalist=tiny_datalist, networks=["vgg"], list_cells=True, verbose=False)
    assert not any(tmp_path.glob("cells"))


def test_variants_are_their_own_arms_with_kwargs_and_class_weighting(tmp_path, tiny_datalist):
    arm = compare.parse_variant("softmax_t@T0.5=softmax_t:{'sampler_kwargs': {'temperature': 0.5}}")
    assert (arm.name, arm.strategy, arm.kwargs) == (
        "softmax_t@T0.5",
        "softmax_t",
        {"sampler_kwargs": {"temperature": 0.5}},
    )
    ids = run_compare(
        tmp_path,
        datalist=tiny_datalist,
        strategies=["real"],
        seeds=1,
        networks=["tiny"],
        variants=["gemix@ratio0.5=gemix:{'synthetic_ratio': 0.5}", "real@cw=real:{'class_weighted': True}"],
        list_cells=True,
        verbose=False,
    )
    tag = tiny_datalist.parent.name
    assert ids == [f"{tag}/gan/g0", f"{tag}/tiny/real/s0", f"{tag}/tiny/gemix@ratio0.5/g0-s0", f"{tag}/tiny/real@cw/s0"]
    with pytest.raises(ValueError, match="strategy name"):
        run_compare(tmp_path, datalist=tiny_datalist, variants=["gemix=gemix:{}"], list_cells=True, verbose=False)


def test_a_locked_cell_waits_and_is_not_run_twice(tmp_path, tiny_datalist, monkeypatch):
    out = tmp_path / "run"
    runners = FakeRunners().install(monkeypatch)
    args = dict(datalist=tiny_datalist, strategies=["real"], seeds=1, networks=["tiny"], device="cpu", verbose=False)
    cid = run_compare(out, list_cells=True, **args)[0]
    cell_dir = out / "cells" / cid
    cell_dir.mkdir(parents=True)
    holder = open(cell_dir / ".lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX)  # "another process" is running this cell
    thread = threading.Thread(target=run_compare, args=(out,), kwargs={"cell": cid, **args})
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive() and runners.calls == []
    (cell_dir / "result.json").write_text(json.dumps({"metrics": {}, "class_names": CLASSES}))  # it finishes
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    thread.join(30)
    assert not thread.is_alive() and runners.calls == []


def test_bundle_config_has_the_same_defaults_and_runs(tmp_path, tiny_datalist, capsys):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(cli.bundle_dir() / "configs" / "compare.json"))
    for key, value in COMPARE_DEFAULTS.items():
        got = parser.get(key)
        assert (list(got) if isinstance(value, tuple) else got) == (
            list(value) if isinstance(value, tuple) else value
        ), key
    cli.run_bundle_config(
        "compare.json",
        {
            "out": str(tmp_path / "b"),
            "datalist": str(tiny_datalist),
            "list_cells": True,
            "networks": ["tiny"],
            "seeds": 1,
            "strategies": ["real", "gemix"],
        },
        bundle_logging=False,
    )
    assert capsys.readouterr().out.split()[-3:] == [
        f"{tiny_datalist.parent.name}/gan/g0",
        f"{tiny_datalist.parent.name}/tiny/real/s0",
        f"{tiny_datalist.parent.name}/tiny/gemix/g0-s0",
    ]


def test_one_seed_reports_undefined_intervals_not_zero_width(tmp_path, tiny_datalist, monkeypatch):
    FakeRunners().install(monkeypatch)
    out = tmp_path / "run"
    run_compare(
        out,
        datalist=tiny_datalist,
        strategies=["real", "gemix"],
        seeds=1,
        networks=["tiny"],
        device="cpu",
        verbose=False,
    )
    rows = read_csv(out / "summary.csv")
    assert rows and all(r["n"] == "1" and r["defined"] == "False" and r["ci_lo"] == "nan" for r in rows)
    assert all(r["excludes_zero"] == "False" for r in rows if r["comparison"])
    md = (out / "summary.md").read_text()
    assert "interval undefined" in md and " ± " not in md.split("## Network")[1]


def test_a_teacher_variant_depends_on_the_real_classifier_of_its_seed(tmp_path, tiny_datalist):
    from gemix_monai.experiments.compare import run_compare

    ids = run_compare(
        tmp_path,
        datalist=tiny_datalist,
        strategies=["gemix"],
        seeds=2,
        gan_kimg=0.016,
        epochs=1,
        variants=["gemix@teacher=gemix:{'teacher': 'real', 'teacher_mode': 'filter'}"],
        list_cells=True,
        verbose=False,
    )
    tag = tiny_datalist.parent.name
    assert f"{tag}/tiny/real/s1" in ids  # planned for the teacher even though `real` was not asked for
    assert ids.index(f"{tag}/tiny/real/s1") < ids.index(f"{tag}/tiny/gemix@teacher/g0-s1")


def test_every_result_records_its_code_state_and_the_summary_names_a_mix(tmp_path):
    """A long run that spans code changes must say so in the summary instead of mixing the cells silently."""
    from gemix_monai import __version__

    state = compare.code_state()
    assert state["gemix_monai"] == __version__ and set(state) == {"gemix_monai", "git"}
    cells = [compare.Cell(f"d/tiny/real/s{i}", "classifier", {}, {}, ()) for i in range(3)]
    for cell, commit in zip(cells, ["aaa", "aaa", "bbb"]):
        cell.dir(tmp_path).mkdir(parents=True)
        code = {"gemix_monai": "0.1.0", "git": commit}
        (cell.dir(tmp_path) / "result.json").write_text(json.dumps({"id": cell.id, "code": code}))
    line = compare.code_states_line(tmp_path, cells)
    assert "2 code states" in line and "aaa (2 cells)" in line and "bbb (1 cells)" in line
    assert compare.code_states_line(tmp_path, cells[:2]) == "- code: gemix-monai 0.1.0 at aaa"
    (cells[2].dir(tmp_path) / "result.json").unlink()
    assert "not recorded" not in compare.code_states_line(tmp_path, cells)


class SpreadRunners(FakeRunners):
    """Two seeds whose FNRs lie far apart (the t-interval of n = 2 leaves [0, 1]) and a hemangioma FNR that is
    undefined (null: no hemangioma in the test split) for gemix's seed 1."""

    FNR = {("real", 0): 0.9, ("real", 1): 0.172, ("gemix", 0): 0.1, ("gemix", 1): 0.3}

    def classifier(self, config, runtime, cell_dir):
        out = super().classifier(config, runtime, cell_dir)
        key = (config["strategy"], config["seed"])
        out["metrics"] |= {"fnr/cyst": self.FNR[key], "fnr/hemangioma": None if key == ("gemix", 1) else 0.25}
        out["undefined"] = ["fnr/hemangioma"] if key == ("gemix", 1) else []
        if key == ("real", 1):  # a result.json of before undefined became null: 0 and the name listed
            out["metrics"]["fnr/metastasis"] = 0.0
            out["undefined"] = ["fnr/metastasis"]
        return out


def test_summary_clips_intervals_to_the_metric_range_and_leaves_undefined_values_out(
    tmp_path, tiny_datalist, monkeypatch
):
    SpreadRunners().install(monkeypatch)
    out = tmp_path / "run"
    run_compare(
        out,
        datalist=tiny_datalist,
        strategies=["real", "gemix"],
        seeds=2,
        networks=["tiny"],
        device="cpu",
        verbose=False,
    )
    rows = {(r["strategy"], r["comparison"], r["metric"]): r for r in read_csv(out / "summary.csv")}
    real = rows[("real", "", "fnr/cyst")]  # 0.536 [-4.089, 5.161] before the cut
    assert (real["n"], real["mean"], real["ci_lo"], real["ci_hi"]) == ("2", repr(0.536), "0.0", "1.0")
    assert float(real["half_width"]) == pytest.approx(4.625058523967588, rel=1e-12)  # the computed interval's
    assert (real["clipped"], real["n_too_small"], real["defined"]) == ("True", "True", "True")
    diff = rows[("gemix", "- real", "fnr/cyst")]  # differences -0.8 and 0.128: -0.336 ± 5.896, cut at -1 and 1
    assert (diff["ci_lo"], diff["ci_hi"], diff["clipped"]) == ("-1.0", "1.0", "True")
    inside = rows[("real", "", "accuracy")]  # 0.5 and 0.51: inside [0, 1], not cut
    assert inside["clipped"] == "False" and inside["n_too_small"] == "True"
    # the undefined hemangioma FNR of gemix seed 1 is left out, never averaged as 0
    hem = rows[("gemix", "", "fnr/hemangioma")]
    assert (hem["n"], hem["mean"], hem["defined"]) == ("1", "0.25", "False")
    assert rows[("gemix", "- real", "fnr/hemangioma")]["n"] == "1"
    assert rows[("real", "", "fnr/hemangioma")]["n"] == "2"
    old_style = rows[("real", "", "fnr/metastasis")]  # the listed 0 is undefined too: 0.5 of seed 0 alone
    assert (old_style["n"], old_style["mean"]) == ("1", "0.5")
    cells = {(r["strategy"], r["seed"]): r for r in read_csv(out / "cells.csv")}
    assert cells[("gemix", "1")]["fnr/hemangioma"] == "nan" and cells[("gemix", "0")]["fnr/hemangioma"] == "0.25"
    md = (out / "summary.md").read_text()
    assert "| real | 2 | 0.5050 ± 0.0635 [0.4415, 0.5685] (n=2 too small) |" in md
    assert "0.5360 [0.0000, 1.0000] (clipped; n=2 too small)" in md
    assert "0.2500 (interval undefined)" in md


@pytest.mark.slow
def test_jobs_run_the_cells_in_worker_processes_that_use_this_checkout(tmp_path, tiny_datalist):
    """--jobs 2: each cell runs in `python -m gemix_monai.experiments.compare --cell-dir ...`, found through the
    package's explicit runner registry, and the summary covers every cell."""
    from gemix_monai.experiments.compare import CompareRunOptions, SubprocessExecutor, compare_settings

    settings = compare_settings(strategies=["real"], seeds=2, networks=["tiny"], epochs=1)
    options = CompareRunOptions(datalist=str(tiny_datalist), jobs=2, device="cpu", verbose=False)
    assert isinstance(compare.make_executor(options.jobs), SubprocessExecutor)
    result = run_compare(tmp_path / "run", settings, options)
    tag = tiny_datalist.parent.name
    assert sorted(result.ran) == [f"{tag}/tiny/real/s0", f"{tag}/tiny/real/s1"]
    for cid in result.ran:
        assert json.loads((tmp_path / "run" / "cells" / cid / "result.json").read_text())["kind"] == "classifier"
    assert [r["cell_id"] for r in read_csv(tmp_path / "run" / "cells.csv")] == sorted(result.ran)
