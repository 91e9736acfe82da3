"""upfirdn2d: upsample, FIR-filter and downsample a batch of images, per channel (docs/maths.md §1.1).

For every channel of ``x`` [N, C, H, W]:

1. upsample by ``up``: insert ``up - 1`` zeros after every pixel along each axis (H -> H·up_y);
2. pad by ``padding`` = (x0, x1, y0, y1) (negative values crop);
3. convolve with the FIR filter ``f`` (a true convolution: correlation with ``f`` flipped on both
   axes; ``flip_filter=True`` correlates with ``f`` as given), scaled by ``gain ** (f.ndim / 2)``;
4. downsample by ``down``: keep every ``down``-th pixel, starting at index 0.

Output size: ``H_out = (H·up_y + y0 + y1 - fh + down_y) // down_y``, likewise for W.

A 1-D filter ``[fw]`` stands for the separable filter ``f ⊗ f`` and is applied as two 1-D passes,
each scaled by ``sqrt(gain)`` so that the two together carry ``gain`` once.

Three implementations compute the same thing: the pure-PyTorch reference :func:`upfirdn2d_ref`
(the specification the others are tested against), a C++ CPU kernel and a CUDA kernel (both in
``csrc/upfirdn2d``, registered as ``torch.ops.gemix_C.upfirdn2d``). :func:`upfirdn2d` picks one
with :func:`gemix_monai.ops._ext.resolve_impl` and runs it through the custom op
``torch.ops.gemix.upfirdn2d``, whose gradient is again an upfirdn2d (up and down swapped, the
filter flipped), so double backward works and ``torch.compile(fullgraph=True)`` sees one op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from gemix_monai.fast import exact_fast as _exact_fast
from gemix_monai.ops._ext import get_extension, resolve_impl
from gemix_monai.ops._selfcheck import case_inputs, ensure_checked, grad, register_check

__all__ = ["upfirdn2d", "upfirdn2d_ref", "setup_filter", "filter2d", "upsample2d", "downsample2d"]


# ----------------------------------------------------------------------------------------------
# Argument parsing (cached: the same few settings recur on every call of a network's layers).

_parse_cache: dict = {}


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or an (x, y) pair of ints, each >= ``minimum``, as (x, y)."""
    if isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = tuple(value)
    else:
        raise ValueError(f"upfirdn2d: {name} must be an int or an (x, y) pair of ints, got {value!r}")
    for v in pair:
        if not isinstance(v, (int, torch.SymInt)) or isinstance(v, bool):
            raise ValueError(f"upfirdn2d: {name} must be an int or an (x, y) pair of ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"upfirdn2d: {name} must be >= {minimum}, got {value!r}")
    return pair


def _padding4(padding) -> tuple[int, int, int, int]:
    """``padding`` as (x0, x1, y0, y1) from an int, an (x, y) pair or a 4-tuple."""

    def bad():
        return ValueError(
            f"upfirdn2d: padding must be an int, an (x, y) pair or an (x0, x1, y0, y1) 4-tuple of ints, got {padding!r}"
        )

    if isinstance(padding, (int, torch.SymInt)) and not isinstance(padding, bool):
        return (padding,) * 4
    if not isinstance(padding, Sequence) or isinstance(padding, str) or len(padding) not in (2, 4):
        raise bad()
    if any(not isinstance(p, (int, torch.SymInt)) or isinstance(p, bool) for p in padding):
        raise bad()
    if len(padding) == 2:
        px, py = padding
        return (px, px, py, py)
    return tuple(padding)


def _parse(up, down, padding) -> tuple[int, int, int, int, int, int, int, int]:
    """(up_x, up_y, down_x, down_y, x0, x1, y0, y1), validated; memoised for hashable settings."""
    key = None
    if not torch.compiler.is_compiling():
        try:
            key = (up, down, padding)
            hit = _parse_cache.get(key)
        except TypeError:  # a list argument: not hashable, parse every time
            key, hit = None, None
        if hit is not None:
            return hit
    up_x, up_y = _pair(up, "up", 1)
    down_x, down_y = _pair(down, "down", 1)
    parsed = (up_x, up_y, down_x, down_y, *_padding4(padding))
    if key is not None and len(_parse_cache) < 1024:
        _parse_cache[key] = parsed
    return parsed


def _check_tensors(x, f) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"upfirdn2d: x must be a torch.Tensor [N, C, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d: x must be 4-D [N, C, H, W], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"upfirdn2d: x must be a floating-point tensor, got dtype {x.dtype}")
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"upfirdn2d: f must be a torch.Tensor ([fw] or [fh, fw]) or None, got {type(f).__name__}")
    if f.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d: f must be 1-D [fw] (separable) or 2-D [fh, fw], got shape {tuple(f.shape)}")
    if not f.is_floating_point():
        raise TypeError(f"upfirdn2d: f must be a floating-point tensor, got dtype {f.dtype}")
    if f.numel() == 0:
        raise ValueError(f"upfirdn2d: f must have at least one tap, got shape {tuple(f.shape)}")
    if f.device != x.device:
        raise ValueError(f"upfirdn2d: f must be on the same device as x ({x.device}), got a filter on {f.device}")


def _filter_size(f: torch.Tensor) -> tuple[int, int]:
    """(fw, fh) of a 1-D (separable) or 2-D filter."""
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def _output_size(in_size: int, up: int, pad0: int, pad1: int, taps: int, down: int) -> int:
    return (in_size * up + pad0 + pad1 - taps + down) // down


# ----------------------------------------------------------------------------------------------
# The reference: the specification in plain PyTorch.


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up_x: int = 1,
    up_y: int = 1,
    down_x: int = 1,
    down_y: int = 1,
    pad_x0: int = 0,
    pad_x1: int = 0,
    pad_y0: int = 0,
    pad_y1: int = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Pure-PyTorch upfirdn2d on parsed arguments (no validation; see :func:`upfirdn2d`).

    Zero insertion is a reshape + pad, the FIR filter a depthwise ``conv2d`` (two 1-D passes for a
    separable filter) whose stride performs the downsampling, so only kept outputs are computed.
    Differentiable by autograd; ``f`` is cast to ``x.dtype``.
    """
    n, c, h, w = x.shape
    if up_x > 1 or up_y > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up_x - 1, 0, 0, 0, up_y - 1])
        x = x.reshape(n, c, h * up_y, w * up_x)
    x = F.pad(x, [max(pad_x0, 0), max(pad_x1, 0), max(pad_y0, 0), max(pad_y1, 0)])
    if min(pad_x0, pad_x1, pad_y0, pad_y1) < 0:
        x = x[:, :, max(-pad_y0, 0) : x.shape[2] - max(-pad_y1, 0), max(-pad_x0, 0) : x.shape[3] - max(-pad_x1, 0)]

    f = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:  # conv2d correlates; a true convolution correlates with the flipped filter
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1:
        x = F.conv2d(x, f.view(1, 1, 1, -1).expand(c, 1, 1, f.shape[0]), stride=(1, down_x), groups=c)
        x = F.conv2d(x, f.view(1, 1, -1, 1).expand(c, 1, f.shape[0], 1), stride=(down_y, 1), groups=c)
    else:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), stride=(down_y, down_x), groups=c)
    return x


# ----------------------------------------------------------------------------------------------
# The custom op torch.ops.gemix.upfirdn2d: one opaque node for torch.compile, its own gradient.


@torch.library.custom_op("gemix::upfirdn2d", mutates_args=())
def _upfirdn2d_op(
    x: torch.Tensor,
    f: torch.Tensor,
    up_x: int,
    up_y: int,
    down_x: int,
    down_y: int,
    pad_x0: int,
    pad_x1: int,
    pad_y0: int,
    pad_y1: int,
    flip_filter: bool,
    gain: float,
    impl: str,
) -> torch.Tensor:
    if impl == "ref":
        y = upfirdn2d_ref(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain)
        # the layout the fake kernel promises (conv2d's choice differs on degenerate shapes)
        return y.contiguous(memory_format=torch.channels_last if _is_channels_last(x) else torch.contiguous_format)
    get_extension()  # importing the extension registers torch.ops.gemix_C.*
    return torch.ops.gemix_C.upfirdn2d(
        x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain
    )


@_upfirdn2d_op.register_fake
def _(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain, impl):
    n, c, h, w = x.shape
    fw, fh = _filter_size(f)
    h_out = _output_size(h, up_y, pad_y0, pad_y1, fh, down_y)
    w_out = _output_size(w, up_x, pad_x0, pad_x1, fw, down_x)
    memory_format = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    return torch.empty((n, c, h_out, w_out), dtype=x.dtype, device=x.device, memory_format=memory_format)


def _is_channels_last(x: torch.Tensor) -> bool:
    # The kernels keep channels_last when the input is (strictly) in that layout, as conv2d does.
    return (
        x.ndim == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    )


def _save_for_gradient(ctx, x, f, y, args: tuple) -> None:
    ctx.save_for_backward(f)
    ctx.in_size = (x.shape[2], x.shape[3])
    ctx.out_size = (y.shape[2], y.shape[3])
    ctx.args = args


def _gradient_args(ctx) -> tuple:
    """``(f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain)`` of the upfirdn2d
    that maps ``dL/dy`` to ``dL/dx``; the remaining forward arguments (``impl``) follow in ``ctx.args``."""
    (f,) = ctx.saved_tensors
    up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter, gain = ctx.args[:10]
    h, w = ctx.in_size
    h_out, w_out = ctx.out_size
    fw, fh = _filter_size(f)
    # dL/dx[i] = sum_j dy[j] f'[i·up + pad0 - j·down]: an upfirdn2d of dy with up/down swapped and
    # the filter flipped; pad0' = taps - 1 - pad0, and pad1' makes the output exactly the input size.
    return (
        f,
        down_x,
        down_y,
        up_x,
        up_y,
        fw - 1 - pad_x0,
        w * up_x - w_out * down_x + pad_x0 - up_x + 1,
        fh - 1 - pad_y0,
        h * up_y - h_out * down_y + pad_y0 - up_y + 1,
        not flip_filter,
        gain,
    )


def _setup_context(ctx, inputs, output):
    x, f, *args = inputs
    _save_for_gradient(ctx, x, f, output, tuple(args))


def _backward(ctx, grad_output):
    impl = ctx.args[10]
    return (_upfirdn2d_op(grad_output, *_gradient_args(ctx), impl),) + (None,) * 12


_upfirdn2d_op.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------
# Eager calls without the torch.library Python layer (see bias_act.py): the same kernel, the same
# gradient formula (_gradient_args), identical numbers. It stays beside the registered op because
# it is measurably faster in eager training (docs/benchmarks.md); the op serves torch.compile/export.


class _LeanUpfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, *args):
        y = torch.ops.gemix_C.upfirdn2d(x, f, *args)
        _save_for_gradient(ctx, x, f, y, args)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        return (_LeanUpfirdn2d.apply(grad_output, *_gradient_args(ctx)),) + (None,) * 11


# ----------------------------------------------------------------------------------------------
# Public functions.


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up=1,
    down=1,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample, FIR-filter and downsample each channel of a batch of images (docs/maths.md §1.1).

    Args:
        x: images [N, C, H, W], floating point (any memory format).
        f: the FIR filter: 2-D [fh, fw], or 1-D [fw] meaning the separable filter ``f ⊗ f``, on the
            device of ``x``; ``None`` is the identity [[1]]. Usually made by :func:`setup_filter`.
        up: upsampling factor, an int or an (x, y) pair, >= 1. Default 1.
        down: downsampling factor, an int or an (x, y) pair, >= 1. Default 1.
        padding: pixels added (negative: cropped) after upsampling: an int, an (x, y) pair or
            (x0, x1, y0, y1). Default 0.
        flip_filter: False (default) convolves with ``f``; True correlates with it.
        gain: the filter is multiplied by ``gain ** (f.ndim / 2)``. Default 1.
        impl: ``'auto'``, ``'cuda'``, ``'cpp'`` or ``'ref'``; ``None`` (default) reads ``GEMIX_OPS``
            (see :func:`gemix_monai.ops._ext.resolve_impl`). Honoured in the backward pass too.

    Returns:
        [N, C, H_out, W_out] with ``H_out = (H·up_y + y0 + y1 - fh + down_y) // down_y`` (likewise
        W), same dtype and device as ``x``.

    Raises:
        TypeError: ``x`` or ``f`` is not a floating-point tensor.
        ValueError: ``x`` is not 4-D, ``f`` is not 1-D or 2-D or lives on another device, ``up`` or
            ``down`` is < 1, ``padding`` has the wrong length, or the output would be empty.
    """
    if f is None:
        f = _identity_filter(x)
    _check_tensors(x, f)
    up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1 = _parse(up, down, padding)
    fw, fh = _filter_size(f)
    h_out = _output_size(x.shape[2], up_y, pad_y0, pad_y1, fh, down_y)
    w_out = _output_size(x.shape[3], up_x, pad_x0, pad_x1, fw, down_x)
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"upfirdn2d: padding {padding!r} with up={up!r}, down={down!r} and a {fh}x{fw} filter leaves an empty "
            f"output ({h_out}x{w_out}) for a {x.shape[2]}x{x.shape[3]} input"
        )
    resolved = _choose_kernel(impl, x.device, x.dtype)
    ensure_checked("upfirdn2d", resolved, x.device, x.dtype)  # once per process (docs/design.md, ops)
    if resolved == "cpp" and not torch.compiler.is_compiling() and _exact_fast():
        return _LeanUpfirdn2d.apply(
            x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, bool(flip_filter), float(gain)
        )
    return _upfirdn2d_op(
        x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, bool(flip_filter), float(gain), resolved
    )


_KERNEL_DTYPES = {
    "cpp": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}


def _choose_kernel(impl: str | None, device: torch.device, dtype: torch.dtype) -> str:
    """:func:`resolve_impl` plus what the kernels support: ``'cuda'``, ``'cpp'`` or ``'ref'``.

    An automatic choice uses the reference where the kernels cannot run (a dtype they lack, an
    extension built before this op existed); a forced ``impl``/``GEMIX_OPS`` raises instead.
    """
    if torch.compiler.is_compiling():
        return _choose_kernel_at_trace_time(impl, device, dtype)
    return _choose_kernel_now(impl, device, dtype)


@torch.compiler.assume_constant_result
def _choose_kernel_at_trace_time(impl: str | None, device: torch.device, dtype: torch.dtype) -> str:
    return _choose_kernel_now(impl, device, dtype)


def _choose_kernel_now(impl: str | None, device: torch.device, dtype: torch.dtype) -> str:
    resolved = resolve_impl(impl, device, "upfirdn2d")
    if resolved == "ref":
        return resolved
    forced = (impl if impl is not None else os.environ.get("GEMIX_OPS", "auto")).lower() != "auto"
    if dtype not in _KERNEL_DTYPES[resolved]:
        if forced:
            names = ", ".join(str(d).replace("torch.", "") for d in _KERNEL_DTYPES[resolved])
            raise TypeError(f"upfirdn2d: the {resolved} kernel supports x of dtype {names}, got {dtype}")
        return "ref"
    if not _kernel_registered():
        if forced:
            raise RuntimeError(
                "upfirdn2d: the loaded gemix_monai._C has no upfirdn2d kernel (a stale build? rebuild it)"
            )
        return "ref"
    return resolved


_registered: list = []  # [True] once torch.ops.gemix_C.upfirdn2d was seen (it never goes away)


def _kernel_registered() -> bool:
    if not _registered and hasattr(torch.ops.gemix_C, "upfirdn2d"):
        _registered.append(True)
    return bool(_registered)


def _identity_filter(x) -> torch.Tensor:
    device = x.device if isinstance(x, torch.Tensor) else torch.device("cpu")
    return torch.ones(1, 1, dtype=torch.float32, device=device)


def setup_filter(
    f,
    device: torch.device | str = torch.device("cpu"),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """A FIR filter tensor for :func:`upfirdn2d` from a list, array or tensor of taps.

    Args:
        f: the taps: ``None`` (identity), a number, a 1-D sequence [fw] (the separable ``f ⊗ f``)
            or a 2-D one [fh, fw].
        device: where the filter lives. Default CPU.
        normalize: divide by the sum of the (2-D) filter's taps, so it preserves a constant image.
            Default True.
        flip_filter: flip the taps along every axis. Default False.
        gain: multiply by ``gain ** (ndim / 2)`` (so the 2-D filter carries ``gain``). Default 1.
        separable: ``None`` (default) keeps a 1-D filter 1-D (separable) and a 2-D filter 2-D;
            ``False`` expands a 1-D filter into its 2-D outer product; ``True`` requires 1-D taps.

    Returns:
        float32 tensor [fw] or [fh, fw] on ``device``.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"setup_filter: f must be a number or 1-D/2-D taps, got shape {tuple(f.shape)}")
    if separable and f.ndim != 1:
        raise ValueError(f"setup_filter: separable=True needs 1-D taps, got shape {tuple(f.shape)}")
    if separable is False and f.ndim == 1:
        f = torch.outer(f, f)
    if normalize:
        # dividing 1-D taps by their sum makes the 2-D f ⊗ f sum to 1 as well
        if f.sum() == 0:
            raise ValueError("setup_filter: normalize=True but the taps sum to zero")
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _taps(f: torch.Tensor | None) -> tuple[int, int]:
    if f is None:
        return 1, 1
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2):
        _check_tensors(torch.empty(1, 1, 1, 1), f)  # raises the error naming f
    return _filter_size(f)


def filter2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Filter each channel with ``f``, keeping the size: padding ``(fw // 2, (fw - 1) // 2)`` per axis.

    ``x`` [N, C, H, W] -> [N, C, H + extra, W + extra] where ``padding`` (int, (x, y) or
    (x0, x1, y0, y1), default 0) adds to the size-preserving padding. See :func:`upfirdn2d`.
    """
    fw, fh = _taps(f)
    px0, px1, py0, py1 = _padding4(padding)
    pad = (px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2)
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up=2,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample each channel by ``up`` (default 2) with the interpolation filter ``f``.

    ``x`` [N, C, H, W] -> [N, C, H·up_y, W·up_x] (plus ``padding``): padding
    ``((fw + up - 1) // 2, (fw - up) // 2)`` per axis and gain ``gain · up_x · up_y``, so a
    normalised filter preserves the mean. See :func:`upfirdn2d`.
    """
    up_x, up_y = _pair(up, "up", 1)
    fw, fh = _taps(f)
    px0, px1, py0, py1 = _padding4(padding)
    pad = (px0 + (fw + up_x - 1) // 2, px1 + (fw - up_x) // 2, py0 + (fh + up_y - 1) // 2, py1 + (fh - up_y) // 2)
    return upfirdn2d(x, f, up=(up_x, up_y), padding=pad, flip_filter=flip_filter, gain=gain * up_x * up_y, impl=impl)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down=2,
    padding=0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str | None = None,
) -> torch.Tensor:
    """Low-pass filter each channel with ``f`` and downsample by ``down`` (default 2).

    ``x`` [N, C, H, W] -> [N, C, H // down_y, W // down_x] (plus ``padding``): padding
    ``((fw - down + 1) // 2, (fw - down) // 2)`` per axis. See :func:`upfirdn2d`.
    """
    down_x, down_y = _pair(down, "down", 1)
    fw, fh = _taps(f)
    px0, px1, py0, py1 = _padding4(padding)
    pad = (
        px0 + (fw - down_x + 1) // 2,
        px1 + (fw - down_x) // 2,
        py0 + (fh - down_y + 1) // 2,
        py1 + (fh - down_y) // 2,
    )
    return upfirdn2d(x, f, down=(down_x, down_y), padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


# ----------------------------------------------------------------------------------------------
# The one-time self-check of the compiled kernels (gemix_monai/ops/_selfcheck.py) runs these cases.


# upfirdn2d: the forward kernel in three geometries (up with a separable filter, down with a
# flipped 2-D filter and a gain, mixed up/down with cropping on a channels_last input) and the
# gradient of each, which is the same kernel with up and down swapped (upfirdn2d._gradient_args).
def _selfcheck_cases(device, dtype):
    g = torch.Generator().manual_seed(20)
    x, x64 = case_inputs(g, (2, 3, 7, 6), device, dtype)
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
        dy, dy64 = case_inputs(g, tuple(yr.shape), device, dtype)
        yield f"gradient {name}", grad(yk, xk, dy)[0], grad(yr, xr, dy64)[0]


register_check("upfirdn2d", ("upfirdn2d",), _selfcheck_cases)
