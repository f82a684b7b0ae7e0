"""The operations lab's backward view, through the page: the gradient maps under every stage agree with
torch autograd, the routing through pooling reads as the notes say, a clicked output cell is the loss,
and the step panel and the kernel gradient show the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPointF, Qt

from cnn_explorer.core.lab import course_example
from cnn_explorer.core.ops import ACTIVATIONS, format_matrix, format_number
from cnn_explorer.qt.pages.ops_lab import OpsLabPage
from cnn_explorer.qt.pages.ops_lab.stages import gradient_number

IDLE_MS = 15_000
FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def page(open_page):
    return open_page(OpsLabPage(), IDLE_MS)


def idle(qtbot, lab: OpsLabPage) -> None:
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=IDLE_MS)


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    assert index >= 0, f"{text!r} not offered"
    combo.setCurrentIndex(index)


def example(page: OpsLabPage, qtbot, key: str, upstream: str = "all ones") -> OpsLabPage:
    choose(page.example_combo, course_example(key).title)
    choose(page.upstream_combo, upstream)
    page.backward_check.setChecked(True)
    idle(qtbot, page)
    return page


def click(view, row: int, col: int, qtbot) -> None:
    scene = view.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(
        view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=view.graphics.mapFromScene(scene)
    )


def shown(page: OpsLabPage, stage: str) -> np.ndarray:
    """The gradient maps the page shows under a stage, as (C, H, W)."""
    grid = page.stages.gradient_grid(stage)
    assert grid.isVisible()
    return np.stack([view.data for view in grid.views])


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def torch_pass(x, weights, stride, padding, activation, pool, pool_size, conv_on, upstream):
    """Forward in torch with the page's settings; backward from ``upstream``. Returns the tensors."""
    x4 = t(x[None, None], grad=True)
    w = t(weights, grad=True)
    b = t(np.zeros(len(weights)), grad=True)
    z = F.conv2d(x4, w, b, stride=stride, padding=padding) if conv_on else x4
    z.retain_grad()
    act = {
        "none": lambda v: v,
        "relu": F.relu,
        "leaky_relu": lambda v: F.leaky_relu(v, ACTIVATIONS["leaky_relu"].default),
        "elu": lambda v: F.elu(v, ACTIVATIONS["elu"].default),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "softmax": lambda v: F.softmax(v, dim=1),
    }[activation]
    a = act(z)
    a.retain_grad()
    if pool == "max":
        y = F.max_pool2d(a, pool_size)
    elif pool == "avg":
        y = F.avg_pool2d(a, pool_size)
    elif pool == "sum":
        y = F.avg_pool2d(a, pool_size, divisor_override=1)
    else:
        y = a
    (y * t(upstream).reshape(y.shape)).sum().backward()
    return x4, w, b, z, a


@st.composite
def lab_cases(draw):
    h, w = draw(st.integers(3, 6)), draw(st.integers(3, 6))
    x = np.array(draw(st.lists(st.integers(-9, 9), min_size=h * w, max_size=h * w)), dtype=float).reshape(
        h, w
    )
    k = draw(st.integers(1, 3))
    kernel = np.array(draw(st.lists(st.integers(-2, 2), min_size=k * k, max_size=k * k)), dtype=float)
    filters = draw(st.integers(1, 2))
    activation = draw(st.sampled_from(["none", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"]))
    if activation == "softmax":
        filters = 2  # softmax compares channels
    return {
        "x": x,
        "kernel": kernel.reshape(k, k),
        "stride": draw(st.integers(1, 2)),
        "padding": draw(st.integers(0, 1)),
        "filters": filters,
        "activation": activation,
        "pool": draw(st.sampled_from(["max", "avg", "sum", "none"])),
        "pool_size": draw(st.integers(1, 2)),
        "conv": draw(st.booleans()) or activation == "softmax",
        "upstream": draw(st.sampled_from(["all ones", "random"])),
    }


def set_up(page: OpsLabPage, qtbot, case: dict) -> None:
    """Put the page into ``case`` through its controls."""
    choose(page.source_combo, "Typed matrix")
    page.matrix_edit.setPlainText(format_matrix(case["x"]))
    page.conv_panel.setChecked(case["conv"])
    page.conv_panel.set_kernel(case["kernel"])
    page.stride_spin.setValue(case["stride"])
    page.padding_spin.setValue(case["padding"])
    page.bias_spin.setValue(0)
    depth = page.depth_panel
    depth.mode_combo.setCurrentIndex(depth.mode_combo.findData("kernel"))
    depth.filters_spin.setValue(case["filters"])
    page.act_combo.setCurrentIndex(list(ACTIVATIONS).index(case["activation"]))
    page.pool_panel.setChecked(case["pool"] != "none")
    if case["pool"] != "none":
        page.pool_mode_combo.setCurrentIndex(page.pool_mode_combo.findData(case["pool"]))
    page.pool_size_spin.setValue(case["pool_size"])
    page.pool_stride_spin.setValue(0)
    choose(page.upstream_combo, case["upstream"])
    page.backward_check.setChecked(True)
    idle(qtbot, page)


@FEW
@given(case=lab_cases())
def test_the_gradient_maps_agree_with_autograd(page, qtbot, case):
    h, w = case["x"].shape
    k = case["kernel"].shape[0]
    # The smaller side of what reaches the pooling (both sides count).
    out = (min(h, w) + 2 * case["padding"] - k) // case["stride"] + 1 if case["conv"] else min(h, w)
    assume(case["pool"] == "none" or out >= case["pool_size"])
    set_up(page, qtbot, case)
    grads = page.gradients()
    assert grads is not None
    if case["upstream"] == "all ones":
        assert np.all(grads.upstream == 1)
    weights = page.depth_panel.bank().weights
    x, wt, b, z, a = torch_pass(
        case["x"],
        weights,
        case["stride"],
        case["padding"],
        case["activation"],
        case["pool"],
        case["pool_size"],
        case["conv"],
        grads.upstream,
    )
    close = {"rtol": 1e-9, "atol": 1e-9}
    assert np.allclose(shown(page, "input")[0], x.grad[0, 0].numpy(), **close)
    if case["activation"] != "none":
        assert np.allclose(shown(page, "activation"), a.grad[0].numpy(), **close)
    if case["conv"]:
        assert np.allclose(shown(page, "conv"), z.grad[0].numpy(), **close)
        assert np.allclose(grads.d_weight, wt.grad.numpy(), **close)
        assert np.allclose(grads.d_bias, b.grad.numpy(), **close)
        # The panel writes out the page's own ∂L/∂W (equal to torch's above; a value torch rounds to
        # 1.7e−18 where the page has 0 is the same number, so the texts compare the page with itself).
        assert page.kernel_panel.matrices()[0] == [
            [format_number(v) for v in row] for row in grads.d_weight[0, 0]
        ]


def test_a_clicked_output_cell_is_the_loss(page, qtbot):
    example(page, qtbot, "max-pool-4x4", upstream="one cell you click")
    click(page.pool_map, 1, 0, qtbot)  # the window 9, 10, 13, 14
    qtbot.waitUntil(
        lambda: page.gradients() is not None and page.gradients().upstream[1, 0] == 1, timeout=IDLE_MS
    )
    idle(qtbot, page)
    assert page.gradients().upstream.tolist() == [[0, 0], [1, 0]]
    expected = [["0"] * 4, ["0"] * 4, ["0"] * 4, ["0", "1", "0", "0"]]  # only 14, the winner, gets it
    assert page.stages.gradient_grid("input").cell_texts() == expected
    assert page.stages.gradient_grid("pool").view(0).highlight_rects("upstream") == [(1, 0, 1, 1)]
    assert "row 1, col 0" in page.stages.gradient_grid("pool").caption_label.text()
    x, *_ = torch_pass(
        course_example("max-pool-4x4").input,
        np.ones((1, 1, 1, 1)),
        1,
        0,
        "none",
        "max",
        2,
        False,
        page.gradients().upstream,
    )
    assert np.array_equal(shown(page, "input")[0], x.grad[0, 0].numpy())
    # Clicking another cell moves the loss there.
    click(page.pool_map, 0, 1, qtbot)
    qtbot.waitUntil(lambda: page.gradients().upstream[0, 1] == 1, timeout=IDLE_MS)
    idle(qtbot, page)
    assert page.stages.gradient_grid("input").cell_texts()[1] == ["0", "0", "0", "1"]  # 8's cell


@pytest.mark.parametrize(
    ("key", "row"),
    [
        ("max-pool-4x4", ["0", "1", "0", "1"]),  # to the winners 6 and 8
        ("avg-pool-4x4", ["0.25"] * 4),  # spread evenly
        ("sum-pool-4x4", ["1"] * 4),  # copied
    ],
)
def test_pooling_routes_the_gradient_as_the_notes_say(page, qtbot, key, row):
    example(page, qtbot, key)
    grid = page.stages.gradient_grid("input")
    assert grid.cell_texts()[1] == row
    assert "back through" in grid.caption_label.text()
    assert page.stages.gradient_grid("pool").cell_texts() == [["1", "1"], ["1", "1"]]
    if key == "max-pool-4x4":
        assert sorted(grid.view(0).highlight_rects("winners")) == [
            (1, 1, 1, 1),
            (1, 3, 1, 1),
            (3, 1, 1, 1),
            (3, 3, 1, 1),
        ]
        assert "winner" in grid.caption_label.text()


def test_relu_passes_no_gradient_where_it_is_flat(page, qtbot):
    example(page, qtbot, "conv-4x4")
    page.bias_spin.setValue(-17)  # conv values −10 … 10
    choose(page.act_combo, "ReLU")
    idle(qtbot, page)
    conv = page.conv_map.data
    dz = shown(page, "conv")[0]
    assert np.all(dz[conv <= 0] == 0) and np.all(dz[conv > 0] == 1)
    caption = page.stages.gradient_grid("conv").caption_label.text()
    assert "f′(x)" in caption and "pass nothing back" in caption


def test_the_step_panel_steps_through_the_backward_pass(page, qtbot):
    example(page, qtbot, "conv-4x4")
    page.set_step_mode("backward")
    assert page.step_count() == 16
    page.set_step_index(5)  # input row 1, col 1
    text = page.step_view.plain_text()
    assert "∂L/∂x[1, 1] = 2" in text and "bias" not in text
    assert page.step_view.step.kernel.tolist() == [[0, 1], [1, 0]]  # the course kernel, turned 180°
    assert page.stages.gradient_grid("input").cell_texts()[1][1] == "2"
    assert page.stages.gradient_grid("input").view(0).highlight_rects("cell") == [(1, 1, 1, 1)]
    assert page.stages.gradient_grid("conv").view(0).highlight_rects("window") == [(0, 0, 2, 2)]
    # A click on ∂L/∂x steps there too.
    click(page.stages.gradient_grid("input").view(0), 3, 3, qtbot)
    qtbot.waitUntil(lambda: page.step_index == 15, timeout=2_000)
    assert "∂L/∂x[3, 3] = 0" in page.step_view.plain_text()  # no upstream cell reaches the corner's tap


def test_the_kernel_gradient_and_one_sgd_step(page, qtbot):
    example(page, qtbot, "conv-4x4")
    # ∂L/∂W with L = Σ outputs: each tap's sum of the inputs it saw; ∂L/∂b = 9 outputs.
    assert page.kernel_panel.isVisible()
    assert page.kernel_panel.matrices() == [[["54", "63"], ["90", "99"]]]
    assert "= 9" in page.kernel_panel.bias_text()
    sgd = page.sgd_panel
    w = page.kernel_editor.kernel().copy()
    assert np.array_equal(sgd.gradient(), [[54, 63], [90, 99]])
    lr = sgd.learning_rate()
    qtbot.mouseClick(sgd.step_button, Qt.MouseButton.LeftButton)
    idle(qtbot, page)
    expected = w + (-0.0005 * w - lr * np.array([[54, 63], [90, 99]]))
    assert np.allclose(page.kernel_editor.kernel(), expected)
    assert page.kernel_combo.currentText() == "custom"
    assert np.allclose(page.depth_panel.bank().weights[0, 0], expected)  # the convolution uses it


def test_the_gradient_row_comes_and_goes_with_the_switch(page, qtbot):
    example(page, qtbot, "max-pool-4x4")
    assert page.stages.gradient_grid("input").isVisible()
    page.backward_check.setChecked(False)
    idle(qtbot, page)
    assert not page.stages.gradient_grid("input").isVisible() and page.gradients() is None
    assert not page.kernel_panel.isVisible()


def test_gradient_numbers_are_short(page, qtbot):
    example(page, qtbot, "max-pool-4x4", upstream="random")
    up = page.gradients().upstream
    assert page.stages.gradient_grid("pool").cell_texts() == [[gradient_number(v) for v in row] for row in up]
    assert "backward:" in page.pool_step_view.plain_text() or page.step_mode() != "pool"
