"""Running one benchmark measurement in a fresh Python process (clean allocator, OpenMP and thread settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(module: str, argv: list[str], env: dict) -> dict:
    """``python -m <module> <argv>`` from the repository root with environment ``env``; the child prints its
    result as JSON on its last line of output, which is returned."""
    done = subprocess.run(
        [sys.executable, "-m", module, *argv], env=env, capture_output=True, text=True, check=True, cwd=_REPO
    )
    return json.loads(done.stdout.strip().splitlines()[-1])
