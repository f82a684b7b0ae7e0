"""What the layer panels show about one step of a model, as plain values: the parameter breakdown and its
text, the filters as a float32 numpy copy, and what kind of picture they make.

``layer_facts(model, row)`` reads the module behind a ``LayerRow`` and returns a frozen
:class:`LayerFacts`; it touches torch, so a worker calls it, and the widgets get numpy arrays and numbers
only. ``weight_version`` identifies the weights drawn: it is the same for every call on an unchanged
weight tensor (a repeated call ``#2`` shares its module's weights, and its number), and new once the tensor
is changed in place (an optimiser step, ``load_state_dict``) or replaced, so a view redraws only then.

For the layer table: ``output_bytes(row)`` (a row's float32 output per image), ``memory_text(n)``, and
``table_records(table)``, each row's cells as ``inspect`` writes them to layers.csv.
"""

from __future__ import annotations

import csv
import enum
import io
import itertools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from cnn_explorer.core.layers import LayerRow, LayerTable

__all__ = [
    "MAX_LINEAR_WEIGHTS",
    "FilterKind",
    "LayerFacts",
    "ParamPart",
    "layer_facts",
    "memory_text",
    "output_bytes",
    "params_text",
    "table_records",
]

MAX_LINEAR_WEIGHTS = 4_000_000  # a bigger weight matrix (VGG's 4096×25088) is described, not copied or drawn

ParamPart = tuple[str, tuple[int, ...], int]  # (name as the module names it, shape, number of values)


class FilterKind(enum.Enum):
    """The picture a layer's weights make."""

    CONV = "conv"  # a 2-d convolution: (out, in / groups, kh, kw) kernels
    LINEAR = "linear"  # a fully-connected layer: an (out, in) matrix
    NONE = "none"  # no filters: activations, pooling, normalisation, blocks ...


@dataclass(frozen=True, eq=False)  # (eq=False: compared by identity; an array has no single truth value)
class LayerFacts:
    name: str  # the row's name ("layer1.0.relu#2")
    params: tuple[ParamPart, ...]  # the module's parameters, its children's included; () if unknown
    params_text: str  # "weight 6·1·5·5 = 150 + bias 6 = 156"
    filter_kind: FilterKind = FilterKind.NONE
    weights: np.ndarray | None = None  # read-only float32 copy of the filters; None when none or too many
    weight_shape: tuple[int, ...] = ()
    in_channels: int | None = None  # of a convolution
    groups: int = 1
    colour_input: bool = False  # a convolution on 3 channels, not grouped: the first layer, on RGB pixels
    weight_version: int = 0  # see the module's docstring; 0 when there are no weights
    shared_with: str | None = None  # a repeated call: the module whose weights it uses
    note: str = ""  # why the module's parameters or filters are missing, when they are
    caption: str = ""  # said with the filters shown, e.g. that int8 weights are shown dequantized


def params_text(row: LayerRow, params: Sequence[ParamPart] | None = None) -> str:
    """e.g. "weight 6·1·5·5 = 150 + bias 6 = 156"; blocks and repeated calls say what they add up."""
    if row.call > 1:
        return f"{row.params:,}, shared with {row.module_name} (the same module, called again)"
    if row.kind == "block":
        return f"{row.params:,} in its layers" if row.params else "none"
    if not params or row.params == 0:
        return f"{row.params:,}" if row.params else "none"
    parts = []
    for name, shape, count in params:
        label = name.rsplit(".", 1)[-1]
        if len(shape) > 1:
            parts.append(f"{label} {'·'.join(str(d) for d in shape)} = {count:,}")
        else:
            parts.append(f"{label} {count:,}")
    text = " + ".join(parts)
    return text if len(parts) == 1 and "=" in text else f"{text} = {row.params:,}"


# One number per state of a weight tensor: kept per tensor while it lives, renewed when its version
# counter moves. (id() and _version alone are not enough: a freed model's tensor id comes back.)
_tokens: WeakIdKeyDictionary = WeakIdKeyDictionary()
_next_token = itertools.count(1)
_tokens_lock = threading.Lock()


def _weight_version(t: Tensor) -> int:
    try:
        version = t._version
    except RuntimeError:  # inference tensors keep no version counter
        version = -1
    with _tokens_lock:
        seen = _tokens.get(t)
        if seen is None or seen[0] != version:
            seen = (version, next(_next_token))
            _tokens[t] = seen
    return seen[1]


def _numpy_copy(t: Tensor) -> np.ndarray:
    array = t.detach().to(device="cpu", dtype=torch.float32, copy=True).numpy()
    array.flags.writeable = False
    return array


def _quantized_weight(module: nn.Module) -> Tensor | None:
    """The int8 weight of a quantized conv or linear layer (torch.ao's modules keep it packed, behind
    ``weight()``), else None."""
    get = getattr(module, "weight", None)
    if isinstance(get, Tensor) or not callable(get):
        return None
    try:
        weight = get()
    except Exception:  # not a quantized layer's accessor after all
        return None
    return weight if isinstance(weight, Tensor) and weight.is_quantized else None


def _quantized_params(module: nn.Module, weight: Tensor) -> tuple[ParamPart, ...]:
    parts: list[ParamPart] = [("weight (int8)", tuple(int(d) for d in weight.shape), int(weight.numel()))]
    bias = module.bias() if callable(getattr(module, "bias", None)) else None
    if isinstance(bias, Tensor):
        parts.append(("bias", tuple(int(d) for d in bias.shape), int(bias.numel())))
    return tuple(parts)


def layer_facts(model: nn.Module, row: LayerRow) -> LayerFacts:
    """The facts of ``row``'s module in ``model`` (call it in a worker: it copies the weights)."""
    shared = row.module_name if row.call > 1 else None
    if isinstance(model, torch.jit.ScriptModule):
        return LayerFacts(
            row.name,
            (),
            params_text(row),
            shared_with=shared,
            note="A TorchScript model is compiled: it keeps no module per layer, so no parameters or "
            "filters to show.",
        )
    try:
        module = model.get_submodule(row.module_name)
    except AttributeError:
        return LayerFacts(
            row.name,
            (),
            params_text(row),
            shared_with=shared,
            note=f"The model has no module {row.module_name}.",
        )
    params = tuple((n, tuple(int(d) for d in p.shape), int(p.numel())) for n, p in module.named_parameters())
    weight = getattr(module, "weight", None)
    quantized = _quantized_weight(module)
    if quantized is not None:  # an int8 layer keeps packed weights, no parameters: show what they stand for
        params = _quantized_params(module, quantized)
        weight = quantized.dequantize()
    text = params_text(row, params)
    if not isinstance(weight, Tensor):
        return LayerFacts(row.name, params, text, shared_with=shared)
    shape = tuple(int(d) for d in weight.shape)
    if isinstance(module, nn.modules.conv._ConvNd) or (quantized is not None and weight.ndim == 4):
        if weight.ndim != 4:
            return LayerFacts(row.name, params, text, shared_with=shared)
        kind = FilterKind.CONV
        in_channels, groups = int(module.in_channels), int(module.groups)
    elif (isinstance(module, nn.Linear) or quantized is not None) and weight.ndim == 2:
        kind, in_channels, groups = FilterKind.LINEAR, None, 1
    else:
        return LayerFacts(row.name, params, text, shared_with=shared)
    note = caption = ""
    if quantized is not None:
        levels = int(torch.unique(quantized.int_repr()).numel())
        caption = f"int8 weights ({levels} distinct levels), shown dequantized: scale × (q − zero point)."
    if weight.is_meta:
        note = f"{row.module_name}'s weights are not loaded (the model has shapes only)."
    elif kind is FilterKind.LINEAR and math.prod(shape) > MAX_LINEAR_WEIGHTS:
        note = f"Linear layer {shape[0]}×{shape[1]}: {math.prod(shape):,} weights, too many to draw."
    return LayerFacts(
        row.name,
        params,
        text,
        filter_kind=kind,
        weights=None if note else _numpy_copy(weight),
        weight_shape=shape,
        in_channels=in_channels,
        groups=groups,
        colour_input=kind is FilterKind.CONV and in_channels == 3 and groups == 1,
        weight_version=0 if note else _weight_version(weight),
        shared_with=shared,
        note=note,
        caption=caption,
    )


def output_bytes(row: LayerRow) -> int:
    """Bytes of the row's output for one image as float32."""
    return 4 * math.prod(row.out_shape)


def memory_text(n: int) -> str:
    """e.g. "1.53 MB", "18.4 KB"."""
    return f"{n / 2**20:.2f} MB" if n >= 2**17 else f"{n / 2**10:.1f} KB"


def table_records(table: LayerTable) -> list[dict[str, str]]:
    """Each row's cells, keyed by column, exactly as ``LayerTable.to_csv`` writes them (read back from it, so
    the GUI's table and layers.csv cannot disagree), plus ``output_bytes``."""
    records = list(csv.DictReader(io.StringIO(table.to_csv())))
    for record, row in zip(records, table.rows, strict=True):
        record["output_bytes"] = str(output_bytes(row))
    return records
