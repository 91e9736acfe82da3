"""setup.py finds the CUDA toolkit itself: the first folder holding bin/nvcc AND
include/cuda_runtime.h, looking through a launcher `nvcc` on the PATH that is not in the toolkit."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def find_cuda_home():
    source = (ROOT / "setup.py").read_text().split("\next_modules, cmdclass")[0]  # everything but the setup() call
    namespace = {"__file__": str(ROOT / "setup.py"), "__name__": "setup_probe"}
    exec(compile(source, "setup.py", "exec"), namespace)
    return namespace["find_cuda_home"]


def _toolkit(folder: Path, headers=True) -> Path:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "nvcc").write_text("#!/bin/sh\n")
    (folder / "bin" / "nvcc").chmod(0o755)
    if headers:
        (folder / "include").mkdir()
        (folder / "include" / "cuda_runtime.h").write_text("")
    return folder


def test_a_launcher_nvcc_on_the_path_is_looked_through(tmp_path, monkeypatch, find_cuda_home):
    launcher = _toolkit(tmp_path / "local", headers=False)  # like /usr/local/bin/nvcc: no headers beside it
    system = tmp_path / "system"
    old, new = _toolkit(system / "cuda-12.4"), _toolkit(system / "cuda-13.0")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", f"{launcher / 'bin'}")
    found, tried = find_cuda_home(str(system))
    assert found == str(new) and str(launcher) in tried and tried.index(str(new)) < tried.index(str(old))


def test_cuda_home_wins_when_it_is_a_toolkit_and_is_skipped_when_not(tmp_path, monkeypatch, find_cuda_home):
    chosen, system = _toolkit(tmp_path / "chosen"), _toolkit(tmp_path / "system" / "cuda")
    monkeypatch.setenv("PATH", str(tmp_path / "no-nvcc-here"))
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("CUDA_HOME", str(chosen))
    assert find_cuda_home(str(tmp_path / "system"))[0] == str(chosen)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "nothing-here"))
    assert find_cuda_home(str(tmp_path / "system"))[0] == str(system)


def test_no_toolkit_anywhere(tmp_path, monkeypatch, find_cuda_home):
    monkeypatch.setenv("PATH", str(tmp_path / "no-nvcc-here"))
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    found, tried = find_cuda_home(str(tmp_path))
    assert found is None and str(tmp_path / "cuda") in tried
