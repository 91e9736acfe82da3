"""Classifier networks (2-D MONAI nets, randomly initialised), the soft-target cross-entropy loss, and the
classifier checkpoint (``model.pt`` + ``classifier.json``) read back into a network.

``build_classifier_network(name, in_channels, num_classes)``:

| name | network | parameters (1 channel, 3 classes) |
|---|---|---|
| ``tiny`` | :class:`TinyClassifier`: 3 strided ``Convolution`` blocks (8-16-32 channels), global average pool, linear | 6.1 k |
| ``resnet18`` / ``resnet50`` | ``monai.networks.nets.resnet18/50`` | 11.2 M / 23.5 M |
| ``densenet121`` | ``monai.networks.nets.DenseNet121`` | 7.0 M |
| ``efficientnet-b0`` | ``monai.networks.nets.EfficientNetBN("efficientnet-b0")`` | 4.0 M |

Nothing is downloaded (``pretrained=False``). ``FEATURE_LAYERS`` names, per network, the pooled
feature layer used by default for the t-SNE plot.

A trained classifier is two files in one folder: ``model.pt`` (a plain state dict, ``weights_only=True``) and
``classifier.json`` (``format: "gemix-classifier/1"``, ``network``, ``in_channels``, ``num_classes``,
``class_names``, ...; docs/design.md). :func:`load_classifier` rebuilds the network from them; it lives here, with
the networks, so that anything needing a trained classifier (the teacher labels of ``gemix_monai.transforms``,
the audits) reads it without the training engine.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.networks.blocks import Convolution
from torch import nn

from gemix_monai.utils import safe_torch_load

__all__ = [
    "CLASSIFIER_NETWORKS",
    "FEATURE_LAYERS",
    "CHECKPOINT_NAME",
    "CHECKPOINT_INFO_NAME",
    "CLASSIFIER_FORMAT",
    "TinyClassifier",
    "build_classifier_network",
    "network_name_of",
    "network_definition",
    "build_network_definition",
    "classifier_network",
    "check_checkpoint_fits",
    "describe_network",
    "SoftTargetCrossEntropy",
    "read_classifier_info",
    "load_classifier",
    "classifier_weights",
]

#: the trained network's weights and its description, side by side in one folder
CHECKPOINT_NAME = "model.pt"
CHECKPOINT_INFO_NAME = "classifier.json"
CLASSIFIER_FORMAT = "gemix-classifier/1"

CLASSIFIER_NETWORKS = ("tiny", "resnet18", "resnet50", "densenet121", "efficientnet-b0")
FEATURE_LAYERS = {
    "tiny": "pool",
    "resnet18": "avgpool",
    "resnet50": "avgpool",
    "densenet121": "class_layers.pool",
    "efficientnet-b0": "_avg_pooling",
}


class TinyClassifier(nn.Module):
    """A small CNN for CPU demos and tests, any input size: strided conv blocks, global pool, linear.

    Modules: ``features`` (the conv blocks), ``pool`` (global average, output ``[B, C_last]``), ``fc``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, channels: Sequence[int] = (8, 16, 32), spatial_dims: int = 2
    ):
        super().__init__()
        blocks, c_in = [], in_channels
        for c_out in channels:
            blocks.append(Convolution(spatial_dims, c_in, c_out, strides=2, kernel_size=3, act="PRELU", norm="BATCH"))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1) if spatial_dims == 2 else nn.AdaptiveAvgPool3d(1), nn.Flatten()
        )
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


def build_classifier_network(
    name: str, in_channels: int, num_classes: int, spatial_dims: int = 2, **kwargs
) -> nn.Module:
    """A randomly initialised classifier returning logits ``[B, num_classes]`` (see the module table)."""
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if name == "tiny":
        return TinyClassifier(in_channels, num_classes, spatial_dims=spatial_dims, **kwargs)
    from monai.networks import nets

    if name in ("resnet18", "resnet50"):
        return getattr(nets, name)(
            pretrained=False, spatial_dims=spatial_dims, n_input_channels=in_channels, num_classes=num_classes, **kwargs
        )
    if name == "densenet121":
        return nets.DenseNet121(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, pretrained=False, **kwargs
        )
    if name == "efficientnet-b0":
        return nets.EfficientNetBN(
            "efficientnet-b0",
            pretrained=False,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            num_classes=num_classes,
            **kwargs,
        )
    raise ValueError(f"unknown network {name!r}; expected one of {list(CLASSIFIER_NETWORKS)}")


class SoftTargetCrossEntropy(nn.CrossEntropyLoss):
    """PyTorch's ``CrossEntropyLoss`` (mean over the batch), taking soft targets ``[B, K]`` on the simplex or class
    indices ``[B]`` / ``[B, 1]``: ``mean_b( -sum_k y[b, k] * log_softmax(logits)[b, k] )``.

    The loss itself is PyTorch's (probability targets since 1.10; equal to it: tested). This subclass only checks
    the targets first, because PyTorch takes any float ``[B, K]`` as probabilities: a label row summing to 2 would
    silently count twice, a negative entry would reward the wrong class. Logits are promoted to float32 (under
    autocast too: log-probabilities of rare classes underflow in fp16).
    """

    def __init__(self, atol: float = 1e-3):
        super().__init__(reduction="mean")
        self.atol = atol

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be [B, K], got shape {tuple(logits.shape)}")
        b, k = logits.shape
        target = torch.as_tensor(target, device=logits.device)
        if target.ndim == 2 and target.shape[1] == 1 and k > 1 and not target.is_floating_point():
            target = target[:, 0]
        if target.ndim == 1:
            if target.is_floating_point() and not bool((target == target.round()).all()):
                raise ValueError("target of shape [B] must hold integer class indices")
            idx = target.long()
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
                raise ValueError(f"target has class index out of range 0..{k - 1}")
            return super().forward(logits.float(), idx)
        if target.shape != (b, k):
            raise ValueError(
                f"target must be [B, K] = [{b}, {k}] soft labels or [B] indices, got {tuple(target.shape)}"
            )
        target = target.float()
        sums = target.detach().sum(dim=1)
        if bool((target.detach() < -self.atol).any()) or bool(((sums - 1).abs() > self.atol).any()):
            raise ValueError("soft targets must be on the probability simplex (non-negative, rows summing to 1)")
        return super().forward(logits.float(), target)


def network_name_of(network: nn.Module, name: str | None, build=None) -> str | None:
    """``name`` when ``build(name, in_channels, out_channels)`` (default :func:`build_classifier_network`) makes a
    network of ``network``'s class and parameter shapes, so that the name alone rebuilds it; else ``None`` (a
    network of the user's own, e.g. a bundle's ``network_def`` override: its checkpoint is loaded by the caller)."""
    build = build or build_classifier_network
    state = network.state_dict()
    first = next((v for v in state.values() if v.ndim == 4), None)
    last = next((v for v in reversed(list(state.values())) if v.ndim >= 1), None)
    if name is None or first is None or last is None:
        return None
    try:
        candidate = build(name, int(first.shape[1]), int(last.shape[0]))
    except (ValueError, RuntimeError, TypeError):
        return None
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    same = type(candidate) is type(network) and shapes == {k: tuple(v.shape) for k, v in candidate.state_dict().items()}
    return name if same else None


#: Constructor parameters whose value a network's weights show: the spatial dimensions (a convolution kernel's rank),
#: the input channels (the first convolution) and the classes (the last layer), under the names MONAI's nets use.
_SPATIAL_ARGS = ("spatial_dims", "dimensions")
_IN_ARGS = ("in_channels", "n_input_channels", "in_chns", "in_channel")
_OUT_ARGS = ("out_channels", "num_classes", "classes", "out_chns", "n_classes")


def _shapes(network: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}


def network_definition(network: nn.Module) -> dict | None:
    """A literal bundle definition that rebuilds ``network`` (``{"_target_": "monai.networks.nets.densenet.DenseNet121",
    "spatial_dims": 2, "in_channels": 1, "out_channels": 3}``), or ``None``.

    The constructor's required parameters are filled from what the weights show (:data:`_SPATIAL_ARGS`,
    :data:`_IN_ARGS`, :data:`_OUT_ARGS`), the others keep their defaults; the definition is returned only when the
    network it builds has ``network``'s class and exactly its parameter names and shapes. So a MONAI net given to a
    bundle as ``network_def`` with its required arguments is recorded in ``classifier.json``; one built with
    non-default options (another ``init_features``, say) is not — its weights would not fit the rebuilt network.
    """
    cls = type(network)
    state = network.state_dict()
    convs = [v for v in state.values() if v.ndim >= 3]
    last = next((v for v in reversed(list(state.values())) if v.ndim >= 1), None)
    if not convs or last is None:
        return None
    shown = {
        **dict.fromkeys(_SPATIAL_ARGS, convs[0].ndim - 2),
        **dict.fromkeys(_IN_ARGS, int(convs[0].shape[1])),
        **dict.fromkeys(_OUT_ARGS, int(last.shape[0])),
    }
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    kwargs = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in shown:
            kwargs[p.name] = shown[p.name]
        elif p.default is inspect.Parameter.empty:
            return None  # a required argument the weights do not show
    # only what the weights show and the constructor requires: optional arguments keep their defaults
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    kwargs = {k: v for k, v in kwargs.items() if k in required}
    definition = {"_target_": f"{cls.__module__}.{cls.__qualname__}", **kwargs}
    try:
        candidate = build_network_definition(definition)
    except (ValueError, RuntimeError, TypeError):
        return None
    return definition if type(candidate) is cls and _shapes(candidate) == _shapes(network) else None


def _literal(value, where: str):
    if isinstance(value, str):
        if value[:1] in ("$", "@", "%"):
            raise ValueError(
                f"{where}: {value!r} is an expression or reference; a recorded network takes literals only"
            )
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_literal(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where}: {value!r} is not a JSON literal")


def build_network_definition(definition: Mapping, where: str = "network_def") -> nn.Module:
    """The network of a literal definition written by :func:`network_definition`: ``_target_`` must name a
    ``torch.nn.Module`` class (anything else is refused before it is called) and every argument must be a literal."""
    from pydoc import locate

    if not isinstance(definition, Mapping) or not isinstance(definition.get("_target_"), str):
        raise ValueError(f"{where}: expected a dict with a '_target_' class path, got {definition!r}")
    target = definition["_target_"]
    kwargs = {k: _literal(v, f"{where}#{k}") for k, v in definition.items() if k != "_target_"}
    try:
        cls = locate(target)
    except Exception as e:  # pydoc.locate raises ErrorDuringImport for a module that fails to import
        raise ValueError(f"{where}: cannot import {target!r} ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{where}: _target_ {target!r} is not a torch.nn.Module class")
    return cls(**kwargs)


def classifier_network(
    info: Mapping | None,
    *,
    network: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    default_in_channels: int = 1,
    default_num_classes: int = 3,
) -> nn.Module:
    """The network a ``classifier.json`` (``info``) describes, for inference.json's and evaluate.json's
    ``network_def``: the named network (``network``, a name of :data:`CLASSIFIER_NETWORKS`), else the recorded
    literal ``network_def`` (:func:`network_definition`), else — no model yet, or one recorded before either —
    ``tiny``; a record with neither (a network built with options its weights do not show) is a ``ValueError``
    asking for the ``network_def``. Explicit ``network`` / ``in_channels`` / ``num_classes`` win over the record; the defaults (the
    bundle metadata's channels and classes) apply when neither gives a value. Whether the checkpoint fits is
    checked where it is loaded (:func:`check_checkpoint_fits`), so a bundle without a model still builds."""
    info = dict(info or {})
    if network is None and info and info.get("network") is None and not isinstance(info.get("network_def"), Mapping):
        raise ValueError(
            f"{CHECKPOINT_INFO_NAME} records neither a network name nor a network_def (the network was "
            f"{info.get('network_class')}, built with options its weights do not show): pass the network_def it was "
            "trained with (bundle: --network_def)"
        )
    in_channels = int(in_channels or info.get("in_channels") or default_in_channels)
    num_classes = int(num_classes or info.get("num_classes") or default_num_classes)
    recorded = info.get("network_def")
    if network is None and info.get("network") is None and isinstance(recorded, Mapping):
        definition = dict(recorded)
        for names, value in ((_IN_ARGS, in_channels), (_OUT_ARGS, num_classes)):
            for name in names:
                if name in definition:
                    definition[name] = value
        return build_network_definition(definition, "classifier.json network_def")
    return build_classifier_network(network or info.get("network") or "tiny", in_channels, num_classes)


def check_checkpoint_fits(network: nn.Module, checkpoint: str | os.PathLike, what: str | None = None) -> None:
    """A ``ValueError`` naming the file and the network (``what``, default :func:`describe_network`) when the
    weights in ``checkpoint`` do not fit ``network`` (missing, unexpected or differently shaped parameters), a
    ``FileNotFoundError`` naming the file when it does not exist: what inference.json and evaluate.json check at
    ``run``, before the evaluator loads it."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {path}")
    state = safe_torch_load(path, map_location="cpu")
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict (train.json's model.pt), got {type(state).__name__}")
    expected = _shapes(network)
    found = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}" if missing else "",
                f"unexpected {unexpected[:3]}" if unexpected else "",
                f"shape of {wrong[0]} is {found[wrong[0]]} in the file, {expected[wrong[0]]} in the network"
                if wrong
                else "",
            )
            if part
        )
        raise ValueError(f"checkpoint {path} does not fit the network {what or describe_network(network)}: {detail}")


def read_classifier_info(checkpoint: str | os.PathLike) -> dict:
    """``classifier.json`` beside ``model.pt`` (architecture, classes, stored contract), ``{}`` when absent."""
    path = Path(checkpoint).with_name(CHECKPOINT_INFO_NAME)
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def describe_network(network: nn.Module) -> str:
    """``"DenseNet121 (in_channels=1, num_classes=3)"``: the class and the channels the weights show, for messages."""
    state = network.state_dict()
    convs = [v for v in state.values() if v.ndim >= 3]
    last = next((v for v in reversed(list(state.values())) if v.ndim >= 1), None)
    shown = []
    if convs:
        shown.append(f"in_channels={int(convs[0].shape[1])}")
    if last is not None:
        shown.append(f"num_classes={int(last.shape[0])}")
    return f"{type(network).__name__} ({', '.join(shown)})"


def classifier_weights(checkpoint, map_location="cpu"):
    """The state dict in a classifier's ``model.pt``, loaded safely; another checkpoint of this project (a generator's
    ``generator.pt`` or ``latest.pt``: a dict with a ``format`` tag) is a ``ValueError`` that says what it is."""
    path = Path(checkpoint)
    state = safe_torch_load(path, map_location=map_location)
    fmt = state.get("format") if isinstance(state, dict) else None
    if isinstance(fmt, str):  # a plain state dict has parameter names as keys, never a format tag
        raise ValueError(
            f"{path} is not a classifier's weights but a {fmt!r} checkpoint"
            + (
                " (a generator: give it as the generator, e.g. models/generator/generator.pt)"
                if "gan" in fmt or "generator" in fmt or "dcgan" in fmt or "diffusion" in fmt
                else ""
            )
            + "; a classifier is models/model.pt beside its classifier.json"
        )
    return state


def load_classifier(
    checkpoint: str | os.PathLike,
    *,
    network: str | None = None,
    in_channels: int | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """``(network on device, classifier.json)``: the classifier of ``model.pt`` rebuilt from its ``classifier.json``
    (its network name, else its recorded ``network_def``; explicit arguments win) and a ``ValueError`` naming both
    when the checkpoint does not fit."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"classifier checkpoint not found: {path}")
    state = classifier_weights(path, map_location=device)
    info = read_classifier_info(path)
    in_channels = in_channels or info.get("in_channels")
    num_classes = num_classes or info.get("num_classes")
    named = network or info.get("network")
    recorded = isinstance(info.get("network_def"), Mapping)
    if not info and (named is None or in_channels is None or num_classes is None):
        missing = [
            n for n, v in (("network", named), ("in_channels", in_channels), ("num_classes", num_classes)) if v is None
        ]
        raise ValueError(
            f"cannot rebuild the classifier of {path}: no {CHECKPOINT_INFO_NAME} beside it; pass {missing}"
        )
    if named is None and not recorded:
        raise ValueError(
            f"cannot rebuild the classifier of {path}: its {CHECKPOINT_INFO_NAME} records neither a network name nor a "
            f"network_def (class {info.get('network_class')}); pass the network_def it was trained with"
        )
    net = classifier_network(info, network=network, in_channels=in_channels, num_classes=num_classes)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        # from None: the command line prints the innermost cause, and this message already names both sides
        raise ValueError(
            f"checkpoint {path} does not fit network {named or info['network_def']['_target_']!r} "
            f"(in_channels={in_channels}, num_classes={num_classes}): {str(e).splitlines()[0]}"
        ) from None
    return net.to(device), info
