"""The compression lab's charts, drawn from a :class:`CompressReport`'s plain values.

- :class:`QualityVsSize`: each variant as a labelled point, quality (%) against its file size on disk
  (MB, a log axis when the sizes span more than 10×), the original (fp32) a star; clicking a point
  emits ``variant_selected(name)``.
- :class:`SweepChart`: quality against sparsity from the report's sweep (global magnitude pruning without a
  fine-tune) and the notes' question, "how far can we prune?", answered in its caption.
- (the weight charts, SparsityBars and WeightHistogramView, are in ``compress_weights``.)

Each shows a one-line hint while it has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.compress.spec import CompressReport, SweepPoint, VariantReport
from cnn_explorer.qt.style import FAINT, MUTED, SIDE_A, TITLE_STYLE
from cnn_explorer.qt.widgets.compress_table import reference_variant, size_ratio_text, size_text
from cnn_explorer.qt.widgets.plots import caption_label, static_plot

LOG_SPAN = 10.0  # sizes spanning more than this factor get a log axis
CLICK_RADIUS_PX = 22
TOLERANCE_POINTS = 1.0  # "how far can we prune": quality within this many points of the unpruned model
ROW_PX = 20  # one layer's row in the sparsity bars
NAME_AXIS_PX = 190
TOP_AXIS_FROM = 15  # layers; with more, the % scale is also drawn above the bars
ZERO_COLOUR = "#d62728"
BEFORE_COLOUR = (120, 120, 120, 170)
AFTER_COLOUR = (31, 119, 180, 190)
SELECTED_RING = "#ff7f0e"
PRUNED_SHARE = 0.05  # new zeros beyond this share of a layer are pruning's, not rounding's
CUT_FACTOR = 2.5  # a zero bar taller than this many times the tallest other bin runs off the top


def quality_axis_label(metric: str) -> str:
    return "accuracy (%)" if metric == "accuracy" else "agreement, top-1 (%)"


def quality_range(values: Sequence[float]) -> tuple[float, float]:
    """A y range in % that shows differences of a point or two without exaggerating them."""
    lo, hi = min(values), max(values)
    pad = max(2.0, 0.15 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    if hi - lo < 8:
        lo = max(0.0, hi - 8)
    return lo, hi + 0.2 * (hi - lo)  # headroom for the labels above the points


def percent_ticks(lo: float, hi: float, most: int = 7) -> list[tuple[float, str]]:
    """Round ticks from ``lo`` to ``hi`` but none above 100 %: the headroom over 100 is for labels."""
    top = min(hi, 100.0)
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50) if (top - lo) / s <= most), 50)
    first = math.ceil(lo / step) * step
    return [(float(v), f"{v:g}") for v in np.arange(first, top + 1e-9, step)]


def set_quality_axis(plot: pg.PlotItem, lo: float, hi: float) -> None:
    plot.setYRange(lo, hi, padding=0)
    plot.getAxis("left").setTicks([percent_ticks(lo, hi), []])


def signed(value: float) -> str:
    """A difference with a real minus sign: "+0.4", "−2.0"."""
    return f"{value:+.1f}".replace("-", "−")


def _plain(html_text: str) -> str:
    return QTextDocumentFragment.fromHtml(html_text).toPlainText()


def style_axes(plot: pg.PlotItem) -> None:
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.enableAutoSIPrefix(False)
        axis.setTextPen(MUTED)
        axis.setPen(MUTED)


class Chart(QWidget):
    """Title, a stack of (hint | chart), caption: what every chart here shares."""

    def __init__(self, title: str, hint: str, chart: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._empty_hint = hint
        self.title_label = QLabel(title)
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.hint_label = QLabel(hint)
        self.hint_label.setWordWrap(True)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setStyleSheet(f"color: {FAINT}; padding: 16px;")
        self.hint_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint_label)
        self.stack.addWidget(chart)
        self._chart = chart
        self.caption_label = caption_label()
        self.header = QHBoxLayout()
        self.header.setContentsMargins(0, 0, 0, 0)
        self.header.addWidget(self.title_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.header)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.caption_label)

    def show_hint(self, text: str | None = None) -> None:
        self.hint_label.setText(text or self._empty_hint)
        self.stack.setCurrentWidget(self.hint_label)
        self.caption_label.setText("")

    def _show_chart(self) -> None:
        self.stack.setCurrentWidget(self._chart)

    def hint(self) -> str:
        """The hint shown in place of the chart ("" while the chart is shown)."""
        return self.hint_label.text() if self.stack.currentWidget() is self.hint_label else ""

    def caption(self) -> str:
        """The line under the chart as the user reads it (plain text)."""
        return _plain(self.caption_label.text())


# -- quality against size ---------------------------------------------------------------------------------
class QualityVsSize(Chart):
    variant_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        self.plot_widget, self.plot = static_plot(200)
        super().__init__(
            "Quality against size on disk",
            "Run a compression to see each variant's quality against its file size.",
            self.plot_widget,
            parent,
        )
        self.report: CompressReport | None = None
        self.log_x = False
        self._points: dict[str, tuple[float, float]] = {}  # name -> (x in view coordinates, quality %)
        self._labels: list[pg.TextItem] = []
        self._selected: str | None = None
        style_axes(self.plot)
        self.plot.setLabel("bottom", "size on disk (MB)")
        self.scatter = pg.ScatterPlotItem(pxMode=True)
        self.ring = pg.ScatterPlotItem(
            size=24, symbol="o", brush=pg.mkBrush(255, 255, 255, 0), pen=pg.mkPen(SELECTED_RING, width=3)
        )
        self.plot.addItem(self.scatter)
        self.plot.addItem(self.ring)
        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        self.set_report(None)

    def set_report(self, report: CompressReport | None) -> None:
        self.report = report
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        self._points = {}
        measured = [
            v for v in (report.variants if report else []) if v.quality is not None and v.size_bytes > 0
        ]
        if not measured:
            self.scatter.clear()
            self.ring.clear()
            self.show_hint(None if report is None else "No variant has a measured quality to plot.")
            return
        self._show_chart()
        reference = reference_variant(report)
        mb = np.array([v.size_bytes / 1e6 for v in measured])
        self.log_x = bool(mb.max() / mb.min() > LOG_SPAN)
        self.plot.setLogMode(x=self.log_x, y=False)
        xs = np.log10(mb) if self.log_x else mb
        ys = np.array([100 * v.quality for v in measured])
        self._points = {v.name: (float(x), float(y)) for v, x, y in zip(measured, xs, ys, strict=True)}
        spots = [
            {
                "pos": (x, y),
                "data": v.name,
                "symbol": "star" if v is reference else "o",
                "size": 26 if v is reference else 12,  # larger: a variant on top of it leaves its tips
                "brush": pg.mkBrush("#333" if v is reference else SIDE_A),
                "pen": pg.mkPen("w", width=1),
            }
            for v, x, y in zip(measured, xs, ys, strict=True)
        ]
        self.scatter.setData(spots)
        self.plot.setLabel("left", quality_axis_label(report.metric))
        self.plot.setLabel("bottom", f"size on disk (MB{', log scale' if self.log_x else ''})")
        x0, x1 = float(xs.min()), float(xs.max())
        span = max(x1 - x0, 0.3 if self.log_x else max(0.3 * x1, 1e-3))
        self.plot.setXRange(x0 - 0.12 * span, x1 + 0.12 * span, padding=0)
        lo, hi = quality_range(list(ys))
        set_quality_axis(self.plot, lo, hi)
        self._place_labels(measured, reference, (x0 - 0.12 * span, x1 + 0.12 * span), (lo, hi))
        self.select(self._selected if self._selected in self._points else None)

    def _place_labels(
        self,
        measured: list[VariantReport],
        reference: VariantReport | None,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
    ) -> None:
        """One label per group of points that would overlap: near-equal sizes and qualities share a label
        (an unstructured-pruned model's dense file is as large as the original's)."""
        (xa, xb), (ya, yb) = x_range, y_range
        groups: list[list[VariantReport]] = []
        for v in measured:
            x, y = self._points[v.name]
            for group in groups:
                gx, gy = self._points[group[0].name]
                if abs(x - gx) / (xb - xa) < 0.06 and abs(y - gy) / (yb - ya) < 0.08:
                    group.append(v)
                    break
            else:
                groups.append([v])
        for group in groups:
            x, y = self._points[group[0].name]
            names = [f"{v.name} (original)" if v is reference else v.name for v in group]
            right_side = (x - xa) / (xb - xa) > 0.62
            below = (y - ya) / (yb - ya) > 0.7  # near the top: the label goes under the point
            anchor = (1.06 if right_side else -0.06, -0.15 if below else 1.15)
            label = pg.TextItem("\n".join(names), color=MUTED, anchor=anchor)
            label.setPos(x, y)
            self.plot.addItem(label, ignoreBounds=True)
            self._labels.append(label)

    def select(self, name: str | None) -> None:
        """Ring a variant's point (the page calls this when the table's selection changes)."""
        self._selected = name
        point = self._points.get(name) if name else None
        if point is None:
            self.ring.clear()
        else:
            self.ring.setData([point[0]], [point[1]])
        self._update_caption()

    # -- reading ----------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        """The point labels as drawn (one per group of overlapping points)."""
        return [label.textItem.toPlainText() for label in self._labels]

    def point_position(self, name: str) -> QPointF:
        """Where a variant's point is, in the plot widget's coordinates (tests click there)."""
        x, y = self._points[name]
        return QPointF(self.plot_widget.mapFromScene(self.plot.vb.mapViewToScene(QPointF(x, y))))

    # -- internals --------------------------------------------------------------------------------
    def _update_caption(self) -> None:
        report = self.report
        if report is None or not self._points:
            return
        parts = [f"<span style='color:{MUTED}'>★</span> the original (fp32)", "click a point to select it"]
        reference = reference_variant(report)
        name = self._selected
        if name and reference is not None and name != reference.name and reference.quality is not None:
            v = report.variant(name)
            if v.quality is not None:
                diff = 100 * (v.quality - reference.quality)
                what = "accuracy" if report.metric == "accuracy" else "agreement"
                parts.insert(
                    0,
                    f"<b>{name}</b>: {size_text(v.size_bytes)}, "
                    f"{size_ratio_text(reference.size_bytes, v.size_bytes)}, {what} {signed(diff)} points",
                )
        self.caption_label.setText(" · ".join(parts))

    def _nearest(self, scene_pos: QPointF) -> str | None:
        best, best_d = None, float(CLICK_RADIUS_PX)
        for name, (x, y) in self._points.items():
            p = self.plot.vb.mapViewToScene(QPointF(x, y))
            d = math.hypot(p.x() - scene_pos.x(), p.y() - scene_pos.y())
            if d <= best_d:
                best, best_d = name, d
        return best

    def _on_clicked(self, event) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        name = self._nearest(event.scenePos())
        if name is not None:
            self.select(name)
            self.variant_selected.emit(name)

    def _on_moved(self, scene_pos: QPointF) -> None:
        name = self._nearest(scene_pos)
        tip = ""
        if name is not None and self.report is not None:
            v = self.report.variant(name)
            tip = f"{name}: {size_text(v.size_bytes)}, {self._points[name][1]:.1f} %\nclick to select"
        self.plot_widget.setToolTip(tip)


# -- the sparsity sweep --------------------------------------------------------------------------------
def how_far(sweep: Sequence[SweepPoint], tolerance_points: float = TOLERANCE_POINTS) -> float | None:
    """The largest sparsity up to which every sweep point stays within ``tolerance_points`` of the least
    pruned one (None without a sweep)."""
    points = sorted(sweep, key=lambda p: p.sparsity)
    if not points:
        return None
    floor = points[0].quality - tolerance_points / 100
    reached = points[0].sparsity
    for p in points[1:]:
        if p.quality < floor:
            break
        reached = p.sparsity
    return reached


class SweepChart(Chart):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.plot_widget, self.plot = static_plot(200)
        super().__init__(
            "How far can we prune?",
            "No sweep in this run: tick “Sparsity sweep” to measure quality at 0–90 % pruning.",
            self.plot_widget,
            parent,
        )
        self.report: CompressReport | None = None
        style_axes(self.plot)
        self.plot.setLabel("bottom", "weights pruned, global magnitude (%)")
        self.curve = self.plot.plot(
            pen=pg.mkPen(SIDE_A, width=2.5), symbol="o", symbolSize=9, symbolBrush=SIDE_A, symbolPen="w"
        )
        self.reference_line = pg.InfiniteLine(
            angle=0, pen=pg.mkPen(FAINT, width=1, style=Qt.PenStyle.DashLine)
        )
        self.plot.addItem(self.reference_line, ignoreBounds=True)
        self._value_labels: list[pg.TextItem] = []
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        self.set_report(None)

    def set_report(self, report: CompressReport | None) -> None:
        self.report = report
        for label in self._value_labels:
            self.plot.removeItem(label)
        self._value_labels = []
        sweep = sorted(report.sweep, key=lambda p: p.sparsity) if report is not None else []
        if not sweep:
            self.curve.setData([], [])
            self.show_hint(
                "Tick “Sparsity sweep” and run to see how quality falls as more weights are pruned."
                if report is None
                else None
            )
            return
        self._show_chart()
        x = np.array([100 * p.sparsity for p in sweep])
        y = np.array([100 * p.quality for p in sweep])
        self.curve.setData(x, y)
        self.plot.setLabel("left", quality_axis_label(report.metric))
        self.plot.setXRange(-4, 100, padding=0)
        lo, hi = quality_range(list(y))
        set_quality_axis(self.plot, lo, hi)
        self.reference_line.setValue(y[0])
        for xi, yi in zip(x, y, strict=True):
            label = pg.TextItem(f"{yi:.0f}", color=SIDE_A, anchor=(0.5, 1.25))
            label.setPos(xi, yi)
            self.plot.addItem(label, ignoreBounds=True)
            self._value_labels.append(label)
        self.caption_label.setText(self._caption_text(report, sweep))

    @staticmethod
    def _caption_text(report: CompressReport, sweep: list[SweepPoint]) -> str:
        what = "accuracy" if report.metric == "accuracy" else "agreement (top-1)"
        reached = how_far(sweep)
        first, last = sweep[0], sweep[-1]
        if reached is not None and reached > first.sparsity:
            answer = (
                f"{what} stays within {TOLERANCE_POINTS:.0f} point of the least pruned model up to "
                f"<b>{100 * reached:.0f} %</b> of the weights removed"
            )
        else:
            answer = f"{what} drops by more than {TOLERANCE_POINTS:.0f} point at the first step"
        start = "unpruned" if first.sparsity == 0 else f"at {100 * first.sparsity:.0f} %"
        return (
            f"{answer}; at {100 * last.sparsity:.0f} %: {100 * last.quality:.1f} % "
            f"({last.nonzero_params:,} non-zero parameters) · dashed: {start}, {100 * first.quality:.1f} % · "
            f"global magnitude pruning, no fine-tune, {report.images} images"
        )

    def value_labels(self) -> list[str]:
        return [label.textItem.toPlainText() for label in self._value_labels]

    def _on_moved(self, scene_pos: QPointF) -> None:
        tip = ""
        report = self.report
        if report is not None and report.sweep and self.plot.vb.sceneBoundingRect().contains(scene_pos):
            x = self.plot.vb.mapSceneToView(scene_pos).x()
            p = min(report.sweep, key=lambda s: abs(100 * s.sparsity - x))
            if abs(100 * p.sparsity - x) < 6:
                tip = (
                    f"{100 * p.sparsity:.0f} % of the weights pruned: {100 * p.quality:.1f} %\n"
                    f"{p.nonzero_params:,} non-zero parameters"
                )
        self.plot_widget.setToolTip(tip)


# -- per-layer sparsity -------------------------------------------------------------------------------------


__all__ = ["Chart", "QualityVsSize", "SweepChart", "how_far", "quality_range", "style_axes"]
