"""The lab's backward pass: every gradient equals torch autograd's, and the course's small cases by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnn_explorer.core import ops
from cnn_explorer.core.kernels import COURSE_KERNEL, COURSE_MATRIX, input_preset, kernel_preset
from cnn_explorer.core.lab import (
    LabSettings,
    backward_step,
    lab_backward,
    run_lab,
    upstream_gradient,
)

# Each example is a whole forward and backward pass in numpy and in torch, a few milliseconds.
MANY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIGHT = {"rtol": 1e-9, "atol": 1e-12}

COURSE_X = input_preset(COURSE_MATRIX)
COURSE_K = kernel_preset(COURSE_KERNEL)


def t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def torch_activation(y: torch.Tensor, name: str, param: float | None) -> torch.Tensor:
    if name == "none":
        return y
    if name == "relu":
        return F.relu(y)
    if name == "leaky_relu":
        return F.leaky_relu(y, 0.01 if param is None else param)
    if name == "elu":
        return F.elu(y, 1.0 if param is None else param)
    if name == "sigmoid":
        return torch.sigmoid(y)
    if name == "tanh":
        return torch.tanh(y)
    assert name == "softmax"
    return F.softmax(y, dim=1)  # (1, C, H, W): across channels


def torch_pool(y: torch.Tensor, s: LabSettings) -> torch.Tensor:
    stride = s.pool_stride or s.pool_size
    if s.pool_mode == "max":
        return F.max_pool2d(y, s.pool_size, stride, s.pool_padding)
    if s.pool_mode == "avg":
        return F.avg_pool2d(y, s.pool_size, stride, s.pool_padding, count_include_pad=True)
    assert s.pool_mode == "sum"
    return F.avg_pool2d(y, s.pool_size, stride, s.pool_padding, count_include_pad=True, divisor_override=1)


def torch_lab(x: np.ndarray, s: LabSettings, upstream: np.ndarray) -> dict[str, torch.Tensor | None]:
    """The lab's pipeline in torch, differentiated by autograd."""
    x3 = x[None] if x.ndim == 2 else x
    xt = t(x3[None], grad=True)
    wt = bt = None
    if s.conv:
        wt, bt = t(s.weights, grad=True), t(s.biases, grad=True)
        conv = F.conv2d(xt, wt, bt, s.stride, s.padding, s.dilation)
    else:
        conv = xt
    if conv is not xt:
        conv.retain_grad()
    act = torch_activation(conv, s.activation, s.activation_param)
    if act is not conv:
        act.retain_grad()
    out = act if s.pool_mode == "none" else torch_pool(act, s)
    (out * t(upstream).reshape(out.shape)).sum().backward()
    return {
        "output": out.detach(),
        "d_activated": act.grad,
        "d_conv": conv.grad,
        "d_input": xt.grad,
        "d_weight": None if wt is None else wt.grad,
        "d_bias": None if bt is None else bt.grad,
    }


@st.composite
def lab_cases(draw):
    c_in = draw(st.integers(1, 3))
    filters = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    pool_size = draw(st.integers(1, 3))
    s = LabSettings(
        kernel=np.zeros((k, k)),
        stride=draw(st.integers(1, 2)),
        padding=draw(st.integers(0, 1)),
        dilation=draw(st.integers(1, 2)),
        activation=draw(st.sampled_from(list(ops.ACTIVATIONS))),
        activation_param=draw(st.one_of(st.none(), st.floats(0.05, 2.0))),
        pool_mode=draw(st.sampled_from(["max", "avg", "sum", "none"])),
        pool_size=pool_size,
        pool_stride=draw(st.one_of(st.none(), st.integers(1, 3))),
        pool_padding=draw(st.integers(0, pool_size // 2)),
        conv=draw(st.booleans()),
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (draw(st.integers(3, 8)), draw(st.integers(3, 8)))
    x = rng.normal(size=shape) if c_in == 1 and draw(st.booleans()) else rng.normal(size=(c_in, *shape))
    s = replace(s, weights=rng.normal(size=(filters, c_in, k, k)), biases=rng.normal(size=filters))
    return x, s, int(rng.integers(0, 2**16))


@MANY
@given(lab_cases())
def test_every_gradient_equals_torch_autograd(case):
    x, s, seed = case
    try:
        result = run_lab(x, s)
    except ValueError:
        assume(False)  # settings that give no output: covered by the error tests
    upstream = upstream_gradient("random", result.output.shape, seed=seed)
    grads = lab_backward(result, upstream)
    ref = torch_lab(x, s, upstream)
    np.testing.assert_allclose(result.output, ref["output"].reshape(result.output.shape).numpy(), **TIGHT)
    np.testing.assert_allclose(grads.d_input, ref["d_input"].reshape(np.shape(x)).numpy(), **TIGHT)
    if ref["d_activated"] is not None:
        np.testing.assert_allclose(grads.d_activated.ravel(), ref["d_activated"].numpy().ravel(), **TIGHT)
    if ref["d_conv"] is not None:
        np.testing.assert_allclose(grads.d_conv.ravel(), ref["d_conv"].numpy().ravel(), **TIGHT)
    if s.conv:
        np.testing.assert_allclose(grads.d_weight, ref["d_weight"].numpy(), **TIGHT)
        np.testing.assert_allclose(grads.d_bias, ref["d_bias"].numpy(), **TIGHT)
    else:
        assert grads.d_weight is None and grads.d_bias is None
    assert grads.d_input.shape == result.input.shape
    assert grads.d_conv.shape == result.conv.shape and grads.d_activated.shape == result.activated.shape


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "stride", "padding", "dilation"),
    [
        ((5, 7), (2, 3), 1, 0, 1),  # one 2-D kernel: 2-D maps, gradients in the same shapes
        ((3, 9, 8), (3, 3, 3), 2, 1, 1),  # one filter over three channels
        ((2, 10, 9), (4, 2, 3, 2), (2, 3), (1, 0), (2, 1)),  # four filters, everything per axis
        ((3, 9, 11), (2, 3, 2, 3), (1, 2), 2, 2),  # dilated both ways, more padding than the kernel needs
    ],
)
def test_conv2d_backward_matches_torch(x_shape, w_shape, stride, padding, dilation):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    out = ops.conv2d(x, w, 0.0, stride, padding, dilation)
    g = rng.normal(size=out.shape)
    grads = ops.conv2d_backward(x, w, g, stride, padding, dilation)
    x4 = x.reshape((1, -1, *x_shape[-2:]))
    w4 = w.reshape((-1, x4.shape[1], *w_shape[-2:]))
    xt, wt, bt = t(x4, True), t(w4, True), t(np.zeros(w4.shape[0]), True)
    (
        F.conv2d(xt, wt, bt, stride, padding, dilation) * t(g).reshape(1, w4.shape[0], *g.shape[-2:])
    ).sum().backward()
    assert (
        grads.input.shape == x.shape and grads.weight.shape == w.shape and grads.bias.shape == (w4.shape[0],)
    )
    np.testing.assert_allclose(grads.input, xt.grad.reshape(x.shape).numpy(), **TIGHT)
    np.testing.assert_allclose(grads.weight, wt.grad.reshape(w.shape).numpy(), **TIGHT)
    np.testing.assert_allclose(grads.bias, bt.grad.numpy(), **TIGHT)


def test_conv2d_backward_rejects_a_gradient_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"output shape \(3, 3\)"):
        ops.conv2d_backward(COURSE_X, COURSE_K, np.ones((4, 4)))


def test_course_convolution_backward_by_hand():
    """4×4 (1…16) × [[0,1],[1,0]], L = Σ outputs: each input counts as often as a window's 1s cover it;
    each tap's gradient is the sum of the inputs it saw."""
    s = LabSettings(kernel=COURSE_K, activation="none", pool_mode="none")
    result = run_lab(COURSE_X, s)
    grads = lab_backward(result, upstream_gradient("ones", result.output.shape))
    assert np.array_equal(grads.d_input, [[0, 1, 1, 1], [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 0]])
    # tap (0, 0) saw 1+2+3+5+6+7+9+10+11 = 54, tap (0, 1) 63, tap (1, 0) 90, tap (1, 1) 99
    assert np.array_equal(grads.d_weight, [[[[54, 63], [90, 99]]]])
    assert np.array_equal(grads.d_bias, [9])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("max", [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]),  # to 6, 8, 14 and 16 only
        ("avg", np.full((4, 4), 0.25)),  # spread evenly over each 2×2 window
        ("sum", np.ones((4, 4))),  # copied to every cell of the window
    ],
)
def test_gradient_through_pooling_goes_where_the_notes_say(mode, expected):
    s = LabSettings(kernel=COURSE_K, conv=False, activation="none", pool_mode=mode)
    result = run_lab(COURSE_X, s)
    grads = lab_backward(result, upstream_gradient("ones", result.output.shape))
    assert np.array_equal(grads.d_input, expected)
    assert grads.d_weight is None
    assert np.array_equal(grads.input_gradient("pool"), expected)


def test_saturated_sigmoid_passes_almost_no_gradient_and_relu_none_left_of_zero():
    x = np.array([[-40.0, -2.0, 0.0, 2.0, 40.0]])
    for name, expected in [("sigmoid", [0, 0.105, 0.25, 0.105, 0]), ("relu", [0, 0, 0, 1, 1])]:
        s = LabSettings(kernel=np.ones((1, 1)), conv=False, activation=name, pool_mode="none")
        grads = lab_backward(run_lab(x, s), np.ones(x.shape))
        np.testing.assert_allclose(grads.d_input[0], expected, atol=1e-3)
    assert ops.activation_derivative(np.array([40.0]), "tanh")[0] < 1e-30


ACT_VALUES = np.concatenate([np.linspace(-8, 8, 65), [0.0, -0.0, 1e-9, -1e-9]])


@pytest.mark.parametrize("name", [n for n in ops.ACTIVATIONS if n != "softmax"])
@pytest.mark.parametrize("param", [None, 0.3])
def test_activation_derivative_equals_autograd_including_the_kinks(name, param):
    xt = t(ACT_VALUES, grad=True)
    torch_activation(xt, name, param).sum().backward()
    np.testing.assert_allclose(ops.activation_derivative(ACT_VALUES, name, param), xt.grad.numpy(), **TIGHT)


@pytest.mark.parametrize(
    "dtypes", [(np.float32, np.float32), (np.float64, np.float32), (np.float32, np.int64)]
)
def test_relu_backward_is_upstream_times_the_derivative_bit_for_bit(dtypes):
    """ReLU's backward multiplies by the comparison in one pass; the numbers (and dtype) are exactly those
    of upstream · f′(x), and autograd's."""
    x_type, g_type = dtypes
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(size=200), [0.0, -0.0, 1e-9, -1e-9]]).astype(x_type)
    g = (rng.normal(size=x.shape) * 5).astype(g_type)
    ours = ops.activation_backward(x, g, "relu")
    expected = g * ops.activation_derivative(x, "relu")
    assert ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)
    assert np.array_equal(np.signbit(ours), np.signbit(expected))
    xt = t(x, grad=True)
    torch.relu(xt).backward(t(g))
    np.testing.assert_allclose(ours, xt.grad.numpy(), **TIGHT)


def test_softmax_backward_is_the_jacobian_vector_product_across_channels():
    rng = np.random.default_rng(4)
    x, g = rng.normal(size=(4, 3, 5)) * 3, rng.normal(size=(4, 3, 5))
    xt = t(x[None], grad=True)
    (F.softmax(xt, dim=1) * t(g[None])).sum().backward()
    np.testing.assert_allclose(ops.activation_backward(x, g, "softmax"), xt.grad[0].numpy(), **TIGHT)
    # The diagonal of the Jacobian is p(1 − p); a single channel has p = 1 and passes nothing back.
    p = ops.softmax(x, axis=0)
    np.testing.assert_allclose(ops.activation_derivative(x, "softmax"), p * (1 - p), **TIGHT)
    assert not ops.activation_backward(x[0], g[0], "softmax").any()


@pytest.mark.parametrize("name", list(ops.ACTIVATIONS))
def test_activation_curve_gives_the_function_and_its_slope(name):
    xs = np.linspace(-6, 6, 1201)
    f, df = ops.activation_curve(name, None, xs)
    assert f.shape == df.shape == xs.shape
    numeric = np.gradient(f, xs)  # the drawn derivative is the slope of the drawn curve
    smooth = np.abs(xs) > 0.02  # away from ReLU's kink
    np.testing.assert_allclose(df[smooth][1:-1], numeric[smooth][1:-1], atol=2e-3)
    if name in ("sigmoid", "tanh", "softmax"):
        assert df[0] < 0.01 and df[-1] < 0.01  # saturated at both ends


def test_softmax_curve_is_two_channels_one_at_zero():
    f, df = ops.activation_curve("softmax", None, np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_allclose(f, ops.sigmoid(np.array([-1.0, 0.0, 2.0])), rtol=1e-12)
    np.testing.assert_allclose(df, f * (1 - f), rtol=1e-12)


# ------------------------------------------------------------------ the backward step panel
def test_backward_step_of_the_course_example_by_hand():
    s = LabSettings(kernel=COURSE_K, activation="none", pool_mode="none")
    result = run_lab(COURSE_X, s)
    grads = lab_backward(result, upstream_gradient("ones", result.output.shape))
    step = backward_step(result, grads, index=5)  # input cell (1, 1)
    assert (step.in_row, step.in_col, step.count) == (1, 1, 16)
    assert step.out_rows.tolist() == [0, 1] and step.out_cols.tolist() == [0, 1]
    assert np.array_equal(step.flipped_kernel[0], [[0, 1], [1, 0]])  # [[0,1],[1,0]] rotated by 180°
    assert np.array_equal(step.upstream[0], np.ones((2, 2))) and step.connected.all()
    assert np.array_equal(step.products[0], [[0, 1], [1, 0]]) and step.total == 2
    corner = backward_step(result, grads, index=0)  # (0, 0): only the window at (0, 0) reaches it
    assert corner.out_rows.tolist() == [-1, 0] and corner.connected.tolist() == [
        [False, False],
        [False, True],
    ]
    assert corner.total == 0  # ... through the kernel's 0 at tap (0, 0)
    panel = step.as_conv_step()
    assert panel.patch.shape == (2, 2) and panel.value == 2 and not panel.in_padding.any()


@settings(max_examples=25, deadline=None)
@given(lab_cases())
def test_backward_step_adds_up_to_the_input_gradient_everywhere(case):
    x, s, seed = case
    s = replace(s, conv=True)
    try:
        result = run_lab(x, s)
    except ValueError:
        assume(False)
    grads = lab_backward(result, upstream_gradient("random", result.output.shape, seed=seed))
    d_input = grads.d_input if grads.d_input.ndim == 3 else grads.d_input[None]
    for channel in range(d_input.shape[0]):
        for index in range(d_input[channel].size):
            step = backward_step(result, grads, index, channel)
            assert step.total == pytest.approx(d_input[channel].ravel()[index], rel=1e-9, abs=1e-12)
            assert not step.upstream[:, ~step.connected].any()


def test_backward_step_with_stride_skips_the_cells_between_outputs():
    x = np.arange(25.0).reshape(5, 5)
    s = LabSettings(kernel=np.ones((3, 3)), stride=2, activation="none", pool_mode="none")
    result = run_lab(x, s)
    grads = lab_backward(result, upstream_gradient("ones", result.output.shape))
    step = backward_step(result, grads, index=1 * 5 + 1)  # (1, 1): seen by output (0, 0) only, via tap (1, 1)
    assert step.out_rows.tolist() == [-1, 0, -1] and step.connected.sum() == 1
    assert step.total == grads.d_input[1, 1] == 1
    assert grads.d_input[2, 2] == 4  # the centre is seen by all four windows


def test_backward_step_needs_the_convolution():
    s = LabSettings(kernel=COURSE_K, conv=False, pool_mode="none")
    result = run_lab(COURSE_X, s)
    with pytest.raises(ValueError, match="convolution is off"):
        backward_step(result, lab_backward(result, np.ones(result.output.shape)), 0)


# ------------------------------------------------------------------ upstream gradients
def test_upstream_gradients():
    assert np.array_equal(upstream_gradient("ones", (2, 3)), np.ones((2, 3)))
    a, b = upstream_gradient("random", (2, 3, 3), seed=5), upstream_gradient("random", (2, 3, 3), seed=5)
    assert np.array_equal(a, b) and not np.array_equal(a, upstream_gradient("random", (2, 3, 3), seed=6))
    one = upstream_gradient("cell", (3, 3), cell=(1, 2))
    assert one.sum() == 1 and one[1, 2] == 1
    every = upstream_gradient("cell", (2, 3, 3), cell=(0, 1))  # that position in every channel
    assert every.sum() == 2 and every[0, 0, 1] == every[1, 0, 1] == 1
    single = upstream_gradient("cell", (2, 3, 3), cell=(1, 0, 1))
    assert single.sum() == 1 and single[1, 0, 1] == 1


@pytest.mark.parametrize(
    ("kind", "cell", "message"),
    [
        ("cell", (3, 0), "outside the 3×3"),
        ("cell", None, "needs the cell"),
        ("cell", (2, 0, 0), "channel 2 is outside 0…1"),
        ("zeros", None, "ones, random, cell"),
    ],
)
def test_upstream_gradient_errors_say_what_is_wrong(kind, cell, message):
    with pytest.raises(ValueError, match=message):
        upstream_gradient(kind, (2, 3, 3), cell=cell)


def test_lab_backward_checks_the_upstream_shape():
    result = run_lab(COURSE_X, LabSettings(kernel=COURSE_K))
    with pytest.raises(ValueError, match=r"output's shape \(1, 1\)"):
        lab_backward(result, np.ones((3, 3)))
