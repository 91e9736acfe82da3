"""benchmarks/gpu_check.sh, the one-command GPU validation, as far as a machine without a GPU can
check it: it lists its steps in a dry run and fails fast, saying why, where there is no device."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
STEPS = ("build", "registration", "selfcheck", "cuda-tests", "ops", "generator-fp16", "generator-bf16", "augmentation")


def run(*args, env=None, timeout=60):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_dry_run_lists_every_step_and_writes_nothing(tmp_path):
    result = run("--dry-run", env={"OUT": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert tuple(listed) == STEPS
    assert "FORCE_CUDA=1" in result.stdout and "--no-build-isolation --no-deps" in result.stdout
    assert "gemix_monai.ops._selfcheck --device cuda" in result.stdout
    assert "pytest" in result.stdout and "tests/networks/test_cuda.py" in result.stdout and "-m cuda" in result.stdout
    for bench in (
        "benchmarks/ops.py --device cuda",
        "benchmarks.generator --device cuda",
        "--mixed-precision bfloat16",
        "benchmarks/augmentation.py --device cuda",
    ):
        assert bench in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_unknown_argument_is_refused():
    result = run("--bogus")
    assert result.returncode == 2 and "unknown argument" in result.stderr


def _fake_nvidia_smi(folder: Path) -> Path:
    stub = folder / "nvidia-smi"
    stub.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n"
    )
    stub.chmod(0o755)
    return folder


def test_no_device_fails_fast_with_a_clear_message(tmp_path):
    (tmp_path / "bin").mkdir()
    bin_dir = _fake_nvidia_smi(tmp_path / "bin")
    start = time.perf_counter()
    result = run(env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp_path / "out")})
    assert time.perf_counter() - start < 15
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "NVIDIA-SMI has failed" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_no_nvidia_smi_at_all_fails_fast():
    result = run()
    assert result.returncode == 2 and "no CUDA device" in result.stderr and "nvidia-smi not found" in result.stderr


def test_every_test_skipped_without_a_device_is_selected_by_the_cuda_marker():
    """gpu_check runs `pytest -m cuda`: the conftest hook gives every test that a CUDA skip guards
    that marker, whether or not its module spelled it."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            "-m",
            "cuda",
            "tests/networks/test_cuda.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(ids) == 3 and any("test_generate_on_cuda_matches_cpu" in i for i in ids)


FAKE_PYTHON = r"""#!/bin/sh
# Stands in for python on a GPU machine: the device checks pass, one benchmark fails, the CUDA
# tests report a skip, everything else "passes" at once.
case "$*" in
  *torch.cuda.is_available*) echo "torch 9.9.9+cu130, CUDA 13.0, capability 9.0" ;;
  *get_device_capability*) echo "9.0" ;;
  -V) echo "Python 3.12.3" ;;
  *benchmarks/ops.py*) echo "ops: kernel exploded" >&2; exit 3 ;;
  *pytest*) echo "41 passed, 1 skipped in 3.2s" ;;
  -|-\ *) cat >/dev/null ;;
  *) echo "ran: $* (TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset})" ;;
esac
"""


def _fake_gpu_machine(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 580.159.04, 9.0'\n")
    python = bin_dir / "fake-python"
    python.write_text(FAKE_PYTHON)
    for f in (smi, python):
        f.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": str(python),
        "OUT": str(tmp_path / "out"),
        "GPU_CHECK_LOGS": str(tmp_path / "logs"),
    }


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path):
    result = run(env=_fake_gpu_machine(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "NVIDIA H100 80GB HBM3, 580.159.04, 9.0" in report and "torch 9.9.9+cu130, CUDA 13.0" in report
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in report.splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert rows["ops"] == "FAILED (exit 3)" and "kernel exploded" in report
    assert rows["cuda-tests"].startswith("FAILED (CUDA tests were skipped")
    for step in ("build", "registration", "selfcheck", "generator-fp16", "generator-bf16", "augmentation"):
        assert rows[step] == "passed", rows
    assert "TORCH_CUDA_ARCH_LIST=9.0" in (tmp_path / "logs" / "build.log").read_text()
    assert (tmp_path / "out" / "benchmarks.md").exists() and (tmp_path / "out" / "gpu_check.log").exists()
    assert len(list((tmp_path / "out").iterdir())) <= 8  # what a lent machine's $OUT gives back


def test_steps_past_the_budget_are_reported_as_not_run(tmp_path):
    result = run(env={**_fake_gpu_machine(tmp_path), "GPU_CHECK_BUDGET": "10"})
    assert result.returncode == 1
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert report.count("NOT RUN (budget of 10 s spent)") == len(STEPS)
