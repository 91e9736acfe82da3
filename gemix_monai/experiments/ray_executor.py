"""``compare --executor ray``: every cell of a comparison as a task on a Ray cluster (docs/cluster.md).

The driver (the ``compare`` process) plans the cells as for the local executor, then submits each unfinished cell
as a Ray task that reserves ``cell_cpus`` CPUs and ``cell_gpus`` GPUs (fractions allowed: ``0.5`` packs two cells
on one GPU). A task (:func:`~gemix_monai.experiments.ray_worker.cell_task`) runs the cell through ``run_cell``, the
code path of ``compare --cell``: ``cell.json`` checked and written, the cell's lock taken, ``result.json`` written
atomically; its output goes to the cell's ``log.txt``. A classifier cell's task receives the ObjectRef of its GAN
cell's task (and of its teacher's), so Ray starts it once that task has finished. At most as many tasks are in
flight as the cluster's nodes can run at once. :class:`RayExecutor` is a compare executor
(``CompareRunOptions(executor=...)``, docs/design.md); :func:`executor_from_options` builds it from the CLI options.

Faults (docs/cluster.md, "Faults"): a task whose worker process or node dies is retried by Ray (``max_retries``);
the retry runs the cell again in the same folder, so a GAN cell resumes from its latest checkpoint and a classifier
cell starts again, exactly as a re-run does locally. An exception raised by the cell itself is not retried (it
would fail again); the other cells go on and the run ends with the list of failed cells. Ctrl-C on the driver
cancels the tasks in flight (their workers are killed); finished cells keep their ``result.json`` and the next run
resumes the others.

Storage: every node reads and writes the run folder (``--out``) at the same path, so it must be on a filesystem
that every node mounts. Before the first task the driver writes a marker file into the run folder and runs a probe
task on each node that could run a cell; a node that does not see the marker (or whose reply the driver does not
see) stops the run at the start with the node named, instead of failing cell by cell.

``ray`` is an optional dependency (``pip install -e ".[ray]"``); this module imports it only when a run asks for it.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemix_monai.experiments.compare import Cell, code_state, is_finished
from gemix_monai.experiments.compare.progress import duration as _duration
from gemix_monai.experiments.compare.progress import estimate_left, printer
from gemix_monai.experiments.ray_worker import cell_task, probe_task, read_records

__all__ = [
    "EXECUTORS",
    "RAY_EXTRA",
    "RayExecutor",
    "RayNotInstalledError",
    "check_shared_folder",
    "executor_from_options",
    "import_ray",
    "run_cells_on_ray",
]

EXECUTORS = ("local", "ray")
RAY_EXTRA = 'pip install -e ".[ray]"'
#: Ray retries a cell whose worker process or node died this many times (Ray's own default for tasks).
MAX_RETRIES = 3
#: How long the storage probe waits for every node (a node must start a worker with the cell's runtime_env).
PROBE_TIMEOUT_S = 180.0
#: How long the driver waits for a result.json that a task reports as written (attribute caches of network
#: filesystems can hide a new file from other clients for a while).
RESULT_VISIBLE_TIMEOUT_S = 60.0


class RayNotInstalledError(ImportError, ValueError):
    """``--executor ray`` where ``ray`` cannot be imported (also a ``ValueError``: the CLI prints it as one line)."""


def import_ray():
    """The ``ray`` module, or :class:`RayNotInstalledError` naming the extra that installs it."""
    try:
        import ray
    except ImportError as e:
        raise RayNotInstalledError(
            f"--executor ray needs the `ray` package, which cannot be imported here ({e}); "
            f'install the extra: {RAY_EXTRA} (or pip install "gemix-monai[ray]")'
        ) from None
    return ray


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RayExecutor:
    """A compare executor (the ``CellExecutor`` protocol of :mod:`gemix_monai.experiments.compare.runner`): every
    cell a Ray task. Give it as ``CompareRunOptions(executor=RayExecutor(...))``; ``gemix-monai compare --executor
    ray`` builds it with :func:`executor_from_options`."""

    address: str | None = None
    cell_cpus: float = 1.0
    cell_gpus: float = 0.0
    max_retries: int = MAX_RETRIES
    #: ``"auto"``: the workers import the driver's gemix_monai checkout when the driver runs one (see
    #: :func:`default_runtime_env`); ``None``: the cluster's own environment; or a Ray ``runtime_env`` dict.
    runtime_env: dict | str | None = "auto"

    @property
    def device(self) -> str:
        """The cells' device when ``--device`` is not given: a task sees a GPU only when it reserves one."""
        return "cuda" if self.cell_gpus > 0 else "cpu"

    def run(
        self, cells: Sequence[Cell], out, runners: Mapping, *, verbose: bool = True, quiet: bool = True
    ) -> list[str]:
        return run_cells_on_ray(
            cells,
            out,
            runners,
            address=self.address,
            cell_cpus=self.cell_cpus,
            cell_gpus=self.cell_gpus,
            max_retries=self.max_retries,
            runtime_env=self.runtime_env,
            verbose=verbose,
            quiet=quiet,
        )


def executor_from_options(
    executor: str = "local",
    *,
    jobs: int = 1,
    cell: str | None = None,
    list_cells: bool = False,
    ray_address: str | None = None,
    cell_cpus: float | None = None,
    cell_gpus: float | None = None,
    device: str | None = None,
) -> RayExecutor | None:
    """The executor the ``compare`` options ask for: ``None`` for the local one (``--jobs`` decides), else the
    checked :class:`RayExecutor`, with ``ray`` imported so that a missing package is reported before anything runs
    (not for ``list_cells``: nothing runs). Errors name the option and what it expects."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r}: expected one of {list(EXECUTORS)}")
    given = {"--ray-address": ray_address, "--cell-cpus": cell_cpus, "--cell-gpus": cell_gpus}
    if executor == "local":
        named = [f"{k} {v}" for k, v in given.items() if v is not None]
        if named:
            raise ValueError(f"{', '.join(named)}: these options are for --executor ray (the executor is local)")
        return None
    if jobs and int(jobs) > 1:
        raise ValueError(
            f"--jobs {jobs} sizes the local executor's pool; with --executor ray the cluster's resources decide how "
            "many cells run at once (--cell-cpus, --cell-gpus per cell)"
        )
    if cell is not None:
        raise ValueError("--cell runs that one cell in this process: drop --executor ray (or --cell to run every cell)")
    cpus = 1.0 if cell_cpus is None else float(cell_cpus)
    gpus = 0.0 if cell_gpus is None else float(cell_gpus)
    if not (math.isfinite(cpus) and cpus > 0):
        raise ValueError(f"--cell-cpus {cpus:g}: expected the number of CPUs a cell reserves, > 0 (e.g. 1 or 0.5)")
    if not (math.isfinite(gpus) and gpus >= 0 and (gpus <= 1 or gpus.is_integer())):
        raise ValueError(
            f"--cell-gpus {gpus:g}: expected 0 (no GPU), a fraction of one GPU (0 < G <= 1; 0.5 packs two cells "
            "on a GPU) or a whole number of GPUs"
        )
    if device is not None and str(device).startswith("cuda") and gpus == 0:
        raise ValueError(
            f"--device {device} with --executor ray needs --cell-gpus > 0: Ray hides the GPUs from a task that "
            "reserves none"
        )
    if device is not None and str(device) == "cpu" and gpus > 0:
        raise ValueError(f"--cell-gpus {gpus:g} with --device cpu: the cells would reserve GPUs they do not use")
    if not list_cells:
        import_ray()
    return RayExecutor(address=ray_address, cell_cpus=cpus, cell_gpus=gpus)


def default_runtime_env() -> dict | None:
    """When the driver imports gemix_monai from a source checkout (not an installed copy), the workers put that
    checkout first on their ``PYTHONPATH``: with the checkout on the shared filesystem every cell runs the driver's
    code (each ``result.json`` records it). ``None`` otherwise: the workers use the cluster's environment."""
    import gemix_monai

    root = Path(gemix_monai.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file() or {"site-packages", "dist-packages"} & set(root.parts):
        return None
    return {"env_vars": {"PYTHONPATH": f"{root}{os.pathsep}${{PYTHONPATH}}"}}


# ---------------------------------------------------------------------------------------------- the driver


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _check_listening(address: str) -> None:
    """Ray waits forever for a head that is not there; a plain TCP connection says so within seconds."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ConnectionError(
            f"--ray-address {address}: no Ray head answers there ({e}); expected HOST:PORT of a running head "
            "(printed by `ray start --head`), auto, or local (docs/cluster.md)"
        ) from None


def _connect(ray, address: str | None) -> None:
    kwargs: dict = {"log_to_driver": False, "logging_level": "WARNING"}
    if address == "local":
        # a private one-machine cluster for this run, reachable from this machine only
        kwargs.update(address="local", include_dashboard=False, _node_ip_address="127.0.0.1")
    else:
        target = address if address not in (None, "auto") else os.environ.get("RAY_ADDRESS")
        if target:
            _check_listening(target)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ConnectionError(
            f"--ray-address {address or '(not given)'}: cannot connect to a Ray cluster ({_first_line(e)}); expected "
            "auto (the cluster `ray start --head` started on this machine), HOST:PORT of a running head, "
            "ray://HOST:10001, or local (docs/cluster.md)"
        ) from None


@dataclass
class _Node:
    node_id: str
    label: str
    slots: int  # how many cells it runs at once
    cpus: float = 0.0
    gpus: float = 0.0


def _cell_nodes(ray, cell_cpus: float, cell_gpus: float) -> list[_Node]:
    """The alive nodes that can run a cell, with how many cells each runs at once."""
    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        slots = math.floor(res.get("CPU", 0.0) / cell_cpus + 1e-9)
        if cell_gpus > 0:
            slots = min(slots, math.floor(res.get("GPU", 0.0) / cell_gpus + 1e-9))
        label = f"{n.get('NodeManagerHostname', '?')} ({n.get('NodeManagerAddress', '?')})"
        nodes.append(_Node(n["NodeID"], label, slots, res.get("CPU", 0.0), res.get("GPU", 0.0)))
    return nodes


def _capacity(ray, cell_cpus: float, cell_gpus: float) -> tuple[int, list[_Node]]:
    nodes = _cell_nodes(ray, cell_cpus, cell_gpus)
    total = sum(n.slots for n in nodes)
    if total == 0:
        seen = "; ".join(f"{n.label}: {n.cpus:g} CPU, {n.gpus:g} GPU" for n in nodes) or "no alive node"
        raise ValueError(
            f"--cell-cpus {cell_cpus:g} --cell-gpus {cell_gpus:g}: no node of the Ray cluster has that much for one "
            f"cell (nodes: {seen}; `ray status` lists their resources); lower the options or add such nodes"
        )
    return total, [n for n in nodes if n.slots > 0]


def check_shared_folder(ray, out, nodes: Sequence[_Node], runtime_env, say=print, timeout_s: float = PROBE_TIMEOUT_S):
    """Raise ``OSError`` naming the nodes that cannot see the run folder ``out`` (a marker file the driver wrote),
    or whose reply written there the driver cannot see; warn when a node runs other code than the driver. Returns the
    ids of the nodes checked."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    out = Path(out)
    token = uuid.uuid4().hex
    probe_dir = out / ".ray_probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    marker = _write_marker(probe_dir / f"{token}.driver", token)
    probe = _remote(ray, "probe")
    refs = {
        probe.options(
            num_cpus=0,
            max_retries=0,
            runtime_env=runtime_env,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            name="gemix storage probe",
        ).remote(str(marker), token, str(probe_dir / f"{token}.{node.node_id}")): node
        for node in nodes
    }
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    blind, broken, codes = [], [], {}
    try:
        for ref in late:
            ray.cancel(ref, force=True)
            broken.append(f"{refs[ref].label}: no answer within {timeout_s:g} s (could a worker start there?)")
        for ref in ready:
            node = refs[ref]
            try:
                answer = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - reported with the node's name
                broken.append(
                    f"{node.label}: the probe task failed ({_first_line(e)}); is gemix-monai installed there?"
                )
                continue
            if not answer["sees"]:
                blind.append(f"{node.label}: the marker file {marker} is absent there")
            elif not (answer["wrote"] and _visible(probe_dir / f"{token}.{node.node_id}", 10.0)):
                blind.append(
                    f"{node.label}: it cannot write into {probe_dir}, or the driver does not see what it wrote"
                )
            code = answer["code"]
            codes.setdefault(f"{code['gemix_monai']} at {code['git'] or 'no git checkout'}", []).append(node.label)
    finally:
        for p in probe_dir.glob(f"{token}.*"):
            with contextlib.suppress(OSError):
                p.unlink()
        with contextlib.suppress(OSError):
            probe_dir.rmdir()
    if broken:
        raise OSError(f"--executor ray: the storage probe did not run on every node: {'; '.join(broken)}")
    if blind:
        raise OSError(
            f"--executor ray: the run folder {out} (--out) is not shared with {len(blind)} of {len(nodes)} Ray "
            f"node(s) ({'; '.join(blind)}); every node reads and writes the cells there: put --out on a filesystem "
            "that every node mounts at the same path (docs/cluster.md, Storage)"
        )
    mine = code_state()
    mine = f"{mine['gemix_monai']} at {mine['git'] or 'no git checkout'}"
    for state, labels in codes.items():
        if state != mine:
            say(
                f"ray: WARNING: node(s) {', '.join(labels)} run gemix-monai {state}, the driver {mine}; each result.json "
                "records its code and summary.md flags a mix"
            )
    return [refs[r].node_id for r in ready]


def _write_marker(path: Path, token: str) -> Path:
    from gemix_monai.utils import atomic_write_bytes

    return atomic_write_bytes(path, token.encode())


def _visible(path: Path, timeout_s: float) -> bool:
    """``path`` exists as seen from here, waiting up to ``timeout_s`` (listing the folder refreshes a network
    filesystem's view of it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            os.listdir(path.parent)
        if path.is_file():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


_REMOTES: dict = {}


def _remote(ray, which: str):
    """The Ray remote functions, made once per process; ``max_calls=1``: a fresh worker process per cell."""
    if which not in _REMOTES:
        _REMOTES[which] = ray.remote(max_calls=1)(cell_task if which == "cell" else probe_task)
    return _REMOTES[which]


@dataclass
class _Flight:
    cell: Cell
    ref: object
    started: float | None = None  # driver clock, when the first start record appeared
    attempts: int = 0


@dataclass
class _Scheduler:
    ray: object
    cells: Sequence[Cell]
    out: Path
    runners: Mapping
    cell_cpus: float
    cell_gpus: float
    max_retries: int
    runtime_env: dict | None
    quiet: bool
    say: object
    poll_s: float = 0.5
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    probed: set = field(default_factory=set)  # the node ids whose view of the run folder was checked

    def __post_init__(self):
        self.position = {c.id: k for k, c in enumerate(self.cells)}
        self.done = {c.id for c in self.cells if is_finished(c, self.out)}
        self.pending = [c for c in self.cells if c.id not in self.done]
        self.flight: dict[str, _Flight] = {}
        self.failed: dict[str, str] = {}
        self.ran: list[str] = []
        self.seconds: dict[str, list[float]] = {}  # per cell kind, the cells finished by this run
        self.capacity, self._capacity_at = 1, -math.inf
        self._last: tuple | None = None
        self.task = _remote(self.ray, "cell")

    # -- submitting

    def _refresh_capacity(self) -> None:
        if time.monotonic() - self._capacity_at > 10.0:  # nodes may join or leave during a run
            nodes = _cell_nodes(self.ray, self.cell_cpus, self.cell_gpus)
            joined = [n for n in nodes if n.slots > 0 and n.node_id not in self.probed]
            if joined:  # a node that joined after the start must see the run folder too
                check_shared_folder(self.ray, self.out, joined, self.runtime_env, self.say)
                self.probed.update(n.node_id for n in joined)
                self.say(f"ray: node(s) joined: {', '.join(n.label for n in joined)}")
            # with every node gone, one task waits in Ray's queue for a node to (re)join
            self.capacity = max(1, sum(n.slots for n in nodes))
            self._capacity_at = time.monotonic()

    def _submit(self) -> None:
        self._refresh_capacity()
        # first the cells whose dependencies have finished, then those whose dependencies are still in flight
        # (Ray starts them once those tasks return): no slot waits while a runnable cell is left
        for allow_waiting in (False, True):
            for c in list(self.pending):
                if len(self.flight) >= self.capacity:
                    return
                failed_deps = [d for d in c.deps if d in self.failed]
                if failed_deps:
                    self.pending.remove(c)
                    self.failed[c.id] = f"not run: its dependency {failed_deps[0]} failed"
                    self._event(f"{c.id} not run (dependency {failed_deps[0]} failed)")
                    continue
                ok = all(d in self.done or (allow_waiting and d in self.flight) for d in c.deps)
                if not ok:
                    continue
                deps = [self.flight[d].ref for d in c.deps if d in self.flight]
                ref = self.task.options(
                    num_cpus=self.cell_cpus,
                    num_gpus=self.cell_gpus,
                    max_retries=self.max_retries,
                    retry_exceptions=False,
                    runtime_env=self.runtime_env,
                    name=f"gemix cell {c.id}",
                ).remote(c, str(self.out), self.runners, self.token, self.quiet, *deps)
                self.pending.remove(c)
                self.flight[c.id] = _Flight(c, ref)

    # -- observing

    def _observe_starts(self) -> None:
        for cid, f in self.flight.items():
            starts = [r for r in read_records(f.cell.dir(self.out), self.token) if r.get("event") == "start"]
            if not starts or len(starts) == f.attempts:
                continue
            if f.started is None:
                f.started = time.monotonic()
            if f.attempts and len(starts) > f.attempts:
                last = starts[-1]
                self._event(
                    f"{cid}: attempt {len(starts)} on {last.get('host')} (pid {last.get('pid')}): the previous worker "
                    f"died; Ray retries a cell up to {self.max_retries} times"
                )
            f.attempts = len(starts)

    def _finish(self, ref) -> None:
        cid = next(k for k, f in self.flight.items() if f.ref == ref)
        f = self.flight.pop(cid)
        log = f.cell.dir(self.out) / "log.txt"
        try:
            res = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - every failure is reported with the cell's log
            failed_deps = [d for d in f.cell.deps if d in self.failed]
            self.failed[cid] = (
                f"not run: its dependency {failed_deps[0]} failed" if failed_deps else f"{self._reason(e)}; log: {log}"
            )
            self._event(f"{cid} FAILED ({self.failed[cid]})")
            return
        if not _visible(f.cell.dir(self.out) / "result.json", RESULT_VISIBLE_TIMEOUT_S):
            self.failed[cid] = (
                f"finished on {res['host']} but its result.json is not visible here: is --out shared? log: {log}"
            )
            self._event(f"{cid} FAILED ({self.failed[cid]})")
            return
        self.done.add(cid)
        if res["ran"]:
            self.ran.append(cid)
            self.seconds.setdefault(f.cell.kind, []).append(res["seconds"])
        how = f"done in {res['seconds']:.1f} s" if res["ran"] else "finished by another process"
        peak = f"peak {res['max_rss_mib']:.0f} MiB" + (
            f", GPU {res['max_cuda_mib']:.0f} MiB" if res.get("max_cuda_mib") is not None else ""
        )
        self._event(f"{cid} {how} on {res['host']} ({peak})")

    def _reason(self, e: BaseException) -> str:
        exc = self.ray.exceptions
        if isinstance(e, exc.RayTaskError):
            cause = getattr(e, "cause", None)
            return _first_line(cause) if isinstance(cause, BaseException) else _first_line(e)
        if isinstance(e, (exc.WorkerCrashedError, exc.NodeDiedError, exc.LocalRayletDiedError)):
            return f"its worker died {self.max_retries + 1} times ({_first_line(e)})"
        return _first_line(e)

    # -- progress

    def _eta(self) -> str:
        unfinished = [c for c in self.cells if c.id not in self.done and c.id not in self.failed]
        if not unfinished:
            return "ETA 0 s"
        now = time.monotonic()
        runs = []
        for c in unfinished:
            f = self.flight.get(c.id)
            runs.append((c.kind, now - f.started if f is not None and f.started is not None else None))
        left = estimate_left(runs, self.seconds, self.capacity)
        return "ETA after the first cell" if left is None else f"ETA {_duration(left)}"

    def _status(self) -> tuple[int, int, int, int]:
        running = sum(f.started is not None for f in self.flight.values())
        finished, failed = len(self.done), len(self.failed)
        return finished, running, len(self.cells) - finished - running - failed, failed

    def _event(self, text: str | None = None) -> None:
        """One line when the counts change or something happened (``text``)."""
        status = self._status()
        if text is None and status == self._last:
            return
        self._last = status
        finished, running, pending, failed = status
        line = f"ray: {finished}/{len(self.cells)} finished, {running} running, {pending} pending"
        line += f", {failed} failed" if failed else ""
        line += f"; {self._eta()}" + (f" | {text}" if text else "")
        self.say(line)

    # -- the loop

    def run(self) -> list[str]:
        try:
            while self.pending or self.flight:
                self._submit()
                if not self.flight:
                    if self.pending:
                        raise RuntimeError(
                            f"cells cannot start, their dependencies are missing: {[c.id for c in self.pending]}"
                        )
                    break
                refs = [f.ref for f in self.flight.values()]
                ready, _ = self.ray.wait(refs, num_returns=1, timeout=self.poll_s)
                if ready:  # and whatever else has finished by now
                    ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
                self._observe_starts()
                # in plan order: a dependency's failure is known before the cells that waited for it are reported
                order = {f.ref: self.position[cid] for cid, f in self.flight.items()}
                for ref in sorted(ready, key=order.__getitem__):
                    self._finish(ref)
                self._event()
        except KeyboardInterrupt:
            self._cancel("interrupted (Ctrl-C)")
            raise
        finally:
            if self.flight:  # an unexpected error: leave nothing running on the cluster
                self._cancel("stopped by an error")
        if self.failed:
            raise RuntimeError("cells failed:\n" + "\n".join(f"  {k}: {v}" for k, v in self.failed.items()))
        return self.ran

    def _cancel(self, why: str) -> None:
        flights, self.flight = list(self.flight.values()), {}
        for f in flights:
            with contextlib.suppress(Exception):
                self.ray.cancel(f.ref, force=True)  # kills the worker; a cancelled task is not retried
        if flights:
            with contextlib.suppress(Exception):
                self.ray.wait([f.ref for f in flights], num_returns=len(flights), timeout=30)
        ids = ", ".join(f.cell.id for f in flights) or "none"
        self.say(
            f"ray: {why}: cancelled {len(flights)} cell(s) in flight ({ids}); {len(self.done)} finished cell(s) keep "
            "their result.json; run the same command again to resume the others"
        )


def run_cells_on_ray(
    cells: Sequence[Cell],
    out,
    runners: Mapping,
    *,
    address: str | None = None,
    cell_cpus: float = 1.0,
    cell_gpus: float = 0.0,
    max_retries: int = MAX_RETRIES,
    runtime_env: dict | str | None = "auto",
    verbose: bool = True,
    quiet: bool = True,
) -> list[str]:
    """Run the unfinished ``cells`` (in dependency order, as planned) as Ray tasks, each with its kind's runner from
    ``runners`` (the comparison's registry); returns the ids of the cells run.

    ``address``: ``None`` (Ray's rule: ``RAY_ADDRESS``, else a cluster started on this machine, else a new local
    one), ``"auto"``, ``"HOST:PORT"`` of a running head, ``"ray://HOST:PORT"`` or ``"local"`` (a private cluster on
    127.0.0.1 for this run). A driver already connected (``ray.is_initialized()``) is used as it is. Raises
    ``RuntimeError`` listing the failed cells after the others have run; Ctrl-C cancels the tasks in flight.
    """
    ray = import_ray()
    out = Path(out)
    say = printer(verbose)
    todo = [c for c in cells if not is_finished(c, out)]
    if not todo:
        say(f"ray: all {len(cells)} cells are finished; nothing to run")
        return []
    connected_here = not ray.is_initialized()
    if connected_here:
        _connect(ray, address)
    try:
        env = default_runtime_env() if runtime_env == "auto" else runtime_env
        capacity, nodes = _capacity(ray, cell_cpus, cell_gpus)
        probed = set(check_shared_folder(ray, out, nodes, env, say))
        say(
            f"ray: {len(todo)} of {len(cells)} cells to run ({len(cells) - len(todo)} finished before), "
            f"{cell_cpus:g} CPU + {cell_gpus:g} GPU each, up to {capacity} at once on {len(nodes)} node(s); "
            f"each cell's output in <cell>/log.txt"
        )
        scheduler = _Scheduler(
            ray, cells, out, runners, cell_cpus, cell_gpus, max_retries, env, quiet, say, probed=probed
        )
        return scheduler.run()
    finally:
        if connected_here:
            ray.shutdown()
