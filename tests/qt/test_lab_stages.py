"""The operations lab's stages: switching them off, the course examples' numbers, pooling step mode and its
winners, and depth (channels × filters, one map per output channel), all through the page's widgets."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from cnn_explorer.core.images import open_image
from cnn_explorer.core.kernels import COURSE_KERNEL, COURSE_MATRIX
from cnn_explorer.core.lab import COURSE_EXAMPLES, course_example
from cnn_explorer.core.ops import format_number
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


def example(page: OpsLabPage, qtbot, key: str) -> OpsLabPage:
    """Choose a course example from the menu, as a user would."""
    title = course_example(key).title
    choose(page.example_combo, title)
    idle(qtbot, page)
    return page


def texts(a: np.ndarray) -> list[list[str]]:
    return [[format_number(v) for v in row] for row in np.asarray(a)]


def click(view, row: int, col: int, qtbot) -> None:
    scene = view.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(
        view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=view.graphics.mapFromScene(scene)
    )


@pytest.fixture
def course(page, qtbot):
    choose(page.source_combo, "Typed matrix")
    choose(page.matrix_combo, COURSE_MATRIX)
    choose(page.kernel_combo, COURSE_KERNEL)
    idle(qtbot, page)
    return page


# -- stages on and off ----------------------------------------------------------------------------------
def test_without_convolution_the_input_goes_straight_to_pooling(course, qtbot):
    course.conv_panel.setChecked(False)
    choose(course.act_combo, "None (identity)")
    idle(qtbot, course)
    stages = course.stages
    assert not stages.grid("conv").isVisible() and not stages.grid("activation").isVisible()
    assert stages.grid("pool").isVisible()
    assert (
        "convolution off" in stages.arrows["pool"].text() and "activation off" in stages.arrows["pool"].text()
    )
    assert course.pool_map.cell_texts() == [["6", "8"], ["14", "16"]]
    assert "⌊(4 + 2·0 − 2)/2⌋ + 1 = 2" in course.pool_map.caption_label.text()
    assert course.step_panel.mode() == "pool"  # nothing to convolve: step mode walks the pooling
    assert "no weights" in course.params_label.text()


def test_pooling_off_makes_the_activation_the_output(course, qtbot):
    course.pool_panel.setChecked(False)
    idle(qtbot, course)
    assert not course.stages.grid("pool").isVisible()
    assert "pooling off" in course.stages.arrows["end"].text()
    assert course.stages.last_column() == "activation"
    assert course.act_map.cell_texts() == [["7", "9", "11"], ["15", "17", "19"], ["23", "25", "27"]]
    assert "off" in course.pool_info.text()
    course.pool_panel.setChecked(True)
    idle(qtbot, course)
    assert course.stages.grid("pool").isVisible() and course.pool_map.cell_texts() == [["17"]]


def test_step_mode_comes_back_to_the_convolution_when_it_is_on_again(course, qtbot):
    course.conv_panel.setChecked(False)
    idle(qtbot, course)
    assert course.step_mode() == "pool"  # the convolution is off: nothing else to step through
    course.conv_panel.setChecked(True)
    idle(qtbot, course)
    assert course.step_mode() == "conv"


def test_every_stage_off_shows_the_input_alone(course, qtbot):
    course.conv_panel.setChecked(False)
    choose(course.act_combo, "None (identity)")
    course.pool_panel.setChecked(False)
    idle(qtbot, course)
    assert course.stages.stages_on() == ()
    assert course.input_map.cell_texts()[0] == ["1", "2", "3", "4"]
    assert course.step_count() == 0 and not course.step_button.isEnabled()


# -- the course examples ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [e.key for e in COURSE_EXAMPLES])
def test_each_course_example_shows_the_notes_numbers(page, qtbot, key):
    ex = course_example(key)
    example(page, qtbot, key)
    assert page.current_example() is ex
    assert ex.caption in page.bar.example_caption.text()
    last = page.stages.grid(page.stages.last_column())
    shape = "×".join(str(n) for n in ex.expected_shape)
    assert shape in last.title_label.text()
    if ex.expected_output is not None:
        out = ex.expected_output
        maps = out[None] if out.ndim == 2 else out
        assert last.count == len(maps)
        for k, expected in enumerate(maps):
            assert last.cell_texts(k) == texts(expected)
    if ex.expected_params is not None:
        assert f"= {ex.expected_params:,}" in page.params_label.text()
    if ex.expected_dense_params is not None:
        assert f"= {ex.expected_dense_params:,}" in page.params_label.text()


def test_max_average_and_sum_pooling_of_the_course_matrix(page, qtbot):
    example(page, qtbot, "max-pool-4x4")
    assert page.input_map.cell_texts() == [[str(4 * r + c + 1) for c in range(4)] for r in range(4)]
    assert page.pool_map.cell_texts() == [["6", "8"], ["14", "16"]]
    assert "⌊(4 + 2·0 − 2)/2⌋ + 1 = 2" in page.pool_map.caption_label.text()
    assert not page.conv_panel.isChecked() and not page.stages.grid("conv").isVisible()
    example(page, qtbot, "avg-pool-4x4")
    assert page.pool_map.cell_texts() == [["3.5", "5.5"], ["11.5", "13.5"]]
    example(page, qtbot, "sum-pool-4x4")
    assert page.pool_map.cell_texts() == [["14", "22"], ["46", "54"]]


def test_the_course_convolution_example(page, qtbot):
    example(page, qtbot, "conv-4x4")
    assert page.kernel_combo.currentText() == COURSE_KERNEL
    assert page.conv_map.cell_texts() == [["7", "9", "11"], ["15", "17", "19"], ["23", "25", "27"]]
    assert "⌊(4 + 2·0 − 2)/1⌋ + 1 = 3" in page.conv_map.caption_label.text()
    assert "2·2·1·1 + 1 = 5" in page.params_label.text()


def test_lenet_layer_one(page, qtbot):
    example(page, qtbot, "lenet-layer-1")
    conv = page.stages.grid("conv")
    assert "6×28×28" in conv.title_label.text() and conv.count == 6
    assert "⌊(32 + 2·0 − 5)/1⌋ + 1 = 28" in conv.caption_label.text()
    assert "6 filters → 6 maps" in conv.caption_label.text()
    assert "5·5·1·6 + 6 = 156" in page.params_label.text()
    assert page.depth_panel.bank().filters == 6
    assert all(view.data.shape == (28, 28) for view in conv.views)


def test_a_conv_layer_against_a_dense_one(page, qtbot):
    example(page, qtbot, "conv-vs-dense")
    text = page.params_label.text()
    assert "5·5·3·16 + 16 = 1,216" in text and "3,072·500 = 1,536,000" in text
    assert "500 units" in text
    assert "3×32×32" in page.input_map.title_label.text()
    assert page.stages.grid("conv").count == 16


def test_vertical_and_horizontal_edges(page, qtbot):
    example(page, qtbot, "edges-6x6")
    conv = page.stages.grid("conv")
    assert conv.count == 2
    assert conv.cell_texts(0) == [["0", "30", "30", "0"]] * 4
    assert conv.cell_texts(1) == [["0"] * 4] * 4
    assert "vertical edge" in conv.names[0].text() and "horizontal edge" in conv.names[1].text()
    assert page.kernel_combo.currentText() == "vertical edge"


def test_changing_a_setting_leaves_the_example(page, qtbot):
    example(page, qtbot, "conv-vs-dense")
    page.stride_spin.setValue(2)
    idle(qtbot, page)
    assert page.current_example() is None
    assert page.example_combo.currentIndex() == 0 and not page.bar.example_caption.isVisibleTo(page)
    assert "500 units" not in page.params_label.text()  # back to the same outputs


# -- pooling step mode ------------------------------------------------------------------------------------
def test_pooling_step_mode_shows_the_window_its_values_and_the_winner(page, qtbot):
    example(page, qtbot, "max-pool-4x4")
    page.set_step_mode("pool")
    assert "position 1 of 4" in page.position_label.text()
    page.step_forward()
    assert page.pool_step_view.plain_text() == "max(3, 4, 7, 8) = 8"
    assert page.input_map.highlight_rects("pool") == [(0, 2, 2, 2)]
    assert page.input_map.highlight_rects("winner") == [(1, 3, 1, 1)]
    assert page.pool_map.highlight_rects("pool") == [(0, 1, 1, 1)]
    step = page.pool_step_view.step
    assert step.winner == (1, 3) and step.value == 8


def test_average_pooling_step(page, qtbot):
    example(page, qtbot, "avg-pool-4x4")
    page.set_step_mode("pool")
    assert page.pool_step_view.plain_text() == "(1 + 2 + 5 + 6)/4 = 3.5"
    assert page.input_map.highlight_rects("winner") == []


def test_the_winners_of_max_pooling_are_drawn_on_its_input(page, qtbot):
    example(page, qtbot, "max-pool-4x4")
    assert sorted(page.input_map.highlight_rects("winners")) == [
        (1, 1, 1, 1),
        (1, 3, 1, 1),
        (3, 1, 1, 1),
        (3, 3, 1, 1),
    ]


def test_clicking_a_pooled_cell_steps_the_pooling_there(course, qtbot):
    course.padding_spin.setValue(1)  # a 5×5 convolution, pooled to 2×2
    idle(qtbot, course)
    click(course.pool_map, 1, 0, qtbot)
    qtbot.waitUntil(lambda: course.step_mode() == "pool" and course.step_index == 2, timeout=2_000)
    assert course.act_map.highlight_rects("pool") == [(2, 0, 2, 2)]
    assert "max(5, 15, 9, 23) = 23" in course.pool_step_view.plain_text()


# -- depth ------------------------------------------------------------------------------------------------
def test_rgb_with_four_filters_gives_four_maps(page, qtbot, sample_cat):
    page.set_image(open_image(sample_cat))
    page.size_spin.setValue(24)
    choose(page.source_combo, "Image — RGB (3 channels)")
    idle(qtbot, page)
    assert page.depth_panel.in_channels() == 3
    page.depth_panel.filters_spin.setValue(4)
    idle(qtbot, page)
    inputs, conv, pool = (page.stages.grid(n) for n in ("input", "conv", "pool"))
    assert [label.text() for label in inputs.names] == ["RGB", "R", "G", "B"]
    assert conv.count == 4 and pool.count == 4
    assert "4×" in conv.title_label.text() and "4 filters → 4 maps" in conv.caption_label.text()
    assert "3·3·3·4 + 4 = 112" in page.params_label.text()
    bank = page.depth_panel.bank()
    assert len(page.depth_panel.shown_kernels()) == 4 and len(page.depth_panel.shown_kernels()[0]) == 3
    # Step through filter 3: its own sheet, and its cell on its own map.
    page.step_panel.map_combo.setCurrentIndex(2)
    assert page.step_channel() == 2
    step = page.step_view.step
    assert np.allclose(step.kernel, bank.weights[2])
    assert conv.view(2).highlight_rects("cell") == [(step.out_row, step.out_col, 1, 1)]
    assert conv.view(0).highlight_rects("cell") == []


def test_depth_channels_and_the_image_source_follow_each_other(page, qtbot, sample_cat):
    page.set_image(open_image(sample_cat))
    page.size_spin.setValue(16)
    idle(qtbot, page)
    assert page.input_panel.source_key() == "gray" and page.depth_panel.in_channels() == 1
    page.depth_panel.channels_spin.setValue(3)  # three channels of an image: its RGB
    idle(qtbot, page)
    assert page.input_panel.source_key() == "rgb"
    assert page.input_map.title_label.text().count("3×") == 1
    page.depth_panel.channels_spin.setValue(2)  # the first two: red and green
    idle(qtbot, page)
    assert "2×" in page.input_map.title_label.text()
    assert [label.text() for label in page.stages.grid("input").names] == ["R", "G"]
    page.depth_panel.channels_spin.setValue(1)
    idle(qtbot, page)
    assert page.input_panel.source_key() == "gray"


def test_a_one_by_one_convolution_mixes_the_colours(page, qtbot, sample_cat):
    loaded = open_image(sample_cat)
    page.set_image(loaded)
    page.size_spin.setValue(16)
    choose(page.source_combo, "Image — RGB (3 channels)")
    idle(qtbot, page)
    depth = page.depth_panel
    depth.mode_combo.setCurrentIndex(depth.mode_combo.findData("mixing"))
    idle(qtbot, page)
    bank = depth.bank()
    assert bank.kernel_size == (1, 1) and bank.in_channels == 3
    x = page.input_map.value_at(0, 0)  # R, G, B of the top-left pixel (no padding with a 1×1 kernel)
    conv = page.stages.grid("conv")
    assert conv.count == bank.filters
    for f in range(bank.filters):
        expected = float(np.dot(bank.weights[f, :, 0, 0], x))
        assert conv.view(f).value_at(0, 0) == pytest.approx(expected, rel=1e-5, abs=1e-3)


# -- the screenshot command's states ----------------------------------------------------------------------
def test_the_backward_screenshot_state(page, qtbot):
    page.prepare_backward_screenshot()
    idle(qtbot, page)
    assert page.current_example() is course_example("max-pool-4x4")
    assert page.stages.gradient_grid("input").isVisible()
    assert page.step_mode() == "pool" and page.step_index == 1
    assert "goes to the winner 8" in page.pool_step_view.backward_text()


def test_the_depth_screenshot_state(page, qtbot, sample_cat):
    page.set_image(open_image(sample_cat))
    page.prepare_depth_screenshot()
    idle(qtbot, page)
    assert page.tabs.currentWidget() is page.depth_panel
    assert page.depth_panel.in_channels() == 3 and page.stages.grid("conv").count == 4
    assert page.input_map.highlight_rects("window")
