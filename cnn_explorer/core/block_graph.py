"""A model's signature block as a small graph drawn from the real module: boxes for its layers, edges for
its wiring, each box with its output shape and the explorer row it stands for.

The block is traced with torch.fx (its layers, squeeze-and-excitation gates and ShuffleNet's channel
shuffle stay single nodes) and its shapes are propagated on PyTorch's "meta" device, so no arithmetic
runs. For readability a convolution and the batch norm and activation that follow it (or, in a
pre-activation block such as DenseNet's, precede it) become one box, named after the convolution;
pass-throughs (dropout, identity, stochastic depth: the identity in eval mode) disappear, their
connections kept.

Layout: a box's ``rank`` is its longest path from the input (the input has rank 0, the output the largest
rank). Parallel branches get columns side by side (the first branch keeps its parent's column, each
further one takes a new column to the right) and a merge takes the leftmost column of its inputs. An edge
that jumps over computation it runs parallel to (a residual block's identity skip) is a ``shortcut``.

A block that torch.fx cannot trace is shown as the chain of its parts in registration order, and its
caption says so.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.fx.passes.shape_prop import ShapeProp

from cnn_explorer.core.architectures import _imagenet_skeleton, architecture_facts
from cnn_explorer.core.layers import eval_mode, step_modules

__all__ = ["BlockEdge", "BlockGraph", "BlockNode", "block_graph", "signature_graph"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BlockNode:
    id: str
    kind: str  # "input"|"conv"|"pool"|"linear"|"add"|"cat"|"mul"|"shuffle"|"split"|"gate"|"act"|"norm"|...
    label: str  # "3×3 conv, 64 → 64, stride 2"
    detail: str  # what the box also holds, "BN · ReLU"; "" when nothing
    module: str | None  # the explorer row this box stands for (the whole model's naming), None for functions
    out_shape: Shape | None  # (C, H, W) without the batch dimension
    rank: int  # longest path from the input
    column: int  # 0 for the main path; parallel branches to the right


@dataclass(frozen=True)
class BlockEdge:
    src: str
    dst: str
    shortcut: bool  # jumps over computation that runs parallel to it (an identity skip)


@dataclass(frozen=True)
class BlockGraph:
    block: str  # qualified module name in the model, "layer1.0"
    type: str  # the block's class name, "BasicBlock"
    nodes: tuple[BlockNode, ...]  # ordered by (rank, column)
    edges: tuple[BlockEdge, ...]
    branches: int  # parallel paths leaving the input (a residual block's identity skip counts)
    caption: str  # one line in words

    def node(self, node_id: str) -> BlockNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def inputs_of(self, node_id: str) -> list[str]:
        return [e.src for e in self.edges if e.dst == node_id]

    def outputs_of(self, node_id: str) -> list[str]:
        return [e.dst for e in self.edges if e.src == node_id]


# ---------------------------------------------------------------------------------------------------------
# What each layer is


_CONV = nn.modules.conv._ConvNd
_POOLS = (
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
_DROPPED_FUNCTIONS = {
    "dropout",
    "dropout2d",
    "alpha_dropout",
    "stochastic_depth",
    "drop_connect",
    "contiguous",
}
_ADD = {"add", "iadd", "add_"}
_MUL = {"mul", "imul", "mul_"}
_CAT = {"cat", "concat", "concatenate"}
_SPLIT = {"chunk", "split", "tensor_split", "unbind"}
_SHUFFLE = {"channel_shuffle", "shuffle_channels"}
_GATE_NAME = re.compile(r"squeeze_?excit|^se(layer|block|module)?$", re.IGNORECASE)


def _pass_through_types() -> tuple[type[nn.Module], ...]:
    types: tuple[type[nn.Module], ...] = (nn.Identity, nn.modules.dropout._DropoutNd)
    try:
        from torchvision.ops import StochasticDepth

        types = (*types, StochasticDepth)
    except ImportError:  # pragma: no cover - torchvision always has it today
        pass
    return types


_PASS_THROUGH = _pass_through_types()


def _is_gate(module: nn.Module) -> bool:
    return _GATE_NAME.search(type(module).__name__) is not None


def _norm_names(module: nn.Module) -> tuple[str, str] | None:
    for cls, names in _NORMS.items():
        if isinstance(module, cls):
            return names
    return None


def _activation_name(name: str) -> str | None:
    return _ACTIVATION_NAMES.get(name.lower().rstrip("_"))


def _hw(v: Any) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) else (1, 1)
    return int(v), int(v)


def _size_text(hw: tuple[int, int]) -> str:
    return f"{hw[0]}×{hw[1]}"


# ---------------------------------------------------------------------------------------------------------
# Working boxes (mutable while chains are merged)


@dataclass
class _Box:
    id: str
    kind: str
    label: str
    module: str | None
    out_shape: Shape | None
    inputs: list[str] = field(default_factory=list)
    short: str = ""  # for captions: "3×3 64", "3×3 depthwise 144", "3×3 max pool"
    before: list[str] = field(default_factory=list)  # norms / activations merged in front of a conv
    after: list[str] = field(default_factory=list)  # ... and behind it
    kernel: tuple[int, int] | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    depthwise: bool = False
    stride: int = 1
    groups: int = 1  # channel shuffle groups too

    def detail(self) -> str:
        if self.kind == "split" and self.out_channels:
            return f"{self.groups} × {self.out_channels} channels"
        if self.before:
            text = f"{' · '.join(self.before)} before"
            return f"{text}, {' · '.join(self.after)} after" if self.after else text
        return " · ".join(self.after)


def _conv_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> _Box:
    kh, kw = _hw(module.kernel_size)  # type: ignore[arg-type]
    cin, cout, groups = int(module.in_channels), int(module.out_channels), int(module.groups)
    stride = max(_hw(module.stride))  # type: ignore[arg-type]
    dilation = max(_hw(module.dilation))  # type: ignore[arg-type]
    depthwise = groups > 1 and groups == cin
    label = f"{kh}×{kw} conv, {cin} → {cout}"
    short = f"{kh}×{kw} depthwise {cout}" if depthwise else f"{kh}×{kw} {cout}"
    if stride > 1:
        label += f", stride {stride}"
        short += f" stride {stride}"
    if depthwise:
        label += ", depthwise"
    elif groups > 1:
        label += f", groups {groups}"
        short += f" (groups {groups})"
    if dilation > 1:
        label += f", dilation {dilation}"
    return _Box(
        box_id,
        "conv",
        label,
        name,
        shape,
        short=short,
        kernel=(kh, kw),
        in_channels=cin,
        out_channels=cout,
        depthwise=depthwise,
        stride=stride,
        groups=groups,
    )


def _pool_box(
    box_id: str, kind: str, kernel: Any, stride: Any, adaptive_to: Any, name: str | None, shape: Shape | None
) -> _Box:
    """kind "max" or "avg"; ``adaptive_to`` the output size of an adaptive pool, else None."""
    if adaptive_to is not None:
        out = _hw(adaptive_to)
        label = f"global {kind} pool" if out == (1, 1) else f"adaptive {kind} pool to {_size_text(out)}"
        return _Box(box_id, "pool", label, name, shape, short=label)
    k = _hw(kernel)
    s = max(_hw(stride if stride is not None and stride != [] else kernel))
    short = f"{_size_text(k)} {kind} pool"
    return _Box(box_id, "pool", f"{short}, stride {s}", name, shape, short=short, kernel=k, stride=s)


def _module_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> _Box | None:
    """The box of a leaf module's call; None for a pass-through (dropped, its connection kept)."""
    if isinstance(module, _PASS_THROUGH):
        return None
    if isinstance(module, _CONV):
        return _conv_box(box_id, module, name, shape)
    if isinstance(module, nn.Linear):
        label = f"FC {module.in_features} → {module.out_features}"
        return _Box(
            box_id,
            "linear",
            label,
            name,
            shape,
            short=f"FC {module.out_features}",
            in_channels=module.in_features,
            out_channels=module.out_features,
        )
    if isinstance(module, _POOLS):
        kind = "max" if "Max" in type(module).__name__ else "avg"
        adaptive = getattr(module, "output_size", None)
        return _pool_box(
            box_id,
            kind,
            getattr(module, "kernel_size", 1),
            getattr(module, "stride", None),
            adaptive,
            name,
            shape,
        )
    if _is_gate(module):
        return _gate_box(box_id, module, name, shape)
    norm = _norm_names(module)
    if norm is not None:
        return _Box(box_id, "norm", norm[1], name, shape, short=norm[0])
    act = _activation_name(type(module).__name__)
    if act is not None:
        return _Box(box_id, "act", act, name, shape, short=act)
    label = type(module).__name__
    return _Box(box_id, "other", label, name, shape, short=label)


def _gate_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> _Box:
    layers = [m for m in module.modules() if isinstance(m, (_CONV, nn.Linear))]
    box = _Box(box_id, "gate", "squeeze-excitation", name, shape, short="squeeze-excitation")
    if len(layers) >= 2:
        first = layers[0]
        cin = getattr(first, "in_channels", getattr(first, "in_features", 0))
        mid = getattr(first, "out_channels", getattr(first, "out_features", 0))
        box.after = [f"global pool · {cin} → {mid} → {cin} · scale channels"]
        box.in_channels = box.out_channels = int(cin)
    return box


# ---------------------------------------------------------------------------------------------------------
# Finding the block's input: one pass of the whole model on the meta device


@dataclass
class _Call:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    out_shapes: dict[str, Shape] = field(default_factory=dict)  # first call's output of the block's modules


def _input_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, _CONV):
            return int(m.in_channels)
        if isinstance(m, nn.Linear):
            return 3
    return 3


def _named_tensors(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def _call_on_meta(module: nn.Module, args: tuple[Any, ...]) -> Any:
    """``module(*args)`` with every parameter and buffer swapped for a meta twin (shapes only)."""
    tensors = {n: torch.empty_like(t, device="meta") for n, t in _named_tensors(module)}
    return torch.func.functional_call(module, tensors, args, strict=False)


def _shape(value: Any) -> Shape | None:
    if isinstance(value, Tensor):
        return tuple(int(v) for v in value.shape[1:])
    return None


def _record_block_call(model: nn.Module, block_name: str, block: nn.Module, input_size: int) -> _Call | None:
    """The block's first call (its arguments as meta tensors) and its modules' output shapes; None when the
    model never calls it."""
    call = _Call()
    seen = False

    def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal seen
        if not seen:
            seen = True
            call.args, call.kwargs = args, dict(kwargs)

    def out_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            shape = _shape(out)
            if shape is not None and name not in call.out_shapes:
                call.out_shapes[name] = shape

        return hook

    handles = [block.register_forward_pre_hook(pre_hook, with_kwargs=True)]
    for name, module in block.named_modules():
        qualified = ".".join(n for n in (block_name, name) if n)
        handles.append(module.register_forward_hook(out_hook(qualified)))
    x = torch.empty((1, _input_channels(model), input_size, input_size), device="meta")
    try:
        with eval_mode(model), torch.no_grad():
            _call_on_meta(model, (x,))
    finally:
        for h in handles:
            h.remove()
    return call if seen else None


# ---------------------------------------------------------------------------------------------------------
# Tracing


class _BlockTracer(fx.Tracer):
    """Stops at the explorer's layers, at squeeze-and-excitation gates and at pass-throughs."""

    def __init__(self, leaves: set[int], autowrap: tuple[Callable[..., Any], ...]) -> None:
        super().__init__(autowrap_functions=autowrap)
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self.leaves or _is_gate(m) or isinstance(m, _PASS_THROUGH):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _shuffle_functions(block: nn.Module) -> tuple[Callable[..., Any], ...]:
    """Channel-shuffle functions the block's forward can see, kept as one node each."""
    found: list[Callable[..., Any]] = []
    for owner in type(block).__mro__:
        forward = owner.__dict__.get("forward")
        if forward is None:
            continue
        for fname in _SHUFFLE:
            fn = getattr(forward, "__globals__", {}).get(fname)
            if callable(fn) and fn not in found:
                found.append(fn)
    return tuple(found)


def _extra_arguments(block: nn.Module, call: _Call) -> dict[str, Any]:
    """Values for the forward's parameters after the first, fixed for tracing (their defaults: dropout-like
    rates are None by default and do nothing in eval mode)."""
    params = list(inspect.signature(block.forward).parameters.values())[1:]
    extras: dict[str, Any] = {}
    for i, p in enumerate(params):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is not p.empty:
            extras[p.name] = p.default
            continue
        given = (
            call.kwargs[p.name]
            if p.name in call.kwargs
            else call.args[i + 1]
            if i + 1 < len(call.args)
            else None
        )
        if isinstance(given, Tensor):
            raise TypeError(f"the block takes a second tensor ({p.name})")
        extras[p.name] = given
    return extras


class _Propagate(nn.Module):
    """Runs ShapeProp over the traced block, so functional_call can hand it meta parameters."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, *args: Any) -> None:
        ShapeProp(self.gm).propagate(*args)


def _trace(block: nn.Module, leaves: set[int], call: _Call) -> fx.GraphModule:
    if not call.args or not isinstance(call.args[0], Tensor):
        raise TypeError("the block's first argument is not a tensor")
    extras = _extra_arguments(block, call)
    tracer = _BlockTracer(leaves, _shuffle_functions(block))
    with eval_mode(block):  # flags such as ``self.training`` are read while tracing
        graph = tracer.trace(block, concrete_args=extras or None)
    gm = fx.GraphModule(block, graph)
    x = torch.empty_like(call.args[0], device="meta")
    with eval_mode(gm), torch.no_grad():
        _call_on_meta(_Propagate(gm), (x, *extras.values()))
    return gm


# ---------------------------------------------------------------------------------------------------------
# fx nodes -> boxes


def _tensor_shape(node: fx.Node) -> Shape | None:
    meta = node.meta.get("tensor_meta")
    if meta is None:
        return None
    if not hasattr(meta, "shape") and isinstance(meta, (tuple, list)):  # pieces of a split: the first
        meta = meta[0] if meta else None
    shape = getattr(meta, "shape", None)
    return tuple(int(v) for v in shape[1:]) if shape is not None else None


def _is_tensor_node(node: fx.Node) -> bool:
    return node.meta.get("tensor_meta") is not None


def _node_args(node: fx.Node) -> Iterator[fx.Node]:
    stack: list[Any] = [*node.args, *node.kwargs.values()]
    while stack:
        a = stack.pop(0)
        if isinstance(a, fx.Node):
            yield a
        elif isinstance(a, (tuple, list)):
            stack[0:0] = list(a)
        elif isinstance(a, dict):
            stack[0:0] = list(a.values())


def _argument(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    if name in node.kwargs:
        return node.kwargs[name]
    return node.args[index] if len(node.args) > index else default


def _function_name(node: fx.Node) -> str:
    target = node.target
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target))


def _box_id(name: str) -> str:
    """Box ids come from node or module names; "input" and "output" are the block's own ends."""
    return f"{name}_" if name in ("input", "output") else name


def _function_box(node: fx.Node, tensor_inputs: list[str], shape: Shape | None) -> _Box | None:
    """The box of a function or method call; None for one that passes its input on (dropped)."""
    fname = _function_name(node)
    base = fname.lower()
    bid = _box_id(node.name)
    if base in _DROPPED_FUNCTIONS:
        return None
    if base in _ADD and len(tensor_inputs) >= 2:
        return _Box(bid, "add", "+", None, shape, short="+")
    if base in _MUL and len(tensor_inputs) >= 2:
        return _Box(bid, "mul", "×", None, shape, short="×")
    if base in _CAT:
        if len(tensor_inputs) < 2:
            return None  # DenseNet concatenates its input alone first: the same tensor
        return _Box(bid, "cat", "concat", None, shape, short="concat")
    if base in _SPLIT:
        meta = node.meta.get("tensor_meta")
        pieces = 1 if hasattr(meta, "shape") else len(meta)
        box = _Box(bid, "split", "channel split", None, shape, short="channel split", groups=pieces)
        box.out_channels = shape[0] if shape else None
        return box
    if base in _SHUFFLE:
        groups = int(_argument(node, 1, "groups", 1))
        label = f"channel shuffle (groups {groups})"
        return _Box(bid, "shuffle", label, None, shape, short="channel shuffle", groups=groups)
    act = _activation_name(base)
    if act is not None:
        return _Box(bid, "act", act, None, shape, short=act)
    if "pool" in base:
        kind = "max" if "max" in base else "avg"
        if "adaptive" in base:
            return _pool_box(bid, kind, 1, None, _argument(node, 1, "output_size", 1), None, shape)
        kernel = _argument(node, 1, "kernel_size", 1)
        return _pool_box(bid, kind, kernel, _argument(node, 2, "stride", None), None, None, shape)
    label = {"flatten": "flatten", "view": "reshape", "reshape": "reshape"}.get(base, fname)
    return _Box(bid, "other", label, None, shape, short=label)


def _boxes_from_trace(
    gm: fx.GraphModule, block_name: str, block_type: str, row_names: set[str]
) -> list[_Box]:
    prefix = f"{block_name}." if block_name else ""
    alias: dict[fx.Node, str] = {}  # fx node -> id of the box that carries its value
    boxes: list[_Box] = []
    calls: dict[str, int] = {}
    first_input = True
    for node in gm.graph.nodes:
        tensor_inputs = list(dict.fromkeys(alias[a] for a in _node_args(node) if a in alias))
        if node.op == "placeholder":
            if first_input:
                boxes.append(_Box("input", "input", "input", None, _tensor_shape(node), short="input"))
                alias[node] = "input"
                first_input = False
            continue
        if node.op == "output":
            module = block_name if block_name in row_names else None
            out = _Box("output", "output", "output", module, _tensor_shape(node), inputs=tensor_inputs)
            out.short = "output"
            boxes.append(out)
            continue
        if not _is_tensor_node(node) or node.op == "get_attr":
            continue  # sizes, assertions, constants
        if node.op == "call_function" and node.target is operator.getitem:
            source = node.args[0]
            if isinstance(source, fx.Node) and source in alias:
                source_box = next(b for b in boxes if b.id == alias[source])
                if source_box.kind == "split":  # one piece of a split: drawn as the split itself
                    alias[node] = source_box.id
                    continue
        shape = _tensor_shape(node)
        if node.op == "call_module":
            target = str(node.target)
            calls[target] = calls.get(target, 0) + 1
            name = prefix + target
            row = name if calls[target] == 1 else f"{name}#{calls[target]}"
            box = _module_box(_box_id(node.name), gm.get_submodule(target), row, shape)
        else:
            box = _function_box(node, tensor_inputs, shape)
        if box is None:
            if tensor_inputs:
                alias[node] = tensor_inputs[0]
            continue
        box.inputs = tensor_inputs
        if box.module is not None and box.module.split("#")[0] not in row_names:
            box.module = None
        boxes.append(box)
        alias[node] = box.id
    if not any(b.kind == "output" for b in boxes):
        raise ValueError(f"{block_type} has no output")
    return boxes


# ---------------------------------------------------------------------------------------------------------
# Merging chains into readable boxes


def _users(boxes: list[_Box]) -> dict[str, list[str]]:
    users: dict[str, list[str]] = {b.id: [] for b in boxes}
    for b in boxes:
        for i in b.inputs:
            users[i].append(b.id)
    return users


def _chain_start(by_id: dict[str, _Box], box: _Box) -> _Box:
    """The box feeding the run of norms / activations that ``box`` is part of."""
    while box.kind in ("norm", "act") and len(box.inputs) == 1:
        box = by_id[box.inputs[0]]
    return box


def _merge_chains(boxes: list[_Box]) -> list[_Box]:
    """conv → norm → activation (single users) become the conv's box; norms and activations right before
    a conv (pre-activation) join it too; a lone norm takes the activation after it."""
    by_id = {b.id: b for b in boxes}
    removed: set[str] = set()

    def absorb_after(head: _Box, kinds: tuple[str, ...]) -> None:
        while True:
            users = [u for u in _users([b for b in boxes if b.id not in removed])[head.id]]
            if len(users) != 1:
                return
            nxt = by_id[users[0]]
            if nxt.kind not in kinds or nxt.inputs != [head.id]:
                return
            head.after.append(nxt.short)
            head.out_shape = nxt.out_shape
            removed.add(nxt.id)
            for b in boxes:
                b.inputs = [head.id if i == nxt.id else i for i in b.inputs]
            if nxt.kind == "act":
                kinds = ("act",)

    def absorb_before(first_only: bool) -> None:
        """Norms / activations whose only user is a conv fed only by them; ``first_only``: only chains that
        do not start right after a conv (where they belong to that conv, post-activation style)."""
        changed = True
        while changed:
            changed = False
            live = [b for b in boxes if b.id not in removed]
            users = _users(live)
            for box in live:
                if box.kind not in ("norm", "act") or len(users[box.id]) != 1 or len(box.inputs) != 1:
                    continue
                conv = by_id[users[box.id][0]]
                if conv.kind != "conv" or conv.inputs != [box.id]:
                    continue
                if first_only and _chain_start(by_id, box).kind in ("conv", "linear"):
                    continue
                conv.before.insert(0, box.short)
                conv.inputs = list(box.inputs)
                removed.add(box.id)
                changed = True
                break

    absorb_before(first_only=True)  # pre-activation blocks (DenseNet): BN · ReLU → conv
    for box in boxes:
        if box.id not in removed and box.kind in ("conv", "linear") and not box.before:
            absorb_after(box, ("norm", "act"))
    absorb_before(first_only=False)
    for box in boxes:
        if box.id not in removed and box.kind == "norm":
            absorb_after(box, ("act",))
    return [b for b in boxes if b.id not in removed]


# ---------------------------------------------------------------------------------------------------------
# Layout


def _drop_unreachable(boxes: list[_Box]) -> list[_Box]:
    reached = {"input"}
    for b in boxes:
        if any(i in reached for i in b.inputs):
            reached.add(b.id)
    kept = [b for b in boxes if b.id in reached or b.kind == "output"]
    ids = {b.id for b in kept}
    for b in kept:
        b.inputs = [i for i in b.inputs if i in ids]
    return kept


def _ranks(boxes: list[_Box]) -> dict[str, int]:
    rank: dict[str, int] = {}
    for b in boxes:
        rank[b.id] = max((rank[i] + 1 for i in b.inputs), default=0)
    last = max((r for k, r in rank.items() if k != "output"), default=0) + 1
    for b in boxes:
        if b.kind == "output":
            rank[b.id] = max(rank[b.id], last)
    return rank


def _columns(boxes: list[_Box], rank: dict[str, int], shortcut: set[tuple[str, str]]) -> dict[str, int]:
    column: dict[str, int] = {}
    claimed: set[str] = set()
    next_free = 1
    for b in boxes:
        preds = [i for i in b.inputs if (i, b.id) not in shortcut]
        if not b.inputs:
            column[b.id] = 0
        elif len(b.inputs) >= 2:
            column[b.id] = min(column[i] for i in b.inputs)
        elif (preds or b.inputs)[0] not in claimed:
            column[b.id] = column[b.inputs[0]]
            claimed.add(b.inputs[0])
        else:
            column[b.id] = next_free
            next_free += 1
    taken: set[tuple[int, int]] = set()
    for b in boxes:  # never two boxes in one place
        if (rank[b.id], column[b.id]) in taken:
            column[b.id] = max(c for _, c in taken) + 1
        taken.add((rank[b.id], column[b.id]))
    return column


def _shortcuts(boxes: list[_Box]) -> set[tuple[str, str]]:
    """Edges u → v where another path also leads from u to v: they skip computation."""
    reach: dict[str, set[str]] = {}
    users = _users(boxes)
    for b in reversed(boxes):
        r: set[str] = set()
        for u in users[b.id]:
            r |= {u} | reach[u]
        reach[b.id] = r
    found = set()
    for b in boxes:
        for i in b.inputs:
            if any(w != b.id and b.id in reach[w] for w in users[i]):
                found.add((i, b.id))
    return found


# ---------------------------------------------------------------------------------------------------------
# The caption, in words, from the graph


_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


class _Wiring:
    def __init__(self, boxes: list[_Box], shortcut: set[tuple[str, str]]) -> None:
        self.boxes = boxes
        self.by_id = {b.id: b for b in boxes}
        self.users = _users(boxes)
        self.shortcut = shortcut

    def chain(self, start: str, stop: str) -> list[_Box]:
        """Boxes from ``start`` (included) along single links up to ``stop`` (excluded)."""
        out: list[_Box] = []
        current = start
        while current != stop and current in self.by_id:
            box = self.by_id[current]
            if len(box.inputs) > 1 or box in out:
                break
            out.append(box)
            nxt = self.users[current]
            if len(nxt) != 1:
                break
            current = nxt[0]
        return out

    def origin(self, box_id: str) -> tuple[str, list[_Box]]:
        """Walk back along single links from ``box_id``: (the fan-out box it started from, the chain)."""
        path: list[_Box] = []
        current = box_id
        while current in self.by_id:
            box = self.by_id[current]
            if box.kind == "input" or len(self.users[current]) > 1 or len(box.inputs) != 1:
                break
            path.insert(0, box)
            current = box.inputs[0]
        return current, path


def _path_text(boxes: Iterable[_Box]) -> str:
    return " → ".join(b.short for b in boxes if b.kind not in ("act", "norm")) or "identity"


def _channels(box: _Box) -> int | None:
    return box.out_shape[0] if box.out_shape else box.out_channels


def _caption(graph_type: str, boxes: list[_Box], shortcut: set[tuple[str, str]]) -> str:
    w = _Wiring(boxes, shortcut)
    inp, out = w.by_id["input"], next(b for b in boxes if b.kind == "output")
    merges = [b for b in boxes if b.kind in ("add", "cat", "mul") and len(b.inputs) >= 2]
    body = [b for b in boxes if b.kind not in ("input", "output")]
    cin, cout = _channels(inp), _channels(out)
    dense = [m for m in merges if m.kind == "cat" and ("input", m.id) in shortcut]
    if len(dense) >= 2:
        layer = w.chain(w.users["input"][0], dense[0].id) if w.users["input"] else []
        layer = [b for b in layer if b.kind != "cat"]
        growth = _channels(layer[-1]) if layer else None
        return (
            f"dense block: {len(dense)} layers ({_path_text(layer)}, {growth} new channels each), each "
            f"fed the concatenation of the block input and all earlier layers' outputs; "
            f"{cin} → {cout} channels"
        )
    if not merges:
        convs = [b for b in body if b.kind == "conv"]
        if len(convs) == 2 and convs[0].depthwise and convs[1].kernel == (1, 1):
            gate = ", squeeze-excitation between them" if any(b.kind == "gate" for b in body) else ""
            return (
                f"depthwise-separable convolution: {_size_text(convs[0].kernel or (1, 1))} depthwise on "
                f"{convs[0].out_channels} channels, then 1×1 pointwise {convs[1].in_channels} → "
                f"{convs[1].out_channels}{gate}; no shortcut"
            )
        return f"{graph_type}: a chain — {_path_text(body)}"
    split = next((b for b in body if b.kind == "split"), None)
    shuffle = next((b for b in body if b.kind == "shuffle"), None)
    last = merges[-1]
    if split is not None and shuffle is not None and last.kind == "cat":
        kept = [i for i in last.inputs if i == split.id]
        worked = [w.origin(i)[1] for i in last.inputs if i != split.id]
        passes = f"{split.out_channels} channels pass unchanged, " if kept else ""
        paths = " | ".join(_path_text(p) for p in worked)
        return (
            f"channel split and shuffle: {passes}{split.out_channels} go through {paths}; "
            f"concatenated to {_channels(last)} channels and shuffled (groups {shuffle.groups})"
        )
    if last.kind == "add":
        return _residual_caption(w, last)
    if last.kind == "cat":
        return _branches_caption(w, last, cin)
    return f"{graph_type}: {_path_text(body)}"


def _residual_caption(w: _Wiring, add: _Box) -> str:
    paths = sorted((w.origin(i) for i in add.inputs), key=lambda op: -len(op[1]))
    main = paths[0][1]
    skip_from, skip = paths[-1] if len(paths) > 1 else ("input", [])
    convs = [b for b in main if b.kind == "conv"]
    words = _path_text(main)
    kind = "residual block"
    sizes = {b.kernel for b in convs}
    widths = {b.out_channels for b in convs} | {b.in_channels for b in convs}
    gate = any(b.kind == "gate" for b in main)
    if convs and len(sizes) == 1 and len(widths) == 1 and not gate:
        k = _size_text(convs[0].kernel or (1, 1))
        count = _NUMBER_WORDS.get(len(convs), str(len(convs)))
        words = f"{count} {k} convs, {convs[0].out_channels} channels"
    elif len(convs) >= 2 and convs[0].kernel == convs[-1].kernel == (1, 1):
        first, lastc = convs[0], convs[-1]
        if any(b.depthwise for b in convs) and (first.out_channels or 0) > (first.in_channels or 0):
            kind = "inverted residual block"
            middle = ", ".join(
                f"{_size_text(b.kernel or (1, 1))} depthwise"
                + (f" stride {b.stride}" if b.stride > 1 else "")
                if b.kind == "conv"
                else b.short
                for b in main[1:-1]
                if b.kind in ("conv", "gate")
            )
            words = (
                f"expand 1×1 {first.in_channels} → {first.out_channels}, {middle}, "
                f"project 1×1 {lastc.in_channels} → {lastc.out_channels}"
            )
        elif len(convs) == 3 and (convs[1].out_channels or 0) < (lastc.out_channels or 0):
            kind = "bottleneck residual block"
    if not skip and skip_from == "input":
        shortcut = "identity shortcut added"
    else:
        shortcut = f"projection shortcut ({_path_text(skip)}) added"
    after = [b.short for b in w.chain(w.users[add.id][0], "output")] if w.users[add.id] else []
    tail = f", then {' · '.join(after)}" if after else ""
    return f"{kind}: {words}, {shortcut}{tail}"


def _branches_caption(w: _Wiring, cat: _Box, cin: int | None) -> str:
    origins = [w.origin(i) for i in cat.inputs]
    fan = origins[0][0]
    branches = [path for _, path in origins]
    text = " | ".join(_path_text(p) for p in branches)
    n = len(branches)
    total = f"concatenated to {_channels(cat)} channels"
    lead = [*w.chain(w.users["input"][0], fan), w.by_id[fan]] if fan != "input" and w.users["input"] else []
    if fan == "input" or not lead:
        name = "Inception module" if n >= 3 else "multi-branch block"
        return f"{name}: {n} branches — {text}, {total}"
    squeeze = lead[-1] if lead[-1].kind == "conv" else None
    if len(lead) == 1 and squeeze is not None and (squeeze.out_channels or 0) < (cin or 0):
        return f"Fire module: squeeze {squeeze.short}, then {n} expand branches — {text}, {total}"
    return f"{_path_text(lead)}, then {n} branches — {text}, {total}"


# ---------------------------------------------------------------------------------------------------------
# Assembling the graph


def _finish(block_name: str, block_type: str, boxes: list[_Box], caption: str | None) -> BlockGraph:
    boxes = _drop_unreachable(boxes)
    shortcut = _shortcuts(boxes)
    rank = _ranks(boxes)
    column = _columns(boxes, rank, shortcut)
    if caption is None:
        caption = _caption(block_type, boxes, shortcut)
    nodes = tuple(
        sorted(
            (
                BlockNode(b.id, b.kind, b.label, b.detail(), b.module, b.out_shape, rank[b.id], column[b.id])
                for b in boxes
            ),
            key=lambda n: (n.rank, n.column),
        )
    )
    edges = tuple(BlockEdge(i, b.id, (i, b.id) in shortcut) for b in boxes for i in b.inputs)
    branches = sum(1 for e in edges if e.src == "input")
    return BlockGraph(block_name, block_type, nodes, edges, branches, caption)


def _chain_boxes(model: nn.Module, block_name: str, call: _Call | None, row_names: set[str]) -> list[_Box]:
    """The block's parts in registration order, one after the other."""
    prefix = f"{block_name}."
    steps = [(n, m) for n, m, _ in step_modules(model) if n.startswith(prefix) or not block_name]
    top = [(n, m) for n, m in steps if not any(n.startswith(o + ".") for o, _ in steps if o != n)]
    shapes = call.out_shapes if call else {}
    first = call.args[0] if call and call.args else None
    boxes = [_Box("input", "input", "input", None, _shape(first), short="input")]
    for name, module in top:
        if call is not None and name not in shapes:
            continue  # not called by the forward pass
        box = _module_box(_box_id(name), module, name, shapes.get(name))
        if box is None:
            continue
        if next(module.children(), None) is not None and not isinstance(module, (_CONV, nn.Linear)):
            box.kind, box.label = "other", f"{name.rpartition('.')[2]} ({type(module).__name__})"
            box.short = box.label
        box.inputs = [boxes[-1].id]
        box.module = name if name in row_names else None
        boxes.append(box)
    output_module = block_name if block_name in row_names else None
    boxes.append(_Box("output", "output", "output", output_module, shapes.get(block_name), [boxes[-1].id]))
    return boxes


def block_graph(model: nn.Module, block_name: str, input_size: int) -> BlockGraph:
    """The graph of ``model``'s module ``block_name`` (qualified, "layer1.0") seen on an input image of
    ``input_size`` × ``input_size``. KeyError for a name the model does not have."""
    modules = dict(model.named_modules())
    if block_name not in modules:
        raise KeyError(block_name)
    block = modules[block_name]
    block_type = type(block).__name__
    steps = step_modules(model)
    row_names = {n for n, _, _ in steps}  # explorer rows; a module called again adds "#2", "#3" ...
    leaves = {id(m) for _, m, kind in steps if kind == "layer"}
    try:
        call = _record_block_call(model, block_name, block, input_size)
    except Exception:  # a model that cannot run on the meta device: no shapes, but still a picture
        call = None
    if call is not None:
        try:
            gm = _trace(block, leaves, call)
            boxes = _merge_chains(_boxes_from_trace(gm, block_name, block_type, row_names))
            return _finish(block_name, block_type, boxes, None)
        except Exception as exc:  # torch.fx cannot follow it (data-dependent control flow, ...)
            reason = f"torch.fx could not trace it: {type(exc).__name__}"
    else:
        reason = "its shapes could not be measured"
    boxes = _merge_chains(_chain_boxes(model, block_name, call, row_names))
    caption = f"{block_type}: shown as a chain of its {len(boxes) - 2} parts in registration order ({reason})"
    return _finish(block_name, block_type, boxes, caption)


@functools.cache
def signature_graph(name: str, block: str | None = None) -> BlockGraph | None:
    """The graph of zoo model ``name``'s signature block (or of ``block``), on its own input size; None for
    a plain stack of layers. Cached: the gallery asks for it whenever it shows the model."""
    facts = architecture_facts(name)
    target = block if block is not None else facts.signature_block
    if target is None:
        return None
    return block_graph(_imagenet_skeleton(name), target, facts.input_size)
