"""MONAI Label tasks: the bundle's classifier and a soft-label image generator.

``monailabel`` is an optional extra (``pip install gemix-monai[monailabel]``); nothing here imports
it until a task is requested, so ``import gemix_monai`` never needs it.

* :func:`classifier_infer_task` — MONAI Label's own ``BundleInferTask`` (type ``classification``)
  over ``bundle/``: ``configs/inference.json`` provides ``bundle_root``, ``device``,
  ``network_def``, ``preprocessing``, ``postprocessing`` and ``inferer``; ``models/model.pt`` is
  the classifier's state dict; class names come from the ``channel_def`` of ``metadata.json``.
* :class:`GenerateImageTask` — an ``InferTask`` of type ``others``: a request with a soft label
  (or a class name) returns a generated image file and the label it was conditioned on.
"""

__all__ = ["classifier_infer_task", "GenerateImageTask"]


def __getattr__(name):
    if name == "classifier_infer_task":
        from .classifier import classifier_infer_task

        return classifier_infer_task
    if name == "GenerateImageTask":
        from .generator import GenerateImageTask

        return GenerateImageTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
