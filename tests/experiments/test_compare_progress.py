"""The driver's progress lines of a comparison (docs/experiments.md, "Progress"): counts, ETA by cell kind, a line
while a long cell runs, and each in-process cell's log in its folder."""

import logging
import re

import pytest

from gemix_monai.experiments.compare.cells import Cell
from gemix_monai.experiments.compare.progress import CellProgress, duration, estimate_left
from gemix_monai.experiments.compare.runner import InProcessExecutor, SubprocessExecutor


def test_estimate_left_uses_each_kinds_mean_the_time_already_run_and_the_capacity():
    seconds = {"gan": [100.0], "classifier": [10.0, 30.0]}
    assert estimate_left([("classifier", None)], {}, 1) is None
    assert estimate_left([("classifier", None), ("classifier", 5.0)], seconds, 1) == pytest.approx(20 + 15)
    assert estimate_left([("gan", 40.0), ("classifier", None)], seconds, 2) == pytest.approx((60 + 20) / 2)
    assert estimate_left([("segmenter", None)], seconds, 1) == pytest.approx(140 / 3)  # unseen kind: mean of all
    assert estimate_left([("classifier", 99.0)], seconds, 1) == 0.0  # over its mean: never negative
    assert [duration(s) for s in (42, 187, 3725)] == ["42 s", "3 min 07 s", "1 h 02 min"]


def _cells(n):
    return [Cell(f"d/tiny/real/s{i}", "fake", {"seed": i}, {}) for i in range(n)]


def test_progress_counts_eta_and_a_line_for_a_running_cell(tmp_path):
    lines = []
    cells = _cells(3)
    p = CellProgress(cells, [cells[0].id], out=tmp_path, say=lines.append, heartbeat_s=0.0)
    assert p.counts() == (1, 0, 2, 0) and p.eta() == "ETA after the first cell"
    p.started(cells[1])
    assert lines[-1].startswith("[1/3] 1 running, 1 pending; ETA after the first cell | d/tiny/real/s1 started")
    assert str(tmp_path / "cells" / "d/tiny/real/s1" / "log.txt") in lines[-1]
    p.finished(cells[1], 12.0)
    assert lines[-1] == "[2/3] 0 running, 1 pending; ETA 12 s | d/tiny/real/s1 done in 12.0 s"
    p.started(cells[2])
    p.heartbeat()
    assert re.search(r"\| running: d/tiny/real/s2 for \d+ s$", lines[-1])
    p.finished(cells[2], 1.0, ok=False, note="exit code 1")
    assert lines[-1] == "[2/3] 0 running, 0 pending, 1 failed; ETA 0 s | d/tiny/real/s2 FAILED (exit code 1)"


def test_in_process_cells_print_progress_and_write_their_log(tmp_path, capsys):
    log = logging.getLogger("gemix_monai.fake_cell")

    def fake(config, runtime, cell_dir):
        log.warning("training seed %s", config["seed"])
        return {"metrics": {"accuracy": 1.0}}

    cells = _cells(2)
    ran = InProcessExecutor().run(cells, tmp_path, {"fake": fake}, verbose=True, quiet=False)
    out = capsys.readouterr().out.splitlines()
    assert ran == [c.id for c in cells]
    assert [line.split(" | ")[1].split(" (")[0] for line in out] == [
        "d/tiny/real/s0 started",
        "d/tiny/real/s0 done in " + out[1].split("done in ")[1],
        "d/tiny/real/s1 started",
        "d/tiny/real/s1 done in " + out[3].split("done in ")[1],
    ]
    assert out[0].startswith("[0/2] 1 running, 1 pending; ETA after the first cell")
    assert out[2].startswith("[1/2] 1 running, 0 pending; ETA ")
    for c in cells:
        assert f"training seed {c.config['seed']}" in (c.dir(tmp_path) / "log.txt").read_text(encoding="utf-8")
    # a second invocation finds everything finished: nothing runs, nothing is printed
    assert InProcessExecutor().run(cells, tmp_path, {"fake": fake}, verbose=True, quiet=False) == []
    assert capsys.readouterr().out == ""


def test_a_failing_in_process_cell_is_reported_and_raised(tmp_path, capsys):
    def broken(config, runtime, cell_dir):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        InProcessExecutor().run(_cells(1), tmp_path, {"fake": broken}, verbose=True, quiet=False)
    assert "d/tiny/real/s0 FAILED (log: " in capsys.readouterr().out


def test_subprocess_executor_rejects_a_bad_job_count():
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        SubprocessExecutor(0)
