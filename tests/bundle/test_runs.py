"""Bundle runs on tiny phantoms: checkpoints hand over between configs, export round-trips, bad overrides fail early."""

import csv
import json

import pytest
import torch

from gemix_monai.cli import run_bundle_config

from .conftest import error_chain, parse_config


def test_train_gan_writes_the_generator_where_generate_loads_it(trained_bundle):
    from gemix_monai.networks import Generator

    parser = parse_config("generate.json", trained_bundle, bundle_root=str(trained_bundle))
    path = parser.get_parsed_content("generator_path")
    assert path == str(trained_bundle / "models" / "generator" / "generator.pt")
    # not directly in models/: MONAI Label offers every models/*.pt as a weight file of the classifier
    assert sorted(p.name for p in (trained_bundle / "models").glob("*.pt")) == ["model.pt"]
    g = Generator.from_checkpoint(path)
    assert g.c_dim == 3 and g.img_resolution == 32
    assert list(g.class_names) == ["cyst", "hemangioma", "metastasis"]


def test_train_classifier_writes_the_model_where_evaluate_loads_it(trained_bundle, tiny_datalist, tmp_path):
    out = tmp_path / "eval"
    run_bundle_config(
        ["train.json", "evaluate.json"],
        {"bundle_root": str(trained_bundle), "datalist": str(tiny_datalist), "output_dir": str(out), "device": "cpu"},
        bundle=trained_bundle,
    )
    report = json.loads((out / "metrics.json").read_text())
    assert report["num_samples"] == 6
    assert report["class_names"] == ["cyst", "hemangioma", "metastasis"]
    assert sum(map(sum, report["confusion_matrix"])) == 6
    assert (out / "confusion_matrix.png").is_file()


def test_generate_exports_a_synthetic_set_with_soft_labels(trained_bundle, tmp_path):
    out = tmp_path / "synthetic"
    run_bundle_config(
        "generate.json",
        {
            "bundle_root": str(trained_bundle),
            "output_dir": str(out),
            "num_images": 5,
            "sampler_name": "gemix",
            "device": "cpu",
        },
        bundle=trained_bundle,
    )
    datalist = json.loads((out / "datalist.json").read_text())
    items = datalist["training"]
    assert len(items) == 5
    labels = torch.tensor([item["label"] for item in items])
    assert labels.shape == (5, 3)
    assert torch.allclose(labels.sum(1), torch.ones(5), atol=1e-5) and (labels >= 0).all()
    assert all((out / item["image"]).is_file() or (out / "images").exists() for item in items)


def test_inference_classifies_every_image_of_dataset_dir(trained_bundle, tiny_datalist, tmp_path):
    test_dir = tiny_datalist.parent / "test"
    run_bundle_config(
        "inference.json",
        {
            "bundle_root": str(trained_bundle),
            "dataset_dir": str(test_dir),
            "output_dir": str(tmp_path),
            "device": "cpu",
        },
        bundle=trained_bundle,
    )
    with open(tmp_path / "predictions.csv") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["filename", "predicted_class", "p(cyst)", "p(hemangioma)", "p(metastasis)"]
    images = [p for p in test_dir.rglob("*.nii.gz") if not p.name.endswith("_mask.nii.gz")]  # masks are not classified
    assert len(rows) == len(images) == 6
    assert not [r for r in rows if "_mask" in r[0]]
    for row in rows:
        assert sum(float(v) for v in row[2:]) == pytest.approx(1.0, abs=1e-5)
    # the same numbers as the programmatic API (classify_folder), which the bundle's evaluator replaces
    from gemix_monai.engines.classifier import classify_folder

    direct = classify_folder(trained_bundle / "models" / "model.pt", test_dir, tmp_path / "direct.csv", device="cpu")
    assert direct.read_text() == (tmp_path / "predictions.csv").read_text()


@pytest.mark.parametrize("use_trace", [False, True])
def test_ckpt_export_gives_a_torchscript_classifier_that_predicts_the_same(trained_bundle, tmp_path, use_trace):
    from monai.bundle import ckpt_export

    from gemix_monai.engines.classifier import load_classifier

    ts = tmp_path / "model.ts"
    cfg = trained_bundle / "configs"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(trained_bundle / "models" / "model.pt"),
        meta_file=str(cfg / "metadata.json"),
        config_file=str(cfg / "inference.json"),
        bundle_root=str(trained_bundle),
        use_trace=use_trace,
        input_shape=[1, 1, 32, 32],
    )
    exported = torch.jit.load(str(ts))
    net, _ = load_classifier(trained_bundle / "models" / "model.pt")
    net.eval()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported(x), net(x), rtol=1e-5, atol=1e-5)


def test_missing_dataset_dir_fails_before_training_naming_the_path(tmp_path):
    missing = tmp_path / "no_such_dataset"
    with pytest.raises(Exception) as info:
        run_bundle_config("train.json", {"bundle_root": str(tmp_path), "dataset_dir": str(missing)})
    assert str(missing) in error_chain(info.value)
    assert not (tmp_path / "models").exists()


def test_unknown_strategy_fails_before_training_listing_the_choices(tiny_datalist, tmp_path):
    with pytest.raises(Exception) as info:
        run_bundle_config(
            "train.json", {"bundle_root": str(tmp_path), "datalist": str(tiny_datalist), "strategy": "cutmixx"}
        )
    chain = error_chain(info.value)
    assert "cutmixx" in chain and "pixel_mixup" in chain and "gemix" in chain
    assert not (tmp_path / "models").exists()


def test_class_count_that_does_not_match_the_checkpoint_is_refused(trained_bundle, tiny_datalist, tmp_path):
    with pytest.raises(Exception) as info:
        run_bundle_config(
            ["train.json", "evaluate.json"],
            {
                "bundle_root": str(trained_bundle),
                "datalist": str(tiny_datalist),
                "output_dir": str(tmp_path),
                "num_classes": 4,
            },
            bundle=trained_bundle,
        )
    chain = error_chain(info.value)
    assert "num_classes=4" in chain and "model.pt" in chain


def test_class_count_that_does_not_match_the_dataset_is_refused_by_training(tiny_datalist, tmp_path):
    with pytest.raises(Exception) as info:
        run_bundle_config(
            "train.json",
            {"bundle_root": str(tmp_path), "datalist": str(tiny_datalist), "num_classes": 4, "max_epochs": 1},
        )
    assert "num_classes=4" in error_chain(info.value)


def test_inference_takes_the_class_count_from_the_checkpoint_and_refuses_a_contradiction(
    trained_bundle, tiny_datalist, tmp_path
):
    common = {"bundle_root": str(trained_bundle), "dataset_dir": str(tiny_datalist.parent / "test"), "device": "cpu"}
    run_bundle_config("inference.json", {**common, "output_dir": str(tmp_path)}, bundle=trained_bundle)
    with open(tmp_path / "predictions.csv") as f:
        assert next(csv.reader(f))[2:] == ["p(cyst)", "p(hemangioma)", "p(metastasis)"]
    with pytest.raises(Exception) as info:
        run_bundle_config(
            "inference.json", {**common, "num_classes": 2, "output_dir": str(tmp_path / "two")}, bundle=trained_bundle
        )
    assert "num_classes=2" in error_chain(info.value) and not (tmp_path / "two" / "predictions.csv").exists()


@pytest.mark.slow
def test_multi_gpu_overlay_trains_the_classifier_in_two_gloo_processes_on_cpu(tiny_datalist, tmp_path):
    """multi_gpu_train.json under torchrun: gloo without CUDA, metrics reduced over ranks, one checkpoint."""
    import os
    import subprocess
    import sys

    from .conftest import copy_bundle

    root = copy_bundle(tmp_path / "bundle")
    configs = "['" + "','".join(str(root / "configs" / n) for n in ("train.json", "multi_gpu_train.json")) + "']"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        configs,
        "--meta_file",
        str(root / "configs" / "metadata.json"),
        "--bundle_root",
        str(root),
        "--datalist",
        str(tiny_datalist),
        "--max_epochs",
        "1",
        "--batch_size",
        "4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (root / "models" / "model.pt").is_file()
    assert json.loads((root / "models" / "classifier.json").read_text())["best_epoch"] == 1
    # both ranks log the same (reduced) validation metrics
    best = [line.split("best value:")[1] for line in (done.stdout + done.stderr).splitlines() if "best value:" in line]
    assert len(best) == 2 and best[0] == best[1]
