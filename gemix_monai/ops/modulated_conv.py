"""modulated_conv2d: StyleGAN2's style-modulated, demodulated convolution (docs/maths.md §1.3).

For ``x`` [N, I, H, W], ``weight`` [O, I, k, k] and ``styles`` [N, I]:

* modulate: ``w_n[o, i] = weight[o, i] · styles[n, i]``;
* demodulate (default): ``d[n, o] = 1 / sqrt(Σ_{i,kh,kw} w_n[o, i, kh, kw]² + 1e-8)``, ``w_n ← w_n · d[n]``;
* convolve each sample with its own ``w_n`` (zero padding ``padding``; pass ``k // 2`` for the
  'same' convolution of docs/maths.md §1.3), then add ``noise`` (already scaled by its strength).

Bias and activation are the caller's, through :func:`gemix_monai.ops.bias_act`.

Resampling and its border convention. ``up=2`` computes ``conv(upsample2d(x, f))`` and ``down=2``
computes ``downsample2d(conv(x), f)`` -- i.e. docs/maths.md §1.3's "filter first, then stride 2" -- in
their efficient forms (a stride-2 transposed convolution followed by the FIR filter with gain 4;
the FIR filter followed by a stride-2 convolution). The convention at the borders is that of
*one* linear filter: ``x`` is extended by zeros and the convolution and the FIR filter are
applied without cropping in between. The result therefore equals the reference composition
applied to ``x`` padded with enough zeros and cropped back (exactly), and the plain composition
on ``x`` away from the borders (within ``(k + taps) / 2`` pixels of them the composition crops the
intermediate image, the fused form does not).

Execution strategies (equal within float tolerance):

* *fused*: the per-sample weights ``w_n`` [N·O, I, k, k] from one kernel, then one grouped
  convolution with ``groups=N``;
* *non-fused*: ``x · styles``, one shared convolution, then ``· d`` on the output (fused with the
  noise addition).

``fused=None`` picks the fused strategy for a single sample, and on CUDA when no gradient is
being recorded (inference); otherwise the non-fused one (whose backward is cheaper).

The modulation/demodulation kernel (``csrc/modulated_conv``, C++ CPU and CUDA, registered as
``torch.ops.gemix_C.modulate_weight`` and ``..._backward``) produces ``w_n`` and ``d`` in one pass;
its backward (gradients w.r.t. ``weight`` and ``styles``) is a second kernel, registered with its
own autograd formula (built from differentiable PyTorch ops), so double backward works --
path-length regularisation differentiates through the generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gemix_monai.ops._ext import get_extension
from gemix_monai.ops._selfcheck import case_inputs, ensure_checked, raw_kernel, register_check
from gemix_monai.ops.bias_act import choose_kernel

__all__ = ["modulated_conv2d", "modulate_weight_ref", "DEMOD_EPS"]

DEMOD_EPS = 1e-8
_DEFAULT_TAPS = (1.0, 3.0, 3.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Modulation / demodulation: the reference and the custom op.


def modulate_weight_ref(
    weight: torch.Tensor, styles: torch.Tensor, demodulate: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_n [N, O, I, k, k], d [N, O])`` in plain PyTorch (``d`` is all ones without demodulation)."""
    w = weight.unsqueeze(0) * styles[:, None, :, None, None]
    if demodulate:
        d = (w.square().sum(dim=[2, 3, 4]) + DEMOD_EPS).rsqrt()
        w = w * d[:, :, None, None, None]
    else:
        d = torch.ones(styles.shape[0], weight.shape[0], dtype=w.dtype, device=w.device)
    return w, d


def _demod_coefs(weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``d`` [N, O] without forming ``w_n``: ``rsqrt(styles² @ Σ_k weight²ᵀ + eps)``."""
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + DEMOD_EPS).rsqrt()


def _modulate_backward_ref(grad_w, grad_d, weight, styles, d, demodulate: bool):
    """Gradients of ``(w_n, d)`` w.r.t. ``(weight, styles)`` in differentiable PyTorch ops.

    With ``G = dL/dw_n``, ``D = Σ_{i,k} G·weight·styles + dL/dd`` and ``E = D · d³``:
    ``dweight = Σ_n styles·(G·d − E·weight·styles)``,
    ``dstyles = Σ_{o,k} G·weight·d − styles · Σ_o E · Σ_k weight²``.
    """
    s = styles[:, None, :, None, None]
    if not demodulate:
        grad_weight = (grad_w * s).sum(0)
        grad_styles = (grad_w * weight.unsqueeze(0)).sum(dim=[1, 3, 4])
        return grad_weight, grad_styles
    dd = d[:, :, None, None, None]
    gws = (grad_w * weight.unsqueeze(0) * s).sum(dim=[2, 3, 4])
    e = (gws + grad_d) * d.pow(3)
    grad_weight = (s * (grad_w * dd - e[:, :, None, None, None] * weight.unsqueeze(0) * s)).sum(0)
    wsq = weight.square().sum(dim=[2, 3])  # [O, I]
    grad_styles = (grad_w * weight.unsqueeze(0) * dd).sum(dim=[1, 3, 4]) - styles * (e @ wsq)
    return grad_weight, grad_styles


@torch.library.custom_op("gemix::modulate_weight", mutates_args=())
def _modulate_op(
    weight: torch.Tensor, styles: torch.Tensor, demodulate: bool, impl: str
) -> tuple[torch.Tensor, torch.Tensor]:
    get_extension()  # importing the extension registers torch.ops.gemix_C.*
    return torch.ops.gemix_C.modulate_weight(weight, styles, demodulate, DEMOD_EPS)


@_modulate_op.register_fake
def _(weight, styles, demodulate, impl):
    n, (o, i, kh, kw) = styles.shape[0], weight.shape
    return weight.new_empty((n, o, i, kh, kw)), weight.new_empty((n, o))


@torch.library.custom_op("gemix::modulate_weight_backward", mutates_args=())
def _modulate_backward_op(
    grad_w: torch.Tensor,
    grad_d: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    d: torch.Tensor,
    demodulate: bool,
    impl: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    get_extension()
    return torch.ops.gemix_C.modulate_weight_backward(grad_w, grad_d, weight, styles, d, demodulate)


@_modulate_backward_op.register_fake
def _(grad_w, grad_d, weight, styles, d, demodulate, impl):
    return torch.empty_like(weight), torch.empty_like(styles)


def _modulate_setup_context(ctx, inputs, output):
    weight, styles, demodulate, impl = inputs
    ctx.args = (demodulate, impl)
    ctx.save_for_backward(weight, styles, output[1])


def _modulate_backward(ctx, grad_w, grad_d):
    weight, styles, d = ctx.saved_tensors
    demodulate, impl = ctx.args
    if grad_w is None:
        grad_w = torch.zeros(styles.shape[0], *weight.shape, dtype=weight.dtype, device=weight.device)
    if grad_d is None:
        grad_d = torch.zeros_like(d)
    grad_weight, grad_styles = _modulate_backward_op(
        grad_w.contiguous(), grad_d.contiguous(), weight, styles, d, demodulate, impl
    )
    return grad_weight, grad_styles, None, None


_modulate_op.register_autograd(_modulate_backward, setup_context=_modulate_setup_context)


def _backward_setup_context(ctx, inputs, output):
    grad_w, grad_d, weight, styles, d, demodulate, impl = inputs
    ctx.demodulate = demodulate
    ctx.save_for_backward(grad_w, grad_d, weight, styles)


def _backward_backward(ctx, gg_weight, gg_styles):
    # Second order: the vector-Jacobian product of the (differentiable) reference backward, with
    # d recomputed from (weight, styles) so that its dependence on them is differentiated too.
    grad_w, grad_d, weight, styles = ctx.saved_tensors
    demodulate = ctx.demodulate

    def reference(gw, gd, w, s):
        d = _demod_coefs(w, s) if demodulate else torch.ones_like(gd)
        return _modulate_backward_ref(gw, gd, w, s, d, demodulate)

    _, vjp = torch.func.vjp(reference, grad_w, grad_d, weight, styles)
    if gg_weight is None:
        gg_weight = torch.zeros_like(weight)
    if gg_styles is None:
        gg_styles = torch.zeros_like(styles)
    g_gw, g_gd, g_weight, g_styles = vjp((gg_weight, gg_styles))
    return g_gw, g_gd, g_weight, g_styles, None, None, None


_modulate_backward_op.register_autograd(_backward_backward, setup_context=_backward_setup_context)


def _modulate(weight, styles, demodulate: bool, impl: str | None):
    resolved = choose_kernel(impl, weight, "modulated_conv2d", "modulate_weight")
    if resolved == "ref":
        return modulate_weight_ref(weight, styles, demodulate)
    ensure_checked("modulated_conv2d", resolved, weight.device, weight.dtype)  # once per process (docs/design.md, ops)
    return _modulate_op(weight.contiguous(), styles.contiguous(), demodulate, resolved)


# ----------------------------------------------------------------------------------------------
# Public function.


def _check_args(x, weight, styles, noise, up, down, padding, demodulate, fused):
    for name, t in (("x", x), ("weight", weight), ("styles", styles)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"modulated_conv2d: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"modulated_conv2d: {name} must be a floating-point tensor, got dtype {t.dtype}")
    if x.ndim != 4:
        raise ValueError(f"modulated_conv2d: x must be 4-D [N, I, H, W], got shape {tuple(x.shape)}")
    n, i = x.shape[:2]
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise ValueError(
            f"modulated_conv2d: weight must be 4-D [O, I, k, k] with a square kernel, got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != i:
        raise ValueError(
            f"modulated_conv2d: weight must be [O, I={i}, k, k] to match x's {i} channels, got shape {tuple(weight.shape)}"
        )
    if styles.ndim != 2 or tuple(styles.shape) != (n, i):
        raise ValueError(f"modulated_conv2d: styles must be [N, I] = [{n}, {i}], got shape {tuple(styles.shape)}")
    for name, t in (("weight", weight), ("styles", styles)):
        if t.device != x.device:
            raise ValueError(f"modulated_conv2d: {name} must be on x's device ({x.device}), got {t.device}")
    if noise is not None:
        if not isinstance(noise, torch.Tensor):
            raise TypeError(f"modulated_conv2d: noise must be a torch.Tensor or None, got {type(noise).__name__}")
        if not noise.is_floating_point():
            raise TypeError(f"modulated_conv2d: noise must be a floating-point tensor, got dtype {noise.dtype}")
        if noise.ndim != 4:
            raise ValueError(
                f"modulated_conv2d: noise must be 4-D [N, 1, H_out, W_out], got shape {tuple(noise.shape)}"
            )
    for name, v in (("up", up), ("down", down)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"modulated_conv2d: {name} must be an int (1 or 2), got {type(v).__name__}")
        if v not in (1, 2):
            raise ValueError(f"modulated_conv2d: {name} must be 1 or 2, got {v}")
    if up == 2 and down == 2:
        raise ValueError("modulated_conv2d: up and down cannot both be 2")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"modulated_conv2d: padding must be an int >= 0, got {padding!r}")
    if fused not in (None, True, False):
        raise TypeError(f"modulated_conv2d: fused must be None, True or False, got {fused!r}")
    if not isinstance(demodulate, bool):
        raise TypeError(f"modulated_conv2d: demodulate must be a bool, got {type(demodulate).__name__}")


def _resample_filter(resample_filter, x: torch.Tensor) -> torch.Tensor:
    from gemix_monai.ops.upfirdn2d import setup_filter

    if resample_filter is None:
        return setup_filter(list(_DEFAULT_TAPS), device=x.device)
    if not isinstance(resample_filter, torch.Tensor):
        return setup_filter(resample_filter, device=x.device)
    return resample_filter


def _conv(x, w, up: int, down: int, padding: int, f, groups: int, impl):
    """The convolution with resampling, in the border convention of the module docstring.

    ``w`` is [O·groups, I, k, k] for a plain/strided conv (``[I·groups, O, k, k]`` is formed here for
    the transposed one).
    """
    from gemix_monai.ops.upfirdn2d import upfirdn2d

    k = w.shape[-1]
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    fw = f.shape[-1]
    fh = f.shape[0]
    if up == 2:
        # transposed conv with the flipped kernel = zero insertion followed by the correlation
        # with w; the FIR filter (gain 4) then interpolates, padded so the result lines up with
        # conv(upsample2d(x)): with T = that transposed conv, output[j] = (T * f)[j + fw - 1 - pad0].
        o_g, i = w.shape[0] // groups, w.shape[1]
        wt = w.reshape(groups, o_g, i, k, k).transpose(1, 2).reshape(groups * i, o_g, k, k).flip([2, 3])
        y = F.conv_transpose2d(x, wt, stride=2, groups=groups)
        px0, px1 = (fw + 1) // 2 + 1 - k + padding, fw // 2 + 1 - k + padding
        py0, py1 = (fh + 1) // 2 + 1 - k + padding, fh // 2 + 1 - k + padding
        return upfirdn2d(y, f, padding=(px0, px1, py0, py1), gain=4, impl=impl)
    # down == 2: FIR filter over the padded input, then a stride-2 correlation with w
    qx0, qx1 = (fw - 1) // 2 + padding, (fw - 2) // 2 + padding
    qy0, qy1 = (fh - 1) // 2 + padding, (fh - 2) // 2 + padding
    y = upfirdn2d(x, f, padding=(qx0, qx1, qy0, qy1), impl=impl)
    return F.conv2d(y, w, stride=2, groups=groups)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Style-modulated (and demodulated) convolution, optionally up- or downsampling by 2.

    Args:
        x: input [N, I, H, W].
        weight: shared convolution weight [O, I, k, k].
        styles: per-sample input-channel scales [N, I] (the affine-transformed ``w`` of StyleGAN).
        noise: ``None``, or noise already multiplied by its strength, broadcastable to the output
            [N, O, H_out, W_out] (typically [N, 1, H_out, W_out]); added after the convolution.
        up: 1, or 2 to upsample: ``conv(upsample2d(x, resample_filter))``, H_out = 2H + 2p − k + 1.
        down: 1, or 2 to downsample: ``downsample2d(conv(x), resample_filter)`` (the FIR filter
            followed by a stride-2 convolution), H_out = (H + 2p − k + 1) // 2.
        padding: zero padding ``p`` of the convolution; ``k // 2`` gives docs/maths.md §1.3's 'same'
            convolution (H_out = H, 2H or H/2 for odd k). Default 0.
        resample_filter: FIR filter for up/down (from :func:`setup_filter`, 1-D separable or 2-D);
            ``None`` means ``setup_filter([1, 3, 3, 1])``.
        demodulate: scale each output channel of ``w_n`` to unit norm (``+1e-8``). Default True.
        fused: ``True`` per-sample weights + grouped conv, ``False`` modulate the activations,
            ``None`` (default) choose per shape and device (see the module docstring).
        impl: ``auto`` (default, or env ``GEMIX_OPS``), ``cuda``, ``cpp`` or ``ref``: for the
            modulation kernel and the FIR filter (the convolutions themselves are ATen's).

    Returns:
        [N, O, H_out, W_out] in ``x``'s dtype. Borders under resampling: see the module docstring.
    """
    _check_args(x, weight, styles, noise, up, down, padding, demodulate, fused)
    n, i, h, w = x.shape
    o, _, k, _ = weight.shape
    weight = weight.to(x.dtype)
    styles = styles.to(x.dtype)
    f = _resample_filter(resample_filter, x) if (up > 1 or down > 1) else None

    if x.dtype == torch.float16 and demodulate:
        # w_n·d is invariant to positive rescaling of weight[o] and styles[n]: bring both to unit
        # max magnitude first so Σ w² cannot overflow float16.
        weight = weight * (1 / weight.abs().amax(dim=[1, 2, 3], keepdim=True).clamp_min(1e-4))
        styles = styles * (1 / styles.abs().amax(dim=1, keepdim=True).clamp_min(1e-4))

    if fused is None:
        fused = n == 1 or (x.device.type == "cuda" and not torch.is_grad_enabled())

    if fused:
        w_n, _ = _modulate(weight, styles, demodulate, impl)
        y = _conv(x.reshape(1, n * i, h, w), w_n.reshape(n * o, i, k, k), up, down, padding, f, n, impl)
        y = y.reshape(n, o, y.shape[2], y.shape[3])
        return y if noise is None else y + noise.to(y.dtype)

    y = _conv(x * styles[:, :, None, None], weight, up, down, padding, f, 1, impl)
    if demodulate:
        d = _demod_coefs(weight, styles)[:, :, None, None]
        return y * d if noise is None else torch.addcmul(noise.to(y.dtype), y, d)
    return y if noise is None else y + noise.to(y.dtype)


# ----------------------------------------------------------------------------------------------
# The one-time self-check of the compiled kernels (gemix_monai/ops/_selfcheck.py) runs these cases.


# modulated_conv2d: the modulation/demodulation kernel (w_n and d) and its backward kernel,
# against modulate_weight_ref and the backward formula the op registers (_modulate_backward_ref).
def _selfcheck_cases(device, dtype):
    g = torch.Generator().manual_seed(22)
    weight, weight64 = case_inputs(g, (4, 3, 3, 3), device, dtype)
    styles, styles64 = case_inputs(g, (2, 3), device, dtype, positive=True)
    grad_w, grad_w64 = case_inputs(g, (2, 4, 3, 3, 3), device, dtype)
    grad_d, grad_d64 = case_inputs(g, (2, 4), device, dtype)
    for demodulate in (True, False):
        label = "demodulate" if demodulate else "no demodulation"
        w_n, d = raw_kernel("modulate_weight")(weight, styles, demodulate, DEMOD_EPS)
        w_n64, d64 = modulate_weight_ref(weight64, styles64, demodulate)
        yield f"forward w_n {label}", w_n, w_n64
        yield f"forward d {label}", d, d64
        d_low = d64.to(dtype)
        gweight, gstyles = raw_kernel("modulate_weight_backward")(grad_w, grad_d, weight, styles, d_low, demodulate)
        ref_weight, ref_styles = _modulate_backward_ref(
            grad_w64, grad_d64, weight64, styles64, d_low.to(torch.float64), demodulate
        )
        yield f"gradient weight {label}", gweight, ref_weight
        yield f"gradient styles {label}", gstyles, ref_styles


register_check("modulated_conv2d", ("modulate_weight", "modulate_weight_backward"), _selfcheck_cases)
