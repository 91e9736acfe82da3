"""The bundle's classifier served by MONAI Label's ``BundleInferTask``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["classifier_infer_task"]


def classifier_infer_task(bundle_path: str | os.PathLike, conf: dict | None = None, **kwargs):
    """A ``monailabel.tasks.infer.bundle.BundleInferTask`` of type ``classification`` for ``bundle_path``.

    The bundle needs ``configs/inference.json``, ``configs/metadata.json`` and ``models/model.pt``.
    A request ``{"image": <path to a CT slice>, "device": "cpu"}`` returns
    ``(None, {"prediction": [{"idx", "label", "score"}, ...]})`` with one softmax score per class.

    MONAI Label's defaults otherwise apply, ``add_post_restore`` included: inference.json's ``postprocessing``
    drops the input image's meta data, so ``Restored`` (which resizes a segmentation back to the input image)
    leaves the class-probability vector alone. ``load_strict`` is on: a weight file that does not fit
    ``network_def`` is an error, not a warning. MONAI Label's stock ``monaibundle`` app builds
    ``BundleInferTask(path, conf)`` with no ``type``: it then takes the type from the folder name, so name the
    bundle folder e.g. ``gemix_classification`` there (docs: bundle/docs/README.md, "MONAI Label").
    """
    try:
        from monailabel.tasks.infer.bundle import BundleInferTask
    except ImportError as e:
        raise ImportError(
            f"serving the classifier needs MONAI Label: pip install 'gemix-monai[monailabel]' (import failed: {e})"
        ) from e

    path = Path(bundle_path)
    missing = [
        p for p in ("configs/inference.json", "configs/metadata.json", "models/model.pt") if not (path / p).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"bundle {path} lacks {missing}; train the classifier first (configs/train.json)")
    kwargs.setdefault("load_strict", True)
    task = BundleInferTask(str(path), dict(conf or {}), type="classification", **kwargs)
    if not task.is_valid():
        raise RuntimeError(f"MONAI Label rejected bundle {path} (see its log for the reason)")
    return task
