"""The operations lab's stand-alone widgets, driven like a user: depth and filter banks, activation curves,
softmax at a position, the design calculators and one SGD step at a time. Numbers are checked against
torch and against the notes' formulas written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from cnn_explorer.core.kernels import KERNEL_PRESETS, kernel_preset
from cnn_explorer.core.lab import FilterBank, course_example, softmax_at
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.pages.ops_lab.activation_view import ActivationView
from cnn_explorer.qt.pages.ops_lab.calculators_panel import CalculatorsPanel
from cnn_explorer.qt.pages.ops_lab.depth_panel import DepthPanel
from cnn_explorer.qt.pages.ops_lab.sgd_panel import SgdPanel
from cnn_explorer.qt.pages.ops_lab.softmax_view import SoftmaxView


def choose(combo, text: str) -> None:
    index = combo.findText(text)
    assert index >= 0, f"{text!r} not offered"
    combo.setCurrentIndex(index)


def offered(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def shown(widget, qtbot):
    qtbot.addWidget(widget)
    widget.show()
    return widget


# -- DepthPanel -------------------------------------------------------------------------------------
def test_depth_panel_counts_parameters_of_three_channels_and_four_filters(qtbot):
    panel = shown(DepthPanel(), qtbot)
    with qtbot.waitSignal(panel.changed) as blocker:
        panel.channels_spin.setValue(3)
    assert blocker.args[0].in_channels == 3
    with qtbot.waitSignal(panel.changed) as blocker:
        panel.filters_spin.setValue(4)
    bank = blocker.args[0]
    assert bank is panel.bank()
    assert bank.weights.shape == (4, 3, 3, 3)
    assert bank.param_count == 112
    assert "k·k·C_in·F + F = 3·3·3·4 + 4 = 112" in panel.param_text()
    # Every filter is drawn as its three kernels, the first one being the edited kernel on each channel.
    kernels = panel.shown_kernels()
    assert [len(f) for f in kernels] == [3, 3, 3, 3]
    kernel_texts = [[format_number(v) for v in row] for row in kernel_preset("vertical edge")]
    assert kernels[0] == [kernel_texts] * 3


def test_depth_panel_follows_the_kernel_editor_without_emitting(qtbot):
    panel = shown(DepthPanel(), qtbot)
    panel.set_in_channels(2)
    panel.set_filters(3)
    kernel = np.array([[0.0, 1.0], [1.0, 0.0]])
    with qtbot.assertNotEmitted(panel.changed):
        panel.set_kernel(kernel)
    bank = panel.bank()
    assert bank.weights.shape == (3, 2, 2, 2)
    assert np.array_equal(bank.weights[0, 1], kernel)
    assert "2·2·2·3 + 3 = 27" in panel.param_text()
    panel.set_bias(0.5)
    assert np.array_equal(panel.bank().biases, [0.5, 0.5, 0.5])


def test_one_by_one_preset_mixes_rgb_channels(qtbot):
    panel = shown(DepthPanel(), qtbot)
    panel.filters_spin.setValue(4)
    with qtbot.waitSignal(panel.changed) as blocker:
        choose(panel.mode_combo, "1×1 channel mixing (RGB)")
    bank = blocker.args[0]
    assert panel.in_channels() == 3  # channel mixing needs the red, green and blue channels
    assert bank.weights.shape == (4, 3, 1, 1)
    assert bank.names == ("grey", "red minus green", "blue minus yellow", "red")
    assert "1·1·3·4 + 4 = 16" in panel.param_text()
    choose(panel.choice_combos[3], "mean")
    assert np.allclose(panel.bank().weights[3, :, 0, 0], 1 / 3)
    assert panel.shown_kernels()[1] == [[["1"]], [["−1"]], [["0"]]]
    # A grayscale or typed-matrix input has one channel: the mixing bank cannot apply, the panel falls back.
    panel.set_channel_limit(1)
    assert panel.mode() == "kernel"
    assert panel.bank().weights.shape == (4, 1, 3, 3)


def test_a_preset_per_filter_keeps_one_kernel_size(qtbot):
    panel = shown(DepthPanel(), qtbot)
    panel.filters_spin.setValue(2)
    choose(panel.mode_combo, "a preset per filter")
    choose(panel.choice_combos[0], "Sobel x")
    choose(panel.choice_combos[1], "Laplacian")
    bank = panel.bank()
    assert bank.names == ("Sobel x", "Laplacian")
    assert np.array_equal(bank.weights[1, 0], kernel_preset("Laplacian"))
    with qtbot.waitSignal(panel.changed) as blocker:
        choose(panel.choice_combos[0], "Gaussian blur 5×5")
    assert blocker.args[0].weights.shape == (2, 1, 5, 5)
    fives = [n for n, p in KERNEL_PRESETS.items() if p.array.shape == (5, 5)]
    assert offered(panel.choice_combos[1]) == fives


def test_a_course_examples_bank_is_shown_until_the_user_changes_it(qtbot):
    panel = shown(DepthPanel(), qtbot)
    panel.set_channel_limit(1)
    layer = course_example("conv-vs-dense")  # sixteen 5×5 filters on RGB: more than the panel offers
    panel.set_bank(FilterBank(layer.settings.weights, np.zeros(16), layer.names))
    assert (panel.in_channels(), panel.filters()) == (3, 16)
    assert "5·5·3·16 + 16 = 1,216" in panel.param_text()
    lenet = course_example("lenet-layer-1")
    with qtbot.assertNotEmitted(panel.changed):
        panel.set_bank(FilterBank(lenet.settings.weights, np.zeros(6), lenet.names))
    assert panel.mode() == "given"
    assert panel.bank().weights.shape == (6, 1, 5, 5)
    assert len(panel.shown_kernels()) == 6
    assert "5·5·1·6 + 6 = 156" in panel.param_text()
    with qtbot.waitSignal(panel.changed) as blocker:
        panel.filters_spin.setValue(2)
    assert panel.mode() == "kernel"
    assert blocker.args[0].weights.shape == (2, 1, 3, 3)


# -- ActivationView ---------------------------------------------------------------------------------
def _torch_activation(name: str, param: float | None, x: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return torch.relu(x)
    if name == "leaky_relu":
        return torch.nn.functional.leaky_relu(x, param)
    if name == "elu":
        return torch.nn.functional.elu(x, param)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    # softmax of two channels, the second fixed at 0: channel 1's probability against its value
    return torch.softmax(torch.stack([x, torch.zeros_like(x)]), dim=0)[0]


@pytest.mark.parametrize(
    ("name", "param"),
    [("relu", None), ("leaky_relu", 0.1), ("elu", 0.7), ("sigmoid", None), ("tanh", None), ("softmax", None)],
)
def test_activation_curves_match_torch_autograd(qtbot, name, param):
    view = shown(ActivationView(), qtbot)
    view.set_activation(name, param)
    xs, f = view.f_curve.getData()
    xd, df = view.derivative_curve.getData()
    assert np.array_equal(xs, xd)
    assert 0.0 in xs  # the kinks of ReLU and its kin are sampled at 0 itself
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = _torch_activation(name, param, x)
    y.sum().backward()  # every output depends on its own x only, so x.grad is f′(x)
    assert np.allclose(f, y.detach().numpy(), atol=1e-12)
    assert np.allclose(df, x.grad.numpy(), atol=1e-12)


def test_sigmoid_saturates_and_the_layers_values_are_marked(qtbot):
    view = shown(ActivationView(), qtbot)
    view.set_activation("sigmoid")
    xs, _, df = view.curve()
    assert np.all(df[np.abs(xs) >= 6] < 0.01)  # flat ends: almost no gradient flows back
    assert df[xs == 0][0] == pytest.approx(0.25)
    assert not view.region.isVisible()
    values = np.concatenate([np.full(30, -8.0), np.linspace(-1, 1, 40), np.full(30, 20.0)]).reshape(10, 10)
    view.set_values(values)
    assert view.region.isVisible()
    assert view.region.getRegion() == pytest.approx((-8.0, 20.0))
    xs, _, _ = view.curve()
    assert xs.min() < -8 and xs.max() > 20  # the axis takes in the layer's values
    caption = view.caption_label.text()
    assert "−8 … 20" in caption
    assert "60%" in caption  # the 60 values at −8 and 20 have σ′ < 0.01


def test_softmax_is_labelled_as_a_channel_operation(qtbot):
    view = shown(ActivationView(), qtbot)
    view.set_activation("softmax")
    assert "channel vector" in view.title_label.text()
    assert "x₂ fixed at 0" in view.formula_label.text()
    view.set_activation("relu")
    assert view.title_label.text() == "ReLU"
    with pytest.raises(ValueError, match="unknown activation"):
        view.set_activation("swish")


# -- SoftmaxView ------------------------------------------------------------------------------------
def test_softmax_view_matches_torch_softmax(qtbot):
    view = shown(SoftmaxView(), qtbot)
    maps = np.random.default_rng(3).normal(0, 2, size=(4, 3, 5))
    b = softmax_at(maps, 1, 2)
    view.set_breakdown(b)
    rows = view.rows()
    assert [r[0] for r in rows] == ["channel 1", "channel 2", "channel 3", "channel 4"]
    shown_p = np.array([float(r[3].replace("−", "-")) for r in rows])
    expected = torch.softmax(torch.tensor(maps[:, 1, 2]), dim=0).numpy()
    assert np.allclose(shown_p, expected, atol=1e-4)
    assert shown_p.sum() == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(view.probabilities(), expected, atol=1e-12)
    assert np.allclose(view.bar_values(), expected, atol=1e-3)
    assert view.text_label.text() == b.text
    assert "row 1, col 2" in view.title_label.text()
    view.clear("Softmax needs two or more channels.")
    assert view.rows() == [] and view.breakdown is None
    assert view.message_label.text() == "Softmax needs two or more channels."


def test_softmax_view_says_when_large_values_are_shifted(qtbot):
    view = shown(SoftmaxView(), qtbot)
    maps = np.array([100.0, 99.0, 90.0]).reshape(3, 1, 1)
    view.set_breakdown(softmax_at(maps, 0, 0), ["cat", "dog", "car"])
    assert view.table.horizontalHeaderItem(2).text() == "e^(xᵢ − 100)"
    expected = torch.softmax(torch.tensor([100.0, 99.0, 90.0], dtype=torch.float64), dim=0).numpy()
    assert np.allclose(view.probabilities(), expected)
    assert view.rows()[0][0] == "cat"


# -- CalculatorsPanel -------------------------------------------------------------------------------
def test_calculators_for_64_channels(qtbot):
    panel = shown(CalculatorsPanel(), qtbot)
    panel.set_channels(64, 64, 5)
    stacked = panel.comparisons()["stacked"]
    assert stacked.baseline.params == 25 * 64 * 64 == 102_400
    assert stacked.alternative.params == 2 * 9 * 64 * 64 == 73_728
    text = panel.shown_text("stacked")
    assert "102,400" in text and "73,728" in text
    assert "3·3·64·64 + 3·3·64·64 = 73,728" in text
    assert "×0.720 the parameters (28% fewer)" in text
    panel.kernel_spin.setValue(3)  # as the user types it
    depthwise = panel.comparisons()["depthwise"]
    assert depthwise.baseline.params == 9 * 64 * 64
    assert depthwise.alternative.params == 3 * 3 * 64 + 64 * 64
    text = panel.shown_text("depthwise")
    assert "3·3·64 + 64·64 = 4,672" in text
    assert f"{9 * 64 * 64:,}" in text
    assert f"{9 * 64 * 64 * 32 * 32:,}" in text  # multiply-adds for a 32×32 output
    assert f"{(3 * 3 * 64 + 64 * 64) * 32 * 32:,}" in text
    # One 3×3 has nothing to stack: the block says why instead of showing numbers.
    assert isinstance(panel.comparisons()["stacked"], str)
    assert "≥ 5" in panel.shown_text("stacked")


def test_calculators_bottleneck_asymmetric_and_receptive_field(qtbot):
    panel = shown(CalculatorsPanel(), qtbot)
    panel.set_channels(192, 32, 5)
    panel.height_spin.setValue(28)
    panel.width_spin.setValue(28)
    panel.mid_spin.setValue(16)
    neck = panel.comparisons()["bottleneck"]
    assert neck.baseline.macs == 5 * 5 * 192 * 32 * 28 * 28  # the notes' 120 million
    assert neck.alternative.macs == (192 * 16 + 5 * 5 * 16 * 32) * 28 * 28  # and 12.4 million
    assert f"{neck.baseline.macs:,}" in panel.shown_text("bottleneck")
    panel.set_channels(64, 64, 3)
    assert panel.comparisons()["asymmetric"].alternative.params == 3 * 64 * 64 * 2
    assert panel.receptive().size == 7
    assert "r = 1 + 3·(3 − 1) = 7" in panel.shown_text("receptive")
    panel.stride_spin.setValue(2)
    assert panel.receptive().sizes == (3, 7, 15)
    assert "15×15" in panel.shown_text("receptive")


# -- SgdPanel ---------------------------------------------------------------------------------------
def test_sgd_step_is_the_notes_formula_and_momentum_accumulates(qtbot):
    panel = shown(SgdPanel(), qtbot)
    assert not panel.step_button.isEnabled()
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    g = np.array([[0.2, -0.4], [1.0, 0.0]])
    panel.set_state(w, None)
    assert not panel.step_button.isEnabled()  # no gradient yet: nothing to step down
    panel.set_state(w, g)
    panel.lr_spin.setValue(0.1)
    with qtbot.waitSignal(panel.kernel_stepped) as blocker:
        qtbot.mouseClick(panel.step_button, Qt.MouseButton.LeftButton)
    v1 = 0.9 * 0 - 0.0005 * w - 0.1 * g
    w1 = w + v1
    assert np.allclose(blocker.args[0], w1, atol=1e-15)
    assert np.allclose(panel.velocity(), v1, atol=1e-15)
    assert panel.steps() == 1
    assert panel.w_grid.texts() == [[format_number(v, 4) for v in row] for row in w1]
    assert "row 1, col 0" in panel.arithmetic_label.text()  # the cell with the largest gradient

    # The page puts w1 into the editor and hands back the gradient there; v is kept.
    panel.set_state(w1, g)
    with qtbot.waitSignal(panel.kernel_stepped) as blocker:
        qtbot.mouseClick(panel.step_button, Qt.MouseButton.LeftButton)
    v2 = 0.9 * v1 - 0.0005 * w1 - 0.1 * g
    w2 = w1 + v2
    assert np.allclose(blocker.args[0], w2, atol=1e-15)
    assert np.all(np.abs(v2[g != 0]) > np.abs(v1[g != 0]))  # the same gradient goes further the 2nd time

    qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    assert np.array_equal(panel.velocity(), np.zeros((2, 2)))
    assert panel.steps() == 0


def test_sgd_steps_agree_with_torch_sgd(qtbot):
    """torch.optim.SGD with momentum 0.9 and weight_decay 0.0005/lr takes the same steps (core's doc)."""
    panel = shown(SgdPanel(), qtbot)
    lr = 0.05
    panel.lr_spin.setValue(lr)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3))
    param = torch.nn.Parameter(torch.tensor(w))
    optimiser = torch.optim.SGD([param], lr=lr, momentum=0.9, weight_decay=0.0005 / lr)
    current = w
    for _ in range(3):
        g = rng.normal(size=(3, 3))
        panel.set_state(current, g)
        with qtbot.waitSignal(panel.kernel_stepped) as blocker:
            panel.step_button.click()
        current = blocker.args[0]
        param.grad = torch.tensor(g)
        optimiser.step()
        assert np.allclose(current, param.detach().numpy(), atol=1e-12)
