"""Import generators trained with NVIDIA's StyleGAN2-ADA (PyTorch) code, without running any of its code.

A training snapshot ``network-snapshot-*.pkl`` is a pickle whose networks are rebuilt, when loaded
the usual way, by executing Python source text stored inside the file. This module never does that:
a restricted unpickler (:func:`load_stylegan2_ada_snapshot`) resolves only a short list of known
reconstruction functions, each replaced by a stand-in that builds plain data (records, tensors,
dicts, numbers), and refuses every other global with an :class:`UnsafePickleError` naming it. The
generator's weights and constructor arguments are then mapped onto this project's
:class:`~gemix_monai.networks.Generator` (:func:`import_stylegan2_ada_state_dict`).

What is read, the safety argument, the conventions mapped and the supported configurations are in
docs/generators.md ("Importing StyleGAN2-ADA snapshots").
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import numbers
import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from gemix_monai.networks.generator import MAX_RESOLUTION, MIN_RESOLUTION, Generator
from gemix_monai.ops import setup_filter
from gemix_monai.utils import plain_data

__all__ = [
    "SnapshotError",
    "UnsafePickleError",
    "PersistentRecord",
    "NETWORK_CHOICES",
    "SUPPORTED_ARCHITECTURES",
    "load_stylegan2_ada_snapshot",
    "import_stylegan2_ada",
    "import_stylegan2_ada_state_dict",
    "convert_stylegan2_ada",
]

#: The generators a snapshot holds: ``G_ema`` (running average of the weights, the one to sample from) and ``G``.
NETWORK_CHOICES = ("G_ema", "G")
#: Synthesis architectures this importer maps (StyleGAN2-ADA's generator default, used by all its configs).
SUPPORTED_ARCHITECTURES = ("skip",)
#: Class names given to an unconditional (``c_dim=0``) generator when none are passed.
UNCONDITIONAL_CLASS_NAMES = ("unconditional",)

# Constructor arguments of the reference generator and their defaults there (a snapshot written by
# its train.py sets every one of them explicitly; the defaults matter only for hand-built networks).
_GENERATOR_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")
_MAPPING_DEFAULTS = dict(
    num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995
)
_SYNTHESIS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None)
_SYNTHESIS_DEFAULTS.update(architecture="skip", resample_filter=[1, 3, 3, 1], use_noise=True)
# Synthesis arguments that only choose a memory layout: ignored.
_SYNTHESIS_LAYOUT_ONLY = ("fp16_channels_last", "channels_last")
# Synthesis arguments this project's layers have fixed: accepted only at these values.
_SYNTHESIS_FIXED = dict(kernel_size=3, activation="lrelu")


class SnapshotError(ValueError):
    """The file or state dict is not a StyleGAN2-ADA generator this importer can map; the message says why."""


class UnsafePickleError(SnapshotError):
    """The pickle asks for a global outside the allow-list (it could run code); nothing of it was executed.

    ``global_name`` is the ``module.name`` that was refused.
    """

    def __init__(self, message: str, global_name: str):
        super().__init__(message)
        self.global_name = global_name


# ----------------------------------------------------------------------------------------------
# The restricted unpickler


class PersistentRecord:
    """What a persistent network object of the snapshot becomes here: its metadata, never its class.

    ``class_name`` and ``module_src`` are kept as text (``module_src`` is never compiled or run);
    ``state`` is the object's attribute dict (``_parameters``, ``_buffers``, ``_modules`` holding
    further records, ``_init_args``/``_init_kwargs``, …).
    """

    __slots__ = ("class_name", "module_src", "version", "state")

    def __init__(self, class_name: str, module_src: str, version, state: dict):
        self.class_name, self.module_src, self.version, self.state = class_name, module_src, version, state

    def __setstate__(self, state):  # a BUILD opcode aimed at a record: not something a real snapshot does
        raise pickle.UnpicklingError("the pickle tries to set the state of a persistent-object record (BUILD); refused")

    def __repr__(self) -> str:
        return f"PersistentRecord(class_name={self.class_name!r}, version={self.version!r})"


class _StandIn:
    """A callable handed to the unpickler in place of a real global.

    Immutable (no attribute can be set, no BUILD accepted), so a crafted pickle cannot alter the
    stand-ins, e.g. their default arguments, for later loads in the same process.
    """

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def __setattr__(self, key, value):
        raise pickle.UnpicklingError(f"the pickle tries to set attribute {key!r} of {self._name}; refused")

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"the pickle tries to set the state of {self._name} (BUILD); refused")

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"


def _reconstruct_persistent(meta):
    if not isinstance(meta, dict):
        raise pickle.UnpicklingError(f"persistent-object metadata must be a dict, got {type(meta).__name__}")
    if meta.get("type") != "class":
        raise pickle.UnpicklingError(
            f"persistent-object metadata of type {meta.get('type')!r} is not supported (expected 'class')"
        )
    class_name, module_src, state = meta.get("class_name"), meta.get("module_src"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(module_src, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError(
            "persistent-object metadata must hold 'class_name' (str), 'module_src' (str) and 'state' (dict), got "
            f"{type(class_name).__name__}, {type(module_src).__name__}, {type(state).__name__}"
        )
    return PersistentRecord(class_name, module_src, meta.get("version"), state)


def _load_storage_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"a tensor storage must come as bytes, got {type(data).__name__}")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except Exception as e:  # torch's own restricted loader refused or could not parse it
        raise pickle.UnpicklingError(
            f"a tensor storage inside the pickle cannot be read safely (torch.load weights_only=True): {type(e).__name__}: {e}"
        ) from e
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError(
            f"a tensor storage inside the pickle holds a {type(storage).__name__}, expected a typed tensor storage"
        )
    return storage


def _int_tuple(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise pickle.UnpicklingError(f"tensor {what} must be a tuple of non-negative ints, got {value!r}")
    return tuple(value)


def _no_hooks(hooks) -> None:
    if hooks is not None and (not isinstance(hooks, Mapping) or len(hooks) > 0):
        raise pickle.UnpicklingError("tensors with backward hooks are not supported")


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.TypedStorage):
        raise pickle.UnpicklingError(f"a tensor must be rebuilt from a typed storage, got {type(storage).__name__}")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise pickle.UnpicklingError(f"tensor storage offset must be an int >= 0, got {storage_offset!r}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"tensor size {size} and stride {stride} differ in length")
    _no_hooks(backward_hooks)
    if metadata:
        raise pickle.UnpicklingError("tensors with extra metadata are not supported")
    if all(s > 0 for s in size):  # (a 0-d tensor needs one element too)
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= storage.size():
            raise pickle.UnpicklingError(
                f"tensor of size {size}, stride {stride}, offset {storage_offset} "
                f"reaches past its storage of {storage.size()} elements"
            )
    return torch.empty((0,), dtype=storage.dtype).set_(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    _no_hooks(backward_hooks)
    if state is not None and not isinstance(state, (dict, tuple)):
        raise pickle.UnpicklingError(f"parameter state must be a dict, got {type(state).__name__}")
    return data  # a plain tensor: the importer copies the values only


_NUMERIC_DTYPE = re.compile(r"[<>=|]?(b1|[iu][1248]|f[248]|c8|c16)")


def _numpy_dtype(name, align=False, copy=False):
    if not isinstance(name, str) or not _NUMERIC_DTYPE.fullmatch(name):
        raise pickle.UnpicklingError(f"numpy dtype {name!r} is not a plain numeric dtype; refused")
    # A fresh dtype object (copy=True): the BUILD that follows in the stream sets only its byte order.
    return np.dtype(name, align=False, copy=True)


def _numpy_scalar(dtype, data=None):
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in "biufc"
        or dtype.fields is not None
        or dtype.subdtype is not None
    ):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not a plain number; refused")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes of data")
    return np.frombuffer(data, dtype=dtype)[0].item()


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles store bytes as _codecs.encode(text, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is accepted only for latin1-encoded bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _StandIn(
        "torch_utils.persistence._reconstruct_persistent_obj", _reconstruct_persistent
    ),
    ("torch._utils", "_rebuild_tensor_v2"): _StandIn("torch._utils._rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): _StandIn("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): _StandIn(
        "torch._utils._rebuild_parameter_with_state", _rebuild_parameter
    ),
    ("torch.storage", "_load_from_bytes"): _StandIn("torch.storage._load_from_bytes", _load_storage_from_bytes),
    ("numpy.core.multiarray", "scalar"): _StandIn("numpy.core.multiarray.scalar", _numpy_scalar),
    ("numpy._core.multiarray", "scalar"): _StandIn("numpy._core.multiarray.scalar", _numpy_scalar),
    ("numpy", "dtype"): _StandIn("numpy.dtype", _numpy_dtype),
    ("_codecs", "encode"): _StandIn("_codecs.encode", _codecs_encode),
    # Plain containers (built-in types: nothing of them can be altered from the stream).
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access in the reference code; a dict is all we need
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol-2 pickles name the builtins module as Python 2 did
    ("__builtin__", "frozenset"): frozenset,
}


class _SnapshotUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self._source}: refusing to load: the pickle asks for the global '{module}.{name}', which is not one of the "
                "known StyleGAN2-ADA reconstruction functions (it could run code); nothing from the file was executed",
                f"{module}.{name}",
            )
        return found

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f"{self._source}: refusing to load: the pickle uses a persistent id ({pid!r}), which StyleGAN2-ADA snapshots do not",
            "persistent_load",
        )


def _read_pickle(data: bytes, source: str):
    if data[:4] == b"PK\x03\x04":
        raise SnapshotError(
            f"{source}: not a StyleGAN2-ADA snapshot pickle: it is a zip archive (a torch.save file?); "
            "this project's generator checkpoints load with gemix_monai.networks.Generator.from_checkpoint"
        )
    if len(data) < 2 or data[0] != 0x80:
        raise SnapshotError(
            f"{source}: not a pickle: a StyleGAN2-ADA snapshot starts with the pickle protocol byte 0x80, found {data[:8]!r}"
        )
    try:
        with warnings.catch_warnings():  # torch's storage classes warn about their own deprecation
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
            return _SnapshotUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # malformed streams fail in many ways; all mean "not a snapshot we can read"
        raise SnapshotError(f"{source}: not a readable StyleGAN2-ADA snapshot pickle: {type(e).__name__}: {e}") from e


def load_stylegan2_ada_snapshot(path: str | os.PathLike) -> dict:
    """Unpickle a StyleGAN2-ADA ``network-snapshot-*.pkl`` safely.

    Returns the snapshot dict (keys ``G``, ``D``, ``G_ema``, ``augment_pipe``,
    ``training_set_kwargs``) with every network as a :class:`PersistentRecord` and every tensor a
    plain CPU tensor. No code stored in the file is run and no module of the reference code is
    imported (see docs/generators.md).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the pickle asks for a global outside the allow-list (the message names it).
        SnapshotError: not a pickle, malformed, or not a dict.
    """
    return _load_snapshot(Path(path))[1]


def _load_snapshot(path: Path) -> tuple[bytes, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"StyleGAN2-ADA snapshot not found: {path}")
    data = path.read_bytes()
    snapshot = _read_pickle(data, str(path))
    if not isinstance(snapshot, dict):
        raise SnapshotError(
            f"{path}: a StyleGAN2-ADA snapshot pickles a dict (G, D, G_ema, augment_pipe, training_set_kwargs), "
            f"found {type(snapshot).__name__}"
        )
    return data, snapshot


# ----------------------------------------------------------------------------------------------
# From records to a state dict and constructor arguments


def _flatten_record(
    record: PersistentRecord, prefix: str, out: dict, where: str, seen: frozenset = frozenset()
) -> None:
    """``record``'s parameters and persistent buffers, and its sub-modules', into ``out`` (like ``state_dict()``)."""
    if id(record) in seen:
        raise SnapshotError(f"{where}: sub-module {prefix.rstrip('.')} contains itself (a cycle); not a network")
    seen = seen | {id(record)}
    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set") or ()
    for kind in ("_parameters", "_buffers"):
        entries = state.get(kind) or {}
        if not isinstance(entries, Mapping):
            raise SnapshotError(f"{where}: {prefix or '<root>'}{kind} must be a dict, got {type(entries).__name__}")
        for name, value in entries.items():
            if value is None or (kind == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise SnapshotError(f"{where}: {prefix}{name} must be a tensor, got {type(value).__name__}")
            out[prefix + str(name)] = value
    modules = state.get("_modules") or {}
    if not isinstance(modules, Mapping):
        raise SnapshotError(f"{where}: {prefix or '<root>'}_modules must be a dict, got {type(modules).__name__}")
    for name, sub in modules.items():
        if sub is None:
            continue
        if not isinstance(sub, PersistentRecord):
            raise SnapshotError(
                f"{where}: sub-module {prefix}{name} is a {type(sub).__name__}, expected a persistent network object"
            )
        _flatten_record(sub, f"{prefix}{name}.", out, where, seen)


def _record_init_kwargs(record: PersistentRecord, where: str) -> dict:
    args = record.state.get("_init_args") or ()
    kwargs = record.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, Mapping):
        raise SnapshotError(f"{where}: the generator's _init_args/_init_kwargs must be a tuple and a dict")
    if len(args) > len(_GENERATOR_ARGS):
        raise SnapshotError(
            f"{where}: the generator was built with {len(args)} positional arguments, at most {len(_GENERATOR_ARGS)} expected"
        )
    init = dict(zip(_GENERATOR_ARGS, args))
    for key, value in kwargs.items():
        if key in init:
            raise SnapshotError(f"{where}: generator argument {key!r} given both positionally and by name")
        init[str(key)] = value
    return init


# ----------------------------------------------------------------------------------------------
# Mapping onto gemix_monai.networks.Generator


def _as_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SnapshotError(f"{where}: {name} must be an int, got {value!r}")
    return int(value)


def _generator_config(init_kwargs: Mapping, where: str) -> tuple[dict, dict]:
    """The reference generator's constructor arguments → (our Generator kwargs without class names, notes)."""
    if not isinstance(init_kwargs, Mapping):
        raise SnapshotError(
            f"{where}: init_kwargs must be a dict of the generator's constructor arguments, got {type(init_kwargs).__name__}"
        )
    unknown = sorted(set(map(str, init_kwargs)) - set(_GENERATOR_ARGS))
    if unknown:
        raise SnapshotError(f"{where}: unknown generator arguments {unknown}; expected {list(_GENERATOR_ARGS)}")
    missing = [k for k in _GENERATOR_ARGS[:5] if k not in init_kwargs]
    if missing:
        raise SnapshotError(f"{where}: the generator's init kwargs lack {missing}")
    z_dim, c_dim, w_dim, resolution, channels = (_as_int(init_kwargs[k], k, where) for k in _GENERATOR_ARGS[:5])
    if z_dim < 1 or w_dim < 1 or channels < 1 or c_dim < 0:
        raise SnapshotError(
            f"{where}: need z_dim, w_dim, img_channels >= 1 and c_dim >= 0, "
            f"got z_dim={z_dim}, w_dim={w_dim}, img_channels={channels}, c_dim={c_dim}"
        )
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION or resolution & (resolution - 1):
        raise SnapshotError(
            f"{where}: img_resolution {resolution} is not supported: "
            f"it must be a power of two in {MIN_RESOLUTION}..{MAX_RESOLUTION}"
        )

    mapping_in = init_kwargs.get("mapping_kwargs") or {}
    synthesis_in = init_kwargs.get("synthesis_kwargs") or {}
    for name, value in (("mapping_kwargs", mapping_in), ("synthesis_kwargs", synthesis_in)):
        if not isinstance(value, Mapping):
            raise SnapshotError(f"{where}: {name} must be a dict, got {type(value).__name__}")
    unknown = sorted(set(map(str, mapping_in)) - set(_MAPPING_DEFAULTS))
    if unknown:
        raise SnapshotError(
            f"{where}: unsupported mapping_kwargs {unknown}; this importer understands {sorted(_MAPPING_DEFAULTS)}"
        )
    mapping = {**_MAPPING_DEFAULTS, **mapping_in}
    mapping["num_layers"] = _as_int(mapping["num_layers"], "mapping_kwargs['num_layers']", where)
    if not 1 <= mapping["num_layers"] <= 8:
        raise SnapshotError(f"{where}: mapping_kwargs['num_layers'] = {mapping['num_layers']} is not supported (1..8)")
    unconditional = c_dim == 0
    if unconditional:
        # One constant class whose embedding feeds nothing (its fc0 columns are zero): see _map_state.
        mapping["embed_features"] = 1

    known = set(_SYNTHESIS_DEFAULTS) | set(_SYNTHESIS_LAYOUT_ONLY) | set(_SYNTHESIS_FIXED)
    unknown = sorted(set(map(str, synthesis_in)) - known)
    if unknown:
        raise SnapshotError(
            f"{where}: unsupported synthesis_kwargs {unknown}; this importer understands {sorted(known)}"
        )
    synthesis = {**_SYNTHESIS_DEFAULTS, **{k: v for k, v in synthesis_in.items() if k not in _SYNTHESIS_LAYOUT_ONLY}}
    architecture = synthesis.pop("architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise SnapshotError(
            f"{where}: unsupported synthesis architecture {architecture!r} (synthesis_kwargs['architecture']); "
            f"this importer maps {list(SUPPORTED_ARCHITECTURES)}, the StyleGAN2-ADA generator's default"
        )
    for key, required in _SYNTHESIS_FIXED.items():
        if key in synthesis and synthesis.pop(key) != required:
            raise SnapshotError(
                f"{where}: unsupported synthesis_kwargs['{key}'] = {synthesis_in[key]!r}; only {required!r} is supported"
            )
    for key in ("channel_base", "channel_max", "num_fp16_res"):
        synthesis[key] = _as_int(synthesis[key], f"synthesis_kwargs['{key}']", where)
    taps = synthesis["resample_filter"]
    if (
        not isinstance(taps, (list, tuple))
        or not taps
        or not all(isinstance(t, numbers.Real) and not isinstance(t, bool) for t in taps)
    ):
        raise SnapshotError(
            f"{where}: synthesis_kwargs['resample_filter'] must be a list of numbers (1-D taps), got {taps!r}"
        )
    synthesis["resample_filter"] = [float(t) for t in taps]
    clamp = synthesis["conv_clamp"]
    if clamp is not None and (isinstance(clamp, bool) or not isinstance(clamp, numbers.Real)):
        raise SnapshotError(f"{where}: synthesis_kwargs['conv_clamp'] must be a number or None, got {clamp!r}")
    synthesis["conv_clamp"] = None if clamp is None else (int(clamp) if float(clamp).is_integer() else float(clamp))
    synthesis["use_noise"] = bool(synthesis["use_noise"])
    for key in ("embed_features", "layer_features"):
        if mapping[key] is not None:
            mapping[key] = _as_int(mapping[key], f"mapping_kwargs['{key}']", where)
    mapping["lr_multiplier"] = float(mapping["lr_multiplier"])
    if mapping["w_avg_beta"] is not None:
        mapping["w_avg_beta"] = float(mapping["w_avg_beta"])

    config = dict(
        z_dim=z_dim,
        c_dim=1 if unconditional else c_dim,
        w_dim=w_dim,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=mapping,
        synthesis_kwargs=synthesis,
    )
    return config, dict(unconditional=unconditional, z_dim=z_dim)


def _reference_name(our_name: str, block_resolutions: Sequence[int]) -> str:
    parts = our_name.split(".")
    if parts[:2] == ["mapping", "layers"]:
        return ".".join(["mapping", f"fc{parts[2]}", *parts[3:]])
    if parts[:2] == ["synthesis", "blocks"]:
        return ".".join(["synthesis", f"b{block_resolutions[int(parts[2])]}", *parts[3:]])
    return our_name


def _expected_filter(taps: Sequence[float]) -> torch.Tensor:
    """The reference code stores a short separable filter as its 2-D outer product, 8 taps or more as 1-D."""
    f = setup_filter(list(taps))
    return f if f.numel() >= 8 else torch.outer(f, f)


def _map_state(ref_state: Mapping, G: Generator, notes: dict, where: str) -> dict:
    """Reference state dict → ours: names mapped, upsampling kernels flipped, unconditional fc0 widened."""
    ours_state = G.state_dict()
    blocks = G.synthesis.block_resolutions
    out, used, missing, wrong = {}, set(), [], []

    def fetch(ref_name):
        if ref_name not in ref_state:
            missing.append(ref_name)
            return None
        used.add(ref_name)
        value = ref_state[ref_name]
        if not isinstance(value, torch.Tensor):
            try:
                value = torch.as_tensor(np.asarray(value))
            except (TypeError, ValueError) as e:
                raise SnapshotError(f"{where}: state entry {ref_name} is not numeric: {e}") from None
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise SnapshotError(f"{where}: state entry {ref_name} has dtype {value.dtype}, expected a float tensor")
        return value.detach().to(device="cpu", dtype=torch.float32).clone()

    for our_name, ours in ours_state.items():
        ref_name = _reference_name(our_name, blocks)
        if notes["unconditional"] and our_name.startswith("mapping.embed."):
            out[our_name] = torch.zeros_like(ours)  # the one class's embedding: multiplied by zero columns below
            continue
        value = fetch(ref_name)
        if value is None:
            continue
        if notes["unconditional"] and our_name == "mapping.layers.0.weight":
            z_dim = notes["z_dim"]
            if value.shape != (ours.shape[0], z_dim):
                wrong.append(
                    f"{ref_name}: {tuple(value.shape)} in the snapshot, {(ours.shape[0], z_dim)} expected from its init kwargs"
                )
                continue
            # Our first layer also sees the 1-wide embedding, so its run-time gain is lr/sqrt(z_dim + 1)
            # instead of lr/sqrt(z_dim): rescale the stored weights to keep the product, zero the extra column.
            scale = math.sqrt(ours.shape[1] / z_dim)
            value = torch.cat([value * scale, value.new_zeros(ours.shape[0], ours.shape[1] - z_dim)], dim=1)
        elif our_name.startswith("synthesis.") and our_name.endswith(".conv0.weight"):
            # Stored for a transposed convolution; ours is a correlation: flip both spatial axes (docs/generators.md).
            value = value.flip([2, 3])
        if value.shape != ours.shape:
            wrong.append(
                f"{ref_name}: {tuple(value.shape)} in the snapshot, {tuple(ours.shape)} expected from its init kwargs"
            )
            continue
        out[our_name] = value

    expected_filter = _expected_filter(G.init_kwargs["synthesis_kwargs"]["resample_filter"])
    unexpected = []
    for name in ref_state:
        if name in used:
            continue
        if name.endswith("resample_filter"):
            stored = torch.as_tensor(
                np.asarray(ref_state[name]) if not isinstance(ref_state[name], torch.Tensor) else ref_state[name]
            ).to(torch.float32)
            if stored.shape != expected_filter.shape or not torch.allclose(stored, expected_filter, atol=1e-6, rtol=0):
                raise SnapshotError(
                    f"{where}: {name} is not the resampling filter implied by synthesis_kwargs['resample_filter'] = "
                    f"{G.init_kwargs['synthesis_kwargs']['resample_filter']}; a changed filter is not supported"
                )
            continue
        unexpected.append(name)
    found = (("missing entries", missing, 8), ("entries of the wrong shape", wrong, 4))
    found += (("unexpected entries", sorted(unexpected), 8),)
    problems = [f"{what} {items[:n]}{' …' if len(items) > n else ''}" for what, items, n in found if items]
    if problems:
        raise SnapshotError(
            f"{where}: the generator's weights do not match its init kwargs ({G.init_kwargs['img_resolution']} px, "
            f"c_dim={G.c_dim if not notes['unconditional'] else 0}): " + "; ".join(problems)
        )
    return out


def import_stylegan2_ada_state_dict(
    state_dict: Mapping,
    init_kwargs: Mapping,
    class_names: Sequence[str] | None = None,
    *,
    source: str = "state_dict",
) -> Generator:
    """Build our :class:`~gemix_monai.networks.Generator` from a StyleGAN2-ADA generator's weights.

    Args:
        state_dict: the reference generator's ``state_dict()`` entries by their names there
            (``mapping.fc0.weight``, ``synthesis.b8.conv0.weight``, …); tensors or arrays.
        init_kwargs: its constructor arguments: ``z_dim``, ``c_dim`` (0 for unconditional),
            ``w_dim``, ``img_resolution``, ``img_channels``, ``mapping_kwargs``, ``synthesis_kwargs``.
        class_names: one name per class in label order (default ``class_0``…; ``["unconditional"]``
            for ``c_dim=0``, which becomes a one-class generator).
        source: how error messages name the input.

    Returns:
        the generator in eval mode without gradients; ``G.imported_from`` describes the source.

    Raises:
        SnapshotError: unsupported configuration (named), missing/unexpected/misshapen weights.
        ValueError: ``class_names`` of the wrong length.
    """
    config, notes = _generator_config(init_kwargs, source)
    if class_names is None:
        class_names = list(UNCONDITIONAL_CLASS_NAMES) if notes["unconditional"] else None
    elif isinstance(class_names, str) or len(class_names) != config["c_dim"]:
        count = (
            "1 (the snapshot is unconditional, c_dim=0, and becomes a one-class generator)"
            if notes["unconditional"]
            else str(config["c_dim"])
        )
        raise ValueError(
            f"class_names: the generator has {count} classes, "
            f"got {len(class_names) if not isinstance(class_names, str) else 1} names: {class_names!r}"
        )
    if not isinstance(state_dict, Mapping):
        raise SnapshotError(f"{source}: state_dict must be a dict of tensors, got {type(state_dict).__name__}")
    G = Generator(**config, class_names=class_names)
    G.load_state_dict(_map_state(state_dict, G, notes, source), strict=True)
    G.imported_from = {
        "source": "stylegan2-ada-pytorch",
        "input": source,
        "init_kwargs": plain_data(dict(init_kwargs), otherwise="repr"),
        "unconditional": notes["unconditional"],
    }
    return G.eval().requires_grad_(False)


def import_stylegan2_ada(
    path: str | os.PathLike, class_names: Sequence[str] | None = None, which: str = "G_ema"
) -> Generator:
    """Read a StyleGAN2-ADA ``network-snapshot-*.pkl`` safely and return its generator as ours.

    Args:
        path: the snapshot pickle written by the reference training code.
        class_names: one name per class, in the order of the snapshot's labels (default ``class_0``…).
        which: ``"G_ema"`` (default: the weight average one samples from) or ``"G"``.

    Returns:
        :class:`~gemix_monai.networks.Generator` in eval mode without gradients, on the CPU, float32.
        ``G.imported_from`` records the file name, its SHA-256 and the network's constructor arguments.

    Raises:
        UnsafePickleError: the pickle would run code (the message names the global); nothing ran.
        SnapshotError: not a snapshot, no ``which`` entry, or an unsupported configuration (named).
        ValueError: ``which`` or ``class_names`` invalid.
    """
    if which not in NETWORK_CHOICES:
        raise ValueError(f"which must be one of {NETWORK_CHOICES}, got {which!r}")
    path = Path(path)
    data, snapshot = _load_snapshot(path)
    if which not in snapshot:
        raise SnapshotError(
            f"{path}: the snapshot has no {which!r} entry (found keys {sorted(map(str, snapshot))}); "
            "is it a StyleGAN2-ADA network-snapshot pickle?"
        )
    record = snapshot[which]
    where = f"{path} [{which}]"
    if not isinstance(record, PersistentRecord):
        raise SnapshotError(f"{where}: expected a pickled network, found {type(record).__name__}")
    if record.class_name != "Generator":
        raise SnapshotError(f"{where}: expected the reference code's 'Generator' class, found {record.class_name!r}")
    state: dict = {}
    _flatten_record(record, "", state, where)
    G = import_stylegan2_ada_state_dict(state, _record_init_kwargs(record, where), class_names, source=where)
    G.imported_from.update(
        input="network snapshot",
        file=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        network=which,
        class_name=record.class_name,
        persistence_version=plain_data(record.version, otherwise="repr"),
    )
    return G


def convert_stylegan2_ada(
    path: str | os.PathLike,
    out: str | os.PathLike,
    class_names: Sequence[str] | None = None,
    which: str = "G_ema",
) -> Path:
    """:func:`import_stylegan2_ada`, then write our generator checkpoint to ``out`` (atomically).

    The file is the usual ``gemix-generator/1`` checkpoint (``Generator.from_checkpoint`` and the
    ``generate`` bundle config read it) plus an ``"imported_from"`` entry describing the snapshot.
    """
    G = import_stylegan2_ada(path, class_names=class_names, which=which)
    return Path(G.save_checkpoint(out, extra={"imported_from": G.imported_from}))
