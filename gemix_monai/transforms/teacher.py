"""Labels that say what the generator drew, not only what it was asked for (docs/mixing.md, "Teacher labels").

A conditional generator given the soft label ``c`` does not always draw an image of ``c``: early in
training, or between class embeddings, it may draw something a radiologist would call another class.
GeMix and GenMix keep ``c`` as the training label regardless. :class:`TeacherLabelledSynthetic` wraps
a :class:`~gemix_monai.transforms.synthetic.SyntheticDataset` and asks a *teacher* — a classifier trained
on the real training split only — what each synthetic image looks like:

* ``mode="blend"``: the label becomes ``w · c + (1 − w) · p_teacher`` (``weight`` = w);
* ``mode="filter"``: an image is kept only when its teacher probabilities lie within ``tolerance`` of
  ``c`` in total-variation distance ``½‖p_teacher − c‖₁``; a rejected item is replaced by the next of
  ``tries`` candidates drawn for the same slot (item ``i`` of a set of ``n`` tries ``i, i + n, i + 2n, …``
  of an inner pool ``tries`` times larger), and when none passes, the closest candidate is used with
  its label blended as in ``blend`` (so the stream never silently keeps a contradicted label).

Items stay a pure function of (seed, epoch, index), as in ``SyntheticDataset``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .synthetic import GeneratedItems

__all__ = ["TeacherLabelledSynthetic", "TEACHER_MODES", "deficit_class_weights"]

TEACHER_MODES = ("blend", "filter")


def deficit_class_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """Synthetic class weights that fill the minority classes first: ``w_k ∝ max_j n_j − n_k``.

    The largest class gets no synthetic images; every other class gets a share proportional to what it
    lacks to reach it. A dataset that is already balanced falls back to uniform weights.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    if counts.sum() == 0:
        raise ValueError("labels is empty: cannot compute class deficits")
    deficit = counts.max() - counts
    if deficit.sum() == 0:
        return [1.0] * num_classes
    return (deficit / deficit.sum() * num_classes).tolist()


def _load_teacher(teacher, device):
    if isinstance(teacher, torch.nn.Module):
        return teacher.eval(), {}
    if isinstance(teacher, (str, os.PathLike)):
        from gemix_monai.networks.classifiers import load_classifier

        net, info = load_classifier(teacher, device=device or "cpu")
        return net.eval(), info
    raise TypeError(f"teacher must be a classifier checkpoint path or a module, got {type(teacher).__name__}")


class TeacherLabelledSynthetic(GeneratedItems):
    """A synthetic dataset whose labels are checked by a teacher classifier (see the module docstring).

    Args:
        synthetic: a ``SyntheticDataset`` holding ``tries`` times the items wanted (``len(synthetic) // tries`` slots).
        teacher: classifier checkpoint (``model.pt`` + ``classifier.json``) or module returning logits ``[B, K]``.
        mode: ``"blend"`` or ``"filter"``; weight: ``w`` of the blend in [0, 1]; tolerance: the filter's bound in (0, 1].
        tries: candidates per slot for ``filter`` (ignored by ``blend``, which uses ``tries=1``).
    """

    def __init__(
        self,
        synthetic,
        teacher,
        *,
        mode: str = "blend",
        weight: float = 0.5,
        tolerance: float = 0.5,
        tries: int = 4,
        device=None,
        batch_size: int = 256,
    ):
        if mode not in TEACHER_MODES:
            raise ValueError(f"teacher mode must be one of {TEACHER_MODES}, got {mode!r}")
        if not (isinstance(weight, (int, float)) and 0.0 <= float(weight) <= 1.0):
            raise ValueError(f"teacher weight must be a number in [0, 1], got {weight!r}")
        if not (isinstance(tolerance, (int, float)) and 0.0 < float(tolerance) <= 1.0):
            raise ValueError(f"teacher tolerance must be in (0, 1] (total-variation distance), got {tolerance!r}")
        if not isinstance(tries, int) or tries < 1:
            raise ValueError(f"teacher tries must be an integer >= 1, got {tries!r}")
        self.tries = tries if mode == "filter" else 1
        if len(synthetic) % self.tries:
            raise ValueError(f"the synthetic pool ({len(synthetic)}) must hold tries={self.tries} candidates per slot")
        self.synthetic, self.mode = synthetic, mode
        self.weight, self.tolerance = float(weight), float(tolerance)
        self.device, self.batch_size = device, int(batch_size)
        self.net, info = _load_teacher(teacher, device)
        self.c_dim = int(synthetic.c_dim)
        k = info.get("num_classes")
        if k is not None and int(k) != self.c_dim:
            raise ValueError(f"teacher {teacher} has {k} classes, the generator {self.c_dim}")
        names = info.get("class_names")
        if names is not None and list(names) != list(getattr(synthetic, "class_names", names)):
            raise ValueError(f"teacher {teacher} has classes {names}, the generator {synthetic.class_names}")
        self.class_names = list(getattr(synthetic, "class_names", []))
        self.image_shape = getattr(synthetic, "image_shape", None)
        self.z_dim = getattr(synthetic, "z_dim", None)
        self.stats = {"seen": 0, "kept_first": 0, "replaced": 0, "fallback": 0}

    def __len__(self) -> int:
        return len(self.synthetic) // self.tries

    def set_epoch(self, epoch: int) -> None:
        self.synthetic.set_epoch(epoch)

    def __getstate__(self):
        return self.__dict__.copy()

    @torch.no_grad()
    def _probs(self, images: torch.Tensor) -> torch.Tensor:
        dev = next(self.net.parameters()).device
        out = [
            torch.softmax(self.net(images[s : s + self.batch_size].to(dev)).float(), dim=1).cpu()
            for s in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, self.c_dim)

    def _blend(self, labels, probs):
        return self.weight * labels + (1.0 - self.weight) * probs

    @torch.no_grad()
    def generate(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"TeacherLabelledSynthetic index out of range: got {idx.min()}..{idx.max()}, length {n}")
        if self.mode == "blend":
            images, labels = self.synthetic.generate(idx)
            return images, self._blend(labels, self._probs(images))
        candidates = np.concatenate([idx + t * n for t in range(self.tries)])
        images, labels = self.synthetic.generate(candidates)
        probs = self._probs(images)
        distance = 0.5 * (probs - labels).abs().sum(1).view(self.tries, idx.size)
        passed = distance <= self.tolerance
        first = torch.where(passed.any(0), passed.float().argmax(0), distance.argmin(0))
        pick = first * idx.size + torch.arange(idx.size)
        out_images, out_labels = images[pick], labels[pick].clone()
        fallback = ~passed.any(0)
        out_labels[fallback] = self._blend(labels[pick][fallback], probs[pick][fallback])
        self.stats["seen"] += int(idx.size)
        self.stats["kept_first"] += int(passed[0].sum())
        self.stats["replaced"] += int((passed.any(0) & ~passed[0]).sum())
        self.stats["fallback"] += int(fallback.sum())
        return out_images, out_labels
