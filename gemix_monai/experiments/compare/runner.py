"""Running a comparison's cells: one cell under its lock (:func:`run_cell`), all of them through an executor, and
the driver every comparison shares (:func:`drive_compare`).

Executors (docs/experiments.md, "Executors") implement :class:`CellExecutor`: ``run(cells, out, runners, ...)``
runs every unfinished cell once its dependencies are finished and returns the ids of the cells it ran.
:class:`InProcessExecutor` runs them one after another in this process; :class:`SubprocessExecutor` (``--jobs N``)
keeps N worker processes (``python -m gemix_monai.experiments.compare --cell-dir <cell> --out <out>``) busy. A
cluster executor is one more class with that method: the cell folder (``cell.json``) is all a worker needs.

Runners are explicit: a cell's ``kind`` is looked up in the ``runners`` mapping the comparison passes
(``{"gan": run_gan_cell, "classifier": run_classifier_cell}``, ...); a runner is
``runner(config, runtime, cell_dir) -> result fields``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .arms import Arm
from .cells import (
    Cell,
    _json_bytes,
    cell_lock,
    check_cell_config,
    code_state,
    is_finished,
    resolve_dataset,
    write_cell_json,
)
from .progress import CellProgress, printer
from .settings import CompareRunOptions, CompareSettings

__all__ = [
    "CellRunner",
    "CellExecutor",
    "InProcessExecutor",
    "SubprocessExecutor",
    "make_executor",
    "run_cell",
    "run_cell_dir",
    "CompareResult",
    "drive_compare",
]

#: ``runner(config, runtime, cell_dir) -> result fields`` (``metrics``, ``generator``, ...)
CellRunner = Callable[[dict, dict, Path], dict]


def run_cell(cell: Cell, out, runners: Mapping[str, CellRunner], *, verbose: bool = False, quiet: bool = True) -> bool:
    """Run ``cell`` unless finished; ``True`` if it ran. Holds the cell lock while checking and running."""
    out = Path(out)
    for dep in cell.deps:
        if not (out / "cells" / dep / "result.json").is_file():
            raise RuntimeError(f"cell {cell.id} needs cell {dep} first (run it with --cell {dep})")
    if cell.kind not in runners:
        raise ValueError(f"cell {cell.id}: no runner for kind {cell.kind!r}; runners: {sorted(runners)}")
    cell_dir = cell.dir(out)
    with cell_lock(cell_dir, cell.id, verbose):
        if is_finished(cell, out):
            return False
        check_cell_config(cell, out)
        write_cell_json(cell, out)
        start, cpu = time.perf_counter(), time.process_time()
        from gemix_monai.utils import atomic_write_bytes, quiet_logs

        with quiet_logs() if quiet else contextlib.nullcontext():
            fields = runners[cell.kind](cell.config, cell.runtime, cell_dir)
        result = {
            "id": cell.id,
            "kind": cell.kind,
            **fields,
            "seconds": round(time.perf_counter() - start, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "device": cell.runtime.get("device"),
            "code": code_state(),
            "config": cell.config,
        }
        atomic_write_bytes(cell_dir / "result.json", _json_bytes(result))
    return True


def run_cell_dir(cell_dir: Path, out: Path, runners: Mapping[str, CellRunner], quiet: bool) -> None:
    """Run the cell whose resolved ``cell.json`` is in ``cell_dir`` (what a worker process does)."""
    meta = json.loads((Path(cell_dir) / "cell.json").read_text(encoding="utf-8"))
    cell = Cell(meta["id"], meta["kind"], meta["config"], meta["runtime"], tuple(meta.get("deps", ())))
    run_cell(cell, out, runners, quiet=quiet)


class CellExecutor(Protocol):
    """Runs the unfinished ``cells`` (in dependency order) and returns the ids of those it ran. ``runners`` is the
    comparison's registry (an executor whose workers run ``python -m gemix_monai.experiments.compare --cell-dir``
    may ignore it: the worker looks the kind up in ``ALL_RUNNERS``). An executor may have a ``device`` attribute:
    the cells' device when the options give none."""

    def run(
        self, cells: Sequence[Cell], out: Path, runners: Mapping[str, CellRunner], *, verbose: bool, quiet: bool
    ) -> list[str]: ...


class InProcessExecutor:
    """One cell after another in this process (``--jobs 1``)."""

    def run(self, cells, out, runners, *, verbose: bool, quiet: bool) -> list[str]:
        ran: list[str] = []
        progress = CellProgress(cells, [c.id for c in cells if is_finished(c, out)], out=out, say=printer(verbose))
        todo = [c for c in cells if c.id not in progress.done]
        for c in todo:
            t0 = time.perf_counter()
            progress.started(c)
            stop = progress.beat_in_background()
            try:
                with _cell_log(c.dir(out)):
                    if run_cell(c, out, runners, verbose=verbose, quiet=quiet):
                        ran.append(c.id)
            except BaseException:
                progress.finished(c, time.perf_counter() - t0, ok=False, note=f"log: {c.dir(out) / 'log.txt'}")
                raise
            finally:
                stop.set()
            progress.finished(c, time.perf_counter() - t0)
        return ran


@contextlib.contextmanager
def _cell_log(cell_dir: Path):
    """The log records of an in-process cell also go to ``<cell>/log.txt`` (where a ``--jobs`` worker's output goes)."""
    import logging

    cell_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(cell_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


class SubprocessExecutor:
    """``jobs`` concurrent worker processes, each running one prepared cell (``--jobs N``); a cell starts once its
    dependencies finished, a failed cell fails the cells that depend on it, and the failures are raised together
    (naming each cell's ``log.txt``) after the others finished."""

    def __init__(self, jobs: int) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
        self.jobs = jobs

    def _start(self, c: Cell, out: Path, quiet: bool, env: dict):
        d = c.dir(out)
        d.mkdir(parents=True, exist_ok=True)
        check_cell_config(c, out)
        write_cell_json(c, out)
        log = open(d / "log.txt", "ab")
        cmd = [sys.executable, "-m", "gemix_monai.experiments.compare", "--cell-dir", str(d), "--out", str(out)]
        if not quiet:
            cmd.append("--verbose")
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log

    def run(self, cells, out, runners, *, verbose: bool, quiet: bool) -> list[str]:
        done = {c.id for c in cells if is_finished(c, out)}
        before = set(done)
        pending = [c for c in cells if c.id not in done]
        failed: dict[str, str] = {}
        running: dict[str, tuple[subprocess.Popen, Cell, io.IOBase, float]] = {}
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.jobs)))
        progress = CellProgress(cells, done, out=out, capacity=self.jobs, say=printer(verbose))
        while pending or running:
            for c in list(pending):
                if len(running) >= self.jobs:
                    break
                if any(d in failed for d in c.deps):
                    pending.remove(c)
                    failed[c.id] = f"dependency {[d for d in c.deps if d in failed]} failed"
                    continue
                if all(d in done for d in c.deps):
                    pending.remove(c)
                    proc, log = self._start(c, out, quiet, env)
                    running[c.id] = (proc, c, log, time.perf_counter())
                    progress.started(c)
            if not running:
                if pending:
                    raise RuntimeError(f"cells cannot start, their dependencies are missing: {[c.id for c in pending]}")
                break
            time.sleep(0.2)
            progress.heartbeat()
            for cid, (proc, c, log, t0) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[cid]
                if proc.returncode == 0 and is_finished(c, out):
                    done.add(cid)
                    progress.finished(c, time.perf_counter() - t0)
                else:
                    failed[cid] = f"exit code {proc.returncode}; log: {c.dir(out) / 'log.txt'}"
                    progress.finished(c, time.perf_counter() - t0, ok=False, note=failed[cid])
        if failed:
            raise RuntimeError("cells failed:\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()))
        return [c.id for c in cells if c.id not in before]


def make_executor(jobs: int | None) -> CellExecutor:
    """:class:`SubprocessExecutor` for ``jobs > 1``, else :class:`InProcessExecutor`."""
    return SubprocessExecutor(int(jobs)) if jobs and jobs > 1 else InProcessExecutor()


@dataclass
class CompareResult:
    out_dir: Path
    cells: list[Cell]
    ran: list[str]
    files: dict[str, Path]
    seconds: float


def drive_compare(
    out,
    s: CompareSettings,
    arms: Sequence[Arm],
    options: CompareRunOptions,
    *,
    plan: Callable,
    write: Callable,
    runners: Mapping[str, CellRunner],
    start: float | None = None,
):
    """What every comparison does with its checked settings ``s`` and ``arms``: resolve the dataset,
    ``plan(out, s, arms, source, dataset, tag, device) -> cells``, list them or refuse a changed budget, run one
    cell or all (through ``options.executor`` or :func:`make_executor`), then ``write(out, cells, arms, s, dataset)
    -> files`` (the summary). ``start``: ``time.perf_counter()`` at the call."""
    start = time.perf_counter() if start is None else start
    o = options
    out = Path(out).resolve()
    device = o.device if o.device is not None else getattr(o.executor, "device", None)  # a cluster's choice
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    source, dataset, tag = resolve_dataset(
        out, o.dataset_dir, o.datalist, s.image_size, o.phantom_counts, o.val_counts, o.test_counts, not o.list_cells
    )
    cells = plan(out, s, arms, source, dataset, tag, str(device))
    for c in cells:  # an automatic split the data folder cannot hold goes under the comparison (docs/data.md)
        c.runtime.setdefault("split_dir", str(Path(out).resolve()))
    if o.list_cells:
        if o.verbose:
            for c in cells:
                print(c.id)
        return [c.id for c in cells]
    for c in cells:  # refuse a changed budget before anything runs
        check_cell_config(c, out)
    if o.cell is not None:
        match = [c for c in cells if c.id == o.cell]
        if not match:
            raise ValueError(
                f"unknown cell {o.cell!r}; `--list-cells` prints the {len(cells)} cell ids of this comparison"
            )
        ran = [o.cell] if run_cell(match[0], out, runners, verbose=o.verbose, quiet=o.quiet) else []
        if o.verbose:
            print(f"cell {o.cell}: " + ("finished" if ran else "already finished, not recomputed"))
        return CompareResult(out, cells, ran, {}, time.perf_counter() - start)
    executor = o.executor or make_executor(o.jobs)
    ran = executor.run(cells, out, runners, verbose=o.verbose, quiet=o.quiet)
    files = write(out, cells, arms, s, dataset)
    if o.verbose:
        print(f"compare: {len(ran)} cell(s) run, {len(cells) - len(ran)} reused; summary in {files['summary.md']}")
    return CompareResult(out, cells, ran, files, time.perf_counter() - start)
