"""The layer panels fed with core's plain facts: details text, filter pictures, and the whole layer table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.layer_facts import layer_facts
from cnn_explorer.core.layers import layer_table
from cnn_explorer.qt.widgets.filter_view import FilterView, rgb_mosaic
from cnn_explorer.qt.widgets.layer_details import KEYS, LayerDetails
from cnn_explorer.qt.widgets.layer_table_view import LayerTableView


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = zoo.LeNet5().eval()
    return model, layer_table(model, 32)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    model = zoo._construct("resnet18", 10).eval()
    return model, layer_table(model, 64)


def children(table, name: str) -> int:
    return sum(1 for r in table if r.parent == name)


# -- details --------------------------------------------------------------------------------------------
def test_details_write_out_a_conv_from_its_facts(lenet, qtbot):
    model, table = lenet
    details = LayerDetails()
    qtbot.addWidget(details)
    details.set_layer(table.row("c1"), layer_facts(model, table.row("c1")))
    assert details.plain_text() == (
        "Type: Conv2d (layer)\n"
        "Window: 5×5\n"
        "Shape: 1×32×32 → 6×28×28\n"
        "Output size: ⌊(32 + 2·0 − 5)/1⌋ + 1 = 28\n"
        "Parameters: weight 6·1·5·5 = 150 + bias 6 = 156\n"
        "Multiply-adds: 28·28 positions · 6 filters · 1·5·5 = 117,600 (118\u00a0k)\n"
        "Receptive field: 5×5 px of the input; neighbouring units 1 px apart"
    )
    details.set_layer(table.row("f6"), layer_facts(model, table.row("f6")))
    assert "Parameters: weight 84·120 = 10,080 + bias 84 = 10,164" in details.plain_text()
    assert "Multiply-adds: 84 outputs · 120 inputs = 10,080" in details.plain_text()
    details.set_layer(table.row("c3"), None)  # no facts (yet): the row's count
    assert "Parameters: 2,416\n" in details.plain_text()


def test_details_of_blocks_and_repeated_calls(resnet18, qtbot):
    model, table = resnet18
    details = LayerDetails()
    qtbot.addWidget(details)
    again = table.row("layer1.0.relu#2")
    details.set_layer(again, layer_facts(model, again), None, children(table, again.name))
    assert "Parameters: 0, shared with layer1.0.relu (the same module, called again)" in details.plain_text()
    block = table.row("layer1.0")
    details.set_layer(block, layer_facts(model, block), None, children(table, "layer1.0"))
    text = details.plain_text()
    assert "Type: BasicBlock (block of 6 layers)" in text and "Parameters: 73,984 in its layers" in text
    assert "Multiply-adds: 18,874,368 (18.9\u00a0M), the sum over its layers" in text


def test_details_rows_stay_in_place_from_layer_to_layer(resnet18, qtbot):
    """Every name the table can show fits its first column, and the rows sit at the top in their own
    heights: stepping to a layer with other rows moves neither the values' column nor the first rows."""
    model, table = resnet18
    details = LayerDetails()
    qtbot.addWidget(details)
    details.resize(330, 420)
    details.show()
    qtbot.waitExposed(details)
    kept = SimpleNamespace(nbytes=3 * 2**20, too_large=False)  # what the details read of a capture
    value_x, tops = set(), set()
    for i, row in enumerate(table):
        details.set_layer(row, layer_facts(model, row), kept if i % 2 else None, children(table, row.name))
        qtbot.wait(1)
        for key, value in details._pairs[: len(details._rows)]:
            assert key.text() in KEYS
            assert key.width() >= key.sizeHint().width()  # not cut
            assert value.height() <= value.heightForWidth(value.width()) + 1  # not stretched
        value_x.add(details._pairs[0][1].x())
        tops.add((details._pairs[0][0].y(), details._pairs[1][0].y()))
    assert len(value_x) == 1 and len(tops) == 1


# -- filters --------------------------------------------------------------------------------------------
def test_first_conv_filters_as_colour_patches_and_the_outline_moves(resnet18, qtbot):
    model, table = resnet18
    view = FilterView()
    qtbot.addWidget(view)
    row = table.row("conv1")
    view.set_filters(layer_facts(model, row), selected=3, type_name=row.type)
    weight = model.conv1.weight.detach().numpy()
    assert view.mode == "rgb" and view.weights.shape == (64, 3, 7, 7)
    np.testing.assert_array_equal(view.map.data, rgb_mosaic(weight)[0])
    assert view.map.title_label.text() == "Filters: 64 × (7×7×3) as colour patches"
    y, x = view.grid.cell_origin(3)
    assert view.map.highlight_rects("selected") == [(y, x, 7, 7)]
    drawn = view.map.data
    view.set_filters(layer_facts(model, row), selected=10, type_name=row.type)  # new facts, same weights
    assert view.map.data is drawn  # not drawn again: only the outline moved
    y, x = view.grid.cell_origin(10)
    assert view.map.highlight_rects("selected") == [(y, x, 7, 7)]


def test_filters_of_one_channel_a_matrix_and_layers_without(lenet, qtbot):
    model, table = lenet
    view = FilterView()
    qtbot.addWidget(view)
    view.set_filters(layer_facts(model, table.row("c1")), selected=2)
    assert view.mode == "all" and view.map.title_label.text() == "Filters: 6 kernels of 5×5"
    np.testing.assert_array_equal(view.weights, model.c1.weight.detach().numpy()[:, 0])
    view.set_filters(layer_facts(model, table.row("c3")), selected=4)
    assert view.mode == "channel" and "Filter of channel 4: 6 slices of 5×5" in view.map.title_label.text()
    np.testing.assert_array_equal(view.weights, model.c3.weight.detach().numpy()[4])
    view.set_filters(layer_facts(model, table.row("c3")), selected=7)  # another channel: its filter
    np.testing.assert_array_equal(view.weights, model.c3.weight.detach().numpy()[7])
    view.set_filters(layer_facts(model, table.row("f6")), selected=5)
    assert view.mode == "matrix" and view.map.data.shape == (84, 120)
    assert view.map.highlight_rects("selected") == [(5, 0, 1, 120)]
    view.set_filters(layer_facts(model, table.row("s2")), type_name="AvgPool2d")
    assert view.mode == "none" and view.weights is None
    assert view.map.message_label.text().startswith("AvgPool2d has no filters.")


def test_changed_weights_are_drawn_again(qtbot):
    model = zoo.LeNet5().eval()
    row = layer_table(model, 32).row("c1")
    view = FilterView()
    qtbot.addWidget(view)
    view.set_filters(layer_facts(model, row), selected=0)
    with torch.no_grad():
        model.c1.weight.neg_()  # e.g. a training step, in place
    view.set_filters(layer_facts(model, row), selected=0)
    np.testing.assert_array_equal(view.weights, model.c1.weight.detach().numpy()[:, 0])


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # (torch deprecates TorchScript)
def test_a_torchscript_model_says_why_there_are_no_filters(lenet, qtbot):
    _, table = lenet
    scripted = torch.jit.trace(zoo.LeNet5().eval(), torch.zeros(1, 1, 32, 32))
    view = FilterView()
    qtbot.addWidget(view)
    view.set_filters(layer_facts(scripted, table.row("c1")), type_name="Conv2d")
    assert view.mode == "none" and "TorchScript" in view.map.message_label.text()
    view.set_filters(None, type_name="Conv2d")
    assert "Conv2d has no filters" in view.map.message_label.text()


# -- the whole table ------------------------------------------------------------------------------------
@pytest.fixture
def table_view(qtbot, resnet18):
    view = LayerTableView()
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    qtbot.waitExposed(view)
    view.set_table(resnet18[1])
    return view


def click_header(qtbot, view: LayerTableView, key: str) -> None:
    header = view.view.horizontalHeader()
    col = view.column(key)
    pos = QPoint(header.sectionViewportPosition(col) + header.sectionSize(col) // 2, header.height() // 2)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_table_shows_every_step_with_the_csv_values(table_view, resnet18):
    _, table = resnet18
    assert table_view.shown_names() == table.names()  # in the order the network runs
    first = table.rows[0]
    assert table_view.cell_text(0, "name") == "conv1" and table_view.cell_text(0, "type") == "Conv2d"
    assert table_view.cell_text(0, "output_shape") == "×".join(str(v) for v in first.out_shape)
    assert table_view.cell_text(0, "params") == "9,408"
    assert table_view.cell_text(0, "macs") == f"{first.macs:,}"
    assert table_view.cell_text(0, "rf_size") == "7"
    assert table_view.cell_text(0, "output_bytes") == "0.25 MB"  # 64·32·32 float32 values
    assert table_view.cell_text(len(table) - 1, "rf_size") == "whole input"  # fc


def test_table_sorts_parameters_as_numbers(table_view, resnet18, qtbot):
    _, table = resnet18
    click_header(qtbot, table_view, "params")
    shown = [int(table_view.cell_text(r, "params").replace(",", "")) for r in range(table_view.rows())]
    assert shown == sorted(r.params for r in table)  # 9,408 after 128, as text would not have it
    assert shown[0] == 0 and shown[-1] == max(r.params for r in table)
    click_header(qtbot, table_view, "params")  # again: descending
    assert int(table_view.cell_text(0, "params").replace(",", "")) == max(r.params for r in table)
    click_header(qtbot, table_view, "output_bytes")
    memory = [4 * int(np.prod(table.row(n).out_shape)) for n in table_view.shown_names()]
    assert memory == sorted(memory)
    click_header(qtbot, table_view, "step")  # back to the network's order
    assert table_view.shown_names() == table.names()


def test_table_filters_by_name(table_view, resnet18, qtbot):
    qtbot.keyClicks(table_view.filter_edit, "LAYER2.0.DOWN")
    assert table_view.shown_names() == ["layer2.0.downsample.0", "layer2.0.downsample.1"]
    table_view.filter_edit.clear()
    assert table_view.shown_names() == resnet18[1].names()


def test_double_click_activates_a_layer(table_view, qtbot):
    activated = []
    table_view.layer_activated.connect(activated.append)
    qtbot.mouseClick(table_view.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, 5))
    assert activated == []  # one click only selects
    qtbot.keyClicks(table_view.filter_edit, "layer3.1")
    names = table_view.shown_names()
    row = names.index("layer3.1.conv2")
    rect = table_view.view.visualRect(table_view.proxy.index(row, table_view.column("type")))
    viewport = table_view.view.viewport()
    with qtbot.waitSignal(table_view.layer_activated, timeout=2000) as signal:
        # A hand's double click: the first click, then the second one that Qt reports as a double click.
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=rect.center())
    assert signal.args == ["layer3.1.conv2"] and activated == ["layer3.1.conv2"]
    table_view.set_current("layer3.1.bn2")
    assert table_view.view.selectionModel().selectedRows()[0].row() == names.index("layer3.1.bn2")
