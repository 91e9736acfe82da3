"""bias_act: add a bias along one dimension, apply an activation, scale and clamp (docs/maths.md §1.2).

``y = clamp(act(x + b, alpha) · gain, -clamp, clamp)`` with ``b`` broadcast along ``dim``.

Three implementations compute the same thing: the pure-PyTorch reference :func:`bias_act_ref`
(the specification the others are tested against), a C++ CPU kernel (``csrc/bias_act``,
float32/float64) and a CUDA kernel (float16/bfloat16/float32/float64), both registered as
``torch.ops.gemix_C.bias_act`` / ``torch.ops.gemix_C.bias_act_grad``. The fused kernels read ``x``
once and write ``y`` once; their backward is again one fused pass.

Gradients (first and second order w.r.t. ``x`` and ``b``) are exact. They are built as in the
StyleGAN2 school: the backward of ``gemix::bias_act`` is the op ``gemix::bias_act_grad`` (order 1:
``dx = dy · gain · act'(z) · [|y| < clamp]``), whose own backward uses the same op at order 2
(``act''``). Which tensors the backward keeps depends on the activation: ``linear``, ``relu`` and
``lrelu`` (with ``alpha >= 0``) read the derivative off the output ``y`` (their second derivative
is zero), every other activation recomputes it from ``x`` (and ``b``), which its second derivative
needs anyway. Third-order gradients of the fused path are not provided (a clear error says so);
the reference path (``impl="ref"``) is plain autograd and differentiable to any order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from gemix_monai.ops._ext import get_extension, resolve_impl
from gemix_monai.ops._selfcheck import case_inputs, ensure_checked, grad, raw_kernel, register_check

__all__ = ["ACTIVATIONS", "Activation", "bias_act", "bias_act_ref"]


class Activation(NamedTuple):
    """One row of docs/maths.md §1.2's table."""

    code: int  # the activation's number in csrc/bias_act/bias_act.h
    def_alpha: float  # default alpha (only lrelu uses alpha)
    def_gain: float  # default gain
    uses_y: bool  # the derivative can be read off y (and the second derivative is zero)
    has_2nd_grad: bool  # act'' is not identically zero


SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

#: name -> (code, default alpha, default gain, derivative from y, has a second derivative)
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(0, 0.0, 1.0, True, False),
    "relu": Activation(1, 0.0, math.sqrt(2), True, False),
    "lrelu": Activation(2, 0.2, math.sqrt(2), True, False),
    "tanh": Activation(3, 0.0, 1.0, False, True),
    "sigmoid": Activation(4, 0.0, 1.0, False, True),
    "elu": Activation(5, 0.0, 1.0, False, True),
    "selu": Activation(6, 0.0, 1.0, False, True),
    "softplus": Activation(7, 0.0, 1.0, False, True),
    "swish": Activation(8, 0.0, math.sqrt(2), False, True),
}
_NAMES = {spec.code: name for name, spec in ACTIVATIONS.items()}


# ----------------------------------------------------------------------------------------------
# The reference: the specification in plain PyTorch (differentiable to any order by autograd).


def _activate(z: torch.Tensor, act: str, alpha: float) -> torch.Tensor:
    if act == "linear":
        return z
    if act == "relu":
        return F.relu(z)
    if act == "lrelu":
        return F.leaky_relu(z, alpha)
    if act == "tanh":
        return torch.tanh(z)
    if act == "sigmoid":
        return torch.sigmoid(z)
    if act == "elu":
        return F.elu(z)
    if act == "selu":
        return F.selu(z)
    if act == "softplus":
        # log(1 + e^z) without the linear cut-off of F.softplus (exact everywhere)
        return torch.logaddexp(z, torch.zeros((), dtype=z.dtype, device=z.device))
    if act == "swish":
        return z * torch.sigmoid(z)
    raise ValueError(f"bias_act: act must be one of {sorted(ACTIVATIONS)}, got {act!r}")


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float,
) -> torch.Tensor:
    """Pure-PyTorch bias_act on validated arguments (``dim`` >= 0, resolved alpha/gain, ``clamp < 0``
    meaning none); the chain of ATen ops the fused kernels replace."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    y = _activate(x, act, alpha)
    if gain != 1:
        y = y * gain
    if clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y


# ----------------------------------------------------------------------------------------------
# The custom ops torch.ops.gemix.bias_act and gemix.bias_act_grad (one opaque node each for
# torch.compile, with a fake kernel and an autograd formula).


def _uses_y(act: int, alpha: float) -> bool:
    # lrelu with a negative slope maps negative inputs to positive outputs: the sign of y no
    # longer tells which side of zero x was on, so the derivative must come from x.
    spec = ACTIVATIONS[_NAMES[act]]
    return spec.uses_y and not (_NAMES[act] == "lrelu" and alpha < 0)


@torch.library.custom_op("gemix::bias_act", mutates_args=())
def _bias_act_custom_op(
    x: torch.Tensor, b: torch.Tensor | None, dim: int, act: int, alpha: float, gain: float, clamp: float, impl: str
) -> torch.Tensor:
    get_extension()  # importing the extension registers torch.ops.gemix_C.*
    return torch.ops.gemix_C.bias_act(x, b, dim, act, alpha, gain, clamp)


@_bias_act_custom_op.register_fake
def _(x, b, dim, act, alpha, gain, clamp, impl):
    return torch.empty_like(x)


@torch.library.custom_op("gemix::bias_act_grad", mutates_args=())
def _bias_act_grad_op(
    dy: torch.Tensor,
    x: torch.Tensor | None,
    b: torch.Tensor | None,
    y: torch.Tensor | None,
    dim: int,
    act: int,
    alpha: float,
    gain: float,
    clamp: float,
    order: int,
    impl: str,
) -> torch.Tensor:
    """order 1: ``dy · gain · act'(z) · mask``; order 2: ``dy · gain · act''(z) · mask``, with
    ``z = x + b`` (or the derivative read off ``y`` when ``x`` is None) and ``mask = |y| < clamp``."""
    get_extension()
    return torch.ops.gemix_C.bias_act_grad(dy, x, b, y, dim, act, alpha, gain, clamp, order)


@_bias_act_grad_op.register_fake
def _(dy, x, b, y, dim, act, alpha, gain, clamp, order, impl):
    return torch.empty_like(dy)


def _sum_to_bias(dz: torch.Tensor, dim: int) -> torch.Tensor:
    return dz.sum(dim=[d for d in range(dz.ndim) if d != dim])


def _bias_act_setup_context(ctx, inputs, output):
    x, b, dim, act, alpha, gain, clamp, impl = inputs
    uses_y = _uses_y(act, alpha)
    ctx.args = (dim, act, alpha, gain, clamp, impl)
    ctx.has_b = b is not None
    ctx.save_for_backward(
        None if uses_y else x,
        b if (b is not None and not uses_y) else None,
        output if uses_y else None,
    )


def _bias_act_backward(ctx, dy):
    x, b, y = ctx.saved_tensors
    dim, act, alpha, gain, clamp, impl = ctx.args
    dx = _bias_act_grad_op(dy, x, b, y, dim, act, alpha, gain, clamp, 1, impl)
    db = _sum_to_bias(dx, dim) if ctx.has_b and ctx.needs_input_grad[1] else None
    return dx, db, None, None, None, None, None, None


_bias_act_custom_op.register_autograd(_bias_act_backward, setup_context=_bias_act_setup_context)


def _grad_setup_context(ctx, inputs, output):
    dy, x, b, y, dim, act, alpha, gain, clamp, order, impl = inputs
    ctx.args = (dim, act, alpha, gain, clamp, order, impl)
    ctx.has_x = x is not None
    ctx.has_b = b is not None
    ctx.save_for_backward(dy, x, b, y)


def _grad_backward(ctx, d_dx):
    dy, x, b, y = ctx.saved_tensors
    dim, act, alpha, gain, clamp, order, impl = ctx.args
    if order != 1:
        raise NotImplementedError(
            "bias_act: third-order gradients are not provided by the fused kernels; use impl='ref' for them"
        )
    # The op is linear in dy, so its gradient w.r.t. dy is the same op applied to d_dx.
    d_dy = _bias_act_grad_op(d_dx, x, b, y, dim, act, alpha, gain, clamp, 1, impl) if ctx.needs_input_grad[0] else None
    d_x = d_b = None
    if ACTIVATIONS[_NAMES[act]].has_2nd_grad and ctx.has_x and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
        # d/dz (dy · gain · act'(z) · mask) = dy · gain · act''(z) · mask (the mask is flat a.e.)
        d_z = _bias_act_grad_op(d_dx * dy, x, b, y, dim, act, alpha, gain, clamp, 2, impl)
        d_x = d_z if ctx.needs_input_grad[1] else None
        d_b = _sum_to_bias(d_z, dim) if ctx.has_b and ctx.needs_input_grad[2] else None
    return d_dy, d_x, d_b, None, None, None, None, None, None, None, None


_bias_act_grad_op.register_autograd(_grad_backward, setup_context=_grad_setup_context)


# ----------------------------------------------------------------------------------------------
# The same kernels and gradient formulas without the torch.library Python layer, for eager calls
# (GEMIX_FAST != 0, not under torch.compile): each custom_op call costs ~0.1-0.3 ms of Python in
# dispatch and in its generated autograd node, which is a large share of a small layer's time.
# The numbers are identical: the same torch.ops.gemix_C kernels run on the same arguments.


class _LeanBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        y = torch.ops.gemix_C.bias_act(x, b, dim, act, alpha, gain, clamp)
        uses_y = _uses_y(act, alpha)
        ctx.args = (dim, act, alpha, gain, clamp)
        ctx.has_b = b is not None
        ctx.save_for_backward(
            None if uses_y else x,
            b if (b is not None and not uses_y) else None,
            y if uses_y else None,
        )
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp = ctx.args
        dx = _LeanBiasActGrad.apply(dy, x, b, y, dim, act, alpha, gain, clamp, 1)
        db = _sum_to_bias(dx, dim) if ctx.has_b and ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None


class _LeanBiasActGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, b, y, dim, act, alpha, gain, clamp, order):
        ctx.args = (dim, act, alpha, gain, clamp, order)
        ctx.has_x = x is not None
        ctx.has_b = b is not None
        ctx.save_for_backward(dy, x, b, y)
        return torch.ops.gemix_C.bias_act_grad(dy, x, b, y, dim, act, alpha, gain, clamp, order)

    @staticmethod
    def backward(ctx, d_dx):
        dy, x, b, y = ctx.saved_tensors
        dim, act, alpha, gain, clamp, order = ctx.args
        if order != 1:
            raise NotImplementedError(
                "bias_act: third-order gradients are not provided by the fused kernels; use impl='ref' for them"
            )
        d_dy = (
            _LeanBiasActGrad.apply(d_dx, x, b, y, dim, act, alpha, gain, clamp, 1) if ctx.needs_input_grad[0] else None
        )
        d_x = d_b = None
        if ACTIVATIONS[_NAMES[act]].has_2nd_grad and ctx.has_x and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_z = _LeanBiasActGrad.apply(d_dx * dy, x, b, y, dim, act, alpha, gain, clamp, 2)
            d_x = d_z if ctx.needs_input_grad[1] else None
            d_b = _sum_to_bias(d_z, dim) if ctx.has_b and ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None, None, None, None, None, None, None


def _lean_ok() -> bool:
    from gemix_monai.fast import exact_fast

    return not torch.compiler.is_compiling() and exact_fast()


def _bias_act_op(x, b, dim: int, act: int, alpha: float, gain: float, clamp: float, impl: str) -> torch.Tensor:
    """The fused kernel: the registered op ``gemix::bias_act``, or its lean eager twin on the CPU."""
    if impl == "cpp" and _lean_ok():
        return _LeanBiasAct.apply(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_custom_op(x, b, dim, act, alpha, gain, clamp, impl)


# ----------------------------------------------------------------------------------------------
# Public function.

_KERNEL_DTYPES = {
    "cpp": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def _kernels_registered(op_name: str) -> bool:
    try:
        return hasattr(torch.ops.gemix_C, op_name)
    except (AttributeError, RuntimeError):
        return False


def choose_kernel(impl: str | None, x: torch.Tensor, op: str, kernel_name: str) -> str:
    """``resolve_impl`` plus the dtype check: 'cuda', 'cpp' or 'ref' for this call.

    An automatic choice falls back to the reference for dtypes the kernels lack (float16 on the
    CPU, say); a forced ``impl``/``GEMIX_OPS`` raises ``TypeError`` instead.
    """
    resolved = resolve_impl(impl, x.device, op)
    if resolved == "ref":
        return resolved
    forced = (impl if impl is not None else _env_impl()) != "auto"
    if x.dtype not in _KERNEL_DTYPES[resolved]:
        if forced:
            names = ", ".join(str(d).replace("torch.", "") for d in _KERNEL_DTYPES[resolved])
            raise TypeError(f"{op}: the {resolved} kernel supports x of dtype {names}, got {x.dtype}")
        return "ref"
    if not _kernels_registered(kernel_name):
        if forced:
            raise RuntimeError(f"{op}: the loaded gemix_monai._C has no {kernel_name} kernel (a stale build?)")
        return "ref"
    return resolved


# Activations for which the fused C++ kernel beats the chain of ATen ops on the CPU (1.9-2.0x
# forward+backward at 2M elements); ``impl='auto'`` uses the reference for the others there.
_CPU_FUSED_FASTER = frozenset({"linear", "relu", "lrelu"})


def _env_impl() -> str:
    import os

    return os.environ.get("GEMIX_OPS", "auto").lower()


def _as_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"bias_act: {name} must be a number or None, got {type(value).__name__}")
    return float(value)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Fused bias + activation + gain + clamp: ``clamp(act(x + b, alpha) · gain, -clamp, clamp)``.

    Args:
        x: floating-point tensor of any shape (typically [N, C, H, W] or [N, C]).
        b: bias, 1-D of length ``x.shape[dim]``, added along ``dim``; ``None`` for no bias. Cast
            to ``x.dtype``.
        dim: the dimension of ``x`` the bias runs along (negative values count from the end).
            Default 1 (channels).
        act: one of ``linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish``
            (docs/maths.md §1.2). Default ``linear``.
        alpha: the negative slope of ``lrelu`` (default 0.2); ignored by the other activations.
        gain: output scale; default per activation (``√2`` for relu, lrelu and swish, else 1).
        clamp: clamp the output to ``[-clamp, clamp]``; ``None`` or negative: no clamping.
        impl: ``auto`` (default, or env ``GEMIX_OPS``), ``cuda``, ``cpp`` or ``ref``.

    Returns:
        tensor shaped like ``x``, in ``x``'s dtype (and memory layout, on the kernel paths).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"bias_act: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"bias_act: x must be a floating-point tensor, got dtype {x.dtype}")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"bias_act: act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"bias_act: dim must be an int, got {type(dim).__name__}")
    if x.ndim == 0:
        raise ValueError("bias_act: x must have at least one dimension, got a 0-d tensor")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(
            f"bias_act: dim must be in [{-x.ndim}, {x.ndim - 1}] for x of shape {tuple(x.shape)}, got {dim}"
        )
    dim = dim % x.ndim
    if b is not None:
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"bias_act: b must be a torch.Tensor or None, got {type(b).__name__}")
        if not b.is_floating_point():
            raise TypeError(f"bias_act: b must be a floating-point tensor, got dtype {b.dtype}")
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(
                f"bias_act: b must be 1-D of length x.shape[{dim}] = {x.shape[dim]}, got shape {tuple(b.shape)}"
            )
        if b.device != x.device:
            raise ValueError(f"bias_act: b must be on x's device ({x.device}), got {b.device}")
        if b.dtype != x.dtype:
            b = b.to(x.dtype)
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else _as_float(alpha, "alpha")
    gain = spec.def_gain if gain is None else _as_float(gain, "gain")
    clamp = -1.0 if clamp is None else _as_float(clamp, "clamp")
    if clamp < 0:
        clamp = -1.0

    resolved = choose_kernel(impl, x, "bias_act", "bias_act")
    if resolved != "ref" and (impl if impl is not None else _env_impl()) == "auto":
        if act == "linear" and gain == 1 and clamp < 0:
            # a bare bias add: one ATen add whose backward is the identity beats any fused kernel
            resolved = "ref"
        elif resolved == "cpp" and act not in _CPU_FUSED_FASTER:
            # ATen's AVX2 exp/tanh beat our SSE2-wide vectorisation: measured 0.13-0.61x
            # forward+backward for these activations at 2M elements (docs/benchmarks.md)
            resolved = "ref"
    if resolved == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    ensure_checked("bias_act", resolved, x.device, x.dtype)  # once per process (docs/design.md, ops)
    return _bias_act_op(x, b, dim, spec.code, alpha, gain, clamp, resolved)


# ----------------------------------------------------------------------------------------------
# The one-time self-check of the compiled kernels (gemix_monai/ops/_selfcheck.py) runs these cases.


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
def _selfcheck_cases(device, dtype):
    g = torch.Generator().manual_seed(21)
    x, x64 = case_inputs(g, (2, 3, 4, 5), device, dtype, scale=1.5)
    b, b64 = case_inputs(g, (3,), device, dtype, scale=0.5)
    dy, dy64 = case_inputs(g, tuple(x.shape), device, dtype)
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
        y = raw_kernel("bias_act")(x, b, dim, spec.code, alpha, gain, clamp)
        z64 = (x64 + b64.reshape(1, -1, 1, 1)).requires_grad_(True)
        y64 = bias_act_ref(z64, None, dim, name, alpha, gain, clamp)
        yield f"forward {label}", y, y64
        (d1_64,) = grad(y64, z64, torch.ones_like(y64), create_graph=True)
        if _uses_y(spec.code, alpha):
            grad_args = (None, None, y64.detach().to(dtype))
        else:
            grad_args = (x, b, None)
        dx = raw_kernel("bias_act_grad")(dy, *grad_args, dim, spec.code, alpha, gain, clamp, 1)
        yield f"gradient order 1 {label}", dx, (dy64 * d1_64).detach()
        if spec.has_2nd_grad:
            dx2 = raw_kernel("bias_act_grad")(dy, x, b, None, dim, spec.code, alpha, gain, clamp, 2)
            (d2_64,) = grad(d1_64, z64, dy64)
            yield f"gradient order 2 {label}", dx2, d2_64


register_check("bias_act", ("bias_act", "bias_act_grad"), _selfcheck_cases)
