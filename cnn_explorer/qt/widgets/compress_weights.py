"""The compression lab's weight charts, drawn from a :class:`CompressReport`'s plain values.

- :class:`SparsityBars`: the selected variant's share of zero weights per layer, one horizontal bar per
  layer with its name, scrolling when there are many layers (each keeps a readable row); hovering a bar
  names the layer in full.
- :class:`WeightHistogramView`: one layer's weights before and after, two histograms on one x axis, the
  exact zeros as their own bar ("pruned zeros: N"), the int8 levels counted in the caption.

Each shows a one-line hint while it has nothing to draw (the charts' shared frame is compress_plots'
``Chart``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.compress.spec import VariantReport, WeightHistogram
from cnn_explorer.qt.style import MUTED, SIDE_B
from cnn_explorer.qt.widgets.compress_plots import (
    AFTER_COLOUR,
    BEFORE_COLOUR,
    CUT_FACTOR,
    NAME_AXIS_PX,
    PRUNED_SHARE,
    ROW_PX,
    TOP_AXIS_FROM,
    ZERO_COLOUR,
    Chart,
    style_axes,
)
from cnn_explorer.qt.widgets.plots import static_plot
from cnn_explorer.qt.widgets.probe_chart import common_prefix


class SparsityBars(Chart):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.plot_widget, self.plot = static_plot(120)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.plot_widget)
        super().__init__(
            "Per-layer sparsity",
            "Select a variant to see the share of each layer's weights that are zero.",
            self.scroll,
            parent,
        )
        self.variant: VariantReport | None = None
        self._layers: list[tuple[str, float]] = []
        self._ticks: list[str] = []
        style_axes(self.plot)
        self.plot.invertY(True)  # the first layer on top
        self.plot.setLabel("bottom", "weights that are zero (%)")
        self.plot.getAxis("left").setWidth(NAME_AXIS_PX)
        self.plot.setXRange(0, 100, padding=0.02)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brush=SIDE_B, pen=None)
        self.plot.addItem(self.bars)
        self._value_labels: list[pg.TextItem] = []
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        self.set_variant(None)

    def set_variant(self, variant: VariantReport | None) -> None:
        self.variant = variant
        for label in self._value_labels:
            self.plot.removeItem(label)
        self._value_labels = []
        self._layers = list(variant.layer_sparsity) if variant is not None else []
        if variant is None or not self._layers:
            self.bars.setOpts(x0=[], y=[], width=[], height=0.7)
            self.show_hint(
                None if variant is None else f"{variant.name}: no per-layer sparsity was recorded."
            )
            return
        self._show_chart()
        self.title_label.setText(f"Per-layer sparsity — {variant.name}")
        n = len(self._layers)
        share = np.array([100 * s for _, s in self._layers])
        self.bars.setOpts(x0=np.zeros(n), y=np.arange(n), width=share, height=0.7)
        self.plot_widget.setMinimumHeight(n * ROW_PX + 50)
        self.plot.setYRange(-0.6, n - 0.4, padding=0)
        metrics = QFontMetrics(self.plot.getAxis("left").style.get("tickFont") or self.font())
        prefix = common_prefix([name for name, _ in self._layers])
        # The shared prefix is said once, below; the middle of a long name goes (its index and its kind stay).
        self._ticks = [
            metrics.elidedText(name[len(prefix) :], Qt.TextElideMode.ElideMiddle, NAME_AXIS_PX - 14)
            for name, _ in self._layers
        ]
        where = f", layers in {prefix[:-1]}" if prefix else ""
        self.plot.setLabel("bottom", f"weights that are zero (%){where}")
        self.plot.getAxis("left").setTicks([list(enumerate(self._ticks)), []])
        self.plot.showAxis("top", n > TOP_AXIS_FROM)  # many rows scroll: the scale stays in sight above them
        self.plot.getAxis("top").setStyle(showValues=True)
        for i, s in enumerate(share):
            inside = s > 80
            label = pg.TextItem(
                f"{s:.0f} %", color="w" if inside else MUTED, anchor=(1.05, 0.5) if inside else (-0.1, 0.5)
            )
            label.setPos(float(s), i)
            self.plot.addItem(label, ignoreBounds=True)
            self._value_labels.append(label)
        pruned = sum(1 for _, s in self._layers if s > 0)
        zero_share = 1 - variant.nonzero_params / variant.params if variant.params else 0.0
        parts = [
            f"{pruned} of {n} layers pruned" if pruned else "no weights pruned",
            f"{100 * zero_share:.1f} % of all parameters are zero "
            f"({variant.nonzero_params:,} of {variant.params:,} left)",
            "hover a bar for the layer's full name",
        ]
        if n * ROW_PX + 50 > 400:
            parts.append("scroll for more layers")
        self.caption_label.setText(" · ".join(parts))

    def tick_labels(self) -> list[str]:
        """The layer names on the axis (their shared prefix left out, long ones elided in the middle)."""
        return list(self._ticks) if self._layers else []

    def hover_text(self, row: int) -> str:
        name, s = self._layers[row]
        return f"{name}: {100 * s:.1f} % of its weights are zero"

    def bar_position(self, row: int) -> QPointF:
        """The middle of a layer's row, in the plot widget's coordinates (tests hover there)."""
        return QPointF(self.plot_widget.mapFromScene(self.plot.vb.mapViewToScene(QPointF(50, row))))

    def _on_moved(self, scene_pos: QPointF) -> None:
        tip = ""
        if self._layers and self.plot.vb.sceneBoundingRect().contains(scene_pos):
            row = round(self.plot.vb.mapSceneToView(scene_pos).y())
            if 0 <= row < len(self._layers):
                tip = self.hover_text(row)
        self.plot_widget.setToolTip(tip)


# -- weight histograms -------------------------------------------------------------------------------------
class WeightHistogramView(Chart):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.graphics = QWidget()
        self.before_widget, self.before_plot = static_plot(90)
        self.after_widget, self.after_plot = static_plot(90)
        column = QVBoxLayout(self.graphics)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.before_widget)
        column.addWidget(self.after_widget)
        super().__init__(
            "Weights before and after",
            "Select a compressed variant to compare its weights with the original's.",
            self.graphics,
            parent,
        )
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The layer whose weights are shown")
        self.layer_combo.currentIndexChanged.connect(lambda _i: self._draw())
        self.header.addWidget(self.layer_combo)
        self._histograms: list[WeightHistogram] = []
        self._variant: str | None = None
        self.shown: WeightHistogram | None = None
        self.after_plot.setXLink(self.before_plot)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.zero_bars: dict[str, pg.BarGraphItem] = {}
        self.zero_labels: dict[str, str] = {"before": "", "after": ""}  # in the plots' titles, in red
        for key, plot, colour in (
            ("before", self.before_plot, BEFORE_COLOUR),
            ("after", self.after_plot, AFTER_COLOUR),
        ):
            style_axes(plot)
            plot.setLabel("left", "weights")
            plot.getAxis("left").setWidth(56)
            self.bars[key] = pg.BarGraphItem(x0=[], x1=[], y0=0, height=[], brush=colour, pen=None)
            self.zero_bars[key] = pg.BarGraphItem(x=[], y0=0, height=[], width=1, brush=ZERO_COLOUR, pen=None)
            plot.addItem(self.bars[key])
            plot.addItem(self.zero_bars[key])
        self.after_plot.setLabel("bottom", "weight value")
        self.set_histograms([])

    def set_histograms(self, histograms: Sequence[WeightHistogram]) -> None:
        self._histograms = list(histograms)
        self.show_variant(self._variant)

    def show_variant(self, name: str | None) -> None:
        """Show the histograms of one variant (its layers in the combo)."""
        self._variant = name
        layers = [h.layer for h in self._histograms if h.variant == name]
        keep = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(layers)
        if keep in layers:
            self.layer_combo.setCurrentText(keep)
        self.layer_combo.blockSignals(False)
        self.layer_combo.setVisible(len(layers) > 1)
        self._draw()

    def _draw(self) -> None:
        name, layer = self._variant, self.layer_combo.currentText()
        h = next((h for h in self._histograms if h.variant == name and h.layer == layer), None)
        self.shown = h
        if h is None:
            self.title_label.setText("Weights before and after")
            if not self._histograms:
                self.show_hint(None)
            elif name is not None and not any(x.variant == name for x in self._histograms):
                self.show_hint(f"No weight histogram for {name}: select a compressed variant to compare.")
            else:
                self.show_hint(None)
            return
        self._show_chart()
        self.title_label.setText(f"Weights of {h.layer}")
        edges = np.asarray(h.edges, dtype=np.float64)
        width = float(np.median(np.diff(edges))) if len(edges) > 1 else 1.0
        total = sum(h.before) + h.zeros_before
        pruned = total > 0 and (h.zeros_after - h.zeros_before) / total >= PRUNED_SHARE
        any_cut = False
        for key, counts, zeros, word in (
            ("before", h.before, h.zeros_before, "zeros"),
            ("after", h.after, h.zeros_after, "pruned zeros" if pruned else "zeros"),
        ):
            plot = self.before_plot if key == "before" else self.after_plot
            heights = np.asarray(counts, dtype=np.float64)
            self.bars[key].setOpts(x0=edges[:-1], x1=edges[1:], height=heights)
            tallest = float(heights.max()) if len(heights) else 1.0
            cut = zeros > CUT_FACTOR * tallest
            any_cut = any_cut or cut
            top = 1.15 * (tallest if cut else max(tallest, zeros)) or 1.0
            plot.setYRange(0, top, padding=0)
            label = f"{word}: {zeros:,}{' ↑' if cut else ''}" if zeros else ""
            self.zero_labels[key] = label
            self.zero_bars[key].setOpts(x=[0.0] if zeros else [], height=[min(zeros, top)] if zeros else [])
            self.zero_bars[key].setOpts(width=1.5 * width)
            title = "original (fp32)" if key == "before" else f"after: {h.variant}"
            # The count goes in the title: beside the bar it ran into the histogram's humps.
            zero_text = f"  <span style='color:{ZERO_COLOUR}'>■ {label}</span>" if label else ""
            plot.setTitle(f"<span style='color:{MUTED}'>{title}</span>{zero_text}", size="9pt")
        self.before_plot.setXRange(float(edges[0]), float(edges[-1]), padding=0.02)
        self.caption_label.setText(self._caption_text(h, total, any_cut))

    @staticmethod
    def _caption_text(h: WeightHistogram, total: int, cut: bool) -> str:
        parts = [f"<span style='color:{ZERO_COLOUR}'>■</span> exact zeros, counted apart"]
        new_zeros = h.zeros_after - h.zeros_before
        if new_zeros > 0 and total:
            share = 100 * new_zeros / total
            parts.append(
                f"{share:.1f} % of them are now exactly zero"
                if share < 10
                else f"{share:.0f} % of them are now exactly zero"
            )
        if h.levels is not None:
            parts.append(f"int8: the weights take only <b>{h.levels}</b> distinct levels (8 bits allow 256)")
        parts.append(f"{total:,} weights")
        if cut:
            parts.append("↑ the zero bar runs off the top")
        return " · ".join(parts)

    def zero_label(self, which: str = "after") -> str:
        """The zero bar's label on one histogram ("" when it has no zeros)."""
        return self.zero_labels[which]


__all__ = ["SparsityBars", "WeightHistogramView"]
