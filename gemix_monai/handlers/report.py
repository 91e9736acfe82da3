"""The clinical report written at the end of an evaluation.

Files (all in one directory): ``metrics.json`` (every scalar, ``null`` where undefined, the list of
undefined names, the classes absent from the truth, the confusion matrix, the calibration table),
``metrics.csv`` (``name,value,undefined``; ``nan`` where undefined), ``metrics.md`` (overall and
per-class tables, "undefined" where undefined: never 0; docs/maths.md §4), ``confusion_matrix.png``
(counts), ``confusion_matrix_normalised.png`` (rows sum to 1: each row shows where the cases of one
true class went) and ``reliability.png``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from gemix_monai.metrics.clinical import ClinicalResult
from gemix_monai.metrics.ignite_clinical import ClinicalMetrics
from gemix_monai.utils import atomic_write_bytes, atomic_write_json

__all__ = [
    "REPORT_FILES",
    "report_title",
    "evaluation_title",
    "confusion_figure",
    "write_classification_report",
    "ClassificationReportWriter",
]

REPORT_FILES = (
    "metrics.json",
    "metrics.csv",
    "metrics.md",
    "confusion_matrix.png",
    "confusion_matrix_normalised.png",
    "reliability.png",
)
OVERALL = ("accuracy", "balanced_accuracy", "macro_f1", "macro_f2", "macro_auroc", "ece")
OVERALL += ("positive_fnr", "positive_sensitivity", "positive_specificity", "positive_auroc")
PER_CLASS = ("sensitivity", "specificity", "precision", "fnr", "f1", "f2", "auroc")


def new_figure(**kwargs):
    """A matplotlib ``Figure`` drawn with Agg, outside pyplot: no global backend switch, nothing to close."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120, tight: bool = True) -> Path:
    """``fig`` as a PNG at ``path`` (``dpi`` dots per inch; ``tight``: cropped to what is drawn), written atomically
    (a reader never sees a half-written image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **({"bbox_inches": "tight"} if tight else {}))
    return atomic_write_bytes(path, buffer.getvalue())


def _fmt(value: float, undefined: bool) -> str:
    return "undefined*" if undefined else f"{value:.4f}"


def _markdown(result: ClinicalResult, title: str) -> str:
    s, undef = result.scalars, set(result.undefined)
    lines = [f"# {title}", "", f"Samples: {result.num_samples}. Classes: {', '.join(result.class_names)}."]
    if result.positive_class is not None:
        lines.append(f"Positive class (miss rate reported as `positive_fnr`): {result.positive_class}.")
    if result.absent_classes:
        lines.append(
            f"**No image of class {', '.join(result.absent_classes)} in this split**: its sensitivity, FNR, F1, F2 "
            "and AUROC are undefined."
        )
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {m} | {_fmt(s[m], m in undef)} |" for m in OVERALL if m in s]
    cols = [m for m in PER_CLASS if f"{m}/{result.class_names[0]}" in s]
    lines += ["", "| class | support | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    support = result.confusion_matrix.sum(dim=1).tolist()
    for c, name in enumerate(result.class_names):
        cells = [_fmt(s[f"{m}/{name}"], f"{m}/{name}" in undef) for m in cols]
        lines.append(f"| {name} | {support[c]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Confusion matrix (rows = truth, columns = prediction):",
        "",
        "| truth \\ prediction | " + " | ".join(result.class_names) + " |",
        "|---" * (len(result.class_names) + 1) + "|",
    ]
    for c, name in enumerate(result.class_names):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in result.confusion_matrix[c].tolist()) + " |")
    if undef:
        lines += [
            "",
            "\\* undefined, not 0: a 0/0 (the class is absent from the truth, or never predicted), or a metric of "
            "a class with no image in this split.",
        ]
    return "\n".join(lines) + "\n"


def report_title(strategy: str | None, split: str | None, run: str | None) -> str:
    """``"strategy gemix · test split · run seed0"``: the line every figure of a report starts with, so that a
    picture on its own says what it shows (parts that are ``None`` are left out)."""
    parts = [
        f"strategy {strategy}" if strategy else None,
        f"{split} split" if split else None,
        f"run {run}" if run else None,
    ]
    return " · ".join(p for p in parts if p) or "Classification report"


def evaluation_title(info: dict, split: str | None, checkpoint: str | os.PathLike | None) -> str:
    """:func:`report_title` of a trained classifier (its ``classifier.json`` ``info``) evaluated on ``split``: the run
    is the folder holding ``models/`` and the training seed."""
    run = None
    if checkpoint is not None:
        folder = Path(checkpoint).resolve().parent
        folder = folder.parent if folder.name == "models" else folder
        run = folder.name + (f", seed {info['seed']}" if info.get("seed") is not None else "")
    return report_title(info.get("strategy"), split, run)


def confusion_figure(result: ClinicalResult, normalised: bool = False, title: str | None = None):
    """The confusion matrix of ``result`` as a matplotlib ``Figure`` (counts, or rows normalised to 1), titled
    ``title`` above what it shows."""
    cm = result.confusion_matrix.to(torch.float64)
    if normalised:
        rows = cm.sum(dim=1, keepdim=True)
        cm = torch.where(rows > 0, cm / rows.clamp_min(1), torch.zeros_like(cm))
    k = len(result.class_names)
    size = max(4.0, 0.6 * k + 2)
    fig = new_figure(figsize=(size, size))
    ax = fig.subplots()
    im = ax.imshow(cm.numpy(), cmap="Blues", vmin=0, vmax=1 if normalised else max(1.0, float(cm.max())))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), result.class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), result.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    what = "confusion matrix (row-normalised)" if normalised else "confusion matrix (counts)"
    ax.set_title(f"{title}\n{what}" if title else what, fontsize=9 if title else None)
    threshold = (1.0 if normalised else float(cm.max())) / 2
    for i in range(k):
        for j in range(k):
            v = float(cm[i, j])
            ax.text(
                j,
                i,
                f"{v:.2f}" if normalised else f"{int(v)}",
                ha="center",
                va="center",
                color="white" if v > threshold else "black",
                fontsize=8 if k > 6 else 10,
            )
    return fig


def _plot_confusion(result: ClinicalResult, path: Path, normalised: bool, title: str | None = None) -> None:
    save_figure(confusion_figure(result, normalised, title), path)


def _plot_reliability(result: ClinicalResult, path: Path, title: str | None = None) -> None:
    bins = result.calibration
    n_bins = bins.shape[0]
    edges = torch.linspace(0, 1, n_bins + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).numpy()
    count = bins[:, 0]
    safe = count.clamp_min(1)
    acc = torch.where(count > 0, bins[:, 2] / safe, torch.zeros_like(count)).numpy()
    conf = torch.where(count > 0, bins[:, 1] / safe, torch.zeros_like(count)).numpy()
    fig = new_figure(figsize=(5, 6))
    ax, ax_n = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = count.numpy() > 0
    ax.bar(centres[filled], acc[filled], width=1 / n_bins, edgecolor="black", label="accuracy")
    ax.plot(centres[filled], conf[filled], "o", color="tab:red", label="mean confidence in bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin")
    ece = result.scalars.get("ece")
    what = f"reliability diagram ({n_bins} bins" + (f", ECE = {ece:.4f})" if ece is not None else ")")
    ax.set_title(f"{title}\n{what}" if title else what, fontsize=9 if title else None)
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar(centres, count.numpy(), width=1 / n_bins, edgecolor="black", color="tab:gray")
    ax_n.set_xlim(0, 1)
    ax_n.set_xlabel("confidence (top probability)")
    ax_n.set_ylabel("samples")
    save_figure(fig, path)


def write_classification_report(
    result: ClinicalResult, output_dir: str | os.PathLike, title: str = "Classification report"
) -> dict[str, Path]:
    """Write the report files for one evaluation; returns ``file name -> path``. ``title`` heads ``metrics.md``
    and every figure (:func:`report_title`: strategy, split and run).

    ``reliability.png`` needs probabilities: it is skipped (and absent from the returned dict) for a
    result computed from hard predictions only.
    """
    if not isinstance(result, ClinicalResult):
        raise TypeError(f"result must be a ClinicalResult, got {type(result).__name__}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    payload = {
        "num_samples": result.num_samples,
        "class_names": list(result.class_names),
        "positive_class": result.positive_class,
        "metrics": result.reported(),  # null where undefined
        "undefined": list(result.undefined),
        "absent_classes": list(result.absent_classes),
        "confusion_matrix": result.confusion_matrix.tolist(),
        "calibration_bins": {
            "count": result.calibration[:, 0].tolist(),
            "confidence_sum": result.calibration[:, 1].tolist(),
            "correct": result.calibration[:, 2].tolist(),
        },
    }
    atomic_write_json(out / "metrics.json", payload)
    written["metrics.json"] = out / "metrics.json"

    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["name", "value", "undefined"])
    undef = set(result.undefined)
    for name, value in result.scalars.items():
        w.writerow([name, repr(float(value)), int(name in undef)])
    atomic_write_bytes(out / "metrics.csv", table.getvalue().encode("utf-8"))
    written["metrics.csv"] = out / "metrics.csv"

    atomic_write_bytes(out / "metrics.md", _markdown(result, title).encode("utf-8"))
    written["metrics.md"] = out / "metrics.md"

    for normalised, name in ((False, "confusion_matrix.png"), (True, "confusion_matrix_normalised.png")):
        _plot_confusion(result, out / name, normalised, title)
        written[name] = out / name
    if result.calibration.shape[0] > 0:
        _plot_reliability(result, out / "reliability.png", title)
        written["reliability.png"] = out / "reliability.png"
    return written


class ClassificationReportWriter:
    """Write :func:`write_classification_report` from a :class:`ClinicalMetrics` after it is computed.

    Args:
        metric: the ``ClinicalMetrics`` attached to the same evaluator (its ``result`` is read).
        output_dir: report directory; with ``per_epoch=True`` each run goes to ``epoch_<trainer epoch>``.
        event: when to write; the default ``Events.COMPLETED`` runs after the metrics (attached on
            ``EPOCH_COMPLETED``) have been computed.
        epoch_transform: returns the number used for ``epoch_<n>`` (e.g. the trainer's epoch).
    """

    def __init__(
        self,
        metric: ClinicalMetrics,
        output_dir: str | os.PathLike,
        *,
        event=Events.COMPLETED,
        per_epoch: bool = False,
        epoch_transform=None,
        title: str = "Classification report",
    ) -> None:
        if not isinstance(metric, ClinicalMetrics):
            raise TypeError(f"metric must be a ClinicalMetrics, got {type(metric).__name__}")
        self.metric = metric
        self.output_dir = Path(output_dir)
        self.event = event
        self.per_epoch = per_epoch
        self.epoch_transform = epoch_transform
        self.title = title
        self.last_written: dict[str, Path] = {}

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, self.event):
            engine.add_event_handler(self.event, self)

    def __call__(self, engine: Engine) -> None:
        if self.metric.result is None:
            raise RuntimeError(
                "ClassificationReportWriter ran before its ClinicalMetrics was computed; "
                "attach the metric to the same engine and write on COMPLETED"
            )
        if idist.get_rank() != 0:  # the result is already reduced over the processes; one writer
            return
        out = self.output_dir
        if self.per_epoch:
            n = self.epoch_transform(engine.state.epoch) if self.epoch_transform else engine.state.epoch
            out = out / f"epoch_{n}"
        self.last_written = write_classification_report(self.metric.result, out, self.title)
