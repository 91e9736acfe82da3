"""File integrity shared by the synthetic exports and pools: sha256 of files and of generators, and the
``sha256sums.txt`` record (``sha256sum -c`` format) that lets a re-run tell a complete file from a damaged one."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

__all__ = ["CHECKSUMS_NAME", "sha256_file", "read_checksums", "generator_fingerprint"]

#: sha256 of every exported image, one ``<hex>  images/<name>`` line each (``sha256sum -c`` reads it).
CHECKSUMS_NAME = "sha256sums.txt"
_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checksums(path: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``sha256sums.txt``; malformed lines (a torn last append) are skipped."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _CHECKSUM_LINE.match(line)
        if m:
            out[m.group(2)] = m.group(1)
    return out


def generator_fingerprint(generator, path: Path | None) -> str:
    """sha256 of the checkpoint file, or of the module's state (names, shapes, values)."""
    if path is not None:
        return sha256_file(path)
    h = hashlib.sha256()
    if isinstance(generator, torch.nn.Module):
        for name, t in generator.state_dict().items():
            h.update(name.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()
    h.update(repr((type(generator).__qualname__, generator.c_dim, generator.z_dim)).encode())
    return h.hexdigest()
