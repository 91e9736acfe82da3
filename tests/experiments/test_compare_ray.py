"""``compare --executor ray`` (docs/cluster.md) on a real Ray cluster of this machine, bound to 127.0.0.1 with 2 CPUs
(two cells at a time, each in its own worker process): the summary equals the local executor's cell for cell; killed
workers are retried and give the same numbers; Ctrl-C cancels the cells in flight and a re-run resumes; a second
run recomputes nothing. Without a cluster: a missing ``ray`` and wrong options give one line naming the option."""

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from _helpers import read_csv

import gemix_monai
from gemix_monai import cli

# One Ray cluster for the module: under `pytest -n 2` (CI) every test here runs on the same worker
# (pyproject's --dist loadgroup), so the cluster and the local reference run are made once.
pytestmark = pytest.mark.xdist_group("ray_cluster")

# Read by Ray when it is first imported in a process (here, or in the driver subprocess below, which inherits them):
# keep 127.0.0.1 as the cluster's address (Ray otherwise swaps it for the machine's network address), and no token
# authentication, which Ray switches on by itself when some earlier local run left a ~/.ray/auth_token behind
# (docs/cluster.md, "A cluster on one machine"). No other test module imports ray.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_AUTH_MODE"] = "disabled"

try:
    import ray  # noqa: F401

    RAY_IMPORT_ERROR = None
except ImportError as e:  # the tests that need no cluster still run
    RAY_IMPORT_ERROR = e

requires_ray = pytest.mark.skipif(
    RAY_IMPORT_ERROR is not None,
    reason=f"ray cannot be imported ({RAY_IMPORT_ERROR}); it comes with the test extra: pip install -e '.[test]'",
)
ROOT = Path(gemix_monai.__file__).resolve().parents[1]
ATTEMPTS = "ray_attempts.jsonl"


@pytest.fixture(scope="module")
def datalist(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset

    return generate_phantom_dataset(
        tmp_path_factory.mktemp("phantoms"),
        image_size=32,
        counts=(8, 4, 6),
        val_counts=(2, 2, 2),
        test_counts=(3, 3, 3),
    )


def _args(out, datalist, *extra):
    """A tiny comparison: 2 strategies x 2 seeds, one GAN of 16 steps (a checkpoint every 4), classifiers of 2
    epochs: 5 cells."""
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
        "0.256",
        "--epochs",
        "2",
        "--device",
        "cpu",
        *extra,
    ]


def _ids(tag):
    return [
        f"{tag}/gan/g0",
        f"{tag}/tiny/real/s0",
        f"{tag}/tiny/gemix/g0-s0",
        f"{tag}/tiny/real/s1",
        f"{tag}/tiny/gemix/g0-s1",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head --block`` on 127.0.0.1 with 2 CPUs, its own ports and temp folder; the workers import this
    checkout (PYTHONPATH). Stopped at the end of the module: SIGTERM to that process, then its process group."""
    if RAY_IMPORT_ERROR is not None:
        pytest.skip(f"ray cannot be imported ({RAY_IMPORT_ERROR})")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths live under it
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    log = open(Path(temp) / "ray_start.log", "w")
    cmd = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--ray-client-server-port={_free_port()}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--object-store-memory=100000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (Path(temp) / "ray_start.log").read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start failed:\n" + (Path(temp) / "ray_start.log").read_text()[-3000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever is left of the processes this fixture started
        head.wait(10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _run(argv) -> tuple[int, str]:
    """``gemix-monai`` in this process; its exit code and what it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(list(argv))
    return rc, buf.getvalue()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, datalist):
    """The local executor's run (in this process, one torch thread as every Ray worker here has)."""
    out = tmp_path_factory.mktemp("local") / "run"
    t0 = time.perf_counter()
    rc, _ = _run(_args(out, datalist))
    assert rc == 0
    print(f"local run: {time.perf_counter() - t0:.1f} s")
    return out


def _records(cell_dir: Path, event: str = "start") -> list[dict]:
    path = cell_dir / ATTEMPTS
    lines = path.read_text().splitlines() if path.is_file() else []
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _same_numbers(out: Path, reference: Path) -> None:
    """summary.csv identical byte for byte; cells.csv identical except the seconds a cell took."""
    assert (out / "summary.csv").read_bytes() == (reference / "summary.csv").read_bytes()
    mine, theirs = read_csv(out / "cells.csv"), read_csv(reference / "cells.csv")
    assert len(mine) == len(theirs) == 4
    for a, b in zip(mine, theirs):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def _mtimes(out: Path, ids) -> dict:
    return {cid: (out / "cells" / cid / "result.json").stat().st_mtime_ns for cid in ids}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- on the cluster


@pytest.mark.slow
@requires_ray
def test_ray_run_equals_the_local_run_and_a_second_run_recomputes_nothing(cluster, local_run, datalist, tmp_path):
    out = tmp_path / "ray"
    t0 = time.perf_counter()
    rc, text = _run(_args(out, datalist, "--executor", "ray", "--ray-address", cluster))
    seconds = time.perf_counter() - t0
    assert rc == 0, text
    _same_numbers(out, local_run)
    ids = _ids(datalist.parent.name)
    for cid in ids:  # each cell ran once, in a Ray worker process that imported this checkout, one torch thread
        cell_dir = out / "cells" / cid
        (start,), (end,) = _records(cell_dir), _records(cell_dir, "end")
        assert start["pid"] != os.getpid() and start["node_ip"] == "127.0.0.1"
        assert Path(start["gemix_monai"]).resolve() == ROOT / "gemix_monai" / "__init__.py"
        assert start["omp_num_threads"] == "1" and end["torch_threads"] == 1
        assert f"ray attempt 1 of cell {cid}" in (cell_dir / "log.txt").read_text()
        assert (
            json.loads((cell_dir / "result.json").read_text())["code"]
            == json.loads((local_run / "cells" / cid / "result.json").read_text())["code"]
        )
    # never more cells at once than the cluster's 2 CPUs hold
    spans = [
        (r["time"], e["time"])
        for cid in ids
        for r, e in zip(*(_records(out / "cells" / cid, k) for k in ("start", "end")))
    ]
    assert max(sum(a <= t < b for a, b in spans) for t, _ in spans) <= 2
    progress = [line for line in text.splitlines() if line.startswith("ray: ")]
    assert "5 of 5 cells to run" in progress[0] and "up to 2 at once on 1 node(s)" in progress[0]
    assert any(" 1 running, " in line or " 2 running, " in line for line in progress)
    assert progress[-1].startswith("ray: 5/5 finished, 0 running, 0 pending; ETA 0 s | ")
    assert all("ETA" in line for line in progress[1:])
    assert "compare: 5 cell(s) run, 0 reused" in text

    before = _mtimes(out, ids)
    attempts = {cid: (out / "cells" / cid / ATTEMPTS).read_text() for cid in ids}
    t1 = time.perf_counter()
    rc, text = _run(_args(out, datalist, "--executor", "ray", "--ray-address", cluster))
    assert rc == 0 and "ray: all 5 cells are finished; nothing to run" in text
    assert "compare: 0 cell(s) run, 5 reused" in text
    assert _mtimes(out, ids) == before
    assert {cid: (out / "cells" / cid / ATTEMPTS).read_text() for cid in ids} == attempts  # no task started
    _same_numbers(out, local_run)
    print(f"ray run: {seconds:.1f} s; second run: {time.perf_counter() - t1:.1f} s")


class Killer(threading.Thread):
    """SIGKILL the worker process of each cell in ``targets`` (cell id -> a path in its folder) once that path exists
    and the cell's attempt has recorded its pid: a worker dying in the middle of its cell."""

    def __init__(self, out: Path, targets: dict[str, str]):
        super().__init__(daemon=True)
        self.out, self.targets, self.killed, self.stop = out, dict(targets), {}, threading.Event()

    def run(self):
        while self.targets and not self.stop.is_set():
            for cid, trigger in list(self.targets.items()):
                cell_dir = self.out / "cells" / cid
                starts = _records(cell_dir) if (cell_dir / trigger).exists() else []
                if starts:
                    os.kill(starts[-1]["pid"], signal.SIGKILL)
                    self.killed[cid] = starts[-1]["pid"]
                    del self.targets[cid]
            time.sleep(0.02)


@pytest.mark.slow
@requires_ray
def test_killed_workers_are_retried_and_the_run_gives_the_same_numbers(cluster, local_run, datalist, tmp_path):
    """The GAN's worker dies after its first checkpoint (the retry resumes from it), a classifier's worker dies once
    its cell has started (the retry trains it again): the summary is the local run's."""
    out = tmp_path / "ray"
    shutil.copytree(local_run, out)
    tag = datalist.parent.name
    gan, gemix0 = f"{tag}/gan/g0", f"{tag}/tiny/gemix/g0-s0"
    for cid in (gan, gemix0):  # these two run again, from empty folders (the other cells stay finished)
        shutil.rmtree(out / "cells" / cid)
    kept = _mtimes(out, [c for c in _ids(tag) if c not in (gan, gemix0)])
    killer = Killer(out, {gan: "checkpoints/latest.pt", gemix0: "cell.json"})
    killer.start()
    try:
        rc, text = _run(_args(out, datalist, "--executor", "ray", "--ray-address", cluster))
    finally:
        killer.stop.set()
        killer.join(10)
    assert rc == 0, text
    assert set(killer.killed) == {gan, gemix0}, f"not killed in time: {killer.targets}"
    for cid, pid in killer.killed.items():
        starts = _records(out / "cells" / cid)
        assert [s["attempt"] for s in starts] == [1, 2] and starts[0]["pid"] == pid != starts[1]["pid"]
        assert [e["attempt"] for e in _records(out / "cells" / cid, "end")] == [2]
        assert not _alive(pid)
        assert f"{cid}: attempt 2 on " in text  # the driver said so
    assert _mtimes(out, kept) == kept
    assert "compare: 2 cell(s) run, 3 reused" in text
    _same_numbers(out, local_run)


@pytest.mark.slow
@requires_ray
def test_ctrl_c_cancels_the_cells_in_flight_keeps_the_finished_ones_and_a_rerun_resumes(
    cluster, local_run, datalist, tmp_path
):
    out = tmp_path / "ray"
    shutil.copytree(local_run, out)
    tag = datalist.parent.name
    again = [f"{tag}/tiny/gemix/g0-s1"]
    for cid in again:
        shutil.rmtree(out / "cells" / cid)
    finished = [cid for cid in _ids(tag) if cid not in again]
    kept = _mtimes(out, finished)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    argv = _args(out, datalist, "--executor", "ray", "--ray-address", cluster)
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "gemix_monai.cli", *argv], stdout=log, stderr=subprocess.STDOUT, env=env
        )
        try:
            deadline = time.monotonic() + 300
            while not any((out / "cells" / c / "cell.json").exists() and _records(out / "cells" / c) for c in again):
                assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
                time.sleep(0.05)
            driver.send_signal(signal.SIGINT)  # Ctrl-C while a cell runs
            driver.wait(120)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    text = (tmp_path / "driver.log").read_text()
    assert driver.returncode == 130, text  # the CLI's Ctrl-C exit
    assert "ray: interrupted (Ctrl-C): cancelled" in text, text
    cancelled = [c for c in again if not (out / "cells" / c / "result.json").exists()]
    assert cancelled and all(c in text.split("cancelled", 1)[1] for c in cancelled), text
    for cid in cancelled:  # its worker is gone: nothing keeps running on the cluster
        pids = [s["pid"] for s in _records(out / "cells" / cid)]
        deadline = time.monotonic() + 30
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, pids)), pids
    assert _mtimes(out, finished) == kept

    rc, text = _run(argv)
    assert rc == 0, text
    assert f"compare: {len(cancelled)} cell(s) run, {5 - len(cancelled)} reused" in text
    assert _mtimes(out, finished) == kept
    _same_numbers(out, local_run)


@pytest.mark.slow
@requires_ray
def test_a_cell_that_fails_is_not_retried_and_the_run_lists_it(cluster, local_run, datalist, tmp_path):
    """An error of the cell itself (here: its generator file is gone) would happen again: reported once, with the
    cell's log, after the other cells; no summary."""
    from gemix_monai.experiments.compare import CompareRunOptions, compare_settings, run_compare
    from gemix_monai.experiments.ray_executor import RayExecutor

    out = tmp_path / "ray"
    shutil.copytree(local_run, out)
    for name in ("summary.csv", "summary.md"):
        (out / name).unlink()
    tag = datalist.parent.name
    cid = f"{tag}/tiny/gemix/g0-s1"
    shutil.rmtree(out / "cells" / cid)
    (out / "cells" / tag / "gan" / "g0" / "models" / "generator" / "generator.pt").unlink()
    settings = compare_settings(strategies=["real", "gemix"], seeds=2, networks=["tiny"], gan_kimg=0.256, epochs=2)
    options = CompareRunOptions(datalist=str(datalist), device="cpu", verbose=False, executor=RayExecutor(cluster))
    with pytest.raises(RuntimeError, match=f"cells failed:\n  {cid}: FileNotFoundError: generator of {tag}/gan/g0 not"):
        run_compare(out, settings, options)
    assert [s["attempt"] for s in _records(out / "cells" / cid)] == [1]  # not retried
    log = (out / "cells" / cid / "log.txt").read_text()
    assert "Traceback" in log and "FileNotFoundError: generator of" in log
    assert not (out / "cells" / cid / "result.json").exists() and not (out / "summary.csv").exists()


@pytest.mark.slow
@requires_ray
def test_a_run_folder_the_workers_cannot_see_stops_the_run_at_the_start(
    cluster, datalist, tmp_path, monkeypatch, capsys
):
    """As if --out were on the driver's own disk: the marker the driver writes is not where the workers look."""
    from gemix_monai.experiments import ray_executor

    monkeypatch.setattr(ray_executor, "_write_marker", lambda path, token: path)  # written "elsewhere": not there
    out = tmp_path / "ray"
    assert cli.main(_args(out, datalist, "--executor", "ray", "--ray-address", cluster)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"gemix-monai: error: --executor ray: the run folder {out} (--out) is not shared with ")
    assert "1 of 1 Ray node(s)" in err[0] and "(127.0.0.1): the marker file" in err[0] and "docs/cluster.md" in err[0]
    assert not (out / "cells").exists() and not (out / ".ray_probe").exists()  # no cell started, no probe file left


@pytest.mark.slow
@requires_ray
def test_a_cell_larger_than_every_node_is_refused_at_the_start(cluster, datalist, tmp_path, capsys):
    assert (
        cli.main(_args(tmp_path / "run", datalist, "--executor", "ray", "--ray-address", cluster, "--cell-cpus", "3"))
        == 2
    )
    first = capsys.readouterr().err.splitlines()[0]
    assert "--cell-cpus 3 --cell-gpus 0: no node of the Ray cluster has that much for one cell" in first
    assert "(127.0.0.1): 2 CPU, 0 GPU" in first
    assert not (tmp_path / "run" / "cells").exists()


# ---------------------------------------------------------------------------------------------- without a cluster


def test_a_missing_ray_is_one_line_naming_the_extra(tmp_path, datalist, monkeypatch, capsys):
    from gemix_monai.experiments.ray_executor import RayNotInstalledError, executor_from_options

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    out = tmp_path / "run"
    assert cli.main(_args(out, datalist, "--executor", "ray")) == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("gemix-monai: error: --executor ray needs the `ray` package, which cannot be imported")
    assert 'install the extra: pip install -e ".[ray]"' in first and len(rest) == 1  # and "(run again with --verbose"
    assert not out.exists()  # refused before anything was written
    with pytest.raises(RayNotInstalledError, match=r'pip install -e "\.\[ray\]"'):
        executor_from_options("ray", cell_gpus=0.5)
    assert cli.main(_args(out, datalist, "--list-cells", "--executor", "ray")) == 0  # listing needs no ray


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--cell-gpus", "0.5"], "--cell-gpus 0.5: these options are for --executor ray"),
        (["--ray-address", "auto"], "--ray-address auto: these options are for --executor ray"),
        (["--executor", "ray", "--jobs", "2"], "--jobs 2 sizes the local executor's pool"),
        (["--executor", "ray", "--cell-gpus", "1.5"], "--cell-gpus 1.5: expected 0 (no GPU), a fraction of one GPU"),
        (["--executor", "ray", "--cell-cpus", "0"], "--cell-cpus 0: expected the number of CPUs a cell reserves"),
        (["--executor", "ray", "--device", "cuda"], "--device cuda with --executor ray needs --cell-gpus > 0"),
        (["--executor", "ray", "--cell", "x/gan/g0"], "--cell runs that one cell in this process"),
        (
            ["--task", "segmentation", "--networks", "tiny_unet", "--executor", "ray", "--jobs", "3"],
            "--jobs 3 sizes the local executor's pool",
        ),
    ],
)
def test_executor_options_are_checked_naming_the_option(tmp_path, datalist, capsys, extra, message):
    out = tmp_path / "run"
    assert cli.main(_args(out, datalist, *extra)) == 2  # a repeated option: the last one wins
    assert message in capsys.readouterr().err.splitlines()[0]
    assert not out.exists()


def test_the_bundle_config_passes_the_executor_keys(tmp_path, datalist):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(cli.bundle_dir() / "configs" / "compare.json"))
    assert [parser.get(k) for k in ("executor", "ray_address", "cell_cpus", "cell_gpus")] == ["local", None, None, None]
    overrides = {"out": str(tmp_path / "b"), "datalist": str(datalist), "executor": "ray", "cell_gpus": 1.5}
    with pytest.raises(Exception) as e:
        cli.run_bundle_config("compare.json", overrides, bundle_logging=False)
    assert "--cell-gpus 1.5: expected 0 (no GPU)" in str(cli._root_cause(e.value))


@requires_ray
def test_an_address_where_no_head_answers_is_refused_at_once(tmp_path, datalist, capsys):
    port = _free_port()  # nothing listens there
    t0 = time.perf_counter()
    assert cli.main(_args(tmp_path / "run", datalist, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}")) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert f"--ray-address 127.0.0.1:{port}: no Ray head answers there" in first and "docs/cluster.md" in first
    assert time.perf_counter() - t0 < 60
