import pytest
import torch

# The suite runs as `pytest -n 2` on CI's 2 cores: one torch thread per worker keeps the cores
# busy without oversubscription (small ops slow down by 10x or more when threads contend).
torch.set_num_threads(1)

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device; this machine has none")


@pytest.fixture
def shared_data_dir():
    """``../shared/data`` beside the project root, when this checkout has one."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return path


def pytest_collection_modifyitems(config, items):
    """Every test skipped for want of a CUDA device also carries the ``cuda`` marker, however its
    module spells the skip, so that ``pytest -m cuda`` selects all of them (benchmarks/gpu_check.sh
    runs exactly those on a lent GPU)."""
    for item in items:
        if any(m.name == "skipif" and "CUDA device" in str(m.kwargs.get("reason", "")) for m in item.iter_markers()):
            item.add_marker(pytest.mark.cuda)


@pytest.fixture(autouse=True)
def _no_logging_into_closed_streams():
    """A bundle run in-process applies configs/logging.conf, whose handlers write to the ``sys.stderr`` of that
    moment: pytest's capture of one test, closed when it ends. Drop such handlers after each test, so a later test's
    log line is not a '--- Logging error ---' traceback in its captured output."""
    import logging

    yield
    for logger in [logging.getLogger()] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
        for handler in list(getattr(logger, "handlers", [])):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                logger.removeHandler(handler)
