"""The tasks a MONAI Label app serves for this bundle, and the app class itself.

MONAI Label's stock ``monaibundle`` app serves the classifier on its own (``BundleInferTask`` /
``BundleTrainTask`` over ``configs/inference.json`` / ``configs/train.json``; name the bundle folder
``gemix_classification`` so that it takes the type ``classification`` from the name). The generator is not an
image → label model, so no stock app offers it: :func:`gemix_tasks` adds :class:`GenerateImageTask`, and
``gemix_monai/monailabel/sample_app/main.py`` is an app folder that registers all three::

    pip install 'gemix-monai[monailabel]' && pip install --no-deps monailabel==0.8.5   # plus its server deps
    APP=$(python -c "import gemix_monai.monailabel.sample_app as a, os; print(os.path.dirname(a.__file__))")
    monailabel start_server --app "$APP" --studies /path/to/images --conf bundle /path/to/gemix_classification

``--conf bundle`` names the bundle folder (default: the ``bundle/`` of this checkout); ``--conf generator`` the
generator checkpoint (default ``<bundle>/models/generator/generator.pt``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["gemix_tasks", "make_app_class"]


def gemix_tasks(bundle_path: str | os.PathLike, conf: dict | None = None) -> tuple[dict, dict]:
    """``(infers, trainers)`` for a MONAI Label app: ``{"gemix_classification": BundleInferTask, "gemix_generator":
    GenerateImageTask}`` (the generator only when its checkpoint exists) and ``{"gemix_classification":
    BundleTrainTask}``. MONAI Label's own classes with their default arguments, ``type="classification"`` given
    so the folder name does not matter."""
    from monailabel.tasks.infer.bundle import BundleInferTask
    from monailabel.tasks.train.bundle import BundleTrainTask

    conf = {k: str(v) for k, v in (conf or {}).items()}
    path = Path(bundle_path)
    infers: dict = {"gemix_classification": BundleInferTask(str(path), conf, type="classification")}
    generator = Path(conf.get("generator") or path / "models" / "generator" / "generator.pt")
    if generator.is_file():
        from gemix_monai.monailabel.generator import GenerateImageTask

        infers["gemix_generator"] = GenerateImageTask(generator, device=conf.get("device", "cpu"))
    trainers = {"gemix_classification": BundleTrainTask(str(path), conf)}
    return infers, trainers


def make_app_class():
    """A ``MONAILabelApp`` subclass serving :func:`gemix_tasks` (imports MONAI Label's server modules)."""
    from monailabel.interfaces.app import MONAILabelApp

    class GemixApp(MONAILabelApp):
        def __init__(self, app_dir, studies, conf):
            bundle = conf.get("bundle") or str(Path(__file__).resolve().parents[2] / "bundle")
            self._infers, self._trainers = gemix_tasks(bundle, conf)
            super().__init__(
                app_dir=app_dir,
                studies=studies,
                conf=conf,
                name="gemix-monai",
                description="GeMix: classifier and soft-label generator of a gemix-monai bundle",
            )

        def init_infers(self):
            return self._infers

        def init_trainers(self):
            return self._trainers

    return GemixApp
