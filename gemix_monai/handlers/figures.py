"""Pictures of a classifier run a person can read: what the network trained on, how each validation went, what it
looked at.

* :class:`ClassifierTensorBoardImages` (trainer handler): in TensorBoard, the first training batch of every epoch as
  the network sees it — after the strategy's mixing, so synthetic and mixed images appear with their soft labels —
  and the confusion matrix of every validation.
* :class:`GradCamWriter` (evaluator handler): Grad-CAM maps (MONAI's ``monai.visualize.GradCAM``) of a few correctly
  classified and a few missed images per class, ``gradcam.png`` beside the evaluation report.

Images are ``[C, x, y]`` in MONAI's order and shown rows × columns (:func:`gemix_monai.data.preprocessing.to_display`);
every figure carries a title naming the strategy, split and run (:func:`gemix_monai.handlers.report.report_title`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import ignite.distributed as idist
import numpy as np
import torch
from ignite.engine import Engine, Events

from gemix_monai.handlers.report import confusion_figure, new_figure, save_figure
from gemix_monai.metrics.ignite_clinical import ClinicalMetrics
from gemix_monai.utils import plain_tensor

__all__ = ["soft_label_caption", "batch_figure", "ClassifierTensorBoardImages", "gradcam_layer", "GradCamWriter"]

#: Grad-CAM's target layer per network class: the last block of features before the pooling.
GRADCAM_LAYERS = {
    "TinyClassifier": "features",
    "DenseNet121": "class_layers.relu",
    "ResNet": "layer4",
    "EfficientNetBN": "_swish",
}


def _display(image: torch.Tensor) -> np.ndarray:
    from gemix_monai.data.preprocessing import to_display

    return to_display(image.detach().float().cpu().clamp(-1, 1))


def soft_label_caption(label: torch.Tensor, class_names: Sequence[str], min_share: float = 0.005) -> str:
    """``"cyst 0.62 · metastasis 0.38"``: the classes of a soft label ``[K]`` with their shares, largest first
    (shares under ``min_share`` left out); a one-hot label reads as its class name."""
    label = torch.as_tensor(label, dtype=torch.float32).flatten()
    order = torch.argsort(label, descending=True).tolist()
    shown = [k for k in order if float(label[k]) >= min_share]
    if len(shown) == 1 and float(label[shown[0]]) > 1 - min_share:
        return str(class_names[shown[0]])
    return " · ".join(f"{class_names[k]} {float(label[k]):.2f}" for k in shown)


def batch_figure(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], title: str, columns: int = 4):
    """A grid of ``images`` ``[N, C, x, y]`` in [-1, 1], each captioned with its (soft) label ``[N, K]``."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = new_figure(figsize=(2.4 * columns, 3.0 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(rows, columns)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(_display(images[i]), cmap="gray", vmin=0, vmax=255)
            ax.set_title(soft_label_caption(labels[i], class_names).replace(" · ", "\n"), fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def _items(output, keys: Sequence[str]) -> list[dict] | None:
    """Per-item dicts of ``keys`` from an engine output: decollated (a list of dicts) or one batch dict."""
    if isinstance(output, Mapping):
        if not all(k in output for k in keys):
            return None
        n = len(output[keys[0]])
        return [{k: plain_tensor(output[k])[i] for k in keys} for i in range(n)]
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], Mapping):
        if not all(k in output[0] for k in keys):
            return None
        return [{k: plain_tensor(o[k]) for k in keys} for o in output]
    return None


class ClassifierTensorBoardImages:
    """Trainer handler: TensorBoard images of a classifier run, in ``log_dir`` (rank 0).

    * ``train/batch`` — the first ``max_images`` items of the first batch of every ``every_n_epochs``-th epoch, as the
      network receives them (after the strategy's batch transform: mixed images, soft labels ``[K]``), each captioned
      with its label's classes and shares;
    * ``validation/confusion_matrix`` — after every run of ``evaluator``, the confusion matrix of its ``metric``
      (a :class:`~gemix_monai.metrics.ignite_clinical.ClinicalMetrics`), at the trainer's epoch.

    ``title`` (strategy and run) heads each figure, with the epoch and split added.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike,
        class_names: Sequence[str],
        *,
        evaluator: Engine | None = None,
        metric: ClinicalMetrics | None = None,
        title: str = "",
        max_images: int = 16,
        every_n_epochs: int = 1,
    ) -> None:
        if (evaluator is None) != (metric is None):
            raise ValueError("give both evaluator and metric (the confusion matrix of each validation), or neither")
        self.log_dir, self.class_names, self.title = Path(log_dir), list(class_names), title
        self.evaluator, self.metric = evaluator, metric
        self.max_images, self.every_n_epochs = int(max_images), int(every_n_epochs)
        self.trainer: Engine | None = None
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def attach(self, trainer: Engine) -> None:
        self.trainer = trainer
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._batch)
        trainer.add_event_handler(Events.COMPLETED, self._close)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.COMPLETED, self._confusion)

    def _batch(self, trainer: Engine) -> None:
        epoch, length = trainer.state.epoch, trainer.state.epoch_length or 1
        first = (trainer.state.iteration - 1) % length == 0
        if not first or (epoch - 1) % self.every_n_epochs or idist.get_rank() != 0:
            return
        items = _items(trainer.state.output, ("image", "label"))
        if not items:
            return
        items = items[: self.max_images]
        images = torch.stack([it["image"].detach().float().cpu() for it in items])
        labels = torch.stack([torch.as_tensor(it["label"]).detach().float().cpu().flatten() for it in items])
        head = f"{self.title} · " if self.title else ""
        fig = batch_figure(images, labels, self.class_names, f"{head}training batch, epoch {epoch}")
        self.writer.add_figure("train/batch", fig, global_step=epoch)
        self.writer.flush()

    def _confusion(self, evaluator: Engine) -> None:
        result = self.metric.result
        if result is None or idist.get_rank() != 0:
            return
        epoch = self.trainer.state.epoch if self.trainer is not None else evaluator.state.epoch
        head = f"{self.title} · " if self.title else ""
        split = self.metric.split or "validation"
        fig = confusion_figure(result, title=f"{head}{split} split, epoch {epoch}")
        self.writer.add_figure("validation/confusion_matrix", fig, global_step=epoch)
        self.writer.flush()

    def _close(self, trainer: Engine) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def gradcam_layer(network: torch.nn.Module) -> str:
    """Grad-CAM's target layer of ``network``: :data:`GRADCAM_LAYERS` by class, else its last convolution."""
    modules = dict(network.named_modules())
    name = GRADCAM_LAYERS.get(type(network).__name__)
    if name in modules:
        return name
    convs = [n for n, m in modules.items() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))]
    if not convs:
        raise ValueError(f"{type(network).__name__} has no convolution for Grad-CAM; name a layer (layer=...)")
    return convs[-1]


class GradCamWriter:
    """Evaluator handler: Grad-CAM maps of ``per_class`` correctly classified and ``per_class`` missed images of
    every class, written as one figure to ``output_path`` when the evaluation completes (rank 0).

    The items are the first of each kind in evaluation order (the same images on every run). Each map is MONAI's
    ``GradCAM`` on ``layer`` (default :func:`gradcam_layer`) for the class the network predicted, upsampled to the
    image and drawn over it; the caption gives the true and the predicted class with its probability. Rows are the
    true classes; a class with no missed image (or no correct one) leaves those cells empty, said in the cell.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        class_names: Sequence[str],
        output_path: str | os.PathLike,
        *,
        layer: str | None = None,
        per_class: int = 2,
        title: str = "",
    ) -> None:
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        self.network, self.class_names = network, list(class_names)
        self.output_path, self.per_class, self.title = Path(output_path), int(per_class), title
        self.layer = layer
        self.last_path: Path | None = None
        self._reset(None)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, engine: Engine | None) -> None:
        k = len(self.class_names)
        self.chosen: dict[tuple[int, bool], list[dict]] = {(c, ok): [] for c in range(k) for ok in (True, False)}

    def _collect(self, engine: Engine) -> None:
        items = _items(engine.state.output, ("image", "label", "pred"))
        if not items:
            return
        for it in items:
            label = torch.as_tensor(it["label"]).flatten()
            true = int(label.argmax()) if label.numel() > 1 else int(label)
            probs = torch.softmax(torch.as_tensor(it["pred"]).detach().float().flatten(), 0)
            pred = int(probs.argmax())
            cell = self.chosen.get((true, pred == true))
            if cell is not None and len(cell) < self.per_class:
                cell.append({"image": it["image"].detach().cpu(), "true": true, "pred": pred, "p": float(probs[pred])})

    def _write(self, engine: Engine) -> None:
        if idist.get_rank() != 0:
            return
        from monai.visualize import GradCAM

        network = getattr(self.network, "module", self.network)
        layer = self.layer or gradcam_layer(network)
        device = next(network.parameters()).device
        picked = [it for cell in self.chosen.values() for it in cell]
        maps = {}
        if picked:
            was_training = network.training
            network.eval()
            cam = GradCAM(nn_module=network, target_layers=layer)
            with torch.enable_grad():
                # an input that requires grad: the backward hooks MONAI's CAM sets then see a gradient to pass
                x = torch.stack([it["image"] for it in picked]).float().to(device).requires_grad_(True)
                out = cam(x=x).detach().float().cpu()
            network.train(was_training)
            maps = {id(it): out[i] for i, it in enumerate(picked)}
        self.last_path = self._figure(maps, layer)

    def _figure(self, maps: Mapping[int, torch.Tensor], layer: str) -> Path:
        k, n = len(self.class_names), self.per_class
        fig = new_figure(figsize=(2.4 * 2 * n, 2.5 * k + 0.9))
        axes = np.atleast_2d(fig.subplots(k, 2 * n)).reshape(k, 2 * n)
        for c in range(k):
            for ok, offset in ((True, 0), (False, n)):
                cell = self.chosen[(c, ok)]
                for j in range(n):
                    ax = axes[c, offset + j]
                    ax.set_xticks([]), ax.set_yticks([])
                    if j == 0 and offset == 0:
                        ax.set_ylabel(f"true {self.class_names[c]}", fontsize=8)
                    if j >= len(cell):
                        ax.text(
                            0.5,
                            0.5,
                            "no " + ("correct" if ok else "missed") + " image",
                            ha="center",
                            va="center",
                            fontsize=7,
                        )
                        continue
                    it = cell[j]
                    ax.imshow(_display(it["image"]), cmap="gray", vmin=0, vmax=255)
                    heat = maps[id(it)][0].T.numpy()  # [x, y] → rows × columns
                    ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
                    colour = "tab:green" if ok else "tab:red"
                    caption = f"pred {self.class_names[it['pred']]} {it['p']:.2f}"
                    ax.set_title(caption, fontsize=7, color=colour)
        head = f"{self.title}\n" if self.title else ""
        fig.suptitle(
            f"{head}Grad-CAM of the predicted class (monai.visualize.GradCAM, layer {layer}): "
            f"left {n} correct, right {n} missed, per true class",
            fontsize=8,
        )
        return save_figure(fig, self.output_path)
