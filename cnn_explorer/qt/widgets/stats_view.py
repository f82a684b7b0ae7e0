"""A layer's activation statistics: histogram, min / mean / max / std, share of zeros and negatives.

``StatsView(parent=None)``; ``set_stats(stats)`` with a core ``LayerStats``; ``clear(message)``.
When one bin towers over the rest (ReLU's pile of exact zeros) the y axis is cut just above the next
highest bin, and the tall bin is labelled with its count, so the shape of the rest stays visible.
``summary_text()`` gives the numbers as shown; ``y_clipped`` says whether the axis was cut.

Drawn cheaply, as it changes at every step through the layers: no grid lines (the axes already carry
the scale), no SI prefixes on the axes, and one range update per histogram.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_explorer.core.features import LayerStats
from cnn_explorer.core.ops import format_number

_FILL = (74, 127, 193, 170)
_TOWER = 3.0  # a bin this many times higher than the next one gets its top cut off


class StatsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stats: LayerStats | None = None
        self.y_clipped = False
        self.plot = pg.PlotWidget()
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
        self.tower_label = pg.TextItem(color="#a33", anchor=(0, 0))
        self.plot.addItem(self.tower_label)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def clear(self, message: str = "") -> None:
        self.stats = None
        self.y_clipped = False
        self.curve.setData([], [])
        self.tower_label.setText("")
        self.summary.setText(f"<i style='color:#777'>{message}</i>")

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
        else:
            ceiling = 1.05 * max(top, 1.0)
            self.tower_label.setText("")
        lo, hi = float(stats.hist_edges[0]), float(stats.hist_edges[-1])
        pad = 0.02 * (hi - lo)
        self.plot.setRange(xRange=(lo - pad, hi + pad), yRange=(0, ceiling), padding=0)
        self.summary.setText(self.summary_text(html=True))

    def summary_text(self, *, html: bool = False) -> str:
        s = self.stats
        if s is None:
            return ""
        f = format_number
        items = [
            ("min", f(s.minimum)),
            ("mean", f(s.mean)),
            ("max", f(s.maximum)),
            ("std", f(s.std)),
            ("zeros", f"{100 * s.zero_fraction:.1f} %"),
            ("negative", f"{100 * s.negative_fraction:.1f} %"),
        ]
        if not html:
            return ", ".join(f"{k} {v}" for k, v in items) + f" of {s.count:,} values"
        cell = "<td style='color:#666'>{}</td><td><b>{}</b>&nbsp;&nbsp;</td>"
        cells = "".join(cell.format(k, v) for k, v in items[:3])
        cells2 = "".join(cell.format(k, v) for k, v in items[3:])
        return (
            f"<table cellspacing='0' cellpadding='1'><tr>{cells}</tr><tr>{cells2}</tr></table>"
            f"<span style='color:#666'>{s.count:,} values"
            + (" (y axis cut above the tallest bin)" if self.y_clipped else "")
            + "</span>"
        )
