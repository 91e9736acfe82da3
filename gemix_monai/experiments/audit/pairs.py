"""The audit of image–mask pairs: the image audit, mask realism, and image–mask consistency (docs/segmentation.md).

:func:`run_pair_audit` generates ``num_per_class`` pairs per class (one-hot labels) from a generator trained on
image–mask pairs and writes, beside each other:

1. **images** — the whole image audit of :func:`gemix_monai.experiments.audit.images.run_audit` on the generated images
   (FD/KID on domain features of a classifier trained on the real training split, precision/recall, MS-SSIM,
   memorisation), with its held-out real floor, in ``<out>/images/``;
2. **mask realism** — per mask and structure: area fraction, perimeter (crack length: pixel edges between
   foreground and background), compactness ``4π·area / perimeter²`` (≈ π/4 for a digital disc with this
   perimeter, lower for ragged or elongated shapes; compare sets, not absolute values), number of connected
   components (8-connectivity) and whether the mask is empty; the synthetic and the held-out distributions are each
   compared with the training masks by the two-sample Kolmogorov–Smirnov statistic (0 = same distribution); the
   held-out KS is the floor a perfect generator would reach with sets of these sizes;
3. **image–mask consistency** — a segmenter trained on the real training split only (a checkpoint, or a
   ``tiny_unet`` the audit trains) segments the synthetic images; its Dice and HD95 against the synthetic masks
   sit next to the same scores on the held-out real images (the floor: what the segmenter does on real pairs).
   A synthetic Dice far below the floor means the generated masks do not mark what the segmenter sees in the
   generated images.

Outputs: ``pairs.json`` (every number), ``pairs.md`` (the tables), ``images/`` (the image audit).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gemix_monai.engines.run import RunSettings
from gemix_monai.experiments.report import pair_audit_markdown
from gemix_monai.utils import atomic_write_bytes, atomic_write_json, plain_tensor

from .images import AuditSettings, audit_settings, run_audit

__all__ = ["PAIR_AUDIT_FORMAT", "MASK_STATISTICS", "mask_statistics", "run_pair_audit"]

PAIR_AUDIT_FORMAT = "gemix-pair-audit/1"
#: Per-mask statistics compared between sets (module docstring).
MASK_STATISTICS = ("area_fraction", "perimeter", "compactness", "components", "empty")


def mask_statistics(masks: torch.Tensor) -> dict[str, np.ndarray]:
    """Shape statistics of binary masks ``[N, M, H, W]`` (module docstring), each ``float64 [N, M]``.

    ``compactness`` is NaN for an empty mask (no boundary); it is left out of its KS test and counted.
    """
    from scipy import ndimage

    m = plain_tensor(masks).detach().cpu().float()
    if m.ndim != 4:
        raise ValueError(f"masks must be [N, M, H, W], got shape {tuple(m.shape)}")
    if m.numel() and not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("masks must be binary (0/1); binarise them first (gemix_monai.data.masks.binarise_masks)")
    b = m.numpy().astype(bool)
    n, k, h, w = b.shape
    area = b.sum(axis=(2, 3)).astype(np.float64)
    padded = np.pad(b, ((0, 0), (0, 0), (1, 1), (1, 1)))
    crack = (padded[..., 1:, :] != padded[..., :-1, :]).sum(axis=(2, 3)) + (
        padded[..., :, 1:] != padded[..., :, :-1]
    ).sum(axis=(2, 3))
    perimeter = crack.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        compactness = np.where(perimeter > 0, 4 * math.pi * area / perimeter**2, np.nan)
    structure = np.ones((3, 3), bool)
    components = np.array(
        [[ndimage.label(b[i, c], structure=structure)[1] for c in range(k)] for i in range(n)], dtype=np.float64
    ).reshape(n, k)
    return {
        "area_fraction": area / float(h * w),
        "perimeter": perimeter,
        "compactness": compactness,
        "components": components,
        "empty": (area == 0).astype(np.float64),
    }


def _ks(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    from scipy import stats

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return {"ks": None, "p_value": None, "n": int(a.size), "n_reference": int(b.size)}
    res = stats.ks_2samp(a, b)
    return {"ks": float(res.statistic), "p_value": float(res.pvalue), "n": int(a.size), "n_reference": int(b.size)}


def _summary(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    return {
        "mean": float(finite.mean()) if finite.size else None,
        "median": float(np.median(finite)) if finite.size else None,
        "n": int(finite.size),
        "undefined": int(values.size - finite.size),
    }


def _stack_pairs(dataset, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from gemix_monai.transforms.segmentation import _check_pair, _item_tensor

    if len(dataset) == 0:
        raise ValueError(f"{name} is empty")
    images, masks, labels = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        image, mask = _item_tensor(item, "image", i, name), _item_tensor(item, "mask", i, name)
        _check_pair(image, mask, i, name)
        images.append(image)
        masks.append(mask)
        labels.append(int(plain_tensor(item["label"]).reshape(-1)[0]))
    return torch.stack(images), torch.stack(masks), torch.tensor(labels)


class _RecordingImageView:
    """The image face of a pair network for :func:`run_audit`; keeps the binarised masks of its last ``generate``."""

    def __init__(self, network, image_channels: int, mask_channels: int) -> None:
        self.network, self.mask_channels = network, mask_channels
        self.c_dim, self.z_dim = network.c_dim, network.z_dim
        self.img_resolution, self.img_channels = network.img_resolution, image_channels
        self.class_names = getattr(network, "class_names", None)
        self.contract = getattr(network, "contract", None)
        self.last_images: torch.Tensor | None = None
        self.last_masks: torch.Tensor | None = None
        self.calls = 0

    @torch.no_grad()
    def generate(self, soft_labels, seed=None, **options) -> torch.Tensor:
        from gemix_monai.data.masks import binarise_masks, split_image_mask

        images, soft = split_image_mask(self.network.generate(soft_labels, seed=seed, **options), self.mask_channels)
        self.last_images, self.last_masks = images.detach().cpu().float(), binarise_masks(soft).cpu()
        self.calls += 1
        return images


def _mask_realism(syn: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor) -> dict:
    stats = {"synthetic": mask_statistics(syn), "train": mask_statistics(train), "real_floor": mask_statistics(heldout)}
    out: dict[str, Any] = {}
    for c in range(syn.shape[1]):
        per: dict[str, Any] = {}
        for key in MASK_STATISTICS:
            ref = stats["train"][key][:, c]
            per[key] = {
                "train": _summary(ref),
                "synthetic": {**_summary(stats["synthetic"][key][:, c]), **_ks(stats["synthetic"][key][:, c], ref)},
                "real_floor": {**_summary(stats["real_floor"][key][:, c]), **_ks(stats["real_floor"][key][:, c], ref)},
            }
        out[f"structure_{c + 1}"] = per
    return out


def _consistency(segmenter, syn_images, syn_masks, syn_labels, h_images, h_masks, h_labels, device) -> dict:
    from gemix_monai.engines.segmenter import evaluate_segmenter

    def items(images, masks, labels):
        return [{"image": i, "mask": m, "label": int(y)} for i, m, y in zip(images, masks, labels)]

    return {
        "synthetic": evaluate_segmenter(segmenter, items(syn_images, syn_masks, syn_labels), device=device),
        "real_floor": evaluate_segmenter(segmenter, items(h_images, h_masks, h_labels), device=device),
    }


def run_pair_audit(
    generator: Any,
    train_dataset,
    heldout_dataset,
    out_dir: str | os.PathLike,
    settings: AuditSettings | None = None,
    *,
    segmenter=None,
    segmenter_epochs: int = 10,
    **keywords,
) -> dict:
    """Audit a pair generator against the real training pairs, with a held-out real floor (module docstring).

    Args:
        generator: a pair generator (checkpoint path, its image view from ``load_generator``, or a raw ``C + M``
            network).
        train_dataset / heldout_dataset: datasets (or lists) of ``{"image", "mask", "label"}``.
        segmenter: a segmenter checkpoint (``model.pt`` beside ``segmenter.json``) trained on the real training split
            only, or ``None`` to train a ``tiny_unet`` for ``segmenter_epochs`` epochs on it (validated on it too: no
            held-out pair is seen).
        settings: the image audit's :class:`~gemix_monai.experiments.audit.images.AuditSettings` (its ``seed``,
            ``device``, ``num_per_class``, names, ... apply to the pairs too); ``keywords`` are its fields, the
            deprecated spelling.

    Returns:
        the report written to ``pairs.json``.
    """
    from gemix_monai.engines.segmenter import train_segmenter
    from gemix_monai.transforms.segmentation import check_pair_generator
    from gemix_monai.transforms.synthetic import load_generator

    o = audit_settings(settings, keywords, "run_pair_audit")
    seed, device, heldout_name, generator_name = o.seed, o.device, o.heldout_name, o.generator_name
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_img, t_mask, t_lab = _stack_pairs(train_dataset, "train_dataset")
    h_img, h_mask, h_lab = _stack_pairs(heldout_dataset, "heldout_dataset")
    if t_mask.shape[1] != h_mask.shape[1] or t_img.shape[1] != h_img.shape[1]:
        raise ValueError(
            f"train_dataset has {t_img.shape[1]} image + {t_mask.shape[1]} mask channel(s), heldout_dataset "
            f"{h_img.shape[1]} + {h_mask.shape[1]}: both must come from one contract"
        )
    c, m = int(t_img.shape[1]), int(t_mask.shape[1])
    loaded = load_generator(generator, device)
    network = check_pair_generator(loaded, c, m)
    view = _RecordingImageView(network, c, m)
    if view.class_names is None:
        view.class_names = getattr(loaded, "class_names", None)
    if view.contract is None:
        view.contract = getattr(loaded, "contract", None)

    def as_items(images, labels):
        return [{"image": i, "label": int(y)} for i, y in zip(images, labels)]

    train_items, heldout_items = as_items(t_img, t_lab), as_items(h_img, h_lab)
    names = getattr(train_dataset, "class_names", None)
    image_audit = run_audit(
        view,
        _Named(train_items, names),
        _Named(heldout_items, getattr(heldout_dataset, "class_names", None)),
        out / "images",
        o.replace(
            generator_name=generator_name or (str(generator) if isinstance(generator, (str, os.PathLike)) else None)
        ),
    )
    if view.calls != 1:
        raise RuntimeError(f"the image audit called generate {view.calls} times; expected one call for its set")
    # the audited images and their masks, in the audit's order: class by class, counts per class
    counts = image_audit.report["settings"]["num_per_class"]
    s_lab = torch.cat([torch.full((n,), k, dtype=torch.int64) for k, n in enumerate(counts)])
    s_img, s_mask = view.last_images, view.last_masks

    if segmenter is None:
        pairs = [{"image": i, "mask": mk, "label": int(y)} for i, mk, y in zip(t_img, t_mask, t_lab)]
        res = train_segmenter(
            pairs,
            pairs,
            out / "segmenter",
            strategy="real",
            num_classes=int(view.c_dim),
            epochs=segmenter_epochs,
            amp=False,
            run=RunSettings(seed=seed, device=device),
        )
        segmenter_path, seg_desc = (
            res.checkpoint,
            (
                f"tiny_unet trained by this audit for {segmenter_epochs} epochs on the real training split only "
                "(validated on it too)"
            ),
        )
    else:
        segmenter_path, seg_desc = Path(segmenter), f"checkpoint {segmenter} (declared trained on real pairs only)"
    consistency = _consistency(segmenter_path, s_img, s_mask, s_lab, h_img, h_mask, h_lab, device)
    fd = image_audit.report["metrics"]
    report = {
        "format": PAIR_AUDIT_FORMAT,
        "generator": generator_name or (str(generator) if isinstance(generator, (str, os.PathLike)) else "<object>"),
        "class_names": image_audit.report["class_names"],
        "image_channels": c,
        "mask_channels": m,
        "heldout_name": heldout_name,
        "settings": {"num_per_class": counts, "seed": seed, "segmenter_epochs": segmenter_epochs},
        "images": {
            "audit": "images/audit.json",
            "fd": {"synthetic": fd["synthetic"]["overall"]["fd"], "real_floor": fd["real_floor"]["overall"]["fd"]},
            "feature_network": image_audit.report["feature_network"]["description"],
        },
        "mask_realism": _mask_realism(s_mask, t_mask, h_mask),
        "segmenter": seg_desc,
        "consistency": consistency,
    }
    atomic_write_json(out / "pairs.json", report)
    atomic_write_bytes(out / "pairs.md", pair_audit_markdown(report).encode("utf-8"))
    return report


class _Named(list):
    """A list of items with the ``class_names`` of the dataset it came from (the image audit checks them)."""

    def __init__(self, items, class_names) -> None:
        super().__init__(items)
        self.class_names = class_names
