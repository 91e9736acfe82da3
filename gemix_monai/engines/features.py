"""Feature space of the generator audits: a classifier trained on the real training split only, cached by content.

Fréchet distance, KID and precision/recall need image features. No ImageNet/Inception weights can be downloaded
here, and medical images are far from ImageNet anyway, so the features are the pooled activations of a small
classifier trained with the ``real`` strategy on the real *training* split only (it never sees a held-out image).
Numbers are comparable only between measurements that used the same feature network, so the network is cached
under a key made of everything that decides it (the training images and labels, class names, architecture,
epochs, seed): the training-time checkpoint selection (:mod:`gemix_monai.handlers.selection`) and
``gemix-monai audit`` of the same data then share one feature space (docs/quality.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gemix_monai.utils import plain_tensor, quiet_logs

__all__ = [
    "FeatureNetwork",
    "stack_items",
    "real_feature_network",
    "selection_feature_space",
    "feature_cache_dir",
    "FEATURE_CACHE_VERSION",
]

logger = logging.getLogger(__name__)

#: Bumped when the way a cached feature network is trained changes meaning.
FEATURE_CACHE_VERSION = 1


def feature_cache_dir() -> Path:
    """``$GEMIX_CACHE_DIR/feature_networks``, else ``~/.cache/gemix_monai/feature_networks``."""
    root = (
        os.environ.get("GEMIX_CACHE_DIR") or os.environ.get("GEMIX_DATA_DIR") or Path.home() / ".cache" / "gemix_monai"
    )
    return Path(root) / "feature_networks"


def stack_items(dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All items of a map-style dataset (or list) of ``{"image": [C, H, W], "label": int}`` as
    ``(images [N, C, H, W] float32, labels [N] int64)``; errors name ``name`` and the item."""
    try:
        n = len(dataset)
    except TypeError as e:
        raise TypeError(
            f"{name} must be a map-style dataset or a list of {{'image', 'label'}} dicts, got {type(dataset).__name__}"
        ) from e
    if n == 0:
        raise ValueError(f"{name} is empty")
    images, labels = [], []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, Mapping) or "image" not in item or "label" not in item:
            raise ValueError(f"{name}[{i}] must be a dict with 'image' and 'label', got {type(item).__name__}")
        img = plain_tensor(item["image"]).detach().cpu().to(torch.float32)
        if img.ndim != 3:
            raise ValueError(f"{name}[{i}]: expected an image [C, H, W], got shape {tuple(img.shape)}")
        if images and img.shape != images[0].shape:
            raise ValueError(
                f"{name}[{i}]: image shape {tuple(img.shape)} differs from {name}[0]'s {tuple(images[0].shape)}"
            )
        label = plain_tensor(item["label"]).reshape(-1)
        if label.numel() != 1:
            raise ValueError(f"{name}[{i}]: expected an integer class label, got shape {tuple(label.shape)}")
        images.append(img)
        labels.append(int(label.item()))
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


@dataclass
class FeatureNetwork:
    """A classifier and the layer whose (pooled) output is the feature vector; ``info`` says what it is."""

    net: torch.nn.Module
    layer: str
    info: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 64, device=None) -> torch.Tensor:
        """``[N, D]`` float64 features of ``images [N, C, H, W]`` in [-1, 1]."""
        from gemix_monai.handlers.tsne import extract_features

        device = device or next(self.net.parameters()).device
        batches = [
            (images[i : i + batch_size], torch.zeros(min(batch_size, images.shape[0] - i), dtype=torch.int64))
            for i in range(0, images.shape[0], batch_size)
        ]
        feats, _ = extract_features(self.net, self.layer, batches, device=device)
        return feats.to(torch.float64)


def _content_key(images: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str], settings: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": FEATURE_CACHE_VERSION, "class_names": list(class_names), **settings}).encode())
    h.update(str(tuple(images.shape)).encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:24]


def real_feature_network(
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    *,
    cache_dir: str | os.PathLike | None = None,
    network: str = "tiny",
    epochs: int = 5,
    seed: int = 0,
    device=None,
) -> FeatureNetwork:
    """The ``network`` classifier trained for ``epochs`` with the ``real`` strategy on ``(images, labels)`` — the
    real training split only — loaded from ``cache_dir/<content key>/`` when that exact training was done before
    (default :func:`feature_cache_dir`), else trained there (into a temporary folder, renamed when complete)."""
    from gemix_monai.engines.classifier import train_classifier
    from gemix_monai.engines.run import RunSettings
    from gemix_monai.networks.classifiers import FEATURE_LAYERS, load_classifier

    settings = {"network": network, "epochs": int(epochs), "seed": int(seed), "strategy": "real"}
    key = _content_key(images, labels, class_names, settings)
    root = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    folder = root / key
    checkpoint = folder / "models" / "model.pt"
    if checkpoint.is_file():
        logger.info("feature network: cached %s", folder)
    else:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        try:
            items = [{"image": img, "label": int(y)} for img, y in zip(images, labels)]
            with quiet_logs():
                train_classifier(
                    items,
                    items,
                    tmp,
                    strategy="real",
                    network=network,
                    num_classes=len(class_names),
                    class_names=list(class_names),
                    epochs=epochs,
                    batch_size=32,
                    amp=False,
                    final_report=False,
                    run=RunSettings(seed=seed, device=device, tracking=False),
                )
            (tmp / "feature_network.json").write_text(json.dumps({"key": key, **settings}, indent=2))
            try:
                os.replace(tmp, folder)  # another process may have finished the same training first
            except OSError:
                if not checkpoint.is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("feature network: trained on the real training split (%d images) into %s", len(items), folder)
    net, _ = load_classifier(checkpoint, device=device or "cpu")
    layer = FEATURE_LAYERS[network]
    info = {
        "source": "trained on the real training split (cached by content)",
        "checkpoint": str(checkpoint),
        "cache_key": key,
        "network": network,
        "layer": layer,
        "epochs": int(epochs),
        "seed": int(seed),
        "strategy": "real",
        "trained_on": "the real training split only (validated on the training split too: no held-out image seen)",
    }
    return FeatureNetwork(net.eval(), layer, info)


def selection_feature_space(settings, train_data, class_names, num_classes: int, image_channels: int, device):
    """The feature space of the generators' training-time audit (``GeneratorSelectionHandler``'s ``feature_space``):
    ``(feature network trained on train_data's image channels, validation features [N, D] float64, validation
    labels [N], minority class index)``; ``settings`` is the handler's ``GeneratorSelection``."""
    import numpy as np

    from gemix_monai.mixing.labels import labels_of

    train_images, train_labels = stack_items(train_data, "the generator's training data")
    train_images = train_images[:, :image_channels]  # pairs: the image channels only
    spec = {"network": settings.feature_network, "epochs": settings.feature_epochs, "seed": settings.seed}
    fn = real_feature_network(
        train_images, train_labels, class_names, cache_dir=settings.cache_dir, device=device, **spec
    )
    val_images, val_labels = stack_items(settings.val_data, "selection val_data")
    val_images = val_images[:, : train_images.shape[1]]
    counts = np.bincount(labels_of(train_data), minlength=num_classes)
    return fn, fn.features(val_images, device=device), val_labels, int(np.argmin(counts))
