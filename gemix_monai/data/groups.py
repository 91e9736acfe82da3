"""Duplicate images, grouped so that an automatic split keeps each group in one split (docs/data.md, "Splits").

Public folders often hold copies of one scan. A split drawn image by image puts copies apart — one in
training, one in test — and the test then measures memory. :func:`grouped_split` draws the split per
*group*: byte-identical files (same sha256) always form one group; with ``near_duplicates`` also images
whose perceptual hash (:func:`perceptual_hash`, a 64-bit DCT hash of the decoded picture) differs in at
most that many bits (:data:`NEAR_DUPLICATE_BITS` by default), e.g. one scan saved as PNG and as JPEG.
A group whose images carry different labels is an error naming the files.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np

from .errors import DataError, DataValidationError
from .readers import LoadMedicalImaged

__all__ = [
    "content_hash",
    "perceptual_hash",
    "NEAR_DUPLICATE_BITS",
    "check_near_duplicates",
    "duplicate_groups",
    "grouped_split",
]

#: Default Hamming distance (bits of 64) up to which two perceptual hashes count as the same picture. Re-encoding
#: (PNG ↔ JPEG q ≥ 75), a re-size and small intensity changes stay within 2–4 bits; different scans of one
#: modality differ in 20–40 (docs/data.md, "Splits").
NEAR_DUPLICATE_BITS = 4

_HASH_CACHE: dict[tuple, str] = {}


def content_hash(image) -> str:
    """sha256 of a file's bytes (of an Analyze/NIfTI-pair ``.hdr``: its bytes then its ``.img``'s, since two different
    images can have byte-identical headers), or of an array's dtype, shape and bytes.

    Files are hashed once per process while their size and modification time stay the same (the split check and the
    leakage check both need every file's hash)."""
    if isinstance(image, (str, os.PathLike)):
        files = [os.fspath(image)]
        if files[0].lower().endswith(".hdr"):
            stem = files[0][:-4]
            files += [stem + s for s in (".img", ".IMG", ".Img") if os.path.isfile(stem + s)][:1]
        stats = [os.stat(f) for f in files]
        key = tuple((os.path.abspath(f), st.st_size, st.st_mtime_ns, st.st_ino) for f, st in zip(files, stats))
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
        h = hashlib.sha256()
        for name in files:
            with open(name, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        if len(_HASH_CACHE) > 200_000:
            _HASH_CACHE.clear()
        _HASH_CACHE[key] = h.hexdigest()
        return _HASH_CACHE[key]
    h = hashlib.sha256()
    arr = np.ascontiguousarray(np.asarray(image))
    h.update(f"{arr.dtype}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def perceptual_hash(image) -> int:
    """64-bit DCT hash (pHash) of a picture: the file decoded as training decodes it, or an array ``[C, x, y]``.

    The image is made grey (mean of channels), scaled to its own min..max, resized to 32×32 (area average), and the
    8×8 lowest frequencies of its 2-D DCT-II (the DC term replaced by the next one) are compared with their median:
    one bit each. Near-identical pictures differ in few bits (:data:`NEAR_DUPLICATE_BITS`).
    """
    import torch
    from scipy.fft import dctn

    if isinstance(image, (str, os.PathLike)):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = LoadMedicalImaged("image").load(image)
    arr = torch.as_tensor(np.asarray(image), dtype=torch.float32)
    if arr.ndim == 4:  # a volume: its middle slice stands for it
        arr = arr[..., arr.shape[-1] // 2]
    grey = arr.mean(0)
    lo, hi = float(grey.min()), float(grey.max())
    grey = (grey - lo) / (hi - lo) if hi > lo else torch.zeros_like(grey)
    small = torch.nn.functional.adaptive_avg_pool2d(grey[None, None], (32, 32))[0, 0].numpy().astype(np.float64)
    low = dctn(small, type=2, norm="ortho")[:8, :8].copy()
    low[0, 0] = low[0, 1]
    bits = (low > np.median(low)).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def _hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def check_near_duplicates(near_duplicates) -> int | None:
    """``near_duplicates`` as a bit threshold: ``None``/``False`` — exact copies only; ``True`` —
    :data:`NEAR_DUPLICATE_BITS`; an integer 0..32. Anything else raises ``DataError`` naming the option."""
    if near_duplicates is None or near_duplicates is False:
        return None
    if near_duplicates is True:
        return NEAR_DUPLICATE_BITS
    if isinstance(near_duplicates, (int, np.integer)) and 0 <= int(near_duplicates) <= 32:
        return int(near_duplicates)
    raise DataError(
        f"near_duplicates must be None/False (exact copies only), True ({NEAR_DUPLICATE_BITS} bits) or an integer "
        f"number of differing bits in 0..32, got {near_duplicates!r}"
    )


def duplicate_groups(paths: Sequence, near_duplicates: int | None = None) -> list[list[int]]:
    """Indices of ``paths`` (files or arrays) grouped: same sha256, and with ``near_duplicates`` (bits) perceptual
    hashes at most that far apart (transitively). Unreadable files stay alone (validation names them). Groups are
    listed by their first index; each is sorted."""
    n = len(paths)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first: dict[str, int] = {}
    for i, p in enumerate(paths):
        try:
            h = content_hash(p)
        except OSError:
            continue
        if h in first:
            union(first[h], i)
        else:
            first[h] = i
    if near_duplicates is not None:
        hashes: list[tuple[int, int]] = []
        for i, p in enumerate(paths):
            try:
                hashes.append((i, perceptual_hash(p)))
            except (DataError, OSError, ValueError, RuntimeError):
                continue
        if hashes:
            idx = np.array([i for i, _ in hashes])
            bits = np.array([[(h >> k) & 1 for k in range(64)] for _, h in hashes], dtype=np.uint8)
            for a in range(len(hashes)):
                dist = (bits[a + 1 :] != bits[a]).sum(1)
                for b in np.flatnonzero(dist <= near_duplicates):
                    union(int(idx[a]), int(idx[a + 1 + b]))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def grouped_split(
    labels: Sequence[int],
    groups: Sequence[Sequence[int]],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
) -> list[str]:
    """A split of each index, per class and per group: ``round(n·test_fraction)`` test, ``round(n·val_fraction)``
    validation, the rest training, where a group goes to a split whole.

    Within each class (in sorted label order) the indices are shuffled with ``seed`` and visited in that order; the
    first visit of a group places all its images: in test if they fit the test count still open, else in validation
    if they fit there, else in training. With no duplicates this is the image-by-image split
    (:func:`gemix_monai.data.datalist.stratified_split`). Every group must hold one label.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with sum < 1, got {val_fraction}, {test_fraction}"
        )
    labels = np.asarray(labels)
    group_of = np.empty(len(labels), dtype=np.int64)
    for g, members in enumerate(groups):
        group_of[list(members)] = g
    rng = np.random.default_rng(seed)
    out = ["training"] * len(labels)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        need = {"test": int(round(len(idx) * test_fraction)), "validation": int(round(len(idx) * val_fraction))}
        placed: set[int] = set()
        for i in idx:
            g = int(group_of[i])
            if g in placed:
                continue
            placed.add(g)
            members = list(groups[g])
            split = next((s for s in ("test", "validation") if len(members) <= need[s]), "training")
            if split != "training":
                need[split] -= len(members)
            for m in members:
                out[m] = split
    return out


def check_group_labels(groups, labels, names, where_of, context: str) -> None:
    """Every group must hold one label; otherwise a :class:`DataValidationError` naming each group's files and labels."""
    problems = []
    for members in groups:
        found = sorted({int(labels[m]) for m in members})
        if len(found) > 1:
            listed = ", ".join(f"{where_of(m)} ({names[int(labels[m])]!r})" for m in members)
            problems.append(
                (where_of(members[0]), f"the same image under different labels — {listed}: conflicting labels")
            )
    if problems:
        raise DataValidationError(
            problems, f"{context}: duplicate images", hint="give each copy the same label, or remove the wrong one"
        )
