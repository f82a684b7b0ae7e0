"""The lab's forward pipeline: the course's examples with their own numbers, stages on and off, several
channels and filters against torch, softmax across channels, the pooling step panel, one SGD step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_explorer.core import lab, ops
from cnn_explorer.core.kernels import (
    CHANNEL_MIXES,
    COURSE_KERNEL,
    COURSE_MATRIX,
    KERNEL_PRESETS,
    input_preset,
    kernel_preset,
)
from cnn_explorer.core.lab import (
    COURSE_EXAMPLES,
    LabSettings,
    channel_mixing_filters,
    course_example,
    default_filters,
    filters_from_presets,
    pool_step,
    run_lab,
    sgd_momentum_step,
    softmax_at,
)

COURSE_X = input_preset(COURSE_MATRIX)
COURSE_K = kernel_preset(COURSE_KERNEL)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


# ------------------------------------------------------------------ the course's worked examples
@pytest.mark.parametrize("example", COURSE_EXAMPLES, ids=lambda e: e.key)
def test_course_example_gives_the_notes_numbers(example):
    result = run_lab(example.input, example.settings)
    assert result.output.shape == example.expected_shape
    if example.expected_output is not None:
        assert np.array_equal(result.output, example.expected_output)
    cmp = example.param_comparison()
    if example.expected_params is None:
        assert cmp is None
    else:
        assert cmp is not None and cmp.conv == example.expected_params
    if example.expected_dense_params is not None:
        assert cmp is not None and cmp.dense == example.expected_dense_params
    assert example.title and example.caption
    assert len(example.names) == (0 if result.filters is None else result.filters.shape[0])


def test_course_convolution_and_its_size_formula():
    result = course_example("conv-4x4").run()
    assert np.array_equal(result.output, [[7, 9, 11], [15, 17, 19], [23, 25, 27]])
    (conv,) = result.stages
    assert conv.name == "conv" and conv.size_formula == ("⌊(4 + 2·0 − 2)/1⌋ + 1 = 3",) * 2


def test_max_average_and_sum_pooling_of_the_course_matrix():
    outputs = {key: course_example(key).run() for key in ("max-pool-4x4", "avg-pool-4x4", "sum-pool-4x4")}
    assert np.array_equal(outputs["max-pool-4x4"].output, [[6, 8], [14, 16]])
    assert np.array_equal(outputs["avg-pool-4x4"].output, [[3.5, 5.5], [11.5, 13.5]])
    assert np.array_equal(outputs["sum-pool-4x4"].output, [[14, 22], [46, 54]])
    result = outputs["max-pool-4x4"]
    assert result.filters is None and [s.name for s in result.stages] == ["pool"]
    # the winners: 6 at (1, 1), 8 at (1, 3), 14 at (3, 1), 16 at (3, 3), as flat indices into the 4×4 input
    assert result.winners.tolist() == [[5, 7], [13, 15]]


def test_lenet_layer_one():
    example = course_example("lenet-layer-1")
    result = example.run()
    assert example.input.shape == (32, 32) and result.output.shape == (6, 28, 28)
    assert result.stages[0].size_formula[0] == "⌊(32 + 2·0 − 5)/1⌋ + 1 = 28"
    assert result.param_comparison().conv_formula == "5·5·1·6 + 6 = 156"
    ref = F.conv2d(t(example.input)[None, None], t(result.filters), t(result.biases))[0].numpy()
    np.testing.assert_allclose(result.output, ref, rtol=1e-12, atol=1e-12)


def test_a_conv_layer_against_a_fully_connected_one():
    cmp = course_example("conv-vs-dense").param_comparison()
    assert cmp.conv_formula == "5·5·3·16 + 16 = 1,216"
    assert cmp.dense_formula == "3,072·500 = 1,536,000"
    assert cmp.ratio == pytest.approx(1_536_000 / 1_216)


def test_vertical_and_horizontal_edge_kernels_on_the_vertical_edge():
    result = course_example("edges-6x6").run()
    vertical, horizontal = result.output
    assert np.array_equal(vertical, np.tile([0, 30, 30, 0], (4, 1)))  # the edge lights up in the middle
    assert not horizontal.any()  # nothing changes from top to bottom
    assert course_example("edges-6x6").names == ("vertical edge", "horizontal edge")


def test_unknown_example_lists_the_keys():
    with pytest.raises(ValueError, match="conv-4x4"):
        course_example("nope")


# ------------------------------------------------------------------ stages on and off
def test_old_settings_give_the_old_shapes():
    s = LabSettings(kernel=COURSE_K)
    result = run_lab(COURSE_X, s)
    assert result.conv.shape == (3, 3) and result.pooled.shape == (1, 1) and result.weight.shape == (2, 2)
    rgb = np.stack([COURSE_X, COURSE_X * 2, COURSE_X * 3]).astype(np.float32)
    result = run_lab(rgb, s)
    assert result.weight.shape == (3, 2, 2) and result.conv.shape == (3, 3)
    assert result.filters.shape == (1, 3, 2, 2) and result.conv.dtype == np.float32
    assert np.array_equal(result.conv, run_lab(COURSE_X * 6, s).conv)  # one kernel on every channel, summed


def test_one_filter_given_as_a_bank_on_a_2d_input_still_gives_2d_maps():
    bank = default_filters(COURSE_K, 1, 1)
    result = run_lab(COURSE_X, LabSettings(kernel=COURSE_K).with_filters(bank))
    assert result.conv.shape == (3, 3) and result.maps("conv").shape == (1, 3, 3)


def test_without_a_convolution_the_input_goes_to_the_activation():
    x = COURSE_X - 8.0
    result = run_lab(x, LabSettings(kernel=COURSE_K, conv=False, activation="relu", pool_mode="none"))
    assert np.array_equal(result.output, np.maximum(x, 0))
    assert result.filters is None and result.param_comparison() is None
    assert [s.name for s in result.stages] == ["activation"]
    everything_off = run_lab(x, LabSettings(kernel=COURSE_K, conv=False, activation="none", pool_mode="none"))
    assert np.array_equal(everything_off.output, x) and everything_off.stages == ()
    assert "Every stage is off" in everything_off.messages[0]


def test_stages_list_their_input_output_and_formula():
    s = LabSettings(kernel=np.ones((3, 3)), padding=1, stride=2, pool_mode="avg", pool_size=2)
    result = run_lab(np.arange(49.0).reshape(7, 7), s)
    conv, act, pool = result.stages
    assert (conv.input.shape, conv.output.shape, act.output.shape, pool.output.shape) == (
        (7, 7),
        (4, 4),
        (4, 4),
        (2, 2),
    )
    assert conv.size_formula[0] == "⌊(7 + 2·1 − 3)/2⌋ + 1 = 4" and act.size_formula is None
    assert pool.size_formula[1] == "⌊(4 + 2·0 − 2)/2⌋ + 1 = 2"
    assert conv.title.startswith("Convolution 3×3, 1 filter, stride 2") and act.title == "ReLU"


def test_impossible_settings_say_why():
    with pytest.raises(ValueError, match="larger than the padded input"):
        run_lab(COURSE_X, LabSettings(kernel=np.ones((5, 5))))
    bank = default_filters(COURSE_K, 3, 2)
    with pytest.raises(ValueError, match=r"3 channel.* but the input has 1"):
        run_lab(COURSE_X, LabSettings(kernel=COURSE_K).with_filters(bank))
    with pytest.raises(ValueError, match="one bias per filter"):
        run_lab(COURSE_X, LabSettings(kernel=COURSE_K, weights=np.ones((2, 1, 2, 2)), biases=np.zeros(3)))


# ------------------------------------------------------------------ channels and filters
@pytest.mark.parametrize(("in_channels", "filters"), [(1, 8), (3, 1), (3, 8), (2, 3)])
def test_channels_times_filters_match_torch(in_channels, filters):
    rng = np.random.default_rng(in_channels * 10 + filters)
    x = rng.random((in_channels, 11, 13)) * 255
    bank = default_filters(kernel_preset("Sobel x"), in_channels, filters)
    biases = rng.normal(size=filters)
    s = replace(
        LabSettings(kernel=kernel_preset("Sobel x"), padding=1, activation="tanh"),
        weights=bank.weights,
        biases=biases,
    )
    result = run_lab(x, s)
    ref = torch.tanh(F.conv2d(t(x)[None], t(bank.weights), t(biases), padding=1))
    ref = F.max_pool2d(ref, 2)[0].numpy()
    np.testing.assert_allclose(result.maps("pool"), ref, rtol=1e-10, atol=1e-12)
    assert (
        bank.param_count
        == 3 * 3 * in_channels * filters + filters
        == ops.conv_param_count(3, in_channels, filters)
    )


def test_default_filters_start_with_the_kernel_on_every_channel_then_other_presets():
    bank = default_filters(kernel_preset("Sobel x"), 3, 8)
    assert bank.weights.shape == (8, 3, 3, 3) and bank.names[0] == "Sobel x"
    assert all(np.array_equal(bank.weights[0, c], kernel_preset("Sobel x")) for c in range(3))
    assert bank.names[1:4] == ("Sobel y", "Laplacian", "box blur")
    flat = bank.weights.reshape(8, -1)
    assert len({tuple(row) for row in flat}) == 8  # no filter twice
    assert not bank.biases.any()
    mine = default_filters(np.array([[1.0, 2], [3, 4]]), 1, 8)  # a 2×2: no 3×3 preset fits
    assert mine.names[0] == "your kernel" and mine.weights.shape == (8, 1, 2, 2)
    assert "vertical change" in mine.names and mine.names[-1].startswith("random")
    wide = default_filters(kernel_preset("Gaussian blur 5×5"), 1, 3)
    assert (
        np.array_equal(wide.weights[1, 0, 1:4, 1:4], kernel_preset("Sobel y"))
        and wide.weights[1, 0, 0].sum() == 0
    )


@pytest.mark.parametrize(("channels", "filters", "message"), [(4, 1, "1 to 3"), (1, 0, "at least 1")])
def test_default_filters_refuse_impossible_counts(channels, filters, message):
    with pytest.raises(ValueError, match=message):
        default_filters(COURSE_K, channels, filters)


def test_filters_from_presets_need_one_size():
    with pytest.raises(ValueError, match="share a kernel size"):
        filters_from_presets(["Sobel x", "Gaussian blur 5×5"])


def test_one_by_one_convolution_mixes_the_channels_of_each_pixel():
    rng = np.random.default_rng(2)
    rgb = rng.random((3, 6, 5))
    bank = channel_mixing_filters()
    assert bank.weights.shape == (len(CHANNEL_MIXES), 3, 1, 1) and bank.param_count == len(CHANNEL_MIXES) * 4
    s = LabSettings(kernel=np.ones((1, 1)), activation="none", pool_mode="none").with_filters(bank)
    maps = dict(zip(bank.names, run_lab(rgb, s).output, strict=True))
    r, g, b = rgb
    np.testing.assert_allclose(maps["grey"], 0.299 * r + 0.587 * g + 0.114 * b, rtol=1e-12)
    np.testing.assert_allclose(maps["red minus green"], r - g, rtol=1e-12)
    np.testing.assert_allclose(maps["blue"], b, rtol=1e-12)
    assert channel_mixing_filters(["grey"]).weights.shape == (1, 3, 1, 1)
    with pytest.raises(ValueError, match="unknown channel mix"):
        channel_mixing_filters(["purple"])


# ------------------------------------------------------------------ softmax across channels
def test_softmax_stage_works_across_the_filters_at_every_position():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 7)) * 4
    bank = default_filters(kernel_preset("Sobel x"), 1, 4)
    s = LabSettings(kernel=COURSE_K, activation="softmax", pool_mode="none").with_filters(bank)
    result = run_lab(x, s)
    ref = F.softmax(F.conv2d(t(x)[None, None], t(bank.weights), t(bank.biases)), dim=1)[0].numpy()
    np.testing.assert_allclose(result.output, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.output.sum(axis=0), 1.0, rtol=1e-12)
    assert result.messages == ()


def test_softmax_on_a_single_channel_is_one_everywhere_and_says_so():
    result = run_lab(COURSE_X, LabSettings(kernel=COURSE_K, activation="softmax", pool_mode="none"))
    assert np.array_equal(result.output, np.ones((3, 3)))
    assert result.messages == (lab.SOFTMAX_ONE_CHANNEL,) and "single channel" in result.messages[0]


def test_softmax_at_one_position_writes_out_the_arithmetic():
    maps = np.zeros((2, 1, 1))
    maps[:, 0, 0] = [1.2, 0.5]
    b = softmax_at(maps, 0, 0)
    np.testing.assert_allclose(b.exps, np.exp([1.2, 0.5]), rtol=1e-15)
    assert b.total == pytest.approx(np.exp(1.2) + np.exp(0.5))
    np.testing.assert_allclose(b.probabilities, ops.softmax(np.array([1.2, 0.5])), rtol=1e-15)
    assert b.text == "e^1.2 = 3.32, e^0.5 = 1.649; Σ = 4.969; p = 3.32/4.969 = 0.668, 1.649/4.969 = 0.332"


def test_softmax_at_agrees_with_the_stage_and_shifts_large_values():
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(3, 4, 4)) * 50  # e^150 would be unreadable
    b = softmax_at(maps, 2, 1)
    np.testing.assert_allclose(b.probabilities, ops.softmax_channels(maps)[:, 2, 1], rtol=1e-12)
    assert b.shift == maps[:, 2, 1].max() > 20 and b.text.startswith("shifted by the largest value")
    assert b.exps.max() == 1.0
    assert softmax_at(COURSE_X, 0, 0).probabilities.tolist() == [1.0]
    with pytest.raises(IndexError, match="outside the 4×4"):
        softmax_at(maps, 4, 0)


# ------------------------------------------------------------------ pooling step mode
@pytest.mark.parametrize(
    ("mode", "text"),
    [("max", "max(1, 2, 5, 6) = 6"), ("avg", "(1 + 2 + 5 + 6)/4 = 3.5"), ("sum", "1 + 2 + 5 + 6 = 14")],
)
def test_pool_step_shows_the_window_and_its_arithmetic(mode, text):
    s = LabSettings(kernel=COURSE_K, conv=False, activation="none", pool_mode=mode)
    step = pool_step(COURSE_X, s, 0, 0)
    assert step.text == text and np.array_equal(step.window, [[1, 2], [5, 6]])
    assert step.rows.tolist() == [0, 1] and (step.index, step.count) == (0, 4)
    assert (step.winner == (1, 1)) if mode == "max" else step.winner is None


@pytest.mark.parametrize("mode", ["max", "avg", "sum"])
@pytest.mark.parametrize(("size", "stride", "padding"), [(2, None, 0), (3, 2, 1), (3, 1, 0), (2, 1, 1)])
def test_every_pool_step_equals_the_pooled_map_and_its_winners(mode, size, stride, padding):
    rng = np.random.default_rng(size + padding)
    x = np.round(rng.normal(size=(2, 6, 7)), 1)  # rounded: ties happen, and the first one wins
    s = LabSettings(
        kernel=COURSE_K,
        conv=False,
        activation="none",
        pool_mode=mode,
        pool_size=size,
        pool_stride=stride,
        pool_padding=padding,
    )
    result = run_lab(x, s)
    for c in range(2):
        for r in range(result.pooled.shape[1]):
            for col in range(result.pooled.shape[2]):
                step = pool_step(result.activated, s, r, col, channel=c)
                assert step.value == pytest.approx(result.pooled[c, r, col], rel=1e-12, abs=1e-12)
                if mode == "max":
                    row_won, col_won = divmod(int(result.winners[c, r, col]), x.shape[2])
                    assert step.winner == (row_won, col_won)
                    assert step.window[step.winner_tap] == step.value
                assert np.array_equal(
                    step.in_padding,
                    ~((step.rows >= 0) & (step.rows < 6))[:, None]
                    | ~((step.cols >= 0) & (step.cols < 7))[None, :],
                )


def test_pool_step_padding_shows_minus_infinity_for_max():
    s = LabSettings(kernel=COURSE_K, conv=False, pool_mode="max", pool_size=3, pool_stride=2, pool_padding=1)
    step = pool_step(COURSE_X, s, 0, 0)
    assert step.in_padding[0].all() and np.isneginf(step.window[0]).all()
    assert step.text.startswith("max(−∞, −∞, −∞, −∞, 1, 2") and step.value == 6
    with pytest.raises(IndexError, match="outside the 2×2"):
        pool_step(COURSE_X, s, 2, 0)
    with pytest.raises(ValueError, match="step mode needs"):
        pool_step(COURSE_X, replace(s, pool_mode="none"), 0, 0)


# ------------------------------------------------------------------ SGD with momentum, one step
def test_sgd_momentum_step_by_hand():
    w, v, g = np.array([1.0, -2.0]), np.array([0.5, 0.0]), np.array([0.2, 0.4])
    w_new, v_new = sgd_momentum_step(w, v, g, lr=0.1)
    # v ← 0.9·v − 0.0005·w − 0.1·g, w ← w + v
    np.testing.assert_allclose(v_new, [0.45 - 0.0005 - 0.02, 0 + 0.001 - 0.04], rtol=1e-15)
    np.testing.assert_allclose(w_new, w + v_new, rtol=1e-15)


def test_sgd_momentum_steps_equal_torch_sgd_with_the_decay_divided_by_the_rate():
    rng = np.random.default_rng(8)
    lr, momentum, decay = 0.05, 0.9, 0.0005
    w0 = rng.normal(size=(3, 4))
    param = torch.nn.Parameter(t(w0).clone())
    opt = torch.optim.SGD([param], lr=lr, momentum=momentum, weight_decay=decay / lr)
    w, v = w0, np.zeros_like(w0)
    for _ in range(4):
        grad = rng.normal(size=w0.shape)
        w, v = sgd_momentum_step(w, v, grad, lr, momentum, decay)
        param.grad = t(grad)
        opt.step()
        np.testing.assert_allclose(w, param.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_sgd_momentum_step_checks_shapes():
    with pytest.raises(ValueError, match="one shape"):
        sgd_momentum_step(np.ones(2), np.ones(3), np.ones(2), 0.1)


# ------------------------------------------------------------------ the old names still work
def test_the_pipeline_is_still_importable_from_ops():
    from cnn_explorer.core.ops import LabResult, LabSettings, lab_weight, run_lab

    assert (LabResult, LabSettings, lab_weight, run_lab) == (
        lab.LabResult,
        lab.LabSettings,
        lab.lab_weight,
        lab.run_lab,
    )
    with pytest.raises(AttributeError):
        ops.no_such_name  # noqa: B018


def test_all_six_activations_of_the_notes_are_offered():
    assert {"relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax"} <= set(ops.ACTIVATIONS)
    assert all(a.derivative for a in ops.ACTIVATIONS.values())
    assert set(KERNEL_PRESETS) >= {"Sobel y", "Laplacian", "box blur"}
