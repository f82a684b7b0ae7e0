"""The layer table: for a model and an input size, every layer's geometry, shape, parameters, cost and
receptive field, found by running the model once with forward hooks.

Which modules are rows ("steps") is decided once, in :func:`step_modules`, so the layer table, the
activation capture (``features.py``) and Grad-CAM (``cam.py``) name the same things the same way:

* **layers**: convolutions, linear layers, normalisations, activations, pooling, padding, flatten,
  dropout (a row of its own, marked inactive at inference: the course teaches it, so it stays visible)
  and any other module without children, except pass-throughs (Identity, StochasticDepth);
* **blocks**: modules with children that are not plain containers (ResNet's BasicBlock, an Inception
  module, an MBConv block ...); their row is the block's output.

A module called more than once in one forward pass (ResNet reuses its ReLU) gives one row per call:
``layer1.0.relu``, then ``layer1.0.relu#2``.

Receptive fields follow the usual arithmetic along the main path (per axis, pixel centres at 0, 1, ...):
``jump_out = jump_in · s``, ``size_out = size_in + (d(k − 1)) · jump_in``,
``start_out = start_in + (d(k − 1)/2 − p) · jump_in``. Where a network branches the result is an
approximation, said plainly: a concatenation or sum of branches gets the largest receptive field among
the branches that end at its resolution; a squeeze-and-excitation gate (global pooling that rescales
channels) is ignored, although strictly it makes every later unit see the whole image. After the spatial
dimensions are flattened away the receptive field is the whole input (``rf_size`` None).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.ops import output_size, output_size_formula

__all__ = [
    "ELEMENTWISE_TYPES",
    "LayerRow",
    "LayerTable",
    "call_on_meta",
    "eval_mode",
    "input_channels",
    "layer_table",
    "parameter_count",
    "step_modules",
]

Pair = tuple[int, int]

_PASS_THROUGH: tuple[type[nn.Module], ...] = (nn.Identity,)
_DROPOUT = nn.modules.dropout._DropoutNd
try:  # torchvision's stochastic depth is the identity in eval mode
    from torchvision.ops import StochasticDepth

    _PASS_THROUGH = (*_PASS_THROUGH, StochasticDepth)
except ImportError:  # pragma: no cover - torchvision always has it today
    pass

_CONV = nn.modules.conv._ConvNd
_POOL = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)
_ADAPTIVE_POOL = (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
_PAD = (
    nn.modules.padding._ConstantPadNd,
    nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd,
)
try:  # int8 conv and linear layers (torch.ao); a quantized linear keeps its weights in a child module
    from torch.ao.nn.quantized import Linear as _QLinear
    from torch.ao.nn.quantized.modules.conv import _ConvNd as _QConv

    _QUANTIZED: tuple[type[nn.Module], ...] = (_QLinear, _QConv)
    _Q_CONV: tuple[type[nn.Module], ...] = (_QConv,)
    _Q_LINEAR: tuple[type[nn.Module], ...] = (_QLinear,)
except ImportError:  # pragma: no cover - torch.ao is deprecated upstream; without it there is nothing to see
    _QUANTIZED = _Q_CONV = _Q_LINEAR = ()

# Modules that are one layer even if they own helper children (EfficientNet-Lite's "same"-padding conv).
_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    _CONV,
    nn.Linear,
    *_POOL,
    *_ADAPTIVE_POOL,
    *_PAD,
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.Flatten,
    nn.Upsample,
    *_QUANTIZED,
)


# Element-wise layers whose eval-mode output can be recomputed from their input alone (dropout: it is
# the identity at inference).
ELEMENTWISE_TYPES: tuple[type[nn.Module], ...] = (
    _DROPOUT,
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
)


def _packed_count(module: nn.Module) -> int:
    """Weights and bias an int8 layer keeps packed (torch.ao's quantized conv and linear layers expose them
    through ``weight()`` / ``bias()``, not as parameters); 0 for every other module."""
    get = getattr(module, "weight", None)
    if isinstance(get, Tensor) or not callable(get):
        return 0
    try:
        weight = get()
    except Exception:  # some other callable attribute
        return 0
    if not isinstance(weight, Tensor) or not weight.is_quantized:
        return 0
    bias = module.bias() if callable(getattr(module, "bias", None)) else None
    return int(weight.numel()) + (int(bias.numel()) if isinstance(bias, Tensor) else 0)


def parameter_count(module: nn.Module, *, recurse: bool = True) -> int:
    """The module's parameters, int8 layers' packed weights included (what a quantized model stores)."""
    own = sum(p.numel() for p in module.parameters(recurse=False)) + _packed_count(module)
    if not recurse:
        return own
    return own + sum(parameter_count(child) for child in module.children())


def _is_container(m: nn.Module) -> bool:
    return isinstance(m, (nn.Sequential, nn.ModuleList)) or type(m) is nn.ModuleDict


def step_modules(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(name, module, kind) for every module that gets a row, kind "layer" or "block", in registration order.

    Children of a layer (e.g. the padding module inside a TensorFlow-style "same" conv) are part of
    that layer and get no row of their own.
    """
    steps: list[tuple[str, nn.Module, str]] = []
    absorbed: set[str] = set()  # names of layers' children, at any depth
    for name, module in model.named_modules():
        if not name:
            continue
        parent = name.rpartition(".")[0]
        if parent in absorbed:
            absorbed.add(name)
            continue
        has_children = next(module.children(), None) is not None
        if isinstance(module, _PASS_THROUGH):
            continue
        if isinstance(module, _LAYER_TYPES) or not has_children:
            steps.append((name, module, "layer"))
            if has_children:
                absorbed.add(name)
        elif not _is_container(module):
            steps.append((name, module, "block"))
    return steps


class eval_mode:
    """Context manager: the model in eval mode inside, each module's own mode restored after.

    Switching is skipped when every module is already in eval mode (the usual case), because
    ``Module.train()`` walks the whole tree and costs milliseconds on a big network. A caller that
    already holds ``list(model.modules())`` may pass it as ``modules`` to skip walking the tree to check.
    """

    def __init__(self, model: nn.Module, modules: Sequence[nn.Module] | None = None) -> None:
        self.model = model
        self.modules = modules
        self.saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        modules = self.modules if self.modules is not None else self.model.modules()
        training = [m for m in modules if m.training]
        if training:
            self.saved = [(m, True) for m in training]
            self.model.eval()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for m, mode in self.saved:
            m.training = mode


@dataclass(frozen=True)
class LayerRow:
    name: str  # module path; "#2", "#3" mark further calls of a module used more than once
    type: str  # class name, e.g. "Conv2d"
    kind: str  # "layer" | "block"
    parent: str  # the enclosing block's row name, "" at the top
    kernel: Pair | None
    stride: Pair | None
    padding: tuple[int, int, int, int] | None  # top, bottom, left, right
    dilation: Pair | None
    groups: int | None
    in_shape: tuple[int, ...]  # without the batch dimension
    out_shape: tuple[int, ...]
    params: int  # parameters of the module (children included)
    counted_params: int  # what this row adds to the model's total (0 for repeated calls and blocks' children)
    macs: int  # multiply-adds of convolutions and linear layers (blocks: their children's sum)
    rf_size: Pair | None  # receptive field (height, width) in input pixels; None once flattened
    rf_jump: Pair | None  # input pixels between neighbouring units
    rf_start: tuple[float, float] | None  # input coordinate of the centre of unit (0, 0)'s field
    call: int = 1  # 1 for the first call of the module, 2 for the second ...
    # The previous row, when this row's output is a pure element-wise function of it (a norm with fixed
    # statistics, an activation) or the very same tensor (a block ending in its last layer), with nothing
    # changing it in place in between. The activation capture stores such rows as recipes, not copies.
    derived_from: str | None = None
    # Non-empty for a layer that does nothing at inference (its output is its input), saying what it does
    # in training: dropout's "zeroes each value with probability 0.5 in training".
    inactive: str = ""

    @property
    def module_name(self) -> str:
        return self.name.split("#", 1)[0]

    @property
    def spatial(self) -> bool:
        return len(self.out_shape) == 3

    def geometry_text(self) -> str:
        """e.g. "7×7 stride 2 pad 3", "" for layers without a window."""
        if self.kernel is None:
            return ""
        parts = [f"{self.kernel[0]}×{self.kernel[1]}"]
        if self.stride and self.stride != (1, 1):
            parts.append(f"stride {_pair_text(self.stride, '×')}")
        if self.padding and any(self.padding):
            t, b, left, r = self.padding
            parts.append(f"pad {t}" if t == b == left == r else f"pad {t},{b},{left},{r} (t,b,l,r)")
        if self.dilation and self.dilation != (1, 1):
            parts.append(f"dilation {_pair_text(self.dilation, '×')}")
        if self.groups and self.groups > 1:
            parts.append(
                "depthwise" if self.in_shape and self.groups == self.in_shape[0] else f"{self.groups} groups"
            )
        return " ".join(parts)

    def shape_arithmetic(self) -> str:
        """The output-size formula with this layer's numbers, one line per axis when they differ."""
        if self.kernel is None or not self.spatial or len(self.in_shape) != 3:
            return ""
        lines = []
        for axis, label in ((0, "height"), (1, "width")):
            n = self.in_shape[1 + axis]
            k, s = self.kernel[axis], self.stride[axis] if self.stride else 1
            d = self.dilation[axis] if self.dilation else 1
            before, after = (
                (self.padding[0], self.padding[1]) if axis == 0 else (self.padding[2], self.padding[3])
            )
            out = self.out_shape[1 + axis]
            if before == after and output_size(n, k, s, before, d) == out:
                text = output_size_formula(n, k, s, before, d)
            else:  # asymmetric ("same") padding or ceil rounding: write the general form
                span = d * (k - 1) + 1
                exact = (n + before + after - span) / s + 1
                rounding = "⌈" if math.ceil(exact - 1) + 1 == out and math.floor(exact) != out else "⌊"
                close = "⌉" if rounding == "⌈" else "⌋"
                text = f"{rounding}({n} + {before} + {after} − {span})/{s}{close} + 1 = {out}"
            lines.append((label, text))
        if lines[0][1] == lines[1][1]:
            return lines[0][1]
        return "\n".join(f"{label}: {text}" for label, text in lines)

    def rf_text(self) -> str:
        if self.rf_size is None:
            return "whole input"
        return _pair_text(self.rf_size, "×")


def _pair_text(p: Pair, sep: str) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}{sep}{p[1]}"


CSV_COLUMNS = (
    "name",
    "type",
    "kind",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "output_shape",
    "params",
    "macs",
    "rf_size",
    "rf_jump",
)


@dataclass
class LayerTable:
    rows: list[LayerRow]
    input_shape: tuple[int, ...]  # (C, H, W)
    total_params: int
    total_macs: int
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[LayerRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    def row(self, name: str) -> LayerRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def layers(self) -> list[LayerRow]:
        return [r for r in self.rows if r.kind == "layer"]

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """The table as CSV text (one row per step); also written to ``path`` when given."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for r in self.rows:
            writer.writerow(
                [
                    r.name,
                    r.type,
                    r.kind,
                    _csv_pair(r.kernel),
                    _csv_pair(r.stride),
                    "" if r.padding is None else " ".join(str(v) for v in r.padding),
                    _csv_pair(r.dilation),
                    "" if r.groups is None else r.groups,
                    "x".join(str(v) for v in r.out_shape),
                    r.params,
                    r.macs,
                    _csv_pair(r.rf_size) if r.rf_size else "whole",
                    _csv_pair(r.rf_jump),
                ]
            )
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _csv_pair(p: Pair | None) -> str:
    return "" if p is None else _pair_text(p, "x")


# ---------------------------------------------------------------------------------------------------------
# Geometry helpers


def _pair(v: Any) -> Pair:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (1, 1)
    return int(v), int(v)


def _geometry(module: nn.Module, in_hw: Pair | None, out_hw: Pair | None) -> dict[str, Any] | None:
    """kernel, stride, dilation, groups and (t, b, l, r) padding of a windowed layer, else None."""
    if isinstance(module, (_CONV, *_Q_CONV)):
        k, s, d = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        if isinstance(module.padding, str):
            if module.padding == "same":
                tot = [d[i] * (k[i] - 1) for i in (0, 1)]
                pad = (tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2)
            else:
                pad = (0, 0, 0, 0)
        else:
            p = _pair(module.padding)
            pad = (p[0], p[0], p[1], p[1])
        extra = getattr(module, "static_padding", None)  # EfficientNet-Lite's TF-style "same" conv
        if isinstance(extra, _PAD):
            left, right, top, bottom = _pad4(extra.padding)
            pad = (pad[0] + top, pad[1] + bottom, pad[2] + left, pad[3] + right)
        return {"kernel": k, "stride": s, "padding": pad, "dilation": d, "groups": int(module.groups)}
    if isinstance(module, _POOL):
        k = _pair(module.kernel_size)
        s = _pair(module.stride if module.stride is not None else module.kernel_size)
        p = _pair(module.padding)
        d = _pair(getattr(module, "dilation", 1))
        return {"kernel": k, "stride": s, "padding": (p[0], p[0], p[1], p[1]), "dilation": d, "groups": None}
    if isinstance(module, _ADAPTIVE_POOL) and in_hw and out_hw:
        # Adaptive pooling picks windows per output cell; for the receptive field it acts like
        # stride = ⌊in/out⌋ and kernel = in − (out − 1)·stride (exact when out divides in).
        s = tuple(max(1, in_hw[i] // max(1, out_hw[i])) for i in (0, 1))
        k = tuple(in_hw[i] - (out_hw[i] - 1) * s[i] for i in (0, 1))
        return {"kernel": k, "stride": s, "padding": (0, 0, 0, 0), "dilation": (1, 1), "groups": None}
    return None


def _pad4(p: Any) -> tuple[int, int, int, int]:
    """nn.ZeroPad2d's (left, right, top, bottom), whatever form it was given in."""
    if isinstance(p, int):
        return p, p, p, p
    p = tuple(int(v) for v in p)
    return (p[0], p[1], p[2], p[3]) if len(p) >= 4 else (p[0], p[0], p[-1], p[-1])


@dataclass(frozen=True)
class _RF:
    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def through(self, kernel: Pair, stride: Pair, pad_before: Pair, dilation: Pair) -> _RF:
        size, jump, start = [], [], []
        for i in (0, 1):
            span = dilation[i] * (kernel[i] - 1)
            size.append(self.size[i] + span * self.jump[i])
            start.append(self.start[i] + (span / 2 - pad_before[i]) * self.jump[i])
            jump.append(self.jump[i] * stride[i])
        return _RF((size[0], size[1]), (jump[0], jump[1]), (start[0], start[1]))

    def shifted(self, pad_before: Pair) -> _RF:
        return _RF(self.size, self.jump, tuple(self.start[i] - pad_before[i] * self.jump[i] for i in (0, 1)))


def _widest(states: list[_RF]) -> _RF:
    """Per axis, the largest field among branches at one resolution (Inception's 1×3 ‖ 3×1 gives both)."""
    pick = [max(states, key=lambda s, i=i: s.size[i]) for i in (0, 1)]
    return _RF(
        (pick[0].size[0], pick[1].size[1]),
        (pick[0].jump[0], pick[1].jump[1]),
        (pick[0].start[0], pick[1].start[1]),
    )


def _tensors(obj: Any) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _hw(t: Tensor) -> Pair | None:
    return (int(t.shape[-2]), int(t.shape[-1])) if t.ndim == 4 else None


# ---------------------------------------------------------------------------------------------------------
# The table


class _Tracer:
    """Forward hooks that turn one forward pass into table rows (execution order, blocks after children)."""

    def __init__(self, model: nn.Module, control: Control | None) -> None:
        self.model = model
        self.control = control
        self.steps = step_modules(model)
        self.kind = {id(m): k for _, m, k in self.steps}
        self.name = {id(m): n for n, m, _ in self.steps}
        self.block_names = sorted((n for n, _, k in self.steps if k == "block"), key=len, reverse=True)
        self.calls: dict[int, int] = {}
        self.rows: list[LayerRow] = []
        self.states: dict[int, _RF] = {}
        self.keep: list[Tensor] = []  # keeps tensors alive so their id() stays unique during the pass
        self.history: list[tuple[Pair | None, _RF]] = []
        self.macs_total = 0
        self.block_stack: list[tuple[int, int, _RF | None]] = []  # (macs before, history length, in state)
        # The last row's output and its version counter, to spot rows that merely transform it.
        self.last_out: Tensor | None = None
        self.last_version = -1
        self.input_unchanged: dict[int, bool] = {}

    # -- receptive-field bookkeeping ------------------------------------------------------------------
    def remember(self, t: Tensor, state: _RF | None) -> None:
        if state is None:
            return
        self.states[id(t)] = state
        self.keep.append(t)
        self.history.append((_hw(t), state))

    def state_of(self, inputs: list[Tensor]) -> _RF | None:
        known = [self.states[id(t)] for t in inputs if id(t) in self.states]
        if known:
            return _widest(known)
        # A tensor made by a functional op (cat, +, shuffle): the latest state at the same resolution.
        hw = _hw(inputs[0]) if inputs else None
        for shape, state in reversed(self.history):
            if hw is not None and shape == hw:
                return state
        return self.history[-1][1] if self.history else None

    def parent_of(self, name: str) -> str:
        base = name.split("#", 1)[0]
        for block in self.block_names:
            if base.startswith(block + "."):
                return block
        return ""

    # -- hooks ----------------------------------------------------------------------------------------
    def unchanged_last(self, t: Tensor | None) -> bool:
        """``t`` is the previous row's output and nothing wrote into it since (version counter)."""
        if t is None or t is not self.last_out:
            return False
        try:
            return t._version == self.last_version
        except RuntimeError:  # inference tensors keep no version counter: cannot tell
            return False

    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        checkpoint(self.control)
        if self.kind[id(module)] == "block":
            inputs = _tensors(args)
            self.block_stack.append((self.macs_total, len(self.history), self.state_of(inputs)))
        elif isinstance(module, ELEMENTWISE_TYPES):
            first = args[0] if args and isinstance(args[0], Tensor) else None
            self.input_unchanged[id(module)] = self.unchanged_last(first)

    def hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        inputs, outputs = _tensors(args), _tensors(output)
        kind = self.kind[id(module)]
        if kind == "block":
            macs_before, hist_len, block_in = self.block_stack.pop()
        if not outputs:
            return
        out = outputs[0]
        n = self.calls[id(module)] = self.calls.get(id(module), 0) + 1
        base = self.name[id(module)]
        name = base if n == 1 else f"{base}#{n}"
        in_shape = tuple(int(v) for v in inputs[0].shape[1:]) if inputs else ()
        out_shape = tuple(int(v) for v in out.shape[1:])
        in_hw = _hw(inputs[0]) if inputs else None
        out_hw = _hw(out)
        params = parameter_count(module)
        geo = _geometry(module, in_hw, out_hw) if kind == "layer" else None

        if kind == "layer":
            macs = _macs(module, inputs, out)
            self.macs_total += macs
            counted = params if n == 1 else 0
            in_state = self.state_of(inputs)
            if out_hw is None or in_state is None:
                state = None
            elif geo is not None:
                pad_before = (geo["padding"][0], geo["padding"][2])
                state = in_state.through(geo["kernel"], geo["stride"], pad_before, geo["dilation"])
            elif isinstance(module, _PAD):
                left, _r, top, _b = _pad4(module.padding)
                state = in_state.shifted((top, left))
            else:  # element-wise (norm, activation) or unknown: the field does not change
                state = in_state
        else:
            macs = self.macs_total - macs_before
            counted = parameter_count(module, recurse=False) if n == 1 else 0
            if id(out) in self.states:
                state = self.states[id(out)]
            else:
                inside = [s for shape, s in self.history[hist_len:] if shape == out_hw and out_hw is not None]
                state = _widest(inside) if inside else block_in
            if out_hw is None:
                state = None
        # A layer's input, or a block's output, that is the previous row's untouched output tensor.
        plain = self.input_unchanged.pop(id(module), False) if kind == "layer" else self.unchanged_last(out)
        derived = self.rows[-1].name if plain and self.rows else None
        self.remember(out, state)
        self.last_out = out
        try:
            self.last_version = out._version
        except RuntimeError:
            self.last_version = -1
        self.rows.append(
            LayerRow(
                name=name,
                type=type(module).__name__,
                kind=kind,
                parent=self.parent_of(name),
                kernel=geo["kernel"] if geo else None,
                stride=geo["stride"] if geo else None,
                padding=geo["padding"] if geo else None,
                dilation=geo["dilation"] if geo else None,
                groups=geo["groups"] if geo else None,
                in_shape=in_shape,
                out_shape=out_shape,
                params=params,
                counted_params=counted,
                macs=macs,
                rf_size=_round_pair(state.size) if state else None,
                rf_jump=_round_pair(state.jump) if state else None,
                rf_start=state.start if state else None,
                call=n,
                derived_from=derived,
                inactive=_training_only(module),
            )
        )

    def attach(self) -> list[Any]:
        handles = []
        for _, module, _kind in self.steps:
            handles.append(module.register_forward_pre_hook(self.pre_hook))
            handles.append(module.register_forward_hook(self.hook))
        return handles


def _training_only(module: nn.Module) -> str:
    """What a layer that is the identity at inference does in training; "" for every other layer."""
    if not isinstance(module, _DROPOUT):
        return ""
    p = float(module.p)
    what = "channels" if isinstance(module, (nn.Dropout2d, nn.Dropout3d)) else "values"
    keep = f", scaling the rest by {1 / (1 - p):.3g}" if 0 < p < 1 else ""
    return f"in training it zeroes each of its {what} with probability {p:g}{keep}"


_INPUT_RF = _RF((1.0, 1.0), (1.0, 1.0), (0.0, 0.0))  # one pixel, centres at 0, 1, 2 ...


def _round_pair(p: tuple[float, float]) -> Pair:
    return round(p[0]), round(p[1])


def _macs(module: nn.Module, inputs: list[Tensor], out: Tensor) -> int:
    """Multiply-adds per image: weights × positions for convolutions and linear layers, 0 otherwise."""
    per_sample = out.numel() // max(1, int(out.shape[0]))
    if isinstance(module, _Q_CONV):  # int8: the same arithmetic, on packed weights
        return per_sample * (module.in_channels // module.groups) * math.prod(_pair(module.kernel_size))
    if isinstance(module, _CONV):
        k = math.prod(_pair(module.kernel_size)) if module.weight.ndim == 4 else math.prod(module.kernel_size)
        return per_sample * (module.in_channels // module.groups) * k
    if isinstance(module, (nn.Linear, *_Q_LINEAR)):
        return per_sample * module.in_features
    return 0


def input_channels(model: nn.Module) -> int:
    """The channels ``model`` expects in its input: its first convolution's ``in_channels``; 3 (an RGB image)
    when a linear layer comes first or there is no convolution."""
    for m in model.modules():
        if isinstance(m, (_CONV, *_Q_CONV)):
            return int(m.in_channels)
        if isinstance(m, (nn.Linear, *_Q_LINEAR)):
            return 3
    return 3


_input_channels = input_channels


def layer_table(
    model: nn.Module,
    input_size: int | Pair,
    *,
    in_channels: int | None = None,
    control: Control | None = None,
) -> LayerTable:
    """Rows for every step of ``model`` on one image of ``input_size`` (square side or (H, W)).

    The pass runs on PyTorch's "meta" device (shapes only, no arithmetic), so even VGG-16 at 224×224
    takes milliseconds; if a model cannot run there, it falls back to a real pass on a zero image.
    """
    h, w = _pair(input_size)
    c = in_channels if in_channels is not None else _input_channels(model)
    notes: list[str] = []
    if isinstance(model, torch.jit.ScriptModule):  # compiled: no hooks, no per-layer view
        return LayerTable([], (c, h, w), sum(p.numel() for p in model.parameters()), 0, ["TorchScript model"])
    tracer = _run_traced(model, (1, c, h, w), control, notes)
    total_params = sum(r.counted_params for r in tracer.rows)
    torch_total = parameter_count(model)
    if total_params != torch_total:
        notes.append(f"{torch_total - total_params:,} parameters belong to modules this input does not use")
    macs = sum(r.macs for r in tracer.rows if r.kind == "layer")
    return LayerTable(tracer.rows, (c, h, w), total_params, macs, notes)


def _run_traced(
    model: nn.Module, shape: tuple[int, ...], control: Control | None, notes: list[str]
) -> _Tracer:
    with eval_mode(model):
        tracer = _Tracer(model, control)
        handles = tracer.attach()
        try:
            with torch.no_grad():
                x = torch.empty(shape, device="meta")
                tracer.remember(x, _INPUT_RF)
                _forward_on_meta(model, x)
        except Exception as exc:  # a model using data-dependent ops: measure it for real instead
            notes.append(f"measured with a real forward pass ({type(exc).__name__} on the meta device)")
            for hnd in handles:
                hnd.remove()
            tracer = _Tracer(model, control)
            handles = tracer.attach()
            with torch.no_grad():  # not inference_mode: the version counters tell in-place writes apart
                x = torch.zeros(shape)
                tracer.remember(x, _INPUT_RF)
                model(x)
        finally:
            for hnd in handles:
                hnd.remove()
        return tracer


def call_on_meta(module: nn.Module, *args: Any) -> Any:
    """``module(*args)`` with every parameter and buffer swapped for a meta twin: shapes only, no arithmetic
    (``args`` are meta tensors too)."""
    tensors = {n: torch.empty_like(t, device="meta") for n, t in _named_tensors(module)}
    return torch.func.functional_call(module, tensors, args, strict=False)


def _forward_on_meta(model: nn.Module, x: Tensor) -> None:
    call_on_meta(model, x)


def _named_tensors(model: nn.Module) -> Iterable[tuple[str, Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)
