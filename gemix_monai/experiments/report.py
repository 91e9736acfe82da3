"""Every table and figure of the experiments' reports, in one place (docs/design.md, "Reports"): the comparison's
``summary.md`` / ``summary.png`` (classification and segmentation), the audits' ``audit.md``, ``pairs.md``,
``memorisation.png`` and ``samples.png``, and the generator study's ``study.md``.

Functions here only format what they are given (numbers, intervals, rows of finished cells) — they read and run
nothing — so the modules that compute (``experiments.compare``, ``experiments.audit``,
``experiments.generator_study``) stay free of presentation, and a number is written the same way in every report
(:func:`fmt`). The clinical report of one evaluation is :mod:`gemix_monai.handlers.report`, one floor down, whose
figure helpers (:func:`~gemix_monai.handlers.report.new_figure`, :func:`~gemix_monai.handlers.report.save_figure`)
these figures use too.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gemix_monai.experiments.stats import Interval, table_head
from gemix_monai.handlers.report import new_figure, save_figure

__all__ = [
    "fmt",
    "fmt_interval",
    "compare_markdown",
    "segmentation_compare_markdown",
    "result_tables",
    "interval_tables",
    "summary_plot",
    "display_image",
    "memorisation_figure",
    "samples_figure",
    "audit_markdown",
    "pair_audit_markdown",
    "STUDY_TABLE",
    "study_markdown",
]


def fmt(value, spec: str = ".4g", *, missing: str = "n/a") -> str:
    """One table cell: ``None`` and NaN/inf are ``missing``, a bool ``yes``/``no``, an int as is, a float
    ``format(value, spec)`` (``"+.4f"`` for a signed difference)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def fmt_interval(iv: Interval, signed: bool = False) -> str:
    """``mean ± half-width [lo, hi] (marks)`` (4 decimals; without ``±`` when clipped), or ``mean (interval
    undefined)``."""
    spec = "+.4f" if signed else ".4f"
    if not iv.defined:
        return f"{fmt(iv.mean, spec)} (interval undefined)"
    # a clipped interval is no longer mean ± h (docs/experiments.md, "Intervals")
    half = "" if iv.clipped else f" ± {iv.half_width:.4f}"
    marks = f" ({iv.marks()})" if iv.marks() else ""
    return f"{fmt(iv.mean, spec)}{half} [{fmt(iv.lo, spec)}, {fmt(iv.hi, spec)}]{marks}"


# ---------------------------------------------------------------------------------------------- comparisons


def result_tables(s, arms: Sequence, metrics, records, baselines: Sequence[str]) -> list[str]:
    """Markdown lines after a summary's header: the variants' settings, the interval tables, where the raw data are."""
    lines: list[str] = []
    variants = [a for a in arms if a.kwargs or a.name != a.strategy]
    if variants:
        lines += ["Variants:", "", "| name | strategy | keyword arguments |", "|---|---|---|"]
        lines += [f"| {a.name} | {a.strategy} | `{a.kwargs}` |" for a in variants]
        lines.append("")
    lines += interval_tables(s.networks, [a.name for a in arms], metrics, records, baselines)
    lines += [
        "Raw per-cell results: `cells.csv`; long format with the paired rows: `summary.csv`; plot: `summary.png`.",
        "",
    ]
    return lines


def interval_tables(networks, arm_names, metrics, records, baselines: Sequence[str]) -> list[str]:
    """Markdown lines: per network, the interval table of every arm, then the paired differences per baseline."""
    lines: list[str] = []
    by = {(r["network"], r["strategy"], r["comparison"], r["metric"]): r["interval"] for r in records}
    for net in networks:
        lines += [f"## Network `{net}`", "", *table_head(["strategy", "n", *metrics])]
        for arm in arm_names:
            ivs = [by[(net, arm, "", m)] for m in metrics]
            lines.append(f"| {arm} | {ivs[0].n} | " + " | ".join(fmt_interval(iv) for iv in ivs) + " |")
        lines.append("")
        for base in baselines:
            if base not in arm_names:
                continue
            lines += [
                f"### Paired differences: strategy - `{base}` (`{net}`)",
                "",
                "Matched by (GAN seed, seed); `*` marks an interval that excludes 0.",
                "",
                *table_head(["strategy", "n", *metrics]),
            ]
            for arm in arm_names:
                if (net, arm, f"- {base}", metrics[0]) not in by:
                    continue
                ivs = [by[(net, arm, f"- {base}", m)] for m in metrics]
                lines.append(
                    f"| {arm} | {ivs[0].n} | "
                    + " | ".join(fmt_interval(iv, signed=True) + (" *" if iv.excludes_zero else "") for iv in ivs)
                    + " |"
                )
            lines.append("")
    return lines


def compare_markdown(
    s,
    arms,
    dataset: dict,
    rows: list[dict],
    metrics,
    records,
    *,
    num_cells: int,
    gan_seconds,
    code_line: str,
    baselines: Sequence[str],
) -> str:
    """``summary.md`` of the classifier comparison: the budget, then :func:`result_tables`. ``rows``: the finished
    classifier cells; ``num_cells``: all classifier cells; ``gan_seconds``: the finished GAN cells' times;
    ``code_line``: the code state(s) of the finished cells."""
    pct = f"{s.confidence * 100:g} %"
    how = (
        f"{pct} Student-t interval (n - 1 degrees of freedom)"
        if s.interval == "t"
        else f"{pct} percentile bootstrap interval of the mean (10000 resamples, seed 0)"
    )
    gan_secs = list(gan_seconds)
    lines = [
        "# Strategy comparison on the test split",
        "",
        f"- dataset: `{json.dumps(dataset)}`",
        f"- classifier seeds: {list(s.seeds)} (n = {len(s.seeds)}); GAN seeds: {list(s.gan_seeds)}",
        f"- generator families: {', '.join(s.generators)} (arms `<strategy>@<family>`; unsuffixed: stylegan2)",
        f"- GAN budget (per GAN seed and family): preset `{s.gan_preset}`, {s.gan_kimg:g} kimg, batch {s.gan_batch_size}"
        + (f"; measured {sum(gan_secs):.0f} s over {len(gan_secs)} GAN(s)" if gan_secs else "")
        + (" (families trained here only)" if s.generator_files else ""),
        *[
            f"- generator `{label}` trained elsewhere: `{path}` (copied into its GAN cell, sha256 in its config)"
            for label, path in s.generator_files.items()
        ],
        *(
            [f"- synthetic pools: {s.pool_size} images per generator and sampler, shared by the seeds"]
            if s.pool_size
            else []
        ),
        *(
            [f"- generators trained with class balance `{s.gan_class_balance}`"]
            if s.gan_class_balance != "none"
            else []
        ),
        *([f"- cells use each GAN's `best.pt` by `{s.gan_select}`"] if s.gan_select else []),
        f"- classifier budget (every cell): {s.epochs} epochs, batch {s.batch_size}, AdamW lr {s.learning_rate:g}, "
        f"weight decay {s.weight_decay:g}, {s.image_size} px, checkpoint chosen by validation `{s.key_metric}`",
        f"- cells: {len(rows)} of {num_cells} classifier cells finished"
        + (f" (total {sum(r['seconds'] or 0 for r in rows):.0f} s)" if rows else ""),
        code_line,
        "",
        f"Each entry is mean ± half-width [lo, hi] of a {how} over the classifier seeds; n is the number of "
        "seeds (with several GAN seeds, a seed's value is the mean over its GAN seeds). An interval needs "
        "n >= 2; with n = 1 it is reported as undefined, with n = 2 marked `n=2 too small`. Ends beyond the "
        "metric's range ([0, 1] for a rate, [-1, 1] for a difference of two) are cut there and the interval is "
        "marked `clipped` (written without ±). An undefined value (the FNR of a class with no test image) is left "
        "out and n counts the seeds with a value. Higher is better except `ece` and `fnr/<class>`.",
        "",
    ]
    lines += result_tables(s, arms, metrics, records, baselines)
    return "\n".join(lines)


def segmentation_compare_markdown(
    s, arms, dataset: dict, rows: list[dict], metrics, records, *, num_cells: int, counts: Sequence[str], code_line: str
) -> str:
    """``summary.md`` of the segmentation comparison: the budget, the excluded cases (``counts``: the count metrics
    summed over ``rows``), then :func:`result_tables` against ``real``."""
    pct = f"{s.confidence * 100:g} %"
    how = f"{pct} Student-t interval" if s.interval == "t" else f"{pct} percentile bootstrap interval"
    excluded = {k: sum(int(r["metrics"].get(k, 0)) for r in rows) for k in counts}
    lines = [
        "# Segmentation strategy comparison on the test split",
        "",
        f"- dataset: `{json.dumps(dataset)}`",
        f"- segmenter seeds: {list(s.seeds)} (n = {len(s.seeds)}); GAN seeds: {list(s.gan_seeds)}",
        f"- pair GAN budget (per GAN seed): preset `{s.gan_preset}`, {s.gan_kimg:g} kimg, batch {s.gan_batch_size}",
        f"- segmenter budget (every cell): {s.epochs} epochs, batch {s.batch_size}, AdamW lr {s.learning_rate:g}, "
        f"weight decay {s.weight_decay:g}, {s.image_size} px, DiceCELoss, checkpoint chosen by validation Dice",
        f"- cells: {len(rows)} of {num_cells} segmenter cells finished"
        + (f" (total {sum(r['seconds'] or 0 for r in rows):.0f} s)" if rows else ""),
        code_line,
        "",
        f"Each entry is mean ± half-width [lo, hi] of a {how} over the seeds of each cell's test mean, cut at the "
        "metric's range (Dice in [0, 1], HD95 >= 0; differences in [-1, 1] and unbounded) and then marked `clipped` "
        '(without ±); n < 3 is marked too small (docs/experiments.md, "Intervals"). Dice: higher '
        "is better; HD95 (pixels, 95th percentile Hausdorff distance): lower is better. Per image, Dice is undefined "
        "for an empty true mask and HD95 for an empty true or predicted mask; such cases are left out of the means "
        "and counted (docs/segmentation.md). Over all finished cells: "
        + ", ".join(f"`{k}` = {v}" for k, v in excluded.items())
        + " (per cell: `cells.csv`).",
        "",
    ]
    lines += result_tables(s, arms, metrics, records, ("real",))
    return "\n".join(lines)


def summary_plot(path: Path, networks, arms, records, s, plot_metrics: Sequence[str], baselines: Sequence[str]) -> Path:
    """``summary.png``: per network and plotted metric, each arm's mean and interval (x: undefined interval)."""
    by = {(r["network"], r["strategy"], r["metric"]): r["interval"] for r in records if not r["comparison"]}
    fig = new_figure(figsize=(1.2 + 0.75 * len(arms) * len(networks) + 1.5, 3.2 * len(plot_metrics)))
    axes = fig.subplots(len(plot_metrics), len(networks), squeeze=False)
    for j, net in enumerate(networks):
        for i, m in enumerate(plot_metrics):
            ax = axes[i][j]
            for x, arm in enumerate(arms):
                iv = by[(net, arm, m)]
                if not math.isfinite(iv.mean):
                    continue
                if iv.defined:
                    ax.errorbar(
                        [x],
                        [iv.mean],
                        yerr=[[iv.mean - iv.lo], [iv.hi - iv.mean]],
                        fmt="o",
                        capsize=4,
                        color="tab:blue" if arm not in baselines else "tab:gray",
                    )
                else:
                    ax.plot([x], [iv.mean], "x", color="tab:red")
            ax.set_xticks(range(len(arms)), arms, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{net}: {m}", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
            if j == 0:
                ax.set_ylabel(m)
    fig.suptitle(
        f"test split, mean and {s.confidence * 100:g} % {s.interval} interval over {len(s.seeds)} seeds "
        "(x: interval undefined)",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=100, tight=False)


# ---------------------------------------------------------------------------------------------- audits


def display_image(img: torch.Tensor) -> np.ndarray:
    """An image [C, x, y] (MONAI order) in [-1, 1] as RGB rows × columns [y, x, 3] in [0, 1] (channel 0 in grey
    unless there are 3 channels): the picture the right way up (docs/data.md, "Orientation")."""
    x = ((img.detach().cpu().float() + 1) / 2).clamp(0, 1).transpose(-1, -2)
    return (x.permute(1, 2, 0) if x.shape[0] == 3 else x[0].unsqueeze(-1).expand(-1, -1, 3)).numpy()


def _mosaic(tiles: list[list[np.ndarray | None]], side: int, gap_x: int, gap_y: int) -> np.ndarray:
    """Tiles [side, side, 3] on a white canvas, ``gap_x`` / ``gap_y`` pixels apart (``None`` leaves a blank)."""
    rows, cols = len(tiles), max(len(r) for r in tiles)
    canvas = np.ones((rows * (side + gap_y) + gap_y, cols * (side + gap_x), 3), np.float32)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is not None:
                y, x = gap_y + i * (side + gap_y), j * (side + gap_x)
                canvas[y : y + side, x : x + side] = tile
    return canvas


def _tile_figure(canvas: np.ndarray, side: int, inch_per_tile: float, texts, title: str, path: Path) -> Path:
    """One axes showing the mosaic (one imshow is far cheaper than an axes per image) with text labels."""
    h, w = canvas.shape[:2]
    scale = inch_per_tile / side
    header = 0.2 + 0.16 * (title.count("\n") + 1)  # inches for the title lines
    fig = new_figure(figsize=(w * scale, h * scale + header))
    ax = fig.add_axes((0, 0, 1, h * scale / (h * scale + header)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, kwargs in texts:
        ax.text(x, y, text, fontsize=6.5, **kwargs)
    fig.suptitle(title, fontsize=8, y=0.995, va="top")
    return save_figure(fig, path, dpi=110)


def memorisation_figure(path, synth, s_labels, train, t_labels, names, nearest: dict, n_show, feature_desc, thresholds):
    """``memorisation.png``: the ``n_show`` closest synthetic/training pairs by pixel L2 and by feature L2.
    ``nearest``: ``{"pixel": (distances [N], train indices [N]), "feature": (...)}`` of every synthetic image."""
    nn_pix, idx_pix = nearest["pixel"]
    nn_feat, idx_feat = nearest["feature"]
    n_show = max(1, min(n_show, synth.shape[0]))
    side = int(synth.shape[-1])
    gap_x, gap_y = max(2, side // 8), max(8, side // 2)
    tiles, texts = [], []
    orders = (
        (torch.argsort(nn_pix)[:n_show], idx_pix, nn_pix, "pixel"),
        (torch.argsort(nn_feat)[:n_show], idx_feat, nn_feat, "feature"),
    )
    for row in range(n_show):
        tiles.append([])
        for col, (order, idx, dist, space) in enumerate(orders):
            s, t = int(order[row]), int(idx[int(order[row])])
            extra = [None] if col == 0 else []  # a blank column between the two blocks
            tiles[-1] += [display_image(synth[s]), display_image(train[t])] + extra
            y = gap_y + row * (side + gap_y) - 1
            x0 = (3 * col) * (side + gap_x)
            texts.append((x0, y, f"syn #{s} ({names[int(s_labels[s])]})", {"va": "bottom"}))
            texts.append(
                (
                    x0 + side + gap_x,
                    y,
                    f"train #{t} ({names[int(t_labels[t])]})\n{space} L2 {float(dist[s]):.3g}",
                    {"va": "bottom"},
                )
            )
    title = (
        "Closest synthetic/training pairs: left by pixel L2, right by feature L2.\n"
        f"Floor (held-out real, {thresholds[0]:.0%} quantile of NN distance): pixel {thresholds[1]:.3g}, "
        f"feature {thresholds[2]:.3g}\n" + textwrap.fill(f"features: {feature_desc}", 100)
    )
    return _tile_figure(_mosaic(tiles, side, gap_x, gap_y), side, 1.3, texts, title, path)


def samples_figure(path, train, t_labels, synth, s_labels, names, per_row, seed):
    """``samples.png``: per class, a row of real training images and a row of synthetic ones."""
    rng = np.random.default_rng(seed)
    side = int(synth.shape[-1])
    gap_x, gap_y = max(2, side // 16), max(4, side // 5)
    label_cols = 1  # a blank tile on the left for the row labels
    tiles, texts = [], []
    for c, name in enumerate(names):
        for r, (images, labels, kind) in enumerate(((train, t_labels, "real (train)"), (synth, s_labels, "synthetic"))):
            pool = torch.nonzero(labels == c).flatten().numpy()
            pick = rng.choice(pool, min(per_row, pool.size), replace=False) if pool.size else []
            tiles.append([None] * label_cols + [display_image(images[int(i)]) for i in pick])
            y = gap_y + (2 * c + r) * (side + gap_y) + side / 2
            texts.append((label_cols * (side + gap_x) - gap_x, y, f"{name}\n{kind}", {"ha": "right", "va": "center"}))
    canvas = _mosaic(tiles, side, gap_x, gap_y)
    width = (label_cols + per_row) * (side + gap_x)
    if canvas.shape[1] < width:  # rows shorter than per_row everywhere: keep the layout width
        canvas = np.concatenate([canvas, np.ones((canvas.shape[0], width - canvas.shape[1], 3), np.float32)], axis=1)
    return _tile_figure(canvas, side, 1.0, texts, "Real training images vs synthetic (one-hot labels), per class", path)


def audit_markdown(
    report: dict, sources: Sequence[str], metrics: Sequence[tuple[str, str, str]], exact_rms: float
) -> str:
    """``audit.md`` of :func:`gemix_monai.experiments.audit.run_audit`'s ``report`` (``sources``: the two scored
    sets; ``metrics``: ``(key, label, how to read)`` rows; ``exact_rms``: the exact-copy threshold)."""
    groups = list(report["class_names"]) + ["overall"]
    m = report["metrics"]
    fn = report["feature_network"]
    lines = [
        "# Synthetic-quality audit",
        "",
        f"- generator: {report['generator']}",
        f"- feature network: {fn['description']}",
        f"- synthetic images: one-hot labels, {report['settings']['num_per_class']} per class, seed {report['settings']['seed']}",
        f"- real floor: the {report['heldout_name']} (real images the generator never saw), scored against the same training split",
        "",
        "Columns: **syn** = synthetic vs train, **floor** = held-out real vs train. "
        "Per-class columns compare class c with the training images of class c; 'overall' pools all classes.",
        "",
    ]
    header = ["metric", "look for"] + [f"{g} {s}" for g in groups for s in ("syn", "floor")]
    lines += table_head(header)
    count_row = ["images (n / n_train)", ""]
    for g in groups:
        for s in sources:
            e = m[s]["overall"] if g == "overall" else m[s]["per_class"][g]
            count_row.append(f"{e['n']} / {e['n_train']}")
    lines.append("| " + " | ".join(count_row) + " |")
    for key, label, read in metrics:
        row = [label, read]
        for g in groups:
            for s in sources:
                e = m[s]["overall"] if g == "overall" else m[s]["per_class"][g]
                row.append(fmt(e.get(key)))
        lines.append("| " + " | ".join(row) + " |")
    mem = report["memorisation"]
    lines += [
        "",
        "## Memorisation",
        "",
        f"Threshold: the {mem['quantile']:.0%} quantile of the held-out real images' nearest-training-image pixel "
        f"distance, {mem['pixel_threshold']:.4g} (feature space: {mem['feature_threshold']:.4g}). "
        f"A set is flagged when it holds an exact copy (RMS difference below {exact_rms:.4g}) or when more than "
        f"{mem['flag_fraction']:.0%} of it is closer to a training image than that threshold.",
        "",
        f"**Flagged: {'YES' if mem['flagged'] else 'no'}** "
        f"(overall {'flagged' if mem['flagged_overall'] else 'not flagged'}; classes flagged: "
        f"{', '.join(mem['flagged_classes']) or 'none'}).",
    ]
    if mem.get("heldout_exact_copies"):
        lines.append(
            f"\nWarning: {mem['heldout_exact_copies']} held-out image(s) are exact copies of training images: "
            "the splits overlap, so the floor is too low."
        )
    lines += [
        "",
        "Closest pairs (pixel L2), shown in memorisation.png:",
        "",
        "| synthetic # | class | train # | pixel L2 | feature L2 to the same train image |",
        "|---|---|---|---|---|",
    ]
    for p in mem["closest_pixel_pairs"]:
        lines.append(
            f"| {p['synthetic_index']} | {p['class']} | {p['train_index']} | {p['pixel_distance']:.4g} | "
            f"{fmt(p.get('feature_distance_same_pair'))} |"
        )
    if report["undefined"]:
        lines += [
            "",
            "Undefined values (n/a): "
            + "; ".join(f"{u['where']} {u['metrics']}: {u['reason']}" for u in report["undefined"]),
        ]
    lines += [
        "",
        "## How to read",
        "",
        "Each number means little alone; read it against the floor beside it, which is what new real images of "
        "the same class and count score against the same training set. A good generator sits near the floor: "
        "Fréchet distance and KID close to the floor's (both are biased upward by small sets, KID less so; FD "
        "with fewer images than feature dimensions is mostly noise), precision and recall close to the floor's "
        "(low precision = unrealistic samples, low recall = missing variety), and a within-set MS-SSIM close to the "
        "floor's (much higher = mode collapse, the samples look alike). Nearest-neighbour distances well below the "
        "floor's, a suspect fraction well above the quantile, or any exact copy mean the generator reproduces "
        "training images rather than new ones (memorisation): look at memorisation.png. Feature-space numbers are "
        f"computed with the {fn['network']} classifier named above, trained on real training images only; they are "
        "comparable only with audits that used the same feature network, never with published Inception FIDs.",
        "",
    ]
    return "\n".join(lines)


def pair_audit_markdown(report: dict) -> str:
    """``pairs.md`` of :func:`gemix_monai.experiments.audit.pairs.run_pair_audit`'s ``report``."""
    lines = [
        "# Image–mask pair audit",
        "",
        f"- generator: `{report['generator']}`; {report['mask_channels']} mask channel(s); classes {report['class_names']}",
        f"- synthetic pairs per class: {report['settings']['num_per_class']}; held-out floor: {report['heldout_name']}",
        f"- image audit (FD/KID on domain features, precision/recall, MS-SSIM, memorisation): `images/audit.md`; "
        f"FD synthetic {fmt(report['images']['fd']['synthetic'])}, real floor {fmt(report['images']['fd']['real_floor'])}",
        f"- segmenter of the consistency check: {report['segmenter']}",
        "",
        "## Image–mask consistency",
        "",
        "A segmenter trained on real pairs only segments each set; scores against that set's own masks. The "
        "synthetic Dice should be near the real floor.",
        "",
        "| set | Dice | HD95 (px) | Dice cases | excluded (empty truth) | HD95 excluded (empty prediction) |",
        "|---|---|---|---|---|---|",
    ]
    for src in ("synthetic", "real_floor"):
        r = report["consistency"][src]
        lines.append(
            f"| {src} | {fmt(r['dice'])} | {fmt(r['hd95'])} | {r['dice_cases']} | {r['dice_excluded_empty_truth']} "
            f"| {r['hd95_excluded_empty_prediction']} |"
        )
    lines += [
        "",
        "## Mask realism",
        "",
        "Mean of each statistic; KS = two-sample Kolmogorov–Smirnov statistic against the training masks "
        "(0 = same distribution; the real floor is what sets of this size reach by chance).",
        "",
    ]
    for structure, per in report["mask_realism"].items():
        lines += [
            f"### {structure}",
            "",
            "| statistic | train mean | synthetic mean | synthetic KS | real floor mean | real floor KS |",
            "|---|---|---|---|---|---|",
        ]
        for key, e in per.items():
            lines.append(
                f"| {key} | {fmt(e['train']['mean'])} | {fmt(e['synthetic']['mean'])} | {fmt(e['synthetic']['ks'])} "
                f"| {fmt(e['real_floor']['mean'])} | {fmt(e['real_floor']['ks'])} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- generator study


#: (row key, column title) of ``study.md``
STUDY_TABLE = (
    ("run", "run"),
    ("checkpoint", "checkpoint"),
    ("train_cpu_s", "CPU s"),
    ("kimg_per_cpu_hour", "kimg/CPU-h"),
    ("fd", "FD"),
    ("kid", "KID"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("coverage", "coverage"),
    ("ms_ssim", "MS-SSIM"),
    ("minority_fd", "minority FD"),
    ("minority_precision", "minority precision"),
    ("minority_recall", "minority recall"),
    ("minority_coverage", "minority coverage"),
    ("minority_ms_ssim", "minority MS-SSIM"),
    ("lpips", "LPIPS div."),
    ("memorisation_flagged", "memorised"),
)


def study_markdown(dataset: str, rows: list[dict], floor: dict | None) -> str:
    """``study.md``: one row per audited checkpoint (:data:`STUDY_TABLE`), then the real floor."""

    def cell(v) -> str:
        return fmt(v, ".3f" if v is None or not isinstance(v, float) or abs(v) < 100 else ".0f", missing="–")

    lines = [
        f"# Generator study: {dataset}",
        "",
        "Audit of each generator against the training split (features: a classifier trained on the real training "
        "split only, shared by every row); the real floor is the validation split against the same training split.",
        "",
        "| " + " | ".join(h for _, h in STUDY_TABLE) + " |",
        "|" + "---|" * len(STUDY_TABLE),
    ]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(k)) for k, _ in STUDY_TABLE) + " |")
    if floor:
        keys = ("fd", "kid", "precision", "recall", "coverage", "ms_ssim", "lpips")
        cells = {k: floor.get(f"floor_{k}") for k in keys}
        cells.update({f"minority_{k}": floor.get(f"floor_minority_{k}") for k in keys})
        lines.append(
            "| **real floor** | validation | | | " + " | ".join(cell(cells.get(k)) for k, _ in STUDY_TABLE[4:]) + " |"
        )
    lines += ["", f"Minority class: {rows[0]['minority'] if rows else '–'} (fewest training images)."]
    return "\n".join(lines) + "\n"
