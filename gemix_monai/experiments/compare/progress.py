"""What the driver of a comparison prints while it runs (docs/experiments.md, "Progress"): cells finished / running /
pending, an ETA from the mean time of each cell kind so far, and, while a long cell runs, a line every
``heartbeat_s`` seconds naming it, how long it has run and where its own log is. Shared by the local executors and
the Ray executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["HEARTBEAT_S", "CellProgress", "duration", "estimate_left", "printer"]

#: Seconds between two "still running" lines of one cell.
HEARTBEAT_S = 60.0


def printer(verbose: bool) -> Callable[[str], None]:
    """The driver's progress lines: printed (flushed) when ``verbose``, else dropped."""
    return (lambda line: print(line, flush=True)) if verbose else (lambda line: None)


def duration(seconds: float) -> str:
    """``"1 h 02 min"``, ``"3 min 07 s"`` or ``"42 s"``."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def estimate_left(
    unfinished: Iterable[tuple[str, float | None]], seconds: Mapping[str, list[float]], capacity: int
) -> float | None:
    """Seconds until the ``unfinished`` cells (``(kind, seconds it has run or None if not started)``) are done, at
    ``capacity`` cells at a time, each kind taking its mean so far (the mean of all kinds for a kind not seen yet);
    ``None`` before any cell finished."""
    everything = [s for v in seconds.values() for s in v]
    if not everything:
        return None
    overall = sum(everything) / len(everything)
    mean = {k: sum(v) / len(v) for k, v in seconds.items() if v}
    left, n = 0.0, 0
    for kind, elapsed in unfinished:
        left += max(0.0, mean.get(kind, overall) - (elapsed or 0.0))
        n += 1
    return left / max(1, min(capacity, n)) if n else 0.0


class CellProgress:
    """Counts and ETA of a comparison's ``cells`` (those in ``finished`` are done before the run starts).

    ``started(cell)`` / ``finished(cell, seconds, ok)`` record events and print one line each through ``say``;
    ``heartbeat()`` prints the running cells when ``heartbeat_s`` has passed since the last line (call it from a
    polling loop, or run :meth:`beat_in_background` around an in-process cell)."""

    def __init__(
        self,
        cells,
        finished: Iterable[str],
        *,
        out: Path,
        capacity: int = 1,
        say: Callable[[str], None] = print,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.cells = list(cells)
        self.kind = {c.id: c.kind for c in self.cells}
        self.done = set(finished) & set(self.kind)
        self.failed: set[str] = set()
        self.running: dict[str, float] = {}
        self.seconds: dict[str, list[float]] = {}
        self.out, self.capacity, self.say, self.heartbeat_s = Path(out), max(1, int(capacity)), say, heartbeat_s
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def counts(self) -> tuple[int, int, int, int]:
        """``(finished, running, pending, failed)``."""
        finished, running, failed = len(self.done), len(self.running), len(self.failed)
        return finished, running, len(self.cells) - finished - running - failed, failed

    def eta(self) -> str:
        now = time.monotonic()
        unfinished = [
            (self.kind[c.id], now - self.running[c.id] if c.id in self.running else None)
            for c in self.cells
            if c.id not in self.done and c.id not in self.failed
        ]
        if not unfinished:
            return "ETA 0 s"
        left = estimate_left(unfinished, self.seconds, self.capacity)
        return "ETA after the first cell" if left is None else f"ETA {duration(left)}"

    def _line(self, text: str) -> None:
        finished, running, pending, failed = self.counts()
        head = f"[{finished}/{len(self.cells)}] {running} running, {pending} pending" + (
            f", {failed} failed" if failed else ""
        )
        self.say(f"{head}; {self.eta()} | {text}")
        self._last = time.monotonic()

    def started(self, cell) -> None:
        with self._lock:
            self.running[cell.id] = time.monotonic()
            self._line(f"{cell.id} started (its log: {cell.dir(self.out) / 'log.txt'})")

    def finished(self, cell, seconds: float, ok: bool = True, note: str = "") -> None:
        with self._lock:
            self.running.pop(cell.id, None)
            if ok:
                self.done.add(cell.id)
                self.seconds.setdefault(cell.kind, []).append(float(seconds))
                self._line(f"{cell.id} done in {seconds:.1f} s" + (f" {note}" if note else ""))
            else:
                self.failed.add(cell.id)
                self._line(f"{cell.id} FAILED" + (f" ({note})" if note else ""))

    def heartbeat(self, force: bool = False) -> None:
        with self._lock:
            if not self.running or (not force and time.monotonic() - self._last < self.heartbeat_s):
                return
            now = time.monotonic()
            running = ", ".join(f"{cid} for {duration(now - t)}" for cid, t in sorted(self.running.items()))
            self._line(f"running: {running}")

    def beat_in_background(self) -> threading.Event:
        """Start a daemon thread calling :meth:`heartbeat` until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(min(self.heartbeat_s, 5.0)):
                self.heartbeat()

        threading.Thread(target=loop, name="compare-progress", daemon=True).start()
        return stop
