"""MONAI Label serves the bundle's classifier (BundleInferTask) and the soft-label generator (type others).

Needs the ``monailabel`` extra. ``monailabel.transform.post`` imports ``torchvision.utils`` at module
level for drawing helpers that classification never calls; where no torchvision wheel exists for the
installed torch (CPU CI), a module exposing those two names (raising if ever called) stands in.
"""

import fcntl
import importlib.util
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest
import torch

MONAILABEL_VERSION = "0.8.5"


def _install_monailabel():
    """MONAI Label is an optional extra whose own requirements cannot be installed here (sam2 builds
    from source and needs torchvision): install the package alone, as the README tells users to; the
    light modules it imports come with the ``test`` extra."""
    if importlib.util.find_spec("monailabel") is not None:
        return
    # Under pytest-xdist every worker imports this module: one installs while the others wait.
    with open(os.path.join(tempfile.gettempdir(), "gemix_monailabel_install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        importlib.invalidate_caches()
        if importlib.util.find_spec("monailabel") is None:
            _pip_install_monailabel()
    importlib.invalidate_caches()


def _pip_install_monailabel():
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", f"monailabel=={MONAILABEL_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        message = f"could not install monailabel=={MONAILABEL_VERSION} --no-deps: {proc.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


_install_monailabel()
pytest.importorskip(
    "monailabel",
    reason="MONAI Label is an optional extra: pip install 'gemix-monai[monailabel]' && pip install --no-deps monailabel",
)


@pytest.fixture(scope="module", autouse=True)
def torchvision_utils_stand_in():
    """Provide ``torchvision.utils`` for the duration of this module when torchvision cannot be imported,
    and take it away afterwards so that no other test sees a fake torchvision."""
    try:
        import torchvision.utils  # noqa: F401

        yield
        return
    except Exception:
        pass

    def _unavailable(*args, **kwargs):
        raise RuntimeError("torchvision is not installed; MONAI Label's drawing helpers are unavailable")

    tv = types.ModuleType("torchvision")
    utils = types.ModuleType("torchvision.utils")
    utils.make_grid = utils.save_image = _unavailable
    tv.utils = utils
    saved = {name: sys.modules.pop(name) for name in ("torchvision", "torchvision.utils") if name in sys.modules}
    sys.modules.update({"torchvision": tv, "torchvision.utils": utils})
    try:
        yield
    finally:
        for name in ("torchvision", "torchvision.utils"):
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def classifier_task(trained_bundle):
    from gemix_monai.monailabel import classifier_infer_task

    return classifier_infer_task(trained_bundle)


def _direct_probabilities(bundle, image_path):
    from gemix_monai.data import get_transforms
    from gemix_monai.engines.classifier import load_classifier

    net, _ = load_classifier(bundle / "models" / "model.pt")
    net.eval()
    x = get_transforms(32, hu_window="abdomen")({"image": str(image_path)})["image"]
    with torch.no_grad():
        return torch.softmax(net(torch.as_tensor(x)[None].float()), dim=1)[0]


def test_gemix_monai_import_does_not_import_monailabel():
    code = "import sys, gemix_monai, gemix_monai.monailabel; assert 'monailabel' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bundle_infer_task_reads_class_names_from_metadata(classifier_task):
    assert classifier_task.is_valid()
    assert classifier_task.type == "classification"
    assert classifier_task.labels == {"cyst": 0, "hemangioma": 1, "metastasis": 2}
    assert classifier_task.dimension == 2


def test_bundle_infer_task_classifies_a_ct_slice_like_the_network(classifier_task, trained_bundle, tiny_datalist):
    image = sorted((tiny_datalist.parent / "test").rglob("*.nii.gz"))[0]
    label_file, result = classifier_task({"image": str(image), "device": "cpu"})
    assert label_file is None
    prediction = result["prediction"]
    assert [p["label"] for p in prediction] == ["cyst", "hemangioma", "metastasis"]
    scores = torch.tensor([p["score"] for p in prediction])
    torch.testing.assert_close(scores, _direct_probabilities(trained_bundle, image), rtol=1e-5, atol=1e-6)


def test_generate_task_then_classifier_task_on_the_generated_image(classifier_task, trained_bundle, tmp_path):
    import nibabel as nib

    from gemix_monai.monailabel import GenerateImageTask

    generate = GenerateImageTask(trained_bundle / "models" / "generator" / "generator.pt", output_dir=tmp_path)
    assert generate.type == "others" and generate.labels == ["cyst", "hemangioma", "metastasis"]
    path, info = generate({"soft_label": {"hemangioma": 0.3, "metastasis": 0.7}, "seed": 3})
    assert info["soft_label"] == pytest.approx([0.0, 0.3, 0.7])
    hu = np.asarray(nib.load(path).dataobj)
    assert hu.shape == (32, 32) and hu.dtype == np.int16
    assert -150 <= hu.min() and hu.max() <= 250  # the abdomen window W400/L50
    again, _ = generate({"soft_label": [0, 3, 7], "seed": 3})
    np.testing.assert_array_equal(np.asarray(nib.load(again).dataobj), hu)

    _, result = classifier_task({"image": path, "device": "cpu"})
    scores = torch.tensor([p["score"] for p in result["prediction"]])
    torch.testing.assert_close(scores, _direct_probabilities(trained_bundle, path), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, "soft_label"),
        ({"soft_label": [1, 0]}, "3 classes"),
        ({"soft_label": {"tumour": 1}}, "tumour"),
        ({"label": "tumour"}, "tumour"),
        ({"soft_label": [-1, 1, 1]}, "non-negative"),
    ],
)
def test_generate_task_rejects_bad_requests_by_name(request_, message):
    from gemix_monai.monailabel.generator import parse_soft_label

    with pytest.raises(ValueError, match=message):
        parse_soft_label(request_, ["cyst", "hemangioma", "metastasis"])


def test_missing_classifier_checkpoint_is_named(tmp_path):
    from gemix_monai.monailabel import classifier_infer_task

    with pytest.raises(FileNotFoundError, match="models/model.pt"):
        classifier_infer_task(tmp_path)


# ---------------------------------------------------------------------------------------------- the stock app's classes


def _copy_trained(trained_bundle, dst):
    import shutil

    shutil.copytree(trained_bundle, dst)
    return dst


@pytest.fixture(scope="module")
def stock_named_bundle(trained_bundle, tmp_path_factory):
    """The trained bundle in a folder named as MONAI Label's stock ``monaibundle`` app needs (``*classification*``)."""
    return _copy_trained(trained_bundle, tmp_path_factory.mktemp("apps") / "gemix_classification")


def test_stock_bundle_infer_task_with_default_arguments_serves_the_classifier(
    stock_named_bundle, trained_bundle, tiny_datalist
):
    # what monailabel's sample-apps/monaibundle/main.py does for every bundle: BundleInferTask(path, conf)
    from monailabel.tasks.infer.bundle import BundleInferTask

    task = BundleInferTask(str(stock_named_bundle), {})
    assert task.is_valid() and task.type == "classification" and task.add_post_restore
    # generator.pt lives in models/generator/: the only weight file offered for the classifier is model.pt
    assert task._config["model_filename"] == ["model.pt"]
    image = sorted((tiny_datalist.parent / "test").rglob("*.nii.gz"))[0]
    label_file, result = task({"image": str(image), "device": "cpu"})
    assert label_file is None
    scores = torch.tensor([p["score"] for p in result["prediction"]])
    assert [p["label"] for p in result["prediction"]] == ["cyst", "hemangioma", "metastasis"]
    torch.testing.assert_close(scores, _direct_probabilities(trained_bundle, image), rtol=1e-5, atol=1e-6)


def test_bundle_infer_task_of_type_classification_with_post_restore_on(trained_bundle, tiny_datalist):
    # a folder named "bundle" with type="classification" and MONAI Label's Restored post transform (the default)
    from monailabel.tasks.infer.bundle import BundleInferTask

    task = BundleInferTask(str(trained_bundle), {}, type="classification")
    assert task.add_post_restore and trained_bundle.name == "bundle"
    image = sorted((tiny_datalist.parent / "test").rglob("*.nii.gz"))[-1]
    _, result = task({"image": str(image), "device": "cpu"})
    scores = torch.tensor([p["score"] for p in result["prediction"]])
    torch.testing.assert_close(scores, _direct_probabilities(trained_bundle, image), rtol=1e-5, atol=1e-6)


class _Datastore:
    """The one method ``BundleTrainTask`` calls on MONAI Label's datastore."""

    def __init__(self, items):
        self.items = items

    def datalist(self):
        return self.items


def test_stock_bundle_train_task_trains_train_json_with_its_overrides(trained_bundle, tiny_datalist, tmp_path):
    import json

    from monailabel.tasks.train.bundle import BundleTrainTask

    bundle = _copy_trained(trained_bundle, tmp_path / "gemix_classification")
    before = (bundle / "models" / "model.pt").stat().st_mtime_ns
    datalist = json.loads(tiny_datalist.read_text())
    items = [{"image": str(tiny_datalist.parent / it["image"]), "label": it["label"]} for it in datalist["training"]]
    task = BundleTrainTask(str(bundle), {})
    assert task.is_valid()
    assert task.config()["model_filename"] == ["model.pt"]
    # BundleTrainTask overrides train#trainer#max_epochs, train#dataset#data, validate#dataset#data, train#handlers
    # (adding a CheckpointLoader of models/model.pt) and device, then runs train.json's "run"
    task(
        {
            "model": "gemix_classification",
            "max_epochs": 2,
            "device": "cpu",
            "multi_gpu": False,
            "val_split": 0.25,
            "pretrained": True,
        },
        _Datastore(items),
    )
    info = json.loads((bundle / "models" / "classifier.json").read_text())
    assert info["class_names"] == ["cyst", "hemangioma", "metastasis"] and info["best_epoch"] in (1, 2)
    assert (bundle / "models" / "model.pt").stat().st_mtime_ns > before
    from gemix_monai.engines.classifier import load_classifier

    load_classifier(bundle / "models" / "model.pt")  # what inference.json and the infer task load


def test_sample_app_registers_classifier_and_generator_tasks(trained_bundle):
    import ast
    from pathlib import Path

    import gemix_monai.monailabel.sample_app as sample_app
    from gemix_monai.monailabel.app import gemix_tasks

    infers, trainers = gemix_tasks(trained_bundle, {"device": "cpu"})
    assert infers["gemix_classification"].type == "classification" and infers["gemix_classification"].is_valid()
    assert infers["gemix_generator"].type == "others" and infers["gemix_generator"].is_valid()
    assert trainers["gemix_classification"].is_valid()
    # the app folder's main.py defines the MONAILabelApp subclass (MONAI Label's server modules are not installed here)
    tree = ast.parse((Path(sample_app.__file__).parent / "main.py").read_text())
    assert any(isinstance(n, ast.Assign) and n.targets[0].id == "MyApp" for n in tree.body)


def test_stock_bundle_train_task_on_a_two_class_datastore_records_its_classes(tiny_datalist, tmp_path):
    """Issue 20 item 8: train.json takes the classes and the contract from the data MONAI Label gives it
    (``train#dataset#data``, labels by class name), not from its default source (the three-class phantoms)."""
    import json

    from monailabel.tasks.train.bundle import BundleTrainTask

    from .conftest import copy_bundle

    # a bundle without a model: MONAI Label loads models/model.pt with strict=False, which still refuses the
    # three-class last layer for a two-class network (shape mismatch), so a new class set starts from scratch
    bundle = copy_bundle(tmp_path / "gemix_classification")
    datalist = json.loads(tiny_datalist.read_text())
    names = datalist["class_names"]
    items = [
        {"image": str(tiny_datalist.parent / it["image"]), "label": names[it["label"]]}
        for split in ("training", "validation")
        for it in datalist[split]
        if names[it["label"]] in ("metastasis", "cyst")
    ]
    task = BundleTrainTask(str(bundle), {})
    request = {"model": "gemix_classification", "max_epochs": 1, "device": "cpu", "multi_gpu": False}
    # pretrained=True, the default (False trips over MONAI Label 0.8.5's os.path.exists(None)): no model.pt to load
    task({**request, "val_split": 0.25, "pretrained": True}, _Datastore(items))
    info = json.loads((bundle / "models" / "classifier.json").read_text())
    assert info["class_names"] == ["cyst", "metastasis"] and info["num_classes"] == 2
    assert info["contract"]["class_names"] == ["cyst", "metastasis"]
    # decided from the datastore's files (NIfTI without a CT declaration: no window), not the phantoms' CT window
    assert info["contract"]["preprocessing"]["hu_window"] is None
    from gemix_monai.engines.classifier import load_classifier

    net, _ = load_classifier(bundle / "models" / "model.pt")
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 2)
