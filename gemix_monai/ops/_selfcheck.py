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

``python -m gemix_monai.ops._selfcheck --device cuda`` runs every op's check for every dtype the
kernels support on that device and prints each error beside its tolerance (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["OpSelfCheckError", "SELFCHECK_RTOL", "CheckResult", "ensure_checked", "run_selfcheck", "selfcheck_enabled"]


class OpSelfCheckError(RuntimeError):
    """A compiled kernel disagrees with the pure-PyTorch reference (see the module docstring)."""


#: Allowed max |kernel - reference| as a fraction of max |reference|, per dtype. The reference is
#: float64 on the same rounded inputs, so these cover the output's rounding and the kernels'
#: accumulation order (float16/bfloat16 accumulate in float32); a wrong kernel (a dropped tap, a
#: swapped axis, a wrong activation) errs by 10% or more.
SELFCHECK_RTOL = {torch.float64: 1e-7, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 3e-2}

# The ops and the raw kernels each one's check runs (for the messages and run_selfcheck).
_KERNELS = {
    "upfirdn2d": ("upfirdn2d",),
    "bias_act": ("bias_act", "bias_act_grad"),
    "modulated_conv2d": ("modulate_weight", "modulate_weight_backward"),
}
_DEVICE_DTYPES = {
    "cpp": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}

_passed: set = set()  # keys (op, path, device type, dtype) whose check passed
_failed: dict = {}  # key -> the error message of its failed check
_lock = threading.Lock()
_local = threading.local()  # .active: this thread is running a check


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
        kernels = "/".join(f"gemix_C.{k}" for k in _KERNELS[self.op])
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

    get_extension()  # importing the extension registers torch.ops.gemix_C.*
    rtol = SELFCHECK_RTOL.get(dtype)
    if rtol is None:
        raise ValueError(f"{op}: the self-check has no tolerance for dtype {dtype}")
    results: list[CheckResult] = []
    case = None
    # The caller may be in no_grad/inference mode or under autocast: the check needs neither.
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        try:
            for case, kernel_out, reference in _CASES[op](device, dtype):
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


def _kernel(name: str):
    return getattr(torch.ops.gemix_C, name)


def _inputs(generator: torch.Generator, shape, device, dtype, scale: float = 1.0, positive: bool = False):
    """Random values rounded to ``dtype`` (the kernel's input) and the same values in float64 (the reference's)."""
    v = torch.randn(*shape, generator=generator, dtype=torch.float64, device="cpu") * scale
    if positive:
        v = v.abs() + 0.25
    low = v.to(device=device, dtype=dtype)
    return low, low.to(torch.float64)


def _grad(outputs: torch.Tensor, inputs, grad_outputs: torch.Tensor, create_graph: bool = False):
    return torch.autograd.grad(outputs, inputs, grad_outputs, create_graph=create_graph)


# upfirdn2d: the forward kernel in three geometries (up with a separable filter, down with a
# flipped 2-D filter and a gain, mixed up/down with cropping on a channels_last input) and the
# gradient of each, which is the same kernel with up and down swapped (upfirdn2d._gradient_args).
def _cases_upfirdn2d(device, dtype):
    from gemix_monai.ops.upfirdn2d import _LeanUpfirdn2d, upfirdn2d_ref

    g = torch.Generator().manual_seed(20)
    x, x64 = _inputs(g, (2, 3, 7, 6), device, dtype)
    f1 = (
        torch.randn(4, generator=g, dtype=torch.float64, device="cpu")
        .abs()
        .add(0.25)
        .to(device=device, dtype=torch.float32)
    )
    f2 = (
        torch.randn(3, 4, generator=g, dtype=torch.float64, device="cpu")
        .abs()
        .add(0.25)
        .to(device=device, dtype=torch.float32)
    )
    f1, f2 = f1 / f1.sum(), f2 / f2.sum()
    geometries = (
        ("up=2 separable", x, x64, f1, (2, 2, 1, 1, 2, 1, 2, 1, False, 1.0)),
        ("down=2 2-D flip gain=2", x, x64, f2, (1, 1, 2, 2, 1, 1, 2, 0, True, 2.0)),
        (
            "up=(1,2) down=(2,1) crop channels_last",
            x.contiguous(memory_format=torch.channels_last),
            x64,
            f1,
            (1, 2, 2, 1, -1, 2, 1, 0, False, 1.0),
        ),
    )
    for name, xk, xr, f, args in geometries:
        xk = xk.detach().requires_grad_(True)
        xr = xr.detach().requires_grad_(True)
        yk = _LeanUpfirdn2d.apply(xk, f, *args)
        yr = upfirdn2d_ref(xr, f.to(torch.float64), *args)
        yield f"forward {name}", yk, yr
        dy, dy64 = _inputs(g, tuple(yr.shape), device, dtype)
        yield f"gradient {name}", _grad(yk, xk, dy)[0], _grad(yr, xr, dy64)[0]


def _clamp_between(values: torch.Tensor) -> float:
    """A clamp level in the widest gap of the middle of ``|values|``: no value lies within rounding
    of it, so the clamp mask is the same for the kernel (in float16, say) and the reference."""
    a = values.detach().abs().flatten().sort().values
    lo, hi = len(a) // 3, 2 * len(a) // 3
    gaps = a[lo + 1 : hi + 1] - a[lo:hi]
    i = int(gaps.argmax()) + lo
    return float((a[i] + a[i + 1]) / 2)


# bias_act: the forward kernel for every activation (one with a clamp), the order-1 gradient
# kernel with exactly the tensors the op's backward passes it (the output y where the derivative
# can be read off it, x and b otherwise) and the order-2 kernel where act'' is not zero.
def _cases_bias_act(device, dtype):
    from gemix_monai.ops.bias_act import ACTIVATIONS, _activate, _uses_y, bias_act_ref

    g = torch.Generator().manual_seed(21)
    x, x64 = _inputs(g, (2, 3, 4, 5), device, dtype, scale=1.5)
    b, b64 = _inputs(g, (3,), device, dtype, scale=0.5)
    dy, dy64 = _inputs(g, tuple(x.shape), device, dtype)
    dim = 1
    configs = [(name, spec.def_alpha, spec.def_gain, -1.0) for name, spec in ACTIVATIONS.items()]
    for name in ("lrelu", "tanh"):
        spec = ACTIVATIONS[name]
        z = x64 + b64.reshape(1, -1, 1, 1)
        configs.append(
            (name, spec.def_alpha, spec.def_gain, _clamp_between(_activate(z, name, spec.def_alpha) * spec.def_gain))
        )
    for name, alpha, gain, clamp in configs:
        spec = ACTIVATIONS[name]
        label = f"{name}" + (f" clamp={clamp:.3g}" if clamp >= 0 else "")
        y = _kernel("bias_act")(x, b, dim, spec.code, alpha, gain, clamp)
        z64 = (x64 + b64.reshape(1, -1, 1, 1)).requires_grad_(True)
        y64 = bias_act_ref(z64, None, dim, name, alpha, gain, clamp)
        yield f"forward {label}", y, y64
        (d1_64,) = _grad(y64, z64, torch.ones_like(y64), create_graph=True)
        if _uses_y(spec.code, alpha):
            grad_args = (None, None, y64.detach().to(dtype))
        else:
            grad_args = (x, b, None)
        dx = _kernel("bias_act_grad")(dy, *grad_args, dim, spec.code, alpha, gain, clamp, 1)
        yield f"gradient order 1 {label}", dx, (dy64 * d1_64).detach()
        if spec.has_2nd_grad:
            dx2 = _kernel("bias_act_grad")(dy, x, b, None, dim, spec.code, alpha, gain, clamp, 2)
            (d2_64,) = _grad(d1_64, z64, dy64)
            yield f"gradient order 2 {label}", dx2, d2_64


# modulated_conv2d: the modulation/demodulation kernel (w_n and d) and its backward kernel,
# against modulate_weight_ref and the backward formula the op registers (_modulate_backward_ref).
def _cases_modulated_conv2d(device, dtype):
    from gemix_monai.ops.modulated_conv import DEMOD_EPS, _modulate_backward_ref, modulate_weight_ref

    g = torch.Generator().manual_seed(22)
    weight, weight64 = _inputs(g, (4, 3, 3, 3), device, dtype)
    styles, styles64 = _inputs(g, (2, 3), device, dtype, positive=True)
    grad_w, grad_w64 = _inputs(g, (2, 4, 3, 3, 3), device, dtype)
    grad_d, grad_d64 = _inputs(g, (2, 4), device, dtype)
    for demodulate in (True, False):
        label = "demodulate" if demodulate else "no demodulation"
        w_n, d = _kernel("modulate_weight")(weight, styles, demodulate, DEMOD_EPS)
        w_n64, d64 = modulate_weight_ref(weight64, styles64, demodulate)
        yield f"forward w_n {label}", w_n, w_n64
        yield f"forward d {label}", d, d64
        d_low = d64.to(dtype)
        gweight, gstyles = _kernel("modulate_weight_backward")(grad_w, grad_d, weight, styles, d_low, demodulate)
        ref_weight, ref_styles = _modulate_backward_ref(
            grad_w64, grad_d64, weight64, styles64, d_low.to(torch.float64), demodulate
        )
        yield f"gradient weight {label}", gweight, ref_weight
        yield f"gradient styles {label}", gstyles, ref_styles


_CASES: dict[str, Callable] = {
    "upfirdn2d": _cases_upfirdn2d,
    "bias_act": _cases_bias_act,
    "modulated_conv2d": _cases_modulated_conv2d,
}


def run_selfcheck(
    device: torch.device | str, dtypes: tuple[torch.dtype, ...] | None = None, ops: tuple[str, ...] | None = None
) -> list[CheckResult]:
    """Every compared output of every op's check on ``device`` (each dtype its kernels support by
    default), whatever was checked before; nothing is raised or remembered. For reports."""
    device = torch.device(device)
    path = "cuda" if device.type == "cuda" else "cpp"
    results = []
    for op in ops or tuple(_CASES):
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
    raise SystemExit(_main())
