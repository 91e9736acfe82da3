"""What the conditional generators share: the argument checks of ``__init__`` and ``generate``, the latents, and
the checkpoint layout ``{"format", "config", "class_names", "state_dict", "contract"}`` (written and read back
here for the StyleGAN2 ``Generator`` too), and the base class of the DCGAN and diffusion generators.

The protocol itself (``gemix_monai.generators.protocol.ConditionalGenerator``) and the loader that dispatches
on the format tag live one layer up; this module only gives each family the same face.
"""

from __future__ import annotations

import copy
import numbers
import os

import torch
from torch import nn

from gemix_monai.networks.labels import as_soft_labels
from gemix_monai.networks.synthesis import NOISE_MODES
from gemix_monai.utils import atomic_torch_save, check_truncation_psi, plain_data, safe_torch_load

__all__ = [
    "ConditionalGeneratorBase",
    "SamplingTemplate",
    "GeneratorShape",
    "check_seed_value",
    "check_batch_size",
    "check_class_names",
    "labels_and_latents",
    "save_generator_checkpoint",
    "load_checkpoint_dict",
    "rebuild_generator",
]


def check_seed_value(seed) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32):
        raise ValueError(f"seed must be an integer in [0, 2**32) or None, got {seed!r}")
    return None if seed is None else int(seed)


def check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def check_resolution(name: str, img_resolution: int, low: int = 16, high: int = 256) -> None:
    if (
        not isinstance(img_resolution, int)
        or isinstance(img_resolution, bool)
        or not low <= img_resolution <= high
        or img_resolution & (img_resolution - 1)
    ):
        raise ValueError(f"{name}: img_resolution must be a power of two in {low}..{high}, got {img_resolution!r}")


def check_class_names(name: str, class_names, c_dim: int) -> list[str]:
    """``class_names`` as a list of ``c_dim`` strings (``class_0..`` when ``None``); ``name`` is the network's."""
    if class_names is None:
        return [f"class_{k}" for k in range(c_dim)]
    if isinstance(class_names, str) or len(class_names) != c_dim or not all(isinstance(n, str) for n in class_names):
        raise ValueError(f"{name}: class_names must be a list of c_dim={c_dim} strings, got {class_names!r}")
    return list(class_names)


def labels_and_latents(soft_labels, z, seed: int | None, c_dim: int, z_dim: int):
    """Soft labels ``[N, c_dim]`` (checked) and latents ``z`` ``[N, z_dim]`` (drawn from N(0, I) with ``seed`` when
    not given), both on the CPU as given."""
    labels = as_soft_labels(soft_labels, c_dim, name="soft_labels")
    n = labels.shape[0]
    if z is None:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return labels, torch.randn(n, z_dim, generator=gen)
    z = torch.as_tensor(z)
    if z.ndim != 2 or tuple(z.shape) != (n, z_dim):
        raise ValueError(
            f"z must have shape [N, z_dim] = [{n}, {z_dim}] (one row per soft label), got {tuple(z.shape)}"
        )
    return labels, z


def save_generator_checkpoint(generator: nn.Module, fmt: str, path: str | os.PathLike, extra: dict | None) -> str:
    """Write ``{"format": fmt, "config": init_kwargs, "class_names", "state_dict"[, "contract"]}`` and the plain
    ``extra`` entries atomically (tensors on CPU; the file loads with ``torch.load(weights_only=True)``)."""
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    payload = {
        "format": fmt,
        "config": copy.deepcopy(generator.init_kwargs),
        "class_names": list(generator.class_names),
        "state_dict": state,
    }
    if getattr(generator, "contract", None) is not None:
        # classes + preprocessing of the training data (docs/data.md, "The stored contract")
        payload["contract"] = copy.deepcopy(generator.contract)
    if extra:
        clash = sorted(set(map(str, extra)) & set(payload))
        if clash:
            raise ValueError(f"save_checkpoint: extra may not replace the entries {clash}")
        payload.update(plain_data(dict(extra), "extra"))
    return str(atomic_torch_save(payload, path))


def load_checkpoint_dict(path: str | os.PathLike) -> dict:
    ckpt = safe_torch_load(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def rebuild_generator(
    cls,
    ckpt: dict,
    config: dict,
    state: dict,
    where: str,
    device,
    *,
    expected_resolution: int | None = None,
    expected_channels: int | None = None,
    expected_num_classes: int | None = None,
):
    """``cls(**config)`` with ``state`` loaded strictly, the checkpoint's class names and contract, in eval mode on
    ``device``; the ``expected_*`` arguments refuse another resolution, number of channels or of classes."""
    what_net = f"{cls.family} generator" if cls.family else "generator"
    if ckpt.get("class_names") is not None:
        config["class_names"] = list(ckpt["class_names"])
    for what, key, expected in (
        ("resolution", "img_resolution", expected_resolution),
        ("number of image channels", "img_channels", expected_channels),
        ("number of classes", "c_dim", expected_num_classes),
    ):
        if expected is not None and config.get(key) != expected:
            raise ValueError(f"{where}: the generator's {what} ({key}) is {config.get(key)}, expected {expected}")
    try:
        generator = cls(**config)
    except TypeError as e:
        raise ValueError(
            f"{where}: the stored {what_net} config does not match this version's {cls.__name__} arguments: {e}"
        ) from e
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{where}: the stored weights do not fit the stored {what_net} config: {e}") from e
    generator.contract = ckpt.get("contract")
    return generator.eval().requires_grad_(False).to(device)


class GeneratorShape:
    """The generator protocol's derived attributes, from ``c_dim``, ``img_channels`` and ``img_resolution``."""

    @property
    def num_classes(self) -> int:
        return self.c_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.img_channels, self.img_resolution, self.img_resolution)


class SamplingTemplate(GeneratorShape):
    """The one ``generate()`` of every generator family (docs/design.md, "A generator family"): the checks of ψ,
    ``noise_mode``, ``seed``, ``batch_size`` and the family's options, the labels and latents, the batching loop
    (under the seed's RNG, in eval mode where the family asks for it) and the finite check of the output. A family
    fills in :meth:`_sample` (one batch) and, when it takes other options or treats ψ differently,
    :meth:`_sampling_options`.
    """

    #: ``generate`` switches the network to eval mode for the sampling (restored afterwards)
    generate_in_eval_mode = True

    def _sampling_options(self, truncation_psi, noise_mode, options: dict) -> tuple[float, dict]:
        """``(checked ψ, the options of :meth:`_sample`)``; by default any option is an error naming it."""
        if options:
            raise TypeError(f"{type(self).__name__}.generate got unknown options {sorted(options)}")
        return check_truncation_psi(truncation_psi), {}

    def _sample(self, z: torch.Tensor, labels: torch.Tensor, truncation_psi: float, noise_mode: str, **options):
        """Images ``[B, C, R, R]`` for latents ``z [B, z_dim]`` and soft labels ``[B, K]`` on the network's device."""
        raise NotImplementedError

    def _device(self, device) -> torch.device:
        if device is not None:
            self.to(torch.device(device))
        return next(self.parameters()).device

    @torch.no_grad()
    def generate(
        self,
        soft_labels,
        z: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
        batch_size: int = 64,
        device=None,
        seed: int | None = None,
        **options,
    ) -> torch.Tensor:
        """Images for a batch of soft labels, in the training intensity range [-1, 1].

        Args:
            soft_labels: [N, K] tensor, array or list of rows, each on the probability simplex
                (entries >= 0 summing to 1; a one-hot row is a hard label).
            z: latents [N, z_dim]; default drawn from N(0, I) (with ``seed`` if given).
            truncation_psi: ψ < 1 trades diversity for fidelity (the family decides how). Default 1.
            noise_mode: ``"const"`` (default: the same z gives the same image), ``"random"`` or ``"none"`` (families
                without per-layer noise accept it and ignore it).
            batch_size: images per forward pass (memory bound); the result does not depend on it.
            device: where to run (the generator is moved there); default where its parameters are.
            seed: seeds ``z`` (when not given) and every random draw of the sampling, for reproducible output.
            options: the family's own sampling options (e.g. the diffusion model's ``num_inference_steps``).

        Returns:
            float32 tensor [N, img_channels, R, R] on ``device``, clamped to [-1, 1].

        Raises:
            ValueError: a row off the simplex or of the wrong length (the message names the row), ``z`` of the wrong
                shape, a bad ``noise_mode`` or ``batch_size``, a NaN/inf ``truncation_psi``, a ``seed`` outside
                ``[0, 2**32)``, or an output with NaN/inf values. TypeError: an option the family does not take.
        """
        if noise_mode not in NOISE_MODES:  # every family: one that has no noise inputs still gets a checked word
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        truncation_psi, step_options = self._sampling_options(truncation_psi, noise_mode, options)
        seed, batch_size = check_seed_value(seed), check_batch_size(batch_size)
        device = self._device(device)
        labels, z = labels_and_latents(soft_labels, z, seed, self.c_dim, self.z_dim)
        was_training = self.training
        if self.generate_in_eval_mode:
            self.eval()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed)
                images = [
                    self._sample(
                        z[i : i + batch_size].to(device=device, dtype=torch.float32),
                        labels[i : i + batch_size].to(device),
                        truncation_psi,
                        noise_mode,
                        **step_options,
                    )
                    for i in range(0, labels.shape[0], batch_size)
                ]
        finally:
            if self.generate_in_eval_mode:
                self.train(was_training)
        if not images:
            return torch.empty(0, *self.image_shape, device=device)
        out = torch.cat(images)
        # The clamp below would turn inf into a saturated image and keep NaN: refuse both (one sync per call).
        if not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"the generator produced NaN/inf values (truncation_psi={truncation_psi!r}); a finite "
                "truncation_psi of moderate size and a checkpoint with finite weights give finite images"
            )
        return out.clamp_(-1, 1).to(torch.float32)


class ConditionalGeneratorBase(SamplingTemplate, nn.Module):
    """Base of the non-StyleGAN families: ``c_dim``/``num_classes``, ``class_names``, ``img_resolution``,
    ``img_channels``, ``image_shape``, ``z_dim``, ``contract``, ``init_kwargs``, and checkpoint I/O.

    Subclasses set ``FORMAT`` (the checkpoint tag), ``family`` and call :meth:`_setup` from ``__init__``.
    """

    FORMAT = ""
    family = ""

    def _setup(self, init_kwargs: dict, class_names) -> None:
        """Check and store ``init_kwargs`` (with its ``c_dim``, ``img_resolution``, ``img_channels``) and the
        class names."""
        name = type(self).__name__
        c_dim, img_resolution, img_channels = (init_kwargs[k] for k in ("c_dim", "img_resolution", "img_channels"))
        for key, value in (("c_dim", c_dim), ("img_channels", img_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {key} must be an int >= 1, got {value!r}")
        check_resolution(name, img_resolution)
        class_names = check_class_names(name, class_names, c_dim)
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.class_names = class_names
        self.init_kwargs = plain_data({**init_kwargs, "class_names": list(class_names)}, "init_kwargs")
        #: classes + preprocessing of the data it was trained on (a dict, docs/data.md), or None
        self.contract = None

    # -- checkpoints -------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | os.PathLike, *, extra: dict | None = None) -> str:
        """Write ``{"format": FORMAT, "config": init_kwargs, "class_names", "state_dict", "contract"}`` atomically;
        the file loads with ``torch.load(weights_only=True)``."""
        return save_generator_checkpoint(self, self.FORMAT, path, extra)

    @classmethod
    def from_payload(
        cls,
        ckpt: dict,
        where: str = "checkpoint",
        device="cpu",
        **expected,
    ):
        """Rebuild from an already loaded checkpoint dict (generator file or this family's training checkpoint);
        ``expected``: ``expected_resolution``, ``expected_channels``, ``expected_num_classes`` (see
        :func:`rebuild_generator`)."""
        fmt = ckpt.get("format")
        if fmt == cls.FORMAT:
            missing = [k for k in ("config", "state_dict") if k not in ckpt]
            if missing:
                raise ValueError(f"{where}: {cls.FORMAT} checkpoint lacks the keys {missing}")
            config, state = dict(ckpt["config"]), ckpt["state_dict"]
        elif fmt == cls.TRAINING_FORMAT:
            config = ckpt.get("config", {}).get("G") if isinstance(ckpt.get("config"), dict) else None
            if not isinstance(config, dict) or "G_ema" not in ckpt:
                raise ValueError(f"{where}: {fmt} training checkpoint lacks 'G_ema' or 'config' -> 'G'")
            config, state = dict(config), ckpt["G_ema"]
        else:
            raise ValueError(f"{where}: format {fmt!r} is not a {cls.family} generator ({cls.FORMAT!r})")
        return rebuild_generator(cls, ckpt, config, state, where, device, **expected)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device="cpu", **expected):
        return cls.from_payload(load_checkpoint_dict(path), str(path), device, **expected)
