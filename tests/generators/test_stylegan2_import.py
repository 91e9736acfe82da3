"""Importing StyleGAN2-ADA generators: reference numbers, safe unpickling of snapshots, errors, the CLI.

The snapshot pickles here are built inside the tests with the structure of the reference code's
files (persistent objects reconstructed by ``torch_utils.persistence._reconstruct_persistent_obj``,
tensors through torch's own reducers, ``dnnlib.util.EasyDict`` argument dicts, numpy scalars),
from one of our own generators converted to the reference code's names and conventions.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import math
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gemix_monai import cli
from gemix_monai.generators.stylegan2_ada import (
    SnapshotError,
    UnsafePickleError,
    convert_stylegan2_ada,
    import_stylegan2_ada,
    import_stylegan2_ada_state_dict,
    load_stylegan2_ada_snapshot,
)
from gemix_monai.networks import Generator
from gemix_monai.ops import setup_filter

# ../shared/data beside the project root; GEMIX_SHARED_DATA_DIR points elsewhere (e.g. from a git worktree).
SHARED_DATA = Path(
    os.environ.get("GEMIX_SHARED_DATA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
)
REFERENCE_NPZ = SHARED_DATA / "sg2a_reference_tiny_G.npz"
REFERENCE_INIT_KWARGS = dict(
    z_dim=64,
    c_dim=3,
    w_dim=64,
    img_resolution=32,
    img_channels=1,
    mapping_kwargs=dict(num_layers=2),
    synthesis_kwargs=dict(channel_base=1024, channel_max=32, num_fp16_res=0, conv_clamp=256),
)
BUFFERS = ("w_avg", "resample_filter", "noise_const")


# ----------------------------------------------------------------------------------------------
# Helpers: our generator in the reference code's names and conventions


def make_source_generator(
    resolution=32, channels=1, c_dim=3, num_layers=2, num_fp16_res=0, channel_base=256, channel_max=16, seed=0
):
    """A small generator of ours with every weight perturbed (no zero noise strengths or biases)."""
    torch.manual_seed(seed)
    G = Generator(
        z_dim=8,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=resolution,
        img_channels=channels,
        mapping_kwargs=dict(num_layers=num_layers),
        synthesis_kwargs=dict(
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res, conv_clamp=256
        ),
    )
    with torch.no_grad():
        for p in G.parameters():
            p.add_(0.1 * torch.randn_like(p))
        G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
    return G.eval().requires_grad_(False)


def reference_init_kwargs(G: Generator, c_dim=None) -> dict:
    syn = G.init_kwargs["synthesis_kwargs"]
    return dict(
        z_dim=G.z_dim,
        c_dim=G.c_dim if c_dim is None else c_dim,
        w_dim=G.w_dim,
        img_resolution=G.img_resolution,
        img_channels=G.img_channels,
        mapping_kwargs=dict(num_layers=G.init_kwargs["mapping_kwargs"]["num_layers"]),
        synthesis_kwargs=dict(
            channel_base=syn["channel_base"],
            channel_max=syn["channel_max"],
            num_fp16_res=syn["num_fp16_res"],
            conv_clamp=syn["conv_clamp"],
        ),
    )


def reference_state(G: Generator) -> dict:
    """Our state dict as the reference code names it: ``fc{i}``, ``b{res}``, conv0 kernels flipped, 2-D filters."""
    blocks = G.synthesis.block_resolutions
    filter2d = torch.outer(setup_filter([1, 3, 3, 1]), setup_filter([1, 3, 3, 1]))
    out = {}
    for name, value in G.state_dict().items():
        parts = name.split(".")
        if parts[:2] == ["mapping", "layers"]:
            parts = ["mapping", f"fc{parts[2]}", *parts[3:]]
        elif parts[:2] == ["synthesis", "blocks"]:
            parts = ["synthesis", f"b{blocks[int(parts[2])]}", *parts[3:]]
            if parts[2] == "conv0" and parts[3] == "weight":
                value = value.flip([2, 3])
            if parts[2] in ("conv0", "conv1") and parts[3] == "weight":
                out[".".join(parts[:3] + ["resample_filter"])] = filter2d.clone()
        out[".".join(parts)] = value.clone()
    for res in blocks:
        out[f"synthesis.b{res}.resample_filter"] = filter2d.clone()
    return out


CLASS_NAMES = {"": "Generator", "mapping": "MappingNetwork", "synthesis": "SynthesisNetwork"}


def class_name_of(path: str) -> str:
    last = path.rsplit(".", 1)[-1]
    if path in CLASS_NAMES:
        return CLASS_NAMES[path]
    if last.startswith("b") and last[1:].isdigit():
        return "SynthesisBlock"
    return {"conv0": "SynthesisLayer", "conv1": "SynthesisLayer", "torgb": "ToRGBLayer"}.get(
        last, "FullyConnectedLayer"
    )


# ----------------------------------------------------------------------------------------------
# Helpers: snapshot pickles with the reference structure

PERSISTENCE_SRC = '''
"""Test stand-in for the reference code's persistence module: rebuilding a network RUNS its source."""
def _reconstruct_persistent_obj(meta):
    exec(compile(meta["module_src"], "<module_src>", "exec"), {})
    raise RuntimeError("the test stand-in cannot build " + meta["class_name"])
'''
EASYDICT_SRC = """
class EasyDict(dict):
    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)
    def __setattr__(self, name, value):
        self[name] = value
"""


@contextlib.contextmanager
def reference_modules(root: Path):
    """Make ``torch_utils.persistence`` and ``dnnlib.util`` importable (to pickle), then remove them again."""
    for package, module, src in (("torch_utils", "persistence", PERSISTENCE_SRC), ("dnnlib", "util", EASYDICT_SRC)):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
        (root / package / f"{module}.py").write_text(textwrap.dedent(src))
    importlib.invalidate_caches()
    sys.path.insert(0, str(root))
    try:
        import dnnlib.util
        import torch_utils.persistence

        yield torch_utils.persistence, dnnlib.util
    finally:
        sys.path.remove(str(root))
        for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
            sys.modules.pop(name, None)


class PickledAsPersistent:
    """Pickles as the reference code's persistent objects do: a call of ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


class CallOnLoad:
    """Pickles as a call of ``fn(*args)``: what a malicious pickle does."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def module_state(attributes=None, parameters=None, buffers=None, modules=None, init_kwargs=None):
    """A module ``__dict__`` as the reference code's persistence pickles it."""
    return {
        "training": False,
        "_parameters": collections.OrderedDict(
            (k, torch.nn.Parameter(v, requires_grad=False)) for k, v in (parameters or {}).items()
        ),
        "_buffers": collections.OrderedDict(buffers or {}),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(modules or {}),
        "_init_args": (),
        "_init_kwargs": init_kwargs or {},
        **(attributes or {}),
    }


def network_record(persistence, class_name, state, module_src):
    meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": class_name, "state": state}
    return PickledAsPersistent(persistence._reconstruct_persistent_obj, meta)


def generator_record(persistence, util, ref_state, init_kwargs, module_src):
    """The reference generator as nested persistent records built from its flat state dict."""
    tree = {}
    for name, value in ref_state.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def build(node, path):
        params = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k not in BUFFERS}
        buffers = {k: v for k, v in node.items() if isinstance(v, torch.Tensor) and k in BUFFERS}
        subs = {k: build(v, f"{path}.{k}" if path else k) for k, v in node.items() if isinstance(v, dict)}
        attributes = {"resolution_log2": np.int64(5), "w_avg_beta": np.float64(0.995)} if path == "" else {}
        kwargs = {}
        if path == "":
            kwargs = util.EasyDict(init_kwargs)
            kwargs["mapping_kwargs"] = util.EasyDict(init_kwargs.get("mapping_kwargs", {}))
            kwargs["synthesis_kwargs"] = util.EasyDict(init_kwargs.get("synthesis_kwargs", {}))
        state = module_state(attributes, params, buffers, subs, kwargs)
        return network_record(persistence, class_name_of(path), state, module_src)

    return build(tree, "")


def write_snapshot(
    path: Path,
    src_root: Path,
    marker: Path,
    G_ema_src: dict | None,
    G_src: dict | None = None,
    init_kwargs=None,
    extra_state=None,
    drop=(),
    protocol=4,
) -> Path:
    """Write ``network-snapshot-*.pkl`` with the reference layout; every ``module_src`` would create ``marker``."""
    module_src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src was executed')\n"
    with reference_modules(src_root) as (persistence, util):
        snapshot = {}
        for key, ref_state in (("G", G_src if G_src is not None else G_ema_src), ("G_ema", G_ema_src)):
            snapshot[key] = generator_record(persistence, util, ref_state, init_kwargs, module_src)
        if extra_state is not None:
            snapshot["G_ema"].meta["state"]["extra"] = extra_state
        d_state = module_state(
            {"img_resolution": init_kwargs["img_resolution"]},
            {"weight": torch.randn(4, 3)},
            {"resample_filter": torch.ones(4, 4) / 16},
            init_kwargs=util.EasyDict(c_dim=init_kwargs["c_dim"], block_kwargs=util.EasyDict()),
        )
        snapshot["D"] = network_record(persistence, "Discriminator", d_state, module_src)
        snapshot["augment_pipe"] = network_record(
            persistence, "AugmentPipe", module_state({"xflip": 1.0}, buffers={"p": torch.tensor(0.2)}), module_src
        )
        snapshot["training_set_kwargs"] = util.EasyDict(
            class_name="training.dataset.ImageFolderDataset",
            path="data.zip",
            use_labels=True,
            max_size=np.int64(681),
            xflip=False,
            resolution=init_kwargs["img_resolution"],
        )
        for key in drop:
            del snapshot[key]
        path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    return path


def snapshot_of(G_src, folder: Path, marker: Path, name: str = "snap.pkl", **options) -> Path:
    """:func:`write_snapshot` of one source generator as its ``G_ema`` (``options``: ``protocol``, ``drop``, ...)."""
    return write_snapshot(
        folder / name,
        folder / "src",
        marker,
        reference_state(G_src),
        init_kwargs=reference_init_kwargs(G_src),
        **options,
    )


@pytest.fixture
def snapshot_env(tmp_path):
    """(source G_ema, source G, snapshot path, marker path) for a small conditional generator."""
    G_ema, G = make_source_generator(seed=0), make_source_generator(seed=1)
    marker = tmp_path / "MODULE_SRC_WAS_EXECUTED"
    path = write_snapshot(
        tmp_path / "network-snapshot-000400.pkl",
        tmp_path / "ref_src",
        marker,
        reference_state(G_ema),
        reference_state(G),
        init_kwargs=reference_init_kwargs(G_ema),
    )
    return G_ema, G, path, marker


def images(G, n=4, seed=0, psi=1.0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=generator)
    c = torch.softmax(torch.randn(n, G.c_dim, generator=generator), dim=1)  # soft labels on the simplex
    with torch.no_grad():
        return G(z, c, truncation_psi=psi, noise_mode="const")


# ----------------------------------------------------------------------------------------------
# 1. Reference numbers


@pytest.mark.skipif(
    not REFERENCE_NPZ.is_file(),
    reason=f"reference numbers not found at {REFERENCE_NPZ} (../shared/data beside the project root, or $GEMIX_SHARED_DATA_DIR)",
)
@pytest.mark.parametrize(("psi", "key"), [(1.0, "img_psi1"), (0.5, "img_psi05")])
def test_reference_generator_is_reproduced_to_float32_precision(psi, key):
    data = np.load(REFERENCE_NPZ)
    state = {k[len("state/") :]: data[k] for k in data.files if k.startswith("state/")}
    G = import_stylegan2_ada_state_dict(state, REFERENCE_INIT_KWARGS, class_names=["a", "b", "c"])
    with torch.no_grad():
        img = G(torch.from_numpy(data["z"]), torch.from_numpy(data["c"]), truncation_psi=psi, noise_mode="const")
    err = (img - torch.from_numpy(data[key])).abs().max().item()
    assert err < 1e-5, f"max abs error {err:.3g} against {key}"


@pytest.mark.skipif(
    not REFERENCE_NPZ.is_file(),
    reason=f"reference numbers not found at {REFERENCE_NPZ} (../shared/data beside the project root, or $GEMIX_SHARED_DATA_DIR)",
)
def test_reference_generator_without_the_kernel_flip_would_be_wrong():
    """The conv0 flip matters: importing unflipped kernels misses the reference images by far."""
    data = np.load(REFERENCE_NPZ)
    state = {k[len("state/") :]: torch.from_numpy(data[k]) for k in data.files if k.startswith("state/")}
    state = {k: (v.flip([2, 3]) if k.endswith("conv0.weight") else v) for k, v in state.items()}
    G = import_stylegan2_ada_state_dict(state, REFERENCE_INIT_KWARGS)
    with torch.no_grad():
        img = G(torch.from_numpy(data["z"]), torch.from_numpy(data["c"]), noise_mode="const")
    assert (img - torch.from_numpy(data["img_psi1"])).abs().max().item() > 1e-2


# ----------------------------------------------------------------------------------------------
# 2. Snapshot pickles with the real structure


def test_snapshot_imports_g_ema_by_default_and_g_on_request_without_running_module_src(snapshot_env):
    G_ema_src, G_src, path, marker = snapshot_env
    for which, source in (("G_ema", G_ema_src), ("G", G_src)):
        G = (
            import_stylegan2_ada(path, class_names=["cyst", "hemangioma", "metastasis"], which=which)
            if which == "G"
            else import_stylegan2_ada(path)
        )
        for psi in (1.0, 0.5):
            assert (images(G, psi=psi) - images(source, psi=psi)).abs().max().item() < 1e-6
        assert G.imported_from["network"] == which and G.imported_from["file"] == path.name
    assert G.class_names == ["cyst", "hemangioma", "metastasis"]
    assert not marker.exists(), "module_src was executed"
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_a_normal_unpickle_of_the_test_snapshot_would_run_module_src(snapshot_env, tmp_path):
    """The test snapshot is dangerous the way a real one is: plain pickle.load runs its module_src."""
    _, _, path, marker = snapshot_env
    with reference_modules(tmp_path / "ref_src"), pytest.raises(RuntimeError, match="test stand-in"):
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_snapshot_contents_are_plain_records_and_tensors(snapshot_env):
    _, _, path, marker = snapshot_env
    snapshot = load_stylegan2_ada_snapshot(path)
    assert set(snapshot) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert snapshot["G_ema"].class_name == "Generator" and snapshot["D"].class_name == "Discriminator"
    assert type(snapshot["training_set_kwargs"]) is dict and snapshot["training_set_kwargs"]["max_size"] == 681
    fc0 = snapshot["G_ema"].state["_modules"]["mapping"].state["_modules"]["fc0"]
    assert fc0.class_name == "FullyConnectedLayer" and type(fc0.state["_parameters"]["weight"]) is torch.Tensor
    assert snapshot["G_ema"].state["w_avg_beta"] == 0.995 and isinstance(snapshot["G_ema"].state["w_avg_beta"], float)
    assert float(snapshot["augment_pipe"].state["_buffers"]["p"]) == pytest.approx(0.2)
    assert not marker.exists()


def test_numpy_scalars_pickled_by_numpy_1_and_2_read_as_numbers(tmp_path):
    stream = pickle.dumps({"beta": np.float64(0.995), "n": np.int64(-3), "flag": np.bool_(True)}, protocol=2)
    for old, new in ((b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"), (b"", b"")):
        path = tmp_path / "scalars.pkl"
        path.write_bytes(stream.replace(old, new) if old else stream)
        assert load_stylegan2_ada_snapshot(path) == {"beta": 0.995, "n": -3, "flag": True}


def test_a_module_that_contains_itself_is_refused(tmp_path):
    # pickle.dumps of such a cycle passes the record an unfinished meta dict, which is refused as well:
    with reference_modules(tmp_path / "src") as (persistence, _):
        state = module_state(init_kwargs=dict(REFERENCE_INIT_KWARGS))
        record = network_record(persistence, "Generator", state, "pass")
        state["_modules"]["mapping"] = record
        path = tmp_path / "cycle.pkl"
        path.write_bytes(pickle.dumps({"G_ema": record}, protocol=4))
    with pytest.raises(SnapshotError, match="metadata of type None"):
        import_stylegan2_ada(path)
    # a hand-made stream can close the cycle after the record exists: the flattening stops it.
    from gemix_monai.generators.stylegan2_ada import PersistentRecord, _flatten_record

    record = PersistentRecord("Generator", "", 6, module_state())
    record.state["_modules"]["mapping"] = record
    with pytest.raises(SnapshotError, match="sub-module mapping contains itself"):
        _flatten_record(record, "", {}, "cycle")


@pytest.mark.parametrize("protocol", [2, 3])
def test_older_pickle_protocols_import_too(tmp_path, protocol):
    G_src = make_source_generator()
    marker = tmp_path / "marker"
    path = snapshot_of(G_src, tmp_path, marker, protocol=protocol)
    G = import_stylegan2_ada(path)
    assert (images(G) - images(G_src)).abs().max().item() < 1e-6
    assert not marker.exists()


@pytest.mark.parametrize(
    ("resolution", "channels", "c_dim", "num_layers", "num_fp16_res", "channel_base", "channel_max"),
    [
        (32, 1, 2, 2, 0, 256, 16),  # the GeMix-paper / cifar-like shape: two mapping layers
        (64, 3, 4, 8, 2, 256, 16),  # RGB, the default 8 mapping layers, float16 blocks (float32 on the CPU)
        (1024, 1, 2, 2, 4, 1024, 4),  # the largest resolution, with very narrow blocks
    ],
)
def test_supported_configurations_round_trip(
    resolution, channels, c_dim, num_layers, num_fp16_res, channel_base, channel_max
):
    G_src = make_source_generator(resolution, channels, c_dim, num_layers, num_fp16_res, channel_base, channel_max)
    G = import_stylegan2_ada_state_dict(reference_state(G_src), reference_init_kwargs(G_src))
    assert G.init_kwargs["synthesis_kwargs"]["num_fp16_res"] == num_fp16_res
    assert G.img_resolution == resolution and G.img_channels == channels and G.c_dim == c_dim
    assert (images(G, n=2) - images(G_src, n=2)).abs().max().item() < 1e-6


def _reference_mapping(state, z, num_layers, lr_multiplier=0.01):
    """The reference mapping of an unconditional network, written out: norm2(z), then lrelu FC layers."""
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    for i in range(num_layers):
        w, b = state[f"mapping.fc{i}.weight"], state[f"mapping.fc{i}.bias"]
        x = x @ (w * lr_multiplier / math.sqrt(w.shape[1])).t() + b * lr_multiplier
        x = torch.nn.functional.leaky_relu(x, 0.2) * math.sqrt(2)
    return x


def test_numpy_ints_and_a_noiseless_generator_are_accepted():
    torch.manual_seed(0)
    G_src = Generator(
        8,
        2,
        16,
        16,
        1,
        mapping_kwargs=dict(num_layers=2, embed_features=4),
        synthesis_kwargs=dict(channel_base=128, channel_max=8, num_fp16_res=0, conv_clamp=None, use_noise=False),
    )
    init = dict(
        z_dim=np.int64(8),
        c_dim=np.int64(2),
        w_dim=16,
        img_resolution=16,
        img_channels=1,
        mapping_kwargs=dict(num_layers=np.int64(2), embed_features=np.int64(4)),
        synthesis_kwargs=dict(
            channel_base=128, channel_max=8, num_fp16_res=0, conv_clamp=None, use_noise=False, fp16_channels_last=True
        ),
    )
    G = import_stylegan2_ada_state_dict(reference_state(G_src), init)
    assert (
        G.init_kwargs["synthesis_kwargs"]["use_noise"] is False
        and G.init_kwargs["mapping_kwargs"]["embed_features"] == 4
    )
    assert (images(G) - images(G_src)).abs().max().item() < 1e-6


def test_unconditional_snapshot_becomes_a_one_class_generator(tmp_path):
    G_src = make_source_generator(c_dim=1)
    ref = reference_state(G_src)
    del ref["mapping.embed.weight"], ref["mapping.embed.bias"]
    ref["mapping.fc0.weight"] = ref["mapping.fc0.weight"][:, : G_src.z_dim].clone()  # fc0 sees z only
    init = reference_init_kwargs(G_src, c_dim=0)
    marker = tmp_path / "marker"
    path = write_snapshot(tmp_path / "snap.pkl", tmp_path / "src", marker, ref, init_kwargs=init)
    G = import_stylegan2_ada(path)
    assert G.c_dim == 1 and G.class_names == ["unconditional"] and G.imported_from["unconditional"] is True
    z = torch.randn(5, G.z_dim, generator=torch.Generator().manual_seed(3))
    w = _reference_mapping(ref, z, num_layers=2)
    with torch.no_grad():
        ws = G.mapping(z, torch.ones(5, 1))
        assert (ws - w[:, None]).abs().max().item() < 1e-5
        w_avg = ref["mapping.w_avg"]
        ws_half = G.mapping(z, torch.ones(5, 1), truncation_psi=0.5)
        assert (ws_half - (w_avg + 0.5 * (w - w_avg))[:, None]).abs().max().item() < 1e-5
        expected = G_src.synthesis(w[:, None].repeat(1, G.num_ws, 1), noise_mode="const")
        assert (G.synthesis(ws, noise_mode="const") - expected).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match=r"class_names: the generator has 1 \(the snapshot is unconditional"):
        import_stylegan2_ada(path, class_names=["a", "b"])
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# 3. Pickles that would run code


@pytest.mark.parametrize(
    ("make_payload", "global_name"),
    [
        (lambda m: CallOnLoad(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
        (lambda m: CallOnLoad(eval, f"open({str(m)!r}, 'w').write('x')"), "builtins.eval"),
        (lambda m: CallOnLoad(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen"),
        (lambda m: CallOnLoad(exec, f"open({str(m)!r}, 'w').write('x')"), "builtins.exec"),
        (lambda m: CallOnLoad(getattr, [], "append"), "builtins.getattr"),
    ],
)
def test_pickles_that_would_run_code_are_refused_naming_the_global(tmp_path, make_payload, global_name):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": make_payload(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match=f"'{global_name}'") as info:
        import_stylegan2_ada(path)
    assert info.value.global_name == global_name
    assert "nothing from the file was executed" in str(info.value)
    assert not marker.exists()


def test_code_hidden_deep_inside_a_well_formed_snapshot_is_refused(tmp_path):
    G_src = make_source_generator()
    marker = tmp_path / "PWNED"
    path = snapshot_of(G_src, tmp_path, marker, extra_state=CallOnLoad(os.system, f"touch {marker}"))
    with pytest.raises(UnsafePickleError, match="system'"):
        import_stylegan2_ada(path)
    assert not marker.exists()


def test_code_hidden_in_a_tensor_storage_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    evil_storage = CallOnLoad(
        torch.storage._load_from_bytes, pickle.dumps(CallOnLoad(os.system, f"touch {marker}"), protocol=2)
    )
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": evil_storage}, protocol=4))
    with pytest.raises(SnapshotError, match="cannot be read safely"):
        import_stylegan2_ada(path)
    assert not marker.exists()


def test_a_stand_in_cannot_be_altered_by_the_pickle(tmp_path):
    """A BUILD opcode aimed at an allowed function (e.g. to change its defaults) is refused."""
    stream = (
        b"\x80\x04"
        + b"\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v2\x93"  # STACK_GLOBAL
        + b"}\x8c\x0c__defaults__)s"
        + b"b"
        + b"."
    )  # {'__defaults__': ()} BUILD STOP
    path = tmp_path / "build.pkl"
    path.write_bytes(stream)
    with pytest.raises(SnapshotError, match="refused"):
        load_stylegan2_ada_snapshot(path)


# ----------------------------------------------------------------------------------------------
# 4. Bad input


def test_not_a_pickle_is_named(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_text("hello, this is text")
    with pytest.raises(SnapshotError, match="notes.pkl: not a pickle"):
        import_stylegan2_ada(path)
    zipped = tmp_path / "generator.pt"
    make_source_generator().save_checkpoint(zipped)
    with pytest.raises(SnapshotError, match="zip archive"):
        import_stylegan2_ada(zipped)
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pickle.dumps({"G_ema": [1, 2, 3]}, protocol=4)[:-5])
    with pytest.raises(SnapshotError, match="not a readable StyleGAN2-ADA snapshot pickle"):
        import_stylegan2_ada(truncated)
    with pytest.raises(FileNotFoundError, match="snapshot not found"):
        import_stylegan2_ada(tmp_path / "missing.pkl")


def test_missing_g_ema_and_wrong_network_are_named(tmp_path):
    G_src = make_source_generator()
    path = snapshot_of(G_src, tmp_path, tmp_path / "marker", drop=("G_ema",))
    with pytest.raises(
        SnapshotError, match=r"no 'G_ema' entry \(found keys \['D', 'G', 'augment_pipe', 'training_set_kwargs'\]\)"
    ):
        import_stylegan2_ada(path)
    assert import_stylegan2_ada(path, which="G").c_dim == 3
    with pytest.raises(ValueError, match=r"which must be one of \('G_ema', 'G'\), got 'D'"):
        import_stylegan2_ada(path, which="D")
    other = tmp_path / "list.pkl"
    other.write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(SnapshotError, match="pickles a dict"):
        import_stylegan2_ada(other)


def test_wrong_number_of_class_names_is_refused(snapshot_env):
    _, _, path, _ = snapshot_env
    with pytest.raises(ValueError, match=r"class_names: the generator has 3 classes, got 2 names"):
        import_stylegan2_ada(path, class_names=["normal", "pneumonia"])


@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_unsupported_architecture_is_refused_naming_it(tmp_path, architecture):
    G_src = make_source_generator()
    init = reference_init_kwargs(G_src)
    init["synthesis_kwargs"]["architecture"] = architecture
    with pytest.raises(SnapshotError, match=f"unsupported synthesis architecture '{architecture}'"):
        import_stylegan2_ada_state_dict(reference_state(G_src), init)
    path = write_snapshot(
        tmp_path / "snap.pkl", tmp_path / "src", tmp_path / "marker", reference_state(G_src), init_kwargs=init
    )
    with pytest.raises(SnapshotError, match=f"'{architecture}'"):
        import_stylegan2_ada(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda init, state: init.update(img_resolution=2048), "img_resolution 2048 is not supported"),
        (lambda init, state: init.update(img_resolution=48), "img_resolution 48 is not supported"),
        (lambda init, state: init["mapping_kwargs"].update(num_layers=9), r"mapping_kwargs\['num_layers'\] = 9"),
        (lambda init, state: init["synthesis_kwargs"].update(kernel_size=5), r"synthesis_kwargs\['kernel_size'\] = 5"),
        (lambda init, state: init["synthesis_kwargs"].update(magic=1), r"unsupported synthesis_kwargs \['magic'\]"),
        (lambda init, state: init.update(label_smoothing=0.1), r"unknown generator arguments \['label_smoothing'\]"),
        (lambda init, state: init.pop("w_dim"), r"lack \['w_dim'\]"),
        (lambda init, state: state.pop("mapping.fc1.bias"), r"missing entries \['mapping.fc1.bias'\]"),
        (
            lambda init, state: state.update({"synthesis.b8.skip.weight": torch.zeros(1)}),
            r"unexpected entries \['synthesis.b8.skip.weight'\]",
        ),
        (
            lambda init, state: init.update(c_dim=2),
            r"wrong shape \['mapping.embed.weight: \(16, 3\) in the snapshot, \(16, 2\) expected",
        ),
        (
            lambda init, state: state.update({"synthesis.b8.resample_filter": torch.ones(4, 4)}),
            "synthesis.b8.resample_filter is not the resampling filter",
        ),
    ],
)
def test_bad_configurations_and_weights_are_named(change, message):
    G_src = make_source_generator()
    init, state = reference_init_kwargs(G_src), reference_state(G_src)
    change(init, state)
    with pytest.raises(SnapshotError, match=message):
        import_stylegan2_ada_state_dict(state, init)


def test_a_network_that_is_not_a_generator_is_refused(tmp_path):
    marker = tmp_path / "marker"
    with reference_modules(tmp_path / "src") as (persistence, _):
        snapshot = {"G_ema": network_record(persistence, "Discriminator", module_state(), "pass")}
        path = tmp_path / "snap.pkl"
        path.write_bytes(pickle.dumps(snapshot, protocol=4))
    with pytest.raises(SnapshotError, match="expected the reference code's 'Generator' class, found 'Discriminator'"):
        import_stylegan2_ada(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# 5. The checkpoint and the command line


def test_cli_writes_a_checkpoint_that_from_checkpoint_and_generate_use(snapshot_env, tmp_path, capsys):
    G_src, _, path, marker = snapshot_env
    out = tmp_path / "run" / "models" / "generator" / "generator.pt"
    rc = cli.main(
        ["import-stylegan2", str(path), "--out", str(out), "--class-names", "cyst", "hemangioma", "metastasis"]
    )
    assert rc == 0 and out.is_file()
    assert str(out) in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["format"] == "gemix-generator/1"
    assert ckpt["imported_from"]["file"] == path.name and ckpt["imported_from"]["network"] == "G_ema"
    assert len(ckpt["imported_from"]["sha256"]) == 64
    G = Generator.from_checkpoint(out, expected_num_classes=3, expected_resolution=32)
    assert G.class_names == ["cyst", "hemangioma", "metastasis"]
    labels = torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5]])
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(G.generate(labels, z=z), G_src.generate(labels, z=z), atol=1e-6)
    assert not marker.exists()

    # The bundle's `generate` subcommand reads it from <bundle-root>/models/generator/generator.pt.
    rc = cli.main(
        [
            "generate",
            "--bundle-root",
            str(tmp_path / "run"),
            "--num-images",
            "3",
            "--device",
            "cpu",
            "--output-dir",
            str(tmp_path / "synthetic"),
            "--set",
            "image_format=png",
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "synthetic").rglob("*.png"))) == 3


def test_cli_reports_errors_without_a_traceback(snapshot_env, tmp_path, capsys):
    _, _, path, _ = snapshot_env
    assert cli.main(["import-stylegan2", str(path), "--out", str(tmp_path / "g.pt"), "--class-names", "a"]) == 1
    assert "class_names: the generator has 3 classes" in capsys.readouterr().err
    bad = tmp_path / "bad.pkl"
    bad.write_text("nope")
    assert cli.main(["import-stylegan2", str(bad), "--out", str(tmp_path / "g.pt")]) == 1
    assert "bad.pkl: not a pickle" in capsys.readouterr().err
    assert not (tmp_path / "g.pt").exists()


def test_convert_writes_g_on_request(snapshot_env, tmp_path):
    _, G_src, path, _ = snapshot_env
    out = convert_stylegan2_ada(path, tmp_path / "g.pt", which="G")
    G = Generator.from_checkpoint(out)
    assert (images(G) - images(G_src)).abs().max().item() < 1e-6
    assert torch.load(out, weights_only=True)["imported_from"]["network"] == "G"


def test_the_python_example_in_docs_generators_runs(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parents[2] / "docs" / "generators.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    G_src = make_source_generator(c_dim=2)
    marker = tmp_path / "marker"
    snapshot_of(G_src, tmp_path, marker, name="network-snapshot-000400.pkl")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "docs/generators.md", "exec"), namespace)
    assert namespace["images"].shape == (1, 1, 32, 32)
    assert Generator.from_checkpoint(tmp_path / "generator.pt").class_names == ["normal", "pneumonia"]
    assert not marker.exists()


def test_cli_help_names_the_subcommand_and_its_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["import-stylegan2", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: gemix-monai import-stylegan2" in out and "--class-names" in out and "--which" in out
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "import-stylegan2" in capsys.readouterr().out
