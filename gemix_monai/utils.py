"""Small shared helpers: atomic checkpoint writes and safe loads."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import numbers
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_torch_save",
    "safe_torch_load",
    "check_truncation_psi",
    "plain_tensor",
    "plain_data",
    "quiet_logs",
    "resolve_device",
]

#: Loggers muted by :func:`quiet_logs` beside the root logger's INFO (per-iteration engine statistics, MONAI's
#: config echo, a missing optional decoder plugin).
SILENCED_LOGGERS = (
    "monai.handlers.StatsHandler",
    "monai.bundle.scripts",
    "monai.bundle.workflows",
    "monai.data.nvimgcodec_pydicom_plugin",
)


@contextlib.contextmanager
def quiet_logs():
    """Within the block: the root logger at WARNING and :data:`SILENCED_LOGGERS` off (progress bars still show);
    the levels are restored afterwards."""
    import logging
    import warnings

    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.WARNING)
    silenced = [logging.getLogger(name) for name in SILENCED_LOGGERS]
    was_disabled = [lg.disabled for lg in silenced]
    for lg in silenced:
        lg.disabled = True
    try:
        with warnings.catch_warnings():
            # StatsHandler warns that it cannot log at INFO: that is the point of quiet mode
            warnings.filterwarnings("ignore", message=".*StatsHandler may not output logs.*")
            # the security notice about evaluating configs: these are this package's own configs
            warnings.filterwarnings("ignore", message="parsing config_file .*")
            yield
    finally:
        root.setLevel(root_level)
        for lg, disabled in zip(silenced, was_disabled):
            lg.disabled = disabled


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no read-only API elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """Mode for the new file: an existing target's permission bits, else ``0o666 & ~umask`` (what ``open()`` gives)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader never sees a half-written file, and a run killed mid-write leaves the previous file
    (or none) in place, never a truncated one. ``durable`` also fsyncs before the rename, so the
    new content survives a power loss; bulk writers of many small regenerable files may skip it.

    The file gets the permissions a plain ``open(path, "wb")`` would give: the existing target's
    mode when it is replaced, else ``0o666`` less the process umask (``mkstemp`` alone makes 0600).
    A failed write (e.g. a full disk) removes the temporary file and raises an ``OSError`` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _target_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            code = e.errno if e.errno is not None else errno.EIO
            raise OSError(code, f"cannot write {path}: {e.strerror or e}") from e
        raise
    return path


def atomic_write_json(path: str | os.PathLike, payload, *, durable: bool = True) -> Path:
    """``payload`` as indented UTF-8 JSON (with a final newline) through :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode("utf-8"), durable=durable)


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` written through :func:`atomic_write_bytes` (temporary file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def safe_torch_load(path: str | os.PathLike, map_location="cpu"):
    """``torch.load`` with ``weights_only=True`` and an error that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean the same to the user
        raise ValueError(f"cannot load checkpoint {path} safely (weights_only=True): {type(e).__name__}: {e}") from e


def check_truncation_psi(truncation_psi) -> float:
    """``truncation_psi`` as a finite float; a ``ValueError`` naming it for NaN, inf or a non-number.

    (NaN/inf would pull every ``w`` to NaN/inf and, after the output clamp, give a flat or saturated
    image instead of an error.)
    """
    if isinstance(truncation_psi, torch.Tensor) and truncation_psi.numel() == 1:
        truncation_psi = truncation_psi.item()
    limit = float(torch.finfo(torch.float32).max)  # the networks compute in float32
    if (
        isinstance(truncation_psi, bool)
        or not isinstance(truncation_psi, numbers.Real)
        or not math.isfinite(truncation_psi)
        or abs(truncation_psi) > limit
    ):
        raise ValueError(
            f"truncation_psi must be a finite number (1 = no truncation, 0 = the average w) of magnitude "
            f"<= {limit:.6g} (float32), got {truncation_psi!r}"
        )
    return float(truncation_psi)


def plain_tensor(x) -> torch.Tensor:
    """``x`` as a plain ``torch.Tensor``: a MONAI ``MetaTensor`` loses its metadata, arrays and numbers are converted."""
    t = torch.as_tensor(x)
    return t.as_tensor() if hasattr(t, "as_tensor") else t


def plain_data(value, where: str = "value", *, otherwise: str = "error"):
    """``value`` as plain data: ``None``, bools, numbers, strings, lists and dicts with string keys (what JSON
    writes and ``torch.load(weights_only=True)`` reads).

    Tuples become lists; objects with ``to_dict()`` (data contracts) their dict; tensors, arrays and numpy
    scalars their ``tolist()``. Anything else follows ``otherwise``: ``"error"`` raises a ``TypeError`` naming
    ``where`` (the entry's path), ``"str"``/``"repr"`` write its ``str``/``repr``.
    """
    if otherwise not in ("error", "str", "repr"):
        raise ValueError(f"plain_data: otherwise must be 'error', 'str' or 'repr', got {otherwise!r}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return plain_data(value.to_dict(), where, otherwise=otherwise)
    if isinstance(value, Mapping):
        return {str(k): plain_data(v, f"{where}.{k}", otherwise=otherwise) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, where, otherwise=otherwise) for v in value]
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        return plain_data(value.tolist(), where, otherwise=otherwise)
    if otherwise == "error":
        raise TypeError(
            f"{where} must hold only numbers, strings, lists and dicts (checkpointable), got {type(value).__name__}"
        )
    return str(value) if otherwise == "str" else repr(value)


def resolve_device(device) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` is CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
