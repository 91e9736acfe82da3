"""MONAI transforms for soft labels and mixing: ``ToSoftLabel(d)``, ``SoftMixUp(d)``, ``GenMix(d)``.

Shaped like MONAI's ``MixUp``/``CutMix`` (``monai/transforms/regularization``): array forms are
``RandomizableTransform`` s with ``prob`` (with probability ``1 - prob`` a batch passes unmixed, its labels still
made soft), dictionary forms take the image keys in ``keys`` and the label keys in ``label_keys`` as ``CutMixd``
does, every random draw happens in ``randomize()`` from ``self.R`` (``set_random_state``), and NumPy arrays, tensors
and ``MetaTensor`` s come back as the type they came in (metadata kept). The mixing maths is
:mod:`gemix_monai.mixing`.

Batch-level use (collated batches, any batch size, a short last batch included): call on ``[B, C, ...]``
images with ``[B, K]`` (or ``[B]`` integer) labels. ``GenMix``/``GenMixd`` also work per sample (``[C, ...]``
with a ``[K]`` label and a synthetic partner), where lambda is a scalar.

Why these are ours rather than MONAI's ``MixUp``: MONAI's mixes labels as given, so integer labels ``[B]`` would be
averaged as numbers, and it takes a fixed ``batch_size`` (a short last batch fails); soft labels on the simplex and
a synthetic partner (GenMix) are this package's subject.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, ensure_tuple

from gemix_monai.mixing import blend, sample_genmix_lambda, sample_mixup_lambda, sample_permutation, to_soft_label
from gemix_monai.utils import plain_tensor

__all__ = ["ToSoftLabel", "ToSoftLabeld", "SoftMixUp", "SoftMixUpd", "GenMix", "GenMixd", "GENMIX_PARTNERS"]

GENMIX_PARTNERS = ("synthetic", "union")


def _restore(values: torch.Tensor, like) -> Any:
    """``values`` in the type (MetaTensor with its metadata, tensor or ndarray) of ``like``."""
    return convert_to_dst_type(values, dst=like, dtype=values.dtype)[0]


def _draw_apply(transform: RandomizableTransform) -> None:
    """MONAI's ``_do_transform`` draw, skipped at ``prob == 1``: mixing every batch then consumes exactly the random
    numbers it did before ``prob`` existed, so earlier runs' mixing streams are unchanged."""
    transform._do_transform = True if transform.prob >= 1.0 else bool(transform.R.rand() < transform.prob)


def _init_dict_transform(transform, keys, allow_missing_keys: bool, prob: float, label_keys: tuple) -> None:
    """The ``MapTransform`` / ``RandomizableTransform`` set-up shared by the dictionary transforms, with their label
    keys (``label_key`` is the first, the one mixed)."""
    MapTransform.__init__(transform, keys, allow_missing_keys)
    RandomizableTransform.__init__(transform, prob)
    transform.label_keys = label_keys
    transform.label_key = label_keys[0]


def _label_keys(label_keys, label_key, where: str) -> tuple:
    """``label_keys`` (MONAI ``CutMixd``'s name); ``label_key`` is the earlier name, accepted for a deprecation period."""
    if label_key is not None:
        if label_keys is not None:
            raise ValueError(f"{where}: give label_keys, not also the deprecated label_key")
        import warnings

        warnings.warn(f"{where}: label_key is deprecated; use label_keys", DeprecationWarning, stacklevel=3)
        label_keys = label_key
    keys = ensure_tuple(label_keys if label_keys is not None else "label")
    if len(keys) != 1:
        raise ValueError(f"{where}: label_keys names the one label key of the batch, got {keys}")
    return keys


class ToSoftLabel(Transform):
    """Class index (or indices) -> one-hot float32 ``[..., K]``; soft labels pass through after a simplex check.

    Args:
        num_classes: K (>= 2), required: a label alone cannot say how many classes there are.

    Why not MONAI's ``AsDiscrete(to_onehot=K)``: it one-hots a channel-first index map and would one-hot a soft
    label's argmax; this transform also accepts ``[B]`` batches of indices and passes soft labels through after
    checking they lie on the simplex (:func:`gemix_monai.mixing.to_soft_label`; the equality on indices is tested).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_classes: int):
        to_soft_label(0, num_classes)  # validates num_classes now rather than at the first item
        self.num_classes = int(num_classes)

    def __call__(self, label):
        return to_soft_label(label, self.num_classes)


class ToSoftLabeld(MapTransform):
    """Dictionary form of :class:`ToSoftLabel`.

    Args:
        keys: the label keys to convert.
        num_classes: K, required (no default: a wrong guess would silently one-hot into the wrong size).
        allow_missing_keys: skip keys that are absent instead of raising ``KeyError``.
    """

    backend = ToSoftLabel.backend

    def __init__(
        self, keys: KeysCollection = "label", num_classes: int | None = None, allow_missing_keys: bool = False
    ):
        if num_classes is None:
            raise ValueError("ToSoftLabeld: num_classes is required (the number of classes K of the labels)")
        super().__init__(keys, allow_missing_keys)
        self.converter = ToSoftLabel(num_classes)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class SoftMixUp(RandomizableTransform):
    """Pixel mixup that accepts ``[B, K]`` soft labels (MONAI's ``MixUp`` averages labels as given) and any batch size.

    Sample b becomes ``lam_b * x_b + (1 - lam_b) * x_perm(b)`` with ``lam_b ~ Beta(alpha, alpha)``; labels
    likewise (docs/maths.md §3).

    Args:
        alpha: Beta(alpha, alpha) parameter of lambda, > 0.
        num_classes: K; needed when labels come as class indices ``[B]`` (soft labels ``[B, K]`` carry it).
        prob: probability that a batch is mixed (otherwise it passes unchanged, labels made soft).

    Call: ``images, labels = SoftMixUp(alpha=0.4)(images, labels)`` with images ``[B, C, ...]`` (tensor,
    ``MetaTensor`` or NumPy) and labels ``[B, K]`` or ``[B]``; returns the images in their input type and float32
    soft labels ``[B, K]`` (a tensor, or NumPy for NumPy labels).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, alpha: float = 0.4, num_classes: int | None = None, prob: float = 1.0):
        RandomizableTransform.__init__(self, prob)
        sample_mixup_lambda(0, alpha)  # validates alpha
        self.alpha = float(alpha)
        self.num_classes = num_classes
        self._lam: torch.Tensor | None = None
        self._perm: torch.Tensor | None = None

    def randomize(self, batch_size: int) -> None:
        _draw_apply(self)
        self._lam = sample_mixup_lambda(batch_size, self.alpha, self.R)
        self._perm = sample_permutation(batch_size, self.R)

    def __call__(self, images, labels, randomize: bool = True):
        x = plain_tensor(images)
        y = to_soft_label(plain_tensor(labels), self.num_classes, name="labels", batched=True)
        if y.ndim != 2 or x.ndim < 2 or x.shape[0] != y.shape[0]:
            raise ValueError(
                "SoftMixUp works on batches: images [B, C, ...] and labels [B, K] or [B], "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if randomize or self._lam is None:
            self.randomize(x.shape[0])
        if self._lam.shape[0] != x.shape[0]:
            raise ValueError(
                f"randomize=False reuses parameters drawn for a batch of {self._lam.shape[0]}, got a batch of {x.shape[0]}"
            )
        if not self._do_transform:
            return images, _restore(y, labels) if isinstance(labels, np.ndarray) else y
        perm = self._perm.to(x.device)
        mx, my = blend(x, y, x[perm], y[perm.to(y.device)], self._lam)
        return _restore(mx, images), _restore(my, labels) if isinstance(labels, np.ndarray) else my


class SoftMixUpd(MapTransform, RandomizableTransform):
    """Dictionary form of :class:`SoftMixUp` for collated batches, keyed like MONAI's ``CutMixd``.

    Args:
        keys: the image keys (images, masks): every one is mixed with the same lambda and permutation.
        label_keys: the one key holding the labels, mixed with them (``[B, K]`` or ``[B]``; default ``"label"``).
        alpha / num_classes / prob: as :class:`SoftMixUp`.
        allow_missing_keys: skip image keys that are absent.
        label_key: the earlier name of ``label_keys`` (deprecated).
    """

    backend = SoftMixUp.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_keys: KeysCollection | None = None,
        alpha: float = 0.4,
        num_classes: int | None = None,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        label_key: str | None = None,
    ):
        _init_dict_transform(self, keys, allow_missing_keys, prob, _label_keys(label_keys, label_key, "SoftMixUpd"))
        self.mixer = SoftMixUp(alpha, num_classes, prob)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "SoftMixUpd":
        super().set_random_state(seed, state)
        self.mixer.set_random_state(state=self.R)
        return self

    def randomize(self, batch_size: int) -> None:
        self.mixer.randomize(batch_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.label_key not in d:
            raise KeyError(f"SoftMixUpd: label key {self.label_key!r} not in the batch (keys: {sorted(map(str, d))})")
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        labels = to_soft_label(
            plain_tensor(d[self.label_key]), self.mixer.num_classes, name=self.label_key, batched=True
        )
        if labels.ndim != 2:
            raise ValueError(
                f"SoftMixUpd works on collated batches: {self.label_key!r} must be [B, K] or [B], got shape {tuple(labels.shape)}"
            )
        self.randomize(labels.shape[0])
        mixed_labels = None
        for key in keys:
            d[key], mixed_labels = self.mixer(d[key], labels, randomize=False)
        d[self.label_key] = (
            _restore(mixed_labels, data[self.label_key])
            if isinstance(data[self.label_key], np.ndarray)
            else mixed_labels
        )
        return d


class GenMix(RandomizableTransform):
    """GenMix (docs/maths.md §3): blend a real pair with a synthetic partner, ``lam ~ Beta(alpha, 1)`` weighting the partner.

    ``x = lam * x_s + (1 - lam) * x_r``, ``y = lam * y_s + (1 - lam) * y_r``.

    Args:
        alpha: Beta(alpha, 1) parameter (0.3: the partner usually has a small weight).
        partner: ``"synthetic"`` — real sample b is mixed with synthetic sample b; ``"union"`` — with a sample
            drawn uniformly from the union of the real and the synthetic batch (batches only).
        num_classes: needed only when labels come as class indices.
        prob: probability that a call mixes (otherwise the real pair passes unchanged, labels made soft).

    Call: ``images, labels = GenMix()(real_images, real_labels, synthetic_images, synthetic_labels)``.
    A batch is ``[B, C, ...]`` with ``[B, K]`` soft labels or ``[B]`` integer class indices; a single sample is
    ``[C, ...]`` with a ``[K]`` soft label (so a 1-D float label vector is read as one soft label). Tensors,
    ``MetaTensor`` s and NumPy arrays are accepted; the images come back in the real images' type.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, alpha: float = 0.3, partner: str = "synthetic", num_classes: int | None = None, prob: float = 1.0
    ):
        RandomizableTransform.__init__(self, prob)
        sample_genmix_lambda(0, alpha)  # validates alpha
        if partner not in GENMIX_PARTNERS:
            raise ValueError(f"partner must be one of {GENMIX_PARTNERS}, got {partner!r}")
        self.alpha = float(alpha)
        self.partner = partner
        self.num_classes = num_classes
        self._lam: torch.Tensor | None = None
        self._partner_index: torch.Tensor | None = None

    def randomize(self, batch_size: int | None) -> None:
        """Draw lambda (and, for ``partner="union"``, each sample's partner); ``batch_size=None`` for one sample."""
        _draw_apply(self)
        n = 1 if batch_size is None else batch_size
        self._lam = sample_genmix_lambda(n, self.alpha, self.R)
        if batch_size is None:
            self._lam = self._lam[0]
        # Partner indices 0..B-1 name synthetic samples, B..2B-1 real ones.
        self._partner_index = (
            torch.arange(n)
            if self.partner == "synthetic"
            else torch.from_numpy(self.R.randint(0, 2 * n, size=n).astype(np.int64))
        )

    def __call__(self, real_images, real_labels, synthetic_images, synthetic_labels, randomize: bool = True):
        xr, xs = plain_tensor(real_images), plain_tensor(synthetic_images)
        yr = to_soft_label(plain_tensor(real_labels), self.num_classes, name="real_labels")
        ys = to_soft_label(plain_tensor(synthetic_labels), self.num_classes, name="synthetic_labels").to(yr.device)
        if yr.shape != ys.shape:
            raise ValueError(
                f"real and synthetic labels must have the same shape, got {tuple(yr.shape)} and {tuple(ys.shape)}"
            )
        if xr.shape != xs.shape:
            raise ValueError(
                f"real and synthetic images must have the same shape, got {tuple(xr.shape)} and {tuple(xs.shape)}"
            )
        batched = yr.ndim == 2
        if not batched and self.partner == "union":
            raise ValueError(
                "partner='union' draws partners from a batch; call GenMix on batches [B, C, ...] with labels [B, K]"
            )
        if batched and xr.shape[0] != yr.shape[0]:
            raise ValueError(f"images and labels must share the batch size, got {xr.shape[0]} and {yr.shape[0]}")
        if randomize or self._lam is None:
            self.randomize(yr.shape[0] if batched else None)
        if batched and (self._lam.ndim != 1 or self._lam.shape[0] != yr.shape[0]):
            raise ValueError(
                f"randomize=False reuses parameters drawn for another batch size; got a batch of {yr.shape[0]}"
            )
        as_labels = (lambda y: _restore(y, real_labels)) if isinstance(real_labels, np.ndarray) else (lambda y: y)
        if not self._do_transform:
            return real_images, as_labels(yr)
        xs = xs.to(device=xr.device, dtype=xr.dtype if torch.is_floating_point(xr) else torch.float32)
        if self.partner == "union":
            idx = self._partner_index.to(xr.device)
            xs = torch.cat([xs, xr.to(xs.dtype)])[idx]
            ys = torch.cat([ys, yr])[idx.to(yr.device)]
        mx, my = blend(xs, ys, xr, yr, self._lam)
        return _restore(mx.to(xr.dtype) if torch.is_floating_point(xr) else mx, real_images), as_labels(my)


class GenMixd(MapTransform, RandomizableTransform):
    """Dictionary form of :class:`GenMix`, keyed like MONAI's ``CutMixd``.

    The synthetic partner comes from ``synthetic`` (a :class:`~gemix_monai.transforms.SyntheticSource` drawing
    a fresh batch on the generator's device at every call, or a pool's
    :class:`~gemix_monai.transforms.pool.PoolSource`; batches only, one image key) or, when ``synthetic`` is
    ``None``, from the data itself under ``synthetic_prefix + key`` (e.g. ``"synthetic_image"``,
    ``"synthetic_label"``), which works per sample too.

    Args:
        keys: the image key(s) to mix (one with a ``synthetic`` source).
        label_keys: the one label key (default ``"label"``).
        alpha / partner / num_classes / prob: as :class:`GenMix`.
        synthetic: the partner source, or ``None`` (partners in the data under ``synthetic_prefix``).
        synthetic_prefix: prefix of the partner keys in the data.
        label_key: the earlier name of ``label_keys`` (deprecated).
        allow_missing_keys: skip image keys that are absent.
    """

    backend = GenMix.backend

    def __init__(
        self,
        keys: KeysCollection = "image",
        label_keys: KeysCollection | None = None,
        alpha: float = 0.3,
        partner: str = "synthetic",
        synthetic=None,
        synthetic_prefix: str = "synthetic_",
        num_classes: int | None = None,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
        label_key: str | None = None,
    ):
        _init_dict_transform(self, keys, allow_missing_keys, prob, _label_keys(label_keys, label_key, "GenMixd"))
        self.synthetic = synthetic
        self.synthetic_prefix = synthetic_prefix
        self.mixer = GenMix(alpha, partner, num_classes, prob)
        if synthetic is not None and len(self.keys) != 1:
            raise ValueError(
                f"a synthetic source generates one image per sample, so keys must name one image key, got {self.keys}"
            )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> "GenMixd":
        super().set_random_state(seed, state)
        self.mixer.set_random_state(state=self.R)
        return self

    def randomize(self, batch_size: int | None) -> None:
        self.mixer.randomize(batch_size)

    def _synthetic_pairs(self, d, keys, labels) -> tuple[dict, torch.Tensor]:
        if self.synthetic is not None:
            if labels.ndim != 2:
                raise ValueError("GenMixd with a synthetic source works on collated batches (labels [B, K])")
            if labels.shape[-1] != self.synthetic.num_classes:
                raise ValueError(
                    f"{self.label_key}: {labels.shape[-1]} classes, but the synthetic source has {self.synthetic.num_classes}"
                )
            seed = int(self.R.randint(0, 2**31 - 1))
            images, syn_labels = self.synthetic.draw(labels.shape[0], rng=seed)
            return {keys[0]: images}, syn_labels
        out = {}
        for key in keys:
            skey = f"{self.synthetic_prefix}{key}"
            if skey not in d:
                raise KeyError(
                    f"GenMixd: no synthetic partner for {key!r}: key {skey!r} missing and no synthetic source given"
                )
            out[key] = d[skey]
        lkey = f"{self.synthetic_prefix}{self.label_key}"
        if lkey not in d:
            raise KeyError(f"GenMixd: synthetic label key {lkey!r} missing and no synthetic source given")
        return out, to_soft_label(d[lkey], self.mixer.num_classes, name=lkey)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.label_key not in d:
            raise KeyError(f"GenMixd: label key {self.label_key!r} not in the data (keys: {sorted(map(str, d))})")
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        labels = to_soft_label(plain_tensor(d[self.label_key]), self.mixer.num_classes, name=self.label_key)
        n = labels.shape[0] if labels.ndim == 2 else None
        if self.mixer.prob < 1.0:
            # decide first: a batch left unmixed costs no generator pass (at prob 1 the order of the random draws
            # stays what it was before prob existed, partners first)
            self.randomize(n)
            if not self.mixer._do_transform:
                d[self.label_key] = (
                    _restore(labels, data[self.label_key]) if isinstance(data[self.label_key], np.ndarray) else labels
                )
                return d
            syn_images, syn_labels = self._synthetic_pairs(d, keys, labels)
        else:
            syn_images, syn_labels = self._synthetic_pairs(d, keys, labels)
            self.randomize(n)
        mixed_labels = None
        for key in keys:
            d[key], mixed_labels = self.mixer(d[key], labels, syn_images[key], syn_labels, randomize=False)
        # labels come back as the type they came in (as SoftMixUpd's)
        d[self.label_key] = (
            _restore(mixed_labels, data[self.label_key])
            if isinstance(data[self.label_key], np.ndarray)
            else mixed_labels
        )
        return d
