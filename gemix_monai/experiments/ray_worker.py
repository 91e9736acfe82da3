"""What runs inside a Ray worker for ``compare --executor ray`` (docs/cluster.md): one cell per task, through
:func:`~gemix_monai.experiments.compare.run_cell` (the ``--cell`` code path), and the storage probe. The driver side is
:mod:`gemix_monai.experiments.ray_executor`; neither imports ``ray`` at module level (it is an optional extra).

Each attempt of a cell appends a JSON line to ``<cell>/ray_attempts.jsonl`` when it starts (pid, host, node address,
``OMP_NUM_THREADS``, the ``gemix_monai`` it imported) and when it ends (seconds, peak RSS, the most GPU memory torch
held, torch threads): the driver reads it to tell a running cell from a queued one and to report retries, and it is
the measured memory of a cell that ``--cell-gpus`` packing needs (docs/cluster.md, "GPUs").
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from gemix_monai.experiments.compare import Cell, code_state, run_cell

__all__ = ["ATTEMPTS_FILE", "append_record", "cell_task", "node_ip", "output_to", "probe_task", "read_records"]

#: One JSON line per start and end of an attempt of a cell (see the module docstring).
ATTEMPTS_FILE = "ray_attempts.jsonl"


def node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - only a label in the records
        return "?"


def append_record(cell_dir: Path, record: dict) -> None:
    with open(cell_dir / ATTEMPTS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_records(cell_dir: Path, token: str | None = None) -> list[dict]:
    try:
        lines = (cell_dir / ATTEMPTS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed worker
        if token is None or r.get("token") == token:
            records.append(r)
    return records


@contextlib.contextmanager
def output_to(path: Path):
    """File descriptors 1 and 2 (Python's and native code's output alike) appended to ``path`` within the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def cell_task(cell: Cell, out: str, runners: Mapping, token: str, quiet: bool, *dependencies) -> dict:
    """A Ray task: run one cell with :func:`run_cell` (the ``--cell`` code path) and the comparison's ``runners``
    (picklable by reference: module-level functions), its output in ``<cell>/log.txt``.

    ``dependencies`` are the results of the tasks of the cell's dependencies: Ray passes them only once those tasks
    have finished, which is the point of receiving them. Runs in a fresh worker process (``max_calls=1``), as the
    local executor's subprocesses do; Ray sets ``OMP_NUM_THREADS`` to the reserved CPUs unless the cluster sets it.
    """
    import resource

    import gemix_monai

    out_path = Path(out)
    cell_dir = cell.dir(out_path)
    cell_dir.mkdir(parents=True, exist_ok=True)
    attempt = 1 + sum(r.get("event") == "start" for r in read_records(cell_dir, token))
    host, pid = socket.gethostname(), os.getpid()
    append_record(
        cell_dir,
        {
            "event": "start",
            "token": token,
            "attempt": attempt,
            "pid": pid,
            "host": host,
            "node_ip": node_ip(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "gemix_monai": gemix_monai.__file__,
            "time": time.time(),
        },
    )
    t0 = time.perf_counter()
    with output_to(cell_dir / "log.txt"):
        print(f"==== ray attempt {attempt} of cell {cell.id}: host {host}, pid {pid}, {time.ctime()} ====", flush=True)
        try:
            ran = run_cell(cell, out_path, runners, verbose=True, quiet=quiet)
        except BaseException:
            traceback.print_exc()
            raise
    seconds = time.perf_counter() - t0
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    torch = sys.modules.get("torch")  # imported by the cell's runner
    # what --cell-gpus packing needs (docs/cluster.md, "GPUs"): the most GPU memory torch held, when it used a GPU
    cuda_mib = torch.cuda.max_memory_reserved() / 2**20 if torch is not None and torch.cuda.is_initialized() else None
    append_record(
        cell_dir,
        {
            "event": "end",
            "token": token,
            "attempt": attempt,
            "pid": pid,
            "seconds": seconds,
            "max_rss_mib": max_rss_mib,
            "max_cuda_mib": cuda_mib,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "time": time.time(),
        },
    )
    return {
        "id": cell.id,
        "ran": ran,
        "seconds": seconds,
        "host": host,
        "pid": pid,
        "max_rss_mib": max_rss_mib,
        "max_cuda_mib": cuda_mib,
    }


def probe_task(marker: str, token: str, reply: str) -> dict:
    """A Ray task on one node: does it see the driver's marker file, can it write beside it, which code does it
    import."""
    import gemix_monai

    path = Path(marker)
    try:
        sees = path.read_text(encoding="utf-8").strip() == token
    except OSError:
        sees = False
    wrote = False
    if sees:
        try:
            Path(reply).write_text(token, encoding="utf-8")
            wrote = True
        except OSError:
            pass
    return {
        "host": socket.gethostname(),
        "node_ip": node_ip(),
        "sees": sees,
        "wrote": wrote,
        "gemix_monai": gemix_monai.__file__,
        "code": code_state(),
    }
