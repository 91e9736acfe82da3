"""Running a worker in one process and in two gloo processes (the distributed-equivalence tests)."""

from __future__ import annotations

import socket
from pathlib import Path

import ignite.distributed as idist
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_and_two_processes(worker, one: dict, two: dict, results: Path) -> tuple[dict, dict]:
    """``worker(0, one)`` in this process, then ``worker`` in 2 gloo processes with ``two``; each config gets a
    ``result`` path under ``results`` where rank 0 saves what it saw, and the two saved dicts are returned."""
    worker(0, dict(one, result=results / "one.pt"))
    with idist.Parallel(backend="gloo", nproc_per_node=2, master_port=free_port()) as parallel:
        parallel.run(worker, dict(two, result=results / "two.pt"))
    return (torch.load(results / "one.pt", weights_only=True), torch.load(results / "two.pt", weights_only=True))
