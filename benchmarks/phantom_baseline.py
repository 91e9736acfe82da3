"""Is the phantom task hard but learnable? Train a small MONAI CNN briefly on the default phantoms.

Generates the default dataset (681 training images, 64 px, NIfTI, seed given) into a temporary
folder, loads it through ``gemix_monai.data.get_dataset`` (the same file I/O and abdomen window as
every other layer), trains ``monai.networks.nets.Classifier`` with plain cross-entropy, keeps the
epoch with the best validation macro-F1, and reports on

* the default test split (137 images, same imbalance as training), and
* a larger balanced held-out set (300 per class, rendered with a different seed),

macro-F1, accuracy and per-class sensitivity. The result replaces the ``phantom-baseline``
section of ``docs/data.md``. Run::

    python benchmarks/phantom_baseline.py --seed 0 --epochs 12
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_description, write_section  # noqa: E402
from gemix_monai.data import get_dataset  # noqa: E402
from gemix_monai.data.phantoms import CLASS_NAMES, generate_phantom_dataset  # noqa: E402

DOC = ROOT / "docs" / "data.md"


def _stack(ds):
    images = torch.stack([torch.as_tensor(ds[i]["image"]).as_subclass(torch.Tensor) for i in range(len(ds))])
    labels = torch.tensor([int(ds[i]["label"]) for i in range(len(ds))])
    return images, labels


def _scores(model, images, labels):
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(images[i : i + 256]).argmax(1) for i in range(0, len(images), 256)])
    y, p = labels.numpy(), pred.numpy()
    return {
        "macro_f1": float(f1_score(y, p, average="macro", labels=[0, 1, 2], zero_division=0)),
        "accuracy": float(accuracy_score(y, p)),
        "sensitivity": [float(s) for s in recall_score(y, p, average=None, labels=[0, 1, 2], zero_division=0)],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument(
        "--class-weighted",
        action="store_true",
        help="weight the cross-entropy by inverse class frequency (section phantom-baseline-class-weighted)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/data.md alone")
    args = parser.parse_args(argv)

    from monai.networks.nets import Classifier
    from monai.utils import set_determinism

    torch.set_num_threads(2)
    set_determinism(args.seed)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_phantom_dataset(Path(tmp) / "default", image_size=args.image_size, seed=args.seed)
        generation_s = time.perf_counter() - t0
        default = str(Path(tmp) / "default" / "datalist.json")
        extra = generate_phantom_dataset(
            Path(tmp) / "extra",
            image_size=args.image_size,
            seed=args.seed + 1000,
            counts=(1, 1, 1),
            val_counts=(1, 1, 1),
            test_counts=(300, 300, 300),
        )
        train_x, train_y = _stack(get_dataset(default, "training", args.image_size))
        val_x, val_y = _stack(get_dataset(default, "validation", args.image_size))
        test_x, test_y = _stack(get_dataset(default, "test", args.image_size))
        extra_x, extra_y = _stack(get_dataset(str(extra), "test", args.image_size))

    model = Classifier(
        in_shape=(1, args.image_size, args.image_size),
        classes=3,
        channels=(16, 32, 64, 64),
        strides=(2, 2, 2, 2),
        num_res_units=1,
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    counts = torch.bincount(train_y, minlength=3).float()
    class_weight = (counts.sum() / (3 * counts)) if args.class_weighted else None
    gen = torch.Generator().manual_seed(args.seed)
    best = (-1.0, None, 0)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            x = train_x[idx]
            # Flips and 90° turns: lesions have no preferred orientation.
            if torch.rand((), generator=gen) < 0.5:
                x = x.flip(-1)
            x = torch.rot90(x, int(torch.randint(4, (), generator=gen)), dims=(-2, -1))
            loss = torch.nn.functional.cross_entropy(model(x), train_y[idx], weight=class_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = _scores(model, val_x, val_y)
        print(
            f"epoch {epoch + 1}: loss {loss.item():.3f} val macro-F1 {val['macro_f1']:.3f} acc {val['accuracy']:.3f}",
            flush=True,
        )
        if val["macro_f1"] > best[0]:
            best = (val["macro_f1"], {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
    train_s = time.perf_counter() - t0
    model.load_state_dict(best[1])
    test = _scores(model, test_x, test_y)
    balanced = _scores(model, extra_x, extra_y)
    total_s = time.perf_counter() - t_start

    def row(name, n, s):
        sens = " | ".join(f"{v:.3f}" for v in s["sensitivity"])
        return f"| {name} | {n} | {s['macro_f1']:.3f} | {s['accuracy']:.3f} | {sens} |"

    loss_name = "cross-entropy weighted by inverse class frequency" if args.class_weighted else "plain cross-entropy"
    flag = " --class-weighted" if args.class_weighted else ""
    md = "\n".join(
        [
            f"### Baseline: a small MONAI CNN on the default phantoms ({loss_name})",
            "",
            f"Command: `python benchmarks/phantom_baseline.py --seed {args.seed} --epochs {args.epochs} "
            f"--image-size {args.image_size}{flag}`",
            "",
            f"`monai.networks.nets.Classifier` (channels 16-32-64-64, strides 2, 1 residual unit), Adam 1e-3, batch 32, "
            f"{loss_name}, flips/90° turns, {args.epochs} epochs; the epoch with the best validation macro-F1 "
            f"(epoch {best[2]}, {best[0]:.3f}) is evaluated. Data seed {args.seed}; "
            f"the balanced set is rendered with seed {args.seed + 1000}. "
            f"Chance macro-F1 is about 0.33.",
            "",
            f"| evaluation set | images | macro-F1 | accuracy | sensitivity {' | sensitivity '.join(CLASS_NAMES)} |",
            "|---|---|---|---|---|---|---|",
            row("default test split (imbalanced)", len(test_y), test),
            row("balanced held-out set", len(extra_y), balanced),
            "",
            f"Dataset generation (955 NIfTI files): {generation_s:.1f} s; training: {train_s:.0f} s; whole run: {total_s:.0f} s. "
            f"Machine: {machine_description()}.",
        ]
    )
    print(md)
    if not args.no_write:
        write_section("phantom-baseline-class-weighted" if args.class_weighted else "phantom-baseline", md, doc=DOC)
    return test, balanced


if __name__ == "__main__":
    main()
