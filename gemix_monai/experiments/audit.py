"""The synthetic-quality audit: how close, how varied and how original the generator's images are.

:func:`run_audit` generates ``num_per_class`` images per class with one-hot labels and compares them
with the real training split, per class and overall (all classes together), with the metrics of
:mod:`gemix_monai.metrics.quality`. The same metrics computed on a *held-out real split* against the
same training split are the floor: what a perfect generator (one that draws new images from the
true distribution) would score with sets of that size.

Features come from a classifier trained on the real training split only: a checkpoint the caller
passes (``models/model.pt`` with its ``classifier.json``), or a small ``tiny`` network the audit trains
for a few epochs with the ``real`` strategy. No ImageNet / Inception weights are used (none can be
downloaded here), so feature-space numbers are comparable only between audits that used the same
feature network; every output says which one it was.

Outputs in ``out_dir``: ``audit.json`` (every number), ``audit.md`` (the table and how to read it),
``memorisation.png`` (closest synthetic/training pairs with their distances), ``samples.png`` (real
and synthetic rows per class) and, when the audit trained its own feature network, ``feature_classifier/``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gemix_monai.engines.features import stack_items
from gemix_monai.experiments.stats import table_head
from gemix_monai.metrics import quality as Q
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data, plain_tensor

__all__ = ["AUDIT_FORMAT", "AuditResult", "run_audit", "audit_command"]

logger = logging.getLogger(__name__)

AUDIT_FORMAT = "gemix-audit/1"
SOURCES = ("synthetic", "real_floor")
#: The exact-copy tolerance: root-mean-square pixel difference below one 8-bit grey level (2/255 on [-1, 1]).
EXACT_COPY_RMS = 2.0 / 255.0
_GENERIC_NAME = re.compile(r"^class_?\d+$")

#: (key, label in audit.md, what to look for against the floor)
METRICS = (
    ("fd", "Fréchet distance (features)", "lower; near the floor"),
    ("kid", "KID (features, poly-3 unbiased MMD²)", "lower; near the floor"),
    ("kid_std", "KID std over subsets", "spread of KID"),
    ("precision", "precision (k-NN, features)", "higher; near the floor"),
    ("recall", "recall (k-NN, features)", "higher; near the floor"),
    ("ms_ssim", "mean pairwise MS-SSIM within the set", "near the floor; higher = less diverse"),
    ("nn_pixel_median", "median NN distance to train, pixel L2", "not below the floor"),
    ("nn_pixel_min", "min NN distance to train, pixel L2", "0 = a training image"),
    ("nn_feature_median", "median NN distance to train, feature L2", "not below the floor"),
    ("suspect_fraction", "share closer to train than the floor quantile", "≈ the quantile"),
    ("exact_copies", "exact copies of training images", "0"),
)


@dataclass
class AuditResult:
    """What :func:`run_audit` wrote and found."""

    out_dir: Path
    report: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True when the memorisation check flags the synthetic set overall or in any class."""
        return bool(self.report["memorisation"]["flagged"])


# ---------------------------------------------------------------------------------------------- inputs


def _generator(generator, device):
    if isinstance(generator, (str, os.PathLike)):
        from gemix_monai.generators.protocol import load_generator

        return load_generator(generator, device=device or "cpu")
    missing = [a for a in ("generate", "c_dim", "img_resolution", "img_channels") if not hasattr(generator, a)]
    if missing:
        raise TypeError(
            f"generator must be a checkpoint path or have generate/c_dim/img_resolution/img_channels; "
            f"{type(generator).__name__} lacks {missing}"
        )
    return generator


def _check_inputs(gen, names_gen, sets: dict[str, tuple[torch.Tensor, torch.Tensor, list[str] | None]]) -> None:
    """Class count, class names, resolution and channels of each real split against the generator."""
    k, r, c = int(gen.c_dim), int(gen.img_resolution), int(gen.img_channels)
    for name, (images, labels, names) in sets.items():
        if names is not None and len(names) != k:
            raise ValueError(
                f"class count mismatch: the generator has {k} classes {list(names_gen)} "
                f"but {name} has {len(names)} classes {list(names)}"
            )
        if int(labels.min()) < 0 or int(labels.max()) >= k:
            raise ValueError(
                f"class count mismatch: the generator has {k} classes {list(names_gen)} "
                f"but {name} has labels from {int(labels.min())} to {int(labels.max())}"
            )
        if names is not None and list(names) != list(names_gen) and not all(_GENERIC_NAME.match(n) for n in names_gen):
            raise ValueError(
                f"class names differ: the generator's are {list(names_gen)}, {name}'s are {list(names)} "
                "(same order expected: label k of the data must be class k of the generator)"
            )
        h, w = images.shape[2:]
        if (h, w) != (r, r):
            raise ValueError(
                f"resolution mismatch: the generator makes {r}x{r} images but {name} images are {h}x{w} "
                f"(load the data with image_size={r})"
            )
        if images.shape[1] != c:
            raise ValueError(
                f"channel mismatch: the generator makes {c}-channel images but {name} images have {images.shape[1]}"
            )


# ---------------------------------------------------------------------------------------------- features


def _feature_network(
    feature_network,
    feature_layer,
    train_images,
    train_labels,
    names,
    out_dir: Path,
    *,
    seed,
    device,
    feature_epochs,
    feature_arch,
    cache_dir=None,
):
    from gemix_monai.engines.classifier import load_classifier
    from gemix_monai.engines.classifier_networks import FEATURE_LAYERS

    if feature_network is None:
        from gemix_monai.engines.features import real_feature_network

        fn = real_feature_network(
            train_images,
            train_labels,
            names,
            cache_dir=cache_dir,
            network=feature_arch,
            epochs=feature_epochs,
            seed=seed,
            device=device,
        )
        net, layer, info = fn.net, feature_layer or fn.layer, dict(fn.info)
        # the audit folder keeps its own copy of the feature network it used (the cache may be cleared)
        shutil.copytree(Path(fn.info["checkpoint"]).parents[1], out_dir / "feature_classifier", dirs_exist_ok=True)
    elif isinstance(feature_network, (str, os.PathLike)):
        net, meta = load_classifier(feature_network, device=device or "cpu")
        arch = meta.get("network")
        if meta.get("in_channels") not in (None, int(train_images.shape[1])):
            raise ValueError(
                f"channel mismatch: the feature classifier {feature_network} takes {meta['in_channels']}-channel "
                f"images but the data have {int(train_images.shape[1])}"
            )
        if feature_layer is None and arch not in FEATURE_LAYERS:
            raise ValueError(f"{feature_network}: network {arch!r} has no default feature layer; pass feature_layer=")
        layer = feature_layer or FEATURE_LAYERS[arch]
        strategy = meta.get("strategy")
        if strategy not in (None, "real"):
            logger.warning(
                "feature classifier %s was trained with strategy %r (per classifier.json), not 'real': its "
                "features have seen synthetic images",
                feature_network,
                strategy,
            )
        info = {
            "source": f"checkpoint {feature_network}",
            "checkpoint": str(feature_network),
            "network": arch,
            "layer": layer,
            "strategy": strategy,
            "trained_on": (
                "the real training split only, as declared by the caller (the audit cannot check "
                "which images the checkpoint saw)"
                if strategy in (None, "real")
                else f"strategy {strategy!r} per classifier.json: NOT real-only"
            ),
        }
    elif isinstance(feature_network, torch.nn.Module):
        if feature_layer is None:
            raise ValueError("feature_network is a module: name its feature layer with feature_layer=")
        net, layer = feature_network.to(device or "cpu"), feature_layer
        info = {
            "source": "module passed by the caller",
            "network": type(feature_network).__name__,
            "layer": layer,
            "trained_on": "as declared by the caller (must be the real training split only)",
        }
    else:
        raise TypeError(
            f"feature_network must be None, a classifier checkpoint path or a torch module, got {type(feature_network).__name__}"
        )
    info["description"] = (
        f"{info['network']} classifier, layer {layer!r}, {info['source']}; trained on "
        f"{info['trained_on']}; no ImageNet/Inception weights"
    )
    return net, layer, info


def _features(net, layer, images: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    from gemix_monai.handlers.tsne import extract_features

    batches = [
        (images[i : i + batch_size], torch.zeros(min(batch_size, images.shape[0] - i), dtype=torch.int64))
        for i in range(0, images.shape[0], batch_size)
    ]
    feats, _ = extract_features(net, layer, batches, device=device)
    return feats.to(torch.float64)


# ---------------------------------------------------------------------------------------------- metrics


def _finite(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _group_metrics(
    img,
    feat,
    t_img,
    t_feat,
    nn_pix,
    nn_feat,
    threshold,
    *,
    k,
    kid_subsets,
    kid_subset_size,
    max_pairs,
    seed,
    undefined: list,
    where: str,
) -> dict:
    """Every metric of one set (one class or all) against the matching training images."""
    out: dict[str, Any] = {"n": int(img.shape[0]), "n_train": int(t_img.shape[0])}

    def attempt(keys, fn):
        try:
            values = fn()
        except ValueError as e:
            for key in keys:
                out[key] = None
            undefined.append({"where": where, "metrics": list(keys), "reason": str(e)})
            return
        for key, v in zip(keys, values):
            out[key] = _finite(v)
            if out[key] is None:
                undefined.append({"where": where, "metrics": [key], "reason": "not finite"})

    attempt(["fd"], lambda: [Q.frechet_distance(feat, t_feat)])
    attempt(
        ["kid", "kid_std"],
        lambda: (lambda r: [r.mean, r.std])(
            Q.kid(feat, t_feat, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        ),
    )
    k_eff = min(k, img.shape[0] - 1, t_img.shape[0] - 1)
    out["k"] = int(k_eff)
    attempt(
        ["precision", "recall"],
        lambda: (lambda r: [r.precision, r.recall])(Q.precision_recall(t_feat, feat, k=k_eff if k_eff >= 1 else k)),
    )
    attempt(["ms_ssim"], lambda: [Q.mean_pairwise_ms_ssim(img, max_pairs=max_pairs, seed=seed)[0]])
    if nn_pix.numel():
        out["nn_pixel_median"] = float(torch.quantile(nn_pix, 0.5))  # the mean of the middle two for even n
        out["nn_pixel_min"] = float(nn_pix.min())
        out["nn_feature_median"] = float(torch.quantile(nn_feat, 0.5))
        out["suspect_fraction"] = float((nn_pix < threshold).double().mean())
        d = img[0].numel()
        out["exact_copies"] = int((nn_pix / math.sqrt(d) < EXACT_COPY_RMS).sum())
    else:
        for key in ("nn_pixel_median", "nn_pixel_min", "nn_feature_median", "suspect_fraction", "exact_copies"):
            out[key] = None
        undefined.append({"where": where, "metrics": ["nearest neighbours"], "reason": "no images"})
    return out


def _lpips_diversity(weights, sets, names, *, seed, max_pairs, metrics) -> dict:
    """LPIPS diversity of each set (mean pairwise LPIPS distance within it) into ``metrics[src][...]["lpips"]``."""
    if weights is None:
        for src in metrics:
            metrics[src]["overall"]["lpips"] = None
            for c in names:
                metrics[src]["per_class"][c]["lpips"] = None
        return {"status": "LPIPS: no weights given (pass lpips_weights= / --lpips-weights PATH)"}
    from gemix_monai.metrics.lpips import LPIPS, mean_pairwise_lpips

    model = LPIPS.from_file(weights)
    for src, (img, _, lab) in sets.items():
        metrics[src]["overall"]["lpips"] = _finite(mean_pairwise_lpips(model, img, max_pairs=max_pairs, seed=seed))
        for c, cname in enumerate(names):
            sel = img[lab == c]
            value = mean_pairwise_lpips(model, sel, max_pairs=max_pairs, seed=seed) if sel.shape[0] >= 2 else None
            metrics[src]["per_class"][cname]["lpips"] = _finite(value)
    return {"status": "computed", "weights": str(weights), "network": model.network}


# ---------------------------------------------------------------------------------------------- figures


def _display(img: torch.Tensor) -> np.ndarray:
    """An image [C, x, y] (MONAI order) in [-1, 1] as RGB rows × columns [y, x, 3] in [0, 1] (channel 0 in grey
    unless there are 3 channels): the picture the right way up (docs/data.md, "Orientation")."""
    x = ((img.detach().cpu().float() + 1) / 2).clamp(0, 1).transpose(-1, -2)
    return (x.permute(1, 2, 0) if x.shape[0] == 3 else x[0].unsqueeze(-1).expand(-1, -1, 3)).numpy()


def _mosaic(tiles: list[list[np.ndarray | None]], side: int, gap_x: int, gap_y: int) -> np.ndarray:
    """Tiles [side, side, 3] on a white canvas, ``gap_x`` / ``gap_y`` pixels apart (``None`` leaves a blank)."""
    rows, cols = len(tiles), max(len(r) for r in tiles)
    canvas = np.ones((rows * (side + gap_y) + gap_y, cols * (side + gap_x), 3), np.float32)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is not None:
                y, x = gap_y + i * (side + gap_y), j * (side + gap_x)
                canvas[y : y + side, x : x + side] = tile
    return canvas


def _save_figure(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _tile_figure(canvas: np.ndarray, side: int, inch_per_tile: float, texts, title: str, path: Path) -> Path:
    """One axes showing the mosaic (one imshow is far cheaper than an axes per image) with text labels."""
    from gemix_monai.handlers.report import new_figure

    h, w = canvas.shape[:2]
    scale = inch_per_tile / side
    header = 0.2 + 0.16 * (title.count("\n") + 1)  # inches for the title lines
    fig = new_figure(figsize=(w * scale, h * scale + header))
    ax = fig.add_axes((0, 0, 1, h * scale / (h * scale + header)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, kwargs in texts:
        ax.text(x, y, text, fontsize=6.5, **kwargs)
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
    return _save_figure(fig, path)


def _memorisation_figure(
    path, synth, s_labels, train, t_labels, names, nn_pix, idx_pix, nn_feat, idx_feat, n_show, feature_desc, thresholds
):
    import textwrap

    n_show = max(1, min(n_show, synth.shape[0]))
    side = int(synth.shape[-1])
    gap_x, gap_y = max(2, side // 8), max(8, side // 2)
    tiles, texts = [], []
    orders = (
        (torch.argsort(nn_pix)[:n_show], idx_pix, nn_pix, "pixel"),
        (torch.argsort(nn_feat)[:n_show], idx_feat, nn_feat, "feature"),
    )
    for row in range(n_show):
        tiles.append([])
        for col, (order, idx, dist, space) in enumerate(orders):
            s, t = int(order[row]), int(idx[int(order[row])])
            extra = [None] if col == 0 else []  # a blank column between the two blocks
            tiles[-1] += [_display(synth[s]), _display(train[t])] + extra
            y = gap_y + row * (side + gap_y) - 1
            x0 = (3 * col) * (side + gap_x)
            texts.append((x0, y, f"syn #{s} ({names[int(s_labels[s])]})", {"va": "bottom"}))
            texts.append(
                (
                    x0 + side + gap_x,
                    y,
                    f"train #{t} ({names[int(t_labels[t])]})\n{space} L2 {float(dist[s]):.3g}",
                    {"va": "bottom"},
                )
            )
    title = (
        "Closest synthetic/training pairs: left by pixel L2, right by feature L2.\n"
        f"Floor (held-out real, {thresholds[0]:.0%} quantile of NN distance): pixel {thresholds[1]:.3g}, "
        f"feature {thresholds[2]:.3g}\n" + textwrap.fill(f"features: {feature_desc}", 100)
    )
    return _tile_figure(_mosaic(tiles, side, gap_x, gap_y), side, 1.3, texts, title, path)


def _samples_figure(path, train, t_labels, synth, s_labels, names, per_row, seed):
    rng = np.random.default_rng(seed)
    side = int(synth.shape[-1])
    gap_x, gap_y = max(2, side // 16), max(4, side // 5)
    label_cols = 1  # a blank tile on the left for the row labels
    tiles, texts = [], []
    for c, name in enumerate(names):
        for r, (images, labels, kind) in enumerate(((train, t_labels, "real (train)"), (synth, s_labels, "synthetic"))):
            pool = torch.nonzero(labels == c).flatten().numpy()
            pick = rng.choice(pool, min(per_row, pool.size), replace=False) if pool.size else []
            tiles.append([None] * label_cols + [_display(images[int(i)]) for i in pick])
            y = gap_y + (2 * c + r) * (side + gap_y) + side / 2
            texts.append((label_cols * (side + gap_x) - gap_x, y, f"{name}\n{kind}", {"ha": "right", "va": "center"}))
    canvas = _mosaic(tiles, side, gap_x, gap_y)
    width = (label_cols + per_row) * (side + gap_x)
    if canvas.shape[1] < width:  # rows shorter than per_row everywhere: keep the layout width
        canvas = np.concatenate([canvas, np.ones((canvas.shape[0], width - canvas.shape[1], 3), np.float32)], axis=1)
    return _tile_figure(canvas, side, 1.0, texts, "Real training images vs synthetic (one-hot labels), per class", path)


# ---------------------------------------------------------------------------------------------- report


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


def _markdown(report: dict) -> str:
    groups = list(report["class_names"]) + ["overall"]
    m = report["metrics"]
    fn = report["feature_network"]
    lines = [
        "# Synthetic-quality audit",
        "",
        f"- generator: {report['generator']}",
        f"- feature network: {fn['description']}",
        f"- synthetic images: one-hot labels, {report['settings']['num_per_class']} per class, seed {report['settings']['seed']}",
        f"- real floor: the {report['heldout_name']} (real images the generator never saw), scored against the same training split",
        "",
        "Columns: **syn** = synthetic vs train, **floor** = held-out real vs train. "
        "Per-class columns compare class c with the training images of class c; 'overall' pools all classes.",
        "",
    ]
    header = ["metric", "look for"] + [f"{g} {s}" for g in groups for s in ("syn", "floor")]
    lines += table_head(header)
    count_row = ["images (n / n_train)", ""]
    for g in groups:
        for s in SOURCES:
            e = m[s]["overall"] if g == "overall" else m[s]["per_class"][g]
            count_row.append(f"{e['n']} / {e['n_train']}")
    lines.append("| " + " | ".join(count_row) + " |")
    for key, label, read in METRICS:
        row = [label, read]
        for g in groups:
            for s in SOURCES:
                e = m[s]["overall"] if g == "overall" else m[s]["per_class"][g]
                row.append(_fmt(e.get(key)))
        lines.append("| " + " | ".join(row) + " |")
    mem = report["memorisation"]
    lines += [
        "",
        "## Memorisation",
        "",
        f"Threshold: the {mem['quantile']:.0%} quantile of the held-out real images' nearest-training-image pixel "
        f"distance, {mem['pixel_threshold']:.4g} (feature space: {mem['feature_threshold']:.4g}). "
        f"A set is flagged when it holds an exact copy (RMS difference below {EXACT_COPY_RMS:.4g}) or when more than "
        f"{mem['flag_fraction']:.0%} of it is closer to a training image than that threshold.",
        "",
        f"**Flagged: {'YES' if mem['flagged'] else 'no'}** "
        f"(overall {'flagged' if mem['flagged_overall'] else 'not flagged'}; classes flagged: "
        f"{', '.join(mem['flagged_classes']) or 'none'}).",
    ]
    if mem.get("heldout_exact_copies"):
        lines.append(
            f"\nWarning: {mem['heldout_exact_copies']} held-out image(s) are exact copies of training images: "
            "the splits overlap, so the floor is too low."
        )
    lines += [
        "",
        "Closest pairs (pixel L2), shown in memorisation.png:",
        "",
        "| synthetic # | class | train # | pixel L2 | feature L2 to the same train image |",
        "|---|---|---|---|---|",
    ]
    for p in mem["closest_pixel_pairs"]:
        lines.append(
            f"| {p['synthetic_index']} | {p['class']} | {p['train_index']} | {p['pixel_distance']:.4g} | "
            f"{_fmt(p.get('feature_distance_same_pair'))} |"
        )
    if report["undefined"]:
        lines += [
            "",
            "Undefined values (n/a): "
            + "; ".join(f"{u['where']} {u['metrics']}: {u['reason']}" for u in report["undefined"]),
        ]
    lines += [
        "",
        "## How to read",
        "",
        "Each number means little alone; read it against the floor beside it, which is what new real images of "
        "the same class and count score against the same training set. A good generator sits near the floor: "
        "Fréchet distance and KID close to the floor's (both are biased upward by small sets, KID less so; FD "
        "with fewer images than feature dimensions is mostly noise), precision and recall close to the floor's "
        "(low precision = unrealistic samples, low recall = missing variety), and a within-set MS-SSIM close to the "
        "floor's (much higher = mode collapse, the samples look alike). Nearest-neighbour distances well below the "
        "floor's, a suspect fraction well above the quantile, or any exact copy mean the generator reproduces "
        "training images rather than new ones (memorisation): look at memorisation.png. Feature-space numbers are "
        f"computed with the {fn['network']} classifier named above, trained on real training images only; they are "
        "comparable only with audits that used the same feature network, never with published Inception FIDs.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main entry


def run_audit(
    generator,
    train_dataset,
    heldout_dataset,
    out_dir: str | os.PathLike,
    *,
    feature_network=None,
    feature_layer: str | None = None,
    num_per_class: int | Sequence[int] | None = None,
    seed: int = 0,
    k: int = 3,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    max_ssim_pairs: int = 2000,
    memorisation_quantile: float = 0.05,
    flag_fraction: float = 0.2,
    num_pairs_shown: int = 6,
    samples_per_row: int = 8,
    feature_epochs: int = 15,
    feature_arch: str = "tiny",
    truncation_psi: float = 1.0,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    heldout_name: str = "held-out split",
    generator_name: str | None = None,
    lpips_weights: str | os.PathLike | None = None,
    feature_cache_dir: str | os.PathLike | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AuditResult:
    """Audit a generator's one-hot samples against the real training split, with a held-out real floor.

    Args:
        generator: a ``Generator``, a generator checkpoint path, or any object with ``generate(soft_labels,
            seed=..., batch_size=..., truncation_psi=...[, device=...])`` returning ``[N, C, R, R]`` in [-1, 1],
            ``c_dim``, ``img_resolution``, ``img_channels`` (and ``class_names``).
        train_dataset / heldout_dataset: map-style datasets (or lists) of ``{"image": [C, R, R] in [-1, 1],
            "label": int}``, e.g. ``gemix_monai.data.get_dataset(source, "training" / "validation", R)``;
            their ``class_names`` attribute, when present, must match the generator's.
        out_dir: where ``audit.json``, ``audit.md``, ``memorisation.png``, ``samples.png`` go.
        feature_network: ``None`` (train a ``feature_arch`` classifier for ``feature_epochs`` epochs on
            the training split only), a classifier checkpoint (``model.pt`` beside ``classifier.json``),
            or a module (then ``feature_layer`` is required).
        feature_layer: module whose pooled output is the feature vector (default ``FEATURE_LAYERS[network]``).
        num_per_class: synthetic images per class (an int, or one per class); default the held-out
            split's per-class counts, so that synthetic and floor sets have the same sizes.
        seed: seeds generation, KID subsets, MS-SSIM pair sampling and the sample figure.
        k: neighbourhood size of precision/recall (lowered to ``n - 1`` for sets of ``n <= k`` images).
        kid_subsets / kid_subset_size / max_ssim_pairs: estimator sizes (see ``metrics.quality``).
        memorisation_quantile / flag_fraction: the suspect threshold is this quantile of the held-out
            images' nearest-training distances; a set is flagged when more than ``flag_fraction`` of it
            falls below it, or when it contains an exact copy.
        heldout_name / generator_name: how the outputs name the held-out split and the generator
            (default: its path, or its type name).
        lpips_weights: a local LPIPS weight file (docs/quality.md); with it, LPIPS diversity (mean pairwise
            distance within each set) is reported, else the report says "LPIPS: no weights given".
        feature_cache_dir: where the audit's own feature network is cached (``feature_network=None``).
        extra: plain entries added to ``audit.json`` (e.g. the generator file's hash).

    Raises:
        ValueError: class count, class names, resolution or channels of a split disagree with the
            generator (the message names both), or an empty split.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = _generator(generator, device)
    k_cls = int(gen.c_dim)
    names_gen = list(getattr(gen, "class_names", None) or [f"class_{c}" for c in range(k_cls)])
    t_img, t_lab = stack_items(train_dataset, "train_dataset")
    h_img, h_lab = stack_items(heldout_dataset, "heldout_dataset")
    t_names = getattr(train_dataset, "class_names", None)
    h_names = getattr(heldout_dataset, "class_names", None)
    _check_inputs(
        gen, names_gen, {"train_dataset": (t_img, t_lab, t_names), "heldout_dataset": (h_img, h_lab, h_names)}
    )
    names = list(t_names) if t_names is not None else names_gen

    h_counts = [int((h_lab == c).sum()) for c in range(k_cls)]
    if num_per_class is None:
        counts = h_counts
    elif isinstance(num_per_class, int):
        counts = [num_per_class] * k_cls
    else:
        counts = [int(n) for n in num_per_class]
        if len(counts) != k_cls:
            raise ValueError(f"num_per_class has {len(counts)} entries, the generator has {k_cls} classes {names_gen}")
    if any(n < 0 for n in counts) or sum(counts) < 2:
        raise ValueError(f"num_per_class must give at least 2 synthetic images in all, got {counts}")

    # Synthetic set: one-hot labels, class by class, in one seeded call.
    s_lab = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    onehot = torch.nn.functional.one_hot(s_lab, k_cls).to(torch.float32)
    kwargs = {"seed": seed, "batch_size": batch_size, "truncation_psi": truncation_psi}
    if device is not None:
        kwargs["device"] = device
    s_img = plain_tensor(gen.generate(onehot, **kwargs)).detach().cpu().to(torch.float32)
    expected = (int(s_lab.numel()), int(gen.img_channels), int(gen.img_resolution), int(gen.img_resolution))
    if tuple(s_img.shape) != expected:
        raise ValueError(f"generator.generate returned shape {tuple(s_img.shape)}, expected {expected}")
    if not bool(torch.isfinite(s_img).all()):
        raise ValueError("generator.generate returned NaN or infinite pixels")

    net, layer, f_info = _feature_network(
        feature_network,
        feature_layer,
        t_img,
        t_lab,
        names,
        out,
        seed=seed,
        device=device,
        feature_epochs=feature_epochs,
        feature_arch=feature_arch,
        cache_dir=feature_cache_dir,
    )
    feat_device = device or next(net.parameters()).device
    t_feat = _features(net, layer, t_img, batch_size, feat_device)
    s_feat = _features(net, layer, s_img, batch_size, feat_device)
    h_feat = _features(net, layer, h_img, batch_size, feat_device)

    # Nearest training image of every synthetic and held-out image (whole training set, any class).
    nn = {}
    for src, img, feat in (("synthetic", s_img, s_feat), ("real_floor", h_img, h_feat)):
        d_pix, i_pix = Q.nearest_neighbours(img, t_img)
        d_feat, i_feat = Q.nearest_neighbours(feat, t_feat)
        nn[src] = (d_pix, i_pix, d_feat, i_feat)
    pix_threshold = float(torch.quantile(nn["real_floor"][0], memorisation_quantile))
    feat_threshold = float(torch.quantile(nn["real_floor"][2], memorisation_quantile))

    sets = {"synthetic": (s_img, s_feat, s_lab), "real_floor": (h_img, h_feat, h_lab)}
    undefined: list[dict] = []
    metrics: dict[str, dict] = {}
    common = dict(k=k, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, max_pairs=max_ssim_pairs, seed=seed)
    for src, (img, feat, lab) in sets.items():
        d_pix, _, d_feat, _ = nn[src]
        per_class = {}
        for c, cname in enumerate(names):
            sel, tsel = lab == c, t_lab == c
            per_class[cname] = _group_metrics(
                img[sel],
                feat[sel],
                t_img[tsel],
                t_feat[tsel],
                d_pix[sel],
                d_feat[sel],
                pix_threshold,
                undefined=undefined,
                where=f"{src}/{cname}",
                **common,
            )
        overall = _group_metrics(
            img,
            feat,
            t_img,
            t_feat,
            d_pix,
            d_feat,
            pix_threshold,
            undefined=undefined,
            where=f"{src}/overall",
            **common,
        )
        overall["suspect_fraction_feature"] = float((d_feat < feat_threshold).double().mean())
        metrics[src] = {"per_class": per_class, "overall": overall}
    lpips_report = _lpips_diversity(lpips_weights, sets, names, seed=seed, max_pairs=max_ssim_pairs, metrics=metrics)
    train_diversity = {}
    for c, cname in enumerate(names):
        sel = t_lab == c
        train_diversity[cname] = (
            _finite(Q.mean_pairwise_ms_ssim(t_img[sel], max_pairs=max_ssim_pairs, seed=seed)[0])
            if int(sel.sum()) >= 2
            else None
        )

    syn = metrics["synthetic"]
    flagged_classes = [
        c
        for c, e in syn["per_class"].items()
        if e["n"] and (e["exact_copies"] or (e["suspect_fraction"] or 0) > flag_fraction)
    ]
    flagged_overall = bool(syn["overall"]["exact_copies"] or syn["overall"]["suspect_fraction"] > flag_fraction)
    d_pix, i_pix, d_feat, i_feat = nn["synthetic"]
    n_show = max(1, min(num_pairs_shown, s_img.shape[0]))
    closest = []
    for s in torch.argsort(d_pix)[:n_show].tolist():
        t = int(i_pix[s])
        closest.append(
            {
                "synthetic_index": s,
                "class": names[int(s_lab[s])],
                "train_index": t,
                "train_class": names[int(t_lab[t])],
                "pixel_distance": float(d_pix[s]),
                "feature_distance_same_pair": float(torch.dist(s_feat[s], t_feat[t])),
            }
        )
    closest_feat = [
        {
            "synthetic_index": s,
            "class": names[int(s_lab[s])],
            "train_index": int(i_feat[s]),
            "feature_distance": float(d_feat[s]),
        }
        for s in torch.argsort(d_feat)[:n_show].tolist()
    ]
    memorisation = {
        "quantile": memorisation_quantile,
        "flag_fraction": flag_fraction,
        "exact_copy_rms": EXACT_COPY_RMS,
        "pixel_threshold": pix_threshold,
        "feature_threshold": feat_threshold,
        "flagged": bool(flagged_overall or flagged_classes),
        "flagged_overall": flagged_overall,
        "flagged_classes": flagged_classes,
        "heldout_exact_copies": metrics["real_floor"]["overall"]["exact_copies"],
        "closest_pixel_pairs": closest,
        "closest_feature_pairs": closest_feat,
        "nearest_train": {
            "pixel_index": i_pix.tolist(),
            "pixel_distance": d_pix.tolist(),
            "feature_index": i_feat.tolist(),
            "feature_distance": d_feat.tolist(),
            "synthetic_class": s_lab.tolist(),
        },
    }

    gen_desc = generator_name or (str(generator) if isinstance(generator, (str, os.PathLike)) else type(gen).__name__)
    report = {
        "format": AUDIT_FORMAT,
        "generator": gen_desc,
        "resolution": int(gen.img_resolution),
        "channels": int(gen.img_channels),
        "class_names": names,
        "heldout_name": heldout_name,
        "feature_network": f_info,
        "settings": {
            "num_per_class": counts,
            "seed": seed,
            "k": k,
            "kid_subsets": kid_subsets,
            "kid_subset_size": kid_subset_size,
            "max_ssim_pairs": max_ssim_pairs,
            "ms_ssim": Q.ms_ssim_params(int(gen.img_resolution)),
            "truncation_psi": truncation_psi,
        },
        "counts": {"train": [int((t_lab == c).sum()) for c in range(k_cls)], "heldout": h_counts, "synthetic": counts},
        "metrics": metrics,
        "train_ms_ssim": train_diversity,
        "memorisation": memorisation,
        "undefined": undefined,
        "lpips": lpips_report,
        **plain_data(dict(extra or {}), "extra"),
    }
    files = {
        "json": atomic_write_json(out / "audit.json", report),
        "md": atomic_write_bytes(out / "audit.md", _markdown(report).encode("utf-8")),
        "memorisation": _memorisation_figure(
            out / "memorisation.png",
            s_img,
            s_lab,
            t_img,
            t_lab,
            names,
            d_pix,
            i_pix,
            d_feat,
            i_feat,
            num_pairs_shown,
            f_info["description"],
            (memorisation_quantile, pix_threshold, feat_threshold),
        ),
        "samples": _samples_figure(out / "samples.png", t_img, t_lab, s_img, s_lab, names, samples_per_row, seed),
    }
    return AuditResult(out, report, files)


def audit_splits(args, generator) -> tuple:
    """The training split and ``args.heldout_split`` of the audit's data, read with the command line's data options
    at the generator's resolution and channels; the generator's stored contract (classes, preprocessing) must match.
    """
    from gemix_monai.data import get_dataset

    source = args.datalist or args.dataset_dir
    size = args.image_size or generator.img_resolution
    options = {
        "hu_window": getattr(args, "hu_window", None) or "auto",
        "intensity": getattr(args, "intensity", None) or "auto",
        "split_seed": getattr(args, "split_seed", None) or 0,
        "on_duplicate": getattr(args, "on_duplicate", None) or "error",
        "validate": getattr(args, "data_check", None) or "full",
        "contract": getattr(generator, "contract", None),
    }
    for key in ("hu_window", "intensity"):
        if isinstance(options[key], str) and "," in options[key]:
            options[key] = [float(v) for v in options[key].split(",")]
    return tuple(
        get_dataset(source, split, size, channels=generator.img_channels, **options)
        for split in ("training", args.heldout_split)
    )


def audit_command(args) -> int:
    """``gemix-monai audit``: load the generator and the two real splits, run :func:`run_audit`, print a summary."""
    from gemix_monai.generators.protocol import load_generator

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gen = load_generator(args.generator, device=device)
    if getattr(gen, "mask_channels", 0):  # trained on image-mask pairs: the pair audit (it includes this one)
        from gemix_monai.experiments.audit_pairs import pair_audit_command

        return pair_audit_command(args, gen, device)
    if getattr(args, "segmenter", None):
        raise ValueError(f"--segmenter applies to generators of image-mask pairs; {args.generator} makes images only")
    train, heldout = audit_splits(args, gen)
    result = run_audit(
        gen,
        train,
        heldout,
        args.out,
        feature_network=args.classifier,
        num_per_class=args.num_per_class,
        seed=args.seed,
        device=device,
        heldout_name=f"{args.heldout_split} split",
        generator_name=str(args.generator),
        lpips_weights=getattr(args, "lpips_weights", None),
    )
    o = result.report["metrics"]
    print(f"audit written to {result.out_dir} (features: {result.report['feature_network']['description']})")
    for key in ("fd", "kid", "precision", "recall", "ms_ssim"):
        print(
            f"  {key:10s} synthetic {_fmt(o['synthetic']['overall'][key]):>10s}   "
            f"real floor {_fmt(o['real_floor']['overall'][key]):>10s}"
        )
    print(f"  memorisation flagged: {'YES' if result.flagged else 'no'}")
    return 0
