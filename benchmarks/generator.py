"""Generator benchmark: inference and training throughput of the conditional StyleGAN2-ADA networks.

For each model (the ``tiny`` preset and the 32/64/128 px presets) it measures, in one run, with
the custom ops (``GEMIX_OPS=auto``: the C++/CUDA kernels) and with the pure-PyTorch reference
(``GEMIX_OPS=ref``):

* generator inference: images/s of ``G(z, c, noise_mode="const")`` under ``torch.no_grad()``;
* training: images/s of the StyleGAN2-ADA schedule — one generator step and one discriminator
  step (non-saturating logistic loss, ADA on every image D sees, p = 0.2, "bgc") per batch, plus
  the lazy regularisers amortised as the trainer runs them: R1 every 16 steps and path length
  every 4 (when the preset uses it). Each phase is timed on its own and combined as
  ``t_main + t_R1 / 16 + t_PL / 4``; the losses are those of ``gemix_monai.engines.gan_loss``
  (a plain non-saturating step when that module is absent).

On a GPU the full presets run (batch 64 for inference, the preset's batch for training) and the
128 px figure is also given in seconds per 1000 training images, the unit of the StyleGAN2-ADA
paper (12.8–13.7 s/kimg at 128 px on one V100). On a CPU the networks' channel counts are
divided by ``--cpu-channel-divisor`` (default 8) and the batches are small, so that the whole
run takes minutes; the table says which widths were measured.

Mixed precision exists on CUDA only: there the presets run their highest resolutions in float16,
or in the dtype ``--mixed-precision`` names (``float16``, ``bfloat16``, or ``float32`` for none).

Usage: ``python -m benchmarks.generator [--quick] [--device cuda [--mixed-precision bfloat16]]``
(writes the ``generator`` section of docs/benchmarks.md, ``generator-cuda-<dtype>`` on a GPU).

``--families stylegan2 dcgan diffusion`` instead compares the generator families side by side, each with its
``--family-preset`` (default ``tiny``, 32 px): training images/s of one full step of its trainer (StyleGAN2:
the amortised schedule above with the default ops; DCGAN: one D and one G step,
``gemix_monai.engines.generative``; diffusion: one ε-MSE step) and generation images/s of
``generate(soft_labels, seed=...)`` (diffusion: DDIM with ``--diffusion-steps``, default 50). It writes the
``generator-families`` section.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._report import machine_description, timeit, write_section
from gemix_monai.networks import AugmentPipe, Discriminator, Generator, get_preset

try:  # the trainer's own losses, so the benchmark measures what training runs
    from gemix_monai.engines import gan_loss
except ImportError:  # pragma: no cover - only before the engine exists
    gan_loss = None

C_DIM = 2


@contextlib.contextmanager
def ops_impl(name: str):
    old = os.environ.get("GEMIX_OPS")
    os.environ["GEMIX_OPS"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GEMIX_OPS", None)
        else:
            os.environ["GEMIX_OPS"] = old


def custom_ops_status(device: torch.device) -> tuple[bool, str]:
    """(usable, what ``auto`` resolves to or why it cannot run) for ``device``."""
    from gemix_monai.ops import bias_act, modulated_conv2d, setup_filter, upfirdn2d
    from gemix_monai.ops._ext import resolve_impl

    try:
        with ops_impl("auto"):
            resolved = resolve_impl(None, device, "benchmark")
            x = torch.randn(2, 4, 8, 8, device=device)
            upfirdn2d(x, setup_filter([1, 3, 3, 1], device=device), up=2, padding=(2, 1))
            bias_act(x, torch.zeros(4, device=device), act="lrelu")
            modulated_conv2d(x, torch.randn(4, 4, 3, 3, device=device), torch.randn(2, 4, device=device), padding=1)
        return resolved != "ref", resolved
    except Exception as e:  # a missing or broken kernel: report it in the table rather than crash
        return False, f"unavailable ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


def build(name: str, device: torch.device, channel_divisor: int, mixed_precision: str | None = None):
    preset = get_preset(name)
    g_kwargs, d_kwargs = copy.deepcopy(preset["G"]), copy.deepcopy(preset["D"])
    if mixed_precision == "float32":
        g_kwargs["synthesis_kwargs"]["num_fp16_res"] = d_kwargs["num_fp16_res"] = 0
    elif mixed_precision is not None:
        g_kwargs["synthesis_kwargs"]["mixed_precision_dtype"] = d_kwargs["mixed_precision_dtype"] = mixed_precision
    if channel_divisor > 1:
        for kw in (g_kwargs["synthesis_kwargs"], d_kwargs):
            kw["channel_base"] = max(kw["channel_base"] // channel_divisor, 64)
            kw["channel_max"] = max(kw["channel_max"] // channel_divisor, 8)
    torch.manual_seed(0)
    G = Generator(c_dim=C_DIM, **g_kwargs).to(device)
    D = Discriminator(c_dim=C_DIM, **d_kwargs).to(device)
    augment = AugmentPipe(p=0.2, **preset["augment"]).to(device)
    return preset, G, D, augment


def _d_logits(D, augment, img, c):
    return D(augment(img), c).reshape(img.shape[0])


def training_phases(
    preset, G, D, augment, batch: int, device: torch.device, fast: bool = False, bf16: bool = False, ema: bool = False
):
    """Closures for the main step (G then D), the R1 phase and the path-length phase.

    ``fast``: the trainer's CPU fast path (channels_last networks and images, fused Adam);
    ``bf16``: oneDNN bf16 math in the main G and D steps (not in R1 / path length), as the trainer
    does with ``GEMIX_BF16=1``; ``ema``: the main step also updates a G_ema copy, as the trainer's
    EMA handler does every step.
    """
    from gemix_monai.fast import cpu_bf16_math

    betas = tuple(float(b) for b in preset["betas"])
    memory_format = torch.channels_last if fast else torch.contiguous_format
    if fast:
        G.to(memory_format=memory_format)
        D.to(memory_format=memory_format)
    extra = {"fused": True} if fast else {}
    opt_g = torch.optim.Adam(G.parameters(), lr=preset["g_lr"], betas=betas, eps=preset["eps"], **extra)
    opt_d = torch.optim.Adam(D.parameters(), lr=preset["d_lr"], betas=betas, eps=preset["eps"], **extra)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if ema else None
    res, channels = G.img_resolution, G.img_channels
    real = (torch.rand(batch, channels, res, res, device=device) * 2 - 1).contiguous(memory_format=memory_format)
    c = torch.eye(C_DIM, device=device)[torch.arange(batch, device=device) % C_DIM]
    pl_mean = torch.zeros([], device=device)

    def g_main():
        G.requires_grad_(True)
        D.requires_grad_(False)
        z = torch.randn(batch, G.z_dim, device=device)
        if gan_loss is not None:
            loss, _ = gan_loss.generator_main_loss(G, D, augment, z, c, preset["style_mixing_prob"])
        else:
            loss = F.softplus(-_d_logits(D, augment, G(z, c), c))
        opt_g.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt_g.step()

    def d_main():
        G.requires_grad_(False)
        D.requires_grad_(True)
        z = torch.randn(batch, G.z_dim, device=device)
        if gan_loss is not None:
            loss = gan_loss.discriminator_main_loss(G, D, augment, real, c, z, c)[0]
        else:
            with torch.no_grad():
                fake = G(z, c)
            loss = F.softplus(_d_logits(D, augment, fake, c)) + F.softplus(-_d_logits(D, augment, real, c))
        opt_d.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt_d.step()

    def main_step():
        with cpu_bf16_math(bf16):
            g_main()
            d_main()
        if G_ema is not None:
            from gemix_monai.handlers.gan import update_ema

            update_ema(G, G_ema, 0.999)

    def r1_phase():
        G.requires_grad_(False)
        D.requires_grad_(True)
        if gan_loss is not None:
            penalty, _ = gan_loss.r1_penalty(D, augment, real, c)
        else:
            x = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(_d_logits(D, augment, x, c).sum(), x, create_graph=True)
            penalty = grad.square().sum(dim=(1, 2, 3))
        opt_d.zero_grad(set_to_none=True)
        (penalty.mean() * (preset["r1_gamma"] / 2) * preset["r1_interval"]).backward()
        opt_d.step()

    def pl_phase():
        G.requires_grad_(True)
        D.requires_grad_(False)
        n = max(batch // 2, 1)
        z = torch.randn(n, G.z_dim, device=device)
        if gan_loss is not None:
            penalty, _ = gan_loss.path_length_penalty(G, z, c[:n], pl_mean)
        else:
            ws = G.mapping(z, c[:n])
            img = G.synthesis(ws)
            y = torch.randn_like(img) / res
            (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
            penalty = (grad.square().sum(2).mean(1).sqrt() - pl_mean).square()
        opt_g.zero_grad(set_to_none=True)
        (penalty.mean() * preset["pl_weight"] * preset["pl_interval"]).backward()
        opt_g.step()

    return main_step, r1_phase, pl_phase


def measure(
    name, device, impls, channel_divisor, infer_batch, train_batch, min_time, warmup, rounds, mixed_precision=None
):
    """Figures of one model for every implementation in ``impls``, timed in interleaved rounds
    (auto, ref, auto, ref, …) on the same networks so that drifting machine load hits both alike;
    each figure is the median over the rounds."""
    preset, G, D, augment = build(name, device, channel_divisor, mixed_precision)
    z = torch.randn(infer_batch, G.z_dim, device=device)
    c = torch.eye(C_DIM, device=device)[torch.arange(infer_batch, device=device) % C_DIM]

    def infer():
        with torch.no_grad():
            G(z, c, noise_mode="const")

    main_step, r1_phase, pl_phase = training_phases(preset, G, D, augment, train_batch, device)
    phases = {"infer": infer, "main": main_step, "r1": r1_phase}
    if preset["pl_weight"] > 0:
        phases["pl"] = pl_phase
    samples = {impl: {k: [] for k in phases} for impl in impls}
    for _ in range(rounds):
        for impl in impls:
            with ops_impl(impl):
                for key, fn in phases.items():
                    samples[impl][key].append(timeit(fn, warmup=warmup, min_time=min_time, device=device))
    widths = G.synthesis.blocks[-1].out_channels, G.synthesis.blocks[0].out_channels
    results = {}
    for impl in impls:
        t = {k: statistics.median(v) for k, v in samples[impl].items()}
        t_step = t["main"] + t["r1"] / preset["r1_interval"] + (t["pl"] / preset["pl_interval"] if "pl" in t else 0.0)
        results[impl] = dict(
            name=name,
            res=G.img_resolution,
            widths=widths,
            g_params=sum(p.numel() for p in G.parameters()),
            d_params=sum(p.numel() for p in D.parameters()),
            infer=infer_batch / t["infer"],
            train=train_batch / t_step,
        )
    return results


def measure_family(
    family: str,
    preset: str,
    device: torch.device,
    infer_batch: int,
    train_batch: int,
    min_time: float,
    warmup: int,
    diffusion_steps: int,
) -> dict:
    """Training and generation images/s of one family (see the module docstring)."""
    labels = torch.eye(C_DIM)[torch.arange(infer_batch) % C_DIM]
    if family == "stylegan2":
        p, G, D, augment = build(preset, device, 1)
        G.eval()
        main_step, r1_phase, pl_phase = training_phases(p, G, D, augment, train_batch, device)
        t = {
            "main": timeit(main_step, warmup=warmup, min_time=min_time, device=device),
            "r1": timeit(r1_phase, warmup=warmup, min_time=min_time, device=device),
        }
        if p["pl_weight"] > 0:
            t["pl"] = timeit(pl_phase, warmup=warmup, min_time=min_time, device=device)
        t_step = t["main"] + t["r1"] / p["r1_interval"] + (t["pl"] / p["pl_interval"] if "pl" in t else 0.0)
        gen_opts = {}
    else:
        from gemix_monai.engines.generative import GenerativeTrainer, GenerativeTrainingOptions, build_family_networks

        torch.manual_seed(0)
        G, D, p = build_family_networks(family, preset, num_classes=C_DIM)
        res = G.img_resolution
        data = [{"image": torch.rand(1, res, res) * 2 - 1, "label": k % C_DIM} for k in range(train_batch)]
        opts = {k: v for k, v in p.items() if k not in ("G", "D", "name", "resolution")}
        opts["batch_size"] = train_batch
        trainer = GenerativeTrainer(
            family, G, D, data, GenerativeTrainingOptions.from_mapping(opts), num_classes=C_DIM, device=device
        )
        batch = {"image": torch.stack([d["image"] for d in data]), "label": torch.tensor([d["label"] for d in data])}
        t_step = timeit(lambda: trainer._iteration(trainer, batch), warmup=warmup, min_time=min_time, device=device)
        G = trainer.G_ema
        gen_opts = {"num_inference_steps": diffusion_steps} if family == "diffusion" else {}
    t_gen = timeit(
        lambda: G.generate(labels, seed=0, device=device, **gen_opts), warmup=1, min_time=min_time, device=device
    )
    return {
        "family": family,
        "preset": preset,
        "res": G.img_resolution,
        "params": sum(q.numel() for q in G.parameters()),
        "train": train_batch / t_step,
        "generate": infer_batch / t_gen,
        "options": gen_opts,
    }


def main_families(args, device: torch.device) -> None:
    gpu = device.type == "cuda"
    min_time = (0.3 if args.quick else 1.0) if gpu else (0.2 if args.quick else 0.5)
    infer_batch, train_batch = (64, 32) if gpu else (8, 16)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = []
    for family in args.families:
        r = measure_family(
            family,
            args.family_preset,
            device,
            infer_batch,
            train_batch,
            min_time,
            3 if gpu else 1,
            args.diffusion_steps,
        )
        rows.append(r)
        print(family, round(r["train"], 1), round(r["generate"], 2), flush=True)
    elapsed = time.perf_counter() - started
    lines = [
        "## generator-families",
        "",
        f"`python -m benchmarks.generator --families {' '.join(args.families)} --family-preset {args.family_preset}"
        f"{' --quick' if args.quick else ''}{' --threads ' + str(args.threads) if args.threads else ''}` on "
        f"{machine_description(device)}; {elapsed:.0f} s in all; load average {load_before:.1f} → {os.getloadavg()[0]:.1f}"
        " (a shared machine: absolute figures are lower bounds; the families were timed one after another).",
        "",
        f"Training: one full step of each family's trainer per batch of {train_batch} (StyleGAN2: G + D steps with ADA and "
        "lazy R1/path length amortised; DCGAN: one D and one G step; diffusion: one ε-MSE step). Generation: "
        f"`generate` on {infer_batch} soft labels (diffusion: DDIM, {args.diffusion_steps} steps, guidance 1).",
        "",
        "| family | preset | px | G params | training img/s | generation img/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['preset']} | {r['res']} | {r['params'] / 1e6:.3f} M | {r['train']:.1f} | {r['generate']:.2f} |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section("generator-families", markdown)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="shorter timings (and on CPU: tiny and 32 px only)")
    parser.add_argument("--cpu-channel-divisor", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--mixed-precision",
        choices=["float16", "bfloat16", "float32"],
        default=None,
        help="CUDA only: dtype of the mixed-precision layers (default: the presets', float16; float32: none)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table without updating docs/benchmarks.md")
    parser.add_argument(
        "--families",
        nargs="+",
        choices=("stylegan2", "dcgan", "diffusion"),
        help="compare these generator families side by side instead (section generator-families)",
    )
    parser.add_argument("--family-preset", default="tiny", help="preset of every family with --families (default tiny)")
    parser.add_argument("--diffusion-steps", type=int, default=50, help="DDIM steps of the diffusion generation figure")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.families:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return main_families(args, device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.mixed_precision is not None and not gpu:
        parser.error("--mixed-precision applies to --device cuda only (mixed precision exists on CUDA only)")
    precision = (args.mixed_precision or "float16") if gpu else "float32"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if gpu:
        torch.backends.cudnn.benchmark = True
    names = ["tiny", "32", "64", "128"]
    if args.quick and not gpu:
        names = ["tiny", "32"]
    divisor = 1 if gpu else args.cpu_channel_divisor
    min_time = (0.3 if args.quick else 1.0) if gpu else (0.2 if args.quick else 0.5)
    warmup = 3 if gpu else 1
    rounds = 2 if args.quick else 3
    usable, resolved = custom_ops_status(device)
    impls = ["auto", "ref"] if usable else ["ref"]

    rows = []
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for name in names:
        infer_batch = 64 if gpu else 8
        train_batch = get_preset(name)["batch_size"] if gpu else 4
        if name == "tiny":
            train_batch = 16  # the smoke-test configuration, also on CPU
        results = measure(
            name,
            device,
            impls,
            1 if name == "tiny" else divisor,
            infer_batch,
            train_batch,
            min_time,
            warmup,
            rounds,
            args.mixed_precision,
        )
        rows.append((name, infer_batch, train_batch, results))
        print(name, {k: (round(v["infer"], 1), round(v["train"], 1)) for k, v in results.items()}, flush=True)
    elapsed = time.perf_counter() - started

    lines = [
        f"## generator (CUDA, {precision} mixed precision)" if gpu else "## generator",
        "",
        f"`python -m benchmarks.generator{' --quick' if args.quick else ''}"
        f"{' --threads ' + str(args.threads) if args.threads else ''}"
        f"{' --device ' + args.device if args.device != ('cuda' if torch.cuda.is_available() else 'cpu') else ''}"
        f"{' --mixed-precision ' + args.mixed_precision if args.mixed_precision else ''}`"
        f" on {machine_description(device)}; {elapsed:.0f} s in all; load average {load_before:.1f} → {os.getloadavg()[0]:.1f}"
        " (a shared machine: auto and ref were timed in alternating rounds on the same networks, medians of"
        f" {rounds} rounds, so their ratio is fair; absolute figures are lower bounds).",
        "",
        f"Custom ops (`GEMIX_OPS=auto`) on {device.type}: {resolved}.",
        'Training = one G step + one D step per batch (non-saturating logistic loss, ADA p = 0.2 "bgc" on every image D sees)'
        " plus lazy R1 every 16 steps and path length every 4 (where the preset uses it), each phase timed alone and amortised.",
    ]
    if divisor > 1:
        lines.append(
            f"CPU run: the 32/64/128 presets with channel counts divided by {divisor} "
            "(widths shown: at the output resolution / at 4×4); `tiny` as shipped."
        )
    lines += [
        "",
        "| model | px | widths | G / D params | impl | G inference img/s (batch) | training img/s (batch) | s/kimg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, infer_batch, train_batch, results in rows:
        for impl, r in results.items():
            lines.append(
                f"| {name} | {r['res']} | {r['widths'][0]}/{r['widths'][1]} "
                f"| {r['g_params'] / 1e6:.2f} M / {r['d_params'] / 1e6:.2f} M | {impl} "
                f"| {r['infer']:.1f} ({infer_batch}) | {r['train']:.1f} ({train_batch}) | {1000 / r['train']:.1f} |"
            )
        if "auto" in results:
            a, b = results["auto"], results["ref"]
            lines.append(
                f"| {name} | {a['res']} | | | auto / ref | ×{a['infer'] / b['infer']:.2f} | ×{a['train'] / b['train']:.2f} | |"
            )
    if gpu:
        r128 = next(r for name, _, _, r in rows if name == "128")
        best = r128.get("auto", r128["ref"])
        lines += [
            "",
            f"128 px training ({precision} mixed precision): {1000 / best['train']:.1f} s/kimg "
            "(the StyleGAN2-ADA paper reports 12.8–13.7 s/kimg on one V100).",
        ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_write:
        write_section(f"generator-cuda-{precision}" if gpu else "generator", markdown)


if __name__ == "__main__":
    main()
