"""Draw docs/images/phantoms.png: the first images of each class of the default phantom dataset.

They are read back from NIfTI files through ``gemix_monai.data.get_dataset`` (abdomen window
W400/L50), i.e. exactly what the GAN and the classifier see. Because each image has its own random
stream, the first ``n`` images per class here are the first ``n`` of the default dataset (seed 0)::

    python benchmarks/phantom_figure.py --per-class 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gemix_monai.data import get_dataset  # noqa: E402
from gemix_monai.data.phantoms import CLASS_NAMES, generate_phantom_dataset  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "phantoms.png"))
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = args.per_class
    with tempfile.TemporaryDirectory() as tmp:
        datalist = generate_phantom_dataset(
            tmp, args.image_size, counts=(n, n, n), seed=args.seed, val_counts=(0, 0, 0), test_counts=(0, 0, 0)
        )
        ds = get_dataset(str(datalist), "training", args.image_size)
        images = [(ds[i]["image"][0].numpy(), ds[i]["label"]) for i in range(len(ds))]
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2))
    for label, name in enumerate(CLASS_NAMES):
        row = [img for img, lab in images if lab == label]
        for j, ax in enumerate(axes[label]):
            ax.imshow(row[j], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[label, 0].set_ylabel(name, fontsize=12)
    fig.suptitle(
        f"gemix-monai CT liver-lesion phantoms ({args.image_size} px, abdomen window W400/L50, seed {args.seed})",
        fontsize=10,
    )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
