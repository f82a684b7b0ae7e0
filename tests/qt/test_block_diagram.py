"""The block diagram drawn from real signature-block graphs: one box per node, laid out without overlap,
clickable boxes that name their explorer row, and a message when there is no block."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QLabel

from cnn_explorer.core.block_graph import BlockGraph, signature_graph
from cnn_explorer.qt.style import ACCENT
from cnn_explorer.qt.widgets.block_diagram import KIND_COLOURS, BlockDiagram


def _graph(name: str, block: str | None = None) -> BlockGraph:
    graph = signature_graph(name, block)
    assert graph is not None
    return graph


@pytest.fixture
def diagram(qtbot) -> BlockDiagram:
    widget = BlockDiagram()
    qtbot.addWidget(widget)
    widget.resize(560, 640)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _click(qtbot, diagram: BlockDiagram, point: QPointF) -> None:
    """Click where a user would: the event goes to the child widget under the point."""
    pos = point.toPoint()
    target = diagram.childAt(pos)
    assert target is not None
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=target.mapFrom(diagram, pos))


def _count(image: QImage, colour: str) -> int:
    want = QColor(colour).rgb()
    return sum(
        1
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
        if image.pixel(x, y) == want
    )


def test_resnet_block_draws_every_node_once_top_to_bottom_without_overlap(diagram) -> None:
    graph = _graph("resnet18")
    diagram.set_graph(graph)
    rects = diagram.node_rects()
    assert set(rects) == {n.id for n in graph.nodes}
    for a, b in itertools.combinations(rects.values(), 2):
        assert not a.intersects(b)
    tops = [rects[n.id].top() for n in sorted(graph.nodes, key=lambda n: n.rank)]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert all(r.left() >= 0 and r.right() <= diagram.width() for r in rects.values())
    assert diagram.graph() is graph
    captions = [label.text() for label in diagram.findChildren(QLabel) if label.isVisible()]
    assert graph.caption in captions


def test_clicking_a_layer_box_names_its_row_and_a_merge_is_not_clickable(diagram, qtbot) -> None:
    diagram.set_graph(_graph("resnet18"))
    with qtbot.waitSignal(diagram.layer_clicked, timeout=1000) as signal:
        _click(qtbot, diagram, diagram.node_rect("layer1.0.conv2").center())
    assert signal.args == ["layer1.0.conv2"]
    add = next(n for n in diagram.graph().nodes if n.kind == "add")
    with qtbot.assertNotEmitted(diagram.layer_clicked):
        _click(qtbot, diagram, diagram.node_rects()[add.id].center())


def test_clicking_an_inception_branch_names_that_branch(diagram, qtbot) -> None:
    diagram.set_graph(_graph("googlenet"))
    with qtbot.waitSignal(diagram.layer_clicked, timeout=1000) as signal:
        _click(qtbot, diagram, diagram.node_rect("inception3a.branch3.1.conv").center())
    assert signal.args == ["inception3a.branch3.1.conv"]


def test_inception_branches_stand_side_by_side_with_the_concat_centred_below(diagram) -> None:
    graph = _graph("googlenet")
    diagram.set_graph(graph)
    rects = diagram.node_rects()
    first = sorted((n for n in graph.nodes if n.rank == 1), key=lambda n: n.column)
    assert len(first) == 4
    lefts = [rects[n.id].left() for n in first]
    assert lefts == sorted(lefts) and len({rects[n.id].top() for n in first}) == 1
    assert all(r.left() >= 0 and r.right() <= diagram.width() for r in rects.values())  # scaled to fit
    cat = next(n for n in graph.nodes if n.kind == "cat")
    middle = (rects[first[0].id].center().x() + rects[first[-1].id].center().x()) / 2
    assert rects[cat.id].center().x() == pytest.approx(middle, abs=1.5)
    second = [rects[n.id] for n in graph.nodes if n.rank == 2]
    assert rects[cat.id].top() > max(r.bottom() for r in second)


def test_no_graph_shows_the_message_and_no_boxes(diagram) -> None:
    diagram.set_graph(_graph("resnet18"))
    diagram.set_graph(None, "A plain stack of layers: no block to draw")
    visible = [label.text() for label in diagram.findChildren(QLabel) if label.isVisible()]
    assert visible == ["A plain stack of layers: no block to draw"]
    assert diagram.node_rects() == {}
    assert diagram.graph() is None
    with pytest.raises(KeyError):
        diagram.node_rect("layer1.0.conv1")


def test_rendered_diagram_shows_boxes_and_the_identity_shortcut(diagram, tmp_path) -> None:
    diagram.set_graph(_graph("resnet18"))
    image = diagram.grab().toImage()
    conv_fill, _ = KIND_COLOURS["conv"]
    assert _count(image, conv_fill) > 500  # two conv boxes, filled
    assert _count(image, ACCENT) > 20  # the dashed identity curve
    diagram.set_graph(_graph("mobilenet_v2", "features.1"))
    plain = diagram.grab().toImage()
    assert _count(plain, ACCENT) == 0  # no shortcut, none drawn
    assert diagram.grab().save(str(tmp_path / "block.png"))


def test_a_tall_block_keeps_its_text_size_and_scrolls(diagram) -> None:
    diagram.set_graph(_graph("resnet18"))
    small = diagram.node_rect("layer1.0.conv1")
    diagram.set_graph(_graph("densenet121"))
    rects = diagram.node_rects()
    conv = diagram.node_rect("features.denseblock1.denselayer1.conv1")
    assert conv.height() == pytest.approx(small.height(), rel=0.05)
    assert rects["output"].top() > diagram.height()  # below the fold: reached by scrolling


def test_hovering_a_clickable_box_shows_a_pointing_hand(diagram, qtbot) -> None:
    diagram.set_graph(_graph("resnet18"))
    rect: QRectF = diagram.node_rect("layer1.0.conv1")
    pos = rect.center().toPoint()
    canvas = diagram.childAt(pos)
    qtbot.mouseMove(canvas, canvas.mapFrom(diagram, pos))
    qtbot.waitUntil(lambda: canvas.cursor().shape() == Qt.CursorShape.PointingHandCursor, timeout=1000)
    add = next(n for n in diagram.graph().nodes if n.kind == "add")
    pos = diagram.node_rects()[add.id].center().toPoint()
    qtbot.mouseMove(canvas, canvas.mapFrom(diagram, pos))
    qtbot.waitUntil(lambda: canvas.cursor().shape() == Qt.CursorShape.ArrowCursor, timeout=1000)
