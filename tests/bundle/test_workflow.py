"""MONAI workflow conventions: bundle properties, overrides that reach training, experiment tracking."""

import json

import pytest
import torch

from gemix_monai.cli import run_bundle_config

from .conftest import REPO_BUNDLE, copy_bundle


def _workflow(files, kind, **overrides):
    from monai.bundle import ConfigWorkflow

    cfg = REPO_BUNDLE / "configs"
    files = [str(cfg / f) for f in files] if isinstance(files, list) else str(cfg / files)
    wf = ConfigWorkflow(
        config_file=files, meta_file=str(cfg / "metadata.json"), logging_file=False, workflow_type=kind, **overrides
    )
    wf.initialize()
    return wf


def test_train_json_has_every_training_property(tiny_datalist, tmp_path):
    wf = _workflow("train.json", "train", bundle_root=str(tmp_path), datalist=str(tiny_datalist), device="cpu")
    assert wf.check_properties() == []
    assert wf.max_epochs == 5 and wf.val_interval == 1
    assert type(wf.trainer).__name__ == "SupervisedTrainer" and type(wf.evaluator).__name__ == "SupervisedEvaluator"
    assert "macro_f1" in wf.val_key_metric


def test_inference_json_has_every_inference_property(trained_bundle, tiny_datalist, tmp_path):
    wf = _workflow(
        "inference.json",
        "infer",
        bundle_root=str(trained_bundle),
        dataset_dir=str(tiny_datalist.parent / "test"),
        output_dir=str(tmp_path),
        device="cpu",
    )
    assert wf.check_properties() == []
    assert len(wf.dataset) == 6


def _train(root, tiny_datalist, **overrides):
    run_bundle_config(
        "train.json",
        {
            "bundle_root": str(root),
            "datalist": str(tiny_datalist),
            "device": "cpu",
            "max_epochs": 1,
            "tensorboard": False,
            **overrides,
        },
        bundle=root,
        bundle_logging=False,
    )
    return torch.load(root / "models" / "model.pt", weights_only=True)


def test_optimizer_and_network_overrides_change_training(tiny_datalist, tmp_path):
    from gemix_monai.engines.classifier_networks import build_classifier_network

    params = [n for n, _ in build_classifier_network("tiny", 1, 3).named_parameters()]
    default = _train(copy_bundle(tmp_path / "a"), tiny_datalist)
    frozen = _train(copy_bundle(tmp_path / "b"), tiny_datalist, **{"optimizer#lr": 0.0})
    frozen_longer = _train(copy_bundle(tmp_path / "b2"), tiny_datalist, max_epochs=2, **{"optimizer#lr": 0.0})
    # lr 0 reaches the optimizer the trainer steps: the weights never move, however long it trains ...
    assert all(torch.equal(frozen[k], frozen_longer[k]) for k in params)
    # ... while the default learning rate moves them from the same start
    assert any(not torch.equal(default[k], frozen[k]) for k in params)

    root = copy_bundle(tmp_path / "c")
    net = {
        "_target_": "monai.networks.nets.Classifier",
        "in_shape": [1, 32, 32],
        "classes": 3,
        "channels": [4, 8],
        "strides": [2, 2],
    }
    other = _train(root, tiny_datalist, network_def=net)
    from monai.networks.nets import Classifier

    assert set(other) == set(Classifier(in_shape=[1, 32, 32], classes=3, channels=[4, 8], strides=[2, 2]).state_dict())
    info = json.loads((root / "models" / "classifier.json").read_text())
    assert info["network"] is None and info["network_class"].endswith("Classifier")


def test_handler_override_reaches_training(tiny_datalist, tmp_path):
    root = copy_bundle(tmp_path / "b")
    marker = tmp_path / "marker.txt"
    handler = {"_target_": "ignite.handlers.EpochOutputStore"}  # any handler the config did not have
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train.json"))
    handlers = parser["train"]["handlers"] + [handler]
    _train(
        root,
        tiny_datalist,
        **{
            "train#handlers": handlers,
            "run": [
                "$@train#trainer.run()",
                f"$open({str(marker)!r}, 'w').write(str(len(@train#handlers#{len(handlers) - 1}.data)))",
            ],
        },
    )
    assert int(marker.read_text()) > 0  # EpochOutputStore, attached through train#handlers, saw every iteration


def test_mlflow_tracking_records_train_evaluate_and_inference(trained_bundle, tiny_datalist, tmp_path):
    pytest.importorskip("mlflow", reason="install mlflow (or mlflow-skinny) to test MONAI's tracking handlers")
    from mlflow.tracking import MlflowClient

    pytest.importorskip("sqlalchemy", reason="MLflow's local SQLite store needs sqlalchemy and alembic")
    # MONAI's MLFlowHandler refuses file:// stores (MLflow >= 3.13 keeps them in maintenance mode): a local SQLite
    # database under tmp, MONAI's own default, with run artifacts in tmp/mlruns beside it
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    root = copy_bundle(tmp_path / "bundle")
    (root / "models").mkdir()
    for f in ("model.pt", "classifier.json"):
        (root / "models" / f).write_bytes((trained_bundle / "models" / f).read_bytes())
    common = {"bundle_root": str(root), "device": "cpu", "tracking_uri": uri}
    data = {"datalist": str(tiny_datalist)}
    run_bundle_config(
        "train.json",
        {**common, **data, "max_epochs": 1, "tensorboard": False, "experiment_name": "train"},
        bundle=root,
        bundle_logging=False,
        tracking="mlflow",
    )
    run_bundle_config(
        ["train.json", "evaluate.json"],
        {**common, **data, "experiment_name": "evaluate"},
        bundle=root,
        bundle_logging=False,
        tracking="mlflow",
    )
    run_bundle_config(
        "inference.json",
        {**common, "dataset_dir": str(tiny_datalist.parent / "test"), "experiment_name": "inference"},
        bundle=root,
        bundle_logging=False,
        tracking="mlflow",
    )
    client = MlflowClient(tracking_uri=uri)
    for name, metric in (("train", "train_loss"), ("evaluate", "macro_f1"), ("inference", None)):
        exp = client.get_experiment_by_name(name)
        assert exp is not None, name
        runs = client.search_runs([exp.experiment_id])
        assert runs, name
        params = {k for r in runs for k in r.data.params}
        metrics = {k for r in runs for k in r.data.metrics}
        assert params, f"{name}: no params recorded"
        if metric is not None:
            assert metric in metrics, f"{name}: {sorted(metrics)}"
        artifacts = [a.path for r in runs for a in client.list_artifacts(r.info.run_id)]
        assert any(a.endswith(".json") for a in artifacts), f"{name}: artifacts {artifacts}"
    assert (root / "models" / "model.pt").is_file()
    # every setting that decides the classifier's result is an MLflow parameter (not only max_epochs/epoch_length)
    train_run = client.search_runs([client.get_experiment_by_name("train").experiment_id])[0]
    params = train_run.data.params
    decisive = ("strategy", "network", "learning_rate", "weight_decay", "seed", "max_epochs", "batch_size")
    for name in decisive + ("contract", "class_names", "key_metric", "data_source"):
        assert name in params, f"train: no parameter {name!r} in {sorted(params)}"
    assert json.loads(params["strategy"])["name"] == "real" and params["learning_rate"] == "0.001"
    assert json.loads(params["contract"])["preprocessing"]["image_size"] == 32
    assert "TinyClassifier" in params["network"]
    eval_params = client.search_runs([client.get_experiment_by_name("evaluate").experiment_id])[0].data.params
    assert {"checkpoint", "split", "contract"} <= set(eval_params) and eval_params["split"] == "test"
    # MONAI's executed configs land in each run's folder, never in the bundle root
    assert not list(root.glob("config_*.json"))
    assert list((root / "runs" / "train").glob("config_*.json")) and list((root / "eval").glob("config_*.json"))
    assert json.loads((root / "runs" / "train" / "params.json").read_text())["seed"] == 0
