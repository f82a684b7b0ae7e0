"""Running the block on PyTorch's "meta" device: one pass of the whole model records the block's first
call (its arguments and its modules' output shapes), then torch.fx traces the block on those arguments
and propagates their shapes through the trace."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.fx.passes.shape_prop import ShapeProp

from cnn_explorer.core.block_graph.graph import Shape
from cnn_explorer.core.block_graph.kinds import PASS_THROUGH, SHUFFLE, is_gate
from cnn_explorer.core.layers import call_on_meta, eval_mode, input_channels


@dataclass
class BlockCall:
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    out_shapes: dict[str, Shape] = field(default_factory=dict)  # first call's output of the block's modules


def value_shape(value: Any) -> Shape | None:
    """A tensor's shape without the batch dimension; None for anything else."""
    if isinstance(value, Tensor):
        return tuple(int(v) for v in value.shape[1:])
    return None


def record_block_call(
    model: nn.Module, block_name: str, block: nn.Module, input_size: int
) -> BlockCall | None:
    """The block's first call (its arguments as meta tensors) and its modules' output shapes; None when the
    model never calls it."""
    call = BlockCall()
    seen = False

    def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal seen
        if not seen:
            seen = True
            call.args, call.kwargs = args, dict(kwargs)

    def out_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            shape = value_shape(out)
            if shape is not None and name not in call.out_shapes:
                call.out_shapes[name] = shape

        return hook

    handles = [block.register_forward_pre_hook(pre_hook, with_kwargs=True)]
    for name, module in block.named_modules():
        qualified = ".".join(n for n in (block_name, name) if n)
        handles.append(module.register_forward_hook(out_hook(qualified)))
    x = torch.empty((1, input_channels(model), input_size, input_size), device="meta")
    try:
        with eval_mode(model), torch.no_grad():
            call_on_meta(model, x)
    finally:
        for h in handles:
            h.remove()
    return call if seen else None


class _BlockTracer(fx.Tracer):
    """Stops at the explorer's layers, at squeeze-and-excitation gates and at pass-throughs."""

    def __init__(self, leaves: set[int], autowrap: tuple[Callable[..., Any], ...]) -> None:
        super().__init__(autowrap_functions=autowrap)
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self.leaves or is_gate(m) or isinstance(m, PASS_THROUGH):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _shuffle_functions(block: nn.Module) -> tuple[Callable[..., Any], ...]:
    """Channel-shuffle functions the block's forward can see, kept as one node each."""
    found: list[Callable[..., Any]] = []
    for owner in type(block).__mro__:
        forward = owner.__dict__.get("forward")
        if forward is None:
            continue
        for fname in SHUFFLE:
            fn = getattr(forward, "__globals__", {}).get(fname)
            if callable(fn) and fn not in found:
                found.append(fn)
    return tuple(found)


def _extra_arguments(block: nn.Module, call: BlockCall) -> dict[str, Any]:
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


def trace_block(block: nn.Module, leaves: set[int], call: BlockCall) -> fx.GraphModule:
    """The block traced by torch.fx, stopping at the modules in ``leaves`` (their ids), each node's
    ``tensor_meta`` filled in from the recorded call."""
    if not call.args or not isinstance(call.args[0], Tensor):
        raise TypeError("the block's first argument is not a tensor")
    extras = _extra_arguments(block, call)
    tracer = _BlockTracer(leaves, _shuffle_functions(block))
    with eval_mode(block):  # flags such as ``self.training`` are read while tracing
        graph = tracer.trace(block, concrete_args=extras or None)
    gm = fx.GraphModule(block, graph)
    x = torch.empty_like(call.args[0], device="meta")
    with eval_mode(gm), torch.no_grad():
        call_on_meta(_Propagate(gm), x, *extras.values())
    return gm
