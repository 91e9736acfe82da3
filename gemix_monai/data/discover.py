"""Which files of a folder are images: the one rule for class folders, ``validate`` and ``classify`` (docs/data.md,
"Which files are read").

* The search is **recursive**: every file under the folder, at any depth (``yes/2019/batch1/a.jpg`` belongs to
  class ``yes``), sorted by its path relative to the folder. Hidden files and folders (name starting with ``.``)
  are not looked at.
* An image is a file with a suffix of :data:`~gemix_monai.data.files.IMAGE_SUFFIXES` in any letter case
  (``.nii.gz`` counted as one suffix), or — whatever its name (``IM0001``, ``1.2.840.113619.2.55.1``) — a DICOM
  file, recognised by the ``DICM`` marker at byte 128 (the form PACS exports). Any other file is *not an image*
  (:attr:`ImageScan.others`): class folders refuse it, ``classify`` lists it.
* An Analyze / NIfTI-pair image is its ``.hdr`` (the ``.img`` beside it is its pixel data, not a second image); an
  ``.img`` without its ``.hdr`` is a problem. A segmentation mask ``<stem>_mask.<ext>`` beside its image
  ``<stem>.<ext'>`` is that image's mask, not an image (docs/segmentation.md).
* Links are followed. A dangling link, a link that points to itself and a folder link that leads back to a folder
  above it (a loop) are problems naming the link — never skipped without a word.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError, DataValidationError
from .files import file_suffix, has_dicom_preamble, has_image_suffix, image_stem, mask_stem, sniff_format

logger = logging.getLogger(__name__)

__all__ = ["ImageScan", "scan_images", "discover_images", "sniff_format", "has_dicom_preamble", "file_suffix"]


@dataclass
class ImageScan:
    """What :func:`scan_images` found under ``root`` (paths are ``root`` joined with the relative path: links kept).

    ``images``: the images, sorted by relative path; ``masks``: image → its mask file; ``orphan_masks``: files named
    ``<stem>_mask.<ext>`` without their image (images for ``classify``, problems in class folders); ``others``:
    regular files that are not images; ``problems``: ``(path, reason)`` for links that lead nowhere or in a loop,
    an ``.img`` without its ``.hdr``, special files.
    """

    root: Path
    images: list[Path] = field(default_factory=list)
    masks: dict[Path, Path] = field(default_factory=dict)
    orphan_masks: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def scan_images(folder: str | os.PathLike) -> ImageScan:
    """Every file under ``folder`` sorted into images, masks, other files and problems (the module docstring's rule).

    Raises :class:`DataError` when ``folder`` is not a folder.
    """
    root = Path(os.path.abspath(folder))
    if not root.is_dir():
        raise DataError(f"folder not found: {folder}")
    scan = ImageScan(root)
    files: list[Path] = []

    def walk(directory: Path, ancestors: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            scan.problems.append((str(directory), f"cannot list this folder ({e.strerror or e})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = directory / entry.name
            if entry.is_symlink():
                try:
                    os.stat(path)
                except FileNotFoundError:
                    scan.problems.append(
                        (str(path), f"dangling link: it points to {os.readlink(path)}, which does not exist")
                    )
                    continue
                except OSError as e:
                    if e.errno == errno.ELOOP:
                        scan.problems.append((str(path), "link loop: the link leads back to itself"))
                    else:
                        scan.problems.append((str(path), f"cannot follow this link ({e.strerror or e})"))
                    continue
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()
            except OSError as e:
                scan.problems.append((str(path), f"cannot read ({e.strerror or e})"))
                continue
            if is_dir:
                real = os.path.realpath(path)
                if real in ancestors:
                    scan.problems.append((str(path), f"link loop: it leads back to {real}, a folder above it"))
                    continue
                walk(path, (*ancestors, real))
            elif is_file:
                files.append(path)
            else:
                scan.problems.append((str(path), "not a regular file (a device, pipe or socket)"))

    walk(root, (os.path.realpath(root),))
    images = []
    for path in files:
        suffix = file_suffix(path)
        if suffix == ".img":  # Analyze / NIfTI pair: the .hdr is the image, the .img its pixel data
            if not any(path.with_name(image_stem(path) + s).is_file() for s in (".hdr", ".HDR", ".Hdr")):
                scan.problems.append((str(path), "Analyze/NIfTI-pair pixel data without its header (.hdr beside it)"))
            continue
        if has_image_suffix(path) or has_dicom_preamble(path):
            images.append(path)
        else:
            scan.others.append(path)
    by_stem = {(p.parent, image_stem(p)): p for p in images if mask_stem(p) is None}
    for p in images:
        stem = mask_stem(p)
        if stem is None:
            scan.images.append(p)
        elif (p.parent, stem) in by_stem:
            scan.masks[by_stem[(p.parent, stem)]] = p
        else:
            scan.orphan_masks.append(p)
    order = scan.relative
    scan.images.sort(key=order)
    scan.orphan_masks.sort(key=order)
    scan.others.sort(key=order)
    return scan


def discover_images(folder: str | os.PathLike) -> list[Path]:
    """Every image under ``folder`` (recursively; the rule of this module), sorted by relative path.

    A mask beside its image is left out; a ``*_mask`` file without its image is an image like any other (nothing
    says it is a mask). Files that are not images are left out (see :func:`scan_images` for them). Dangling links,
    link loops and an ``.img`` without its ``.hdr`` raise :class:`DataValidationError` naming each.
    """
    scan = scan_images(folder)
    if scan.problems:
        raise DataValidationError(scan.problems, f"folder {folder}", hint="fix or remove them")
    if scan.others:  # left out, but never without a word
        shown = [scan.relative(p) for p in scan.others[:10]]
        logger.warning(
            "%s: %d file(s) that are not images left out: %s%s",
            folder,
            len(scan.others),
            shown,
            " ..." if len(scan.others) > 10 else "",
        )
    return sorted(scan.images + scan.orphan_masks, key=scan.relative)
