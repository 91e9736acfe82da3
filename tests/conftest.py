import os

import pytest
import torch

# Tests must not depend on how many cores the machine has; keep CI (2 cores) predictable.
torch.set_num_threads(min(2, os.cpu_count() or 1))

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device; this machine has none")


@pytest.fixture
def shared_data_dir():
    """``../shared/data`` beside the project root, when this checkout has one."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path
