"""The report writer produces every file a clinical reader expects, and each one parses."""

import csv
import json
import math

import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from gemix_monai.handlers.report import REPORT_FILES, ClassificationReportWriter, write_classification_report
from gemix_monai.metrics import ClinicalMetrics, clinical_metrics

NAMES = ["normal", "pneumonia", "covid"]


@pytest.fixture
def result():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (40,), generator=g)
    y[y == 2] = 1  # "covid" absent from the truth: its recall is 0/0 and must be flagged in the report
    return clinical_metrics(
        y, torch.softmax(torch.randn(40, 3, generator=g), 1), class_names=NAMES, positive_class="pneumonia"
    )


def test_every_report_file_is_written(tmp_path, result):
    written = write_classification_report(result, tmp_path)
    assert sorted(written) == sorted(REPORT_FILES)
    assert all((tmp_path / f).is_file() for f in REPORT_FILES)
    assert not list(tmp_path.glob(".*tmp*"))


def test_json_round_trips_every_metric(tmp_path, result):
    write_classification_report(result, tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    undefined = set(result.undefined)
    assert data["metrics"] == {k: (None if k in undefined else v) for k, v in result.scalars.items()}
    assert data["undefined"] == list(result.undefined) and "sensitivity/covid" in data["undefined"]
    for name in ("sensitivity/covid", "fnr/covid", "f1/covid", "f2/covid", "auroc/covid"):  # null, never 0
        assert data["metrics"][name] is None and name in data["undefined"]
    assert data["absent_classes"] == ["covid"]
    assert data["confusion_matrix"] == result.confusion_matrix.tolist()
    assert data["class_names"] == NAMES and data["num_samples"] == 40
    assert sum(data["calibration_bins"]["count"]) == 40


def test_csv_has_one_row_per_metric(tmp_path, result):
    write_classification_report(result, tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    values = {r["name"]: float(r["value"]) for r in rows}
    assert values.keys() == result.scalars.keys()
    for name, value in result.scalars.items():
        assert (math.isnan(values[name]) and math.isnan(value)) or values[name] == value, name
    assert {r["name"] for r in rows if r["undefined"] == "1"} == set(result.undefined)
    assert {r["name"] for r in rows if r["value"] == "nan"} == set(result.undefined)


def test_markdown_tables_list_each_class_and_mark_undefined(tmp_path, result):
    write_classification_report(result, tmp_path)
    md = (tmp_path / "metrics.md").read_text()
    for name in NAMES:
        assert f"| {name} |" in md
    assert f"| macro_f1 | {result.scalars['macro_f1']:.4f} |" in md
    assert "0.0000*" not in md and "undefined*" in md and "undefined, not 0" in md
    assert "**No image of class covid in this split**" in md
    covid_row = next(line for line in md.splitlines() if line.startswith("| covid |"))
    assert covid_row.count("undefined*") == 5  # sensitivity, fnr, f1, f2, auroc; specificity and precision defined


@pytest.mark.parametrize("name", [f for f in REPORT_FILES if f.endswith(".png")])
def test_png_files_are_images(tmp_path, result, name):
    write_classification_report(result, tmp_path)
    with Image.open(tmp_path / name) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100


def test_hard_predictions_skip_the_reliability_diagram(tmp_path):
    r = clinical_metrics(torch.tensor([0, 1, 1]), y_pred=torch.tensor([0, 1, 0]), num_classes=2)
    written = write_classification_report(r, tmp_path)
    assert "reliability.png" not in written and not (tmp_path / "reliability.png").exists()


def test_handler_writes_after_the_metric_is_computed(tmp_path):
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    engine = Engine(lambda e, b: {"pred": b[0], "label": b[1]})
    metric = ClinicalMetrics(3, NAMES)
    metric.attach(engine, "macro_f1")
    writer = ClassificationReportWriter(metric, tmp_path / "report")
    writer.attach(engine)
    engine.run(batches)
    data = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert data["metrics"]["macro_f1"] == engine.state.metrics["macro_f1"]


def test_handler_without_computed_metric_says_what_to_do(tmp_path):
    writer = ClassificationReportWriter(ClinicalMetrics(2), tmp_path)
    with pytest.raises(RuntimeError, match="attach the metric"):
        writer(Engine(lambda e, b: None))


def test_writer_rejects_something_that_is_not_a_result(tmp_path):
    with pytest.raises(TypeError, match="ClinicalResult"):
        write_classification_report({"accuracy": 1.0}, tmp_path)
