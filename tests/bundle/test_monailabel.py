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
pytest.importorskip("monailabel", reason="MONAI Label is an optional extra: pip install 'gemix-monai[monailabel]' && pip install --no-deps monailabel")


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

    generate = GenerateImageTask(trained_bundle / "models" / "generator.pt", output_dir=tmp_path)
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


@pytest.mark.parametrize(("request_", "message"), [
    ({}, "soft_label"),
    ({"soft_label": [1, 0]}, "3 classes"),
    ({"soft_label": {"tumour": 1}}, "tumour"),
    ({"label": "tumour"}, "tumour"),
    ({"soft_label": [-1, 1, 1]}, "non-negative"),
])
def test_generate_task_rejects_bad_requests_by_name(request_, message):
    from gemix_monai.monailabel.generator import parse_soft_label

    with pytest.raises(ValueError, match=message):
        parse_soft_label(request_, ["cyst", "hemangioma", "metastasis"])


def test_missing_classifier_checkpoint_is_named(tmp_path):
    from gemix_monai.monailabel import classifier_infer_task

    with pytest.raises(FileNotFoundError, match="models/model.pt"):
        classifier_infer_task(tmp_path)
