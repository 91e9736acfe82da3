"""Issue 20, the command line's part: one line instead of a traceback, no setting or file dropped without a word,
one run per folder, resume only onto the same data. Every case asserts the exact outcome."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gemix_monai.cli import main


def _png_tree(root, classes=("no", "yes"), n=10, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(root / c / f"{c}{seed}_{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bundle root with a 1-epoch tiny classifier trained on a 2-class PNG tree."""
    base = tmp_path_factory.mktemp("trust")
    data = _png_tree(base / "data")
    root = base / "bundle"
    rc = main(["train-classifier", "--bundle-root", str(root), "--dataset-dir", str(data), "--epochs", "1",
               "--network", "tiny", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    return base, data, root


def test_an_unknown_set_key_is_an_error_naming_the_closest_key(trained, capsys):
    base, data, _ = trained
    rc = main(["train-classifier", "--bundle-root", str(base / "typo"), "--dataset-dir", str(data),
               "--set", "max_epoch=1", "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown setting(s) for train.json: 'max_epoch' (did you mean 'max_epochs'?)" in err
    assert not (base / "typo" / "models" / "model.pt").exists()  # nothing trained with the default 5 epochs


def test_a_second_run_into_a_locked_bundle_root_is_refused_naming_the_first(trained, capsys):
    from gemix_monai.bundle import run_lock

    base, data, _ = trained
    root = base / "locked"
    with run_lock(root, "train_gan.json"):
        rc = main(["train-classifier", "--bundle-root", str(root), "--dataset-dir", str(data), "--epochs", "1",
                   "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{root} is in use by another run (process {os.getpid()}, started " in err
    assert ": train_gan.json); wait for it to finish or use another --bundle-root" in err


def test_a_bundle_root_inside_the_dataset_folder_is_refused(trained, capsys):
    _, data, _ = trained
    rc = main(["train-classifier", "--bundle-root", str(data / "runs"), "--dataset-dir", str(data), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and f"the output folder {data / 'runs'} is inside the dataset folder {data}" in err
    assert not (data / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(trained, capsys):
    base, data, _ = trained
    rc = main(["train-classifier", "--bundle-root", str(base / "cuda"), "--dataset-dir", str(data), "--device", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 2
    assert err[0].startswith("gemix-monai: error: --device cuda: this machine has no usable CUDA device (torch ")
    assert err[0].endswith("; use --device cpu")


def test_classify_writes_the_readable_images_and_lists_the_others(trained, tmp_path, capsys):
    _, data, root = trained
    folder = tmp_path / "scans"
    folder.mkdir()
    good = sorted((data / "no").glob("*.png"))[:3]
    for i, f in enumerate(good):
        (folder / f"good{i}.png").write_bytes(f.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "half.png").write_bytes(good[0].read_bytes()[:60])
    (folder / "notes.txt").write_text("not an image")
    (folder / os.fsdecode(b"caf\xe9.png")).write_bytes(good[1].read_bytes())
    out = tmp_path / "pred.csv"
    rc = main(["classify", str(folder), "--bundle-root", str(root), "--output", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    with open(out, newline="", encoding="utf-8") as f:
        names = [r["filename"] for r in csv.DictReader(f)]
    assert names == ["caf\\xe9.png", "good0.png", "good1.png", "good2.png"]
    assert "2 file(s) could not be read and are not in" in err
    assert f"{folder / 'empty.jpg'}: ImageReadError:" in err and f"{folder / 'half.png'}: ImageReadError:" in err
    with open(tmp_path / "pred_unreadable.csv", newline="", encoding="utf-8") as f:
        assert sorted(r["filename"] for r in csv.DictReader(f)) == [str(folder / "empty.jpg"), str(folder / "half.png")]


def test_a_generator_checkpoint_given_as_the_classifier_is_one_line(trained, tmp_path, capsys):
    from _helpers import small_generator

    _, data, root = trained
    gen = tmp_path / "generator.pt"
    small_generator(c_dim=2).save_checkpoint(gen)
    rc = main(["classify", str(data / "no"), "--bundle-root", str(root), "--ckpt-path", str(gen),
               "--output", str(tmp_path / "p.csv"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 2
    assert err[0] == (
        f"gemix-monai: error: {gen} is not a classifier's weights but a 'gemix-generator/1' checkpoint (a generator: "
        "give it as the generator, e.g. models/generator/generator.pt); a classifier is models/model.pt beside its "
        "classifier.json"
    )


def test_generator_training_resumes_onto_a_moved_copy_and_refuses_other_data(tmp_path):
    import shutil

    from gemix_monai.data import get_dataset
    from gemix_monai.engines.generative import train_generator

    a, b = _png_tree(tmp_path / "a", seed=1), _png_tree(tmp_path / "b", seed=2)
    kw = dict(family="dcgan", max_kimg=0.016, batch_size=8, progress=False, device="cpu", class_names=["no", "yes"])
    ds = lambda src: get_dataset(str(src), "training", 32, split_dir=str(tmp_path))  # noqa: E731
    train_generator(ds(a), tmp_path / "gan", **kw)
    shutil.copytree(a, tmp_path / "moved")
    train_generator(ds(tmp_path / "moved"), tmp_path / "gan", resume="auto", **{**kw, "max_kimg": 0.032})
    with pytest.raises(ValueError, match=r"it was trained on other data \(.*moved: \d+ images, fingerprint \w{12}\) "
                       r"than this run's \(.*b: \d+ images, fingerprint \w{12}\)"):  # fmt: skip
        train_generator(ds(b), tmp_path / "gan", resume="auto", **{**kw, "max_kimg": 0.048})


def test_ctrl_c_during_train_gan_exits_130_saying_what_was_saved(tmp_path):
    data = _png_tree(tmp_path / "data")
    root = tmp_path / "gan"
    script = Path(sys.executable).with_name("gemix-monai")  # the installed command, as a person runs it
    if not script.is_file():
        pytest.skip(f"the gemix-monai command is not installed beside {sys.executable}")
    cmd = [str(script), "train-gan", "--bundle-root", str(root), "--dataset-dir",
           str(data), "--max-kimg", "50", "--select-kimg", "0", "--set", "checkpoint_kimg=0.032", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    latest = root / "checkpoints" / "latest.pt"
    deadline = time.time() + 240
    while not latest.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert latest.is_file(), "no checkpoint was written"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"gemix-monai: interrupted. The last checkpoint, {latest} (")
    assert last.endswith(" kimg), is intact: run the same command again to continue from it.")
    assert "Traceback" not in err


def test_the_cli_choices_are_the_librarys():
    from gemix_monai.cli.args import CLASS_BALANCE_CHOICES, GENERATOR_FAMILY_CHOICES
    from gemix_monai.generators.protocol import GENERATOR_FAMILIES
    from gemix_monai.mixing.samplers import CLASS_BALANCE_MODES

    assert GENERATOR_FAMILY_CHOICES == GENERATOR_FAMILIES and CLASS_BALANCE_CHOICES == CLASS_BALANCE_MODES


def test_classify_lists_an_image_with_nan_voxels_instead_of_predicting_from_it(trained, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    _, data, root = trained
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, f in enumerate(sorted((data / "no").glob("*.png"))[:2]):
        (folder / f"good{i}.png").write_bytes(f.read_bytes())
    arr = np.full((40, 40), 100.0, dtype=np.float32)
    arr[5, 5] = np.nan
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(folder / "nan.nii.gz"))
    out = tmp_path / "pred.csv"
    rc = main(["classify", str(folder), "--bundle-root", str(root), "--output", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "NaN or infinite" in err and str(folder / "nan.nii.gz") in err
    with open(out, newline="", encoding="utf-8") as f:
        assert [r["filename"] for r in csv.DictReader(f)] == ["good0.png", "good1.png"]
