"""The architecture gallery's two charts, drawn from the real facts and driven like a user: the scatter of
accuracy against multiply-adds (log axis, area ∝ parameters, labelled, clickable, hover numbers) and the
parameter breakdown (conv | FC | other per model, share or absolute, clickable rows)."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor

from cnn_explorer.core.architectures import ArchitectureFacts, all_architecture_facts
from cnn_explorer.core.explorer.text import short_number
from cnn_explorer.qt.widgets.arch_scatter import ArchScatter
from cnn_explorer.qt.widgets.param_breakdown import CONV_COLOUR, FC_COLOUR, ParamBreakdown

SIZE = (900, 500)


@pytest.fixture(scope="module")
def facts() -> list[ArchitectureFacts]:
    return all_architecture_facts()


def by_name(facts: list[ArchitectureFacts], name: str) -> ArchitectureFacts:
    return next(f for f in facts if f.name == name)


def shown(qtbot, widget):
    qtbot.addWidget(widget)
    widget.resize(*SIZE)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def click(qtbot, plot_widget, pos: QPointF) -> None:
    qtbot.mouseClick(plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos.toPoint())


@pytest.fixture
def scatter(qtbot, facts) -> ArchScatter:
    widget = shown(qtbot, ArchScatter())
    widget.set_facts(facts)
    return widget


@pytest.fixture
def breakdown(qtbot, facts) -> ParamBreakdown:
    widget = shown(qtbot, ParamBreakdown())
    widget.set_facts(facts)
    return widget


# -- ArchScatter --------------------------------------------------------------------------------------
def test_scatter_plots_the_models_with_a_top1_and_says_why_the_others_are_missing(scatter, facts):
    with_top1 = [f.name for f in facts if f.top1 is not None]
    assert scatter.plotted_names() == with_top1
    assert "lenet5" not in with_top1 and "efficientnet_lite0" not in with_top1  # the facts still say so
    caption = scatter.caption()
    assert "marker area ∝ parameters" in caption
    assert "IMAGENET1K_V1" in caption
    not_plotted = caption.split("Not plotted")[1]
    assert "LeNet-5 reads digits" in not_plotted
    assert "EfficientNet-Lite0" in not_plotted


def test_scatter_x_axis_is_logarithmic_in_multiply_adds(scatter, facts):
    vgg, resnet, mobile = (by_name(facts, n) for n in ("vgg16", "resnet18", "mobilenet_v2"))
    x = {n: scatter.point_pos(n).x() for n in ("vgg16", "resnet18", "mobilenet_v2")}
    assert x["vgg16"] > x["resnet18"] > x["mobilenet_v2"]
    # Pixel gaps are in the ratio of the log gaps (a linear axis would squeeze ResNet-18 onto MobileNet).
    expected = math.log(vgg.macs / resnet.macs) / math.log(resnet.macs / mobile.macs)
    measured = (x["vgg16"] - x["resnet18"]) / (x["resnet18"] - x["mobilenet_v2"])
    assert measured == pytest.approx(expected, rel=0.02)
    ticks = scatter.tick_labels()
    assert {"100M", "1G", "10G"} <= set(ticks)
    assert not any("e" in t or "^" in t for t in ticks)
    # Higher top-1 is drawn higher.
    assert scatter.point_pos("efficientnet_b0").y() < scatter.point_pos("alexnet").y()


def test_marker_area_grows_with_the_parameters(scatter, facts):
    vgg, r50 = by_name(facts, "vgg16"), by_name(facts, "resnet50")
    assert (
        scatter.marker_size("vgg16") > scatter.marker_size("resnet18") > scatter.marker_size("squeezenet1_1")
    )
    area_ratio = (scatter.marker_size("vgg16") / scatter.marker_size("resnet50")) ** 2
    assert area_ratio == pytest.approx(vgg.params / r50.params, rel=0.01)
    assert scatter.marker_size("squeezenet1_1") >= 8  # small, still big enough to click


def test_every_point_is_labelled_with_its_title_and_no_labels_overlap(scatter, facts):
    names = scatter.plotted_names()
    assert {scatter.labels[n].toPlainText() for n in names} == {by_name(facts, n).title for n in names}
    plot_area = scatter.plot_widget.rect()
    rects = {n: scatter.label_rect(n) for n in names}
    for i, a in enumerate(names):
        assert plot_area.contains(rects[a].toAlignedRect()), a
        for b in names[i + 1 :]:
            assert not rects[a].intersects(rects[b]), (a, b)
        # A label covers no other model's marker centre.
        for b in names:
            if b != a:
                assert not rects[a].contains(scatter.point_pos(b)), (a, b)


def test_clicking_a_point_opens_that_model_even_beside_a_close_neighbour(qtbot, scatter):
    for name in ("resnet18", "googlenet", "vgg16", "squeezenet1_1"):  # GoogLeNet sits next to ResNet-18
        with qtbot.waitSignal(scatter.model_clicked) as blocker:
            click(qtbot, scatter.plot_widget, scatter.point_pos(name))
        assert blocker.args == [name]
    with qtbot.waitSignal(scatter.model_clicked) as blocker:  # the label is a target too
        click(qtbot, scatter.plot_widget, scatter.label_rect("alexnet").center())
    assert blocker.args == ["alexnet"]
    empty = scatter.point_pos("squeezenet1_1") + QPointF(0, -60)  # between SqueezeNet and ShuffleNet V2
    with qtbot.assertNotEmitted(scatter.model_clicked):
        click(qtbot, scatter.plot_widget, empty)


def test_hovering_a_point_shows_its_numbers(qtbot, scatter, facts):
    resnet = by_name(facts, "resnet18")
    pos = scatter.point_pos("resnet18")
    qtbot.mouseMove(scatter.plot_widget.viewport(), pos.toPoint())
    qtbot.waitUntil(lambda: scatter.plot_widget.toolTip() != "")
    tip = scatter.plot_widget.toolTip()
    assert tip == scatter.tooltip_at(pos)
    assert tip.startswith(f"ResNet-18 ({resnet.year}) — {resnet.top1:.1f} % top-1, ")
    assert f"{short_number(resnet.macs)} MACs" in tip and f"{short_number(resnet.params)} params" in tip
    assert scatter.tooltip_at(pos + QPointF(0, -60)) == ""


def test_the_selected_model_is_ringed_and_its_label_steps_aside(scatter, facts):
    vgg = by_name(facts, "vgg16")
    scatter.set_selected("vgg16")
    xs, ys = scatter.ring.getData()
    assert list(xs) == pytest.approx([math.log10(vgg.macs)]) and list(ys) == pytest.approx([vgg.top1])
    ring_radius = scatter.ring.data["size"][0] / 2
    assert ring_radius > scatter.marker_size("vgg16") / 2
    label, centre = scatter.label_rect("vgg16"), scatter.point_pos("vgg16")
    nearest = QPointF(  # the label's point nearest the ring's centre lies outside the ring
        min(max(centre.x(), label.left()), label.right()), min(max(centre.y(), label.top()), label.bottom())
    )
    assert math.dist((nearest.x(), nearest.y()), (centre.x(), centre.y())) > ring_radius
    scatter.set_selected("lenet5")  # not plotted: nothing to ring
    assert len(scatter.ring.getData()[0]) == 0


def test_scatter_without_facts_shows_a_hint(qtbot):
    widget = shown(qtbot, ArchScatter())
    assert widget.plotted_names() == []
    assert widget.empty_text.isVisible()


# -- ParamBreakdown -----------------------------------------------------------------------------------
def test_row_text_gives_the_size_and_the_fc_share(breakdown, facts):
    vgg = by_name(facts, "vgg16")
    assert f"{100 * vgg.fc_share:.0f} % FC" == "89 % FC"
    assert breakdown.row_text("vgg16") == f"{short_number(vgg.params)} · 89 % FC".replace("\u00a0", " ")
    assert breakdown.row_text("squeezenet1_1").endswith("no FC")  # FC-free: a 1×1 convolution classifies
    assert breakdown.names() == [f.name for f in facts]


def test_share_mode_gives_every_bar_the_same_length_absolute_mode_the_counts(qtbot, breakdown, facts):
    assert breakdown.mode() == "share"
    widths = [breakdown.bar_rect(f.name).width() for f in facts]
    assert max(widths) - min(widths) <= 1.0
    qtbot.mouseClick(breakdown.absolute_button, Qt.MouseButton.LeftButton)
    assert breakdown.mode() == "absolute"
    widths = {f.name: breakdown.bar_rect(f.name).width() for f in facts}
    assert max(widths, key=widths.get) == "vgg16"
    alex, vgg = by_name(facts, "alexnet"), by_name(facts, "vgg16")
    assert widths["alexnet"] / widths["vgg16"] == pytest.approx(alex.params / vgg.params, rel=0.02)
    # Rows stay in the given order, oldest on top.
    assert breakdown.bar_rect("lenet5").top() < breakdown.bar_rect("efficientnet_lite0").top()
    breakdown.set_mode("share")
    assert breakdown.share_button.isChecked()
    with pytest.raises(ValueError):
        breakdown.set_mode("log")


def test_clicking_a_bar_opens_that_model(qtbot, breakdown, facts):
    for mode in ("share", "absolute"):
        breakdown.set_mode(mode)
        for name in ("resnet50", "vgg16"):
            with qtbot.waitSignal(breakdown.model_clicked) as blocker:
                click(qtbot, breakdown.plot_widget, breakdown.bar_rect(name).center())
            assert blocker.args == [name]
    tip = breakdown.tooltip_at(breakdown.bar_rect("vgg16").center())
    vgg = by_name(facts, "vgg16")
    assert tip.startswith(f"VGG-16: {vgg.params:,} parameters")
    assert f"fully connected {short_number(vgg.fc_params)} ({100 * vgg.fc_share:.1f} %)" in tip


def test_selecting_a_model_highlights_its_row(breakdown):
    breakdown.set_selected("resnet18")
    assert breakdown.band.isVisible() and breakdown.outline.isVisible()
    scene = breakdown.band.mapRectToScene(breakdown.band.boundingRect())
    band = breakdown.plot_widget.mapFromScene(scene).boundingRect()
    assert band.contains(breakdown.bar_rect("resnet18").center().toPoint())
    assert not band.contains(breakdown.bar_rect("resnet50").center().toPoint())
    breakdown.set_selected(None)
    assert not breakdown.band.isVisible()


# -- looking at them ----------------------------------------------------------------------------------
def _has_colour(image, colour: str, tolerance: int = 12) -> bool:
    want = QColor(colour)
    for y in range(0, image.height(), 3):
        for x in range(0, image.width(), 3):
            c = image.pixelColor(x, y)
            if max(abs(c.red() - want.red()), abs(c.green() - want.green()), abs(c.blue() - want.blue())) <= (
                tolerance
            ):
                return True
    return False


def test_both_charts_render_to_png(scatter, breakdown, tmp_path):
    scatter.set_selected("resnet18")
    breakdown.set_selected("vgg16")
    for name, widget in (("scatter", scatter), ("breakdown", breakdown)):
        path = tmp_path / f"{name}.png"
        assert widget.grab().save(str(path))
        assert path.stat().st_size > 10_000
    image = breakdown.grab().toImage()
    assert _has_colour(image, CONV_COLOUR) and _has_colour(image, FC_COLOUR)
