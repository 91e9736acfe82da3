"""Handlers of the conditional GAN trainer (:mod:`gemix_monai.engines.gan`).

Each is a small class with ``attach(engine)``. They read the trainer through its attributes
(``G``, ``G_ema``, ``D``, ``augment_pipe``, ``options.batch_size``, ``images_seen``,
``training_state_dict()``, ``class_names``, ``rank``) and the per-step ``engine.state.output``
dict (``loss_G``, ``loss_D``, ``r1_penalty``, ``pl_penalty``, ``pl_length``, ``real_sign_sum``,
``real_count``, ...), whose values are already reduced over all processes. Only rank 0 writes
files. Handlers with state that matters for an exact resume register in
``engine.stateful_handlers`` and are saved in the training checkpoint.
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

from gemix_monai.utils import atomic_torch_save, atomic_write_bytes

__all__ = [
    "GeneratorEmaHandler",
    "TrainingClock",
    "AdaptiveAugmentHandler",
    "GanCheckpointHandler",
    "SampleGridHandler",
    "GanTensorBoardHandler",
    "ema_beta",
    "update_ema",
    "render_sample_grid",
    "compose_sample_grid",
    "mask_contours",
    "walk_pairs",
    "GENERATOR_SUBPATH",
]

#: Where a GAN run puts its exported generator, relative to its output folder. Not directly in ``models/``:
#: MONAI Label's bundle tasks offer every ``models/*.pt`` as a weight file of the bundle's classifier.
GENERATOR_SUBPATH = Path("models") / "generator" / "generator.pt"


def _every_images(engine, every_images: float) -> bool:
    """True on the step whose global batch crosses a multiple of ``every_images``."""
    seen, batch = engine.images_seen, engine.options.batch_size
    return every_images > 0 and int(seen // every_images) > int((seen - batch) // every_images)


# ---------------------------------------------------------------------------------------------
# EMA generator


def ema_beta(batch_size: int, images_seen: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """Per-step EMA decay for a half-life of ``ema_kimg·1000`` images.

    ``β = 0.5^(batch_size / half_life)``: after ``half_life`` images the EMA has moved half-way
    to a constant target. With ``ema_rampup`` the half-life is at most ``ema_rampup·images_seen``,
    so the early, fast-changing generator is not averaged with its random initialisation.
    """
    half_life = ema_kimg * 1000
    if ema_rampup is not None:
        half_life = min(half_life, images_seen * ema_rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))


@torch.no_grad()
def update_ema(G: torch.nn.Module, G_ema: torch.nn.Module, beta: float) -> None:
    """``θ_ema ← β·θ_ema + (1−β)·θ`` for parameters; buffers (e.g. ``w_avg``) are copied."""
    params_ema, params = list(G_ema.parameters()), [p.detach() for p in G.parameters()]
    buffers_ema, buffers = list(G_ema.buffers()), list(G.buffers())
    from gemix_monai.fast import exact_fast

    if exact_fast() and params and len(params_ema) == len(params) and len(buffers_ema) == len(buffers):
        # the same lerp per tensor, in two foreach calls instead of 2 ops per parameter
        torch._foreach_copy_(params_ema, torch._foreach_lerp(params, params_ema, beta))
        if buffers:
            torch._foreach_copy_(buffers_ema, buffers)
        return
    for p_ema, p in zip(params_ema, params):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(buffers_ema, buffers):
        b_ema.copy_(b)


class GeneratorEmaHandler:
    """Update ``engine.G_ema`` after every step with the half-life ``ema_kimg`` (see :func:`ema_beta`)."""

    # Why not Ignite's EMAHandler: its momentum is a constant, or a linear warm-up over iterations; StyleGAN2-ADA's
    # decay is a half-life in images that depends on the batch size and, during ramp-up, on the images seen (a
    # hyperbola, resumed exactly from the image count), and Ignite's buffer "copy" aliases the model's buffers
    # (ema_b.data = b.data) instead of copying them. With no ramp-up and one batch size the two agree (tested).

    def __init__(self, ema_kimg: float = 10.0, ema_rampup: float | None = 0.05):
        if ema_kimg <= 0:
            raise ValueError(f"ema_kimg must be > 0, got {ema_kimg}")
        self.ema_kimg, self.ema_rampup = ema_kimg, ema_rampup

    def __call__(self, engine: Engine) -> None:
        beta = ema_beta(engine.options.batch_size, engine.images_seen, self.ema_kimg, self.ema_rampup)
        update_ema(engine.G, engine.G_ema, beta)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)


# ---------------------------------------------------------------------------------------------
# ADA


class AdaptiveAugmentHandler:
    """Adjust the augmentation probability ``engine.augment_pipe.p`` (adaptive discriminator augmentation).

    Every ``interval`` steps: ``r_t = E[sign(D(real))]`` over the real images of those steps
    (all processes), then ``p ← clamp(p + sign(r_t − target)·batch_size·interval/(ada_kimg·1000), 0, 1)``.
    An overfitting D is confident on reals (r_t → 1) and gets more augmentation. Publishes
    ``engine.state.metrics["ada_p"]`` and ``["ada_r_t"]``.
    """

    def __init__(self, target: float = 0.6, interval: int = 4, ada_kimg: float = 100.0, name: str = "ada"):
        if not 0 <= target <= 1:
            raise ValueError(f"ADA target must be in [0, 1], got {target}")
        if interval < 1 or ada_kimg <= 0:
            raise ValueError(f"ADA interval must be >= 1 and ada_kimg > 0, got {interval}, {ada_kimg}")
        self.target, self.interval, self.ada_kimg, self.name = target, interval, ada_kimg, name
        self.sign_sum, self.count, self.last_r_t = 0.0, 0.0, float("nan")

    def __call__(self, engine: Engine) -> None:
        out = engine.state.output
        self.sign_sum += float(out["real_sign_sum"])
        self.count += float(out["real_count"])
        if engine.state.iteration % self.interval == 0 and self.count > 0:
            self.last_r_t = self.sign_sum / self.count
            step = (
                np.sign(self.last_r_t - self.target)
                * engine.options.batch_size
                * self.interval
                / (self.ada_kimg * 1000)
            )
            p = float(engine.augment_pipe.p)
            engine.augment_pipe.set_p(min(max(p + float(step), 0.0), 1.0))
            self.sign_sum, self.count = 0.0, 0.0
        engine.state.metrics["ada_p"] = float(engine.augment_pipe.p)
        engine.state.metrics["ada_r_t"] = self.last_r_t

    def state_dict(self) -> dict:
        return {"sign_sum": self.sign_sum, "count": self.count, "last_r_t": self.last_r_t}

    def load_state_dict(self, state: dict) -> None:
        self.sign_sum, self.count, self.last_r_t = (
            float(state["sign_sum"]),
            float(state["count"]),
            float(state["last_r_t"]),
        )

    def attach(self, engine: Engine) -> None:
        if getattr(engine, "augment_pipe", None) is None:
            raise ValueError("AdaptiveAugmentHandler needs a trainer with an augment_pipe")
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.stateful_handlers[self.name] = self


# ---------------------------------------------------------------------------------------------
# time


class TrainingClock:
    """CPU and wall seconds spent training, across resumes (saved in the training checkpoint as ``clock``).

    ``cpu_seconds`` is this process's CPU time (all threads) between ``STARTED`` and now plus what earlier runs
    recorded; time spent in the training-time audit is counted apart (``audit_cpu_seconds``) and left out of
    ``train_cpu_seconds`` — the cost of the generator itself, reported as kimg per CPU-hour (docs/generators.md).
    """

    def __init__(self):
        self.cpu_before = self.wall_before = self.audit_cpu_seconds = 0.0
        self._cpu0 = self._wall0 = None

    def attach(self, engine: Engine) -> None:
        engine.stateful_handlers["clock"] = self
        engine.clock = self
        engine.add_event_handler(Events.STARTED, self._start)

    def _start(self, engine: Engine) -> None:
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_before + (time.process_time() - self._cpu0 if self._cpu0 is not None else 0.0)

    @property
    def wall_seconds(self) -> float:
        return self.wall_before + (time.perf_counter() - self._wall0 if self._wall0 is not None else 0.0)

    @property
    def train_cpu_seconds(self) -> float:
        return self.cpu_seconds - self.audit_cpu_seconds

    def state_dict(self) -> dict:
        return {
            "cpu_seconds": self.cpu_seconds,
            "wall_seconds": self.wall_seconds,
            "audit_cpu_seconds": self.audit_cpu_seconds,
        }

    def load_state_dict(self, state: dict) -> None:
        self.cpu_before = float(state.get("cpu_seconds", 0.0))
        self.wall_before = float(state.get("wall_seconds", 0.0))
        self.audit_cpu_seconds = float(state.get("audit_cpu_seconds", 0.0))
        self._cpu0 = self._wall0 = None


# ---------------------------------------------------------------------------------------------
# checkpoints


def _export_generator(G_ema, class_names: Sequence[str], path: Path, extra: dict | None = None) -> None:
    """Write ``G_ema`` in the generator format of docs/design.md (``Generator.save_checkpoint``, atomic);
    ``extra`` adds plain-data top-level entries (``training``: how it was trained; ``selection``: why it is best)."""
    if hasattr(G_ema, "save_checkpoint"):
        G_ema.save_checkpoint(path, extra=extra)
    else:
        atomic_torch_save(
            {
                "format": "gemix-generator/1",
                "config": dict(G_ema.init_kwargs),
                "class_names": list(class_names),
                "state_dict": G_ema.state_dict(),
                **(extra or {}),
            },
            path,
        )


def _training_extra(engine) -> dict | None:
    record = getattr(engine, "training_record", None)
    return {"training": record()} if callable(record) else None


class _EveryImagesHandler:
    """Calls ``self.save(engine)`` each time training crosses a multiple of ``self.every_images``
    images, and once more when training completes (``save`` skips an iteration already saved)."""

    every_images: float
    _saved_at: int = -1

    def save(self, engine: Engine) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _claim(self, engine: Engine) -> bool:
        """Whether ``save`` should act now: once per iteration (the interval and the end may fall on one), and on
        rank 0 only (the other processes hold the same state)."""
        if engine.state.iteration == self._saved_at:
            return False
        self._saved_at = engine.state.iteration
        return engine.rank == 0

    def _on_iteration(self, engine: Engine) -> None:
        if _every_images(engine, self.every_images):
            self.save(engine)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._on_iteration)
        engine.add_event_handler(Events.COMPLETED, self.save)


class GanCheckpointHandler(_EveryImagesHandler):
    """Save the full training state every ``every_kimg`` and at the end, and export ``G_ema``.

    Writes (rank 0, atomically) ``output_dir/checkpoints/latest.pt`` (plus
    ``checkpoints/gan-<kimg>.pt`` when ``keep_snapshots``) and ``output_dir/models/generator/generator.pt``.
    All files load with ``torch.load(..., weights_only=True)``.
    """

    # Why not Ignite's Checkpoint + DiskSaver(atomic=True): it renames without fsync (a power cut can leave an empty
    # latest.pt) and makes every file group- and world-readable whatever the umask (both tested); and a checkpoint
    # here is one self-describing training state (format tag, RNG of torch/CUDA/NumPy/Python, counters, handler
    # states, data contract) that resume validates before loading, saved every N images and exported as the
    # generator file at each save: of Checkpoint only the file writing would be used.
    def __init__(self, output_dir, every_kimg: float, keep_snapshots: bool = False, export_generator: bool = True):
        self.output_dir = Path(output_dir)
        self.every_images = every_kimg * 1000
        self.keep_snapshots, self.export_generator = keep_snapshots, export_generator
        self._saved_at = -1

    @property
    def latest_path(self) -> Path:
        return self.output_dir / "checkpoints" / "latest.pt"

    @property
    def generator_path(self) -> Path:
        return self.output_dir / GENERATOR_SUBPATH

    def save(self, engine: Engine) -> None:
        if not self._claim(engine):
            return
        state = engine.training_state_dict()
        atomic_torch_save(state, self.latest_path)
        if self.keep_snapshots:
            atomic_torch_save(state, self.output_dir / "checkpoints" / f"gan-{engine.images_seen / 1000:09.3f}kimg.pt")
        if self.export_generator:
            _export_generator(engine.G_ema, engine.class_names, self.generator_path, _training_extra(engine))


# ---------------------------------------------------------------------------------------------
# sample grids


def walk_pairs(num_classes: int, max_rows: int | None = None) -> list[tuple[int, int]]:
    """Class pairs whose simplex edge gets a row: ``(0,1), (1,2), …, (K−1,0)`` (just ``(0,1)`` for K=2)."""
    if num_classes < 2:
        return []
    pairs = [(0, 1)] if num_classes == 2 else [(i, (i + 1) % num_classes) for i in range(num_classes)]
    return pairs[:max_rows] if max_rows is not None else pairs


@torch.no_grad()
def render_sample_grid(
    G,
    class_names: Sequence[str],
    *,
    num_columns: int = 8,
    max_walk_rows: int | None = None,
    seed: int = 0,
    truncation_psi: float = 1.0,
    device=None,
    generate_options: dict | None = None,
):
    """Generate the tiles of a sample grid.

    Rows ``0..K−1``: class ``k`` (one-hot label) for ``num_columns`` fixed latents, the same
    latents in every row, so a column shows one latent across classes. Then one row per pair of
    :func:`walk_pairs`: a fixed latent with ``c = (1−t)·e_i + t·e_j``, ``t = 0..1`` across the
    columns — the class manifold made visible. Synthesis noise is constant.

    Any generator family works: StyleGAN2 networks are called directly; other families (``G.family`` other than
    ``"stylegan2"``) through ``G.generate(c, z=z, **generate_options)`` (e.g. ``num_inference_steps`` of a
    diffusion generator). ``z`` rows have ``G.z_dim`` entries (a diffusion model's starting noise).

    Returns ``(tiles, row_labels)`` with ``tiles`` a float tensor ``[rows, cols, C, R, R]`` in
    [-1, 1] (on the CPU) and one label string per row.
    """
    K = len(class_names)
    if K != G.c_dim:
        raise ValueError(f"class_names has {K} names but the generator has c_dim={G.c_dim}")
    device = torch.device(device) if device is not None else next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    pairs = walk_pairs(K, max_walk_rows)
    z_cols = torch.randn(num_columns, G.z_dim, generator=gen)
    z_walk = torch.randn(max(len(pairs), 1), G.z_dim, generator=gen)
    zs, cs, labels = [], [], []
    eye = torch.eye(K)
    for k in range(K):
        zs.append(z_cols)
        cs.append(eye[k].expand(num_columns, K))
        labels.append(str(class_names[k]))
    t = torch.linspace(0, 1, num_columns)[:, None]
    for r, (i, j) in enumerate(pairs):
        zs.append(z_walk[r].expand(num_columns, -1))
        cs.append((1 - t) * eye[i] + t * eye[j])
        labels.append(f"{class_names[i]}->{class_names[j]}")
    z, c = torch.cat(zs).to(device), torch.cat(cs).to(device)
    if getattr(G, "family", "stylegan2") == "stylegan2":
        images = torch.cat(
            [
                G(zb, cb, truncation_psi=truncation_psi, noise_mode="const").float().cpu()
                for zb, cb in zip(z.split(64), c.split(64))
            ]
        )
    else:
        images = (
            G.generate(c, z=z, truncation_psi=truncation_psi, batch_size=64, **(generate_options or {})).float().cpu()
        )
    return images.reshape(len(labels), num_columns, *images.shape[1:]), labels


def _to_display(tiles: torch.Tensor) -> np.ndarray:
    """[..., C, x, y] (MONAI order) in [-1, 1] → uint8 [..., y, x, 3] (rows × columns): grey from channel 0,
    RGB from channels 0–2 if C ≥ 3."""
    x = ((tiles.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).transpose(-1, -2)
    x = x[..., :3, :, :] if x.shape[-3] >= 3 else x[..., :1, :, :].expand(*x.shape[:-3], 3, *x.shape[-2:])
    return x.movedim(-3, -1).numpy()


#: Contour colours of mask channels 1, 2, … in the sample grids (RGB), cycled beyond six structures.
MASK_COLOURS = ((255, 48, 48), (48, 220, 48), (64, 128, 255), (255, 220, 0), (255, 0, 255), (0, 230, 230))


def mask_contours(masks: torch.Tensor) -> torch.Tensor:
    """Binary masks ``[..., M, x, y]`` → their contours (bool, same shape): mask pixels with a 4-neighbour outside
    the mask (the tile border counts as outside)."""
    inside = masks > 0.5
    padded = torch.nn.functional.pad(inside.float().flatten(0, -3)[:, None], (1, 1, 1, 1)).bool()[:, 0]
    core = (
        padded[:, 1:-1, 1:-1] & padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    )
    return inside & ~core.reshape(inside.shape)


def _overlay_masks(rgb: np.ndarray, masks: torch.Tensor) -> np.ndarray:
    """Draw the contours of binary masks ``[..., M, x, y]`` (MONAI order) onto ``rgb`` ``[..., y, x, 3]`` in
    :data:`MASK_COLOURS` (later channels on top)."""
    out = rgb.copy()
    edges = mask_contours(masks).transpose(-1, -2).numpy()  # [..., M, y, x], rows × columns like rgb
    for m in range(edges.shape[-3]):
        out[edges[..., m, :, :]] = MASK_COLOURS[m % len(MASK_COLOURS)]
    return out


def compose_sample_grid(
    tiles: torch.Tensor,
    row_labels: Sequence[str],
    *,
    padding: int = 2,
    min_tile: int = 32,
    mask_channels: int = 0,
    title: str | None = None,
    font_size: int | None = None,
):
    """Lay the tiles out as a PIL image with each row's label in a left margin.

    Tiles smaller than ``min_tile`` pixels are enlarged (nearest neighbour) so the labels fit.
    The image is ``rows·(S + padding) + padding`` pixels high, ``S`` the displayed tile size, plus a band on top
    holding ``title`` when one is given. ``font_size`` (default: 10 px up to 64-px tiles, then S / 8) sets the
    labels' size.
    With ``mask_channels = M > 0`` the last ``M`` channels of each tile are its mask (image–mask generators,
    docs/segmentation.md): the image channels are shown with the contour of each binarised mask channel drawn
    over them in :data:`MASK_COLOURS`.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = tiles.shape[:2]
    res = tiles.shape[-1]
    scale = max(1, math.ceil(min_tile / res))
    size = res * scale
    masks = None
    if mask_channels:
        from gemix_monai.data.masks import binarise_masks, split_image_mask

        tiles, soft = split_image_mask(tiles.flatten(0, 1), mask_channels)
        tiles, masks = tiles.reshape(rows, cols, *tiles.shape[1:]), binarise_masks(soft)
        masks = masks.reshape(rows, cols, *masks.shape[1:])
    rgb = _to_display(tiles)
    if scale > 1:
        rgb = rgb.repeat(scale, axis=-3).repeat(scale, axis=-2)
        if masks is not None:
            masks = masks.repeat_interleave(scale, dim=-1).repeat_interleave(scale, dim=-2)
    if masks is not None:
        rgb = _overlay_masks(rgb, masks)
    if font_size is None and size <= 64:
        font = ImageFont.load_default()
        text_height = 10
    else:
        text_height = font_size or max(10, size // 8)
        font = ImageFont.load_default(size=text_height)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(int(measure.textlength(label, font=font)) for label in row_labels) + 2 * padding + 4
    width = margin + cols * (size + padding) + padding
    band = 0
    if title:
        band = text_height + 3 * padding + 4
        width = max(width, int(measure.textlength(title, font=font)) + 4 * padding)
    canvas = Image.new("RGB", (width, band + rows * (size + padding) + padding), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((2 * padding, 2 * padding), title, fill=(255, 255, 255), font=font)
    for r in range(rows):
        top = band + padding + r * (size + padding)
        draw.text((padding, top + size // 2 - text_height // 2), row_labels[r], fill=(255, 255, 255), font=font)
        for col in range(cols):
            canvas.paste(Image.fromarray(rgb[r, col]), (margin + padding + col * (size + padding), top))
    return canvas


def _mask_channels(engine) -> int:
    """``M`` of the data the engine trains on (its contract, docs/segmentation.md); 0 for images alone."""
    from gemix_monai.generators.protocol import mask_channels_of

    contract = getattr(engine, "contract", None)
    return mask_channels_of(contract) if contract is not None else mask_channels_of(engine.G_ema)


class SampleGridHandler(_EveryImagesHandler):
    """Write a sample grid of ``G_ema`` (:func:`render_sample_grid`) every ``every_kimg`` and at the end.

    Files: ``output_dir/fakes-<images seen, 9 digits>.png`` (rank 0). Latents are fixed by
    ``seed``, so successive grids show the same samples evolving. A generator trained on image–mask pairs shows
    each image with its mask's contour (:func:`compose_sample_grid`), in the PNG and in TensorBoard. Tiles are
    enlarged to at least ``min_tile`` pixels (nearest neighbour: a 32-px tile becomes 128 px, large enough to judge),
    each row labelled with its class (or class-to-class walk), and the grid titled with the run (``run_name``,
    default the folder above ``output_dir``), the seed and the kimg shown.
    """

    def __init__(
        self,
        output_dir,
        every_kimg: float,
        *,
        num_columns: int = 8,
        max_walk_rows: int | None = None,
        seed: int = 0,
        generate_options: dict | None = None,
        min_tile: int = 128,
        run_name: str | None = None,
    ):
        self.output_dir = Path(output_dir)
        self.min_tile = int(min_tile)
        self.run_name = run_name if run_name is not None else Path(output_dir).resolve().parent.name
        self.every_images = every_kimg * 1000
        self.num_columns, self.max_walk_rows, self.seed = num_columns, max_walk_rows, seed
        self.generate_options = dict(generate_options or {})
        self._saved_at = -1
        self.last_path: Path | None = None

    def save(self, engine: Engine) -> None:
        if engine.state.iteration == self._saved_at or engine.rank != 0:
            return
        self._saved_at = engine.state.iteration
        tiles, labels = render_sample_grid(
            engine.G_ema,
            engine.class_names,
            num_columns=self.num_columns,
            max_walk_rows=self.max_walk_rows,
            seed=self.seed,
            generate_options=self.generate_options,
        )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"fakes-{engine.images_seen:09d}.png"
        family = getattr(engine.G_ema, "family", "stylegan2")
        title = (
            f"{family} samples, run {self.run_name}, seed {self.seed}, {engine.images_seen / 1000:.3f} kimg "
            f"(rows: one class each, then class-to-class walks)"
        )
        grid = compose_sample_grid(
            tiles, labels, mask_channels=_mask_channels(engine), min_tile=self.min_tile, title=title
        )
        png = io.BytesIO()
        grid.save(png, format="PNG")
        atomic_write_bytes(path, png.getvalue())
        self.last_path = path
        # the same grid in TensorBoard, through the SummaryWriter of the engine's GanTensorBoardHandler
        writer = getattr(engine, "summary_writer", None)
        if writer is not None:
            writer.add_image("Samples/grid", np.asarray(grid.convert("RGB")), engine.images_seen, dataformats="HWC")


# ---------------------------------------------------------------------------------------------
# TensorBoard

_TAGS = {
    "loss_G": "Loss/G",
    "loss_D": "Loss/D",
    "r1_penalty": "Loss/r1_penalty",
    "pl_penalty": "Loss/pl_penalty",
    "pl_length": "Metrics/pl_length",
    "D_real": "Metrics/D_real",
    "D_fake": "Metrics/D_fake",
}


class GanTensorBoardHandler:
    """Scalars every ``every_n_iterations`` steps, averaged over those steps, x-axis = images seen.

    Tags: ``Loss/G``, ``Loss/D``, ``Loss/r1_penalty``, ``Loss/pl_penalty``, ``Metrics/pl_length``,
    ``Metrics/D_real``, ``Metrics/D_fake``, ``ADA/p``, ``ADA/r_t``, ``Speed/images_per_s``,
    ``Progress/kimg``.
    """

    def __init__(self, log_dir, every_n_iterations: int = 10):
        self.log_dir, self.every = Path(log_dir), max(1, int(every_n_iterations))
        self.writer = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._t0, self._images0 = None, 0

    def _start(self, engine: Engine) -> None:
        if engine.rank == 0 and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        engine.summary_writer = self.writer  # shared: SampleGridHandler adds its grids as images
        self._t0, self._images0 = time.perf_counter(), engine.images_seen

    def _iteration(self, engine: Engine) -> None:
        for key, value in (engine.state.output or {}).items():
            if key in _TAGS:
                self._sums[key] = self._sums.get(key, 0.0) + float(value)
                self._counts[key] = self._counts.get(key, 0) + 1
        if engine.state.iteration % self.every == 0:
            self._write(engine)

    def _write(self, engine: Engine) -> None:
        now = time.perf_counter()
        if self.writer is not None:
            step = engine.images_seen
            for key, total in self._sums.items():
                self.writer.add_scalar(_TAGS[key], total / self._counts[key], step)
            for key, tag in (("ada_p", "ADA/p"), ("ada_r_t", "ADA/r_t")):
                value = engine.state.metrics.get(key)
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(tag, value, step)
            if self._t0 is not None and now > self._t0:
                self.writer.add_scalar("Speed/images_per_s", (step - self._images0) / (now - self._t0), step)
            self.writer.add_scalar("Progress/kimg", step / 1000, step)
        self._sums, self._counts = {}, {}
        self._t0, self._images0 = now, engine.images_seen

    def _close(self, engine: Engine) -> None:
        if self._sums:
            self._write(engine)
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
        engine.summary_writer = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._close)
