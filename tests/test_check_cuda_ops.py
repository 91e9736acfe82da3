""".ci/check_cuda_ops.py, the registration check of .ci/cuda_build and benchmarks/gpu_check.sh: on a
CPU-only build it must fail and name every op whose CUDA kernel is missing."""

import subprocess
import sys
from pathlib import Path

import pytest

from gemix_monai.ops._ext import get_extension, has_cuda_kernels

ROOT = Path(__file__).resolve().parents[1]
OPS = ("bias_act", "bias_act_grad", "upfirdn2d", "modulate_weight", "modulate_weight_backward")


@pytest.mark.skipif(get_extension() is None or has_cuda_kernels(), reason="needs a CPU-only build of gemix_monai._C")
def test_a_cpu_only_build_fails_naming_each_missing_cuda_kernel():
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_cuda_ops.py"), get_extension().__file__],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "compiled without GEMIX_WITH_CUDA" in result.stderr
    for op in OPS:
        assert f"FAIL gemix_C::{op} has no CUDA kernel registered" in result.stderr
        assert f"gemix_C::{op}" in result.stdout  # the table lists it, with its CPU kernel
    assert "CPU NO" not in result.stdout
