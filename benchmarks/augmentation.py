"""Is on-the-fly generation ever the bottleneck? Synthetic images/s delivered through a MONAI ``DataLoader``
vs. images/s a MONAI ResNet-50 training step consumes, same resolution, same machine, one run.

    python benchmarks/augmentation.py                       # auto device, 128 px, random-init "128" generator
    python benchmarks/augmentation.py --device cpu --batch_size 8 --generator models/generator.pt

The generator is the project's conditional StyleGAN2 (``gemix_monai.networks``): a checkpoint when given, else the
``"128"`` preset randomly initialised (same architecture and cost as a trained one). Labels come from the GeMix
``DirichletBetaSampler``. Delivery goes through ``SyntheticDataset`` + ``monai.data.DataLoader`` exactly as in
training (``num_workers=0`` on CUDA: the GPU does the work; CPU workers on CPU). Consumption is one full
training step of ``monai.networks.nets.resnet50(spatial_dims=2)`` (forward, soft-target cross-entropy,
backward, SGD step). The ratio delivered/consumed is printed and written to docs/benchmarks.md (section
``augmentation``, ``augmentation-cuda`` on a GPU); the goal is >= 10x on a GPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import machine_description, timeit, write_section  # noqa: E402


def _generator(path: str | None, resolution: int, num_classes: int, device: torch.device):
    from gemix_monai.networks import Generator, get_preset

    if path:
        return Generator.from_checkpoint(path, device=device), f"checkpoint `{path}`"
    preset = get_preset(str(resolution))
    torch.manual_seed(0)
    g = Generator(c_dim=num_classes, **preset["G"]).eval().requires_grad_(False).to(device)
    return g, f'preset "{resolution}" (random init, {sum(p.numel() for p in g.parameters()) / 1e6:.1f} M parameters)'


def _load_average() -> str:
    try:
        import os

        one, five, _ = os.getloadavg()
        note = f"; load average at the end {one:.1f} (1 min), {five:.1f} (5 min)"
        if five > (os.cpu_count() or 1):
            note += (
                " — more runnable processes than cores (a shared machine): absolute figures are low, the ratio is noisy"
            )
        return note
    except OSError:
        return ""


def measure_delivery(
    generator, num_classes: int, batch_size: int, num_workers: int, batches: int, device: torch.device
) -> float:
    """Synthetic images/s coming out of the DataLoader (generation included), after one warm-up batch."""
    from monai.data import DataLoader

    from gemix_monai.mixing import DirichletBetaSampler
    from gemix_monai.transforms import SyntheticDataset

    n = batch_size * (batches + 1 + num_workers)
    ds = SyntheticDataset(
        generator, DirichletBetaSampler(num_classes), num_images=n, seed=0, batch_size=batch_size, device=device
    )
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=False,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )
    it = iter(loader)
    next(it)  # warm-up (worker start, first-call overheads)
    if num_workers:
        # Let every worker finish its first batch so start-up cost is not counted.
        for _ in range(num_workers - 1):
            next(it)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    count = 0
    for _ in range(batches):
        count += next(it)["image"].shape[0]
    sync()
    return count / (time.perf_counter() - t0)


def measure_consumption(resolution: int, num_classes: int, batch_size: int, device: torch.device) -> float:
    """Images/s of a MONAI ResNet-50 training step (forward + soft-target CE + backward + SGD)."""
    from monai.networks.nets import resnet50

    net = resnet50(spatial_dims=2, n_input_channels=1, num_classes=num_classes).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch_size, 1, resolution, resolution, device=device) * 2 - 1
    y = torch.softmax(torch.randn(batch_size, num_classes, device=device), 1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.sum(-y * torch.log_softmax(net(x), 1), 1).mean()
        loss.backward()
        opt.step()

    seconds = timeit(step, warmup=1, min_time=1.0, max_iters=20, device=device)
    return batch_size / seconds


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--num_classes", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=None, help="default 64 on CUDA, 8 on CPU")
    p.add_argument("--num_workers", type=int, default=None, help="default 0 on CUDA, 2 on CPU")
    p.add_argument("--batches", type=int, default=None, help="timed batches (default 20 on CUDA, 3 on CPU)")
    p.add_argument(
        "--generator", default=None, help="generator checkpoint; default: random-init preset of --resolution"
    )
    p.add_argument("--no_write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args(argv)

    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("augmentation: --device cuda: no CUDA device is available")
    batch_size = args.batch_size or (64 if cuda else 8)
    workers = args.num_workers if args.num_workers is not None else (0 if cuda else 2)
    batches = args.batches or (20 if cuda else 3)
    if cuda:
        torch.backends.cudnn.benchmark = True

    generator, gen_desc = _generator(args.generator, args.resolution, args.num_classes, device)
    if cuda and workers:
        raise SystemExit("a CUDA generator generates in the main process: use --num_workers 0")
    delivered = measure_delivery(generator, args.num_classes, batch_size, workers, batches, device)
    consumed = measure_consumption(args.resolution, args.num_classes, batch_size, device)
    ratio = delivered / consumed
    load = _load_average()

    from gemix_monai.ops import _ext

    ext = _ext.get_extension()
    ops_note = (
        "compiled gemix_monai._C kernels"
        if ext is not None
        else f"pure-PyTorch reference ops ({_ext.extension_error()})"
    )
    verdict = "generation is not the bottleneck" if ratio >= 1 else "generation IS the bottleneck"
    goal = " (goal on a GPU: >= 10x)" if cuda else " (goal >= 10x applies to a GPU; this is the CPU figure)"
    md = "\n".join(
        [
            "## Augmentation: online synthesis vs. classifier consumption (`benchmarks/augmentation.py`)",
            "",
            f"Machine: {machine_description(device)}; device `{device}`{load}.",
            f"Generator: {gen_desc}, {args.resolution} px, {args.num_classes} classes, "
            f"GeMix `DirichletBetaSampler` labels; {ops_note}.",
            f"Delivery: `SyntheticDataset` through `monai.data.DataLoader`, batch {batch_size}, {workers} workers, "
            f"{batches} timed batches after warm-up.",
            "Consumption: MONAI `resnet50(spatial_dims=2)` training step (forward, soft-target CE, backward, SGD), "
            f"batch {batch_size}, median step.",
            "",
            "| path | images/s |",
            "|---|---|",
            f"| synthetic images delivered (online generation) | {delivered:.1f} |",
            f"| ResNet-50 training-step consumption | {consumed:.1f} |",
            f"| **ratio delivered / consumed** | **{ratio:.2f}x**{goal} |",
            "",
            f"Verdict on this machine: {verdict}. Each side is timed alone; in training on a CPU both share the same cores,",
            "so there the ratio bounds the slowdown rather than predicting it. On a GPU the generator and the classifier",
            "share the device the same way.",
        ]
    )
    print(md)
    if not args.no_write:
        write_section("augmentation-cuda" if cuda else "augmentation", md)
    return md


if __name__ == "__main__":
    main()
