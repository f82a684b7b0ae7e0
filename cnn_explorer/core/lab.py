"""The operations lab: convolution → activation → pooling, forward and backward, on numpy arrays.

A page calls these from a worker and shows the numpy arrays they return; the CLI (``cnn-explorer lab``)
writes the same numbers to JSON. Nothing here knows about Qt. The arithmetic itself lives in
:mod:`cnn_explorer.core.ops` (one function per fact); this module strings it into the lab's pipeline.

Shapes: the input is (H, W) or (C_in, H, W) with C_in = 1…3 (grayscale, or an image's RGB channels).
Each stage's maps are (H, W) when the stage has a single channel and (C, H, W) otherwise, so one filter on a
2-D input still gives 2-D maps; :meth:`LabResult.maps` always gives (C, H, W).

Public API
----------
Pipeline
    LabSettings(kernel, bias=0.0, stride=1, padding=0, dilation=1, activation="relu", activation_param=None,
                pool_mode="max", pool_size=2, pool_stride=None, pool_padding=0, conv=True, weights=None,
                biases=None)                   what the lab computes; weights (F, C_in, kH, kW), biases (F,)
                                               .stages_on, .with_filters(bank) -> LabSettings
    run_lab(x, settings, control=None) -> LabResult
                                               the stages that are on; an off stage passes its input through
    LabResult                                  input, weight, conv, activated, pooled, winners, settings,
                                               filters, biases, messages; .output, .stages, .maps(name),
                                               .param_comparison(out_features=None, dense_bias=None)
    LabStage(name, title, input, output, size_formula)
                                               one stage that is on, for drawing and for the CLI's JSON
    lab_filters(x_shape, settings) -> (weights (F, C, kH, kW), biases (F,))
                                               the filter bank the convolution applies
    lab_weight(x_shape, kernel) -> ndarray     the single kernel repeated on every channel (as before)
    STAGES, MAX_IN_CHANNELS (3), MAX_FILTERS (8)

Filter banks
    FilterBank(weights, biases, names)         .filters, .in_channels, .kernel_size, .param_count
    default_filters(kernel, in_channels=1, filters=1) -> FilterBank
                                               filter 0 = the kernel on every channel, then other presets
    filters_from_presets(names, in_channels=1) -> FilterBank
                                               one preset kernel per filter, on every channel
    channel_mixing_filters(names=None) -> FilterBank
                                               1×1 filters on RGB, (F, 3, 1, 1): grey, red minus green, …

Activations (ops.ACTIVATIONS: none, relu, leaky_relu, elu, sigmoid, tanh, softmax; each has .formula and
.derivative text)
    ops.activation_curve(name, param=None, xs=None) -> (f(xs), f′(xs))
                                               a curve and its derivative (softmax: two channels, one at 0)
    ops.activation_derivative(x, name, param=None) -> f′(x)
                                               element-wise, torch's value at the kinks; softmax: pᵢ(1 − pᵢ)
    ops.activation_backward(x, upstream, name, param=None) -> dL/dx
                                               upstream·f′(x); softmax: the Jacobian-vector product
    softmax_at(maps, y, x) -> SoftmaxBreakdown the channel vector at one position, its exps, Σ, p, as text
    SOFTMAX_ONE_CHANNEL                        the message a one-channel softmax stage adds to LabResult

Backward
    UPSTREAM_KINDS = ("ones", "random", "cell")
    upstream_gradient(kind, shape, *, cell=None, seed=0) -> ndarray
                                               a gradient to start the backward pass from
    lab_backward(result, upstream) -> LabGradients
                                               through pooling, the activation and the convolution
    LabGradients                               upstream, d_activated, d_conv, d_input, d_weight, d_bias;
                                               .input_gradient(stage)
    backward_step(result, gradients, index, channel=0) -> ops.ConvBackwardStep
                                               one cell of dL/dx: upstream cells × flipped taps, their sum;
                                               .as_conv_step() feeds the forward step panel
    (primitives: ops.conv2d_backward(x, weight, grad_out, stride, padding, dilation) -> ConvGradients,
     ops.pool2d_backward(..., winners=None), ops.conv_backward_step(grad_out, weight, in_hw, index, …))

Pooling step mode
    pool_step(x, settings, out_row, out_col, *, channel=0) -> PoolStep
                                               one pooling window: its cells, max/mean/sum, the winner

Training, one step
    sgd_momentum_step(w, v, grad, lr, momentum=0.9, weight_decay=0.0005) -> (w_new, v_new)

The course's worked examples
    CourseExample(key, title, caption, input, settings, expected_output, expected_shape, expected_params,
                  dense_outputs, expected_dense_params, dense_bias, names)
                                               .run() -> LabResult, .param_comparison()
    keys: conv-4x4, max-pool-4x4, avg-pool-4x4, sum-pool-4x4, lenet-layer-1, conv-vs-dense (16 filters:
    more than MAX_FILTERS, the page shows it as it comes), edges-6x6

Design calculators (parameters and multiply-adds of 5×5 vs 3×3+3×3, k×k vs k×1+1×k, depthwise separable,
1×1 bottleneck, receptive-field growth) live in :mod:`cnn_explorer.core.design`.
    COURSE_EXAMPLES: tuple[CourseExample, ...]; course_example(key) -> CourseExample
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.kernels import (
    CHANNEL_MIXES,
    COURSE_KERNEL,
    COURSE_MATRIX,
    KERNEL_PRESETS,
    input_preset,
    kernel_preset,
    validate_kernel,
)
from cnn_explorer.core.ops import (
    ACTIVATIONS,
    POOL_MODES,
    ConvBackwardStep,
    ParamComparison,
    activate,
    activation_backward,
    compare_params,
    conv2d,
    conv2d_backward,
    conv_backward_step,
    conv_param_count,
    format_number,
    output_size,
    output_size_formula,
    pool2d,
    pool2d_backward,
)

STAGES = ("conv", "activation", "pool")
MAX_IN_CHANNELS = 3  # grayscale, or an image's red, green and blue
MAX_FILTERS = 8  # what the lab's page offers; the core itself takes any number


# ---------------------------------------------------------------------------------------------------
# Settings and the forward pipeline
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabSettings:
    """What the lab computes. Every stage can be off: the input then goes straight to the next one.

    The convolution applies ``weights`` (F, C_in, kH, kW) with ``biases`` (F,) when given; otherwise the
    single 2-D ``kernel`` on every input channel with ``bias`` (one filter, as the lab always did).
    ``biases`` None means ``bias`` for every filter. ``activation`` "none" and ``pool_mode`` "none" switch
    those stages off; ``conv`` False switches the convolution off. Softmax works across the output channels
    at every position, so it needs at least two filters (or channels).
    """

    kernel: np.ndarray  # (kH, kW); used on every input channel when `weights` is None
    bias: float = 0.0
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    activation: str = "relu"  # a key of ops.ACTIVATIONS; "none" is off
    activation_param: float | None = None
    pool_mode: str = "max"  # "max" | "avg" | "sum" | "none"
    pool_size: int = 2
    pool_stride: int | None = None  # None: the pool size (windows side by side)
    pool_padding: int = 0
    conv: bool = True  # False: no convolution, the input goes to the activation
    weights: np.ndarray | None = None  # (F, C_in, kH, kW): one kH×kW kernel per input channel per filter
    biases: np.ndarray | None = None  # (F,)

    @property
    def stages_on(self) -> tuple[str, ...]:
        """The names of the stages that run, in order (a subset of :data:`STAGES`)."""
        on = {"conv": self.conv, "activation": self.activation != "none", "pool": self.pool_mode != "none"}
        return tuple(name for name in STAGES if on[name])

    def with_filters(self, bank: FilterBank) -> LabSettings:
        """These settings with ``bank``'s weights and biases for the convolution; the kernel stays."""
        return replace(self, weights=bank.weights, biases=bank.biases)


@dataclass(frozen=True)
class LabStage:
    """One stage that is on: what went in, what came out, and how the output size follows."""

    name: str  # "conv" | "activation" | "pool"
    title: str  # e.g. "Convolution 3×3, 8 filters, stride 1, padding 0"
    input: np.ndarray  # (H, W) or (C, H, W), as in the result
    output: np.ndarray
    size_formula: tuple[str, str] | None  # (rows, columns) output-size formula; None: size unchanged


@dataclass(frozen=True)
class LabResult:
    """The lab's numbers for one input. An off stage passes its input through: without a convolution
    ``conv`` is the input (as floats); with activation "none" ``activated`` is ``conv``."""

    input: np.ndarray  # (H, W) or (C, H, W) as given
    weight: np.ndarray  # (kH, kW) or (C, kH, kW) if `settings.weights` is None, else (F, C, kH, kW)
    conv: np.ndarray  # (H', W') for one filter, (F, H', W') for several
    activated: np.ndarray  # same shape as `conv`
    pooled: np.ndarray | None  # (H'', W'') or (F, H'', W''); None without pooling
    winners: (
        np.ndarray | None
    )  # max pooling: flat index row·W' + col into `activated` of each window's winner
    settings: LabSettings
    filters: np.ndarray | None = None  # (F, C, kH, kW) as applied; None when the convolution is off
    biases: np.ndarray | None = None  # (F,) as applied
    messages: tuple[str, ...] = ()  # notes for the page, e.g. why softmax on one channel gives 1 everywhere

    @property
    def output(self) -> np.ndarray:
        """The last stage's output."""
        return self.activated if self.pooled is None else self.pooled

    def maps(self, name: str) -> np.ndarray:
        """A stage's output ("input", "conv", "activation", "pool") as (C, H, W), even with one channel."""
        arrays = {"input": self.input, "conv": self.conv, "activation": self.activated, "pool": self.pooled}
        if name not in arrays:
            raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(arrays)}")
        a = arrays[name]
        if a is None:
            raise ValueError("pooling is off, so there is no pooled map")
        return a[None] if a.ndim == 2 else a

    @property
    def stages(self) -> tuple[LabStage, ...]:
        """The stages that are on, in order, each with its input, output and output-size formula."""
        s = self.settings
        out: list[LabStage] = []
        current = self.input
        for name in s.stages_on:
            if name == "conv":
                assert self.filters is not None
                f, _, kh, kw = self.filters.shape
                formula = (
                    output_size_formula(current.shape[-2], kh, s.stride, s.padding, s.dilation),
                    output_size_formula(current.shape[-1], kw, s.stride, s.padding, s.dilation),
                )
                plural = "s" if f > 1 else ""
                title = f"Convolution {kh}×{kw}, {f} filter{plural}, stride {s.stride}, padding {s.padding}"
                if s.dilation != 1:
                    title += f", dilation {s.dilation}"
                out.append(LabStage(name, title, current, self.conv, formula))
                current = self.conv
            elif name == "activation":
                out.append(LabStage(name, ACTIVATIONS[s.activation].label, current, self.activated, None))
                current = self.activated
            else:
                assert self.pooled is not None
                k, stride = s.pool_size, s.pool_stride or s.pool_size
                formula = (
                    output_size_formula(current.shape[-2], k, stride, s.pool_padding),
                    output_size_formula(current.shape[-1], k, stride, s.pool_padding),
                )
                title = f"{s.pool_mode} pooling {k}×{k}, stride {stride}"
                if s.pool_padding:
                    title += f", padding {s.pool_padding}"
                out.append(LabStage(name, title, current, self.pooled, formula))
        return tuple(out)

    def param_comparison(
        self, out_features: int | None = None, dense_bias: bool | None = None
    ) -> ParamComparison | None:
        """The convolution's parameters (k·k·C_in·F + F) next to a fully-connected layer's; None without
        a convolution. See :func:`cnn_explorer.core.ops.compare_params`."""
        if self.filters is None:
            return None
        s = self.settings
        c, h, w = self.maps("input").shape
        f, _, kh, kw = self.filters.shape
        return compare_params(
            (c, h, w),
            (kh, kw),
            f,
            s.stride,
            s.padding,
            s.dilation,
            out_features=out_features,
            dense_bias=dense_bias,
        )


def lab_weight(x_shape: tuple[int, ...], kernel: np.ndarray) -> np.ndarray:
    """The lab's single filter: the 2-D kernel, repeated on every channel of a (C, H, W) input."""
    kernel = np.asarray(kernel)
    if len(x_shape) == 3:
        return np.repeat(kernel[None], x_shape[0], axis=0)
    return kernel


def _channels(x_shape: tuple[int, ...]) -> int:
    if len(x_shape) not in (2, 3):
        raise ValueError(f"the input must be (H, W) or (C, H, W), got shape {tuple(x_shape)}")
    return 1 if len(x_shape) == 2 else int(x_shape[0])


def lab_filters(x_shape: tuple[int, ...], settings: LabSettings) -> tuple[np.ndarray, np.ndarray]:
    """The filter bank the convolution applies to an input of ``x_shape``: (F, C, kH, kW) and (F,) biases.

    Raises ValueError naming the problem when ``settings.weights`` does not fit the input.
    """
    c = _channels(x_shape)
    if settings.weights is None:
        weights = np.repeat(np.asarray(settings.kernel)[None, None], c, axis=1)
    else:
        weights = np.asarray(settings.weights)
        if weights.ndim != 4:
            raise ValueError(f"the filter bank must be (filters, channels, kH, kW), got {weights.shape}")
        if weights.shape[1] != c:
            raise ValueError(
                f"the filters have {weights.shape[1]} channel(s) each but the input has {c}; "
                "each filter needs one kernel per input channel"
            )
        if 0 in weights.shape:
            raise ValueError(f"the filter bank must not be empty, got shape {weights.shape}")
    n = weights.shape[0]
    if settings.biases is None:
        biases = np.full(n, float(settings.bias))
    else:
        biases = np.asarray(settings.biases, dtype=np.float64).reshape(-1)
        if biases.shape != (n,):
            raise ValueError(f"there are {n} filter(s) but {biases.size} bias(es); give one bias per filter")
    return weights, biases


def _squeeze(maps: np.ndarray) -> np.ndarray:
    return maps[0] if maps.shape[0] == 1 else maps


SOFTMAX_ONE_CHANNEL = (
    "Softmax shares probability out across the channels at each position; with a single channel every value "
    "becomes 1. Use two or more filters (or the RGB channels without a convolution) to see it compare them."
)


def run_lab(x: np.ndarray, settings: LabSettings, control: Control | None = None) -> LabResult:
    """Convolution → activation → pooling on ``x`` ((H, W) or (C, H, W)): what the lab shows.

    Each stage that is off passes its input on unchanged. Softmax works across the channels at every
    position (see :data:`SOFTMAX_ONE_CHANNEL` for what happens with one). ``control`` lets a worker cancel
    between stages.
    """
    s = settings
    x = np.asarray(x)
    _channels(x.shape)
    x3 = x[None] if x.ndim == 2 else x
    image = x.dtype == np.float32  # an image stays in float32: twice as fast, precise enough to show
    weight = lab_weight(x.shape, s.kernel) if s.weights is None else np.asarray(s.weights)
    if image:
        weight = weight.astype(np.float32)
    filters = biases = None
    if s.conv:
        filters, biases = lab_filters(x.shape, s)
        if image:
            filters, biases = filters.astype(np.float32), biases.astype(np.float32)
        maps = conv2d(x3, filters, biases, s.stride, s.padding, s.dilation)
    else:
        maps = x3 if np.issubdtype(x3.dtype, np.floating) else x3.astype(np.float64)
    checkpoint(control)
    messages = []
    if s.activation == "softmax" and maps.shape[0] == 1:
        messages.append(SOFTMAX_ONE_CHANNEL)
    activated = activate(maps, s.activation, s.activation_param)  # (C, H, W): softmax across channels
    checkpoint(control)
    pooled = winners = None
    if s.pool_mode == "max":
        pooled, winners = pool2d(
            activated, s.pool_size, s.pool_stride, "max", s.pool_padding, return_indices=True
        )
        pooled, winners = _squeeze(pooled), _squeeze(winners)
    elif s.pool_mode != "none":
        pooled = _squeeze(pool2d(activated, s.pool_size, s.pool_stride, s.pool_mode, s.pool_padding))
    if not s.stages_on:
        messages.append("Every stage is off: the output is the input.")
    return LabResult(
        input=x,
        weight=weight,
        conv=_squeeze(maps),
        activated=_squeeze(activated),
        pooled=pooled,
        winners=winners,
        settings=s,
        filters=filters,
        biases=biases,
        messages=tuple(messages),
    )


# ---------------------------------------------------------------------------------------------------
# Filter banks
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilterBank:
    """F filters of C_in kernels each, with a bias and a name per filter. Feed it to :class:`LabSettings`
    as ``weights=bank.weights, biases=bank.biases``."""

    weights: np.ndarray  # (F, C_in, kH, kW)
    biases: np.ndarray  # (F,)
    names: tuple[str, ...]  # one per filter, for labels

    @property
    def filters(self) -> int:
        return int(self.weights.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weights.shape[1])

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weights.shape[2]), int(self.weights.shape[3])

    @property
    def param_count(self) -> int:
        """k·k·C_in·F + F."""
        return conv_param_count(self.kernel_size, self.in_channels, self.filters)


# The presets that follow the edited kernel, in this order: each map shows something new.
_BANK_PRESETS = (
    "Sobel y",
    "Laplacian",
    "box blur",
    "Sobel x",
    "sharpen",
    "emboss",
    "Prewitt y",
    "Prewitt x",
    "Gaussian blur",
    "identity",
)


def _fit(values: np.ndarray, kh: int, kw: int) -> np.ndarray | None:
    """A preset at the bank's kernel size: as it is, or centred in zeros when it is smaller by an even
    amount on each side (a 3×3 preset in a 5×5 window is the same filter). None when it does not fit."""
    dh, dw = kh - values.shape[0], kw - values.shape[1]
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        return None
    return np.pad(values, ((dh // 2, dh // 2), (dw // 2, dw // 2)))


def _change(n: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def _generic_filters(kh: int, kw: int) -> list[tuple[str, np.ndarray]]:
    """Filters that make sense at any size (for even or 1-wide kernels no 3×3 preset fits)."""
    rows = _change(kh)[:, None] * np.ones((1, kw))
    cols = np.ones((kh, 1)) * _change(kw)[None, :]
    return [
        ("vertical change", rows),
        ("horizontal change", cols),
        ("average", np.full((kh, kw), 1.0 / (kh * kw))),
        ("diagonal change", rows + cols),
    ]


def _preset_name(kernel: np.ndarray) -> str:
    for name, preset in KERNEL_PRESETS.items():
        arr = preset.array
        if arr.shape == kernel.shape and np.array_equal(arr, kernel):
            return name
    return "your kernel"


def _random_filter(number: int, in_channels: int, kh: int, kw: int) -> np.ndarray:
    """A fixed 'random' filter (seeded by its number), scaled like a fresh layer (He), rounded to show."""
    rng = np.random.default_rng(number)
    scale = np.sqrt(2.0 / (in_channels * kh * kw))
    return np.round(rng.normal(0.0, scale, size=(in_channels, kh, kw)), 2)


def default_filters(kernel: np.ndarray, in_channels: int = 1, filters: int = 1) -> FilterBank:
    """A filter bank to start from: filter 0 is ``kernel`` on every input channel, the others are other
    presets (Sobel y, Laplacian, box blur, Sobel x, sharpen, …) at the kernel's size, also on every channel.

    A 3×3 preset is centred in a larger odd window; for kernel sizes no preset fits (1×1, 2×2, 4×4, …)
    simple ramps and an average of that size are used. When those run out, fixed random filters follow.
    Biases are 0.
    """
    kernel = validate_kernel(kernel)
    if isinstance(in_channels, bool) or not 1 <= int(in_channels) <= MAX_IN_CHANNELS:
        raise ValueError(f"input channels must be 1 to {MAX_IN_CHANNELS}, got {in_channels!r}")
    if isinstance(filters, bool) or int(filters) < 1:
        raise ValueError(f"the number of filters must be at least 1, got {filters!r}")
    in_channels, filters = int(in_channels), int(filters)
    kh, kw = kernel.shape
    chosen: list[tuple[str, np.ndarray]] = [(_preset_name(kernel), kernel)]
    candidates = [(n, _fit(KERNEL_PRESETS[n].array, kh, kw)) for n in _BANK_PRESETS]
    usable = [(n, v) for n, v in candidates if v is not None]
    if len(usable) < len(candidates):
        usable += _generic_filters(kh, kw)
    for name, values in usable:
        if len(chosen) == filters:
            break
        if np.any(values) and not any(np.array_equal(values, v) for _, v in chosen):
            chosen.append((name, values))
    weights = [np.repeat(v[None], in_channels, axis=0) for _, v in chosen]
    names = [n for n, _ in chosen]
    while len(weights) < filters:
        number = len(weights) - len(chosen) + 1
        weights.append(_random_filter(number, in_channels, kh, kw))
        names.append(f"random {number}")
    return FilterBank(np.stack(weights[:filters]), np.zeros(filters), tuple(names[:filters]))


def filters_from_presets(names: Sequence[str], in_channels: int = 1) -> FilterBank:
    """One preset kernel per filter, each on every input channel; the presets must share a size."""
    if not names:
        raise ValueError("name at least one kernel preset")
    kernels = [kernel_preset(n) for n in names]
    if len({k.shape for k in kernels}) > 1:
        sizes = ", ".join(f"{n} {k.shape[0]}×{k.shape[1]}" for n, k in zip(names, kernels, strict=True))
        raise ValueError(f"the filters of one layer share a kernel size; got {sizes}")
    weights = np.stack([np.repeat(k[None], in_channels, axis=0) for k in kernels])
    return FilterBank(weights, np.zeros(len(kernels)), tuple(names))


def channel_mixing_filters(names: Sequence[str] | None = None) -> FilterBank:
    """1×1 convolutions on an RGB input, shape (F, 3, 1, 1): each output pixel is a weighted sum of that
    pixel's red, green and blue, with no neighbours. ``names`` are keys of
    :data:`cnn_explorer.core.kernels.CHANNEL_MIXES` (default: all of them)."""
    chosen = list(CHANNEL_MIXES) if names is None else list(names)
    unknown = [n for n in chosen if n not in CHANNEL_MIXES]
    if unknown or not chosen:
        raise ValueError(f"unknown channel mix {unknown!r}; choose from: {', '.join(CHANNEL_MIXES)}")
    weights = np.stack([CHANNEL_MIXES[n].array for n in chosen])  # (F, 3, 1, 1)
    return FilterBank(weights, np.zeros(len(chosen)), tuple(chosen))


# ---------------------------------------------------------------------------------------------------
# Softmax at one position
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SoftmaxBreakdown:
    """Softmax of the channel vector at one position, with the arithmetic written out."""

    row: int
    col: int
    values: np.ndarray  # (C,) the channel values at (row, col)
    shift: float  # subtracted from every value before exp (0 unless the values are large); p is unchanged
    exps: np.ndarray  # (C,) e^(value − shift)
    total: float  # Σ exps
    probabilities: np.ndarray  # (C,) exps / total; they add up to 1
    text: str  # "e^1.2 = 3.32, e^0.5 = 1.65; Σ = 4.97; p = 3.32/4.97 = 0.668, 1.65/4.97 = 0.332"


_SHIFT_ABOVE = 20.0  # e^20 ≈ 5·10⁸: beyond that the written-out exps stop being readable


def softmax_at(maps: np.ndarray, y: int, x: int) -> SoftmaxBreakdown:
    """Softmax across the channels of ``maps`` ((C, H, W); (H, W) is one channel) at row ``y``, column ``x``.

    The same numbers as the softmax stage of :func:`run_lab` at that position.
    """
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"softmax_at needs (C, H, W) or (H, W) maps, got shape {maps.shape}")
    h, w = maps.shape[1:]
    if not (0 <= y < h and 0 <= x < w):
        raise IndexError(f"position ({y}, {x}) is outside the {h}×{w} map")
    values = maps[:, y, x].astype(np.float64)
    shift = float(values.max()) if values.max() > _SHIFT_ABOVE else 0.0
    exps = np.exp(values - shift)
    total = float(exps.sum())
    probs = exps / total
    fmt = format_number
    if shift:
        pairs = zip(values, exps, strict=True)
        power = ", ".join(f"e^({fmt(v)} − {fmt(shift)}) = {fmt(e)}" for v, e in pairs)
        head = f"shifted by the largest value {fmt(shift)} (p does not change): "
    else:
        power = ", ".join(f"e^{fmt(v)} = {fmt(e)}" for v, e in zip(values, exps, strict=True))
        head = ""
    shares = ", ".join(f"{fmt(e)}/{fmt(total)} = {fmt(p)}" for e, p in zip(exps, probs, strict=True))
    text = f"{head}{power}; Σ = {fmt(total)}; p = {shares}"
    if len(values) == 1:
        text += " (one channel: p is always 1)"
    return SoftmaxBreakdown(y, x, values, shift, exps, total, probs, text)


# ---------------------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------------------
UPSTREAM_KINDS = ("ones", "random", "cell")


def upstream_gradient(
    kind: str, shape: tuple[int, ...], *, cell: Sequence[int] | None = None, seed: int = 0
) -> np.ndarray:
    """A gradient dL/d(output) to start the backward pass from, float64 of ``shape``.

    "ones": L is the sum of all outputs. "random": standard normal numbers (``seed``). "cell": L is one
    output, so its gradient is 1 there and 0 elsewhere; ``cell`` is (row, col) — that position in every
    channel — or (channel, row, col).
    """
    shape = tuple(int(v) for v in shape)
    if kind == "ones":
        return np.ones(shape)
    if kind == "random":
        return np.random.default_rng(seed).standard_normal(shape)
    if kind != "cell":
        raise ValueError(f"unknown upstream gradient {kind!r}; choose one of {', '.join(UPSTREAM_KINDS)}")
    if cell is None or len(cell) not in (2, 3):
        raise ValueError("a 'cell' gradient needs the cell as (row, col) or (channel, row, col)")
    grad = np.zeros(shape)
    h, w = shape[-2:]
    *channel, r, c = (int(v) for v in cell)
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"cell ({r}, {c}) is outside the {h}×{w} output")
    if channel:
        n = shape[0] if len(shape) == 3 else 1
        if not 0 <= channel[0] < n:
            raise ValueError(f"channel {channel[0]} is outside 0…{n - 1}")
        if len(shape) == 3:
            grad[channel[0], r, c] = 1.0
            return grad
    grad[..., r, c] = 1.0
    return grad


@dataclass(frozen=True)
class LabGradients:
    """dL/d(each stage's input), from an upstream gradient at the last stage's output.

    Each array has the shape of the value it belongs to in the :class:`LabResult`. An off stage passes the
    gradient through unchanged.
    """

    upstream: np.ndarray  # dL/d(result.output)
    d_activated: np.ndarray  # dL/d(result.activated): the pooling stage's input
    d_conv: np.ndarray  # dL/d(result.conv): the activation's input (× f′, so saturation shows as 0)
    d_input: np.ndarray  # dL/d(result.input): the convolution's input
    d_weight: np.ndarray | None  # (F, C, kH, kW); None when the convolution is off
    d_bias: np.ndarray | None  # (F,)

    def input_gradient(self, stage: str) -> np.ndarray:
        """The gradient with respect to a stage's input: "conv", "activation" or "pool"."""
        grads = {"conv": self.d_input, "activation": self.d_conv, "pool": self.d_activated}
        if stage not in grads:
            raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(grads)}")
        return grads[stage]


def lab_backward(result: LabResult, upstream: np.ndarray) -> LabGradients:
    """Back through the lab's stages from ``upstream`` = dL/d(result.output) (that shape, or (C, H, W)).

    Pooling: max sends each gradient to its window's winner, average spreads it evenly (÷ k²), sum copies
    it. Activation: × f′(x) (softmax: its Jacobian-vector product across channels). Convolution: dL/dx is
    the full correlation of the gradient with the flipped kernels summed over filters, dL/dW the correlation
    of the input with the gradient, dL/db its sum per map. The same numbers as torch autograd.
    """
    s = result.settings
    out3 = result.maps("pool" if result.pooled is not None else "activation")
    g = np.asarray(upstream)
    if g.shape not in (result.output.shape, out3.shape):
        raise ValueError(
            f"the upstream gradient must have the output's shape {result.output.shape}, not {g.shape}"
        )
    g = g.reshape(out3.shape)
    act3 = result.maps("activation")
    conv3 = result.maps("conv")
    if s.pool_mode != "none":
        winners = None if result.winners is None else result.winners.reshape(g.shape)
        g_act = pool2d_backward(act3, g, s.pool_size, s.pool_stride, s.pool_mode, s.pool_padding, winners)
    else:
        g_act = g
    if s.activation != "none":
        g_conv = activation_backward(conv3, g_act, s.activation, s.activation_param)
    else:
        g_conv = g_act
    d_weight = d_bias = None
    if s.conv:
        assert result.filters is not None
        grads = conv2d_backward(result.maps("input"), result.filters, g_conv, s.stride, s.padding, s.dilation)
        d_input, d_weight, d_bias = grads.input, grads.weight, grads.bias
    else:
        d_input = g_conv
    return LabGradients(
        upstream=g.reshape(result.output.shape),
        d_activated=g_act.reshape(result.activated.shape),
        d_conv=g_conv.reshape(result.conv.shape),
        d_input=d_input.reshape(result.input.shape),
        d_weight=d_weight,
        d_bias=d_bias,
    )


def backward_step(
    result: LabResult, gradients: LabGradients, index: int, channel: int = 0
) -> ConvBackwardStep:
    """The ``index``-th cell (reading order) of dL/dx for input ``channel``: which upstream cells and kernel
    taps meet there, their products and the sum, which equals ``gradients.d_input`` at that cell."""
    if result.filters is None:
        raise ValueError("the convolution is off, so the gradient passes to the input unchanged")
    s = result.settings
    h, w = result.input.shape[-2:]
    return conv_backward_step(
        gradients.d_conv.reshape(result.maps("conv").shape),
        result.filters,
        (h, w),
        index,
        channel,
        s.stride,
        s.padding,
        s.dilation,
    )


# ---------------------------------------------------------------------------------------------------
# Pooling, one window at a time
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolStep:
    """One pooling window and the value it produced."""

    mode: str  # "max" | "avg" | "sum"
    channel: int
    index: int  # position of the output in reading order, 0-based
    count: int  # number of output positions
    out_row: int
    out_col: int
    rows: np.ndarray  # (k,) input row under each window row; < 0 or ≥ H means padding
    cols: np.ndarray  # (k,)
    window: np.ndarray  # (k, k) values under the window; padding is −∞ for max, 0 otherwise
    in_padding: np.ndarray  # (k, k) booleans
    value: float  # max, mean (÷ k², padding included) or sum of the window
    winner: tuple[int, int] | None  # max: the input (row, col) that won (first in reading order on ties)
    winner_tap: tuple[int, int] | None  # max: its place in the window
    text: str  # "max(1, 2, 5, 6) = 6", "(1 + 2 + 5 + 6)/4 = 3.5", "1 + 2 + 5 + 6 = 14"


def pool_step(
    x: np.ndarray, settings: LabSettings, out_row: int, out_col: int, *, channel: int = 0
) -> PoolStep:
    """The pooling window behind output (``out_row``, ``out_col``) of ``channel``; ``x`` is the pooling
    stage's input ((H, W) or (C, H, W), e.g. ``result.activated``)."""
    s = settings
    if s.pool_mode not in POOL_MODES:
        raise ValueError(f"pooling is {s.pool_mode!r}; step mode needs one of {', '.join(POOL_MODES)}")
    x = np.asarray(x)
    x3 = x[None] if x.ndim == 2 else x
    if x3.ndim != 3 or not 0 <= channel < x3.shape[0]:
        raise IndexError(f"channel {channel} does not exist in an input of shape {x.shape}")
    k, stride, pad = s.pool_size, s.pool_stride or s.pool_size, s.pool_padding
    if pad > k // 2:
        raise ValueError(f"pool padding {pad} must be at most half the window size {k}")
    h, w = x3.shape[1:]
    oh, ow = output_size(h, k, stride, pad), output_size(w, k, stride, pad)
    if not (0 <= out_row < oh and 0 <= out_col < ow):
        raise IndexError(f"output ({out_row}, {out_col}) is outside the {oh}×{ow} pooled map")
    rows = out_row * stride - pad + np.arange(k)
    cols = out_col * stride - pad + np.arange(k)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    fill = -np.inf if s.pool_mode == "max" else 0.0
    window = np.full((k, k), fill)
    plane = x3[channel].astype(np.float64)
    window[inside] = plane[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]][inside]
    terms = [format_number(v) for v in window.ravel()]
    winner = winner_tap = None
    if s.pool_mode == "max":
        tap = int(np.argmax(window))  # the first maximum in reading order, as torch picks it
        winner_tap = divmod(tap, k)
        winner = (int(rows[winner_tap[0]]), int(cols[winner_tap[1]]))
        value = float(window.ravel()[tap])
        text = f"max({', '.join(terms)}) = {format_number(value)}"
    elif s.pool_mode == "avg":
        value = float(window.sum() / (k * k))
        text = f"({' + '.join(terms)})/{k * k} = {format_number(value)}"
    else:
        value = float(window.sum())
        text = f"{' + '.join(terms)} = {format_number(value)}"
    return PoolStep(
        mode=s.pool_mode,
        channel=channel,
        index=out_row * ow + out_col,
        count=oh * ow,
        out_row=out_row,
        out_col=out_col,
        rows=rows,
        cols=cols,
        window=window,
        in_padding=~inside,
        value=value,
        winner=winner,
        winner_tap=winner_tap,
        text=text.replace("+ −", "− "),
    )


# ---------------------------------------------------------------------------------------------------
# Training, one step at a time
# ---------------------------------------------------------------------------------------------------
def sgd_momentum_step(
    w: np.ndarray,
    v: np.ndarray,
    grad: np.ndarray,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0005,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of SGD with momentum and weight decay in the notes' form (AlexNet's update):

        v ← momentum·v − weight_decay·w − lr·∂L/∂w
        w ← w + v

    exactly as written, returning (w_new, v_new). In the AlexNet paper the decay term is also multiplied by
    the learning rate (0.0005·ε·w); here it is not, as in the notes. ``torch.optim.SGD`` keeps a buffer
    b ← momentum·b + ∂L/∂w + wd·w and steps w ← w − lr·b: the two give the same weights step after step
    when v starts at 0 and torch's ``weight_decay`` is this ``weight_decay / lr`` (then v = −lr·b).
    """
    w = np.asarray(w, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    if not (w.shape == v.shape == grad.shape):
        raise ValueError(f"w, v and the gradient need one shape, got {w.shape}, {v.shape} and {grad.shape}")
    v_new = momentum * v - weight_decay * w - lr * grad
    return w + v_new, v_new


# ---------------------------------------------------------------------------------------------------
# The course's worked examples
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CourseExample:
    """One of the notes' worked examples: its input and settings, and the numbers the page must show."""

    key: str  # stable name, e.g. "conv-4x4" (the CLI's --example)
    title: str
    caption: str  # one or two sentences for under the maps
    input: np.ndarray
    settings: LabSettings
    expected_output: np.ndarray | None  # the last stage's output, exactly (None: too big to list)
    expected_shape: tuple[int, ...]  # the last stage's output shape
    expected_params: int | None = None  # the convolution's parameters, k·k·C_in·F + F
    dense_outputs: int | None = None  # the fully-connected layer to compare with: its outputs
    expected_dense_params: int | None = None
    dense_bias: bool = True  # whether the fully-connected count includes its biases
    names: tuple[str, ...] = field(default=())  # the filters' names, one per filter

    def run(self, control: Control | None = None) -> LabResult:
        return run_lab(self.input, self.settings, control)

    def param_comparison(self) -> ParamComparison | None:
        """The conv layer against the fully-connected one the notes compare it with (None: no convolution)."""
        return self.run().param_comparison(self.dense_outputs, self.dense_bias)


def _ring(size: int = 32) -> np.ndarray:
    """A hand-drawn-looking zero: the kind of 32×32 digit LeNet-5 read."""
    r, c = np.indices((size, size)) - (size - 1) / 2
    dist = np.hypot(r / 1.25, c)
    return ((dist > 7) & (dist < 10.5)).astype(np.float64)


def _colour_ramps(size: int = 32) -> np.ndarray:
    """A 3×32×32 colour picture: red grows downwards, green to the right, blue is what red leaves."""
    ramp = np.arange(size, dtype=np.float64) / (size - 1)
    red = np.repeat(ramp[:, None], size, axis=1)
    return np.stack([red, red.T, 1 - red])


def _examples() -> tuple[CourseExample, ...]:
    matrix = input_preset(COURSE_MATRIX)
    plain = LabSettings(kernel=kernel_preset(COURSE_KERNEL), activation="none", pool_mode="none")
    pool = LabSettings(kernel=np.ones((1, 1)), conv=False, activation="none", pool_size=2)
    edges = filters_from_presets(["vertical edge", "horizontal edge"])
    lenet = default_filters(kernel_preset("Gaussian blur 5×5"), 1, 6)
    layer = default_filters(kernel_preset("Gaussian blur 5×5"), 3, 16)
    conv_only = LabSettings(kernel=kernel_preset("Gaussian blur 5×5"), activation="none", pool_mode="none")
    vertical = np.tile([0.0, 30.0, 30.0, 0.0], (4, 1))
    return (
        CourseExample(
            "conv-4x4",
            "Convolution, 4×4 input × 2×2 kernel",
            "Each output is the sum of the window's two anti-diagonal neighbours: 2 + 5 = 7, 3 + 6 = 9, …; "
            "a 4×4 input and a 2×2 kernel give ⌊(4 − 2)/1⌋ + 1 = 3 outputs a side.",
            matrix,
            plain,
            np.array([[7.0, 9, 11], [15, 17, 19], [23, 25, 27]]),
            (3, 3),
            expected_params=5,
            names=(COURSE_KERNEL,),
        ),
        CourseExample(
            "max-pool-4x4",
            "Max pooling 2×2, stride 2",
            "No convolution: each 2×2 window keeps its largest number, 6, 8, 14 and 16.",
            matrix,
            pool,
            np.array([[6.0, 8], [14, 16]]),
            (2, 2),
        ),
        CourseExample(
            "avg-pool-4x4",
            "Average pooling 2×2, stride 2",
            "The same windows, averaged: (1 + 2 + 5 + 6)/4 = 3.5, …",
            matrix,
            replace(pool, pool_mode="avg"),
            np.array([[3.5, 5.5], [11.5, 13.5]]),
            (2, 2),
        ),
        CourseExample(
            "sum-pool-4x4",
            "Sum pooling 2×2, stride 2",
            "The same windows, added up: 1 + 2 + 5 + 6 = 14, …",
            matrix,
            replace(pool, pool_mode="sum"),
            np.array([[14.0, 22], [46, 54]]),
            (2, 2),
        ),
        CourseExample(
            "lenet-layer-1",
            "LeNet-5, layer 1: 32×32×1 → 28×28×6",
            "Six 5×5 filters on a 32×32 digit: ⌊(32 − 5)/1⌋ + 1 = 28, so 28×28×6 maps, from "
            "5·5·1·6 + 6 = 156 parameters.",
            _ring(),
            conv_only.with_filters(lenet),
            None,
            (6, 28, 28),
            expected_params=156,
            names=lenet.names,
        ),
        CourseExample(
            "conv-vs-dense",
            "A conv layer against a fully-connected one",
            "Sixteen 5×5 filters on a 32×32×3 image need 5·5·3·16 + 16 = 1,216 parameters; a fully-connected "
            "layer from the same 3,072 inputs to 500 units needs 32·32·3·500 = 1,536,000 weights (the notes "
            "leave out its 500 biases).",
            _colour_ramps(),
            conv_only.with_filters(layer),
            None,
            (16, 28, 28),
            expected_params=1216,
            dense_outputs=500,
            expected_dense_params=1_536_000,
            dense_bias=False,
            names=layer.names,
        ),
        CourseExample(
            "edges-6x6",
            "A vertical and a horizontal edge detector",
            "Bright left, dark right: the vertical-edge kernel gives 30 where its window straddles the edge "
            "and 0 on flat ground; the horizontal-edge kernel sees no change from top to bottom: all 0.",
            input_preset("6×6 vertical edge"),
            conv_only.with_filters(edges),
            np.stack([vertical, np.zeros((4, 4))]),
            (2, 4, 4),
            expected_params=20,
            names=edges.names,
        ),
    )


COURSE_EXAMPLES: tuple[CourseExample, ...] = _examples()


def course_example(key: str) -> CourseExample:
    """A course example by its key; raises ValueError naming the choices."""
    for example in COURSE_EXAMPLES:
        if example.key == key:
            return example
    raise ValueError(f"unknown example {key!r}; choose one of: {', '.join(e.key for e in COURSE_EXAMPLES)}")
