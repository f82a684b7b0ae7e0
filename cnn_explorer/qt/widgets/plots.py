"""What the app's charts share: a plot to read and click, not to pan or zoom, and the caption under it."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from cnn_explorer.qt.style import SMALL_MUTED_STYLE


def static_plot(min_height: int = 200) -> tuple[pg.PlotWidget, pg.PlotItem]:
    """A white plot without pan, zoom, context menu or the auto-range button: its clicks are the chart's."""
    widget = pg.PlotWidget()
    widget.setBackground("w")
    widget.setMinimumHeight(min_height)
    plot = widget.getPlotItem()
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    return widget, plot


def set_range_now(view: pg.ViewBox, *args: object, **kwargs: object) -> None:
    """``view.setRange(...)`` with the view's transform applied at once.

    pyqtgraph applies a new range to the items' transform only when the view is next painted (its
    ``prepareForPaint``); moving the items from inside that paint marks them dirty again, so a view
    whose range changed painted twice. Applying it here leaves nothing for the paint to move.
    """
    view.setRange(*args, **kwargs)
    view.updateMatrix()


def caption_label(text: str = "") -> QLabel:
    """The small, muted, word-wrapped rich text under a chart."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(SMALL_MUTED_STYLE)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label
