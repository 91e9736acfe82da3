"""Progress of a generator's training in the unit it is budgeted in: thousands of real images shown (kimg).

:class:`KimgProgress` replaces Ignite's ``ProgressBar`` on the generator trainers. Ignite's bar counts one pass over
the data (``Epoch [17/43] 40%``) and, on a run that ends mid-epoch, is left short of 100 %; this one counts kimg
from the first step (or the resumed count) to ``max_kimg``, shows the rate in s/kimg and the time left, and is
set to 100 % when the run completes. Every ``tick_kimg`` it also writes one log line, as StyleGAN2-ADA's
``training_loop`` does::

    tick 3      kimg 3.000    time 41s          sec/tick 13.2    sec/kimg 13.19   loss_G 1.172  loss_D 1.190  augment 0.021
"""

from __future__ import annotations

import logging
import math
import time

from ignite.engine import Engine, Events

__all__ = ["KimgProgress", "format_duration"]

logger = logging.getLogger("gemix_monai.training")


def format_duration(seconds: float) -> str:
    """``41s``, ``3m 07s``, ``2h 05m``, ``1d 03h``: StyleGAN2-ADA's ``format_time``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {(s // 60) % 60:02d}m"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h"


class KimgProgress:
    """Generator trainer handler: a kimg progress bar (``bar=True``, rank 0) and a tick line every ``tick_kimg``.

    Reads the trainer's ``images_seen``, ``options.max_kimg``, ``options.batch_size``, its step output (every scalar
    whose name starts with ``loss``, averaged over the tick) and ``augment_pipe.p`` when it has an augmentation
    pipeline. ``tick_kimg`` defaults to a tenth of the run (at least one step): ten tick lines per run, the last
    one at the end. ``lines`` keeps the tick lines written.
    """

    def __init__(self, tick_kimg: float | None = None, bar: bool = True) -> None:
        if tick_kimg is not None and not tick_kimg > 0:
            raise ValueError(f"tick_kimg must be > 0 kimg, got {tick_kimg!r}")
        self.tick_kimg, self.bar = tick_kimg, bar
        self.lines: list[str] = []
        self._pbar = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._step)
        engine.add_event_handler(Events.COMPLETED, self._complete)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._close_on_error)
        engine.add_event_handler(Events.TERMINATE, self._close)

    # -- events ----------------------------------------------------------------------------------
    def _start(self, engine: Engine) -> None:
        o = engine.options
        self.max_kimg = float(o.max_kimg)
        self.every = self.tick_kimg or max(self.max_kimg / 10, o.batch_size / 1000)
        kimg = engine.images_seen / 1000
        self.tick = int(math.floor(kimg / self.every + 1e-9))
        self._next = (self.tick + 1) * self.every
        self._t0 = self._tick_t0 = time.perf_counter()
        self._tick_kimg0 = kimg
        self._losses: dict[str, list[float]] = {}
        if self.bar and getattr(engine, "rank", 0) == 0:
            from tqdm.auto import tqdm

            self._pbar = tqdm(
                total=self.max_kimg,
                initial=min(kimg, self.max_kimg),
                unit="kimg",
                bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} kimg [{elapsed}<{remaining}, {rate_inv_fmt}]",
                dynamic_ncols=True,
                leave=True,
                smoothing=0,  # the run's mean rate: one step's time swings with the load, the ETA should not
            )

    def _step(self, engine: Engine) -> None:
        out = engine.state.output if isinstance(engine.state.output, dict) else {}
        for name, value in out.items():
            value = _scalar(value) if name.startswith("loss") else None
            if value is not None:
                self._losses.setdefault(name, []).append(value)
        kimg = engine.images_seen / 1000
        if self._pbar is not None:
            self._pbar.update(min(kimg, self.max_kimg) - self._pbar.n)
        if kimg >= self._next - 1e-9:
            self._write_tick(engine, kimg)

    def _complete(self, engine: Engine) -> None:
        kimg = engine.images_seen / 1000
        if kimg > self._tick_kimg0 + 1e-9:  # steps since the last tick
            self._write_tick(engine, kimg)
        if self._pbar is not None:
            # the run is done: the bar ends full whatever rounding left (a budget that is not a whole number of steps)
            self._pbar.update(self._pbar.total - self._pbar.n)
        self._close(engine)

    def _close_on_error(self, engine: Engine, e: BaseException) -> None:
        self._close(engine)
        raise e

    def _close(self, engine: Engine) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    # -- tick lines ------------------------------------------------------------------------------
    def _write_tick(self, engine: Engine, kimg: float) -> None:
        now = time.perf_counter()
        tick_seconds = now - self._tick_t0
        done = kimg - self._tick_kimg0
        parts = [
            f"tick {self.tick:<5d}",
            f"kimg {kimg:<8.3f}",
            f"time {format_duration(now - self._t0):<12s}",
            f"sec/tick {tick_seconds:<7.1f}",
            f"sec/kimg {tick_seconds / done if done > 0 else float('nan'):<7.2f}",
        ]
        parts += [f"{name} {sum(v) / len(v):.3f}" for name, v in sorted(self._losses.items()) if v]
        pipe = getattr(engine, "augment_pipe", None)
        if pipe is not None and hasattr(pipe, "p"):
            parts.append(f"augment {float(pipe.p):.3f}")
        line = "  ".join(parts)
        if getattr(engine, "rank", 0) == 0:
            self.lines.append(line)
            logger.info(line)
        self.tick += 1
        self._next = (self.tick + 1) * self.every
        self._tick_t0, self._tick_kimg0, self._losses = now, kimg, {}


def _scalar(value) -> float | None:
    """``value`` as a float when it is one number (a Python number or a one-element tensor), else ``None``."""
    if getattr(value, "numel", lambda: 1)() != 1:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
