"""A layer's activation statistics: histogram, min / mean / max / std, share of zeros and negatives.

``StatsView(parent=None)``; ``set_stats(stats)`` with a core ``LayerStats``; ``clear(message)``.
When one bin towers over the rest (ReLU's pile of exact zeros) the y axis is cut just above the next
highest bin, and the tall bin is labelled with its count, so the shape of the rest stays visible.
``summary_text()`` gives the numbers as shown; ``y_clipped`` says whether the axis was cut.

Drawn cheaply, as it changes at every step through the layers: no grid lines (the axes already carry
the scale), no SI prefixes on the axes, one range update per histogram, and nothing whose size depends
on the numbers: the count axis has a fixed width and the numbers sit in a grid of one-line plain-text
labels (a word-wrapped rich-text table there cost ~5 ms of the window's thread per step, laid out again
for every width the side panel's layout asked about).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontMetrics
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsSimpleTextItem,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.features import LayerStats
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.widgets.plots import KeptAxisItem, set_range_now

_FILL = (74, 127, 193, 170)
_TOWER = 3.0  # a bin this many times higher than the next one gets its top cut off
_KEYS = (("min", "mean", "max"), ("std", "zeros", "negative"))
_CLIPPED_NOTE = "tallest bin cut off"


class StatsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stats: LayerStats | None = None
        self.y_clipped = False
        # (axes that keep their pictures: a layer seen before draws them without laying them out)
        self.plot = pg.PlotWidget(axisItems={side: KeptAxisItem(side) for side in ("left", "bottom")})
        self.plot.setBackground(None)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(False, False)
        self.plot.setMinimumHeight(120)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.plot.setLabel("bottom", "activation value")
        self.plot.setLabel("left", "count")
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setStyle(tickFont=self.font(), tickLength=-4)
            # Plain numbers: an SI prefix would re-render the axis label at every new range.
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, brush=_FILL, pen=pg.mkPen((50, 90, 150), width=1)
        )
        self.plot.addItem(self.curve)
        # A text that ignores the view's scaling, placed in data coordinates. (pyqtgraph's TextItem
        # re-aligns itself inside its own paint whenever the range changed, so the plot painted twice
        # per step.) Hidden when no bin is cut.
        self.tower_label = QGraphicsSimpleTextItem()
        self.tower_label.setBrush(QColor("#a33"))
        self.tower_label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.tower_label.setVisible(False)
        self.plot.addItem(self.tower_label)
        # Wide enough for seven digits (a count axis without SI prefixes), so that a layer with larger
        # counts does not widen the axis, move the plot and paint it twice.
        left = self.plot.getAxis("left")
        left.setWidth(QFontMetrics(self.font()).horizontalAdvance("0000000") + 8)
        self.summary = QWidget()
        grid = QGridLayout(self.summary)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(0)
        self._values: dict[str, QLabel] = {}
        for r, keys in enumerate(_KEYS):
            for c, key in enumerate(keys):
                name = QLabel(key)
                name.setStyleSheet("color: #666;")
                value = QLabel()
                value.setStyleSheet("font-weight: 600;")
                value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                grid.addWidget(name, r, 2 * c)
                grid.addWidget(value, r, 2 * c + 1)
                grid.setColumnStretch(2 * c + 1, 1)
                self._values[key] = value
        self.count_label = QLabel()
        self.count_label.setStyleSheet("color: #666;")
        # (Ignored: a long line is cut at the panel's edge rather than widening the panel.)
        self.count_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        grid.addWidget(self.count_label, len(_KEYS), 0, 1, 2 * len(_KEYS[0]))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def clear(self, message: str = "") -> None:
        self.stats = None
        self.y_clipped = False
        self.curve.setData([], [])
        self.tower_label.setVisible(False)
        for value in self._values.values():
            value.setText("")
        self.count_label.setText(message)
        self.count_label.setToolTip(message)

    def set_stats(self, stats: LayerStats) -> None:
        self.stats = stats
        counts = stats.hist_counts.astype(np.float64)
        self.curve.setData(stats.hist_edges, counts)
        ordered = np.sort(counts)
        top, second = (ordered[-1], ordered[-2]) if counts.size > 1 else (ordered[-1], 0.0)
        self.y_clipped = bool(second > 0 and top > _TOWER * second)
        if self.y_clipped:
            ceiling = 1.25 * second
            tall = int(np.argmax(counts))
            x = float(stats.hist_edges[tall + 1])
            self.tower_label.setText(f"↑ {int(top):,}")
            self.tower_label.setPos(x, ceiling)
            self.tower_label.setVisible(True)
        else:
            ceiling = 1.05 * max(top, 1.0)
            self.tower_label.setVisible(False)
        lo, hi = float(stats.hist_edges[0]), float(stats.hist_edges[-1])
        pad = 0.02 * (hi - lo)
        set_range_now(self.plot.getViewBox(), xRange=(lo - pad, hi + pad), yRange=(0, ceiling), padding=0)
        for key, text in self._items():
            self._values[key].setText(text)
        count = f"{stats.count:,} values" + (f"; {_CLIPPED_NOTE}" if self.y_clipped else "")
        self.count_label.setText(count)
        self.count_label.setToolTip(
            count + (" (the y axis ends just above the next highest bin)" if self.y_clipped else "")
        )

    def _items(self) -> list[tuple[str, str]]:
        s = self.stats
        if s is None:
            return []
        f = format_number
        return [
            ("min", f(s.minimum)),
            ("mean", f(s.mean)),
            ("max", f(s.maximum)),
            ("std", f(s.std)),
            ("zeros", f"{100 * s.zero_fraction:.1f} %"),
            ("negative", f"{100 * s.negative_fraction:.1f} %"),
        ]

    def summary_text(self) -> str:
        """The numbers as shown, on one line."""
        if self.stats is None:
            return ""
        return ", ".join(f"{k} {v}" for k, v in self._items()) + f" of {self.stats.count:,} values"
