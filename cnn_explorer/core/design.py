"""Design calculators: what the classic tricks of CNN architecture save, for your own channel counts.

Each calculator compares a baseline layer with a cheaper design of the same job and returns a
:class:`DesignComparison`: both designs' parameters and multiply-adds (for an H×W output, "same" padding,
stride 1) and a one-line formula with the numbers filled in. :func:`receptive_field` shows how stacked
layers widen what one output sees. The counts come from :func:`cnn_explorer.core.ops.conv_param_count`
and :func:`cnn_explorer.core.ops.conv_macs`. Weights only by default (``bias=True`` adds one per output
channel of every layer), as the papers count them.

Public API
----------
    stacked_vs_single(in_channels, out_channels, kernel=5, height=32, width=None, bias=False)
        one k×k against (k − 1)/2 stacked 3×3 layers, same receptive field (VGG, Inception v3)
    asymmetric_vs_square(in_channels, out_channels, kernel=3, height=32, width=None, bias=False)
        k×k against k×1 then 1×k (Inception v3)
    depthwise_separable(in_channels, out_channels, kernel=3, height=32, width=None, bias=False)
        standard conv against depthwise k×k + pointwise 1×1 (MobileNet)
    bottleneck(in_channels, out_channels, kernel=3, mid_channels=None, height=32, width=None, bias=False)
        k×k directly against a 1×1 bottleneck to fewer channels first (GoogLeNet, ResNet)
    receptive_field(layers, kernel=3, stride=1, dilation=1) -> ReceptiveField
    LayerCost(name, params, macs, formula), DesignComparison(title, baseline, alternative, note)
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_explorer.core.ops import conv_macs, conv_param_count


@dataclass(frozen=True)
class LayerCost:
    """One design: its parameters and multiply-adds, and how they add up."""

    name: str  # e.g. "two 3×3"
    params: int
    macs: int  # multiply-adds for one H×W output
    formula: str  # the parameters written out, e.g. "3·3·64·64 + 3·3·64·64 = 73,728"


@dataclass(frozen=True)
class DesignComparison:
    """A baseline layer and a cheaper design that does the same job."""

    title: str
    baseline: LayerCost
    alternative: LayerCost
    note: str  # what stays the same, e.g. "both see a 5×5 window"

    @property
    def params_ratio(self) -> float:
        """alternative / baseline parameters (below 1: the alternative is smaller)."""
        return self.alternative.params / self.baseline.params

    @property
    def macs_ratio(self) -> float:
        return self.alternative.macs / self.baseline.macs

    @property
    def params_saved(self) -> float:
        """The fraction of parameters the alternative saves: 1 − ratio."""
        return 1.0 - self.params_ratio

    @property
    def formula(self) -> str:
        """One line: both designs' parameters and the saving."""
        change = (
            f"{self.params_saved:.0%} fewer" if self.params_saved >= 0 else f"{-self.params_saved:.0%} more"
        )
        return (
            f"{self.baseline.name}: {self.baseline.formula} vs {self.alternative.name}: "
            f"{self.alternative.formula} ({change} parameters)"
        )


def _check(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return value


def _layer(
    kh: int, kw: int, c_in: int, c_out: int, bias: bool, hw: tuple[int, int], groups: int = 1
) -> tuple[int, int, str]:
    """(params, macs, term) of one convolution; ``term`` is its parameter count written out."""
    per_group_in = c_in // groups
    params = conv_param_count((kh, kw), per_group_in, c_out, bias)
    macs = conv_macs((kh, kw), c_in, c_out, hw, groups)
    term = f"{kh}·{kw}·{per_group_in}·{c_out}" if per_group_in != 1 else f"{kh}·{kw}·{c_out}"
    if per_group_in != 1 and kh == kw == 1:
        term = f"{c_in}·{c_out}"
    return params, macs, term + (f" + {c_out}" if bias else "")


def _cost(name: str, layers: list[tuple[int, int, str]]) -> LayerCost:
    params = sum(p for p, _, _ in layers)
    macs = sum(m for _, m, _ in layers)
    return LayerCost(name, params, macs, f"{' + '.join(t for _, _, t in layers)} = {params:,}")


def _hw(height: int, width: int | None) -> tuple[int, int]:
    return _check(height, "height"), _check(height if width is None else width, "width")


def stacked_vs_single(
    in_channels: int,
    out_channels: int,
    kernel: int = 5,
    height: int = 32,
    width: int | None = None,
    bias: bool = False,
) -> DesignComparison:
    """One k×k convolution against (k − 1)/2 stacked 3×3 convolutions (k odd ≥ 5): the same k×k receptive
    field from fewer weights, and a non-linearity between the layers. For C channels in and out,
    5×5 vs two 3×3 is 25·C² vs 18·C²: 28% fewer (Inception v3)."""
    c_in, c_out = _check(in_channels, "input channels"), _check(out_channels, "output channels")
    kernel = _check(kernel, "kernel size", 5)
    if kernel % 2 == 0:
        raise ValueError(f"stacked 3×3 layers reach odd sizes only (5, 7, 9, …), got {kernel}")
    hw = _hw(height, width)
    n = (kernel - 1) // 2
    stack = [_layer(3, 3, c_in, c_out, bias, hw)] + [
        _layer(3, 3, c_out, c_out, bias, hw) for _ in range(n - 1)
    ]
    words = {2: "two", 3: "three", 4: "four"}
    return DesignComparison(
        title=f"one {kernel}×{kernel} vs {n} stacked 3×3",
        baseline=_cost(f"one {kernel}×{kernel}", [_layer(kernel, kernel, c_in, c_out, bias, hw)]),
        alternative=_cost(f"{words.get(n, n)} 3×3", stack),
        note=f"both see a {kernel}×{kernel} window of the input: 1 + {n}·(3 − 1) = {kernel}",
    )


def asymmetric_vs_square(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    height: int = 32,
    width: int | None = None,
    bias: bool = False,
) -> DesignComparison:
    """A k×k convolution against k×1 followed by 1×k: the same k×k window from 2k instead of k² weights per
    channel pair; for 3×3 with C channels in and out, 9·C² vs 6·C², 33% fewer (Inception v3)."""
    c_in, c_out = _check(in_channels, "input channels"), _check(out_channels, "output channels")
    kernel = _check(kernel, "kernel size", 2)
    hw = _hw(height, width)
    return DesignComparison(
        title=f"{kernel}×{kernel} vs {kernel}×1 then 1×{kernel}",
        baseline=_cost(f"{kernel}×{kernel}", [_layer(kernel, kernel, c_in, c_out, bias, hw)]),
        alternative=_cost(
            f"{kernel}×1 then 1×{kernel}",
            [_layer(kernel, 1, c_in, c_out, bias, hw), _layer(1, kernel, c_out, c_out, bias, hw)],
        ),
        note=f"both see a {kernel}×{kernel} window",
    )


def depthwise_separable(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    height: int = 32,
    width: int | None = None,
    bias: bool = False,
) -> DesignComparison:
    """A standard k×k convolution against a depthwise k×k (one kernel per input channel) followed by a 1×1
    pointwise convolution that mixes the channels (MobileNet). The cost falls to 1/C_out + 1/k² of it."""
    c_in, c_out = _check(in_channels, "input channels"), _check(out_channels, "output channels")
    kernel = _check(kernel, "kernel size")
    hw = _hw(height, width)
    return DesignComparison(
        title=f"standard {kernel}×{kernel} vs depthwise {kernel}×{kernel} + pointwise 1×1",
        baseline=_cost(f"standard {kernel}×{kernel}", [_layer(kernel, kernel, c_in, c_out, bias, hw)]),
        alternative=_cost(
            "depthwise + pointwise",
            [_layer(kernel, kernel, c_in, c_in, bias, hw, groups=c_in), _layer(1, 1, c_in, c_out, bias, hw)],
        ),
        note=f"the same {c_in} → {c_out} channels and {kernel}×{kernel} window; "
        f"multiply-adds fall to 1/{c_out} + 1/{kernel * kernel} = {1 / c_out + 1 / kernel**2:.3f} of them",
    )


def bottleneck(
    in_channels: int,
    out_channels: int,
    kernel: int = 3,
    mid_channels: int | None = None,
    height: int = 32,
    width: int | None = None,
    bias: bool = False,
) -> DesignComparison:
    """A k×k convolution straight from C_in channels against a 1×1 "bottleneck" down to ``mid_channels``
    (default C_in/4) first, then the k×k (GoogLeNet's inception modules, ResNet's bottleneck blocks).
    The notes' example: 28×28×192 → 5×5, 32 filters is 120 million multiply-adds; through 16 channels
    first, 12.4 million."""
    c_in, c_out = _check(in_channels, "input channels"), _check(out_channels, "output channels")
    kernel = _check(kernel, "kernel size")
    mid = max(1, c_in // 4) if mid_channels is None else _check(mid_channels, "bottleneck channels")
    hw = _hw(height, width)
    return DesignComparison(
        title=f"{kernel}×{kernel} vs 1×1 to {mid} channels, then {kernel}×{kernel}",
        baseline=_cost(f"{kernel}×{kernel} directly", [_layer(kernel, kernel, c_in, c_out, bias, hw)]),
        alternative=_cost(
            f"1×1 bottleneck ({mid}) + {kernel}×{kernel}",
            [_layer(1, 1, c_in, mid, bias, hw), _layer(kernel, kernel, mid, c_out, bias, hw)],
        ),
        note=f"the same {c_in} → {c_out} channels and {kernel}×{kernel} window, through {mid} channels",
    )


@dataclass(frozen=True)
class ReceptiveField:
    """How far one output of n stacked layers reaches into the input."""

    sizes: tuple[int, ...]  # receptive field after layer 1, 2, …, n (layer 0, the input, is 1)
    jumps: tuple[int, ...]  # the distance in input pixels between neighbouring outputs after each layer
    formula: str  # e.g. "r = 1 + 3·(3 − 1) = 7"

    @property
    def size(self) -> int:
        """The receptive field of the last layer."""
        return self.sizes[-1]


def receptive_field(layers: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> ReceptiveField:
    """Receptive field of ``layers`` stacked convolutions with the same kernel, stride and dilation.

    Each layer adds d·(k − 1) of its inputs, and each input step is worth the product of the strides
    before it: rₗ = rₗ₋₁ + d·(k − 1)·jₗ₋₁, jₗ = jₗ₋₁·s, r₀ = j₀ = 1. With stride 1: r = 1 + n·d·(k − 1).
    """
    n = _check(layers, "number of layers")
    k, s, d = _check(kernel, "kernel size"), _check(stride, "stride"), _check(dilation, "dilation")
    sizes, jumps = [], []
    r, j = 1, 1
    for _ in range(n):
        r += d * (k - 1) * j
        j *= s
        sizes.append(r)
        jumps.append(j)
    span = f"{k} − 1" if d == 1 else f"{d}·({k} − 1)"
    if s == 1:
        formula = f"r = 1 + {n}·({span}) = {r}"
    else:
        powers = " + ".join(str(s**i) for i in range(n))
        formula = f"r = 1 + ({span})·({powers}) = {r}"
    return ReceptiveField(tuple(sizes), tuple(jumps), formula)
