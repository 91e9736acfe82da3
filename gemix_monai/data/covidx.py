"""COVIDx-CT label files: one line per slice, ``filename class xmin ymin xmax ymax``.

``class`` is 0 (normal), 1 (pneumonia) or 2 (COVID-19); the box (pixels, x = column) bounds the
body and is used to crop the slice before resizing (``get_transforms(box_key="box")``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import DataError, DataValidationError

__all__ = ["COVIDX_CLASS_NAMES", "read_covidx_labels"]

COVIDX_CLASS_NAMES: tuple[str, ...] = ("normal", "pneumonia", "covid19")


def read_covidx_labels(
    label_file: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    class_names: Sequence[str] = COVIDX_CLASS_NAMES,
    crop: bool = True,
) -> list[dict]:
    """Entries ``{"image": image_dir/filename, "label": int, "box": (xmin, ymin, xmax, ymax)}``.

    ``image_dir`` defaults to the label file's folder. With ``crop=False`` no ``"box"`` is added.
    Every malformed line (wrong field count, non-integer class or box, class out of range, empty or
    inverted box) is reported with the file name and line number, all at once.
    """
    label_file = Path(label_file)
    if not label_file.is_file():
        raise DataError(f"COVIDx-CT label file not found: {label_file}")
    image_dir = Path(image_dir) if image_dir is not None else label_file.parent
    items, problems = [], []
    for n, line in enumerate(label_file.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        where = f"line {n}"
        if len(fields) != 6:
            problems.append(
                (where, f"expected 6 fields 'filename class xmin ymin xmax ymax', got {len(fields)}: {line.strip()!r}")
            )
            continue
        name, cls, *box = fields
        try:
            label = int(cls)
        except ValueError:
            if cls.lower() in [c.lower() for c in class_names]:
                label = [c.lower() for c in class_names].index(cls.lower())
            else:
                problems.append(
                    (where, f"{name}: unknown class {cls!r}; expected an index or one of {list(class_names)}")
                )
                continue
        if not 0 <= label < len(class_names):
            problems.append((where, f"{name}: class {label} out of range [0, {len(class_names)})"))
            continue
        try:
            xmin, ymin, xmax, ymax = (int(float(v)) for v in box)
        except ValueError:
            problems.append((where, f"{name}: box {box} must be integers"))
            continue
        if xmin < 0 or ymin < 0 or xmax <= xmin or ymax <= ymin:
            problems.append(
                (
                    where,
                    f"{name}: box (xmin, ymin, xmax, ymax) = {(xmin, ymin, xmax, ymax)} is empty, inverted or negative",
                )
            )
            continue
        item = {"image": str(image_dir / name), "label": label}
        if crop:
            item["box"] = (xmin, ymin, xmax, ymax)
        items.append(item)
    if problems:
        raise DataValidationError(problems, f"COVIDx-CT labels {label_file}")
    if not items:
        raise DataError(f"{label_file}: no entries")
    return items
