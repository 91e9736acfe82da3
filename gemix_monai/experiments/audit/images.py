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

import dataclasses
import logging
import math
import os
import re
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gemix_monai.engines.features import FeatureNetwork, stack_items
from gemix_monai.experiments.report import audit_markdown, memorisation_figure, samples_figure
from gemix_monai.metrics import quality as Q
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_data, plain_tensor

__all__ = ["AUDIT_FORMAT", "AuditSettings", "AuditResult", "run_audit", "audit_splits", "audit_settings"]

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
    ("density", "density (k-NN balls on real features)", "≈ 1; near the floor"),
    ("coverage", "coverage (share of real images reached)", "higher; near the floor"),
    ("ms_ssim", "mean pairwise MS-SSIM within the set", "near the floor; higher = less diverse"),
    ("nn_pixel_median", "median NN distance to train, pixel L2", "not below the floor"),
    ("nn_pixel_min", "min NN distance to train, pixel L2", "0 = a training image"),
    ("nn_feature_median", "median NN distance to train, feature L2", "not below the floor"),
    ("suspect_fraction", "share closer to train than the floor quantile", "≈ the quantile"),
    ("exact_copies", "exact copies of training images", "0"),
)


@dataclass(frozen=True)
class AuditSettings:
    """How :func:`run_audit` measures (every field optional).

    Args:
        feature_network: ``None`` (train a ``feature_arch`` classifier for ``feature_epochs`` epochs on the training
            split only, cached in ``feature_cache_dir``), a classifier checkpoint (``model.pt`` beside
            ``classifier.json``), or a module (then ``feature_layer`` is required).
        feature_layer: module whose pooled output is the feature vector (default ``FEATURE_LAYERS[network]``).
        num_per_class: synthetic images per class (an int, or one per class); default the held-out split's per-class
            counts, so that synthetic and floor sets have the same sizes.
        seed: seeds generation, KID subsets, MS-SSIM pair sampling and the sample figure.
        k: neighbourhood size of precision/recall (lowered to ``n - 1`` for sets of ``n <= k`` images).
        kid_subsets / kid_subset_size / max_ssim_pairs: estimator sizes (see ``metrics.quality``).
        memorisation_quantile / flag_fraction: the suspect threshold is this quantile of the held-out images'
            nearest-training distances; a set is flagged when more than ``flag_fraction`` of it falls below it, or
            when it contains an exact copy.
        num_pairs_shown / samples_per_row: the figures' sizes.
        truncation_psi / batch_size / device: how the synthetic set is generated.
        heldout_name / generator_name: how the outputs name the held-out split and the generator (default: its
            path, or its type name).
        lpips_weights: a local LPIPS weight file (docs/quality.md); with it, LPIPS diversity (mean pairwise distance
            within each set) is reported, else the report says "LPIPS: no weights given".
        extra: plain entries added to ``audit.json`` (e.g. the generator file's hash).
    """

    feature_network: Any = None
    feature_layer: str | None = None
    feature_arch: str = "tiny"
    feature_epochs: int = 15
    feature_cache_dir: str | os.PathLike | None = None
    num_per_class: int | Sequence[int] | None = None
    seed: int = 0
    truncation_psi: float = 1.0
    batch_size: int = 64
    device: str | torch.device | None = None
    k: int = 3
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    max_ssim_pairs: int = 2000
    lpips_weights: str | os.PathLike | None = None
    memorisation_quantile: float = 0.05
    flag_fraction: float = 0.2
    num_pairs_shown: int = 6
    samples_per_row: int = 8
    heldout_name: str = "held-out split"
    generator_name: str | None = None
    extra: Mapping[str, Any] | None = None

    def replace(self, **changes) -> AuditSettings:
        return dataclasses.replace(self, **changes)


def audit_settings(settings: AuditSettings | None, keywords: dict, caller: str) -> AuditSettings:
    """``settings`` (default :class:`AuditSettings`) with the deprecated keyword form applied (a warning naming the
    keywords); an unknown keyword is a ``TypeError`` naming it."""
    names = {f.name for f in dataclasses.fields(AuditSettings)}
    unknown = sorted(set(keywords) - names)
    if unknown:
        raise TypeError(f"{caller} got unexpected keyword arguments {unknown}; see AuditSettings")
    settings = settings or AuditSettings()
    if keywords:
        warnings.warn(
            f"{caller}(**keywords) is deprecated: pass settings=AuditSettings(...) (docs/quality.md); "
            f"got {sorted(keywords)}",
            DeprecationWarning,
            stacklevel=3,
        )
        settings = settings.replace(**keywords)
    return settings


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


def _feature_network(o: AuditSettings, train_images, train_labels, names, out_dir: Path) -> FeatureNetwork:
    """The feature space of the audit (``o.feature_network``, module docstring), its description in ``info``."""
    from gemix_monai.networks.classifiers import FEATURE_LAYERS, load_classifier

    feature_network, feature_layer, device = o.feature_network, o.feature_layer, o.device
    if feature_network is None:
        from gemix_monai.engines.features import real_feature_network

        spec = {"network": o.feature_arch, "epochs": o.feature_epochs, "seed": o.seed, "cache_dir": o.feature_cache_dir}
        fn = real_feature_network(train_images, train_labels, names, device=device, **spec)
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
    return FeatureNetwork(net, layer, info)


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
    k_real = min(k, t_img.shape[0] - 1)
    attempt(
        ["density", "coverage"],
        lambda: (lambda r: [r.density, r.coverage])(Q.density_coverage(t_feat, feat, k=k_real if k_real >= 1 else k)),
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


# ---------------------------------------------------------------------------------------------- the audit


def _synthetic_counts(num_per_class, h_lab: torch.Tensor, k_cls: int, names_gen) -> list[int]:
    """Synthetic images per class: ``num_per_class`` (an int or one per class), else the held-out split's counts."""
    if num_per_class is None:
        counts = [int((h_lab == c).sum()) for c in range(k_cls)]
    elif isinstance(num_per_class, int):
        counts = [num_per_class] * k_cls
    else:
        counts = [int(n) for n in num_per_class]
        if len(counts) != k_cls:
            raise ValueError(f"num_per_class has {len(counts)} entries, the generator has {k_cls} classes {names_gen}")
    if any(n < 0 for n in counts) or sum(counts) < 2:
        raise ValueError(f"num_per_class must give at least 2 synthetic images in all, got {counts}")
    return counts


def _synthetic_set(gen, counts: list[int], o: AuditSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [N, C, R, R] float32 on the CPU, class indices [N])``: one-hot labels, class by class, in one seeded
    call of ``generate``."""
    s_lab = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    onehot = torch.nn.functional.one_hot(s_lab, int(gen.c_dim)).to(torch.float32)
    kwargs = {"seed": o.seed, "batch_size": o.batch_size, "truncation_psi": o.truncation_psi}
    if o.device is not None:
        kwargs["device"] = o.device
    s_img = plain_tensor(gen.generate(onehot, **kwargs)).detach().cpu().to(torch.float32)
    expected = (int(s_lab.numel()), int(gen.img_channels), int(gen.img_resolution), int(gen.img_resolution))
    if tuple(s_img.shape) != expected:
        raise ValueError(f"generator.generate returned shape {tuple(s_img.shape)}, expected {expected}")
    if not bool(torch.isfinite(s_img).all()):
        raise ValueError("generator.generate returned NaN or infinite pixels")
    return s_img, s_lab


def _set_metrics(sets: dict, train: tuple, nn: dict, names, pix_threshold, feat_threshold, o: AuditSettings):
    """``(metrics, undefined)``: every metric per class and overall of each scored set against the training set."""
    t_img, t_feat, t_lab = train
    undefined: list[dict] = []
    metrics: dict[str, dict] = {}
    common = dict(k=o.k, kid_subsets=o.kid_subsets, kid_subset_size=o.kid_subset_size, max_pairs=o.max_ssim_pairs)
    for src, (img, feat, lab) in sets.items():
        d_pix, _, d_feat, _ = nn[src]

        def group(sel, tsel, where):
            return _group_metrics(
                img[sel],
                feat[sel],
                t_img[tsel],
                t_feat[tsel],
                d_pix[sel],
                d_feat[sel],
                pix_threshold,
                seed=o.seed,
                undefined=undefined,
                where=where,
                **common,
            )

        per_class = {cname: group(lab == c, t_lab == c, f"{src}/{cname}") for c, cname in enumerate(names)}
        every, all_train = torch.ones_like(lab, dtype=torch.bool), torch.ones_like(t_lab, dtype=torch.bool)
        overall = group(every, all_train, f"{src}/overall")
        overall["suspect_fraction_feature"] = float((d_feat < feat_threshold).double().mean())
        metrics[src] = {"per_class": per_class, "overall": overall}
    return metrics, undefined


def _memorisation(metrics, nn, s_feat, s_lab, t_feat, t_lab, names, thresholds, o: AuditSettings) -> dict:
    """The memorisation verdict: flagged classes and set, the closest pairs, every synthetic image's nearest
    training image."""
    syn = metrics["synthetic"]
    flagged_classes = [
        c
        for c, e in syn["per_class"].items()
        if e["n"] and (e["exact_copies"] or (e["suspect_fraction"] or 0) > o.flag_fraction)
    ]
    flagged_overall = bool(syn["overall"]["exact_copies"] or syn["overall"]["suspect_fraction"] > o.flag_fraction)
    d_pix, i_pix, d_feat, i_feat = nn["synthetic"]
    n_show = max(1, min(o.num_pairs_shown, s_lab.shape[0]))
    closest = [
        {
            "synthetic_index": s,
            "class": names[int(s_lab[s])],
            "train_index": int(i_pix[s]),
            "train_class": names[int(t_lab[int(i_pix[s])])],
            "pixel_distance": float(d_pix[s]),
            "feature_distance_same_pair": float(torch.dist(s_feat[s], t_feat[int(i_pix[s])])),
        }
        for s in torch.argsort(d_pix)[:n_show].tolist()
    ]
    closest_feat = [
        {
            "synthetic_index": s,
            "class": names[int(s_lab[s])],
            "train_index": int(i_feat[s]),
            "feature_distance": float(d_feat[s]),
        }
        for s in torch.argsort(d_feat)[:n_show].tolist()
    ]
    return {
        "quantile": o.memorisation_quantile,
        "flag_fraction": o.flag_fraction,
        "exact_copy_rms": EXACT_COPY_RMS,
        "pixel_threshold": thresholds[0],
        "feature_threshold": thresholds[1],
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


def run_audit(
    generator,
    train_dataset,
    heldout_dataset,
    out_dir: str | os.PathLike,
    settings: AuditSettings | None = None,
    **keywords,
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
        settings: :class:`AuditSettings` (feature network, set sizes, estimators, memorisation thresholds, device,
            names in the outputs, LPIPS weights); ``keywords`` are its fields, the deprecated spelling.

    Raises:
        ValueError: class count, class names, resolution or channels of a split disagree with the
            generator (the message names both), or an empty split.
    """
    o = audit_settings(settings, keywords, "run_audit")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = _generator(generator, o.device)
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
    counts = _synthetic_counts(o.num_per_class, h_lab, k_cls, names_gen)
    s_img, s_lab = _synthetic_set(gen, counts, o)

    fn = _feature_network(o, t_img, t_lab, names, out)
    feat_device = o.device or next(fn.net.parameters()).device
    t_feat, s_feat, h_feat = (fn.features(x, o.batch_size, feat_device) for x in (t_img, s_img, h_img))
    # Nearest training image of every synthetic and held-out image (whole training set, any class).
    nn = {
        src: (*Q.nearest_neighbours(img, t_img), *Q.nearest_neighbours(feat, t_feat))
        for src, img, feat in (("synthetic", s_img, s_feat), ("real_floor", h_img, h_feat))
    }
    thresholds = tuple(float(torch.quantile(nn["real_floor"][i], o.memorisation_quantile)) for i in (0, 2))
    sets = {"synthetic": (s_img, s_feat, s_lab), "real_floor": (h_img, h_feat, h_lab)}
    metrics, undefined = _set_metrics(sets, (t_img, t_feat, t_lab), nn, names, *thresholds, o)
    lpips_report = _lpips_diversity(
        o.lpips_weights, sets, names, seed=o.seed, max_pairs=o.max_ssim_pairs, metrics=metrics
    )
    train_diversity = {
        cname: _finite(Q.mean_pairwise_ms_ssim(t_img[t_lab == c], max_pairs=o.max_ssim_pairs, seed=o.seed)[0])
        if int((t_lab == c).sum()) >= 2
        else None
        for c, cname in enumerate(names)
    }
    memorisation = _memorisation(metrics, nn, s_feat, s_lab, t_feat, t_lab, names, thresholds, o)
    gen_desc = o.generator_name or (str(generator) if isinstance(generator, (str, os.PathLike)) else type(gen).__name__)
    report = {
        "format": AUDIT_FORMAT,
        "generator": gen_desc,
        "resolution": int(gen.img_resolution),
        "channels": int(gen.img_channels),
        "class_names": names,
        "heldout_name": o.heldout_name,
        "feature_network": fn.info,
        "settings": {
            "num_per_class": counts,
            "seed": o.seed,
            "k": o.k,
            "kid_subsets": o.kid_subsets,
            "kid_subset_size": o.kid_subset_size,
            "max_ssim_pairs": o.max_ssim_pairs,
            "ms_ssim": Q.ms_ssim_params(int(gen.img_resolution)),
            "truncation_psi": o.truncation_psi,
        },
        "counts": {
            "train": [int((t_lab == c).sum()) for c in range(k_cls)],
            "heldout": [int((h_lab == c).sum()) for c in range(k_cls)],
            "synthetic": counts,
        },
        "metrics": metrics,
        "train_ms_ssim": train_diversity,
        "memorisation": memorisation,
        "undefined": undefined,
        "lpips": lpips_report,
        **plain_data(dict(o.extra or {}), "extra"),
    }
    d_pix, i_pix, d_feat, i_feat = nn["synthetic"]
    files = {
        "json": atomic_write_json(out / "audit.json", report),
        "md": atomic_write_bytes(out / "audit.md", audit_markdown(report, SOURCES, METRICS, EXACT_COPY_RMS).encode()),
        "memorisation": memorisation_figure(
            out / "memorisation.png",
            s_img,
            s_lab,
            t_img,
            t_lab,
            names,
            {"pixel": (d_pix, i_pix), "feature": (d_feat, i_feat)},
            o.num_pairs_shown,
            fn.info["description"],
            (o.memorisation_quantile, *thresholds),
        ),
        "samples": samples_figure(out / "samples.png", t_img, t_lab, s_img, s_lab, names, o.samples_per_row, o.seed),
    }
    return AuditResult(out, report, files)


def audit_splits(source, heldout_split: str, generator, *, image_size: int | None = None, data_options=None):
    """The training split and ``heldout_split`` of ``source``, read with the ``get_dataset`` keywords
    ``data_options`` at the generator's resolution (or ``image_size``) and channels; the generator's stored contract
    (classes, preprocessing) must match the data's."""
    from gemix_monai.data import get_dataset

    options = {
        "hu_window": "auto",
        "intensity": "auto",
        "split_seed": 0,
        "on_duplicate": "error",
        "validate": "full",
        **dict(data_options or {}),
        "contract": getattr(generator, "contract", None),
    }
    size = image_size or generator.img_resolution
    return tuple(
        get_dataset(source, split, size, channels=generator.img_channels, **options)
        for split in ("training", heldout_split)
    )
