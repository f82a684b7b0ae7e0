"""The architecture gallery page in the window: cards from the measured facts, the scatter and the breakdown,
signature blocks drawn from the modules, and the jumps into the Network explorer."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt

from cnn_explorer.core.architectures import all_architecture_facts
from cnn_explorer.qt import workers
from cnn_explorer.qt.app import make_app
from cnn_explorer.qt.main_window import MainWindow
from cnn_explorer.qt.pages.gallery import GalleryPage

IDLE_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path):
    make_app()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    win._dialogs_enabled = False
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitUntil(lambda: win.current_image is not None, timeout=IDLE_MS)
    yield win
    win.close()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def gallery_of(qtbot, win: MainWindow) -> GalleryPage:
    page = win.page("GalleryPage")
    win.show_page(win.pages.index(page))
    qtbot.waitUntil(lambda: page.gallery is not None, timeout=IDLE_MS)
    return page


def test_the_gallery_is_in_the_side_bar_and_loads_in_a_worker(window, qtbot):
    page = window.page("GalleryPage")
    assert [p.title for p in window.pages][2] == "Architectures"
    assert page.gallery is None  # nothing measured before it is shown
    window.show_page(window.pages.index(page))
    assert page.is_busy()  # the facts are measured in a worker
    qtbot.waitUntil(lambda: page.gallery is not None, timeout=IDLE_MS)
    facts = all_architecture_facts()
    assert page.names() == [f.name for f in facts]
    assert page.model_list.count() == len(facts)
    assert page.model_list.item(0).text().startswith("LeNet-5  ·  1998  ·  5 layers")
    # The cards' numbers are the layer table's.
    vgg = next(f for f in facts if f.name == "vgg16")
    page.select_model("vgg16")
    text = page.card.text.text()
    assert f"{vgg.params:,}" in text and "89 % in fully connected layers" in text
    assert "71.6 % top-1, 90.4 % top-5" in text and "IMAGENET1K_V1" in text
    page.select_model("alexnet")
    assert "LRN" in page.card.text.text() and "Not in torchvision" in page.card.text.text()
    assert page.card.diagram.graph() is None  # a plain stack: no block to draw
    assert set(page.scatter.plotted_names()) == {f.name for f in facts if f.top1 is not None}


def test_signature_blocks_are_drawn_and_open_in_the_explorer(window, qtbot):
    page = gallery_of(qtbot, window)
    page.select_model("googlenet")
    graph = page.card.diagram.graph()
    assert graph is not None and graph.block == "inception3a" and graph.branches == 4
    explorer = window.page("NetworkPage")
    with qtbot.waitSignal(page.open_in_explorer) as opened:
        qtbot.mouseClick(page.card.open_button, Qt.MouseButton.LeftButton)
    assert opened.args == ["googlenet", "inception3a"]
    assert window.stack.currentWidget() is explorer
    qtbot.waitUntil(
        lambda: explorer.loaded is not None and explorer.loaded.info.name == "googlenet", timeout=IDLE_MS
    )
    qtbot.waitUntil(lambda: not explorer.is_busy(), timeout=IDLE_MS)
    assert explorer.current_row.name == "inception3a"

    # A box of the diagram opens its own layer: MobileNet V2's depthwise-separable pair, its 1×1 conv.
    window.show_page(window.pages.index(page))
    page.select_model("mobilenet_v2")
    page.card.block_combo.setCurrentIndex(page.card.block_combo.findData("features.1"))
    graph = page.card.diagram.graph()
    assert graph.block == "features.1"
    pointwise = next(n for n in graph.nodes if n.kind == "conv" and "1×1" in n.label)
    diagram = page.card.diagram
    pos = diagram.node_rect(pointwise.module).center().toPoint()
    canvas = diagram.childAt(pos)  # the drawing inside the diagram's scroll area
    with qtbot.waitSignal(page.open_in_explorer) as opened:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.mapFrom(diagram, pos))
    assert opened.args == ["mobilenet_v2", pointwise.module]
    qtbot.waitUntil(lambda: explorer.loaded.info.name == "mobilenet_v2", timeout=IDLE_MS)
    qtbot.waitUntil(lambda: not explorer.is_busy(), timeout=IDLE_MS)
    assert explorer.current_row.name == pointwise.module


def test_clicking_a_point_opens_the_model(window, qtbot):
    page = gallery_of(qtbot, window)
    scatter = page.scatter
    with qtbot.waitSignal(page.open_in_explorer) as opened:
        qtbot.mouseClick(
            scatter.plot_widget.viewport(),
            Qt.MouseButton.LeftButton,
            pos=scatter.point_pos("resnet18").toPoint(),
        )
    assert opened.args == ["resnet18", ""]
    explorer = window.page("NetworkPage")
    assert window.stack.currentWidget() is explorer
    qtbot.waitUntil(
        lambda: explorer.loaded is not None and explorer.loaded.info.name == "resnet18", timeout=IDLE_MS
    )
    assert page.selected() == "resnet18"
    # The breakdown selects a model for its card (it does not leave the page).
    window.show_page(window.pages.index(page))
    page.tabs.setCurrentWidget(page.breakdown)
    qtbot.mouseClick(
        page.breakdown.plot_widget.viewport(),
        Qt.MouseButton.LeftButton,
        pos=page.breakdown.bar_rect("vgg16").center().toPoint(),
    )
    assert page.selected() == "vgg16" and window.stack.currentWidget() is page
