"""Convolution, activation and pooling arithmetic for the operations lab, the CLI and the tests.

Everything here works on plain numpy arrays and gives the same numbers as ``torch.nn.functional``
(cross-correlation, zero padding, floor rounding, ``count_include_pad=True`` for average pooling).
The loops run over kernel taps (at most 7×7 = 49), never over pixels: each tap is one whole-array
operation, which keeps a 512×512 RGB recompute within a frame (see ``benchmarks/bench_ops.py``).

One function per fact: the output-size formula (:func:`output_size`, :func:`output_size_formula`), the
parameter count (:func:`conv_param_count`, :func:`dense_param_count`, :func:`compare_params`), the
window that produced an output value (:func:`conv_step`), and the gradient through pooling
(:func:`pool2d_backward`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.images import resize_to, to_gray

IntPair = int | tuple[int, int]

POOL_MODES = ("max", "avg", "sum")


# ---------------------------------------------------------------------------------------------------
# Output size
# ---------------------------------------------------------------------------------------------------
def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Length of a convolution/pooling output along one axis: ⌊(n + 2p − d(k − 1) − 1)/s⌋ + 1.

    Raises ValueError with a message a student can act on when the settings are impossible.
    """
    n = _check_int(n, "input size", 1)
    kernel = _check_int(kernel, "kernel size", 1)
    stride = _check_int(stride, "stride", 1)
    padding = _check_int(padding, "padding", 0)
    dilation = _check_int(dilation, "dilation", 1)
    span = dilation * (kernel - 1) + 1  # how far the window reaches, dilation included
    padded = n + 2 * padding
    if span > padded:
        reach = f"{kernel}" if dilation == 1 else f"{span} (kernel {kernel} with dilation {dilation})"
        raise ValueError(
            f"the window ({reach}) is larger than the padded input ({n} + 2·{padding} = {padded}); "
            "use a smaller kernel or more padding"
        )
    return (padded - span) // stride + 1


def output_size_formula(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> str:
    """The output-size formula with the numbers filled in, e.g. ``⌊(4 + 2·0 − 2)/1⌋ + 1 = 3``.

    Without dilation this is the familiar ⌊(n + 2p − k)/s⌋ + 1; with dilation d the kernel term becomes
    d·(k − 1) + 1. Raises the same ValueError as :func:`output_size` for impossible settings.
    """
    result = output_size(n, kernel, stride, padding, dilation)
    # With dilation the kernel term is d·(k − 1) + 1, written with its signs distributed.
    kernel_term = f"{kernel}" if dilation == 1 else f"{dilation}·({kernel} − 1) − 1"
    return f"⌊({n} + 2·{padding} − {kernel_term})/{stride}⌋ + 1 = {result}"


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (height, width) pair, got {value!r}")
        return value[0], value[1]
    return value, value  # not int(): output_size() rejects 1.5 with a clear message instead of truncating


def _conv_pairs(stride: IntPair, padding: IntPair, dilation: IntPair) -> tuple[tuple[int, int], ...]:
    return _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")


def _result_dtype(*arrays: np.ndarray | float | None) -> np.dtype:
    # float32 for images (fast), float64 as soon as any array is float64 or a wide integer, so the small
    # integer examples of the course come out exact. Plain Python numbers (a bias) do not widen the type.
    dtypes = [a.dtype for a in arrays if isinstance(a, np.ndarray)]
    return np.result_type(*dtypes, np.float32)


def _tap_slice(start: int, stride: int, count: int) -> slice:
    """The input positions that kernel tap at offset ``start`` sees across all ``count`` outputs."""
    return slice(start, start + stride * (count - 1) + 1, stride)


# ---------------------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------------------
def _conv_shapes(x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Bring x to (C,H,W) and weight to (F,C,kH,kW); tell whether the caller wants a single map back."""
    x = np.asarray(x)
    weight = np.asarray(weight)
    if x.ndim == 2:
        x = x[None]
    elif x.ndim != 3:
        raise ValueError(f"the input must be (H, W) or (C, H, W), got shape {x.shape}")
    single = weight.ndim < 4
    if weight.ndim == 2:
        if x.shape[0] != 1:
            raise ValueError(
                f"a {weight.shape[0]}×{weight.shape[1]} kernel needs a single-channel input, but the input "
                f"has {x.shape[0]} channels; give one kernel slice per channel, shape (C, kH, kW)"
            )
        weight = weight[None, None]
    elif weight.ndim == 3:
        weight = weight[None]
    elif weight.ndim != 4:
        raise ValueError(f"the kernel must be (kH, kW), (C, kH, kW) or (F, C, kH, kW), got {weight.shape}")
    if weight.shape[1] != x.shape[0]:
        raise ValueError(f"the kernel has {weight.shape[1]} channels but the input has {x.shape[0]}")
    if 0 in weight.shape or 0 in x.shape:
        raise ValueError("the input and the kernel must not be empty")
    return x, weight, single


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: float | np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """2-D cross-correlation with zero padding, the numbers of ``torch.nn.functional.conv2d``.

    ``x`` is (H, W) or (C, H, W); ``weight`` is (kH, kW) for a 2-D input, (C, kH, kW) for one filter
    or (F, C, kH, kW) for F filters. ``bias`` is a number or one per filter. The result is (H', W')
    for a single filter (2-D or 3-D weight) and (F, H', W') for a 4-D weight.
    """
    x, weight, single = _conv_shapes(x, weight)
    (sh, sw), (ph, pw), (dh, dw) = _conv_pairs(stride, padding, dilation)
    n_filters, _, kh, kw = weight.shape
    oh = output_size(x.shape[1], kh, sh, ph, dh)
    ow = output_size(x.shape[2], kw, sw, pw, dw)
    dtype = _result_dtype(x, weight, bias)
    xp = x.astype(dtype, copy=False)
    if ph or pw:
        xp = np.pad(xp, ((0, 0), (ph, ph), (pw, pw)))
    w = weight.astype(dtype, copy=False)
    out = np.zeros((n_filters, oh, ow), dtype=dtype)
    for i in range(kh):
        rows = _tap_slice(i * dh, sh, oh)
        for j in range(kw):
            seen = xp[:, rows, _tap_slice(j * dw, sw, ow)]  # (C, H', W'): what this tap sees everywhere
            out += np.einsum("fc,chw->fhw", w[:, :, i, j], seen)
    if bias is not None:
        b = np.asarray(bias, dtype=dtype)
        if b.ndim == 0:
            out += b
        elif b.shape == (n_filters,):
            out += b[:, None, None]
        else:
            raise ValueError(f"bias must be a number or one value per filter ({n_filters}), got {b.shape}")
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------------
# Pooling and the gradient through it
# ---------------------------------------------------------------------------------------------------
def _pool_geometry(
    shape: tuple[int, ...], size: IntPair, stride: IntPair | None, padding: IntPair
) -> tuple[int, int, int, int, int, int, int, int]:
    if len(shape) < 2:
        raise ValueError(f"pooling needs an input of at least 2 dimensions (H, W), got shape {shape}")
    kh, kw = _pair(size, "pool size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "pool stride")
    ph, pw = _pair(padding, "pool padding")
    if ph > kh // 2 or pw > kw // 2:
        # As in torch: more padding than half a window would let a window hold nothing but padding.
        raise ValueError(f"pool padding ({ph}, {pw}) must be at most half the window size ({kh}, {kw})")
    oh = output_size(shape[-2], kh, sh, ph)
    ow = output_size(shape[-1], kw, sw, pw)
    return kh, kw, sh, sw, ph, pw, oh, ow


def _pad_hw(x: np.ndarray, ph: int, pw: int, value: float) -> np.ndarray:
    if not (ph or pw):
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    return np.pad(x, widths, constant_values=value)


def pool2d(
    x: np.ndarray,
    size: IntPair,
    stride: IntPair | None = None,
    mode: str = "max",
    padding: IntPair = 0,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max, average or sum pooling over the last two axes of ``x`` ((H, W), (C, H, W), ...).

    ``stride`` defaults to ``size`` (non-overlapping windows). Padding is with −∞ for max and zeros
    otherwise; average divides by the full window size (torch's ``count_include_pad=True``).
    With ``return_indices=True`` (max only) also returns, for each output, the flat index ``row·W + col``
    of the input element that won its window, as ``torch.nn.functional.max_pool2d(..., return_indices=True)``.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    if return_indices and mode != "max":
        raise ValueError("only max pooling has a winning element per window")
    x = np.asarray(x)
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(x.shape, size, stride, padding)
    dtype = _result_dtype(x)
    xp = _pad_hw(x.astype(dtype, copy=False), ph, pw, -np.inf if mode == "max" else 0.0)
    lead = x.shape[:-2]
    out = np.full((*lead, oh, ow), -np.inf if mode == "max" else 0.0, dtype=dtype)
    # For indices, remember which tap (0 … kH·kW − 1) won each window; turned into input indices at the end.
    tap_won = np.zeros((*lead, oh, ow), dtype=np.int16) if return_indices else None
    has_nan = tap_won is not None and bool(np.isnan(xp).any())  # one check, not one per tap
    for i in range(kh):
        rows = _tap_slice(i, sh, oh)
        for j in range(kw):
            seen = xp[..., rows, _tap_slice(j, sw, ow)]
            if mode != "max":
                out += seen
            elif tap_won is None:
                np.maximum(out, seen, out=out)  # propagates NaN, as torch does
            else:
                # Strictly greater keeps the first maximum in reading order and any NaN wins, as in torch.
                better = seen > out
                if has_nan:
                    better |= np.isnan(seen)
                np.copyto(out, seen, where=better)
                np.copyto(tap_won, i * kw + j, where=better)
    if mode == "avg":
        out /= kh * kw
    if tap_won is not None:
        # Output cell (r, c) sees input row r·s − p + i for tap row i (and the same for columns).
        rows_won = np.arange(oh)[:, None] * sh - ph + tap_won // kw
        cols_won = np.arange(ow)[None, :] * sw - pw + tap_won % kw
        return out, rows_won.astype(np.int64) * x.shape[-1] + cols_won
    return out


def pool2d_backward(
    x: np.ndarray,
    grad_out: np.ndarray,
    size: IntPair,
    stride: IntPair | None = None,
    mode: str = "max",
    padding: IntPair = 0,
) -> np.ndarray:
    """Route an upstream gradient back through pooling: the gradient with respect to ``x``.

    max: each output's gradient goes to the element that won its window (added up where windows overlap
    and share a winner); avg: spread evenly, 1/(kH·kW) to every element of the window; sum: copied to
    every element of the window. Same numbers as torch autograd.
    """
    x = np.asarray(x)
    grad_out = np.asarray(grad_out)
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(x.shape, size, stride, padding)
    if grad_out.shape != (*x.shape[:-2], oh, ow):
        raise ValueError(
            f"the upstream gradient must have the pooled shape {(*x.shape[:-2], oh, ow)}, "
            f"got {grad_out.shape}"
        )
    dtype = _result_dtype(x, grad_out)
    if mode == "max":
        _, winner = pool2d(x, size, stride, "max", padding, return_indices=True)
        h, w = x.shape[-2:]
        planes = int(np.prod(x.shape[:-2], dtype=np.int64))
        offsets = (np.arange(planes) * (h * w)).reshape((*x.shape[:-2], 1, 1))
        flat = np.bincount(
            (winner + offsets).ravel(), weights=grad_out.astype(np.float64).ravel(), minlength=planes * h * w
        )
        return flat.reshape(x.shape).astype(dtype)
    if mode not in POOL_MODES:
        raise ValueError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    share = grad_out.astype(dtype) / (kh * kw) if mode == "avg" else grad_out.astype(dtype)
    grad = np.zeros((*x.shape[:-2], x.shape[-2] + 2 * ph, x.shape[-1] + 2 * pw), dtype=dtype)
    for i in range(kh):
        rows = _tap_slice(i, sh, oh)
        for j in range(kw):
            # For one tap the windows touch distinct positions, so a plain slice-add is exact.
            grad[..., rows, _tap_slice(j, sw, ow)] += share
    return grad[..., ph : ph + x.shape[-2], pw : pw + x.shape[-1]]


# ---------------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------------
def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(x), 0)


def leaky_relu(x: np.ndarray, slope: float = 0.01) -> np.ndarray:
    x = np.asarray(x)
    return np.where(x >= 0, x, x * slope)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))  # minimum: no overflow warnings for big x


def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # identical to 1/(1+e^-x) but never overflows


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(np.asarray(x))


def identity(x: np.ndarray) -> np.ndarray:
    return np.asarray(x)


def softmax(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(v)/Σexp(v) along ``axis``, shifted by the maximum so large values do not overflow."""
    v = np.asarray(v)
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    e = np.exp(v - np.max(v, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@dataclass(frozen=True)
class Activation:
    name: str  # the key used by :func:`activate`
    label: str  # for menus
    formula: str  # for the page, e.g. "max(0, x)"
    fn: Callable[..., np.ndarray]
    param: str | None = None  # name of its parameter, if any
    default: float = 0.0


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("none", "None (identity)", "x", identity),
        Activation("relu", "ReLU", "max(0, x)", relu),
        Activation("leaky_relu", "Leaky ReLU", "x if x ≥ 0 else slope·x", leaky_relu, "slope", 0.01),
        Activation("elu", "ELU", "x if x > 0 else α·(eˣ − 1)", elu, "alpha", 1.0),
        Activation("sigmoid", "Sigmoid", "1 / (1 + e⁻ˣ)", sigmoid),
        Activation("tanh", "Tanh", "tanh(x)", tanh),
    )
}


def activate(x: np.ndarray, name: str, param: float | None = None) -> np.ndarray:
    """Apply the activation called ``name`` (see :data:`ACTIVATIONS`); ``param`` is its slope/alpha."""
    try:
        act = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None
    if act.param is None:
        return act.fn(x)
    return act.fn(x, act.default if param is None else param)


# ---------------------------------------------------------------------------------------------------
# One window at a time, for step mode
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvStep:
    """One output value of a convolution and everything that produced it."""

    index: int  # position in reading order, 0-based
    count: int  # number of output positions
    out_row: int
    out_col: int
    rows: np.ndarray  # (kH,) input row of each kernel row; < 0 or ≥ H means padding
    cols: np.ndarray  # (kW,)
    patch: np.ndarray  # (kH, kW) or (C, kH, kW): the input values under the window (zeros in padding)
    kernel: np.ndarray  # same shape as patch
    products: np.ndarray  # patch · kernel, element-wise
    total: float  # Σ products
    bias: float
    value: float  # total + bias: the output at (out_row, out_col)
    in_padding: np.ndarray  # (kH, kW) booleans: which taps of the window fall on the zero padding


def conv_output_shape(
    in_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> tuple[int, int]:
    """(H', W') of a convolution; raises ValueError for impossible settings."""
    (sh, sw), (ph, pw), (dh, dw) = _conv_pairs(stride, padding, dilation)
    return (output_size(in_hw[0], kernel_hw[0], sh, ph, dh), output_size(in_hw[1], kernel_hw[1], sw, pw, dw))


def conv_step(
    x: np.ndarray,
    kernel: np.ndarray,
    index: int,
    bias: float = 0.0,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> ConvStep:
    """The ``index``-th output (reading order) of a single-filter convolution, with its arithmetic.

    ``x`` is (H, W) with a (kH, kW) kernel or (C, H, W) with a (C, kH, kW) kernel.
    """
    x = np.asarray(x)
    kernel = np.asarray(kernel)
    if x.ndim != kernel.ndim or x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[0] != kernel.shape[0]):
        raise ValueError(
            f"step mode needs (H, W) with (kH, kW) or (C, H, W) with (C, kH, kW); "
            f"got {x.shape} and {kernel.shape}"
        )
    (sh, sw), (ph, pw), (dh, dw) = _conv_pairs(stride, padding, dilation)
    kh, kw = kernel.shape[-2:]
    h, w = x.shape[-2:]
    oh, ow = conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
    count = oh * ow
    if not 0 <= index < count:
        raise IndexError(f"step {index} is outside 0…{count - 1}")
    r, c = divmod(index, ow)
    rows = r * sh - ph + dh * np.arange(kh)
    cols = c * sw - pw + dw * np.arange(kw)
    inside_r = (rows >= 0) & (rows < h)
    inside_c = (cols >= 0) & (cols < w)
    dtype = _result_dtype(x, kernel, bias)
    patch = np.zeros(kernel.shape, dtype=dtype)
    sub = x[..., rows[inside_r][:, None], cols[inside_c][None, :]]
    patch[..., np.flatnonzero(inside_r)[:, None], np.flatnonzero(inside_c)[None, :]] = sub
    products = patch * kernel.astype(dtype)
    total = products.sum(dtype=dtype)
    return ConvStep(
        index=index,
        count=count,
        out_row=r,
        out_col=c,
        rows=rows,
        cols=cols,
        patch=patch,
        kernel=kernel.astype(dtype),
        products=products,
        total=float(total),
        bias=float(bias),
        value=float(total + dtype.type(bias)),
        in_padding=~(inside_r[:, None] & inside_c[None, :]),
    )


def conv_steps(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: float = 0.0,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    start: int = 0,
) -> Iterator[ConvStep]:
    """Every output position in reading order, as :class:`ConvStep` records (for the animation)."""
    oh, ow = conv_output_shape(np.shape(x)[-2:], np.shape(kernel)[-2:], stride, padding, dilation)
    for index in range(start, oh * ow):
        yield conv_step(x, kernel, index, bias, stride, padding, dilation)


# ---------------------------------------------------------------------------------------------------
# Parameters: convolution versus fully connected
# ---------------------------------------------------------------------------------------------------
def conv_param_count(kernel: IntPair, in_channels: int, filters: int, bias: bool = True) -> int:
    """kH·kW·C_in·F (+ F biases)."""
    kh, kw = _pair(kernel, "kernel")
    return kh * kw * in_channels * filters + (filters if bias else 0)


def dense_param_count(in_features: int, out_features: int, bias: bool = True) -> int:
    """in·out (+ out biases) for a fully-connected layer."""
    return in_features * out_features + (out_features if bias else 0)


@dataclass(frozen=True)
class ParamComparison:
    conv: int
    dense: int
    conv_formula: str  # e.g. "5·5·3·16 + 16 = 1,216"
    dense_formula: str  # e.g. "3,072·500 = 1,536,000"
    in_features: int
    out_features: int

    @property
    def ratio(self) -> float:
        """How many times more parameters the fully-connected layer needs."""
        return self.dense / self.conv if self.conv else float("inf")


def compare_params(
    in_shape: tuple[int, int, int],
    kernel: IntPair,
    filters: int = 1,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    bias: bool = True,
    out_features: int | None = None,
) -> ParamComparison:
    """This conv layer's parameters versus a fully-connected layer from the same input to the same output.

    ``in_shape`` is (C, H, W). The fully-connected layer maps all C·H·W inputs to ``out_features`` outputs,
    by default F·H'·W' (what the convolution produces).
    """
    c, h, w = in_shape
    kh, kw = _pair(kernel, "kernel")
    if out_features is None:
        oh, ow = conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
        out_features = filters * oh * ow
    n_in = c * h * w
    conv = conv_param_count((kh, kw), c, filters, bias)
    dense = dense_param_count(n_in, out_features, bias)
    conv_formula = f"{kh}·{kw}·{c}·{filters}" + (f" + {filters}" if bias else "") + f" = {conv:,}"
    dense_formula = f"{n_in:,}·{out_features:,}" + (f" + {out_features:,}" if bias else "") + f" = {dense:,}"
    return ParamComparison(conv, dense, conv_formula, dense_formula, n_in, out_features)


# ---------------------------------------------------------------------------------------------------
# Inputs: typed matrices and images
# ---------------------------------------------------------------------------------------------------
MAX_MATRIX_SIDE = 256

_NUMBER_SEPARATORS = re.compile(r"[\s,;]+")


def parse_matrix(text: str, max_side: int = MAX_MATRIX_SIDE) -> np.ndarray:
    """A matrix typed or pasted by a user, as float64.

    Rows are lines (or separated by ``;``); numbers are separated by spaces, tabs (spreadsheets) or
    commas. Python/numpy style ``[[1, 2], [3, 4]]`` also works. Raises ValueError naming the problem.
    """
    text = text.strip()
    if "[" in text:  # nested-list notation: each "]" closes a row
        text = text.replace("]", "\n").replace("[", " ")
        lines = [ln.strip(" ,\t") for ln in text.splitlines()]
    else:
        lines = [part for ln in text.splitlines() for part in ln.split(";")]
    rows: list[list[float]] = []
    for line in lines:
        tokens = [t for t in _NUMBER_SEPARATORS.split(line.strip()) if t]
        if not tokens:
            continue
        row = []
        for tok in tokens:
            try:
                value = float(tok.replace("−", "-"))  # a pasted typographic minus is still a minus
            except ValueError:
                raise ValueError(f"“{tok}” in row {len(rows) + 1} is not a number") from None
            if not np.isfinite(value):
                raise ValueError(f"“{tok}” in row {len(rows) + 1} is not a finite number")
            row.append(value)
        if rows and len(row) != len(rows[0]):
            raise ValueError(
                f"row {len(rows) + 1} has {len(row)} numbers but row 1 has {len(rows[0])}; "
                "every row needs the same count"
            )
        rows.append(row)
    if not rows:
        raise ValueError("the matrix is empty; type numbers separated by spaces, one row per line")
    if len(rows) > max_side or len(rows[0]) > max_side:
        size = f"{len(rows)}×{len(rows[0])}"
        raise ValueError(f"the matrix is {size}; at most {max_side}×{max_side} is allowed")
    return np.array(rows, dtype=np.float64)


def format_number(value: float, digits: int = 3) -> str:
    """Short, readable number: integers without decimals, others with up to ``digits`` decimals."""
    value = float(value)
    if not np.isfinite(value):
        return "−∞" if value < 0 else ("∞" if value > 0 else "nan")
    if value == round(value) and abs(value) < 1e6:
        text = f"{round(value)}"
    elif abs(value) >= 1000:
        text = f"{value:.0f}"
    elif abs(value) >= 100:
        text = f"{value:.1f}"
    else:
        text = f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text.replace("-", "−")


def format_matrix(a: np.ndarray) -> str:
    """The inverse of :func:`parse_matrix` for a 2-D array: one row per line, numbers separated by spaces."""
    a = np.asarray(a)
    return "\n".join(" ".join(format_number(v, 6).replace("−", "-") for v in row) for row in a)


CHANNEL_MODES = ("gray", "red", "green", "blue", "rgb")


def image_to_input(
    pixels: np.ndarray, channels: str = "gray", size: int = 64, scale: float = 255.0
) -> np.ndarray:
    """An image (H, W, 3 or H, W uint8) as the lab's input: (H, W) or (3, H, W) float32.

    The image is shrunk so its longer side is ``size`` (never enlarged); ``channels`` picks grayscale, one
    of red/green/blue, or all three as (3, H, W); values are pixel/255·``scale`` (255 keeps 0…255).
    """
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {', '.join(CHANNEL_MODES)}, got {channels!r}")
    size = _check_int(size, "working size", 1)
    pixels = np.asarray(pixels)
    h, w = pixels.shape[:2]
    if max(h, w) > size:
        factor = size / max(h, w)
        pixels = resize_to(pixels, max(1, round(w * factor)), max(1, round(h * factor)))
    if channels == "gray":
        arr = to_gray(pixels)
    elif pixels.ndim == 2:  # a grayscale file has the same value in every "channel"
        arr = pixels if channels != "rgb" else np.stack([pixels] * 3)
    elif channels == "rgb":
        arr = np.moveaxis(pixels[..., :3], -1, 0)
    else:
        arr = pixels[..., "rgb".index(channels[0])]
    return np.ascontiguousarray(arr, dtype=np.float32) * np.float32(scale / 255.0)


# ---------------------------------------------------------------------------------------------------
# The lab's whole pipeline: conv -> activation -> pool
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabSettings:
    kernel: np.ndarray  # (kH, kW); used on every input channel
    bias: float = 0.0
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    activation: str = "relu"
    activation_param: float | None = None
    pool_mode: str = "max"  # "max" | "avg" | "sum" | "none"
    pool_size: int = 2
    pool_stride: int | None = None
    pool_padding: int = 0


@dataclass(frozen=True)
class LabResult:
    input: np.ndarray  # (H, W) or (C, H, W) as given
    weight: np.ndarray  # kernel as applied: (kH, kW) or (C, kH, kW)
    conv: np.ndarray  # (H', W')
    activated: np.ndarray  # (H', W')
    pooled: np.ndarray | None  # (H'', W''), None without pooling
    winners: np.ndarray | None  # flat indices into `activated` that won each max-pool window
    settings: LabSettings


def lab_weight(x_shape: tuple[int, ...], kernel: np.ndarray) -> np.ndarray:
    """The lab's single filter: the 2-D kernel, repeated on every channel of a (C, H, W) input."""
    kernel = np.asarray(kernel)
    if len(x_shape) == 3:
        return np.repeat(kernel[None], x_shape[0], axis=0)
    return kernel


def run_lab(x: np.ndarray, settings: LabSettings, control: Control | None = None) -> LabResult:
    """Convolution → activation → pooling on ``x`` ((H, W) or (C, H, W)): what the lab shows."""
    s = settings
    x = np.asarray(x)
    weight = lab_weight(x.shape, s.kernel)
    if x.dtype == np.float32:
        weight = weight.astype(np.float32)  # an image stays in float32: twice as fast, precise enough to show
    conv = conv2d(x, weight, s.bias, s.stride, s.padding, s.dilation)
    checkpoint(control)
    activated = activate(conv, s.activation, s.activation_param)
    checkpoint(control)
    pooled = winners = None
    if s.pool_mode == "max":
        pooled, winners = pool2d(
            activated, s.pool_size, s.pool_stride, "max", s.pool_padding, return_indices=True
        )
    elif s.pool_mode != "none":
        pooled = pool2d(activated, s.pool_size, s.pool_stride, s.pool_mode, s.pool_padding)
    return LabResult(x, weight, conv, activated, pooled, winners, settings)
