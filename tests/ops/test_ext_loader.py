"""The extension loader (gemix_monai.ops._ext): GEMIX_OPS/impl resolution, no silent fallback
when a path is forced, one warning naming the cause when the automatic choice falls back, and an
import of the package that never compiles anything."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gemix_monai.ops import _ext
from gemix_monai.ops._ext import get_extension, has_cuda_kernels, resolve_impl

ROOT = Path(__file__).resolve().parents[2]
HAS_EXT = get_extension() is not None
requires_ext = pytest.mark.skipif(not HAS_EXT, reason=f"the extension is unavailable: {_ext.extension_error()}")
CPU = torch.device("cpu")


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    if "GEMIX_OPS" not in env:
        full_env.pop("GEMIX_OPS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def missing_extension(monkeypatch):
    """The loader's state as after a failed build: no module, a recorded cause, nothing warned yet."""
    monkeypatch.setattr(
        _ext, "_state", {"tried": True, "module": None, "error": "simulated: no compiler", "warned": set()}
    )


def test_env_ref_selects_the_reference(monkeypatch):
    monkeypatch.setenv("GEMIX_OPS", "ref")
    assert resolve_impl(None, CPU, "upfirdn2d") == "ref"


@requires_ext
@pytest.mark.parametrize("value", ["cpp", "CPP"])
def test_env_cpp_selects_the_cpp_kernels(monkeypatch, value):
    monkeypatch.setenv("GEMIX_OPS", value)
    assert resolve_impl(None, CPU, "upfirdn2d") == "cpp"


@requires_ext
def test_auto_selects_cpp_for_cpu_tensors(monkeypatch):
    monkeypatch.setenv("GEMIX_OPS", "auto")
    assert resolve_impl(None, CPU, "upfirdn2d") == "cpp"
    monkeypatch.delenv("GEMIX_OPS")
    assert resolve_impl(None, CPU, "upfirdn2d") == "cpp"


def test_impl_argument_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("GEMIX_OPS", "cpp")
    assert resolve_impl("ref", CPU, "upfirdn2d") == "ref"


@pytest.mark.parametrize("value", ["fast", "gpu", ""])
def test_invalid_env_value_raises_naming_gemix_ops(monkeypatch, value):
    monkeypatch.setenv("GEMIX_OPS", value)
    with pytest.raises(ValueError, match=r"GEMIX_OPS must be one of"):
        resolve_impl(None, CPU, "upfirdn2d")


def test_invalid_impl_argument_raises_naming_impl():
    with pytest.raises(ValueError, match=r"upfirdn2d: impl must be one of"):
        resolve_impl("triton", CPU, "upfirdn2d")


def test_forced_cpp_without_extension_raises_instead_of_falling_back(missing_extension):
    with pytest.raises(
        RuntimeError, match="impl 'cpp' was forced but the extension is unavailable: simulated: no compiler"
    ):
        resolve_impl("cpp", CPU, "upfirdn2d")


def test_forced_cpp_on_a_cuda_tensor_raises():
    with pytest.raises(ValueError, match="impl 'cpp' runs on cpu tensors"):
        resolve_impl("cpp", torch.device("cuda"), "upfirdn2d")


def test_forced_cuda_on_a_cpu_tensor_raises():
    with pytest.raises(ValueError, match="impl 'cuda' runs on cuda tensors"):
        resolve_impl("cuda", CPU, "upfirdn2d")


@pytest.mark.skipif(has_cuda_kernels(), reason="this extension has CUDA kernels")
def test_forced_cuda_without_cuda_kernels_raises():
    with pytest.raises(RuntimeError, match="impl 'cuda' was forced"):
        resolve_impl("cuda", torch.device("cuda"), "upfirdn2d")


def test_auto_without_extension_falls_back_with_one_warning_naming_the_cause(missing_extension):
    with pytest.warns(RuntimeWarning, match="simulated: no compiler") as record:
        assert resolve_impl("auto", CPU, "upfirdn2d") == "ref"
    assert resolve_impl("auto", CPU, "upfirdn2d") == "ref"  # no second warning
    assert resolve_impl(None, CPU, "bias_act") == "ref"
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1


def test_importing_the_package_never_compiles():
    result = _run_python(
        """
        import sys
        import gemix_monai, gemix_monai.ops
        loaded = [m for m in ("torch.utils.cpp_extension", "gemix_monai._C") if m in sys.modules]
        print("LOADED", loaded)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout


def test_missing_extension_in_a_fresh_process_warns_once_and_uses_the_reference():
    # gemix_monai._C made unimportable, the JIT build switched off: the automatic path must fall
    # back to the reference with exactly one warning that says why, and still compute correctly.
    result = _run_python(
        """
        import sys, warnings
        import torch
        sys.modules["gemix_monai._C"] = None  # any import of it now raises ImportError
        from gemix_monai.ops import setup_filter, upfirdn2d
        from gemix_monai.ops.upfirdn2d import upfirdn2d_ref
        x = torch.randn(1, 2, 6, 6)
        f = setup_filter([1, 3, 3, 1])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y1 = upfirdn2d(x, f, up=2, padding=2)
            y2 = upfirdn2d(x, f, down=2, padding=1)
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        print("WARNINGS", len(messages))
        for m in messages:
            print("MESSAGE", m)
        torch.testing.assert_close(y1, upfirdn2d_ref(x, f, 2, 2, 1, 1, 2, 2, 2, 2))
        try:
            upfirdn2d(x, f, impl="cpp")
        except RuntimeError as e:
            print("FORCED", e)
        """,
        GEMIX_NO_JIT="1",
        GEMIX_OPS="auto",
    )
    assert result.returncode == 0, result.stderr
    assert "WARNINGS 1" in result.stdout
    assert "GEMIX_NO_JIT=1" in result.stdout and "custom ops unavailable" in result.stdout
    assert "FORCED upfirdn2d: impl 'cpp' was forced but the extension is unavailable" in result.stdout
