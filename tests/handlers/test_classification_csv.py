"""inference.json's ClassificationCSVWriter against MONAI's ClassificationSaver (issue 22): the same files and the same
probabilities; what ours adds is the header, the class names and the predicted class (MONAI writes neither)."""

import csv

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import ClassificationSaver, from_engine
from monai.transforms import Activationsd, Compose, EnsureChannelFirstd, LoadImaged

from gemix_monai.handlers.classifier import ClassificationCSVWriter
from gemix_monai.networks.classifiers import build_classifier_network


def test_our_csv_holds_what_classification_saver_writes_plus_a_header_and_class_names(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    files = []
    for i in range(5):
        path = tmp_path / "images" / f"slice_{i}.nii.gz"
        path.parent.mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(rng.normal(size=(16, 16)).astype(np.float32), np.eye(4)), path)
        files.append({"image": str(path)})
    loader = DataLoader(
        Dataset(files, Compose([LoadImaged("image", image_only=True), EnsureChannelFirstd("image")])), batch_size=2
    )
    names = ["cyst", "hemangioma", "metastasis"]
    ours = ClassificationCSVWriter(tmp_path / "ours.csv", names, root_dir=tmp_path / "images")
    monai_saver = ClassificationSaver(
        output_dir=str(tmp_path),
        filename="monai.csv",
        batch_transform=lambda batch: [item["image"].meta for item in batch],
        output_transform=from_engine(["pred"]),
    )
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=build_classifier_network("tiny", 1, 3).eval(),
        postprocessing=Activationsd("pred", softmax=True),
        val_handlers=[ours, monai_saver],
    )
    evaluator.run()
    with open(tmp_path / "ours.csv") as f:
        header, *rows = list(csv.reader(f))
    with open(tmp_path / "monai.csv") as f:
        theirs = list(csv.reader(f))
    assert header == ["filename", "predicted_class", "p(cyst)", "p(hemangioma)", "p(metastasis)"]
    assert len(theirs) == len(rows) == 5 and len(theirs[0]) == 1 + 3  # no header, no class names in MONAI's
    assert [r[0] for r in rows] == [f"slice_{i}.nii.gz" for i in range(5)]
    assert [r[0] for r in theirs] == [f["image"] for f in files]
    ours_p = np.array([[float(v) for v in r[2:]] for r in rows])
    np.testing.assert_allclose(ours_p, np.array([[float(v) for v in r[1:]] for r in theirs]), rtol=1e-6, atol=1e-7)
    assert [r[1] for r in rows] == [names[int(np.argmax(p))] for p in ours_p]
