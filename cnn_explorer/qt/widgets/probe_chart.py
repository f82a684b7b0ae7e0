""" "Probe every block": a linear probe's accuracy against depth, one point per probe point (layer).

``ProbeChart`` draws a ``ProbeReport``: validation accuracy (bold) and training accuracy (light) in percent
against depth 1..n, the layers' names as tick labels (the prefix all names share left out, and only as
many as fit side by side; hovering a point names it in full), the best layer marked with a star, the
chosen cut layer with a ring, and the chance level (1 / number of classes) as a labelled line.

A click anywhere in a layer's column (not only on its small dot) emits ``layer_chosen(name)``; the page
decides and calls ``set_cut_layer(name)`` back. ``set_report(None)`` shows the empty-state hint and
``busy(text)`` a progress line in place of the plot.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QFontMetricsF, QTextDocumentFragment
from PySide6.QtWidgets import QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.explorer.text import percent_text
from cnn_explorer.core.transfer.results import ProbeReport, ProbeRow
from cnn_explorer.qt.style import ACCENT, FAINT, MUTED, SIDE_A, SIDE_B, TITLE_STYLE
from cnn_explorer.qt.widgets.lr_plot import set_line_text
from cnn_explorer.qt.widgets.plots import caption_label, static_plot

EMPTY_HINT = (
    "Probe every block: a linear classifier is trained on each layer's pooled features, so you see how "
    "useful the features are at every depth. Click a point to cut the network there."
)
TRAIN_PEN = (119, 119, 119, 160)  # FAINT, light: training accuracy is the lesser curve
TICK_GAP_PX = 10


def common_prefix(names: list[str]) -> str:
    """The dotted prefix every name shares ("features." of "features.3", "features.7"), or ""."""
    if len(names) < 2:
        return ""
    parts = [n.split(".") for n in names]
    shared: list[str] = []
    for column in zip(*(p[:-1] for p in parts), strict=False):  # up to the shortest
        if len(set(column)) != 1:
            break
        shared.append(column[0])
    return ".".join(shared) + "." if shared else ""


def _pct(value: float) -> str:
    return percent_text(value) if math.isfinite(value) else "—"


class ProbeChart(QWidget):
    layer_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: ProbeReport | None = None
        self.cut_layer: str | None = None
        self._labels: list[str] = []
        self._stride = 1

        self.title_label = QLabel(
            f"Linear-probe accuracy by depth  <span style='color:{SIDE_A}'>● validation</span> "
            f"<span style='color:{FAINT}'>● training</span>"
        )
        self.title_label.setWordWrap(True)
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.hint_label = QLabel(EMPTY_HINT)
        self.hint_label.setWordWrap(True)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setStyleSheet(f"color: {FAINT}; padding: 16px;")
        self.hint_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.plot_widget, plot = static_plot(200)
        self.plot = plot
        plot.setLabel("left", "accuracy", units="%")
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)
            plot.getAxis(side).setTextPen(MUTED)
            plot.getAxis(side).setPen(MUTED)
        plot.setYRange(0, 100, padding=0.03)
        plot.enableAutoRange(axis="y", enable=False)

        self.train_curve = plot.plot(
            pen=pg.mkPen(TRAIN_PEN, width=1.5, style=Qt.PenStyle.DashLine),
            symbol="o", symbolSize=5, symbolBrush=TRAIN_PEN, symbolPen=None,
        )  # fmt: skip
        self.val_curve = plot.plot(
            pen=pg.mkPen(SIDE_A, width=2.5), symbol="o", symbolSize=9, symbolBrush=SIDE_A, symbolPen="w"
        )
        self.chance_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen(FAINT, width=1, style=Qt.PenStyle.DotLine),
            label="chance",
            labelOpts={"position": 0.99, "color": FAINT, "anchors": [(1, 1), (1, 1)]},
        )
        plot.addItem(self.chance_line, ignoreBounds=True)
        self.best_marker = pg.ScatterPlotItem(
            size=20, symbol="star", brush=pg.mkBrush(255, 255, 255, 0), pen=pg.mkPen(ACCENT, width=2)
        )
        self.best_text = pg.TextItem("", color=ACCENT, anchor=(0.5, 1.3))
        self.cut_marker = pg.ScatterPlotItem(
            size=22, symbol="o", brush=pg.mkBrush(255, 255, 255, 0), pen=pg.mkPen(SIDE_B, width=3)
        )
        self.cut_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(SIDE_B, width=1, style=Qt.PenStyle.DashLine))
        for item in (self.best_marker, self.best_text, self.cut_marker, self.cut_line):
            plot.addItem(item, ignoreBounds=True)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint_label)
        self.stack.addWidget(self.plot_widget)
        self.caption_label = caption_label()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.caption_label)

        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        plot.vb.sigResized.connect(self._update_ticks)
        self.set_report(None)

    # -- content ----------------------------------------------------------------------------------
    def set_report(self, report: ProbeReport | None) -> None:
        self.report = report
        rows = report.rows if report is not None else []
        if not rows:
            self._labels = []
            self.stack.setCurrentWidget(self.hint_label)
            self.hint_label.setText(EMPTY_HINT)
            self.caption_label.setText("")
            return
        self.stack.setCurrentWidget(self.plot_widget)
        depth = np.array([r.depth for r in rows], dtype=np.float64)
        self.val_curve.setData(depth, np.array([r.val_accuracy for r in rows], dtype=np.float64) * 100)
        self.train_curve.setData(depth, np.array([r.train_accuracy for r in rows], dtype=np.float64) * 100)
        n_classes = max(1, len(report.class_names))
        chance = 100.0 / n_classes
        self.chance_line.setValue(chance)
        set_line_text(self.chance_line, f"chance: 1/{n_classes} = {chance:.3g} %")
        best = report.best
        if best is not None:
            self.best_marker.setData([best.depth], [best.val_accuracy * 100])
            self.best_text.setText(f"best {_pct(best.val_accuracy)}")
            self.best_text.setPos(best.depth, best.val_accuracy * 100)
            # Kept inside the plot: left of a point at the right end, below one near 100 %.
            depths = [r.depth for r in rows]
            ax = 1.0 if best.depth == max(depths) else 0.0 if best.depth == min(depths) else 0.5
            self.best_text.setAnchor((ax, -0.4 if best.val_accuracy > 0.9 else 1.3))
        self.best_marker.setVisible(best is not None)
        self.best_text.setVisible(best is not None)
        prefix = common_prefix([r.layer for r in rows])
        self._labels = [r.layer[len(prefix) :] for r in rows]
        self.plot.setLabel("bottom", f"depth: layer{f' (after {prefix!r})' if prefix else ''}")
        self.plot.setXRange(float(depth.min()) - 0.5, float(depth.max()) + 0.5, padding=0)
        self._update_ticks()
        self.set_cut_layer(self.cut_layer)

    def set_cut_layer(self, name: str | None) -> None:
        """Ring the layer the network will be cut at (None: no cut chosen)."""
        self.cut_layer = name
        row = self.row(name) if name else None
        if row is not None:
            y = row.val_accuracy if math.isfinite(row.val_accuracy) else row.train_accuracy
            self.cut_marker.setData([row.depth], [y * 100])
            self.cut_line.setValue(row.depth)
        self.cut_marker.setVisible(row is not None)
        self.cut_line.setVisible(row is not None)
        self._update_caption()

    def busy(self, text: str) -> None:
        """A job is computing the probes: its progress line in place of the plot."""
        self.stack.setCurrentWidget(self.hint_label)
        self.hint_label.setText(text)

    # -- reading ----------------------------------------------------------------------------------
    def row(self, name: str | None) -> ProbeRow | None:
        rows = self.report.rows if self.report is not None else []
        return next((r for r in rows if r.layer == name), None)

    def row_at_depth(self, depth: int) -> ProbeRow | None:
        rows = self.report.rows if self.report is not None else []
        return next((r for r in rows if r.depth == depth), None)

    def point_position(self, name: str) -> QPointF:
        """Where a layer's validation point is, in the plot widget's coordinates (tests click there)."""
        row = self.row(name)
        if row is None:
            raise KeyError(name)
        y = row.val_accuracy if math.isfinite(row.val_accuracy) else row.train_accuracy
        scene = self.plot.vb.mapViewToScene(QPointF(row.depth, y * 100))
        return QPointF(self.plot_widget.mapFromScene(scene))

    def tick_labels(self) -> list[str]:
        """The labels on the depth axis now (thinned to what fits)."""
        return [label for _, label in self._ticks()]

    def caption(self) -> str:
        """The line under the plot as the user reads it (plain text)."""
        return QTextDocumentFragment.fromHtml(self.caption_label.text()).toPlainText()

    # -- drawing ----------------------------------------------------------------------------------
    def _ticks(self) -> list[tuple[float, str]]:
        rows = self.report.rows if self.report is not None else []
        return [
            (r.depth, label)
            for i, (r, label) in enumerate(zip(rows, self._labels, strict=True))
            if i % self._stride == 0
        ]

    def _update_ticks(self) -> None:
        if not self._labels:
            return
        axis = self.plot.getAxis("bottom")
        metrics = QFontMetricsF(axis.style.get("tickFont") or self.font())
        widest = max(metrics.horizontalAdvance(t) for t in self._labels)
        (x0, x1), width = self.plot.vb.viewRange()[0], max(1.0, self.plot.vb.width())
        px_per_layer = width / max(1e-9, x1 - x0)
        self._stride = max(1, math.ceil((widest + TICK_GAP_PX) / max(1.0, px_per_layer)))
        axis.setTicks([self._ticks(), []])

    def _update_caption(self) -> None:
        report = self.report
        if report is None or not report.rows:
            return
        parts = []
        best = report.best
        if best is not None:
            parts.append(
                f"<span style='color:{ACCENT}'>☆ best</span>: <b>{best.layer}</b> (depth {best.depth}, "
                f"{best.channels} channels) {_pct(best.val_accuracy)} on validation"
            )
        else:
            parts.append("no validation images: only training accuracy is shown")
        cut = self.row(self.cut_layer)
        if cut is not None:
            parts.append(
                f"<span style='color:{SIDE_B}'>◯ cut at</span>: <b>{cut.layer}</b> {_pct(cut.val_accuracy)}"
            )
        parts.append(
            f"{report.n_train} training / {report.n_val} validation images at {report.image_size} px · "
            "click a point to cut there"
        )
        self.caption_label.setText(" · ".join(parts))

    # -- mouse ------------------------------------------------------------------------------------
    def _depth_at(self, scene_pos: QPointF) -> ProbeRow | None:
        if self.report is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        x = self.plot.vb.mapSceneToView(scene_pos).x()
        return self.row_at_depth(round(x))

    def _on_clicked(self, event) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        row = self._depth_at(event.scenePos())
        if row is not None:
            self.layer_chosen.emit(row.layer)

    def _on_moved(self, scene_pos: QPointF) -> None:
        row = self._depth_at(scene_pos)
        self.plot_widget.setToolTip(
            ""
            if row is None
            else (
                f"{row.layer} (depth {row.depth}, {row.channels} channels)\n"
                f"validation {_pct(row.val_accuracy)} · training {_pct(row.train_accuracy)}\n"
                "click to cut here"
            )
        )
