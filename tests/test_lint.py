"""MONAI's 120-column style, checked by ruff as part of the suite (configuration in pyproject.toml).

Run here rather than as a separate CI step so that the README's test command and `.ci/run` stay one command.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["gemix_monai", "tests", "benchmarks", "setup.py", ".ci"]


def _ruff(*args):
    exe = shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: it comes with the test extra (pip install -e '.[test]')")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_lint_error():
    result = _ruff("check", *TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_python_file_is_formatted():
    result = _ruff(
        "format",
        "--check",
        *[t for t in TARGETS if t != ".ci"],
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".ci").glob("*.py")),
    )
    assert result.returncode == 0, result.stdout + result.stderr
