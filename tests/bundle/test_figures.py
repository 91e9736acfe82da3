"""Pictures of a classifier run: TensorBoard images of training batches and validations, Grad-CAM maps in the
evaluation report, and every figure titled with its strategy, split and run."""

import json

import numpy as np
import pytest
import torch

from gemix_monai.cli import run_bundle_config

from .conftest import copy_bundle


def test_train_json_writes_training_batches_and_confusion_matrices_to_tensorboard(tiny_datalist, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = copy_bundle(tmp_path / "bundle")
    run_bundle_config(
        "train.json",
        {"bundle_root": str(root), "datalist": str(tiny_datalist), "device": "cpu", "max_epochs": 2}
        | {"strategy": "pixel_mixup"},
        bundle=root,
        bundle_logging=False,
    )
    events = EventAccumulator(str(root / "runs" / "train" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    images = events.Tags()["images"]
    assert "train/batch" in images and "validation/confusion_matrix" in images
    assert [e.step for e in events.Images("train/batch")] == [1, 2]
    assert [e.step for e in events.Images("validation/confusion_matrix")] == [1, 2]
    batch = events.Images("train/batch")[0]
    assert batch.width >= 600 and batch.height >= 300  # a grid a person can read, not thumbnails


def test_soft_labels_are_captioned_by_class_and_share():
    from gemix_monai.handlers.figures import soft_label_caption

    names = ["cyst", "hemangioma", "metastasis"]
    assert soft_label_caption(torch.tensor([0.0, 0.0, 1.0]), names) == "metastasis"
    assert soft_label_caption(torch.tensor([0.38, 0.0, 0.62]), names) == "metastasis 0.62 · cyst 0.38"


def test_evaluate_json_writes_grad_cam_maps_of_correct_and_missed_images(trained_bundle, tiny_datalist, tmp_path):
    from PIL import Image

    out = tmp_path / "eval"
    run_bundle_config(
        ["train.json", "evaluate.json"],
        {"bundle_root": str(trained_bundle), "datalist": str(tiny_datalist), "output_dir": str(out), "device": "cpu"},
        bundle=trained_bundle,
        bundle_logging=False,
    )
    image = np.asarray(Image.open(out / "gradcam.png").convert("RGB"))
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert json.loads((out / "metrics.json").read_text())["num_samples"] == 6


class _Evaluator:
    """The state a handler reads from a (decollated) SupervisedEvaluator."""

    def __init__(self, outputs):
        from types import SimpleNamespace

        self.outputs = outputs
        self.state = SimpleNamespace(output=None)


def test_grad_cam_writer_picks_the_first_correct_and_missed_images_and_maps_them_with_monai(tmp_path):
    from monai.visualize import GradCAM

    from gemix_monai.handlers.figures import GradCamWriter
    from gemix_monai.networks.classifiers import build_classifier_network

    torch.manual_seed(0)
    net = build_classifier_network("tiny", 1, 2).eval()
    images = torch.rand(12, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        logits = net(images)
    predicted = logits.argmax(1)
    labels = torch.tensor([int(p) if i % 3 else 1 - int(p) for i, p in enumerate(predicted)])  # every third missed
    writer = GradCamWriter(net, ["a", "b"], tmp_path / "gradcam.png", per_class=2, title="strategy real · test split")
    engine = _Evaluator(None)
    writer._reset(engine)
    engine.state.output = [{"image": images[i], "label": labels[i], "pred": logits[i]} for i in range(12)]
    writer._collect(engine)
    for (true, ok), cell in writer.chosen.items():
        expected = [i for i in range(12) if labels[i] == true and (predicted[i] == true) == ok][:2]
        assert [int(torch.nonzero((images == it["image"]).flatten(1).all(1))[0]) for it in cell] == expected
    writer._write(engine)
    assert (tmp_path / "gradcam.png").is_file()
    # the maps are MONAI's GradCAM of the predicted class on the tiny network's feature block
    picked = torch.stack([it["image"] for cell in writer.chosen.values() for it in cell])
    direct = GradCAM(nn_module=net, target_layers="features")(x=picked)
    assert direct.shape == (len(picked), 1, 32, 32) and float(direct.min()) >= 0 and float(direct.max()) <= 1


@pytest.mark.parametrize(
    ("network", "layer"),
    [("tiny", "features"), ("densenet121", "class_layers.relu"), ("resnet18", "layer4")],
)
def test_grad_cam_targets_the_last_feature_block(network, layer):
    from gemix_monai.handlers.figures import gradcam_layer
    from gemix_monai.networks.classifiers import build_classifier_network

    assert gradcam_layer(build_classifier_network(network, 1, 3)) == layer


def test_every_report_figure_is_titled_with_strategy_split_and_run(tmp_path):
    from gemix_monai.handlers.report import confusion_figure, evaluation_title, report_title
    from gemix_monai.metrics.clinical import clinical_metrics

    assert report_title("gemix", "test", "seed0") == "strategy gemix · test split · run seed0"
    title = evaluation_title({"strategy": "gemix", "seed": 3}, "test", tmp_path / "seed3" / "models" / "model.pt")
    assert title == "strategy gemix · test split · run seed3, seed 3"
    result = clinical_metrics(np.array([0, 1, 2, 1]), np.eye(3)[[0, 1, 1, 1]], class_names=["a", "b", "c"])
    fig = confusion_figure(result, title=title)
    assert fig.axes[0].get_title().startswith(title)
