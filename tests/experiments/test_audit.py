"""The synthetic-quality audit on tiny phantoms: files and finite numbers, memorisation flagged, clear input errors, CLI."""

import json
import math

import pytest
import torch

from gemix_monai import cli
from gemix_monai.experiments import run_audit

COUNTS = {"counts": [10, 8, 9], "val_counts": [5, 4, 5], "test_counts": [2, 2, 2]}
FILES = ("audit.json", "audit.md", "memorisation.png", "samples.png")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from gemix_monai.data import generate_phantom_dataset, get_dataset

    datalist = generate_phantom_dataset(tmp_path_factory.mktemp("phantoms"), image_size=32, seed=0, **COUNTS)
    return datalist, get_dataset(datalist, "training", 32), get_dataset(datalist, "validation", 32)


@pytest.fixture(scope="module")
def tiny_generator(phantoms):
    from gemix_monai.networks import Generator, get_preset

    torch.manual_seed(0)
    return (
        Generator(c_dim=3, class_names=list(phantoms[1].class_names), **get_preset("tiny")["G"])
        .eval()
        .requires_grad_(False)
    )


@pytest.fixture(scope="module")
def audited(phantoms, tiny_generator, tmp_path_factory):
    """One audit of the random tiny Generator with a feature classifier the audit trains for one epoch."""
    _, train, heldout = phantoms
    out = tmp_path_factory.mktemp("audit")
    return run_audit(tiny_generator, train, heldout, out, feature_epochs=1, kid_subsets=5, seed=0)


class CopyingGenerator:
    """A 'generator' that returns training images of the requested class verbatim (a memorising GAN)."""

    z_dim = 8

    def __init__(self, train):
        self.items = [train[i] for i in range(len(train))]
        self.class_names = list(train.class_names)
        self.c_dim = len(self.class_names)
        first = torch.as_tensor(self.items[0]["image"])
        self.img_channels, self.img_resolution = first.shape[0], first.shape[-1]
        self.indices = {c: [i for i, it in enumerate(self.items) if int(it["label"]) == c] for c in range(self.c_dim)}
        self.returned: list[int] = []

    def generate(self, soft_labels, seed=None, batch_size=64, truncation_psi=1.0, device=None, **_):
        out, seen = [], {c: 0 for c in range(self.c_dim)}
        for c in torch.as_tensor(soft_labels).argmax(1).tolist():
            i = self.indices[c][seen[c] % len(self.indices[c])]
            seen[c] += 1
            self.returned.append(i)
            out.append(
                torch.as_tensor(self.items[i]["image"]).as_tensor()
                if hasattr(self.items[i]["image"], "as_tensor")
                else torch.as_tensor(self.items[i]["image"])
            )
        return torch.stack(out).float()


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


def test_audit_writes_every_file_with_finite_numbers(audited):
    for name in FILES:
        assert (audited.out_dir / name).is_file(), name
    report = json.loads((audited.out_dir / "audit.json").read_text())
    assert report["format"] == "gemix-audit/1" and report["undefined"] == []
    assert report["counts"] == {"train": [10, 8, 9], "heldout": [5, 4, 5], "synthetic": [5, 4, 5]}
    for source in ("synthetic", "real_floor"):
        groups = [report["metrics"][source]["overall"], *report["metrics"][source]["per_class"].values()]
        assert len(groups) == 4
        for g in groups:
            for key in ("fd", "kid", "precision", "recall", "ms_ssim", "nn_pixel_median", "nn_feature_median"):
                assert g[key] is not None and math.isfinite(g[key]), (source, key)
            assert 0 <= g["precision"] <= 1 and 0 <= g["recall"] <= 1
    assert all(math.isfinite(v) for v in _numbers(report))


def test_every_output_names_the_real_only_feature_network(audited):
    fn = audited.report["feature_network"]
    assert fn["network"] == "tiny" and fn["layer"] == "pool" and "training split only" in fn["trained_on"]
    assert (audited.out_dir / "feature_classifier" / "models" / "model.pt").is_file()
    md = (audited.out_dir / "audit.md").read_text()
    assert fn["description"] in md and "No ImageNet" not in md and "no ImageNet/Inception weights" in md
    assert "| metric | look for | cyst syn | cyst floor |" in md and "overall floor |" in md and "## How to read" in md


def test_a_random_generator_is_not_flagged_as_memorising(audited):
    assert not audited.flagged
    assert audited.report["metrics"]["synthetic"]["overall"]["exact_copies"] == 0


def test_a_generator_returning_training_images_is_flagged(phantoms, audited, tmp_path):
    _, train, heldout = phantoms
    gen = CopyingGenerator(train)
    checkpoint = audited.report["feature_network"]["checkpoint"]  # the classifier above, passed as a checkpoint
    result = run_audit(gen, train, heldout, tmp_path, feature_network=checkpoint, kid_subsets=2, num_per_class=3)
    mem = result.report["memorisation"]
    assert result.flagged and mem["flagged_overall"] and mem["flagged_classes"] == ["cyst", "hemangioma", "metastasis"]
    syn = result.report["metrics"]["synthetic"]["overall"]
    assert syn["exact_copies"] == 9 and syn["nn_pixel_min"] == 0.0 and syn["suspect_fraction"] == 1.0
    assert mem["nearest_train"]["pixel_index"] == gen.returned  # the index of the copied training image
    assert mem["nearest_train"]["pixel_distance"] == [0.0] * 9
    assert result.report["feature_network"]["source"].startswith("checkpoint")
    assert "**Flagged: YES**" in (tmp_path / "audit.md").read_text()


def test_class_count_mismatch_names_both_counts(phantoms, tmp_path):
    from gemix_monai.networks import Generator, get_preset

    _, train, heldout = phantoms
    gen = Generator(c_dim=2, class_names=["a", "b"], **get_preset("tiny")["G"])
    with pytest.raises(ValueError, match=r"generator has 2 classes \['a', 'b'\] but train_dataset has 3 classes"):
        run_audit(gen, train, heldout, tmp_path)


def test_resolution_mismatch_names_both_sizes(phantoms, tmp_path):
    from gemix_monai.data import get_dataset

    datalist, _, _ = phantoms
    gen = CopyingGenerator(get_dataset(datalist, "training", 32))
    train16, held16 = get_dataset(datalist, "training", 16), get_dataset(datalist, "validation", 16)
    with pytest.raises(ValueError, match=r"generator makes 32x32 images but train_dataset images are 16x16"):
        run_audit(gen, train16, held16, tmp_path)


def test_class_names_in_another_order_are_refused(phantoms, tmp_path):
    _, train, heldout = phantoms
    gen = CopyingGenerator(train)
    gen.class_names = ["metastasis", "cyst", "hemangioma"]
    with pytest.raises(ValueError, match="class names differ"):
        run_audit(gen, train, heldout, tmp_path)


def test_cli_audit_runs_from_checkpoints(phantoms, tiny_generator, audited, tmp_path, capsys):
    datalist, _, _ = phantoms
    gen_path = tmp_path / "generator.pt"
    tiny_generator.save_checkpoint(gen_path)
    checkpoint = audited.report["feature_network"]["checkpoint"]
    audit = ["audit", "--generator", str(gen_path), "--datalist", str(datalist)]
    assert (
        cli.main(
            [
                *audit,
                "--classifier",
                checkpoint,
                "--out",
                str(tmp_path / "out"),
                "--num-per-class",
                "4",
                "--seed",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert report["counts"]["synthetic"] == [4, 4, 4] and report["settings"]["seed"] == 1
    assert report["generator"] == str(gen_path) and report["heldout_name"] == "validation split"
    assert "memorisation flagged: no" in capsys.readouterr().out
    with pytest.raises(ValueError, match="resolution mismatch"):
        cli.main(
            [
                *audit,
                "--out",
                str(tmp_path / "bad"),
                "--image-size",
                "64",
                "--device",
                "cpu",
                "--verbose",
            ]
        )


def test_cli_audit_help(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["audit", "--help"])
    assert info.value.code == 0 and "--num-per-class" in capsys.readouterr().out


def test_a_feature_checkpoint_trained_with_synthetic_images_is_labelled_as_such(phantoms, audited, tmp_path):
    import shutil

    _, train, heldout = phantoms
    src = audited.out_dir / "feature_classifier" / "models"
    shutil.copytree(src, tmp_path / "models")
    info_path = tmp_path / "models" / "classifier.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "strategy": "gemix"}))
    result = run_audit(
        CopyingGenerator(train),
        train,
        heldout,
        tmp_path / "out",
        feature_network=tmp_path / "models" / "model.pt",
        num_per_class=2,
        kid_subsets=1,
    )
    fn = result.report["feature_network"]
    assert fn["strategy"] == "gemix" and "NOT real-only" in fn["trained_on"]
    assert "NOT real-only" in (tmp_path / "out" / "audit.md").read_text()


def test_a_feature_module_needs_its_layer_named(phantoms, tmp_path):
    _, train, heldout = phantoms
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(ValueError, match="feature_layer="):
        run_audit(CopyingGenerator(train), train, heldout, tmp_path, feature_network=net, num_per_class=2)
    result = run_audit(
        CopyingGenerator(train),
        train,
        heldout,
        tmp_path,
        feature_network=net,
        feature_layer="2",
        num_per_class=2,
        kid_subsets=1,
    )
    assert result.report["feature_network"]["layer"] == "2" and result.flagged


def test_pictures_show_monai_ordered_images_the_right_way_up():
    import torch

    from gemix_monai.experiments.report import display_image as _display

    image = torch.zeros(1, 4, 2)  # [C, x, y]: 4 columns wide, 2 rows high
    image[0, :, 0] = 1.0  # the top row of the picture
    shown = _display(image)
    assert shown.shape == (2, 4, 3) and shown[0].min() == 1.0 and shown[1].max() == 0.5
