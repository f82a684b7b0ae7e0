"""KeptAxisItem: an axis drawn at a range it has drawn before plays the picture kept for it, the same
picture pixel for pixel; a change of style, a new size or the bound on kept pictures lays it out again."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from cnn_explorer.qt.widgets.map_view import MapView
from cnn_explorer.qt.widgets.plots import KeptAxisItem, set_range_now
from cnn_explorer.qt.widgets.stats_view import StatsView


@pytest.fixture
def layouts(monkeypatch) -> list[str]:
    """The orientation of every axis laid out (pyqtgraph's generateDrawSpecs), in order."""
    calls: list[str] = []
    original = pg.AxisItem.generateDrawSpecs

    def counted(self, painter):
        calls.append(self.orientation)
        return original(self, painter)

    monkeypatch.setattr(pg.AxisItem, "generateDrawSpecs", counted)
    return calls


def plot_with_kept_axis(qtbot, keep: int = 48) -> tuple[pg.PlotWidget, KeptAxisItem]:
    axis = KeptAxisItem("bottom", keep=keep)
    widget = pg.PlotWidget(axisItems={"bottom": axis})
    widget.getPlotItem().hideAxis("left")
    qtbot.addWidget(widget)
    widget.resize(320, 120)
    widget.show()
    qtbot.waitExposed(widget)
    return widget, axis


def draw_at(widget: pg.PlotWidget, x_range: tuple[float, float]) -> np.ndarray:
    """Set the x range and paint the widget (grab paints at once); its pixels."""
    set_range_now(widget.getPlotItem().getViewBox(), xRange=x_range, padding=0)
    image = widget.grab().toImage()
    return np.array(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine())


def test_a_range_drawn_before_is_not_laid_out_again_and_looks_the_same(qtbot, layouts):
    widget, axis = plot_with_kept_axis(qtbot)
    first = draw_at(widget, (0.0, 10.0))
    draw_at(widget, (-3.0, 250.0))
    assert layouts.count("bottom") >= 2
    before = len(layouts)
    again = draw_at(widget, (0.0, 10.0))
    assert len(layouts) == before  # played from the kept picture
    assert np.array_equal(first, again)
    assert axis.kept_count() == 2


def test_a_change_of_style_or_size_lays_the_axis_out_again(qtbot, layouts):
    widget, axis = plot_with_kept_axis(qtbot)
    draw_at(widget, (0.0, 10.0))
    axis.setStyle(tickLength=8)  # the kept pictures show the old ticks: forgotten
    assert axis.kept_count() == 0
    before = len(layouts)
    draw_at(widget, (0.0, 10.0))
    assert len(layouts) == before + 1
    before = len(layouts)
    widget.resize(400, 120)  # another length: another picture
    qtbot.wait(20)
    draw_at(widget, (0.0, 10.0))
    assert len(layouts) == before + 1 and axis.kept_count() == 2


def test_only_the_last_ranges_are_kept(qtbot, layouts):
    widget, axis = plot_with_kept_axis(qtbot, keep=2)
    for x_range in ((0.0, 1.0), (0.0, 2.0), (0.0, 3.0)):
        draw_at(widget, x_range)
    assert axis.kept_count() == 2
    before = len(layouts)
    draw_at(widget, (0.0, 3.0))  # kept
    assert len(layouts) == before
    draw_at(widget, (0.0, 1.0))  # the oldest went
    assert len(layouts) == before + 1


def test_the_explorer_s_histogram_and_colour_bar_keep_their_axes(qtbot):
    stats = StatsView()
    assert all(isinstance(stats.plot.getAxis(side), KeptAxisItem) for side in ("left", "bottom"))
    view = MapView("Channel", max_numbers_side=0)
    qtbot.addWidget(view)
    view.set_map(np.linspace(-2.0, 5.0, 49, dtype=np.float32).reshape(7, 7))
    axis = view.bar.axis
    assert isinstance(axis, KeptAxisItem) and view.bar.getAxis("right") is axis
    assert axis.range == pytest.approx(list(view.levels))  # the bar's values, as pyqtgraph's own axis
    plain = pg.ColorBarItem(values=(0, 1), interactive=False, colorMapMenu=False).axis
    assert axis.style["showValues"] == plain.style["showValues"] and axis.fixedWidth == plain.fixedWidth
