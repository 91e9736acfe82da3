"""A one-time self-check of each compiled kernel against the pure-PyTorch reference.

The first call of an op that resolves to a compiled path (``cpp`` or ``cuda``, see
:mod:`gemix_monai.ops._ext`) in a process runs that op's kernels on a few small inputs, in the
call's dtype and on the call's device, and compares forward results and first-order gradients
(second order too for ``bias_act``, whose order-2 derivative is a kernel of its own) with the
reference, computed in float64 on the same (dtype-rounded) inputs. A pass is remembered per
``(op, path, device type, dtype)``; the check costs a few milliseconds once.

A mismatch raises :class:`OpSelfCheckError` naming the op, the path, the dtype, the case and the
error size, at that call and at every later call with the same key: a wrong kernel (a miscompiled
build, a kernel never run on this GPU architecture) must not train a model silently. The way
around is ``GEMIX_OPS=ref``; ``GEMIX_OPS_SELFCHECK=0`` skips the check (docs/design.md, "ops").

Under ``torch.compile`` the check runs once while tracing, in plain Python outside the graph
(:func:`torch.compiler.assume_constant_result`), so a compiled module is checked before its first
step and its graph holds no trace of the check. The check calls the raw kernels
(``torch.ops.gemix_C.*``) and the reference functions directly, never the public ops, so it cannot
trigger itself; a per-thread flag guards against that anyway. It is skipped, and tried again at a
later call, while a CUDA graph is being captured or a dispatch mode (fake tensors, say) is active.

Each op module registers its own check at import (:func:`register_check`: the raw kernels it compares and a
generator of its cases, written beside the kernels and reference functions they use); this module imports no op,
so imports run one way, ops → self-check (docs/design.md, "ops").

``python -m gemix_monai.ops._selfcheck --device cuda`` runs every op's check for every dtype the
kernels support on that device and prints each error beside its tolerance (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "OpSelfCheckError",
    "SELFCHECK_RTOL",
    "CheckResult",
    "OpCheck",
    "register_check",
    "registered_ops",
    "ensure_checked",
    "run_selfcheck",
    "selfcheck_enabled",
]


class OpSelfCheckError(RuntimeError):
    """A compiled kernel disagrees with the pure-PyTorch reference (see the module docstring)."""


#: Allowed max |kernel - reference| as a fraction of max |reference|, per dtype. The reference is
#: float64 on the same rounded inputs, so these cover the output's rounding and the kernels'
#: accumulation order (float16/bfloat16 accumulate in float32); a wrong kernel (a dropped tap, a
#: swapped axis, a wrong activation) errs by 10% or more.
SELFCHECK_RTOL = {torch.float64: 1e-7, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}

#: One case of a check: its name, the kernel's output and the reference's (float64) for the same inputs.
Case = tuple[str, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class OpCheck:
    """What the self-check runs for one op: the raw kernels it compares (named in the messages) and ``cases(device,
    dtype)``, which yields every :data:`Case` of the op."""

    kernels: tuple[str, ...]
    cases: Callable[[torch.device, torch.dtype], Iterable[Case]]


# The registry the ops fill at import (register_check): this module never imports an op, so the ops can call it.
_CHECKS: dict[str, OpCheck] = {}
# Report order of run_selfcheck (ops registered under other names follow, in registration order).
_REPORT_ORDER = ("upfirdn2d", "bias_act", "modulated_conv2d")
_DEVICE_DTYPES = {
    "cpp": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}

_passed: set = set()  # keys (op, path, device type, dtype) whose check passed
_failed: dict = {}  # key -> the error message of its failed check
_lock = threading.Lock()
_local = threading.local()  # .active: this thread is running a check


def register_check(
    op: str, kernels: Sequence[str], cases: Callable[[torch.device, torch.dtype], Iterable[Case]]
) -> None:
    """Register ``op``'s check: the raw ``gemix_C`` kernels it compares and the generator of its cases.

    Each op module calls this at import, beside the kernels and reference functions its cases use, so the check
    lives with the op it checks and this module imports none of them (docs/design.md, "ops").
    """
    _CHECKS[op] = OpCheck(tuple(kernels), cases)


def registered_ops() -> tuple[str, ...]:
    """The ops with a registered check, in report order."""
    known = [op for op in _REPORT_ORDER if op in _CHECKS]
    return tuple(known + [op for op in _CHECKS if op not in known])


def _check_of(op: str) -> OpCheck:
    if op not in _CHECKS:
        raise ValueError(f"no self-check is registered for op {op!r}; registered: {list(registered_ops())}")
    return _CHECKS[op]


def selfcheck_enabled() -> bool:
    """``GEMIX_OPS_SELFCHECK``: unset or ``1`` runs the check, ``0`` skips it; other values are an error."""
    value = os.environ.get("GEMIX_OPS_SELFCHECK", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"GEMIX_OPS_SELFCHECK must be 0 (skip the kernels' self-check) or 1 (run it), got {value!r}")
    return value == "1"


def ensure_checked(op: str, path: str, device: torch.device, dtype: torch.dtype) -> None:
    """Run ``op``'s self-check for ``path`` on ``device`` in ``dtype`` unless it already passed.

    Called by the ops right after the path is chosen; returns at once for ``'ref'`` and for a key
    that passed (a set lookup). Raises :class:`OpSelfCheckError` for a key whose check failed.
    """
    if path == "ref":
        return
    if torch.compiler.is_compiling():
        _ensure_at_trace_time(op, path, device, dtype)
        return
    if (op, path, device.type, dtype) in _passed:
        return
    _ensure_now(op, path, device, dtype)


@torch.compiler.assume_constant_result
def _ensure_at_trace_time(op: str, path: str, device: torch.device, dtype: torch.dtype) -> bool:
    # Dynamo calls this in plain Python with the constant arguments and bakes in the result:
    # the check runs eagerly, on real tensors, once per trace, outside the graph.
    _ensure_now(op, path, device, dtype)
    return True


def _ensure_now(op: str, path: str, device: torch.device, dtype: torch.dtype) -> None:
    key = (op, path, device.type, dtype)
    if key in _passed:
        return
    if key in _failed:
        raise OpSelfCheckError(_failed[key])
    if getattr(_local, "active", False) or not selfcheck_enabled() or _must_wait(device):
        return
    with _lock:
        if key in _passed:  # another thread checked it meanwhile
            return
        if key in _failed:
            raise OpSelfCheckError(_failed[key])
        _local.active = True
        try:
            failure = _first_failure(op, path, device, dtype)
        finally:
            _local.active = False
        if failure is None:
            _passed.add(key)
            return
        _failed[key] = failure
    raise OpSelfCheckError(failure)


def _must_wait(device: torch.device) -> bool:
    """True where real tensors cannot be computed and compared now (try again at a later call)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    if _get_current_dispatch_mode() is not None:  # fake tensors, a tracing or counting mode
        return True
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


# ----------------------------------------------------------------------------------------------
# Running a check: every case of the op, each compared with its reference.


@dataclass(frozen=True)
class CheckResult:
    """One compared output of one case: ``error`` = max |kernel - reference|, ``scale`` = max |reference|."""

    op: str
    path: str
    dtype: torch.dtype
    case: str
    error: float
    scale: float
    rtol: float
    problem: str | None = None  # a wrong shape/dtype, or the exception the kernel raised

    @property
    def tolerance(self) -> float:
        return self.rtol * self.scale

    @property
    def ok(self) -> bool:
        return self.problem is None and self.error <= self.tolerance  # NaN fails

    def message(self, device: torch.device) -> str:
        kernels = "/".join(f"gemix_C.{k}" for k in _check_of(self.op).kernels)
        dtype = str(self.dtype).replace("torch.", "")
        head = (
            f"{self.op}: the compiled {self.path} kernel ({kernels}) disagrees with the pure-PyTorch reference "
            f"for {dtype} on {device}, case {self.case}: "
        )
        if self.problem is not None:
            what = self.problem
        else:
            what = (
                f"max abs error {self.error:.3g} where at most {self.tolerance:.3g} is allowed "
                f"({self.rtol:g} x max |reference| {self.scale:.3g})"
            )
        return (
            head + what + ". Its results would be wrong: set GEMIX_OPS=ref to use the reference path "
            "(docs/design.md, section ops)."
        )


def _first_failure(op: str, path: str, device: torch.device, dtype: torch.dtype) -> str | None:
    for result in _results(op, path, device, dtype):
        if not result.ok:
            return result.message(device)
    return None


def _results(op: str, path: str, device: torch.device, dtype: torch.dtype) -> list[CheckResult]:
    """Each compared output of ``op``'s cases, in order (a kernel that raises ends the list with a
    failed result naming the exception)."""
    from gemix_monai.ops._ext import get_extension

    check = _check_of(op)
    get_extension()  # importing the extension registers torch.ops.gemix_C.*
    rtol = SELFCHECK_RTOL.get(dtype)
    if rtol is None:
        raise ValueError(f"{op}: the self-check has no tolerance for dtype {dtype}")
    results: list[CheckResult] = []
    case = None
    # The caller may be in no_grad/inference mode or under autocast: the check needs neither.
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        try:
            for case, kernel_out, reference in check.cases(device, dtype):
                results.append(_compare(op, path, dtype, case, kernel_out, reference, rtol))
        except Exception as error:  # a kernel that raises fails the check, named
            cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
            problem = f"raised {type(error).__name__}: {cause}"
            where = "(the first)" if case is None else f"(the one after {case})"
            results.append(CheckResult(op, path, dtype, where, float("nan"), 0.0, rtol, problem))
    return results


def _compare(op, path, dtype, case, out: torch.Tensor, ref: torch.Tensor, rtol: float) -> CheckResult:
    if tuple(out.shape) != tuple(ref.shape) or out.dtype != dtype:
        problem = (
            f"output of shape {tuple(out.shape)} and dtype {out.dtype}, "
            f"expected shape {tuple(ref.shape)} and dtype {dtype}"
        )
        return CheckResult(op, path, dtype, case, float("nan"), 0.0, rtol, problem)
    diff = (out.detach().to(torch.float64) - ref.detach()).abs().max()
    scale = ref.detach().abs().max()
    return CheckResult(op, path, dtype, case, float(diff), max(float(scale), 1e-30), rtol)


def raw_kernel(name: str):
    """The compiled kernel ``torch.ops.gemix_C.<name>``, looked up at each call (tests replace it)."""
    return getattr(torch.ops.gemix_C, name)


def case_inputs(generator: torch.Generator, shape, device, dtype, scale: float = 1.0, positive: bool = False):
    """Random values rounded to ``dtype`` (the kernel's input) and the same values in float64 (the reference's)."""
    v = torch.randn(*shape, generator=generator, dtype=torch.float64, device="cpu") * scale
    if positive:
        v = v.abs() + 0.25
    low = v.to(device=device, dtype=dtype)
    return low, low.to(torch.float64)


def grad(outputs: torch.Tensor, inputs, grad_outputs: torch.Tensor, create_graph: bool = False):
    """``torch.autograd.grad`` of ``outputs`` w.r.t. ``inputs`` (for the gradient cases)."""
    return torch.autograd.grad(outputs, inputs, grad_outputs, create_graph=create_graph)


def run_selfcheck(
    device: torch.device | str, dtypes: tuple[torch.dtype, ...] | None = None, ops: tuple[str, ...] | None = None
) -> list[CheckResult]:
    """Every compared output of every op's check on ``device`` (each dtype its kernels support by
    default), whatever was checked before; nothing is raised or remembered. For reports."""
    device = torch.device(device)
    path = "cuda" if device.type == "cuda" else "cpp"
    results = []
    for op in ops or registered_ops():
        for dtype in dtypes or _DEVICE_DTYPES[path]:
            results.extend(_results(op, path, device, dtype))
    return results


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m gemix_monai.ops._selfcheck",
        description="Compare every compiled kernel with the pure-PyTorch reference on small inputs.",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("selfcheck: --device cuda but torch.cuda.is_available() is False")
        return 2
    from gemix_monai.ops._ext import extension_error, get_extension, has_cuda_kernels

    if get_extension() is None or (device.type == "cuda" and not has_cuda_kernels()):
        print(f"selfcheck: no compiled {device.type} kernels to check: {extension_error() or 'built without CUDA'}")
        return 1
    results = run_selfcheck(device)
    failed = [r for r in results if not r.ok]
    print(f"{'op':17s} {'dtype':9s} {'case':44s} {'max |error|':>11s} {'tolerance':>10s}  result")
    for r in results:
        verdict = "ok" if r.ok else f"FAIL {r.problem or ''}".rstrip()
        dtype = str(r.dtype).replace("torch.", "")
        print(f"{r.op:17s} {dtype:9s} {r.case:44s} {r.error:11.3g} {r.tolerance:10.3g}  {verdict}")
    print(f"selfcheck: {len(results) - len(failed)} of {len(results)} outputs within tolerance on {device}")
    return 1 if failed else 0


if __name__ == "__main__":
    # Run as ``python -m``, this file is a second module (``__main__``); importing the package loaded the ops, which
    # registered their checks with ``gemix_monai.ops._selfcheck``: report from that one.
    import gemix_monai.ops._selfcheck as registered

    raise SystemExit(registered._main())
