"""Image–mask pairs as training data for the segmentation strategies (docs/maths.md §7, docs/segmentation.md).

Pairs travel as one stacked tensor (image channels, then the mask mapped to [-1, 1]:
``gemix_monai.data.masks.stack_image_mask``) so that every strategy of :mod:`gemix_monai.transforms.strategies`
applies to them unchanged: GenMix blends the stack, i.e. image *and* mask with the same λ, and the synthetic pairs
of a generator trained on ``C + M`` channels are items of the same form. :class:`PairDataset` stacks the real
pairs, :class:`BinarisedMaskGenerator` the synthetic ones, :func:`build_segmentation_strategy` builds the strategy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.data import Dataset

from gemix_monai.utils import plain_tensor

from .strategies import build_strategy
from .synthetic import load_generator

__all__ = [
    "SEGMENTATION_STRATEGIES",
    "NOT_FOR_MASKS",
    "STRATEGY_KEYWORDS",
    "DEFAULT_SYNTHETIC_RATIO",
    "PairDataset",
    "BinarisedMaskGenerator",
    "check_segmentation_strategy",
    "check_pair_generator",
    "build_segmentation_strategy",
    "pair_channels",
]

#: The strategies offered for image–mask pairs (docs/maths.md §7).
SEGMENTATION_STRATEGIES = ("real", "real+synthetic", "genmix", "gemix")
#: Classifier strategies refused for masks, and why (the error names the reason).
NOT_FOR_MASKS = {
    "pixel_mixup": "it blends two real images whose lesions sit in different places; the blended mask marks two "
    "half-weight lesions, a target no image of the data has (issue 15 offers only the generative variants)",
    "synthetic_only": "a segmenter trained without any real pair has no real anatomy to calibrate against; "
    "compare real+synthetic at a high synthetic_ratio instead",
    "gemix_code": "its label sampler only changes the class condition, which the segmenter never sees; use gemix",
    "softmax_t": "its label sampler only changes the class condition, which the segmenter never sees; use gemix",
}
#: ``build_strategy`` keyword arguments that apply to pairs (teacher labels are a classifier's and do not).
STRATEGY_KEYWORDS = (
    "synthetic_ratio",
    "genmix_alpha",
    "genmix_partner",
    "sampler",
    "sampler_kwargs",
    "class_weights",
    "truncation_psi",
    "generation_batch_size",
)
#: Synthetic pairs per real pair unless ``strategy_kwargs`` says otherwise (the classifier's default is 2.0).
DEFAULT_SYNTHETIC_RATIO = 1.0


def check_segmentation_strategy(strategy: str) -> str:
    """``strategy`` when it is offered for masks, else a ``ValueError`` saying why not (or what exists)."""
    if strategy in SEGMENTATION_STRATEGIES:
        return strategy
    if strategy in NOT_FOR_MASKS:
        raise ValueError(
            f"strategy {strategy!r} is not offered for segmentation: {NOT_FOR_MASKS[strategy]}; "
            f"expected one of {list(SEGMENTATION_STRATEGIES)}"
        )
    raise ValueError(f"unknown segmentation strategy {strategy!r}; expected one of {list(SEGMENTATION_STRATEGIES)}")


def _item_tensor(item: Mapping, key: str, index: int, where: str) -> torch.Tensor:
    if not isinstance(item, Mapping) or key not in item:
        keys = sorted(map(str, item)) if isinstance(item, Mapping) else type(item).__name__
        hint = (
            ": segmentation needs a mask per image (a datalist with 'mask' entries, docs/segmentation.md)"
            if key == "mask"
            else ""
        )
        raise KeyError(f"{where} item {index} has no {key!r} (keys: {keys}){hint}")
    return torch.as_tensor(plain_tensor(item[key])).float()


def _check_pair(image: torch.Tensor, mask: torch.Tensor, index: int, where: str) -> None:
    if image.ndim != 3 or mask.ndim != 3 or image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"{where} item {index}: image {tuple(image.shape)} and mask {tuple(mask.shape)} must be [C, H, W] and "
            "[M, H, W] with the same H, W"
        )
    if mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)]
        raise ValueError(
            f"{where} item {index}: mask values must be 0 or 1, found {float(bad.min()):g}..{float(bad.max()):g}"
        )


class PairDataset(Dataset):
    """Real pairs as stacked items ``{"image": [C + M, H, W] in [-1, 1], "label": int}`` (``stack_image_mask``).

    ``real`` yields ``{"image": [C, H, W], "mask": [M, H, W] in {0, 1}, "label": int}``; each item is checked
    (shapes, binary mask) when read. ``class_names``, ``contract`` and ``data`` of ``real`` are passed through.
    """

    def __init__(self, real: Dataset, where: str = "train_data") -> None:
        self.real, self.where = real, where
        self.class_names = getattr(real, "class_names", None)
        self.contract = getattr(real, "contract", None)
        self.data = getattr(real, "data", None)

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, index: int) -> dict:
        from gemix_monai.data.masks import stack_image_mask

        item = self.real[index]
        image = _item_tensor(item, "image", index, self.where)
        mask = _item_tensor(item, "mask", index, self.where)
        _check_pair(image, mask, index, self.where)
        if "label" not in item:
            raise KeyError(f"{self.where} item {index} has no 'label' (the generator's class condition)")
        return {"image": stack_image_mask(image, mask), "label": item["label"]}


class BinarisedMaskGenerator:
    """A pair generator whose mask channels are binarised (``binarise_masks``) and re-stacked to {-1, +1}.

    Wraps a generator of ``C + M`` channels (the ``ConditionalGenerator`` contract); ``generate`` returns
    ``[B, C + M, R, R]`` whose last ``M`` channels are exactly -1 or +1, so ``real+synthetic``/``gemix`` train on
    binary synthetic masks and ``genmix`` blends a binary synthetic mask with a real one (docs/maths.md §7).
    """

    def __init__(self, generator, mask_channels: int) -> None:
        self.inner = generator
        self.mask_channels = int(mask_channels)
        for name in ("c_dim", "z_dim", "img_resolution", "img_channels"):
            setattr(self, name, getattr(generator, name))
        self.class_names = getattr(generator, "class_names", None)
        self.contract = getattr(generator, "contract", None)
        self.family = getattr(generator, "family", "stylegan2")

    @property
    def num_classes(self) -> int:
        return int(self.c_dim)

    @property
    def image_shape(self) -> tuple:
        return (int(self.img_channels), int(self.img_resolution), int(self.img_resolution))

    @torch.no_grad()
    def generate(self, soft_labels, seed: int | None = None, **options) -> torch.Tensor:
        from gemix_monai.data.masks import binarise_masks, split_image_mask, stack_image_mask

        stacked = self.inner.generate(soft_labels, seed=seed, **options)
        image, soft = split_image_mask(stacked, self.mask_channels)
        return stack_image_mask(image, binarise_masks(soft))


def check_pair_generator(generator, image_channels: int, mask_channels: int, where: str = "generator"):
    """The network behind ``generator`` that makes stacked pairs ``[B, C + M, R, R]``, else a ``ValueError``.

    Accepts the image view of a pair generator (``gemix_monai.generators.load_generator`` on a checkpoint trained
    with masks: ``img_channels = C``, ``mask_channels = M``, the network as ``.network``) or a raw network of
    ``C + M`` channels. A generator trained on images alone is refused, naming what the data needs.
    """
    g = load_generator(generator)
    stated = getattr(g, "mask_channels", None)
    network = getattr(g, "network", None) if stated else None
    if network is not None:  # the image view of a pair generator: its network makes the stacks
        ok = int(stated) == mask_channels and int(g.img_channels) == image_channels
        ok = ok and int(getattr(network, "img_channels", -1)) == image_channels + mask_channels
        found = f"{g.img_channels} image + {stated} mask channel(s)"
    else:
        network = g
        channels = int(getattr(g, "img_channels", -1))
        ok = channels == image_channels + mask_channels and stated in (None, mask_channels)
        found = f"{channels} channel(s)" + (f" ({stated} of them mask channels)" if stated is not None else "")
    if not ok:
        raise ValueError(
            f"{where} makes {found}; the segmentation data needs image-mask pairs of {image_channels} image + "
            f"{mask_channels} mask channel(s) = {image_channels + mask_channels}: train the generator on the data "
            "with masks (gemix-monai train-gan on a datalist with masks, docs/segmentation.md)"
        )
    return network


def build_segmentation_strategy(
    name: str,
    real_dataset: Dataset,
    num_classes: int,
    generator=None,
    *,
    image_channels: int,
    mask_channels: int,
    seed: int = 0,
    device=None,
    **strategy_kwargs,
):
    """A :class:`~gemix_monai.transforms.strategies.Strategy` over stacked pairs (docs/maths.md §7).

    ``real_dataset`` yields ``{"image", "mask", "label"}``; the strategy's dataset yields stacked items (real
    ones through :class:`PairDataset`, synthetic ones from :class:`BinarisedMaskGenerator`) and its batch
    transform (``genmix``) blends whole stacks. ``strategy_kwargs``: :data:`STRATEGY_KEYWORDS` only.
    """
    check_segmentation_strategy(name)
    unknown = sorted(set(strategy_kwargs) - set(STRATEGY_KEYWORDS))
    if unknown:
        raise ValueError(
            f"strategy_kwargs {unknown} do not apply to segmentation strategies; expected some of {list(STRATEGY_KEYWORDS)}"
        )
    pairs = real_dataset if isinstance(real_dataset, PairDataset) else PairDataset(real_dataset)
    if name == "real":
        if strategy_kwargs:
            raise ValueError(
                f"strategy 'real' uses no generator and takes no strategy_kwargs, got {sorted(strategy_kwargs)}"
            )
        return build_strategy("real", pairs, num_classes, seed=seed)
    if generator is None:
        raise ValueError(f"strategy {name!r} needs a generator of image-mask pairs (checkpoint path or object)")
    g = check_pair_generator(load_generator(generator, device), image_channels, mask_channels)
    if name in ("real+synthetic", "gemix"):
        strategy_kwargs.setdefault("synthetic_ratio", DEFAULT_SYNTHETIC_RATIO)
    strat = build_strategy(
        name, pairs, num_classes, BinarisedMaskGenerator(g, mask_channels), seed=seed, device=device, **strategy_kwargs
    )
    strat.info["mask_channels"] = mask_channels
    return strat


def pair_channels(dataset: Dataset, name: str) -> tuple[int, int, int]:
    """``(image channels C, mask channels M, image size)`` of the first item, checked as a pair."""
    if len(dataset) == 0:
        raise ValueError(f"{name} is empty")
    item = dataset[0]
    image, mask = _item_tensor(item, "image", 0, name), _item_tensor(item, "mask", 0, name)
    _check_pair(image, mask, 0, name)
    return int(image.shape[0]), int(mask.shape[0]), int(image.shape[-1])
