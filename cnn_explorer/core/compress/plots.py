"""The report's pictures, drawn with ``core.charts`` (PNG, written to a temporary name and renamed):
quality against file size, the sparsity sweep, and a layer's weight histograms."""

from __future__ import annotations

import re
from pathlib import Path

from cnn_explorer.core.charts import line_chart_png
from cnn_explorer.core.compress.spec import CompressReport, WeightHistogram

__all__ = ["histogram_file_name", "quality_vs_size_png", "sweep_png", "weights_png"]


def _metric_label(report: CompressReport) -> str:
    return "accuracy (%)" if report.metric == "accuracy" else "agreement with the original's top-1 (%)"


def quality_vs_size_png(path: Path, report: CompressReport) -> Path | None:
    """One dot per variant: quality against the saved file's size. None when nothing has a quality."""
    series = [
        ([v.size_bytes / 2**20], [100.0 * v.quality], v.name)
        for v in report.variants
        if v.quality is not None
    ]
    if not series:
        return None
    title = f"{report.metric.capitalize()} against size on {report.images} images"
    return line_chart_png(path, series, title=title, x_label="file size (MiB)", y_label=_metric_label(report))


def sweep_png(path: Path, report: CompressReport) -> Path | None:
    """Quality at each global sparsity (no fine-tune)."""
    if not report.sweep:
        return None
    xs = [100.0 * p.sparsity for p in report.sweep]
    ys = [100.0 * p.quality for p in report.sweep]
    return line_chart_png(
        path,
        [(xs, ys, "global magnitude pruning, no fine-tune")],
        title="How far can we prune?",
        x_label="share of conv and linear weights pruned (%)",
        y_label=_metric_label(report),
        x_ticks=[(x, f"{x:g}") for x in xs],
    )


def histogram_file_name(layer: str) -> str:
    return "weights_" + re.sub(r"[^A-Za-z0-9_.-]", "_", layer) + ".png"


def weights_png(path: Path, histograms: list[WeightHistogram]) -> Path | None:
    """The layer's weights before (the original) and after each variant, on the bins they share per
    variant (each line is drawn at its own bin centres); exact zeros are in the legend, not in the bins."""
    if not histograms:
        return None
    first = histograms[0]
    centres = [(a + b) / 2 for a, b in zip(first.edges, first.edges[1:], strict=False)]
    series = [(centres, [float(c) for c in first.before], f"original ({first.zeros_before} zeros)")]
    for h in histograms:
        mids = [(a + b) / 2 for a, b in zip(h.edges, h.edges[1:], strict=False)]
        extra = f", {h.levels} int8 levels" if h.levels is not None else ""
        series.append((mids, [float(c) for c in h.after], f"{h.variant} ({h.zeros_after} zeros{extra})"))
    return line_chart_png(
        path,
        series,
        title=f"Weights of {first.layer} (exact zeros counted apart)",
        x_label="weight value",
        y_label="weights per bin",
    )
