"""Finding the compiled kernels: the prebuilt ``gemix_monai._C``, else one JIT build, else none.

Which implementation an op call uses is decided by :func:`resolve_impl` from the call's ``impl``
argument, else the ``GEMIX_OPS`` environment variable (``auto``, ``cuda``, ``cpp`` or ``ref``):

* ``auto``: the CUDA kernels for CUDA tensors and the C++ kernels for CPU tensors when the
  extension is available, the pure-PyTorch reference otherwise (with one warning per process
  that names why the extension could not be had);
* ``cuda`` / ``cpp``: that path or an error (never a silent fallback);
* ``ref``: the reference, always available.

The extension registers its kernels as ``torch.ops.gemix_C.*``; importing it is what makes them
appear, so callers go through :func:`get_extension` first.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["VALID_IMPLS", "get_extension", "extension_error", "has_cuda_kernels", "resolve_impl", "csrc_dir"]

VALID_IMPLS = ("auto", "cuda", "cpp", "ref")

_lock = threading.Lock()
_state: dict = {"tried": False, "module": None, "error": None, "warned": set()}


def csrc_dir() -> Path:
    """The ``csrc/`` folder of a source checkout (an editable install or the repository)."""
    return Path(__file__).resolve().parents[2] / "csrc"


def _jit_build(prebuilt_error: Exception):
    if os.environ.get("GEMIX_NO_JIT", "0") == "1":
        raise RuntimeError(
            f"prebuilt gemix_monai._C is not importable ({prebuilt_error}) and GEMIX_NO_JIT=1 disables the JIT build"
        )
    root = csrc_dir()
    cpp = sorted(str(p) for p in root.rglob("*.cpp"))
    if not cpp:
        raise RuntimeError(
            f"prebuilt gemix_monai._C is not importable ({prebuilt_error}) and no C++ sources were found under {root}"
        )
    from torch.utils.cpp_extension import CUDA_HOME, load

    with_cuda = torch.cuda.is_available() and CUDA_HOME is not None
    sources = [s for s in cpp if with_cuda or not s.endswith("_cuda.cpp")]
    if with_cuda:
        sources += sorted(str(p) for p in root.rglob("*.cu"))
    flags = ["-O3", "-std=c++20", "-fopenmp"]
    return load(
        name="gemix_monai_C_jit",
        sources=sources,
        extra_include_paths=[str(root)],
        extra_cflags=flags + (["-DGEMIX_WITH_CUDA=1"] if with_cuda else []),
        extra_cuda_cflags=["-O3", "--use_fast_math", "-std=c++20", "-DGEMIX_WITH_CUDA=1"],
        extra_ldflags=["-fopenmp"],
        with_cuda=with_cuda,
        verbose=False,
    )


def get_extension():
    """The compiled extension module, or ``None`` (tried once per process, thread-safe)."""
    if _state["tried"]:
        return _state["module"]
    with _lock:
        if _state["tried"]:
            return _state["module"]
        try:
            from gemix_monai import _C as module  # built by setup.py
        except ImportError as prebuilt_error:
            try:
                module = _jit_build(prebuilt_error)
            except Exception as jit_error:  # any failure of the toolchain means: use the reference
                module = None
                cause = str(jit_error).strip().splitlines()[0] if str(jit_error).strip() else type(jit_error).__name__
                _state["error"] = (
                    f"prebuilt gemix_monai._C missing ({prebuilt_error}); JIT build failed: {type(jit_error).__name__}: {cause}"
                )
        _state["module"] = module
        _state["tried"] = True
    return _state["module"]


def extension_error() -> str | None:
    """Why the extension is unavailable, or ``None`` if it loaded (or was not tried yet)."""
    return _state["error"]


def has_cuda_kernels() -> bool:
    """True when the loaded extension was compiled with its CUDA kernels."""
    module = get_extension()
    return bool(module is not None and getattr(module, "has_cuda", lambda: False)())


def _warn_once(key: str, message: str) -> None:
    if key not in _state["warned"]:
        _state["warned"].add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def resolve_impl(impl: str | None, device: torch.device, op: str) -> str:
    """Pick ``'cuda'``, ``'cpp'`` or ``'ref'`` for a call of ``op`` on tensors living on ``device``.

    ``impl=None`` defers to ``GEMIX_OPS`` (default ``auto``). A forced path that cannot run raises
    ``RuntimeError`` (extension missing) or ``ValueError`` (tensor on the wrong device).

    Under ``torch.compile`` the choice is made once, while tracing, and baked into the graph as a
    constant (loading the extension is not traceable); changing ``GEMIX_OPS`` afterwards does not
    recompile.
    """
    if torch.compiler.is_compiling():
        return _resolve_impl_at_trace_time(impl, device, op)
    return _resolve_impl(impl, device, op)


@torch.compiler.assume_constant_result
def _resolve_impl_at_trace_time(impl: str | None, device: torch.device, op: str) -> str:
    return _resolve_impl(impl, device, op)


def _resolve_impl(impl: str | None, device: torch.device, op: str) -> str:
    requested = (impl if impl is not None else os.environ.get("GEMIX_OPS", "auto")).lower()
    if requested not in VALID_IMPLS:
        source = "impl" if impl is not None else "GEMIX_OPS"
        raise ValueError(f"{op}: {source} must be one of {VALID_IMPLS}, got {requested!r}")
    if requested == "ref":
        return "ref"
    if requested == "auto":
        module = get_extension()
        if module is None:
            _warn_once(
                "ext",
                f"gemix_monai: custom ops unavailable, using the pure-PyTorch reference path: {extension_error()}",
            )
            return "ref"
        if device.type == "cpu":
            return "cpp"
        if device.type == "cuda":
            if has_cuda_kernels():
                return "cuda"
            _warn_once(
                "cuda",
                "gemix_monai: the extension was built without CUDA kernels; CUDA tensors use the pure-PyTorch reference path",
            )
        return "ref"
    expected_device = "cpu" if requested == "cpp" else "cuda"
    if device.type != expected_device:
        raise ValueError(f"{op}: impl {requested!r} runs on {expected_device} tensors, got a tensor on {device}")
    if get_extension() is None:
        raise RuntimeError(f"{op}: impl {requested!r} was forced but the extension is unavailable: {extension_error()}")
    if requested == "cuda" and not has_cuda_kernels():
        raise RuntimeError(f"{op}: impl 'cuda' was forced but gemix_monai._C was built without CUDA kernels")
    return requested
