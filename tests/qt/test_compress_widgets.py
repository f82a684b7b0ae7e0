"""The compression lab's widgets, driven like a user with reports built here (the widgets' inputs): the
table names what was measured and selects a variant, the quality-vs-size scatter selects by click, the
sweep answers "how far can we prune?", the sparsity bars stay readable for many layers, and the weight
histograms call out the pruned zeros and the int8 levels."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from cnn_explorer.core.compress.spec import CompressReport, SweepPoint, VariantReport, WeightHistogram
from cnn_explorer.qt.widgets.compress_plots import (
    QualityVsSize,
    SweepChart,
    how_far,
    percent_ticks,
    quality_range,
)
from cnn_explorer.qt.widgets.compress_table import CompressTable, size_ratio_text, size_text
from cnn_explorer.qt.widgets.compress_weights import SparsityBars, WeightHistogramView

PARAMS = 61_706


def shown(qtbot, widget, size=(760, 420)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def variant(name, size, nonzero, quality, *, metric="agreement", layers=(), notes=(), ratio=1.0, top5=1.0):
    acc = metric == "accuracy"
    return VariantReport(
        name,
        f"compressed/{name}.pt",
        size,
        PARAMS,
        nonzero,
        0.4 * ratio,
        ratio,
        accuracy=quality if acc else None,
        agreement_top1=None if acc else quality,
        agreement_top5=None if acc else top5,
        layer_sparsity=tuple(layers),
        notes=tuple(notes),
    )


def histograms() -> list[WeightHistogram]:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, 2000)
    edges = np.linspace(-0.4, 0.4, 33)
    before, _ = np.histogram(w, edges)
    kept = w[np.abs(w) >= np.quantile(np.abs(w), 0.5)]
    after, _ = np.histogram(kept, edges)
    return [
        WeightHistogram("c3", "pruned-50", tuple(edges), tuple(before), tuple(after), 0, 1000),
        WeightHistogram("f6", "pruned-50", tuple(edges), tuple(before), tuple(after), 0, 1000),
        WeightHistogram("c3", "int8-static", tuple(edges), tuple(before), tuple(before), 0, 0, levels=187),
    ]


def report(metric="agreement", n_layers=5, sweep=True) -> CompressReport:
    half = [(f"c{i}", 0.5) for i in range(n_layers)]
    none = [(f"c{i}", 0.0) for i in range(n_layers)]
    variants = [
        variant("fp32", 250_000, PARAMS, 1.0 if metric == "agreement" else 0.95, metric=metric, layers=none),
        variant(
            "pruned-50",
            251_000,
            PARAMS // 2,
            0.98 if metric == "agreement" else 0.93,
            metric=metric,
            layers=half,
            notes=["unstructured pruning: the saved file stays dense"],
            ratio=1.02,
        ),
        variant("int8-static", 62_500, PARAMS, 0.75, metric=metric, layers=none, ratio=0.55, top5=0.9),
    ]
    levels = zip((0, 0.3, 0.5, 0.7, 0.8, 0.9), (0.95, 0.95, 0.945, 0.93, 0.88, 0.6), strict=True)
    points = [SweepPoint(s, q, int(PARAMS * (1 - s))) for s, q in levels]
    return CompressReport(
        "zoo lenet5", metric, 4, 4, "torch.ao FX graph mode, x86 backend", variants,
        points if sweep else [], histograms(),
    )  # fmt: skip


# -- CompressTable --------------------------------------------------------------------------------------
def test_table_shows_a_hint_until_a_report_and_names_agreement_as_agreement(qtbot):
    table = shown(qtbot, CompressTable())
    assert table.stack.currentWidget() is table.hint_label
    assert table.rows() == []
    assert not table.open_button.isEnabled()

    table.set_report(report("agreement"))
    header, fp32, pruned, int8 = table.rows()
    assert header[-1] == "agreement (top-1 / top-5)"
    assert not any(h == "accuracy" for h in header)
    assert fp32[:3] == ["fp32", "250.0 KB", "original"]
    assert int8[1:3] == ["62.5 KB", "4.0× smaller"]
    assert int8[-1] == "75.0 % / 90.0 %"
    assert pruned[3] == f"{PARAMS // 2:,} (50 %)"
    assert pruned[2] == "same size"
    assert int8[5].startswith("0.55×") and "faster" in int8[5]
    assert "dense" in table.tooltip("pruned-50")

    table.set_report(report("accuracy"))
    header, fp32, *_ = table.rows()
    assert header[-1] == "accuracy"
    assert fp32[-1] == "95.0 %"


def test_selecting_a_row_emits_its_name_and_the_button_opens_it(qtbot):
    table = shown(qtbot, CompressTable())
    table.set_report(report())
    assert table.selected() == "fp32"  # the original is selected at first
    row = table.table.visualItemRect(table.table.item(2, 0)).center()
    with qtbot.waitSignal(table.variant_selected) as selected:
        qtbot.mouseClick(table.table.viewport(), Qt.MouseButton.LeftButton, pos=row)
    assert selected.args == ["int8-static"]
    assert table.selected() == "int8-static"
    assert "int8-static" in table.open_button.text()
    with qtbot.waitSignal(table.open_clicked) as opened:
        qtbot.mouseClick(table.open_button, Qt.MouseButton.LeftButton)
    assert opened.args == ["int8-static"]

    table.set_report(None)
    assert table.stack.currentWidget() is table.hint_label
    assert not table.open_button.isEnabled()


def test_size_words():
    assert size_text(812) == "812 B"
    assert size_text(61_300) == "61.3 KB"
    assert size_text(4_210_000) == "4.21 MB"
    assert size_ratio_text(1000, 250) == "4.0× smaller"
    assert size_ratio_text(1000, 1200) == "1.2× larger"


# -- QualityVsSize ---------------------------------------------------------------------------------------
def test_clicking_a_point_selects_its_variant(qtbot):
    chart = shown(qtbot, QualityVsSize())
    assert chart.hint().startswith("Run a compression")
    chart.set_report(report())
    assert chart.hint() == ""
    assert chart.plot.getAxis("left").labelText == "agreement, top-1 (%)"
    with qtbot.waitSignal(chart.variant_selected) as selected:
        qtbot.mouseClick(
            chart.plot_widget.viewport(),
            Qt.MouseButton.LeftButton,
            pos=chart.point_position("int8-static").toPoint(),
        )
    assert selected.args == ["int8-static"]
    caption = chart.caption()
    assert "int8-static: 62.5 KB, 4.0× smaller, agreement −25.0 points" in caption


def test_points_of_equal_size_share_one_label_and_a_wide_span_gets_a_log_axis(qtbot):
    chart = shown(qtbot, QualityVsSize())
    r = report()
    chart.set_report(r)
    assert not chart.log_x  # 4× apart
    assert "fp32 (original)\npruned-50" in chart.labels()  # the dense pruned file sits on the original
    assert "int8-static" in chart.labels()
    r.variants.append(variant("tiny", 2_000, 100, 0.5))
    chart.set_report(r)
    assert chart.log_x
    assert "log scale" in chart.plot.getAxis("bottom").labelText


def test_variants_without_a_quality_leave_an_honest_hint(qtbot):
    chart = shown(qtbot, QualityVsSize())
    r = report()
    r.variants = [variant("fp32", 1000, 10, None)]
    chart.set_report(r)
    assert chart.hint() == "No variant has a measured quality to plot."


# -- SweepChart -----------------------------------------------------------------------------------------
def test_the_sweep_answers_how_far_we_can_prune(qtbot):
    chart = shown(qtbot, SweepChart())
    chart.set_report(report(sweep=False))
    assert chart.hint().startswith("No sweep in this run")
    chart.set_report(report("accuracy"))
    assert chart.hint() == ""
    x, y = chart.curve.getData()
    assert list(x) == [0, 30, 50, 70, 80, 90]
    assert np.allclose(y, [95, 95, 94.5, 93, 88, 60])
    assert chart.value_labels() == ["95", "95", "94", "93", "88", "60"]
    caption = chart.caption()
    assert "accuracy stays within 1 point of the least pruned model up to 50 %" in caption
    assert "at 90 %: 60.0 %" in caption


def test_quality_axes_leave_headroom_for_labels_but_no_tick_above_100():
    lo, hi = quality_range([75, 100])
    assert hi > 100  # room for the labels over the points at 100 %
    assert [v for v, _ in percent_ticks(lo, hi)] == [75, 80, 85, 90, 95, 100]  # but no "105 %"


def test_how_far_is_the_last_level_before_quality_falls():
    pts = [
        SweepPoint(0, 0.9, 10),
        SweepPoint(0.3, 0.895, 7),
        SweepPoint(0.5, 0.85, 5),
        SweepPoint(0.7, 0.9, 3),
    ]
    assert how_far(pts) == pytest.approx(0.3)  # a later recovery does not count
    assert how_far([]) is None


# -- SparsityBars -----------------------------------------------------------------------------------------
def test_sparsity_bars_name_every_layer_and_scroll_when_there_are_many(qtbot):
    bars = shown(qtbot, SparsityBars(), size=(480, 360))
    assert bars.hint().startswith("Select a variant")
    layers = [(f"features.{i}.block.{i % 3}.depthwise_conv", 0.2 + i / 100) for i in range(60)]
    bars.set_variant(variant("pruned-50", 1000, PARAMS // 2, 0.9, layers=layers))
    qtbot.waitUntil(lambda: bars.scroll.verticalScrollBar().maximum() > 0)  # a readable row per layer
    ticks = bars.tick_labels()
    assert len(ticks) == 60
    assert ticks[7].startswith("7.b") and ticks[7].endswith("conv")  # "features." is said once, below
    assert "layers in features" in bars.plot.getAxis("bottom").labelText
    assert "60 of 60 layers pruned" in bars.caption()
    assert "50.0 % of all parameters are zero" in bars.caption()

    expected = "features.3.block.0.depthwise_conv: 23.0 % of its weights are zero"

    def hover_fourth_bar() -> bool:  # where it is drawn now (the layout may still settle)
        qtbot.mouseMove(bars.plot_widget.viewport(), bars.bar_position(3).toPoint())
        return bars.plot_widget.toolTip() == expected

    qtbot.waitUntil(hover_fourth_bar)


def test_a_variant_without_pruning_says_so(qtbot):
    bars = shown(qtbot, SparsityBars())
    bars.set_variant(variant("int8-static", 1000, PARAMS, 0.9, layers=[("c1", 0.0), ("f6", 0.0)]))
    assert bars.caption().startswith("no weights pruned")
    bars.set_variant(variant("fp16", 1000, PARAMS, 0.9))
    assert bars.hint() == "fp16: no per-layer sparsity was recorded."


# -- WeightHistogramView ---------------------------------------------------------------------------------
def test_histograms_call_out_the_pruned_zeros(qtbot):
    view = shown(qtbot, WeightHistogramView(), size=(520, 420))
    view.set_histograms(histograms())
    view.show_variant("fp32")
    assert view.hint().startswith("No weight histogram for fp32")
    view.show_variant("pruned-50")
    assert view.hint() == ""
    assert view.title_label.text() == "Weights of c3"
    assert view.zero_label("after").startswith("pruned zeros: 1,000")
    assert view.zero_label("before") == ""
    assert "50 % of them are now exactly zero" in view.caption()
    assert view.layer_combo.isVisibleTo(view) and view.layer_combo.count() == 2  # c3 and f6
    view.layer_combo.setCurrentText("f6")
    assert view.title_label.text() == "Weights of f6"


def test_int8_histograms_count_the_levels(qtbot):
    view = shown(qtbot, WeightHistogramView())
    view.set_histograms(histograms())
    view.show_variant("int8-static")
    assert not view.layer_combo.isVisibleTo(view)  # one layer: no choice to offer
    assert "int8: the weights take only 187 distinct levels (8 bits allow 256)" in view.caption()
    assert view.zero_label("after") == ""


def test_points_are_in_the_plot(qtbot):
    """Guard for the tests' clicks: a point maps inside the visible plot."""
    chart = shown(qtbot, QualityVsSize())
    chart.set_report(report())
    p = chart.point_position("fp32")
    assert chart.plot_widget.rect().contains(p.toPoint())
    assert isinstance(p, QPointF)
