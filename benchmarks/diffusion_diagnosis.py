"""Is a diffusion generator that draws noise under-trained or broken? (docs/generators.md, "Diffusion: budget or defect")

For one diffusion training checkpoint (``checkpoints/latest.pt`` or a kept snapshot) and its training data:

1. the loss curve (``Loss/G``, ε-MSE, from the run's TensorBoard events): first and last 5 % of steps;
2. denoising: training images noised to timestep t, the ε the network predicts, and its MSE against the true ε
   (1.0 = predicting nothing), for the raw and the EMA network — a network that learnt anything predicts ε well
   at large t first;
3. SDEdit: DDIM from the noised image x_t back to 0 with the sampler used for generation — if the network denoises
   (2) but this does not return an image close to x₀, the sampler is at fault;
4. samples from pure noise with 10 and 50 DDIM steps: pixel mean/std and high-frequency energy (mean squared
   Laplacian) against the training images, raw against EMA.

    python -m benchmarks.diffusion_diagnosis runs/generators/phantoms/diffusion-none/checkpoints/gan-00010.000kimg.pt

prints a table (and ``--json`` writes it). Numbers only; the reading is in docs/generators.md.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch


def _loss_curve(run_dir: Path) -> dict:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return {}
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    if "Loss/G" not in acc.Tags().get("scalars", []):
        return {}
    values = [e.value for e in acc.Scalars("Loss/G")]
    k = max(1, len(values) // 20)
    return {"loss_first": float(np.mean(values[:k])), "loss_last": float(np.mean(values[-k:])), "points": len(values)}


def _networks(checkpoint: Path):
    from gemix_monai.networks.diffusion import ConditionalDiffusionGenerator
    from gemix_monai.utils import safe_torch_load

    state = safe_torch_load(checkpoint, map_location="cpu")
    nets = {}
    for key in ("G", "G_ema"):
        net = ConditionalDiffusionGenerator(
            c_dim=state["config"]["num_classes"], **{k: v for k, v in state["config"]["G"].items() if k != "c_dim"}
        )
        net.load_state_dict(state[key])
        net.class_names = list(state["class_names"])
        nets[key] = net.eval()
    return nets, state


@torch.no_grad()
def _denoise(net, x0, c, ts, seed=0) -> dict:
    sched = net.train_scheduler()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        eps = torch.randn(x0.shape, generator=g)
        tt = torch.full((x0.shape[0],), t, dtype=torch.long)
        xt = sched.add_noise(original_samples=x0, noise=eps, timesteps=tt)
        pred = net(xt, tt, c)
        out[int(t)] = float(((pred - eps) ** 2).mean())
    return out


@torch.no_grad()
def _sdedit(net, x0, c, t_start: int, steps: int, seed=0) -> dict:
    """DDIM from x_{t_start} to 0 with the generation sampler; MSE to x0 and to the mean training image."""
    sched = net.sample_scheduler(steps)
    train = net.train_scheduler()
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(x0.shape, generator=g)
    tt = torch.full((x0.shape[0],), t_start, dtype=torch.long)
    x = train.add_noise(original_samples=x0, noise=eps, timesteps=tt)
    for t in sched.timesteps:
        if int(t) > t_start:
            continue
        pred = net(x, torch.full((x.shape[0],), int(t), dtype=torch.long), c)
        x, _ = sched.step(pred, int(t), x)
    return {
        "mse_to_x0": float(((x - x0) ** 2).mean()),
        "mse_noisy_start_to_x0": float(((train.add_noise(x0, eps, tt) - x0) ** 2).mean()),
        "mse_mean_image_to_x0": float(((x0.mean(0, keepdim=True) - x0) ** 2).mean()),
    }


def _stats(images: torch.Tensor) -> dict:
    lap = (
        images[..., 1:-1, 1:-1] * 4
        - images[..., :-2, 1:-1]
        - images[..., 2:, 1:-1]
        - images[..., 1:-1, :-2]
        - images[..., 1:-1, 2:]
    )
    return {"mean": float(images.mean()), "std": float(images.std()), "hf_energy": float((lap**2).mean())}


def diagnose(checkpoint: Path, n: int = 64, seed: int = 0, source=None, data_options=None) -> dict:
    from gemix_monai.data import get_dataset

    nets, state = _networks(checkpoint)
    train = get_dataset(source, "training", nets["G"].img_resolution, masks="off", cache=True, **(data_options or {}))
    idx = np.random.default_rng(seed).choice(len(train), size=min(n, len(train)), replace=False)
    x0 = torch.stack([torch.as_tensor(train[int(i)]["image"]).as_subclass(torch.Tensor).float() for i in idx])
    y = torch.tensor([train.labels[int(i)] for i in idx])
    c = torch.nn.functional.one_hot(y, nets["G"].c_dim).float()
    kimg = state["counters"]["images_seen"] / 1000
    report = {"checkpoint": str(checkpoint), "kimg": kimg, "data": _stats(x0)}
    report.update(_loss_curve(checkpoint.parents[1]))
    for key, net in nets.items():
        report[key] = {
            "eps_mse": _denoise(net, x0, c, (50, 200, 500, 800, 950)),
            "sdedit_t300_10steps": _sdedit(net, x0, c, 300, 10),
            "sdedit_t600_50steps": _sdedit(net, x0, c, 600, 50),
            "samples_10steps": _stats(net.generate(c, seed=seed, num_inference_steps=10)),
            "samples_50steps": _stats(net.generate(c, seed=seed, num_inference_steps=50)),
        }
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a diffusion training checkpoint (latest.pt or a snapshot)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--dataset-dir", help="the run's training data (default: the embedded phantoms)")
    p.add_argument("--on-duplicate", choices=("error", "drop"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    options = {"on_duplicate": args.on_duplicate} if args.on_duplicate else {}
    report = diagnose(args.checkpoint, args.n, source=args.dataset_dir, data_options=options)
    print(json.dumps(report, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
