"""Compare mode's own views: which layers fine-tuning changed (‖W_B − W_A‖ / ‖W_A‖ over depth), the
difference of the selected channel (B − A), and side B's top-5 with its own class names."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.explorer.compare import WeightChange
from cnn_explorer.qt import style
from cnn_explorer.qt.pages.network.side_panel import predictions_box
from cnn_explorer.qt.widgets.feature_grid import colormap
from cnn_explorer.qt.widgets.map_view import MapView

NAN_HEIGHT = 0.0  # layers that cannot be compared (a new head) are drawn as hollow markers instead


class WeightChangeChart(QWidget):
    """Bars over depth, one per layer with weights; the current layer's bar is outlined.

    ``layer_clicked(name)`` when a bar is clicked."""

    layer_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setMinimumHeight(170)
        self.plot_widget.setBackground("w")
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setLabel("left", "relative change")
        self.plot.setLabel("bottom", "layer (input → output)")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=style.SIDE_B)
        self.missing = pg.ScatterPlotItem(symbol="o", size=7, pen=pg.mkPen(style.MUTED), brush=None)
        # "You are here": a line at the cursor's layer (a bar outline would vanish where the change is 0).
        self.current = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(style.SIDE_A, width=2))
        self.current.setVisible(False)
        for item in (self.bars, self.missing, self.current):
            self.plot.addItem(item)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet(style.SMALL_MUTED_STYLE)
        # A word-wrapped label asks for one line in a scroll area; room for four keeps it off the plot.
        self.caption.setMinimumHeight(4 * self.caption.fontMetrics().lineSpacing() + 4)
        formula = QLabel("Each bar: ‖W_B − W_A‖ / ‖W_A‖ of one layer's weights; 0 = frozen.")
        formula.setWordWrap(True)
        formula.setStyleSheet(style.SMALL_MUTED_STYLE)
        formula.setMinimumHeight(2 * formula.fontMetrics().lineSpacing() + 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(formula)
        layout.addWidget(self.plot_widget)
        layout.addWidget(self.caption)
        self.changes: list[WeightChange] = []
        self.heights = np.zeros(0)
        self.plot.scene().sigMouseClicked.connect(self._on_click)

    def set_changes(self, changes: Sequence[WeightChange]) -> None:
        self.plot_widget.setVisible(True)
        self.changes = list(changes)
        values = np.array([c.relative_change for c in self.changes], dtype=np.float64)
        finite = np.isfinite(values)
        self.heights = np.where(finite, values, NAN_HEIGHT)
        x = np.arange(len(values))
        self.bars.setOpts(x=x, height=self.heights)
        self.missing.setData(x=x[~finite], y=np.zeros(int((~finite).sum())))
        frozen = int((values == 0).sum())
        changed = int((values > 0).sum())
        top = max(
            (c for c in self.changes if math.isfinite(c.relative_change)),
            default=None,
            key=lambda c: c.relative_change,
        )
        parts = [f"{changed} of {len(values)} layers changed, {frozen} exactly unchanged (frozen)"]
        if top is not None and top.relative_change > 0:
            parts.append(f"most: {top.layer} ({top.relative_change:.3g})")
        notes = [f"{c.layer}: {c.note}" for c in self.changes if c.note]
        if notes:
            parts.append("; ".join(notes[:2]))
        self.caption.setText(". ".join(parts) + ".")
        self.plot.setXRange(-1, max(1, len(values)), padding=0)
        top = float(np.nanmax(self.heights)) if self.heights.size else 0.0
        if top > 0:
            self.plot.setYRange(0, top * 1.05, padding=0)
        else:  # nothing changed: a flat line at 0 on a plain 0..1 scale, not an autoscaled 1e-12
            self.plot.setYRange(0, 1, padding=0)

    def clear(self, message: str = "") -> None:
        self.plot_widget.setVisible(not message)  # a message in place of an empty chart
        self.changes = []
        self.heights = np.zeros(0)
        self.bars.setOpts(x=[], height=[])
        self.missing.setData(x=[], y=[])
        self.current.setVisible(False)
        self.caption.setText(message)

    def mark(self, layer: str | None) -> None:
        """Outline the bar of ``layer`` (the module the cursor is at), if it has weights."""
        names = [c.layer for c in self.changes]
        module = layer.split("#", 1)[0] if layer else None
        if module in names:
            self.current.setValue(names.index(module))
            self.current.setVisible(True)
        else:
            self.current.setVisible(False)

    def change_of(self, layer: str) -> float | None:
        for c in self.changes:
            if c.layer == layer:
                return c.relative_change
        return None

    def _on_click(self, event: object) -> None:
        pos = self.plot.vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        i = round(pos.x())
        if 0 <= i < len(self.changes):
            self.layer_clicked.emit(self.changes[i].layer)


class ComparePanel(QWidget):
    """Goes into the side panel in compare mode."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        change_box = QGroupBox("Which layers did B change?")
        self.chart = WeightChangeChart()
        QVBoxLayout(change_box).addWidget(self.chart)
        self.difference = MapView("Difference B − A", max_numbers_side=10)
        self.difference.graphics.setMinimumSize(150, 150)
        self.difference.caption_label.setMinimumHeight(
            3 * self.difference.caption_label.fontMetrics().lineSpacing() + 2
        )
        self.b_box, self.b_predictions, self.b_untrained = predictions_box("B: top-5 predictions")
        layout.addWidget(change_box)
        layout.addWidget(self.difference)
        layout.addWidget(self.b_box)

    def show_difference(
        self, a: np.ndarray | None, b: np.ndarray | None, title: str, *, paired_by_name: bool = True
    ) -> None:
        """B − A of the selected channel, on a diverging scale centred at 0."""
        if not paired_by_name:
            self.difference.clear_map(
                "Different architectures: their channels are different features, so B − A would mean nothing."
            )
            self.difference.set_title("Difference B − A")
            self.difference.set_caption("")
            return
        if a is None or b is None:
            self.difference.clear_map("Pick a channel on a spatial layer to see B − A.")
            self.difference.set_title("Difference B − A")
            self.difference.set_caption("")
            return
        if a.shape != b.shape:
            self.difference.clear_map(f"The maps differ in size ({a.shape} vs {b.shape}): no difference.")
            self.difference.set_caption("")
            return
        diff = b.astype(np.float32) - a.astype(np.float32)
        self.difference.set_map(diff, colormap=colormap("coolwarm"), symmetric=True)
        self.difference.set_title(title)
        peak = float(np.abs(diff).max()) if diff.size else 0.0
        scale = float(np.abs(a).max()) if a.size else 0.0
        self.difference.set_caption(
            f"largest |B − A| = {peak:.3g} (A's own peak: {scale:.3g}). Red: B responds more; blue: less."
            if peak > 0
            else "B computes exactly what A computes here."
        )
