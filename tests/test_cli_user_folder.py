"""A new user's own folder of JPEG/PNG images through the CLI, with no extra options (issue: trust on user data).

The folder is scaled (not CT-windowed), its split is the same whatever --seed, the models record the
contract, and evaluation with a contradicting option is refused naming both sides.
"""

import json

import numpy as np
import pytest

from gemix_monai import cli


@pytest.fixture
def user_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    root = tmp_path / "my xrays"
    for label, name in enumerate(("normal", "pneumonia")):
        for i in range(10):
            grey = (rng.integers(0, 100, (24 + i, 20 + i)) + 120 * label).astype(np.uint8)
            img = Image.fromarray(grey).convert("RGB" if i % 2 else "L")
            path = root / name / f"img {i}.{'jpg' if i % 3 else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
    return root


def test_user_folder_trains_and_evaluates_scaled_with_a_fixed_split(user_folder, tmp_path, capsys):
    root = tmp_path / "run"
    common = ["--bundle-root", str(root), "--dataset-dir", str(user_folder), "--device", "cpu"]
    assert cli.main(["train-gan", *common, "--max-kimg", "0.016", "--batch-size", "4"]) == 0
    generator = root / "models" / "generator" / "generator.pt"
    import torch

    stored = torch.load(generator, weights_only=True)["contract"]
    assert stored["class_names"] == ["normal", "pneumonia"]
    assert stored["preprocessing"]["hu_window"] is None and stored["preprocessing"]["intensity"] == "auto"

    split_file = user_folder / "gemix_split_seed0.json"
    before = split_file.read_bytes()
    for seed in ("0", "1"):
        out = root / f"clf{seed}"
        assert (
            cli.main(
                [
                    "train-classifier",
                    *common,
                    "--seed",
                    seed,
                    "--strategy",
                    "gemix",
                    "--epochs",
                    "1",
                    "--output-dir",
                    str(out),
                    "--set",
                    "tensorboard=False",
                ]
            )
            == 0
        )
        info = json.loads((out / "models" / "classifier.json").read_text())
        assert info["contract"] == stored  # same data, same decision: the generator fits
    assert split_file.read_bytes() == before  # --seed never re-splits

    ckpt = root / "clf0" / "models" / "model.pt"
    assert cli.main(["evaluate", *common, "--ckpt-path", str(ckpt), "--output-dir", str(root / "eval")]) == 0
    assert json.loads((root / "eval" / "metrics.json").read_text())["class_names"] == ["normal", "pneumonia"]
    capsys.readouterr()
    rc = cli.main(
        ["evaluate", *common, "--ckpt-path", str(ckpt), "--hu-window", "abdomen", "--output-dir", str(root / "bad")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and ("preprocessing differs" in err or "CT window" in err)
