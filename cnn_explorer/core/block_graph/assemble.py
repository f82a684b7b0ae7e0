"""Assembling the graph: trace the block (or, where torch.fx cannot, list its parts as a chain), merge,
lay out, caption, and freeze the result into a :class:`BlockGraph`."""

from __future__ import annotations

import functools

from torch import nn

from cnn_explorer.core.architectures import _imagenet_skeleton, architecture_facts
from cnn_explorer.core.block_graph.boxes import Box, box_id_of, module_box
from cnn_explorer.core.block_graph.captions import caption_for
from cnn_explorer.core.block_graph.fx_boxes import boxes_from_trace
from cnn_explorer.core.block_graph.graph import BlockEdge, BlockGraph, BlockNode
from cnn_explorer.core.block_graph.kinds import CONV
from cnn_explorer.core.block_graph.layout import columns, drop_unreachable, ranks, shortcuts
from cnn_explorer.core.block_graph.merge import merge_chains
from cnn_explorer.core.block_graph.trace import BlockCall, record_block_call, trace_block, value_shape
from cnn_explorer.core.layers import step_modules

__all__ = ["block_graph", "signature_graph"]


def _finish(block_name: str, block_type: str, boxes: list[Box], caption: str | None) -> BlockGraph:
    boxes = drop_unreachable(boxes)
    shortcut = shortcuts(boxes)
    rank = ranks(boxes)
    column = columns(boxes, rank, shortcut)
    if caption is None:
        caption = caption_for(block_type, boxes, shortcut)
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


def _chain_boxes(model: nn.Module, block_name: str, call: BlockCall | None, row_names: set[str]) -> list[Box]:
    """The block's parts in registration order, one after the other."""
    prefix = f"{block_name}."
    steps = [(n, m) for n, m, _ in step_modules(model) if n.startswith(prefix) or not block_name]
    top = [(n, m) for n, m in steps if not any(n.startswith(o + ".") for o, _ in steps if o != n)]
    shapes = call.out_shapes if call else {}
    first = call.args[0] if call and call.args else None
    boxes = [Box("input", "input", "input", None, value_shape(first), short="input")]
    for name, module in top:
        if call is not None and name not in shapes:
            continue  # not called by the forward pass
        box = module_box(box_id_of(name), module, name, shapes.get(name))
        if box is None:
            continue
        if next(module.children(), None) is not None and not isinstance(module, (CONV, nn.Linear)):
            box.kind, box.label = "other", f"{name.rpartition('.')[2]} ({type(module).__name__})"
            box.short = box.label
        box.inputs = [boxes[-1].id]
        box.module = name if name in row_names else None
        boxes.append(box)
    output_module = block_name if block_name in row_names else None
    boxes.append(Box("output", "output", "output", output_module, shapes.get(block_name), [boxes[-1].id]))
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
        call = record_block_call(model, block_name, block, input_size)
    except Exception:  # a model that cannot run on the meta device: no shapes, but still a picture
        call = None
    if call is not None:
        try:
            gm = trace_block(block, leaves, call)
            boxes = merge_chains(boxes_from_trace(gm, block_name, block_type, row_names))
            return _finish(block_name, block_type, boxes, None)
        except Exception as exc:  # torch.fx cannot follow it (data-dependent control flow, ...)
            reason = f"torch.fx could not trace it: {type(exc).__name__}"
    else:
        reason = "its shapes could not be measured"
    boxes = merge_chains(_chain_boxes(model, block_name, call, row_names))
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
