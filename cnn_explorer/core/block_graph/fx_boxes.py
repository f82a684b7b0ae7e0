"""Turning a traced block into boxes: one per module or function node that computes a tensor, wired by
the tensors they pass; pass-throughs are dropped and their connections kept."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import torch.fx as fx

from cnn_explorer.core.block_graph.boxes import Box, box_id_of, module_box, pool_box
from cnn_explorer.core.block_graph.graph import Shape
from cnn_explorer.core.block_graph.kinds import (
    ADD,
    CAT,
    DROPPED_FUNCTIONS,
    MUL,
    SHUFFLE,
    SPLIT,
    activation_name,
)


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


def _function_box(node: fx.Node, tensor_inputs: list[str], shape: Shape | None) -> Box | None:
    """The box of a function or method call; None for one that passes its input on (dropped)."""
    fname = _function_name(node)
    base = fname.lower()
    bid = box_id_of(node.name)
    if base in DROPPED_FUNCTIONS:
        return None
    if base in ADD and len(tensor_inputs) >= 2:
        return Box(bid, "add", "+", None, shape, short="+")
    if base in MUL and len(tensor_inputs) >= 2:
        return Box(bid, "mul", "×", None, shape, short="×")
    if base in CAT:
        if len(tensor_inputs) < 2:
            return None  # DenseNet concatenates its input alone first: the same tensor
        return Box(bid, "cat", "concat", None, shape, short="concat")
    if base in SPLIT:
        meta = node.meta.get("tensor_meta")
        pieces = 1 if hasattr(meta, "shape") else len(meta)
        box = Box(bid, "split", "channel split", None, shape, short="channel split", groups=pieces)
        box.out_channels = shape[0] if shape else None
        return box
    if base in SHUFFLE:
        groups = int(_argument(node, 1, "groups", 1))
        label = f"channel shuffle (groups {groups})"
        return Box(bid, "shuffle", label, None, shape, short="channel shuffle", groups=groups)
    act = activation_name(base)
    if act is not None:
        return Box(bid, "act", act, None, shape, short=act)
    if "pool" in base:
        kind = "max" if "max" in base else "avg"
        if "adaptive" in base:
            return pool_box(bid, kind, 1, None, _argument(node, 1, "output_size", 1), None, shape)
        kernel = _argument(node, 1, "kernel_size", 1)
        return pool_box(bid, kind, kernel, _argument(node, 2, "stride", None), None, None, shape)
    label = {"flatten": "flatten", "view": "reshape", "reshape": "reshape"}.get(base, fname)
    return Box(bid, "other", label, None, shape, short=label)


def boxes_from_trace(gm: fx.GraphModule, block_name: str, block_type: str, row_names: set[str]) -> list[Box]:
    """The boxes of traced block ``gm``, in graph order, from "input" to "output"; a box's ``module`` is its
    explorer row in ``row_names`` (a module called again: "name#2"), else None."""
    prefix = f"{block_name}." if block_name else ""
    alias: dict[fx.Node, str] = {}  # fx node -> id of the box that carries its value
    boxes: list[Box] = []
    calls: dict[str, int] = {}
    first_input = True
    for node in gm.graph.nodes:
        tensor_inputs = list(dict.fromkeys(alias[a] for a in _node_args(node) if a in alias))
        if node.op == "placeholder":
            if first_input:
                boxes.append(Box("input", "input", "input", None, _tensor_shape(node), short="input"))
                alias[node] = "input"
                first_input = False
            continue
        if node.op == "output":
            module = block_name if block_name in row_names else None
            out = Box("output", "output", "output", module, _tensor_shape(node), inputs=tensor_inputs)
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
            box = module_box(box_id_of(node.name), gm.get_submodule(target), row, shape)
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
