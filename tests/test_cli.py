"""The ``gemix-monai`` command line: subcommands over the bundle configs, and the demo's report directory."""

import json
import subprocess
import sys

import pytest

from gemix_monai import cli

SUBCOMMANDS = ("phantoms", "train-gan", "generate", "train-classifier", "train-segmenter", "evaluate", "demo")


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "gemix_monai.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    assert "usage: gemix-monai " + name in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=3", ("epochs", 3)),
        ("hu_window=None", ("hu_window", None)),
        ("hu_window=lung", ("hu_window", "lung")),
        ("strategy_kwargs={'synthetic_ratio': 1.0}", ("strategy_kwargs", {"synthetic_ratio": 1.0})),
        ("network_name=resnet18", ("network_name", "resnet18")),
    ],
)
def test_set_values_parse_as_python_literals_or_strings(text, expected):
    assert cli.parse_override(text) == expected


@pytest.mark.parametrize("text", ["epochs", "=3"])
def test_set_without_key_and_value_is_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        cli.parse_override(text)


def test_subcommand_options_become_config_overrides(tmp_path):
    args = cli.build_parser().parse_args(
        [
            "train-classifier",
            "--bundle-root",
            str(tmp_path),
            "--datalist",
            "d.json",
            "--strategy",
            "gemix",
            "--epochs",
            "2",
            "--set",
            "strategy_kwargs={'synthetic_ratio': 1.0}",
        ]
    )
    overrides = cli._overrides(args)
    assert overrides["bundle_root"] == str(tmp_path.resolve())
    assert overrides["strategy"] == "gemix" and overrides["max_epochs"] == 2 and "epochs" not in overrides
    assert overrides["datalist"].endswith("d.json") and overrides["datalist"].startswith("/")
    assert overrides["strategy_kwargs"] == {"synthetic_ratio": 1.0}
    assert "dataset_dir" not in overrides and "seed" not in overrides


def test_dataset_dir_and_datalist_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train-gan", "--dataset-dir", "a", "--datalist", "b.json"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_phantoms_subcommand_writes_a_datalist(tmp_path):
    assert cli.main(["phantoms", "--out", str(tmp_path), "--counts", "2", "1", "1"]) == 0
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert datalist["class_names"] == ["cyst", "hemangioma", "metastasis"]
    assert len(datalist["training"]) == 4


def test_unknown_strategy_from_the_command_line_names_the_choices(tmp_path, capsys):
    rc = cli.main(["train-classifier", "--bundle-root", str(tmp_path), "--strategy", "mixmatch"])
    err = capsys.readouterr().err
    assert rc == 2 and "mixmatch" in err and "pixel_mixup" in err
    assert len(err.strip().splitlines()) <= 3 and "Traceback" not in err  # one readable error, no chained traceback


def test_verbose_shows_the_full_traceback(tmp_path):
    with pytest.raises(Exception) as info:
        cli.main(["train-classifier", "--bundle-root", str(tmp_path), "--strategy", "mixmatch", "--verbose"])
    chain, exc = [], info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert "mixmatch" in "\n".join(chain)


def test_bundle_dir_override_must_point_at_a_bundle(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMIX_BUNDLE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        cli.bundle_dir()


def test_demo_writes_the_report_directory(tmp_path, capsys):
    import logging

    from gemix_monai.demo import run_demo

    result = run_demo(
        tmp_path / "demo",
        gan_kimg=0.016,
        epochs=1,
        phantom_counts=(8, 4, 6),
        val_counts=(2, 2, 2),
        test_counts=(3, 3, 3),
        quiet=True,
        seeds=2,
    )
    assert not logging.getLogger("monai.handlers.StatsHandler").disabled  # quiet mode restores the loggers
    report = result.report_dir
    table = (report / "metrics_table.md").read_text()
    for strategy in ("real", "pixel_mixup", "gemix"):
        assert f"| {strategy} |" in table
        assert (report / strategy / "confusion_matrix.png").is_file()
        assert json.loads((report / strategy / "metrics.json").read_text())["num_samples"] == 9
    assert (report / "gan_samples.png").is_file()
    assert set(result.metrics) == {"real", "pixel_mixup", "gemix"}
    summary = json.loads((report / "summary.json").read_text())
    assert summary["settings"]["strategies"] == ["real", "pixel_mixup", "gemix"]
    assert all((result.out_dir / f).is_file() for f in summary["files"])
    assert set(summary["step_seconds"]) == set(summary["step_cpu_seconds"])
    # each step and the total are rounded to 0.1 s apart: the sum may exceed the total by the rounding
    assert sum(summary["step_seconds"].values()) <= summary["seconds"] + 0.05 * len(summary["step_seconds"])
    printed = capsys.readouterr().out
    assert "files written:" in printed and str(report / "metrics_table.md") in printed
    # two seeds per strategy: intervals and paired differences, printed and written
    intervals = (report / "intervals.md").read_text()
    assert "over 2 seed(s)" in intervals and "## Paired difference: strategy − real" in intervals
    assert "| gemix |" in intervals and "Paired difference" in printed
    assert json.loads((report / "gemix" / "seed1" / "metrics.json").read_text())["num_samples"] == 9
    assert summary["settings"]["seeds"] == 2
    assert "(n=2 too small)" in intervals  # two seeds: every interval marked


def _fake_reports(tmp_path, fnr):
    """metrics.json files of strategy/seed reports: fixed scores, the given FNRs of class "lesion" (None: undefined)."""
    reports = {}
    for (s, k), value in fnr.items():
        d = tmp_path / s / f"seed{k}"
        d.mkdir(parents=True)
        metrics = {"macro_f1": 0.6 + 0.1 * k, "balanced_accuracy": 0.7, "macro_auroc": 0.8}
        metrics |= {"fnr/normal": 0.1, "fnr/lesion": value}
        payload = {"class_names": ["normal", "lesion"], "metrics": metrics, "num_samples": 9}
        (d / "metrics.json").write_text(json.dumps(payload))
        reports[s, k] = d
    return reports


def test_demo_intervals_are_cut_at_the_metric_range_and_skip_undefined_values(tmp_path):
    from gemix_monai.demo import write_interval_table, write_metrics_table

    fnr = {("real", 0): 0.9, ("real", 1): 0.172, ("gemix", 0): 0.5, ("gemix", 1): None}
    reports = _fake_reports(tmp_path, fnr)
    lines = write_interval_table(reports, ["real", "gemix"], 2, tmp_path).read_text().splitlines()
    real = next(line for line in lines if line.startswith("| real |"))
    assert real.endswith("| 0.100 [0.100, 0.100] (n=2 too small) | 0.536 [0.000, 1.000] (clipped; n=2 too small) |")
    gemix = next(line for line in lines if line.startswith("| gemix |"))
    assert gemix.endswith("| 0.500 (n=1: no interval) |")  # seed 1's undefined FNR left out, not averaged as 0
    assert lines[-1].endswith("| -0.400 (n=1: no interval) |")  # one pair where both are defined
    _, csv_path, rows = write_metrics_table({"real": reports["real", 0], "gemix": reports["gemix", 1]}, tmp_path)
    assert rows["gemix"]["fnr/lesion"] is None and rows["real"]["fnr/lesion"] == 0.9
    table = (tmp_path / "metrics_table.md").read_text()
    assert "| gemix | 0.7000 | 0.7000 | 0.8000 | 0.1000 | undefined |" in table and "never 0" in table
    assert csv_path.read_text().splitlines()[-1].endswith(",nan")


def test_demo_refuses_unknown_strategies(tmp_path):
    from gemix_monai.demo import run_demo

    with pytest.raises(ValueError, match="mixmatch"):
        run_demo(tmp_path, strategies=["real", "mixmatch"])


def test_demo_and_cli_share_bundle_helpers_without_importing_each_other():
    code = (
        "import sys, gemix_monai.demo, gemix_monai.bundle as b; assert 'gemix_monai.cli' not in sys.modules; "
        "import gemix_monai.cli as c; assert c.run_bundle_config is b.run_bundle_config"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_segmenter_refuses_a_strategy_that_does_not_apply_to_masks(tmp_path, capsys):
    rc = cli.main(["train-segmenter", "--bundle-root", str(tmp_path), "--strategy", "pixel_mixup"])
    err = capsys.readouterr().err
    assert rc == 2 and "'pixel_mixup' is not offered for segmentation" in err and "real+synthetic" in err
