"""The fine-tune page's transfer-learning widgets, driven like a user: click a probe point to cut there,
click the LR finder's curve to choose a rate, see the dataset placed in the guide's grid, overrule the
similarity estimate, watch the Grad-CAM strip grow an epoch at a time, compare a mistake's two maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from cnn_explorer.core.transfer.guide import GUIDE_GRID, recommend_strategy
from cnn_explorer.core.transfer.results import (
    GuideCase,
    LRFindResult,
    ProbeReport,
    ProbeRow,
    SimilarityEstimate,
    WatchFrame,
)
from cnn_explorer.qt.widgets.cam_pair import CamPairView
from cnn_explorer.qt.widgets.guide_grid import GuideGrid
from cnn_explorer.qt.widgets.lr_plot import LRPlot, lr_text
from cnn_explorer.qt.widgets.probe_chart import ProbeChart
from cnn_explorer.qt.widgets.training_plots import smooth
from cnn_explorer.qt.widgets.watch_strip import RIGHT_COLOUR, WRONG_COLOUR, WatchStrip


def shown(qtbot, widget, size=(720, 400)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def click(qtbot, plot_widget, pos: QPointF) -> None:
    qtbot.mouseClick(plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos.toPoint())


def probe_report(n: int = 12, classes: int = 4) -> ProbeReport:
    rows = [
        ProbeRow(f"features.{i}", i, 16 * i, min(1.0, 0.3 + 0.06 * i), 0.3 + 0.5 * math.sin(i / 4))
        for i in range(1, n + 1)
    ]
    return ProbeReport(
        "mobilenet_v3_small", rows, [f"c{k}" for k in range(classes)], 200, 50, 224, 2.0, 0.5, 1024
    )


def lr_result() -> LRFindResult:
    lrs = np.logspace(-6, 0, 80)
    losses = (
        2.3 - 1.2 / (1 + np.exp(-2 * (np.log10(lrs) + 3.5))) + np.where(lrs > 0.1, 5 * np.log10(lrs / 0.1), 0)
    )
    return LRFindResult(lrs, losses, smooth(losses), 3e-4, True, "Steepest descent at 3.0e-4.")


def heat(cy: int, cx: int) -> np.ndarray:
    yy, xx = np.mgrid[0:7, 0:7]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4).astype(np.float32)


PICTURE = (np.arange(120 * 160 * 3) % 251).astype(np.uint8).reshape(120, 160, 3)


# -- ProbeChart ---------------------------------------------------------------------------------------
def test_probe_chart_shows_a_hint_until_a_report_and_a_line_while_busy(qtbot):
    chart = shown(qtbot, ProbeChart())
    assert chart.stack.currentWidget() is chart.hint_label
    assert chart.hint_label.text().startswith("Probe every block:")
    chart.busy("Probing layer 3 of 12…")
    assert chart.hint_label.text() == "Probing layer 3 of 12…"
    chart.set_report(probe_report())
    assert chart.stack.currentWidget() is chart.plot_widget


def test_clicking_a_probe_point_chooses_that_layer(qtbot):
    chart = shown(qtbot, ProbeChart())
    chart.set_report(probe_report())
    for name in ("features.3", "features.9"):
        with qtbot.waitSignal(chart.layer_chosen) as blocker:
            click(qtbot, chart.plot_widget, chart.point_position(name))
        assert blocker.args == [name]
    # A click a little beside the dot, in the layer's column, still picks it (students miss 9-px dots).
    near = chart.point_position("features.5") + QPointF(6, 30)
    with qtbot.waitSignal(chart.layer_chosen) as blocker:
        click(qtbot, chart.plot_widget, near)
    assert blocker.args == ["features.5"]


def test_probe_chart_marks_best_cut_and_chance(qtbot):
    chart = shown(qtbot, ProbeChart())
    report = probe_report(classes=4)
    chart.set_report(report)
    best = report.best
    assert chart.best_marker.isVisible()
    assert chart.best_marker.data["x"][0] == best.depth
    assert f"best: {best.layer}" in chart.caption()
    assert chart.chance_line.value() == pytest.approx(25.0)
    assert chart.chance_line.label.toPlainText() == "chance: 1/4 = 25 %"
    assert not chart.cut_marker.isVisible()
    chart.set_cut_layer("features.2")
    assert chart.cut_marker.isVisible()
    assert chart.cut_line.value() == 2
    assert "cut at: features.2" in chart.caption()
    chart.set_cut_layer(None)
    assert not chart.cut_marker.isVisible()


def test_probe_tick_labels_drop_the_shared_prefix_and_thin_out_when_narrow(qtbot):
    chart = shown(qtbot, ProbeChart(), size=(900, 400))
    chart.set_report(probe_report(n=12))
    assert chart.tick_labels() == [str(i) for i in range(1, 13)]
    assert "features." in chart.plot.getAxis("bottom").labelText
    rows = [ProbeRow(f"layer{i // 2 + 1}.{i % 2}", i + 1, 64, 0.5, 0.5) for i in range(8)]
    many = ProbeReport("resnet", rows, ["a", "b"], 10, 5, 224, 1.0, 1.0, 1)
    chart.set_report(many)
    assert chart.tick_labels()[:2] == ["layer1.0", "layer1.1"]
    chart.resize(260, 400)
    qtbot.waitUntil(lambda: len(chart.tick_labels()) < 8)


# -- LRPlot -------------------------------------------------------------------------------------------
def test_lr_plot_marks_the_suggestion_and_a_click_chooses_the_lr_under_the_cursor(qtbot):
    plot = shown(qtbot, LRPlot())
    with qtbot.assertNotEmitted(plot.lr_chosen):
        click(qtbot, plot.plot_widget, QPointF(300, 150))  # nothing drawn yet: nothing to choose
    plot.set_result(lr_result())
    assert plot.suggestion_line.isVisible()
    assert plot.suggestion_line.value() == pytest.approx(math.log10(3e-4))
    assert plot.suggestion_line.label.toPlainText() == "suggested 3.0e-4"
    with qtbot.waitSignal(plot.lr_chosen) as blocker:
        click(qtbot, plot.plot_widget, plot.position_of(1e-3, 1.5))
    lr = blocker.args[0]
    assert lr == pytest.approx(1e-3, rel=0.1)
    assert plot.chosen == lr
    assert plot.chosen_line.isVisible()
    assert plot.chosen_line.label.toPlainText() == f"chosen {lr_text(lr)}"
    assert len(plot.chosen_dot.data) == 1  # a dot on the curve at the chosen rate


def test_lr_plot_draws_live_points_then_clears(qtbot):
    plot = shown(qtbot, LRPlot())
    assert plot.empty_text.isVisible()
    for lr, loss in zip(np.logspace(-6, -2, 15), np.linspace(2.3, 1.0, 15), strict=True):
        plot.add_point(float(lr), float(loss))
    qtbot.waitUntil(lambda: plot.point_count() == 15)  # drawn by the throttling timer
    assert not plot.empty_text.isVisible()
    assert "15 steps" in plot.caption()
    plot.clear()
    assert plot.point_count() == 0
    assert plot.empty_text.isVisible()
    assert not plot.suggestion_line.isVisible()


# -- GuideGrid ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_images", "similar", "case"),
    [
        (312, True, GuideCase.SMALL_SIMILAR),
        (20_000, True, GuideCase.LARGE_SIMILAR),
        (312, False, GuideCase.SMALL_DIFFERENT),
        (20_000, False, GuideCase.LARGE_DIFFERENT),
    ],
)
def test_guide_grid_highlights_the_datasets_cell(qtbot, n_images, similar, case):
    grid = shown(qtbot, GuideGrid(), size=(760, 520))
    assert grid.highlighted_case() is None
    grid.set_placement(n_images, similar, None)
    assert grid.highlighted_case() is case
    assert f"your dataset: {n_images:,} images" in grid.cell_text(case)
    assert all("your dataset" not in grid.cell_text(c) for c in GuideCase if c is not case)
    for c in GuideCase:  # the notes' words, from core's one table
        assert GUIDE_GRID[c].text in grid.cell_text(c)
    recommendation = recommend_strategy(n_images, similar, cut_layer="features.6")
    grid.set_placement(None, None, recommendation)
    assert grid.highlighted_case() is case
    assert grid.reason_label.text() == recommendation.reason


def test_guide_grid_frames_the_cells_still_possible(qtbot):
    grid = shown(qtbot, GuideGrid(), size=(760, 520))
    grid.set_placement(312, None, None)
    assert grid.highlighted_case() is None
    assert grid.possible_cases() == {GuideCase.SMALL_SIMILAR, GuideCase.SMALL_DIFFERENT}
    grid.set_placement(None, False, None)
    assert grid.possible_cases() == {GuideCase.SMALL_DIFFERENT, GuideCase.LARGE_DIFFERENT}
    grid.set_placement(None, None, None)
    assert not grid.possible_cases()


def test_similarity_override_combo_and_estimate_button(qtbot):
    grid = shown(qtbot, GuideGrid(), size=(760, 520))
    estimate = SimilarityEstimate(
        False, 0.29, 0.14, 4.2, 0.475, 2.55, 64, "efficientnet_lite0", "Unsure: different."
    )
    with qtbot.assertNotEmitted(grid.similarity_override):
        grid.set_similarity(estimate, False)
    assert grid.override_combo.itemText(0) == "estimated (different)"
    text = grid.similarity_text()
    assert "0.29" in text and "different" in text and "Unsure: different." in text
    for label, value in (("yes", True), ("no", False), ("estimated (different)", None)):
        with qtbot.waitSignal(grid.similarity_override) as blocker:
            grid.override_combo.setCurrentIndex(grid.override_combo.findText(label))
        assert blocker.args == [value]
    grid.override_combo.setCurrentIndex(grid.override_combo.findText("yes"))
    grid.set_similarity(estimate, True)  # the user's choice stands
    assert grid.override_value() is True
    assert "You chose: similar" in grid.similarity_text()
    grid.set_similarity(estimate, False)
    assert grid.override_value() is None

    with qtbot.waitSignal(grid.estimate_requested):
        qtbot.mouseClick(grid.estimate_button, Qt.MouseButton.LeftButton)
    grid.busy("Estimating… 12 of 64 images")
    assert not grid.estimate_button.isEnabled()
    assert grid.similarity_text() == "Estimating… 12 of 64 images"
    grid.set_similarity(estimate, False)
    assert grid.estimate_button.isEnabled()


# -- WatchStrip ---------------------------------------------------------------------------------------
def test_watch_strip_gains_a_tile_per_epoch_coloured_by_correctness(qtbot):
    strip = shown(qtbot, WatchStrip(), size=(720, 220))
    assert strip.frame_count() == 0 and strip.hint().startswith("Watch it learn")
    strip.set_image(PICTURE, "cat_01.jpg · class cat")
    strip.add_frame(WatchFrame(1, "cat_01.jpg", heat(1, 1), "dog", 0.41, "cat"))
    strip.add_frame(WatchFrame(2, "cat_01.jpg", heat(3, 3), "cat", 0.87, "cat"))
    assert strip.frame_count() == 2
    assert strip.hint() == ""
    assert strip.captions() == [("epoch 1 · dog 41%", WRONG_COLOUR), ("epoch 2 · cat 87%", RIGHT_COLOUR)]
    tile = strip.tile_pixmaps()[1]
    assert max(tile.width(), tile.height()) == 96  # the picture fitted into a 96-px tile
    strip.add_frame(WatchFrame(3, "x.jpg", heat(2, 2), "a very long class name indeed", 0.5))  # no true class
    assert strip.captions()[2][0].startswith("epoch 3 ·")
    strip.clear()
    assert strip.frame_count() == 0 and strip.hint()


def test_watch_strip_scrolls_to_the_newest_epoch(qtbot):
    strip = shown(qtbot, WatchStrip(), size=(400, 220))
    strip.set_image(PICTURE, "cat")
    for epoch in range(1, 13):
        strip.add_frame(WatchFrame(epoch, "cat", heat(epoch % 7, 3), "cat", 0.5, "cat"))
    bar = strip.scroll.horizontalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())


# -- CamPairView --------------------------------------------------------------------------------------
def test_cam_pair_captions_and_states(qtbot):
    view = shown(qtbot, CamPairView(), size=(560, 380))
    assert view.message().startswith("Click a misclassified")
    view.busy("Computing Grad-CAM…")
    assert view.message() == "Computing Grad-CAM…"
    view.show_pair(PICTURE, heat(1, 1), heat(5, 5), "dog", 0.71, "cat", 0.12)
    assert view.captions() == ("predicted: dog 71.0 %", "true: cat 12.0 %")
    assert view.message() == ""
    left, right = view.predicted_image.pixmap().toImage(), view.true_image.pixmap().toImage()
    assert (left.width(), left.height()) == (200, 150)  # 160×120 fitted into 200 px
    assert left != right  # two different maps over the same picture
    assert "Where the model looked for each class" in view.explanation_label.text()
    view.clear("No mistakes to show.")
    assert view.captions() == ("", "") and view.message() == "No mistakes to show."


def test_every_widget_paints(qtbot, tmp_path):
    probe = shown(qtbot, ProbeChart())
    probe.set_report(probe_report())
    lr = shown(qtbot, LRPlot())
    lr.set_result(lr_result())
    grid = shown(qtbot, GuideGrid(), size=(760, 520))
    grid.set_placement(312, False, None)
    for i, widget in enumerate((probe, lr, grid)):
        image = widget.grab().toImage()
        assert not image.isNull() and image.pixelColor(QPoint(5, 5)).isValid()
        assert widget.grab().save(str(tmp_path / f"{i}.png"))
