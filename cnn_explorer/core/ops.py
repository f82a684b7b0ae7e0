"""Convolution, activation and pooling arithmetic for the operations lab, the CLI and the tests.

Everything here works on plain numpy arrays and gives the same numbers as ``torch.nn.functional``
(cross-correlation, zero padding, floor rounding, ``count_include_pad=True`` for average pooling) and, for
the backward pass, as ``torch.autograd``. The loops run over kernel taps (at most 7×7 = 49), never over
pixels: each tap is one whole-array operation, which keeps a 512×512 RGB recompute within a frame (see
``benchmarks/bench_ops.py``).

One function per fact: the output-size formula (:func:`output_size`, :func:`output_size_formula`), the
parameter count (:func:`conv_param_count`, :func:`dense_param_count`, :func:`compare_params`), the
multiply-adds (:func:`conv_macs`), the window that produced an output value (:func:`conv_step`), the
upstream cells and taps that produced one input gradient (:func:`conv_backward_step`), the gradients
through convolution (:func:`conv2d_backward`), pooling (:func:`pool2d_backward`) and the activations
(:func:`activation_derivative`, :func:`activation_backward`).

The lab's whole pipeline (:class:`LabSettings`, :func:`run_lab`, :class:`LabResult`) lives in
:mod:`cnn_explorer.core.lab`; it stays importable from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

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
_COLUMNS_BYTES = 32 * 2**20  # the window columns are built a band of output rows at a time, at most this big


def _window_columns(
    xp: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, int],
) -> Iterator[tuple[int, int, np.ndarray]]:
    """For bands of output rows r0…r1−1: (r0, r1, columns), columns being (C·kH·kW, (r1 − r0)·W') with row
    (c, i, j) holding what tap (i, j) of channel c sees at each output position ("im2col").

    One matrix product with these columns does the whole convolution: per tap and channel, the loop only
    copies, and the multiply-adds go to BLAS.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    c = xp.shape[0]
    band = max(1, min(oh, _COLUMNS_BYTES // max(1, c * kh * kw * ow * xp.itemsize)))
    buffer = np.empty((c, kh, kw, band, ow), dtype=xp.dtype)
    for r0 in range(0, oh, band):
        r1 = min(oh, r0 + band)
        n = r1 - r0
        cols = buffer[:, :, :, :n]
        for i in range(kh):
            rows = _tap_slice(i * dh + r0 * sh, sh, n)
            for j in range(kw):
                cols[:, i, j] = xp[:, rows, _tap_slice(j * dw, sw, ow)]
        yield r0, r1, cols.reshape(c * kh * kw, n * ow)


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


# Convolution maps this large (an image's, in float32) are computed by torch's own kernel: the same sums,
# several times faster than numpy's (bench_ops: 8 filters on 512×512 RGB). Small matrices, which the lab
# writes out number by number, stay in numpy and float64. (Max pooling stays in numpy at every size: its
# two passes in :func:`_max_pool` beat torch's CPU kernel and give its exact numbers and winners.)
_TORCH_FROM = 1 << 16


def _writable(a: np.ndarray) -> np.ndarray:
    """float32, C-contiguous and writable (torch cannot protect a read-only buffer, and warns)."""
    return np.require(a, np.float32, ["C", "W"])


def _torch_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: float | np.ndarray | None,
    n_filters: int,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    b = None
    if bias is not None:
        b = torch.from_numpy(np.array(np.broadcast_to(np.asarray(bias, dtype=np.float32), (n_filters,))))
    with torch.no_grad():
        out = F.conv2d(
            torch.from_numpy(_writable(x))[None],
            torch.from_numpy(_writable(weight)),
            b,
            stride=stride,
            padding=padding,
            dilation=dilation,
        )
    return out[0].numpy()


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
    if dtype == np.float32 and n_filters * oh * ow >= _TORCH_FROM:
        out = _torch_conv2d(x, weight, bias, n_filters, (sh, sw), (ph, pw), (dh, dw))
        return out[0] if single else out
    xp = x.astype(dtype, copy=False)
    if ph or pw:
        xp = np.pad(xp, ((0, 0), (ph, ph), (pw, pw)))
    w = weight.astype(dtype, copy=False)
    if n_filters == 1:  # one filter: a multiply-add per tap is quicker than building the window columns
        out = np.zeros((1, oh, ow), dtype=dtype)
        for i in range(kh):
            rows = _tap_slice(i * dh, sh, oh)
            for j in range(kw):
                seen = xp[:, rows, _tap_slice(j * dw, sw, ow)]  # (C, H', W'): what this tap sees everywhere
                out += np.einsum("fc,chw->fhw", w[:, :, i, j], seen)
    else:
        out = np.empty((n_filters, oh, ow), dtype=dtype)
        w2 = w.reshape(n_filters, -1)  # (F, C·kH·kW), in the order the window columns are filled
        for r0, r1, cols in _window_columns(xp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)):
            out[:, r0:r1] = (w2 @ cols).reshape(n_filters, r1 - r0, ow)
    if bias is not None:
        b = np.asarray(bias, dtype=dtype)
        if b.ndim == 0:
            out += b
        elif b.shape == (n_filters,):
            out += b[:, None, None]
        else:
            raise ValueError(f"bias must be a number or one value per filter ({n_filters}), got {b.shape}")
    return out[0] if single else out


@dataclass(frozen=True)
class ConvGradients:
    """The gradients of a loss through one convolution, given the gradient at its output."""

    input: np.ndarray  # dL/dx, the shape of x
    weight: np.ndarray  # dL/dW, the shape of the weight as given
    bias: np.ndarray  # dL/db, (F,): one per filter (F = 1 for a single filter)


def conv2d_backward(
    x: np.ndarray,
    weight: np.ndarray,
    grad_out: np.ndarray,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> ConvGradients:
    """Back through :func:`conv2d`: the gradients with respect to its input, weight and bias.

    ``x`` and ``weight`` are as for :func:`conv2d`; ``grad_out`` has the shape of its output.

    * dL/dx is the *full* correlation of the upstream gradient with the kernel flipped by 180°, summed over
      the filters. With stride s the upstream gradient has s − 1 zeros between its cells; with dilation d
      the kernel has d − 1 zeros between its taps; the padding is cut off again at the end.
    * dL/dW is the correlation of the (padded) input with the upstream gradient: for each tap, Σ over all
      output positions of upstream · the input value that tap saw there.
    * dL/db is the sum of the upstream gradient over all positions of each filter's map.

    Same numbers as torch autograd. Computed with the forward pass's window columns: dL/dW is the upstream
    gradient times the columns; for dL/dx each tap spreads ``w · upstream`` back over the input positions
    it saw, which adds up to exactly the full correlation with the flipped kernel.
    """
    x3, w4, single = _conv_shapes(x, weight)
    (sh, sw), (ph, pw), (dh, dw) = _conv_pairs(stride, padding, dilation)
    n_filters, _, kh, kw = w4.shape
    oh = output_size(x3.shape[1], kh, sh, ph, dh)
    ow = output_size(x3.shape[2], kw, sw, pw, dw)
    g = np.asarray(grad_out)
    expected = (oh, ow) if single else (n_filters, oh, ow)
    if g.shape != expected:
        raise ValueError(
            f"the upstream gradient must have the convolution's output shape {expected}, got {g.shape}"
        )
    dtype = _result_dtype(x3, w4, g)
    g = g.astype(dtype, copy=False).reshape(n_filters, oh, ow)
    xp = x3.astype(dtype, copy=False)
    if ph or pw:
        xp = np.pad(xp, ((0, 0), (ph, ph), (pw, pw)))
    w2 = w4.astype(dtype, copy=False).reshape(n_filters, -1)
    grad_xp = np.zeros_like(xp)
    grad_w2 = np.zeros(w2.shape, dtype=dtype)
    for r0, r1, cols in _window_columns(xp, (kh, kw), (sh, sw), (dh, dw), (oh, ow)):
        n = r1 - r0
        band = g[:, r0:r1].reshape(n_filters, n * ow)
        grad_w2 += band @ cols.T
        spread = (w2.T @ band).reshape(xp.shape[0], kh, kw, n, ow)  # what each tap sends back
        for i in range(kh):
            rows = _tap_slice(i * dh + r0 * sh, sh, n)
            for j in range(kw):
                # One tap touches each input position at most once, so a slice-add is exact.
                grad_xp[:, rows, _tap_slice(j * dw, sw, ow)] += spread[:, i, j]
    grad_w = grad_w2.reshape(w4.shape)
    grad_x = grad_xp[:, ph : ph + x3.shape[1], pw : pw + x3.shape[2]]
    return ConvGradients(
        input=grad_x.reshape(np.shape(x)),
        weight=grad_w.reshape(np.shape(weight)),
        bias=g.sum(axis=(1, 2)),
    )


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


def _running_max(
    views: Iterator[np.ndarray], want_taps: bool, has_nan: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The element-wise maximum of ``views`` (same shape) and, with ``want_taps``, which view won (0-based).

    Strictly greater replaces, so the first maximum wins ties; a NaN always replaces (and stays, through
    ``np.maximum``), so the last NaN wins: torch's rule, ``if (val > max || isnan(val))``.
    """
    best = next(views)
    taps = None
    for n, seen in enumerate(views, start=1):
        if want_taps:
            better = np.greater(seen, best)
            if has_nan:
                better |= np.isnan(seen)
            if taps is None:  # n = 1: the tap is 1 where the second view is better, else 0
                taps = better.astype(np.int16)
            else:
                # n only grows, so "the tap becomes n where better" is a maximum: plain arithmetic,
                # several times faster than np.where or a masked copy on an image's maps.
                np.maximum(taps, np.multiply(better, np.int16(n), dtype=np.int16), out=taps)
        if n > 1:
            np.maximum(best, seen, out=best)
        else:
            best = np.maximum(best, seen)  # a new array (the first view is the input); propagates NaN
    if want_taps and taps is None:  # a single view: it wins everywhere
        taps = np.zeros(best.shape, dtype=np.int16)
    return best, taps


def _max_pool(
    xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int, want_taps: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Max pooling of the (padded) ``xp`` in two passes: within each window row the maximum over its kW
    columns, then over the window's kH rows. Returns the maxima and, with ``want_taps``, the winning tap's
    row and column within the window.

    The maximum is separable, and so is the winner when the columns go first: the window's first maximum
    in reading order lies in its first row holding the maximum, at that row's first maximum. That is
    torch's winner. Two passes touch kW + kH values per output instead of kH·kW, each a whole-array
    operation: several times faster than torch's own CPU kernel on an image's maps (bench_ops).
    """
    has_nan = False
    while True:
        cols = (xp[..., _tap_slice(j, sw, ow)] for j in range(kw))  # (..., Hp, W'): tap column j, all rows
        row_max, col_tap = _running_max(cols, want_taps, has_nan)
        rows = (row_max[..., _tap_slice(i, sh, oh), :] for i in range(kh))  # (..., H', W')
        out, row_tap = _running_max(rows, want_taps, has_nan)
        if col_tap is None or row_tap is None:
            return out, None, None
        # A window holding a NaN has NaN as its maximum (np.maximum propagates it), so one look at the
        # maxima tells whether the winners need the NaN rule: rarely, so only then the passes run again.
        if has_nan or not np.isnan(np.max(out)):
            break
        has_nan = True
    # The column that won in the row that won: col_tap at window row row_tap, gathered by arithmetic.
    first = col_tap[..., _tap_slice(0, sh, oh), :]
    won_col = first.copy()
    for i in range(1, kh):
        won_col += (row_tap == i) * (col_tap[..., _tap_slice(i, sh, oh), :] - first)
    return out, row_tap, won_col


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
    of the input element that won its window, as ``torch.nn.functional.max_pool2d(..., return_indices=True)``
    (the first maximum in reading order; a NaN wins, the last one if there are several).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    if return_indices and mode != "max":
        raise ValueError("only max pooling has a winning element per window")
    x = np.asarray(x)
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(x.shape, size, stride, padding)
    dtype = _result_dtype(x)
    xp = _pad_hw(x.astype(dtype, copy=False), ph, pw, -np.inf if mode == "max" else 0.0)
    if mode == "max":
        out, row_tap, col_tap = _max_pool(xp, kh, kw, sh, sw, oh, ow, return_indices)
        if out.base is not None:  # 1×1 windows: the maxima are x itself; give a copy, never a view
            out = out.copy()
        if not return_indices:
            return out
        assert row_tap is not None and col_tap is not None
        # Output cell (r, c) sees input row r·s − p + i for window row i (and the same for columns).
        width = x.shape[-1]
        corner = (np.arange(oh)[:, None] * sh - ph) * width + (np.arange(ow)[None, :] * sw - pw)
        offset = np.multiply(row_tap, width, dtype=np.int32 if kh * width < 2**31 else np.int64)
        offset += col_tap
        winners = np.add(offset, corner, dtype=np.int64)  # int64, as torch's indices
        lost = out == -np.inf  # every real cell −∞: torch keeps the window's first real cell, not padding
        if (ph or pw) and lost.any():
            first = (np.maximum(np.arange(oh) * sh - ph, 0)[:, None] * width) + np.maximum(
                np.arange(ow) * sw - pw, 0
            )[None, :]
            winners[lost] = np.broadcast_to(first, winners.shape)[lost]
        return out, winners
    lead = x.shape[:-2]
    out = np.zeros((*lead, oh, ow), dtype=dtype)
    for i in range(kh):
        rows = _tap_slice(i, sh, oh)
        for j in range(kw):
            out += xp[..., rows, _tap_slice(j, sw, ow)]
    if mode == "avg":
        out /= kh * kw
    return out


def pool2d_backward(
    x: np.ndarray,
    grad_out: np.ndarray,
    size: IntPair,
    stride: IntPair | None = None,
    mode: str = "max",
    padding: IntPair = 0,
    winners: np.ndarray | None = None,
) -> np.ndarray:
    """Route an upstream gradient back through pooling: the gradient with respect to ``x``.

    max: each output's gradient goes to the element that won its window (added up where windows overlap
    and share a winner); avg: spread evenly, 1/(kH·kW) to every element of the window; sum: copied to
    every element of the window. Same numbers as torch autograd. ``winners`` are the max pool's indices
    from :func:`pool2d` (``return_indices=True``) when the caller has them already.
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
        if winners is None:
            _, winners = pool2d(x, size, stride, "max", padding, return_indices=True)
        elif winners.shape != grad_out.shape:
            raise ValueError(f"the winners must have the pooled shape {grad_out.shape}, got {winners.shape}")
        winner = winners
        h, w = x.shape[-2:]
        planes = int(np.prod(x.shape[:-2], dtype=np.int64))
        offsets = (np.arange(planes) * (h * w)).reshape((*x.shape[:-2], 1, 1))
        where = (winner + offsets).ravel()
        if sh >= kh and sw >= kw:
            # Windows side by side (or apart) share no cell, so no cell wins twice: a plain scatter is exact
            # (the same numbers as the sum below), several times quicker on an image's maps.
            flat = np.zeros(planes * h * w, dtype=dtype)
            flat[where] = grad_out.ravel()
            return flat.reshape(x.shape)
        flat = np.bincount(where, weights=grad_out.astype(np.float64).ravel(), minlength=planes * h * w)
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


def softmax_channels(x: np.ndarray) -> np.ndarray:
    """Softmax across channels: at every position of a (C, H, W) map, the C values become probabilities.

    A map with fewer dimensions ((H, W), or a vector of x values) is a single channel, and the softmax of a
    single value is always 1: softmax compares channels, so it needs at least two of them.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        return softmax(x, axis=0)
    return np.ones(x.shape, dtype=_result_dtype(x))


@dataclass(frozen=True)
class Activation:
    name: str  # the key used by :func:`activate`
    label: str  # for menus
    formula: str  # for the page, e.g. "max(0, x)"
    fn: Callable[..., np.ndarray]
    param: str | None = None  # name of its parameter, if any
    default: float = 0.0
    derivative: str = ""  # f′(x) written out, for the page


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("none", "None (identity)", "x", identity, derivative="1"),
        Activation("relu", "ReLU", "max(0, x)", relu, derivative="1 if x > 0 else 0"),
        Activation(
            "leaky_relu",
            "Leaky ReLU",
            "x if x ≥ 0 else slope·x",
            leaky_relu,
            "slope",
            0.01,
            derivative="1 if x > 0 else slope",
        ),
        Activation(
            "elu", "ELU", "x if x > 0 else α·(eˣ − 1)", elu, "alpha", 1.0, derivative="1 if x > 0 else α·eˣ"
        ),
        Activation("sigmoid", "Sigmoid", "1 / (1 + e⁻ˣ)", sigmoid, derivative="σ(x)·(1 − σ(x))"),
        Activation("tanh", "Tanh", "tanh(x)", tanh, derivative="1 − tanh²(x)"),
        Activation(
            "softmax",
            "Softmax (across channels)",
            "pᵢ = eˣⁱ / Σⱼ eˣʲ over the channels at each position",
            softmax_channels,
            derivative="∂pᵢ/∂xⱼ = pᵢ·(δᵢⱼ − pⱼ)",
        ),
    )
}


def _activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def activate(x: np.ndarray, name: str, param: float | None = None) -> np.ndarray:
    """Apply the activation called ``name`` (see :data:`ACTIVATIONS`); ``param`` is its slope/alpha.

    All but softmax work element by element; softmax works across the channels (axis 0) of a (C, H, W)
    map, see :func:`softmax_channels`.
    """
    act = _activation(name)
    if act.param is None:
        return act.fn(x)
    return act.fn(x, act.default if param is None else param)


def activation_derivative(x: np.ndarray, name: str, param: float | None = None) -> np.ndarray:
    """f′(x) element by element, with torch's choice at the kinks (ReLU′(0) = 0, leaky ReLU′(0) = slope,
    ELU′(0) = α), so multiplying by it gives autograd's numbers.

    Where the curve is flat the derivative is (nearly) 0: a saturated sigmoid or tanh, or ReLU left of 0,
    passes no gradient back. For softmax this is the diagonal of its Jacobian across channels,
    ∂pᵢ/∂xᵢ = pᵢ·(1 − pᵢ); the backward pass needs the whole Jacobian, see :func:`activation_backward`.
    """
    act = _activation(name)
    x = np.asarray(x)
    dtype = _result_dtype(x)
    xf = x.astype(dtype, copy=False)
    p = act.default if param is None else param
    one = dtype.type(1)
    if name == "none":
        return np.ones(x.shape, dtype)
    if name == "relu":
        return (xf > 0).astype(dtype)  # 1 and 0, as np.where(x > 0, 1, 0) but several times quicker
    if name == "leaky_relu":
        return np.where(xf > 0, one, dtype.type(p))
    if name == "elu":
        return np.where(xf > 0, one, dtype.type(p) * np.exp(np.minimum(xf, 0)))
    if name == "sigmoid":
        s = sigmoid(xf)
        return s * (1 - s)
    if name == "tanh":
        t = np.tanh(xf)
        return 1 - t * t
    probs = softmax_channels(xf)  # softmax: the only one left
    return probs * (1 - probs)


def activation_backward(
    x: np.ndarray, upstream: np.ndarray, name: str, param: float | None = None
) -> np.ndarray:
    """The gradient with respect to the activation's input ``x``, given ``upstream`` = dL/d f(x).

    Element-wise activations: upstream · f′(x). Softmax across channels: the Jacobian-vector product
    pᵢ·(gᵢ − Σⱼ gⱼ·pⱼ) at every position (g = upstream), which is what torch autograd computes.
    """
    upstream = np.asarray(upstream)
    if upstream.shape != np.shape(x):
        raise ValueError(f"the upstream gradient has shape {upstream.shape}, the activation {np.shape(x)}")
    if name == "relu":  # upstream · (1 or 0) in one pass: the same numbers, without the derivative's array
        x = np.asarray(x)
        return np.multiply(upstream, x > 0, dtype=_result_dtype(x, upstream))
    if name != "softmax":
        return upstream * activation_derivative(x, name, param)
    probs = softmax_channels(x)
    if probs.ndim != 3:  # a single channel: p = 1 whatever x is, so nothing flows back
        return np.zeros(upstream.shape, _result_dtype(probs, upstream))
    return probs * (upstream - np.sum(upstream * probs, axis=0, keepdims=True))


def activation_curve(
    name: str, param: float | None = None, xs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(f(xs), f′(xs)) for drawing an activation with its derivative, so saturation is visible.

    ``xs`` defaults to 201 points from −6 to 6. Softmax is drawn for two channels, the second at 0:
    p = eˣ/(eˣ + e⁰), which is the sigmoid, with ∂p/∂x = p·(1 − p).
    """
    xs = np.linspace(-6.0, 6.0, 201) if xs is None else np.asarray(xs, dtype=np.float64)
    if name == "softmax":
        pair = np.stack([xs, np.zeros_like(xs)])  # (2, N): channel 0 is x, channel 1 is 0
        probs = softmax(pair, axis=0)[0]
        return probs, probs * (1 - probs)
    return activate(xs, name, param), activation_derivative(xs, name, param)


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


@dataclass(frozen=True)
class ConvBackwardStep:
    """One value of dL/dx and everything that produced it: the backward pass's step panel.

    The window is shown the way the full correlation reads it: over the upstream gradient, with the kernel
    flipped by 180°. Element [f, a, b] pairs the upstream cell (``out_rows[a]``, ``out_cols[b]``) of filter f
    with tap (kH − 1 − a, kW − 1 − b) of that filter's slice for ``channel``. Taps that reach no upstream
    cell (off the edge, or between the cells of a strided output) are not ``connected`` and count 0.
    """

    index: int  # position of the input cell in reading order, 0-based
    count: int  # number of input cells (H·W)
    channel: int  # input channel
    in_row: int
    in_col: int
    out_rows: np.ndarray  # (kH,) upstream row under each row of the flipped kernel; −1 where none
    out_cols: np.ndarray  # (kW,)
    connected: np.ndarray  # (kH, kW) booleans: the tap reaches an upstream cell
    upstream: np.ndarray  # (F, kH, kW): the upstream gradient under the window (0 where not connected)
    flipped_kernel: np.ndarray  # (F, kH, kW): w[f, channel] rotated by 180°
    products: np.ndarray  # upstream · flipped_kernel, element-wise
    per_filter: np.ndarray  # (F,) Σ of each filter's products
    total: float  # Σ products: dL/dx[channel, in_row, in_col]

    def as_conv_step(self) -> ConvStep:
        """The same arithmetic as a :class:`ConvStep`, for the forward pass's step panel: the upstream
        window as the patch, the flipped kernel as the kernel, one row per filter, no bias."""
        squeeze = self.upstream.shape[0] == 1
        pick = (lambda a: a[0]) if squeeze else (lambda a: a)
        return ConvStep(
            index=self.index,
            count=self.count,
            out_row=self.in_row,
            out_col=self.in_col,
            rows=self.out_rows,
            cols=self.out_cols,
            patch=pick(self.upstream),
            kernel=pick(self.flipped_kernel),
            products=pick(self.products),
            total=self.total,
            bias=0.0,
            value=self.total,
            in_padding=~self.connected,
        )


def _upstream_index(position: int, offset: np.ndarray, stride: int, count: int) -> np.ndarray:
    """For each tap offset, the output index o with o·stride + offset = position, or −1 if none."""
    numerator = position - offset
    o = numerator // stride
    ok = (numerator % stride == 0) & (o >= 0) & (o < count)
    return np.where(ok, o, -1)


def conv_backward_step(
    grad_out: np.ndarray,
    weight: np.ndarray,
    in_hw: tuple[int, int],
    index: int,
    channel: int = 0,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> ConvBackwardStep:
    """The ``index``-th input cell (reading order) of dL/dx for ``channel``, with its arithmetic.

    ``grad_out`` is the upstream gradient at the convolution's output: (H', W') for a single filter or
    (F, H', W'); ``weight`` is (kH, kW), (C, kH, kW) or (F, C, kH, kW) as for :func:`conv2d`; ``in_hw`` is
    the input's (H, W). Input row r is seen by tap i of output row o when o·s − p + i·d = r.
    """
    g = np.asarray(grad_out)
    w = np.asarray(weight)
    w = w[None, None] if w.ndim == 2 else (w[None] if w.ndim == 3 else w)
    if w.ndim != 4:
        raise ValueError(
            f"the kernel must be (kH, kW), (C, kH, kW) or (F, C, kH, kW), got {np.shape(weight)}"
        )
    g = g[None] if g.ndim == 2 else g
    n_filters, n_channels, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = _conv_pairs(stride, padding, dilation)
    h, wd = (_check_int(v, "input size", 1) for v in in_hw)
    oh, ow = conv_output_shape((h, wd), (kh, kw), stride, padding, dilation)
    if g.shape != (n_filters, oh, ow):
        raise ValueError(
            f"the upstream gradient must be {(n_filters, oh, ow)} for these settings, got {g.shape}"
        )
    if not 0 <= channel < n_channels:
        raise IndexError(f"channel {channel} is outside 0…{n_channels - 1}")
    count = h * wd
    if not 0 <= index < count:
        raise IndexError(f"step {index} is outside 0…{count - 1}")
    r, c = divmod(index, wd)
    flipped_taps_r = (kh - 1 - np.arange(kh)) * dh  # row offset of the tap under flipped row a
    flipped_taps_c = (kw - 1 - np.arange(kw)) * dw
    out_rows = _upstream_index(r + ph, flipped_taps_r, sh, oh)
    out_cols = _upstream_index(c + pw, flipped_taps_c, sw, ow)
    connected = (out_rows >= 0)[:, None] & (out_cols >= 0)[None, :]
    dtype = _result_dtype(g, w)
    upstream = np.zeros((n_filters, kh, kw), dtype=dtype)
    rows_ok, cols_ok = np.flatnonzero(out_rows >= 0), np.flatnonzero(out_cols >= 0)
    upstream[:, rows_ok[:, None], cols_ok[None, :]] = g[
        :, out_rows[rows_ok][:, None], out_cols[cols_ok][None, :]
    ]
    flipped = w[:, channel, ::-1, ::-1].astype(dtype)
    products = upstream * flipped
    per_filter = products.sum(axis=(1, 2))
    return ConvBackwardStep(
        index=index,
        count=count,
        channel=channel,
        in_row=r,
        in_col=c,
        out_rows=out_rows,
        out_cols=out_cols,
        connected=connected,
        upstream=upstream,
        flipped_kernel=np.ascontiguousarray(flipped),
        products=products,
        per_filter=per_filter,
        total=float(per_filter.sum()),
    )


# ---------------------------------------------------------------------------------------------------
# Parameters: convolution versus fully connected
# ---------------------------------------------------------------------------------------------------
def conv_param_count(kernel: IntPair, in_channels: int, filters: int, bias: bool = True) -> int:
    """kH·kW·C_in·F (+ F biases)."""
    kh, kw = _pair(kernel, "kernel")
    return kh * kw * in_channels * filters + (filters if bias else 0)


def conv_macs(kernel: IntPair, in_channels: int, filters: int, out_hw: IntPair, groups: int = 1) -> int:
    """Multiply-adds of a convolution: kH·kW·(C_in/groups)·F for each of the H'·W' output positions."""
    kh, kw = _pair(kernel, "kernel")
    oh, ow = _pair(out_hw, "output size")
    if in_channels % groups or filters % groups:
        raise ValueError(
            f"{in_channels} input and {filters} output channels do not split into {groups} groups"
        )
    return kh * kw * (in_channels // groups) * filters * oh * ow


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
    dense_bias: bool | None = None,
) -> ParamComparison:
    """This conv layer's parameters versus a fully-connected layer from the same input to the same output.

    ``in_shape`` is (C, H, W). The fully-connected layer maps all C·H·W inputs to ``out_features`` outputs,
    by default F·H'·W' (what the convolution produces). ``dense_bias`` says whether its biases count
    (default: as ``bias``); the course counts the conv layer's biases but only the dense layer's weights.
    """
    c, h, w = in_shape
    kh, kw = _pair(kernel, "kernel")
    if out_features is None:
        oh, ow = conv_output_shape((h, w), (kh, kw), stride, padding, dilation)
        out_features = filters * oh * ow
    n_in = c * h * w
    conv = conv_param_count((kh, kw), c, filters, bias)
    dense_bias = bias if dense_bias is None else dense_bias
    dense = dense_param_count(n_in, out_features, dense_bias)
    conv_formula = f"{kh}·{kw}·{c}·{filters}" + (f" + {filters}" if bias else "") + f" = {conv:,}"
    dense_formula = (
        f"{n_in:,}·{out_features:,}" + (f" + {out_features:,}" if dense_bias else "") + f" = {dense:,}"
    )
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


# The lab's pipeline moved to core/lab.py; these names stay importable from here. Imported lazily because
# lab.py builds on this module.
_LAB_NAMES = ("LabResult", "LabSettings", "lab_weight", "run_lab")


def __getattr__(name: str) -> object:
    if name in _LAB_NAMES:
        from cnn_explorer.core import lab

        return getattr(lab, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
