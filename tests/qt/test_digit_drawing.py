"""Draw a digit for LeNet-5 in the explorer: mouse strokes on the pad, the predictions and the current layer's
maps follow; Clear, a picture or another model go back to the opened picture."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.images import open_image
from cnn_explorer.qt.pages.network import NetworkPage
from cnn_explorer.qt.widgets.digit_canvas import DigitCanvas

IDLE_MS = 60_000
ASSETS = Path(__file__).resolve().parents[2] / "assets"
ONE = [(0.5, 0.15), (0.5, 0.85)]
ZERO = [(0.5, 0.15), (0.3, 0.3), (0.28, 0.6), (0.5, 0.85), (0.7, 0.6), (0.72, 0.3), (0.5, 0.15)]
FOUR = [(0.6, 0.85), (0.6, 0.15), (0.25, 0.6), (0.75, 0.6)]


def idle(qtbot, page: NetworkPage) -> None:
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


@pytest.fixture
def lenet(lenet_page, qtbot):
    qtbot.waitUntil(lenet_page.digit_pad.isVisible)
    return lenet_page


def stroke(qtbot, canvas: DigitCanvas, points: list[tuple[float, float]]) -> None:
    """Draw with the mouse: press at the first point, move through the others, release at the last."""
    rect = canvas.pad_rect()

    def at(p: tuple[float, float]) -> QPoint:
        return QPoint(round(rect.x() + p[0] * rect.width()), round(rect.y() + p[1] * rect.height()))

    with qtbot.waitSignal(canvas.drawn, timeout=5000):  # the release emits the finished stroke
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(points[0]))
        for a, b in itertools.pairwise(points):
            for t in np.linspace(0.0, 1.0, 8)[1:]:
                QTest.mouseMove(canvas, at((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))))
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(points[-1]))


def top_digit(page: NetworkPage) -> str:
    return page.predictions.rows()[0][0]


def test_the_pad_shows_only_for_a_digit_reader(open_page, qtbot, cat):
    page = open_page(NetworkPage(), IDLE_MS)
    page.set_image(cat)
    idle(qtbot, page)
    assert page.loaded.info.name == "efficientnet_lite0" and not page.digit_pad.isVisible()


def test_drawing_a_digit_updates_predictions_and_maps(lenet, qtbot, cat):
    page = lenet
    page.set_layer_by_name("c1")
    idle(qtbot, page)
    cat_maps = page.grid.fmap.copy() if page.grid.fmap is not None else None

    stroke(qtbot, page.digit_canvas, ONE)
    idle(qtbot, page)
    assert page.drawing_shown and page.session.image.path.name == "your drawing"
    assert top_digit(page) == "1"
    assert page.current_row.name == "c1" and page.view is not None and page.view.name == "c1"
    one_maps = page.grid.fmap.copy()
    assert cat_maps is None or not np.array_equal(one_maps, cat_maps)
    assert page.input_view.data.shape == (32, 32)  # as the network sees it: centred and scaled

    page.digit_canvas.clear()
    qtbot.waitUntil(lambda: page.session.image is cat, timeout=IDLE_MS)
    idle(qtbot, page)
    stroke(qtbot, page.digit_canvas, ZERO)
    idle(qtbot, page)
    assert top_digit(page) == "0"
    assert not np.array_equal(page.grid.fmap, one_maps)  # C1's six maps respond to the new stroke

    # The vector layers follow too: F6's 84 units differ between the two drawings.
    page.set_layer_by_name("f6_tanh")
    idle(qtbot, page)
    zero_f6 = page.session.activation(Side.A, "f6_tanh").data.copy()
    page.digit_canvas.clear()
    idle(qtbot, page)
    stroke(qtbot, page.digit_canvas, FOUR)
    idle(qtbot, page)
    assert top_digit(page) == "4" and page.current_row.name == "f6_tanh"
    assert not np.array_equal(page.session.activation(Side.A, "f6_tanh").data, zero_f6)


def test_clear_another_picture_or_model_go_back_to_the_picture(lenet, qtbot, cat):
    page = lenet
    stroke(qtbot, page.digit_canvas, ONE)
    idle(qtbot, page)
    assert page.drawing_shown

    qtbot.mouseClick(page.digit_pad.clear_button, Qt.MouseButton.LeftButton)
    assert page.digit_canvas.is_empty()
    idle(qtbot, page)
    assert page.session.image is cat and not page.drawing_shown

    stroke(qtbot, page.digit_canvas, ONE)
    idle(qtbot, page)
    coffee = open_image(ASSETS / "coffee.jpg")
    page.set_image(coffee)  # the window opened a picture: it replaces the drawing
    idle(qtbot, page)
    assert page.session.image is coffee and page.digit_canvas.is_empty()

    stroke(qtbot, page.digit_canvas, ONE)
    idle(qtbot, page)
    assert page.drawing_shown
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:mobilenet_v3_small"))
    qtbot.waitUntil(lambda: page.loaded.info.name == "mobilenet_v3_small", timeout=IDLE_MS)
    qtbot.waitUntil(lambda: page.session.image is coffee, timeout=IDLE_MS)
    idle(qtbot, page)
    assert not page.digit_pad.isVisible()
    # Back to LeNet-5: the drawing is still on the pad and is read again.
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:lenet5"))
    qtbot.waitUntil(lambda: page.drawing_shown, timeout=IDLE_MS)
    idle(qtbot, page)
    assert page.digit_pad.isVisible() and top_digit(page) == "1"


def test_the_canvas_draws_thick_strokes_and_throttles(qtbot):
    canvas = DigitCanvas(interval_ms=10_000)  # only the release emits within the test
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.show()
    got: list[np.ndarray] = []
    canvas.drawn.connect(got.append)
    stroke(qtbot, canvas, ONE)
    assert len(got) == 1 and got[0].shape == (canvas.side, canvas.side) and got[0].dtype == np.uint8
    ink_columns = np.flatnonzero((got[0] < 128).any(axis=0))
    assert 0.06 * canvas.side < ink_columns.size < 0.12 * canvas.side  # a felt pen, not a hairline
    assert not canvas.is_empty()
    with qtbot.waitSignal(canvas.cleared):
        canvas.clear()
    assert canvas.is_empty() and (canvas.pixels() == 255).all()
    assert canvas.pad_rect().contains(QPointF(150, 150))


def test_a_picture_a_run_opens_replaces_the_drawing(lenet, qtbot, tmp_path):
    """A digit-reading checkpoint opened with its own image (fine-tune's "Open in explorer") shows that
    image, not the drawing; Clear afterwards stays on it."""
    page = lenet
    stroke(qtbot, page.digit_canvas, ONE)
    idle(qtbot, page)
    path = tmp_path / "digits-run" / "best.pt"
    path.parent.mkdir()
    zoo.save_checkpoint(
        path,
        zoo.load_model("lenet5").model,
        arch="lenet5",
        class_names=[str(d) for d in range(10)],
        preprocess=zoo.LENET5_DIGITS_PREPROCESS,
    )
    page.open_model_file(path, image=ASSETS / "coffee.jpg")
    qtbot.waitUntil(
        lambda: page.loaded is not None and page.loaded.kind is not zoo.ModelKind.ZOO, timeout=IDLE_MS
    )
    idle(qtbot, page)
    assert page.session.image.path.name == "coffee.jpg" and not page.drawing_shown
    assert page.digit_canvas.is_empty() and page.digit_pad.isVisible()  # it reads digits: draw again
    stroke(qtbot, page.digit_canvas, ZERO)
    idle(qtbot, page)
    assert page.drawing_shown and top_digit(page) == "0"
    page.digit_canvas.clear()
    idle(qtbot, page)
    assert page.session.image.path.name == "coffee.jpg"


def test_drawing_reuses_the_layer_table_and_other_models_never_see_the_drawing(lenet, qtbot, monkeypatch):
    page = lenet
    from cnn_explorer.core import features
    from cnn_explorer.qt.pages.network import side

    tables: list[object] = []
    runs: list[tuple[str, tuple[int, ...]]] = []
    real_table, real_run = features.layer_table, side.run_model

    def counting_table(*args, **kwargs):
        tables.append(args[0])
        return real_table(*args, **kwargs)

    def recording_run(source, loaded, pixels, *args, **kwargs):
        runs.append((source.key, None if pixels is None else pixels.shape))
        return real_run(source, loaded, pixels, *args, **kwargs)

    monkeypatch.setattr(features, "layer_table", counting_table)
    monkeypatch.setattr(side, "run_model", recording_run)
    for points in (ONE, ZERO, FOUR):
        page.digit_canvas.clear()
        stroke(qtbot, page.digit_canvas, points)
        idle(qtbot, page)
    assert len(runs) >= 3 and not tables  # measured once, before the first reading

    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:mobilenet_v3_small"))
    assert not page.digit_pad.isVisible()  # at once, while the model loads
    qtbot.waitUntil(lambda: page.loaded.info.name == "mobilenet_v3_small", timeout=IDLE_MS)
    idle(qtbot, page)
    drawn = (page.digit_canvas.side, page.digit_canvas.side)
    assert ("zoo:mobilenet_v3_small", drawn) not in runs  # it ran on the picture only
