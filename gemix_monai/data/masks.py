"""The image–mask pair convention shared by the data layer, the generators and the segmenter.

One rule set, used everywhere (docs/segmentation.md; the maths in docs/maths.md §6):

* **Masks in the stream** are float32 ``[M, S, S]`` with values in {0, 1}. ``M = 1`` for a binary mask
  (one structure); a label map with integer labels ``0..M`` (0 = background) becomes ``M`` one-hot
  channels, channel ``m − 1`` marking label ``m`` (:func:`label_map_to_channels`). Background is never a
  channel.
* **Pairs for a generator** are the image channels followed by the mask channels, the mask mapped
  {0, 1} → {−1, +1} so every channel lives in the generator's range [−1, 1] (:func:`stack_image_mask`).
* **Back from a generator**, :func:`split_image_mask` gives the image and a *soft* mask in [0, 1]
  (``(v + 1) / 2``, clipped) and :func:`binarise_masks` turns it into {0, 1}: a pixel belongs to the
  channel with the largest soft value when that value exceeds 0.5, else to the background. For ``M = 1``
  this is ``soft > 0.5``; for ``M > 1`` it is the argmax over ``[1 − max_m soft_m, soft_1, …, soft_M]``
  (background first, so it wins ties), which makes the channels mutually exclusive like the one-hot
  masks the generator was trained on.

Every function accepts a single item (``[C, S, S]``) or a batch (``[B, C, S, S]``): channels are axis −3.

:class:`ImageMaskPairs` is the view a generator trains on: each item's image and mask stacked as above.
"""

from __future__ import annotations

import torch

__all__ = [
    "MASK_THRESHOLD",
    "stack_image_mask",
    "split_image_mask",
    "binarise_masks",
    "label_map_to_channels",
    "channels_to_label_map",
    "ImageMaskPairs",
    "dataset_mask_channels",
    "paired_for_training",
    "trained_contract",
]

#: A soft mask value above this is foreground (docs/maths.md §6).
MASK_THRESHOLD = 0.5


def _check_channels_first(x: torch.Tensor, name: str) -> None:
    if x.ndim not in (3, 4):
        raise ValueError(f"{name} must be [C, S, S] or [B, C, S, S], got shape {tuple(x.shape)}")


def stack_image_mask(image, mask) -> torch.Tensor:
    """``[image channels…, mask channels…]`` with the mask mapped {0, 1} → {−1, +1} (soft masks linearly).

    Args:
        image: ``[C, S, S]`` or ``[B, C, S, S]`` in [−1, 1].
        mask: ``[M, S, S]`` or ``[B, M, S, S]`` in [0, 1] (binary or one-hot, as the data layer yields it).

    Returns:
        ``[C + M, S, S]`` (or batched) float tensor in [−1, 1], on the image's device and dtype.
    """
    image = torch.as_tensor(image)
    mask = torch.as_tensor(mask)
    _check_channels_first(image, "image")
    _check_channels_first(mask, "mask")
    if image.ndim != mask.ndim or image.shape[:-3] != mask.shape[:-3] or image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(
            f"image {tuple(image.shape)} and mask {tuple(mask.shape)} must agree in batch and spatial size "
            "(channels on axis -3)"
        )
    if mask.numel() and (float(mask.min()) < 0.0 or float(mask.max()) > 1.0):
        raise ValueError(f"mask values must lie in [0, 1], found {float(mask.min()):g}..{float(mask.max()):g}")
    mask = mask.to(device=image.device, dtype=image.dtype if image.is_floating_point() else torch.float32)
    return torch.cat([image.to(mask.dtype), mask * 2.0 - 1.0], dim=-3)


def split_image_mask(x, mask_channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inverse of :func:`stack_image_mask`: ``(image, soft_mask)``, the soft mask in [0, 1].

    Args:
        x: ``[C + M, S, S]`` or ``[B, C + M, S, S]`` (a generator's output, in [−1, 1]).
        mask_channels: ``M`` (the contract's ``Preprocessing.mask_channels``); 0 returns ``(x, None)``.
    """
    x = torch.as_tensor(x)
    _check_channels_first(x, "x")
    if isinstance(mask_channels, bool) or not isinstance(mask_channels, int) or mask_channels < 0:
        raise ValueError(f"mask_channels must be a non-negative integer, got {mask_channels!r}")
    if mask_channels == 0:
        return x, None
    channels = x.shape[-3]
    if channels <= mask_channels:
        raise ValueError(
            f"x has {channels} channels; with mask_channels={mask_channels} at least one image channel must remain"
        )
    image = x[..., : channels - mask_channels, :, :]
    soft = ((x[..., channels - mask_channels :, :, :].float() + 1.0) * 0.5).clamp(0.0, 1.0)
    return image, soft


def binarise_masks(soft_mask) -> torch.Tensor:
    """Soft masks in [0, 1] → float {0, 1} of the same shape, by the rule of the module docstring.

    ``M = 1``: ``soft > 0.5``. ``M > 1``: at most one channel is 1 per pixel — the largest, when it exceeds 0.5.
    """
    soft = torch.as_tensor(soft_mask)
    _check_channels_first(soft, "soft_mask")
    soft = soft.float()
    if soft.shape[-3] == 1:
        return (soft > MASK_THRESHOLD).float()
    best, index = soft.max(dim=-3, keepdim=True)
    # argmax over [1 − max, soft_1..soft_M] with background winning ties ⇔ foreground iff max > 0.5.
    onehot = torch.zeros_like(soft).scatter_(-3, index, 1.0)
    return onehot * (best > MASK_THRESHOLD).float()


def label_map_to_channels(label_map, mask_channels: int, where: str = "mask") -> torch.Tensor:
    """Integer label map ``[1, S, S]`` (or ``[S, S]``) with labels ``0..M`` → float32 ``[M, S, S]`` in {0, 1}.

    ``M = 1`` keeps a binary mask as it is; ``M > 1`` gives one channel per label ``1..M`` (one-hot without
    background, through MONAI's ``AsDiscrete(to_onehot=M + 1)``). A value that is not an integer in ``0..M``
    raises a ``ValueError`` naming ``where`` and the values found.
    """
    from monai.transforms import AsDiscrete

    labels = torch.as_tensor(label_map).float()
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3 or labels.shape[0] != 1:
        raise ValueError(f"{where}: a label map must be [1, S, S], got shape {tuple(labels.shape)}")
    if isinstance(mask_channels, bool) or not isinstance(mask_channels, int) or mask_channels < 1:
        raise ValueError(f"mask_channels must be a positive integer, got {mask_channels!r}")
    values = torch.unique(labels)
    bad = [v for v in values.tolist() if v != int(v) or not 0 <= v <= mask_channels]
    if bad:
        found = ", ".join(f"{v:g}" for v in values.tolist()[:10]) + (" …" if values.numel() > 10 else "")
        raise ValueError(f"{where}: mask values must be integers in 0..{mask_channels}, found {found}")
    if mask_channels == 1:
        return labels.to(torch.float32)
    onehot = AsDiscrete(to_onehot=mask_channels + 1)(labels)
    return torch.as_tensor(onehot)[1:].to(torch.float32)


def channels_to_label_map(mask) -> torch.Tensor:
    """Binary/one-hot ``[M, S, S]`` (or batched) in {0, 1} → integer label map ``[1, S, S]`` (uint8, 0 = background).

    The inverse of :func:`label_map_to_channels` on binarised masks, for writing mask files.
    """
    mask = torch.as_tensor(mask)
    _check_channels_first(mask, "mask")
    m = mask.shape[-3]
    weights = torch.arange(1, m + 1, dtype=torch.float32, device=mask.device).view(m, 1, 1)
    return (mask.float() * weights).amax(dim=-3, keepdim=True).round().to(torch.uint8)


def dataset_mask_channels(dataset) -> int:
    """``M`` recorded in a dataset's contract (``dataset.contract.preprocessing.mask_channels``); 0 without one."""
    contract = getattr(dataset, "contract", None)
    preprocessing = getattr(contract, "preprocessing", None)
    return int(getattr(preprocessing, "mask_channels", 0) or 0)


class ImageMaskPairs(torch.utils.data.Dataset):
    """Items ``{"image": [C + M, S, S] = stack_image_mask(image, mask), "label"}`` of a dataset whose items carry
    ``"mask"`` — what a generator trains on to learn image–mask pairs (docs/segmentation.md).

    Other attributes (``contract``, ``class_names``, ``labels``, ``data`` …) are the wrapped dataset's, so the
    generator records the data contract with its ``mask_channels``. An item without a mask, or with another
    number of mask channels than the contract's, raises naming its index.
    """

    def __init__(self, dataset, mask_channels: int | None = None):
        self.dataset = dataset
        self.mask_channels = dataset_mask_channels(dataset) if mask_channels is None else int(mask_channels)
        if self.mask_channels < 1:
            raise ValueError("ImageMaskPairs needs a dataset with masks (its contract records mask_channels=0)")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = self.dataset[index]
        if "mask" not in item:
            raise ValueError(
                f"item {index} has no 'mask' (keys {sorted(item)}); every item of a paired dataset needs one"
            )
        mask = torch.as_tensor(item["mask"]).as_subclass(torch.Tensor)
        if mask.shape[0] != self.mask_channels:
            raise ValueError(f"item {index}: mask has {mask.shape[0]} channels, the contract says {self.mask_channels}")
        image = torch.as_tensor(item["image"]).as_subclass(torch.Tensor).float()
        return {"image": stack_image_mask(image, mask), "label": item["label"]}

    def __getattr__(self, name):
        if name == "dataset":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def paired_for_training(train_data):
    """``train_data`` as a generator trains on it: an :class:`ImageMaskPairs` view when its contract records masks
    (``mask_channels > 0``; a ``DataLoader``'s dataset is used), else unchanged (docs/segmentation.md)."""
    if isinstance(train_data, ImageMaskPairs):
        return train_data
    dataset = train_data.dataset if isinstance(train_data, torch.utils.data.DataLoader) else train_data
    return ImageMaskPairs(dataset) if dataset_mask_channels(dataset) > 0 else train_data


def trained_contract(contract, train_data) -> dict | None:
    """The contract dict a generator trained on ``train_data`` records: the data's, with ``mask_channels`` kept only
    when it trains on :class:`ImageMaskPairs` (a generator fed the images of a dataset with masks makes images only,
    and must not claim masks; docs/segmentation.md). ``None`` without a contract."""
    if not hasattr(contract, "to_dict"):
        return None
    record = contract.to_dict()
    if not isinstance(train_data, ImageMaskPairs) and record.get("preprocessing", {}).get("mask_channels"):
        record["preprocessing"] = {**record["preprocessing"], "mask_channels": 0}
    return record
