"""The statistics panel: the numbers as numpy gives them, the cut y axis, and one paint per new layer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject

from cnn_explorer.core.features import layer_stats
from cnn_explorer.qt.widgets.map_view import MapView
from cnn_explorer.qt.widgets.stats_view import StatsView


class PaintCounter(QObject):
    def __init__(self, widget) -> None:
        super().__init__()
        self.paints = 0
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def shown(qtbot, widget, width: int = 360, height: int = 300):
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(30)
    return widget


@pytest.fixture
def relu_like():
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(0.0, 1.0, 20_000), 0.0).astype(np.float32)  # half exact zeros


def test_the_numbers_are_numpy_s(qtbot, relu_like):
    view = shown(qtbot, StatsView())
    view.set_stats(layer_stats(relu_like))
    text = view.summary_text()
    assert f"of {relu_like.size:,} values" in text
    assert f"max {view._values['max'].text()}" in text
    assert float(view._values["max"].text()) == pytest.approx(float(relu_like.max()), rel=1e-3)
    assert view._values["zeros"].text() == f"{100 * np.mean(relu_like == 0):.1f} %"
    assert view._values["negative"].text() == "0.0 %"


def test_a_towering_bin_cuts_the_axis_and_says_its_count(qtbot, relu_like):
    view = shown(qtbot, StatsView())
    stats = layer_stats(relu_like)
    view.set_stats(stats)
    top = int(stats.hist_counts.max())
    assert view.y_clipped and view.tower_label.isVisible() and view.tower_label.text() == f"↑ {top:,}"
    assert "tallest bin cut off" in view.count_label.text()
    _, (y_low, y_high) = view.plot.getViewBox().viewRange()
    assert y_low == 0 and y_high < top  # the axis ends below the tall bin
    view.set_stats(layer_stats(np.random.default_rng(1).normal(size=5000)))
    assert not view.y_clipped and not view.tower_label.isVisible()
    assert view.count_label.text() == "5,000 values"


def test_another_layer_paints_the_plot_once_and_keeps_its_place(qtbot, relu_like):
    """New ranges are applied before the paint (pyqtgraph would move the items inside it and paint again),
    and neither longer numbers nor larger counts move the plot."""
    view = shown(qtbot, StatsView())
    view.set_stats(layer_stats(np.linspace(-1, 1, 100)))
    qtbot.wait(30)
    box = view.plot.getViewBox().sceneBoundingRect()
    plot_geometry = view.plot.geometry()
    counter = PaintCounter(view.plot.viewport())
    for values in (relu_like * 1000, np.linspace(-0.001, 0.002, 3_000_000), relu_like):
        before = counter.paints
        view.set_stats(layer_stats(values))
        qtbot.wait(30)
        assert counter.paints - before == 1
        assert view.plot.getViewBox().sceneBoundingRect() == box and view.plot.geometry() == plot_geometry


def test_a_map_of_another_extent_paints_once(qtbot):
    view = shown(qtbot, MapView("Channel", max_numbers_side=0))
    view.set_map(np.zeros((28, 28)))
    qtbot.wait(30)
    counter = PaintCounter(view.graphics.viewport())
    for side in (7, 14, 56):
        before = counter.paints
        view.set_map(np.arange(side * side, dtype=np.float32).reshape(side, side))
        qtbot.wait(30)
        assert counter.paints - before == 1
