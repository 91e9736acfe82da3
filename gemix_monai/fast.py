"""CPU training fast path (issue 14): one switch, ``GEMIX_FAST``, and the pieces it turns on.

``GEMIX_FAST`` (environment) or ``GanTrainingOptions.fast``:

* ``0`` -- the old path everywhere: ops dispatched through ``torch.library.custom_op`` on every
  call, NCHW tensors, the for-loop Adam, float32 convolutions. Bit-for-bit what it was.
* ``exact`` -- only changes that keep the numbers identical: the custom ops'
  eager calls skip the ``torch.library`` Python layer (a lean ``autograd.Function`` calls the same
  kernels; under ``torch.compile`` the registered op is still what is traced), and the generator
  EMA is updated with two foreach calls instead of two ops per parameter.
* unset / ``auto`` (default) / ``1`` -- also the changes that move float rounding (training only):
  ``channels_last`` networks (oneDNN's convolutions are 1.1-1.5x faster in NHWC on these shapes), the fused CPU
  Adam, and, where ``GEMIX_BF16=1`` and the CPU has native bf16 (AVX512-BF16 / AMX), oneDNN's implicit bf16
  math for the convolutions and matmuls of the main G and D steps (float32 in and out, float32
  accumulation; the losses, the R1 penalty and the path-length penalty stay in full float32). The default since
  issue 19: 1.16x more kimg per CPU-hour (docs/benchmarks.md, "kimg per CPU-hour": 2 rounds, one seed; FD 0.65 vs
  0.74, minority recall 0.17 vs 0.33 at 5 kimg, within what one seed varies, not a quality claim); bf16 stays
  opt-in (1.10x, and no better audit numbers on the measured CPU).

``OMP_WAIT_POLICY``: importing ``gemix_monai`` before ``torch`` sets it to ``PASSIVE`` unless it
is set already or ``GEMIX_FAST=0`` (see :func:`configure_openmp`); on a CPU shared with other
processes that is worth far more than everything above (docs/benchmarks.md, "CPU training").
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

__all__ = [
    "fast_level",
    "exact_fast",
    "training_fast",
    "bf16_requested",
    "cpu_has_native_bf16",
    "cpu_bf16_math",
    "configure_openmp",
]


def fast_level(option=None) -> int:
    """0 (old path), 1 (exact speed-ups only) or 2 (also the ones that move rounding; the default).

    ``option`` (``GanTrainingOptions.fast``: ``None``, ``False`` or ``True``) wins over the environment.
    """
    if option is True:
        return 2
    if option is False:
        return 0
    value = os.environ.get("GEMIX_FAST", "auto").strip().lower()
    if value in ("0", "false", "off", "no"):
        return 0
    if value == "exact":
        return 1
    if value in ("1", "true", "on", "yes", "auto", ""):
        return 2
    raise ValueError(f"GEMIX_FAST must be 0, exact, auto or 1, got {value!r}")


def exact_fast() -> bool:
    """Numerically identical speed-ups on (every level but ``GEMIX_FAST=0``)."""
    return os.environ.get("GEMIX_FAST", "auto").strip().lower() not in ("0", "false", "off", "no")


def training_fast(option=None) -> bool:
    """channels_last + fused Adam (+ bf16 when requested and supported) in the GAN trainer."""
    return fast_level(option) >= 2


def bf16_requested() -> bool:
    return os.environ.get("GEMIX_BF16", "0").strip().lower() in ("1", "true", "on", "yes")


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16) and oneDNN is there."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    try:
        if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
            return False
    except Exception:  # pragma: no cover - very old torch
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


@contextlib.contextmanager
def cpu_bf16_math(enabled: bool = True):
    """oneDNN convolutions and matmuls on float32 tensors compute in bf16 (float32 accumulation)
    inside the block; tensors stay float32. A no-op when disabled or unsupported."""
    import torch

    if not enabled or not cpu_has_native_bf16():
        yield False
        return
    conv, mm = torch.backends.mkldnn.conv, torch.backends.mkldnn.matmul
    old = conv.fp32_precision, mm.fp32_precision
    conv.fp32_precision = mm.fp32_precision = "bf16"
    try:
        yield True
    finally:
        conv.fp32_precision, mm.fp32_precision = old


def configure_openmp() -> bool:
    """Default ``OMP_WAIT_POLICY=PASSIVE`` for this process if OpenMP is not loaded yet.

    PyTorch's CPU builds use GNU OpenMP, whose idle threads spin (about 300k iterations) before
    sleeping. On a machine whose cores are shared with other processes that spinning competes
    with the threads doing work, and every parallel region ends at a barrier that waits for a
    descheduled thread: a 2-thread training step of the tiny preset measured 3.4-5.7 s instead of
    0.5 s at load average 6-7 on 2 cores. The variable is read once when libgomp loads (with
    ``import torch``), so this only works before that; returns whether it set it.
    """
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or not exact_fast():
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
