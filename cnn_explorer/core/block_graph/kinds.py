"""What each layer and function of a block is: the module types, function names and activation spellings
the boxes are made from, and the small size helpers their labels use."""

from __future__ import annotations

import re
from typing import Any

from torch import nn

CONV = nn.modules.conv._ConvNd
POOLS = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
_NORMS: dict[type[nn.Module], tuple[str, str]] = {  # type: (short, long)
    nn.modules.batchnorm._BatchNorm: ("BN", "batch norm"),
    nn.GroupNorm: ("GN", "group norm"),
    nn.LayerNorm: ("LN", "layer norm"),
    nn.LocalResponseNorm: ("LRN", "local response norm"),
    nn.modules.instancenorm._InstanceNorm: ("IN", "instance norm"),
}
_ACTIVATION_NAMES = {  # class or function name (lower case): how a box shows it
    "relu": "ReLU",
    "relu6": "ReLU6",
    "hardswish": "h-swish",
    "hardsigmoid": "h-sigmoid",
    "silu": "SiLU",
    "swish": "swish",
    "memoryefficientswish": "swish",
    "sigmoid": "sigmoid",
    "gelu": "GELU",
    "tanh": "tanh",
    "leakyrelu": "leaky ReLU",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "prelu": "PReLU",
    "mish": "mish",
    "softmax": "softmax",
}
DROPPED_FUNCTIONS = {
    "dropout",
    "dropout2d",
    "alpha_dropout",
    "stochastic_depth",
    "drop_connect",
    "contiguous",
}
ADD = {"add", "iadd", "add_"}
MUL = {"mul", "imul", "mul_"}
CAT = {"cat", "concat", "concatenate"}
SPLIT = {"chunk", "split", "tensor_split", "unbind"}
SHUFFLE = {"channel_shuffle", "shuffle_channels"}
_GATE_NAME = re.compile(r"squeeze_?excit|^se(layer|block|module)?$", re.IGNORECASE)


def _pass_through_types() -> tuple[type[nn.Module], ...]:
    types: tuple[type[nn.Module], ...] = (nn.Identity, nn.modules.dropout._DropoutNd)
    try:
        from torchvision.ops import StochasticDepth

        types = (*types, StochasticDepth)
    except ImportError:  # pragma: no cover - torchvision always has it today
        pass
    return types


PASS_THROUGH = _pass_through_types()


def is_gate(module: nn.Module) -> bool:
    return _GATE_NAME.search(type(module).__name__) is not None


def norm_names(module: nn.Module) -> tuple[str, str] | None:
    for cls, names in _NORMS.items():
        if isinstance(module, cls):
            return names
    return None


def activation_name(name: str) -> str | None:
    return _ACTIVATION_NAMES.get(name.lower().rstrip("_"))


def hw_pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (1, 1)
    return int(v), int(v)


def size_text(hw: tuple[int, int]) -> str:
    return f"{hw[0]}×{hw[1]}"
