"""The operations lab page, driven through its widgets: presets, stride/padding, step mode, hover, images."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from cnn_explorer.core.images import open_image
from cnn_explorer.core.kernels import COURSE_KERNEL, COURSE_MATRIX
from cnn_explorer.core.ops import compare_params, conv2d, image_to_input
from cnn_explorer.qt.pages.ops_lab import OpsLabPage

IDLE_MS = 15_000


@pytest.fixture
def page(open_page):
    return open_page(OpsLabPage(), IDLE_MS)


def idle(qtbot, lab: OpsLabPage) -> None:
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=IDLE_MS)


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    assert index >= 0, f"{text!r} not offered"
    combo.setCurrentIndex(index)


@pytest.fixture
def course(page, qtbot):
    """The course's worked example: 4×4 matrix 1…16, kernel [[0,1],[1,0]], stride 1, no padding."""
    choose(page.source_combo, "Typed matrix")
    choose(page.matrix_combo, COURSE_MATRIX)
    choose(page.kernel_combo, COURSE_KERNEL)
    idle(qtbot, page)
    return page


def test_course_preset_shows_the_worked_example(course):
    assert "4×4" in course.input_map.title_label.text()
    assert course.input_map.cell_texts() == [[str(4 * r + c + 1) for c in range(4)] for r in range(4)]
    assert "3×3" in course.conv_map.title_label.text()
    assert "⌊(4 + 2·0 − 2)/1⌋ + 1 = 3" in course.conv_map.caption_label.text()
    assert course.conv_map.cell_texts() == [["7", "9", "11"], ["15", "17", "19"], ["23", "25", "27"]]
    # ReLU keeps positives; 2×2 max pooling (stride 2) of the 3×3 map keeps one window: max(7, 9, 15, 17).
    assert course.act_map.cell_texts() == course.conv_map.cell_texts()
    assert "1×1" in course.pool_map.title_label.text()
    assert "⌊(3 + 2·0 − 2)/2⌋ + 1 = 1" in course.pool_map.caption_label.text()
    assert course.pool_map.cell_texts() == [["17"]]


def test_course_matrix_max_pooling_alone(course, qtbot):
    choose(course.kernel_combo, "identity")  # 3×3 identity with padding 1 gives the matrix back
    course.padding_spin.setValue(1)
    idle(qtbot, course)
    assert course.conv_map.cell_texts() == [[str(4 * r + c + 1) for c in range(4)] for r in range(4)]
    assert course.pool_map.cell_texts() == [["6", "8"], ["14", "16"]]
    assert "⌊(4 + 2·0 − 2)/2⌋ + 1 = 2" in course.pool_map.caption_label.text()


def test_changing_padding_and_stride_updates_shape_formula_and_values(course, qtbot):
    course.padding_spin.setValue(1)
    idle(qtbot, course)
    assert "5×5" in course.conv_map.title_label.text()
    assert "⌊(4 + 2·1 − 2)/1⌋ + 1 = 5" in course.conv_map.caption_label.text()
    assert "6×6" in course.input_map.caption_label.text()  # the padded size is spelled out
    assert course.input_map.highlight_rects("valid") == [(0, 0, 4, 4)]
    # The padded input shows its ring of zeros around 1…16.
    assert course.input_map.cell_texts()[0] == ["0"] * 6

    course.stride_spin.setValue(2)
    idle(qtbot, course)
    assert "3×3" in course.conv_map.title_label.text()
    assert "⌊(4 + 2·1 − 2)/2⌋ + 1 = 3" in course.conv_map.caption_label.text()
    expected = conv2d(np.arange(1, 17).reshape(4, 4), np.array([[0, 1], [1, 0]]), stride=2, padding=1)
    assert course.conv_map.cell_texts() == [[str(int(v)) for v in row] for row in expected]


def test_step_back_and_forth_through_the_course_example(course, qtbot):
    assert course.step_index == 0
    assert "position 1 of 9" in course.position_label.text()
    assert not course.back_button.isEnabled()
    assert course.input_map.highlight_rects("window") == [(0, 0, 2, 2)]
    assert "patch [[1, 2], [5, 6]]" in course.step_view.plain_text()

    for _ in range(4):
        qtbot.mouseClick(course.step_button, Qt.MouseButton.LeftButton)
    assert course.position_label.text() == "Output row 1, col 1 — position 5 of 9"
    text = course.step_view.plain_text()
    assert "patch [[6, 7], [10, 11]] × kernel [[0, 1], [1, 0]] = products [[0, 7], [10, 0]]" in text
    assert "+ bias 0 = 17" in text and "ReLU → 17" in text
    assert course.input_map.highlight_rects("window") == [(1, 1, 2, 2)]
    assert course.conv_map.highlight_rects("cell") == [(1, 1, 1, 1)]
    assert course.act_map.highlight_rects("cell") == [(1, 1, 1, 1)]
    assert course.pool_map.highlight_rects("pool") == [(0, 0, 1, 1)]  # 17 sits in the one pooling window

    qtbot.mouseClick(course.back_button, Qt.MouseButton.LeftButton)
    assert "position 4 of 9" in course.position_label.text()
    assert course.step_view.step.value == 15
    assert course.input_map.highlight_rects("window") == [(1, 0, 2, 2)]


def test_step_shows_bias_and_padding_taps(course, qtbot):
    course.padding_spin.setValue(1)
    course.bias_spin.setValue(-3)
    idle(qtbot, course)
    step = course.step_view.step
    assert (step.out_row, step.out_col) == (0, 0)
    assert step.in_padding.tolist() == [[True, True], [True, False]]
    assert course.input_map.highlight_rects("window") == [(-1, -1, 2, 2)]  # the window starts in the padding
    assert "patch [[0, 0], [0, 1]]" in course.step_view.plain_text()
    assert "+ bias −3 = −3" in course.step_view.plain_text()
    assert course.conv_map.cell_texts()[0][0] == "−3"
    assert course.act_map.cell_texts()[0][0] == "0"  # ReLU


def test_play_runs_to_the_end_and_stops(course, qtbot):
    course.speed_slider.setValue(30)
    qtbot.mouseClick(course.play_button, Qt.MouseButton.LeftButton)
    assert course.play_button.text() == "⏸ Pause"
    qtbot.waitUntil(lambda: not course.play_button.isChecked(), timeout=5_000)
    assert course.step_index == 8
    assert course.play_button.text() == "▶ Play"
    assert not course.step_button.isEnabled()


def test_clicking_a_conv_cell_moves_the_window_there(course, qtbot):
    view = course.conv_map
    scene = view.view.mapViewToScene(QPointF(2.5, 1.5))  # col 2, row 1
    pos = view.graphics.mapFromScene(scene)
    qtbot.mouseClick(view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: course.step_index == 5, timeout=2_000)
    assert course.input_map.highlight_rects("window") == [(1, 2, 2, 2)]


def test_hovering_a_map_reads_out_the_value(course, qtbot):
    view = course.conv_map
    scene = view.view.mapViewToScene(QPointF(1.5, 2.5))  # col 1, row 2 -> 25
    pos = view.graphics.mapFromScene(scene)
    qtbot.mouseMove(view.graphics.viewport(), pos)
    qtbot.waitUntil(lambda: view.readout_label.text() == "row 2, col 1: 25", timeout=2_000)
    assert course.input_map.readout(0, 3) == "row 0, col 3: 4"


def test_impossible_settings_are_explained_and_recover(course, qtbot):
    with qtbot.waitSignal(course.status_message, timeout=IDLE_MS) as message:
        course.dilation_spin.setValue(4)  # a 2×2 kernel spread to 5×5 does not fit a 4×4 input
    assert "larger than the padded input" in message.args[0]
    idle(qtbot, course)
    assert course.conv_map.stack.currentWidget() is course.conv_map.message_label
    assert "larger than the padded input" in course.conv_map.message_label.text()
    assert course.step_count() == 0 and not course.step_button.isEnabled()
    course.dilation_spin.setValue(1)
    idle(qtbot, course)
    assert course.conv_map.cell_texts()[1][1] == "17"


def test_a_typed_matrix_is_used_and_mistakes_are_shown(course, qtbot):
    course.matrix_edit.setPlainText("1 2 3\n4 x 6")
    assert "“x” in row 2 is not a number" in course.matrix_error.text()
    assert course.matrix_combo.currentText() == "(your own)"
    course.matrix_edit.setPlainText("1, 2, 3\n4, 5, 6\n7, 8, 9")
    idle(qtbot, course)
    assert "3×3" in course.input_map.title_label.text()
    assert course.conv_map.cell_texts() == [["6", "8"], ["12", "14"]]


def test_editing_a_kernel_number_makes_a_custom_kernel(course, qtbot):
    course.kernel_editor.set_cell(0, 0, "2")
    assert course.kernel_combo.currentText() == "custom"
    idle(qtbot, course)
    # 2·1 + 1·2 + 1·5 + 0·6 = 9 at the top-left.
    assert course.conv_map.cell_texts()[0][0] == "9"
    course.kernel_editor.set_cell(0, 1, "abc")
    assert course.kernel_editor.kernel()[0, 1] == 1  # the bad entry was refused


def test_kernel_size_spin_grows_the_kernel(course, qtbot):
    course.kernel_editor.size_spin.setValue(3)
    idle(qtbot, course)
    assert course.kernel_editor.kernel().shape == (3, 3)
    assert "2×2" in course.conv_map.title_label.text()
    assert "⌊(4 + 2·0 − 3)/1⌋ + 1 = 2" in course.conv_map.caption_label.text()


@pytest.mark.parametrize(("mode", "value"), [("Average", "12"), ("Sum", "48"), ("Max", "17")])
def test_pooling_modes(course, qtbot, mode, value):
    choose(course.pool_mode_combo, mode)
    idle(qtbot, course)
    assert course.pool_map.cell_texts() == [[value]]  # the one window holds 7, 9, 15 and 17


def test_activation_and_its_parameter(course, qtbot):
    course.bias_spin.setValue(-20)
    choose(course.act_combo, "Leaky ReLU")
    course.act_param_spin.setValue(0.5)
    idle(qtbot, course)
    assert course.conv_map.cell_texts()[0] == ["−13", "−11", "−9"]
    assert course.act_map.cell_texts()[0] == ["−6.5", "−5.5", "−4.5"]
    assert "Leaky ReLU" in course.act_map.title_label.text()
    assert "Leaky ReLU → −6.5" in course.step_view.plain_text()


def test_parameter_comparison_uses_the_core_numbers(course, qtbot):
    cmp = compare_params((1, 4, 4), 2)
    assert cmp.conv == 5 and cmp.dense == 16 * 9 + 9
    text = course.params_label.text()
    assert cmp.conv_formula in text and cmp.dense_formula in text
    assert "31×" in text  # 153 / 5, rounded
    course_text = course.course_params_label.text()
    assert "= 1,216 parameters" in course_text and "= 1,536,000 (without bias)" in course_text


def test_the_cat_in_gray_and_in_rgb(page, qtbot, sample_cat):
    loaded = open_image(sample_cat)
    page.set_image(loaded)
    page.size_spin.setValue(32)
    idle(qtbot, page)
    x = image_to_input(loaded.pixels, "gray", 32)
    assert f"{x.shape[0]}×{x.shape[1]}" in page.input_map.title_label.text()
    assert f"{x.shape[0] - 2}×{x.shape[1] - 2}" in page.conv_map.title_label.text()  # Sobel x, no padding
    assert np.allclose(page.input_map.data, x)

    choose(page.source_combo, "Image — RGB (3 channels)")
    idle(qtbot, page)
    assert f"3×{x.shape[0]}×{x.shape[1]}" in page.input_map.title_label.text()
    assert page.input_map.data.shape == (*x.shape, 3)  # drawn in colour
    assert "R: patch" in page.step_view.plain_text() and "B: patch" in page.step_view.plain_text()
    cmp = compare_params((3, *x.shape), 3)
    assert cmp.conv_formula in page.params_label.text()  # 3·3·3·1 + 1 = 28
    assert cmp.conv == 28


def test_without_an_image_the_page_says_what_to_do(page, qtbot):
    idle(qtbot, page)
    assert "Open an image" in page.input_map.message_label.text()
    assert page.step_count() == 0


def test_rapid_changes_start_few_jobs(course, qtbot, monkeypatch):
    started = []
    original = course._slot.start
    monkeypatch.setattr(course._slot, "start", lambda *a, **k: started.append(1) or original(*a, **k))
    for value in (1, 2, 3, 2, 1, 2):
        course.padding_spin.setValue(value)
    assert course.is_busy()  # the change is pending, and the call returned at once
    idle(qtbot, course)
    assert len(started) == 1
    assert "⌊(4 + 2·2 − 2)/1⌋ + 1 = 7" in course.conv_map.caption_label.text()


def test_prepare_screenshot_shows_a_window_mid_way(page, qtbot, sample_cat):
    page.set_image(open_image(sample_cat))
    page.prepare_screenshot()
    idle(qtbot, page)
    count = page.step_count()
    assert 0.2 * count < page.step_index < 0.8 * count
    assert page.input_map.highlight_rects("window")
    assert page.step_view.step is not None


def test_shutdown_cancels_pending_work(page, qtbot, sample_cat):
    page.set_image(open_image(sample_cat))
    page.size_spin.setValue(512)
    qtbot.waitUntil(lambda: page._slot.busy or not page.is_busy(), timeout=IDLE_MS)
    page.shutdown()
    assert not page._debounce.isActive()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


def test_numbers_can_be_turned_off(course, qtbot):
    course.numbers_check.setChecked(False)
    assert course.conv_map.cell_texts() == [[""] * 3] * 3
    course.numbers_check.setChecked(True)
    assert course.conv_map.cell_texts()[0][0] == "7"


def test_window_highlight_follows_dilation(course, qtbot):
    choose(course.kernel_combo, "identity")
    course.padding_spin.setValue(2)
    course.dilation_spin.setValue(2)
    idle(qtbot, course)
    # A dilated 3×3 window: nine separate taps, two apart.
    rects = course.input_map.highlight_rects("window")
    assert rects == [(r, c, 1, 1) for r in (-2, 0, 2) for c in (-2, 0, 2)]
    assert "2·(3 − 1) − 1" in course.conv_map.caption_label.text()


def test_map_view_api_basics(qtbot):
    from cnn_explorer.qt.widgets.map_view import MapView

    view = MapView("test")
    qtbot.addWidget(view)
    view.resize(300, 300)
    view.show()
    view.set_map(np.array([[-1.0, 2.0], [3.0, -4.0]]), symmetric=True)
    assert view.levels == (-4.0, 4.0)
    assert view.readout(1, 1) == "row 1, col 1: −4"
    view.set_highlight("h", [(0, 1, 1, 1)])
    assert view.highlight_rects("h") == [(0, 1, 1, 1)]
    view.clear_map("nothing here")
    assert view.data is None and view.highlight_rects("h") == []
    with pytest.raises(ValueError):
        view.set_map(np.zeros((2, 2, 2)))


def test_colour_choice_applies_to_every_map(course, qtbot):
    import pyqtgraph as pg

    course.bias_spin.setValue(-17)  # conv values −10 … 10: a diverging map centred on 0
    idle(qtbot, course)
    assert course.conv_map.levels == (-10.0, 10.0)
    assert course.act_map.levels == (-10.0, 10.0)  # ReLU shares the conv colours: negatives turn white
    choose(course.colour_combo, "gray")
    lo, hi = course.conv_map.levels
    assert (lo, hi) == (-10.0, 10.0)  # data range, no longer forced symmetric: here it already is
    assert course.act_map.levels == (0.0, 10.0)  # own range once colours are chosen by hand
    gray = pg.colormap.get("CET-L1")
    assert course.conv_map._cmap.name == gray.name and course.input_map._cmap.name == gray.name
