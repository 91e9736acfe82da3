"""Feature-space t-SNE of real, synthetic and mixed images (as in GeMix, seed paper 001).

Features come from any named layer of the classifier through a forward hook; a ``[B, C, H, W]``
activation is global-average-pooled to ``[B, C]`` so that any layer gives a vector per image.
Points are coloured by class (arg-max of a soft label) and marked by source.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events

from gemix_monai.handlers.report import new_figure, save_figure
from gemix_monai.utils import plain_tensor

__all__ = ["extract_features", "feature_tsne", "plot_feature_tsne", "FeatureTSNEPlotter"]

MARKERS = {"real": "o", "synthetic": "^", "mixed": "s"}


def _module(network: torch.nn.Module, layer: str) -> torch.nn.Module:
    modules = dict(network.named_modules())
    if layer not in modules:
        some = [n for n in modules if n][:12]
        raise ValueError(f"layer {layer!r} is not a module of {type(network).__name__}; some names: {some}")
    return modules[layer]


def _hard_labels(label: torch.Tensor) -> torch.Tensor:
    label = torch.as_tensor(label)
    if label.ndim == 2 and label.shape[1] > 1:  # soft or one-hot label
        return label.argmax(dim=1)
    return label.reshape(-1).long()


@torch.no_grad()
def extract_features(
    network: torch.nn.Module,
    layer: str,
    batches: Iterable,
    *,
    device: str | torch.device | None = None,
    max_points: int | None = None,
    image_key: str = "image",
    label_key: str = "label",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``network`` in eval mode on ``batches`` and return ``(features [N, D], labels [N])``.

    ``batches`` yields dicts with ``image`` ``[B, C, H, W]`` and ``label`` (indices or ``[B, K]``
    soft labels), or ``(image, label)`` pairs. The network's training mode is restored afterwards.
    """
    module = _module(network, layer)
    captured: list[torch.Tensor] = []

    def hook(_mod, _inp, out):
        out = out[0] if isinstance(out, (tuple, list)) else out
        if out.ndim > 2:
            out = out.flatten(2).mean(dim=2)
        # plain tensors: a MetaTensor batch (real images) carries per-item metadata that slicing would check
        captured.append(plain_tensor(out).detach().float().cpu())

    if device is None:
        device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    handle = module.register_forward_hook(hook)
    feats, labels, n = [], [], 0
    try:
        for batch in batches:
            image, label = (batch[image_key], batch[label_key]) if isinstance(batch, Mapping) else batch
            captured.clear()
            network(plain_tensor(image).to(device))
            if not captured:
                raise RuntimeError(f"layer {layer!r} did not run in the forward pass")
            feats.append(captured[-1])
            labels.append(plain_tensor(_hard_labels(label)).cpu())
            n += feats[-1].shape[0]
            if max_points is not None and n >= max_points:
                break
    finally:
        handle.remove()
        network.train(was_training)
    if not feats:
        raise ValueError("extract_features got no batches")
    f, y = torch.cat(feats), torch.cat(labels)
    if max_points is not None:
        f, y = f[:max_points], y[:max_points]
    return f, y


def feature_tsne(features: torch.Tensor, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding ``[N, 2]`` of ``features [N, D]`` (perplexity capped below N)."""
    from sklearn.manifold import TSNE

    x = torch.as_tensor(features, dtype=torch.float32).numpy()
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"t-SNE needs features [N, D] with N >= 3, got shape {x.shape}")
    perplexity = min(float(perplexity), (x.shape[0] - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    # A plot-sized embedding (hundreds of points) is dominated by OpenMP thread start-up and, on a busy
    # machine, by oversubscription (measured: 36 points, 2 loaded cores, 42 s with 2 threads, 0.3 s with 1).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1 if x.shape[0] <= 2000 else None, user_api="openmp"):
        return tsne.fit_transform(x)


def plot_feature_tsne(
    groups: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    path: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    title: str = "t-SNE of classifier features",
) -> Path:
    """Embed all groups together (so their positions are comparable) and save a scatter plot.

    Args:
        groups: source name (``"real"``, ``"synthetic"``, ``"mixed"``, or any) -> ``(features, labels)``.
        path: PNG to write.
        class_names: legend names for the class colours.
    """
    if not groups:
        raise ValueError("plot_feature_tsne needs at least one group of features")
    names = list(groups)
    feats = [torch.as_tensor(groups[g][0]) for g in names]
    labels = [_hard_labels(groups[g][1]) for g in names]
    for g, f, y in zip(names, feats, labels):
        if f.ndim != 2 or f.shape[0] != y.shape[0]:
            raise ValueError(
                f"group {g!r}: features must be [N, D] with N labels, got {tuple(f.shape)} and {tuple(y.shape)}"
            )
    if len({f.shape[1] for f in feats}) != 1:
        raise ValueError(f"all groups need the same feature size, got {[f.shape[1] for f in feats]}")
    emb = feature_tsne(torch.cat(feats), perplexity=perplexity, seed=seed)
    all_labels = torch.cat(labels).numpy()
    k = int(all_labels.max()) + 1 if class_names is None else len(class_names)
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    fig = new_figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    start = 0
    for g, f in zip(names, feats):
        stop = start + f.shape[0]
        ax.scatter(
            emb[start:stop, 0],
            emb[start:stop, 1],
            c=[cmap(int(c) % cmap.N) for c in all_labels[start:stop]],
            marker=MARKERS.get(g, "x"),
            s=18,
            alpha=0.75,
            linewidths=0.3,
            edgecolors="black",
        )
        start = stop
    handles = [Line2D([], [], linestyle="", marker=MARKERS.get(g, "x"), color="gray", label=g) for g in names]
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker="o",
            color=cmap(c % cmap.N),
            label=class_names[c] if class_names is not None else str(c),
        )
        for c in range(k)
    ]
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return save_figure(fig, path)


class FeatureTSNEPlotter:
    """Handler: after an engine run, embed features of each source with t-SNE and save the plot.

    Args:
        network: the classifier.
        layer: name of the module whose output is the feature (``dict(network.named_modules())``).
        sources: source name -> iterable of batches (e.g. ``{"real": loader, "synthetic": loader,
            "mixed": loader}``); each is re-iterated every time the handler runs.
        output_path: PNG file; with ``per_epoch=True``, ``<stem>_epoch<N>.png``.
        max_points: per source (t-SNE is O(N²)).
        title: the plot's title (name the strategy, split and run: :func:`gemix_monai.handlers.report.report_title`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        layer: str,
        sources: Mapping[str, Iterable],
        output_path: str | os.PathLike,
        *,
        class_names: Sequence[str] | None = None,
        max_points: int = 500,
        event=Events.COMPLETED,
        per_epoch: bool = False,
        perplexity: float = 30.0,
        seed: int = 0,
        title: str = "t-SNE of classifier features",
    ) -> None:
        _module(network, layer)
        if not sources:
            raise ValueError("sources must name at least one iterable of batches")
        self.network, self.layer, self.sources = network, layer, dict(sources)
        self.output_path = Path(output_path)
        self.class_names, self.max_points, self.event = class_names, max_points, event
        self.per_epoch, self.perplexity, self.seed, self.title = per_epoch, perplexity, seed, title
        self.last_path: Path | None = None

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, self.event):
            engine.add_event_handler(self.event, self)

    def __call__(self, engine: Engine) -> None:
        groups = {
            name: extract_features(self.network, self.layer, batches, max_points=self.max_points)
            for name, batches in self.sources.items()
        }
        path = self.output_path
        if self.per_epoch:
            path = path.with_name(f"{path.stem}_epoch{engine.state.epoch}{path.suffix}")
        self.last_path = plot_feature_tsne(
            groups, path, self.class_names, title=self.title, perplexity=self.perplexity, seed=self.seed
        )
