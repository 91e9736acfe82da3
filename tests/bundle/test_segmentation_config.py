"""train_segmentation.json: the model-zoo training properties, a tiny run, overridable components, strategies."""

import json

import pytest
import torch

from gemix_monai.cli import run_bundle_config
from gemix_monai.engines.segmenter import evaluate_segmenter, load_segmenter

from _helpers import error_chain, small_generator

from .conftest import REPO_BUNDLE, copy_bundle

NAMES = ["cyst", "hemangioma", "metastasis"]


def _workflow(**overrides):
    from monai.bundle import ConfigWorkflow

    cfg = REPO_BUNDLE / "configs"
    wf = ConfigWorkflow(
        config_file=str(cfg / "train_segmentation.json"),
        meta_file=str(cfg / "metadata.json"),
        logging_file=False,
        workflow_type="train",
        **overrides,
    )
    wf.initialize()
    return wf


def _run(root, tiny_datalist, **overrides):
    common = {"bundle_root": str(root), "datalist": str(tiny_datalist), "device": "cpu", "max_epochs": 1}
    run_bundle_config("train_segmentation.json", {**common, **overrides}, bundle=root, bundle_logging=False)
    return root / "models" / "segmenter" / "model.pt"


def test_train_segmentation_json_has_every_training_property(tiny_datalist, tmp_path):
    wf = _workflow(bundle_root=str(tmp_path), datalist=str(tiny_datalist), device="cpu")
    assert wf.check_properties() == []
    assert type(wf.trainer).__name__ == "SupervisedTrainer" and type(wf.evaluator).__name__ == "SupervisedEvaluator"
    assert "val_dice" in wf.val_key_metric
    assert type(wf.trainer.loss_function).__name__ == "DiceCELoss"
    assert type(wf.network_def).__name__ == "UNet"


def test_overridden_components_are_the_ones_trained(tiny_datalist, tmp_path):
    wf = _workflow(
        bundle_root=str(tmp_path),
        datalist=str(tiny_datalist),
        device="cpu",
        loss={"_target_": "DiceLoss", "sigmoid": True},
        optimizer={"_target_": "torch.optim.SGD", "params": "$@network.parameters()", "lr": 0.01},
    )
    assert type(wf.trainer.loss_function).__name__ == "DiceLoss"
    assert type(wf.trainer.optimizer).__name__ == "SGD"


def test_a_tiny_run_writes_a_weights_only_checkpoint_with_its_contract(tiny_datalist, tmp_path):
    from gemix_monai.data import get_dataset

    root = copy_bundle(tmp_path / "bundle")
    ckpt = _run(root, tiny_datalist)
    assert set(torch.load(ckpt, weights_only=True)) == set(load_segmenter(ckpt)[0].state_dict())
    info = json.loads(ckpt.with_name("segmenter.json").read_text())
    assert info["format"] == "gemix-segmenter/1" and info["network"] == "tiny_unet"
    assert info["mask_channels"] == 1 and info["contract"]["class_names"] == NAMES
    assert info["best_epoch"] == 1
    metrics = evaluate_segmenter(ckpt, get_dataset(str(tiny_datalist), "test", 32), tmp_path / "test")
    assert 0.0 <= metrics["dice"] <= 1.0 and metrics["num_cases"] == 6


def test_a_replaced_network_is_not_named_in_segmenter_json(tiny_datalist, tmp_path):
    root = copy_bundle(tmp_path / "bundle")
    ckpt = _run(root, tiny_datalist, **{"network_def#channels": [4, 8, 16]})
    info = json.loads(ckpt.with_name("segmenter.json").read_text())
    assert info["network"] is None and info["network_class"] == "monai.networks.nets.unet.UNet"


@pytest.mark.parametrize("strategy", ["genmix", "real+synthetic"])
def test_generator_strategies_read_the_pair_generator_of_the_bundle(strategy, tiny_datalist, tmp_path):
    root = copy_bundle(tmp_path / "bundle")
    G = small_generator(resolution=32, channels=2, w_dim=8, channel_base=64, channel_max=8, class_names=NAMES)
    G.save_checkpoint(root / "models" / "generator" / "generator.pt")
    ckpt = _run(
        root, tiny_datalist, strategy=strategy, strategy_kwargs={"synthetic_ratio": 0.5} if "+" in strategy else {}
    )
    info = json.loads(ckpt.with_name("segmenter.json").read_text())
    assert info["strategy"] == strategy and info["strategy_info"]["mask_channels"] == 1


def test_a_strategy_that_does_not_apply_to_masks_is_refused(tiny_datalist, tmp_path):
    with pytest.raises(Exception) as info:
        _run(copy_bundle(tmp_path / "bundle"), tiny_datalist, strategy="pixel_mixup")
    assert "strategy 'pixel_mixup' is not offered for segmentation" in error_chain(info.value)
