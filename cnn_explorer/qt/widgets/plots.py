"""What the app's charts share: a plot to read and click, not to pan or zoom, the caption under it, and
an axis that keeps the pictures of the ranges it has drawn (``KeptAxisItem``)."""

from __future__ import annotations

from collections import OrderedDict

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QStyleOptionGraphicsItem, QWidget

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


class KeptAxisItem(pg.AxisItem):
    """An axis that keeps the pictures of the last ``keep`` ranges it drew.

    pyqtgraph lays an axis's ticks and labels out again whenever its range changes, about 1 ms an axis
    here. The explorer's histogram and colour bar change range with every layer, so stepping back to a
    layer seen before (whose view is kept) spent some 3 ms of its paint on three axes
    (``benchmarks/bench_explorer_gui.py``); with this axis it plays the picture it drew for that range.
    A picture is reused only for the same range and size (the room its labels take shows in its size);
    any change of style, ticks, scale or log mode forgets them all.
    """

    def __init__(self, orientation: str, *args: object, keep: int = 48, **kwargs: object) -> None:
        self._kept: OrderedDict[tuple, object] = OrderedDict()
        self._keep = keep
        super().__init__(orientation, *args, **kwargs)

    def kept_count(self) -> int:
        return len(self._kept)

    def _picture_key(self) -> tuple:
        size = self.size()
        return (
            tuple(self.range),
            round(size.width()),
            round(size.height()),
            self.autoSIPrefixScale,
        )

    def paint(self, p: QPainter, opt: QStyleOptionGraphicsItem, widget: QWidget | None) -> None:
        new_key = None
        if self.picture is None:
            key = self._picture_key()
            self.picture = self._kept.get(key)
            if self.picture is None:
                new_key = key
            else:
                self._kept.move_to_end(key)
        super().paint(p, opt, widget)  # (lays the axis out into self.picture if none was kept, plays it)
        if new_key is not None:
            self._kept[new_key] = self.picture
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)


def _forgetting(name: str):
    base = getattr(pg.AxisItem, name)

    def method(self: KeptAxisItem, *args: object, **kwargs: object) -> object:
        self._kept.clear()
        return base(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"``AxisItem.{name}``, forgetting the kept pictures (they show the old settings)."
    return method


for _name in (
    "setStyle", "setGrid", "setLogMode", "setTickFont", "setPen", "setTextPen", "setTickPen", "setScale",
    "enableAutoSIPrefix", "setSIPrefixEnableRanges", "setTickDensity", "setTicks", "setTickSpacing",
):  # fmt: skip
    setattr(KeptAxisItem, _name, _forgetting(_name))
