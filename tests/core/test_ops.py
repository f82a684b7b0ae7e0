"""Convolution / activation / pooling arithmetic: the course's worked examples exactly, torch for the rest."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnn_explorer.core import ops
from cnn_explorer.core.kernels import COURSE_KERNEL, COURSE_MATRIX, input_preset, kernel_preset

# 2 shared CPU cores: keep property tests modest.
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COURSE_X = np.arange(1, 17).reshape(4, 4)
COURSE_K = np.array([[0, 1], [1, 0]])


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


# ------------------------------------------------------------------ the course's worked examples
def test_course_convolution_example_exact():
    out = ops.conv2d(COURSE_X, COURSE_K, stride=1, padding=0)
    assert out.shape == (3, 3)
    assert np.array_equal(out, [[7, 9, 11], [15, 17, 19], [23, 25, 27]])


def test_course_presets_are_the_worked_example():
    assert np.array_equal(input_preset(COURSE_MATRIX), COURSE_X)
    assert np.array_equal(kernel_preset(COURSE_KERNEL), COURSE_K)


def test_course_max_pool_example_exact():
    out, winners = ops.pool2d(COURSE_X, 2, stride=2, mode="max", return_indices=True)
    assert np.array_equal(out, [[6, 8], [14, 16]])
    # The winners are the bottom-right element of each window: 6 is at row 1, col 1 -> flat index 5.
    assert np.array_equal(winners, [[5, 7], [13, 15]])


def test_course_parameter_counts():
    assert ops.conv_param_count(5, in_channels=3, filters=16) == 1216
    assert ops.dense_param_count(32 * 32 * 3, 500, bias=False) == 1_536_000


def test_output_size_formula_text_matches_issue_example():
    assert ops.output_size_formula(4, 2, stride=1, padding=0) == "⌊(4 + 2·0 − 2)/1⌋ + 1 = 3"


# ------------------------------------------------------------------ output size
@pytest.mark.parametrize(
    ("args", "expected"),
    [((4, 2), 3), ((32, 3, 1, 1), 32), ((7, 3, 2), 3), ((224, 7, 2, 3), 112), ((10, 3, 1, 0, 2), 6)],
)
def test_output_size_known_values(args, expected):
    assert ops.output_size(*args) == expected


def test_output_size_formula_with_dilation_and_stride():
    text = ops.output_size_formula(32, 3, stride=2, padding=1, dilation=2)
    assert text == "⌊(32 + 2·1 − 2·(3 − 1) − 1)/2⌋ + 1 = 15"
    assert ops.output_size(32, 3, 2, 1, 2) == 15


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((4, 5), "larger than the padded input"),
        ((4, 3, 1, 0, 3), "dilation 3"),
        ((4, 2, 0), "stride must be at least 1"),
        ((4, 2, 1, -1), "padding must be at least 0"),
        ((0, 1), "input size must be at least 1"),
        ((4, 0), "kernel size must be at least 1"),
        ((4, 2.5), "whole number"),
    ],
)
def test_output_size_rejects_impossible_settings_clearly(args, words):
    with pytest.raises(ValueError, match=words):
        ops.output_size(*args)
    with pytest.raises(ValueError, match=words):
        ops.output_size_formula(*args)


@FEW
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 7),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 3),
)
def test_output_size_matches_torch(n, k, s, p, d):
    assume(d * (k - 1) + 1 <= n + 2 * p)
    out = F.conv2d(torch.zeros(1, 1, n, 1), torch.zeros(1, 1, k, 1), stride=s, padding=(p, 0), dilation=d)
    assert ops.output_size(n, k, s, p, d) == out.shape[2]
    assert ops.output_size_formula(n, k, s, p, d).endswith(f"= {out.shape[2]}")


# ------------------------------------------------------------------ convolution vs torch
@st.composite
def conv_case(draw):
    c = draw(st.integers(1, 3))
    f = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 14))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 14))
    seed = draw(st.integers(0, 2**31 - 1))
    return c, f, (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw), seed


@FEW
@given(conv_case(), st.booleans())
def test_conv2d_matches_torch_filter_bank(case, with_bias):
    c, f, (h, w), (kh, kw), stride, padding, dilation, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c, h, w))
    weight = rng.normal(size=(f, c, kh, kw))
    bias = rng.normal(size=f) if with_bias else None
    ours = ops.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
    ref = F.conv2d(
        t(x)[None],
        t(weight),
        None if bias is None else t(bias),
        stride=stride,
        padding=padding,
        dilation=dilation,
    )[0].numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


@FEW
@given(conv_case())
def test_conv2d_single_filter_shapes_match_torch(case):
    c, _, (h, w), (kh, kw), stride, padding, dilation, seed = case
    rng = np.random.default_rng(seed)
    s, p, d = stride[0], padding[0], dilation[0]  # int arguments, same on both axes
    assume(d * (kh - 1) + 1 <= h + 2 * p and d * (kw - 1) + 1 <= w + 2 * p)
    x2 = rng.normal(size=(h, w))
    k2 = rng.normal(size=(kh, kw))
    ref2 = F.conv2d(t(x2)[None, None], t(k2)[None, None], stride=s, padding=p, dilation=d)[0, 0].numpy()
    out2 = ops.conv2d(x2, k2, 0.5, stride=s, padding=p, dilation=d)
    assert out2.shape == ref2.shape  # a single 2-D kernel gives a single 2-D map
    np.testing.assert_allclose(out2, ref2 + 0.5, rtol=1e-10, atol=1e-10)

    x3 = rng.normal(size=(c, h, w))
    k3 = rng.normal(size=(c, kh, kw))
    ref3 = F.conv2d(t(x3)[None], t(k3)[None], stride=s, padding=p, dilation=d)[0, 0].numpy()
    out3 = ops.conv2d(x3, k3, stride=s, padding=p, dilation=d)
    assert out3.shape == ref3.shape
    np.testing.assert_allclose(out3, ref3, rtol=1e-10, atol=1e-10)


def test_conv2d_keeps_images_in_float32_and_integers_exact():
    img = np.random.default_rng(0).integers(0, 256, size=(3, 20, 20), dtype=np.uint8)
    k = np.ones((3, 3, 3), dtype=np.float32)
    assert ops.conv2d(img, k, bias=1.0).dtype == np.float32
    ints = ops.conv2d(COURSE_X, COURSE_K, bias=1)
    assert ints.dtype == np.float64 and np.array_equal(
        ints, np.array([[7, 9, 11], [15, 17, 19], [23, 25, 27]]) + 1
    )


def test_conv2d_large_image_close_to_torch_in_float32():
    rng = np.random.default_rng(1)
    x = rng.random((3, 96, 80), dtype=np.float32) * 255
    k = rng.normal(size=(3, 5, 5)).astype(np.float32)
    ours = ops.conv2d(x, k, stride=2, padding=2)
    ref = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(k)[None], stride=2, padding=2)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "words"),
    [
        ((3, 5, 5), (3, 3), "single-channel input"),
        ((2, 5, 5), (3, 3, 3), "kernel has 3 channels but the input has 2"),
        ((5,), (3, 3), "input must be"),
        ((5, 5), (1, 1, 1, 1, 3), "kernel must be"),
        ((3, 3), (4, 4), "larger than the padded input"),
    ],
)
def test_conv2d_rejects_mismatched_shapes(x_shape, w_shape, words):
    with pytest.raises(ValueError, match=words):
        ops.conv2d(np.zeros(x_shape), np.zeros(w_shape))


def test_fractional_settings_are_rejected_not_truncated():
    with pytest.raises(ValueError, match="stride must be a whole number"):
        ops.conv2d(COURSE_X, COURSE_K, stride=1.5)
    with pytest.raises(ValueError, match="padding must be a whole number"):
        ops.pool2d(COURSE_X, 2, padding=(0.5, 0))


def test_conv2d_rejects_wrong_bias_length():
    with pytest.raises(ValueError, match="one value per filter"):
        ops.conv2d(np.zeros((1, 5, 5)), np.zeros((2, 1, 3, 3)), bias=np.zeros(3))


# ------------------------------------------------------------------ pooling vs torch
@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.none() | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 13))
    w = draw(st.integers(max(1, kw - 2 * pw), 13))
    c = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    return (c, h, w), (kh, kw), stride, (ph, pw), seed


@FEW
@given(pool_case(), st.booleans())
def test_max_pool_and_winners_match_torch(case, with_ties):
    shape, size, stride, padding, seed = case
    rng = np.random.default_rng(seed)
    # Small integers make ties common: the winner must still be the one torch picks (the first).
    x = rng.integers(0, 3, size=shape).astype(np.float64) if with_ties else rng.normal(size=shape)
    ours, winners = ops.pool2d(x, size, stride, "max", padding, return_indices=True)
    ref, ref_idx = F.max_pool2d(t(x), size, stride, padding, return_indices=True)
    np.testing.assert_array_equal(ours, ref.numpy())
    np.testing.assert_array_equal(winners, ref_idx.numpy())


def test_max_pool_propagates_nan_like_torch():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 9, 9))
    x[rng.random(x.shape) < 0.25] = np.nan  # some windows hold several NaNs: torch reports the last one
    ours, winners = ops.pool2d(x, 3, 2, "max", 1, return_indices=True)
    ref, ref_idx = F.max_pool2d(t(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours, ref.numpy())
    np.testing.assert_array_equal(winners, ref_idx.numpy())
    np.testing.assert_array_equal(ops.pool2d(x, 3, 2, "max", 1), ref.numpy())


@pytest.mark.parametrize(
    ("size", "stride", "padding"),
    [(2, None, 0), (3, 2, 1), (2, 1, 0), (3, None, 1), ((2, 3), (1, 2), (1, 0))],
)
def test_max_pool_of_image_maps_in_float32_equals_torch_exactly(size, stride, padding):
    """An image's maps after ReLU: float32, large, full of tied zeros. The maxima and every winner are
    torch's, bit for bit (a maximum involves no rounding); the winners come as torch's int64."""
    rng = np.random.default_rng(3)
    x = np.maximum(rng.normal(size=(8, 130, 127)), 0).astype(np.float32)
    x[:, ::7] = np.round(x[:, ::7])  # whole rows of small integers: ties that are not zero
    ours, winners = ops.pool2d(x, size, stride, "max", padding, return_indices=True)
    ref, ref_idx = F.max_pool2d(torch.from_numpy(x)[None], size, stride, padding, return_indices=True)
    assert ours.dtype == np.float32 and winners.dtype == np.int64
    np.testing.assert_array_equal(ours, ref[0].numpy())
    np.testing.assert_array_equal(winners, ref_idx[0].numpy())
    np.testing.assert_array_equal(ops.pool2d(x, size, stride, "max", padding), ref[0].numpy())


def test_max_pool_of_float32_maps_with_nan_equals_torch():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 64, 66)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    ours, winners = ops.pool2d(x, 3, 2, "max", 1, return_indices=True)
    ref, ref_idx = F.max_pool2d(torch.from_numpy(x)[None], 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(ours, ref[0].numpy())
    np.testing.assert_array_equal(winners, ref_idx[0].numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("size", "stride", "padding"), [(3, 2, 1), (2, 2, 1), (3, 3, 1)])
def test_windows_of_minus_infinity_win_at_their_first_real_cell_as_in_torch(dtype, size, stride, padding):
    """Padding is −∞ too, so a window whose real cells are all −∞ must not be won by a padding tap
    (torch keeps the window's first real cell); the gradient then goes to a real cell."""
    x = np.full((2, 5, 6), -np.inf, dtype=dtype)
    x[0, 4, 5] = 1.0
    x[1, 2, 3] = -np.inf
    ours, winners = ops.pool2d(x, size, stride, "max", padding, return_indices=True)
    ref, ref_idx = F.max_pool2d(torch.from_numpy(x)[None], size, stride, padding, return_indices=True)
    np.testing.assert_array_equal(ours, ref[0].numpy())
    np.testing.assert_array_equal(winners, ref_idx[0].numpy())
    grad = np.arange(1.0, ours.size + 1).reshape(ours.shape)
    xt = torch.from_numpy(x.astype(np.float64))[None].requires_grad_(True)
    F.max_pool2d(xt, size, stride, padding).backward(torch.from_numpy(grad)[None])
    np.testing.assert_allclose(ops.pool2d_backward(x, grad, size, stride, "max", padding), xt.grad[0].numpy())


def test_max_pool_one_by_one_gives_a_copy_not_a_view():
    x = np.arange(12.0).reshape(3, 4)
    out, winners = ops.pool2d(x, 1, return_indices=True)
    assert np.array_equal(out, x) and not np.shares_memory(out, x)
    assert np.array_equal(winners, np.arange(12).reshape(3, 4))
    assert not np.shares_memory(ops.pool2d(x, 1), x)


@FEW
@given(pool_case(), st.sampled_from(["avg", "sum"]))
def test_avg_and_sum_pool_match_torch(case, mode):
    shape, size, stride, padding, seed = case
    x = np.random.default_rng(seed).normal(size=shape)
    ours = ops.pool2d(x, size, stride, mode, padding)
    ref = F.avg_pool2d(t(x), size, stride, padding, count_include_pad=True).numpy()
    if mode == "sum":
        ref = ref * size[0] * size[1]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_pool2d_stride_defaults_to_size_and_2d_inputs_work():
    x = np.arange(36.0).reshape(6, 6)
    assert ops.pool2d(x, 3).shape == (2, 2)
    assert ops.pool2d(x, 3, stride=1).shape == (4, 4)
    assert np.array_equal(ops.pool2d(COURSE_X, 2, mode="sum"), [[14, 22], [46, 54]])
    assert np.array_equal(ops.pool2d(COURSE_X, 2, mode="avg"), [[3.5, 5.5], [11.5, 13.5]])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"size": 2, "padding": 2}, "at most half the window"),
        ({"size": 2, "mode": "median"}, "max, avg, sum"),
        ({"size": 2, "mode": "avg", "return_indices": True}, "only max pooling"),
        ({"size": 5}, "larger than the padded input"),
    ],
)
def test_pool2d_rejects_bad_settings(kwargs, words):
    with pytest.raises(ValueError, match=words):
        ops.pool2d(COURSE_X, **kwargs)


# ------------------------------------------------------------------ gradient through pooling vs autograd
def _torch_pool_grad(x, grad_out, size, stride, padding, mode):
    xt = t(x).requires_grad_(True)
    if mode == "max":
        y = F.max_pool2d(xt, size, stride, padding)
    else:
        y = F.avg_pool2d(xt, size, stride, padding, count_include_pad=True)
        if mode == "sum":
            y = y * (size[0] * size[1])
    y.backward(t(grad_out))
    return xt.grad.numpy()


@FEW
@given(pool_case(), st.sampled_from(["max", "avg", "sum"]))
def test_pool2d_backward_matches_autograd(case, mode):
    shape, size, stride, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    out = ops.pool2d(x, size, stride, mode, padding)
    grad_out = rng.normal(size=out.shape)
    ours = ops.pool2d_backward(x, grad_out, size, stride, mode, padding)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, _torch_pool_grad(x, grad_out, size, stride, padding, mode), atol=1e-12)


def test_pool2d_backward_course_example_routes_to_winners():
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    grad = ops.pool2d_backward(COURSE_X, g, 2, mode="max")
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1, 2, 3, 4
    assert np.array_equal(grad, expected)
    assert np.array_equal(ops.pool2d_backward(COURSE_X, g, 2, mode="avg")[:2, :2], np.full((2, 2), 0.25))
    assert np.array_equal(ops.pool2d_backward(COURSE_X, g, 2, mode="sum")[2:, 2:], np.full((2, 2), 4.0))


def test_pool2d_backward_overlapping_windows_add_up_on_a_shared_winner():
    x = np.zeros((3, 3))
    x[1, 1] = 5  # the centre wins all four overlapping 2×2 windows
    grad = ops.pool2d_backward(x, np.ones((2, 2)), 2, stride=1)
    assert grad[1, 1] == 4 and grad.sum() == 4


@pytest.mark.parametrize(("size", "stride"), [(2, None), (3, 2)])
def test_pool2d_backward_of_image_maps_in_float32_equals_autograd_exactly(size, stride):
    """Side-by-side windows: each gradient goes to its winner, autograd's float32 numbers bit for bit.
    Overlapping windows: a cell can win several, and their gradients add up (within float32 rounding)."""
    rng = np.random.default_rng(4)
    x = np.maximum(rng.normal(size=(8, 96, 90)), 0).astype(np.float32)
    out, winners = ops.pool2d(x, size, stride, "max", 0, return_indices=True)
    g = rng.normal(size=out.shape).astype(np.float32)
    ours = ops.pool2d_backward(x, g, size, stride, "max", 0, winners)
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    F.max_pool2d(xt, size, stride).backward(torch.from_numpy(g)[None])
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, xt.grad[0].numpy(), rtol=1e-6, atol=1e-6)
    if stride is None:
        np.testing.assert_array_equal(ours, xt.grad[0].numpy())


def test_pool2d_backward_rejects_wrong_gradient_shape():
    with pytest.raises(ValueError, match="pooled shape"):
        ops.pool2d_backward(COURSE_X, np.ones((3, 3)), 2)


# ------------------------------------------------------------------ activations vs torch
ACT_VALUES = np.concatenate([np.linspace(-30, 30, 241), [0.0, -0.0, 1e-8, -1e-8]])


@pytest.mark.parametrize(
    ("name", "param", "reference"),
    [
        ("relu", None, F.relu),
        ("leaky_relu", 0.2, lambda x: F.leaky_relu(x, 0.2)),
        ("leaky_relu", None, lambda x: F.leaky_relu(x, 0.01)),
        ("elu", 0.7, lambda x: F.elu(x, 0.7)),
        ("elu", None, F.elu),
        ("sigmoid", None, torch.sigmoid),
        ("tanh", None, torch.tanh),
        ("none", None, lambda x: x),
    ],
)
def test_activations_match_torch(name, param, reference):
    ours = ops.activate(ACT_VALUES, name, param)
    np.testing.assert_allclose(ours, reference(t(ACT_VALUES)).numpy(), rtol=1e-12, atol=1e-15)


@FEW
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=20), st.floats(0.001, 3))
def test_parametrised_activations_match_torch_on_random_values(values, param):
    v = np.array(values)
    np.testing.assert_allclose(ops.leaky_relu(v, param), F.leaky_relu(t(v), param).numpy(), rtol=1e-12)
    np.testing.assert_allclose(ops.elu(v, param), F.elu(t(v), param).numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ops.softmax(v), torch.softmax(t(v), 0).numpy(), rtol=1e-10, atol=1e-15)


def test_softmax_over_a_vector_and_along_an_axis():
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ops.softmax(v), [0.09003057, 0.24472847, 0.66524096], rtol=1e-7)
    m = np.random.default_rng(3).normal(size=(4, 5)) * 100
    np.testing.assert_allclose(
        ops.softmax(m, axis=0), torch.softmax(t(m), 0).numpy(), rtol=1e-10, atol=1e-300
    )
    assert ops.softmax(np.array([1000, 1001])).sum() == pytest.approx(1.0)  # no overflow


def test_activations_on_extreme_values_do_not_warn():
    big = np.array([-1e4, -800.0, 800.0, 1e4], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(ops.sigmoid(big), [0, 0, 1, 1])
        assert np.all(np.isfinite(ops.elu(big)))


def test_activate_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="relu"):
        ops.activate(ACT_VALUES, "swish")


def test_every_listed_activation_runs_and_keeps_shape():
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    for name, act in ops.ACTIVATIONS.items():
        assert ops.activate(x, name).shape == x.shape
        assert act.label and act.formula


# ------------------------------------------------------------------ step mode
def test_conv_steps_course_example_in_reading_order():
    steps = list(ops.conv_steps(COURSE_X, COURSE_K))
    assert all(dataclasses.is_dataclass(s) for s in steps)
    assert [s.value for s in steps] == [7, 9, 11, 15, 17, 19, 23, 25, 27]
    s = steps[4]  # the centre output: window rows 1-2, cols 1-2 = [[6, 7], [10, 11]]
    assert (s.out_row, s.out_col, s.count) == (1, 1, 9)
    assert s.rows.tolist() == [1, 2] and s.cols.tolist() == [1, 2]
    assert np.array_equal(s.patch, [[6, 7], [10, 11]])
    assert np.array_equal(s.products, [[0, 7], [10, 0]])
    assert s.total == 17 and s.bias == 0 and not s.in_padding.any()


def test_conv_step_with_padding_marks_padding_taps_as_zero():
    s = ops.conv_step(COURSE_X, np.ones((3, 3)), 0, bias=0.5, padding=1)
    assert s.rows.tolist() == [-1, 0, 1] and s.cols.tolist() == [-1, 0, 1]
    assert s.in_padding.tolist() == [[True, True, True], [True, False, False], [True, False, False]]
    assert np.array_equal(s.patch, [[0, 0, 0], [0, 1, 2], [0, 5, 6]])
    assert s.total == 14 and s.value == 14.5


@FEW
@given(conv_case(), st.floats(-2, 2))
def test_every_step_equals_the_convolution_output(case, bias):
    c, _, (h, w), (kh, kw), stride, padding, dilation, seed = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c, h, w))
    k = rng.normal(size=(c, kh, kw))
    full = ops.conv2d(x, k, bias, stride, padding, dilation)
    steps = list(ops.conv_steps(x, k, bias, stride, padding, dilation))
    assert len(steps) == full.size
    for s in steps:
        assert s.value == pytest.approx(full[s.out_row, s.out_col], abs=1e-9)
        np.testing.assert_allclose(s.products, s.patch * k)
        assert s.total == pytest.approx(s.products.sum())
    assert [(s.out_row, s.out_col) for s in steps] == [divmod(i, full.shape[1]) for i in range(full.size)]


def test_conv_step_dilation_spreads_the_window():
    x = np.arange(49.0).reshape(7, 7)
    s = ops.conv_step(x, np.ones((3, 3)), 0, stride=2, dilation=2)
    assert s.rows.tolist() == [0, 2, 4] and s.cols.tolist() == [0, 2, 4]
    s = ops.conv_step(x, np.ones((3, 3)), 1, stride=2, dilation=2)
    assert s.cols.tolist() == [2, 4, 6]


def test_conv_step_rejects_out_of_range_index_and_bad_shapes():
    with pytest.raises(IndexError, match="outside 0…8"):
        ops.conv_step(COURSE_X, COURSE_K, 9)
    with pytest.raises(ValueError, match="step mode needs"):
        ops.conv_step(np.zeros((2, 4, 4)), COURSE_K, 0)


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    ("c", "h", "k", "f", "s", "p"), [(3, 32, 5, 16, 1, 0), (1, 4, 2, 1, 1, 0), (3, 9, 3, 4, 2, 1)]
)
def test_compare_params_matches_torch_layers(c, h, k, f, s, p):
    cmp = ops.compare_params((c, h, h), k, filters=f, stride=s, padding=p)
    conv = torch.nn.Conv2d(c, f, k, stride=s, padding=p)
    out = conv(torch.zeros(1, c, h, h))
    dense = torch.nn.Linear(c * h * h, out.numel())
    assert cmp.conv == sum(p.numel() for p in conv.parameters())
    assert cmp.dense == sum(p.numel() for p in dense.parameters())
    assert cmp.ratio == pytest.approx(cmp.dense / cmp.conv)


def test_compare_params_formulas_for_the_course_numbers():
    cmp = ops.compare_params((3, 32, 32), 5, filters=16, bias=False, out_features=500)
    assert cmp.dense == 1_536_000 and cmp.dense_formula == "3,072·500 = 1,536,000"
    assert cmp.conv == 1200 and cmp.conv_formula == "5·5·3·16 = 1,200"
    with_bias = ops.compare_params((3, 32, 32), 5, filters=16)
    assert with_bias.conv == 1216 and with_bias.conv_formula == "5·5·3·16 + 16 = 1,216"


# ------------------------------------------------------------------ typed matrices
@pytest.mark.parametrize(
    "text",
    [
        "1 2 3\n4 5 6",
        "1,2,3\n4,5,6",
        "1\t2\t3\r\n4\t5\t6\n",
        "1 2 3; 4 5 6",
        "[[1, 2, 3], [4, 5, 6]]",
        "  1  2 3 \n\n 4 5   6  ",
    ],
)
def test_parse_matrix_accepts_common_ways_of_typing(text):
    assert np.array_equal(ops.parse_matrix(text), [[1, 2, 3], [4, 5, 6]])


def test_parse_matrix_handles_negative_and_decimal_numbers():
    assert np.array_equal(ops.parse_matrix("−1 -2.5\n1e1 .5"), [[-1, -2.5], [10, 0.5]])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("1 2\n3", "row 2 has 1 numbers but row 1 has 2"),
        ("1 x", "“x” in row 1 is not a number"),
        ("1 nan", "finite"),
    ],
)
def test_parse_matrix_explains_problems(text, words):
    with pytest.raises(ValueError, match=words):
        ops.parse_matrix(text)


def test_parse_matrix_limits_size():
    with pytest.raises(ValueError, match="at most 3×3"):
        ops.parse_matrix("1 2 3 4", max_side=3)


def test_format_matrix_round_trips():
    a = np.array([[1.0, -2.5, 0.125], [1000.0, 3.0, -0.0]])
    assert np.array_equal(ops.parse_matrix(ops.format_matrix(a)), a)


@pytest.mark.parametrize(("value", "text"), [(3.0, "3"), (-2.5, "−2.5"), (0.12345, "0.123"), (-np.inf, "−∞")])
def test_format_number(value, text):
    assert ops.format_number(value) == text


# ------------------------------------------------------------------ image input and the whole pipeline
def test_image_to_input_channels_and_size(sample_cat):
    from cnn_explorer.core.images import load_image

    pixels = load_image(sample_cat)
    h, w = pixels.shape[:2]
    gray = ops.image_to_input(pixels, "gray", size=64)
    assert max(gray.shape) == 64 and gray.dtype == np.float32
    assert gray.shape == (round(h * 64 / max(h, w)), round(w * 64 / max(h, w)))
    rgb = ops.image_to_input(pixels, "rgb", size=32, scale=1.0)
    assert rgb.shape[0] == 3 and max(rgb.shape[1:]) == 32 and rgb.min() >= 0 and rgb.max() <= 1
    red = ops.image_to_input(pixels, "red", size=32)
    np.testing.assert_allclose(red, rgb[0] * 255, rtol=1e-6)
    full = ops.image_to_input(pixels, "green", size=10_000)  # never enlarged
    assert full.shape == (h, w) and np.array_equal(full, pixels[..., 1])


def test_image_to_input_rejects_unknown_channel():
    with pytest.raises(ValueError, match="gray, red, green, blue, rgb"):
        ops.image_to_input(np.zeros((4, 4, 3), np.uint8), "alpha")


@pytest.mark.parametrize("pool_mode", ["max", "avg", "none"])
def test_run_lab_equals_torch_conv_activation_pool(pool_mode):
    rng = np.random.default_rng(7)
    x = rng.random((3, 23, 19)).astype(np.float32)
    kernel = rng.normal(size=(3, 3))
    settings_ = ops.LabSettings(
        kernel=kernel,
        bias=0.1,
        stride=2,
        padding=1,
        dilation=1,
        activation="leaky_relu",
        activation_param=0.1,
        pool_mode=pool_mode,
        pool_size=2,
    )
    res = ops.run_lab(x, settings_)
    ref = F.conv2d(t(x)[None], t(np.stack([kernel] * 3))[None], t(np.array([0.1])), stride=2, padding=1)
    ref = F.leaky_relu(ref, 0.1)
    np.testing.assert_allclose(res.activated, ref[0, 0].numpy(), rtol=1e-4, atol=1e-5)
    if pool_mode == "none":
        assert res.pooled is None and res.winners is None
        return
    pooled = F.max_pool2d(ref, 2) if pool_mode == "max" else F.avg_pool2d(ref, 2)
    np.testing.assert_allclose(res.pooled, pooled[0, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert (res.winners is not None) == (pool_mode == "max")
    assert res.weight.shape == (3, 3, 3)
