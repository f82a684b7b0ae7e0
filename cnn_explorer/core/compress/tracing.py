"""Getting a model ready for FX graph mode, and saying which part stops it when it cannot be.

Static int8 needs a graph of the whole model. Two things stand in the way here:

- same-padding convolutions (EfficientNet-Lite0) trace into unfused functional convolutions: rewritten
  by :func:`.padding.standardise_same_padding`;
- a linear probe (``transfer.layers.LinearProbeModel``) stops its backbone with a forward hook that raises,
  which FX does not run for a leaf module: :class:`TracedProbe` is the same computation as a graph — the
  backbone traced with the cut layer as a leaf and its output made the graph's output — with the same
  module names (``backbone.<layer>…``, ``fc``).

:func:`untraceable_part` traces with a tracer that remembers which module it was in when tracing failed,
so the message names the module ("'gate' (Gate): TraceError: …") rather than only the exception.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnn_explorer.core.compress.padding import standardise_same_padding
from cnn_explorer.core.transfer.layers import LinearProbeModel

__all__ = ["TracedProbe", "first_line", "graph_ready", "untraceable_part"]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line[:240]}" if line else type(exc).__name__


class _Recorder(torch.fx.Tracer):
    """A plain FX tracer that remembers which modules it was inside when tracing failed."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.failed_in: list[tuple[str, str]] | None = None

    def call_module(self, m: nn.Module, forward: Callable, args: tuple, kwargs: dict) -> object:
        self.stack.append((self.path_of_module(m), type(m).__name__))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = list(self.stack)
            raise
        finally:
            self.stack.pop()


def untraceable_part(model: nn.Module) -> str | None:
    """None if FX can trace ``model``; otherwise the module (name and type) where tracing failed and why."""
    tracer = _Recorder()
    try:
        tracer.trace(model)
    except Exception as exc:
        where = tracer.failed_in[-1] if tracer.failed_in else ("", type(model).__name__)
        name = f"'{where[0]}' " if where[0] else ""
        return f"{name}({where[1]}): {first_line(exc)}"
    return None


class _CutTracer(torch.fx.Tracer):
    def __init__(self, cut: nn.Module) -> None:
        super().__init__()
        self.cut = cut

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is self.cut or super().is_leaf_module(m, module_qualified_name)


class TracedProbe(nn.Module):
    """A linear probe as one traceable computation: pool(backbone up to ``layer``) → fc."""

    def __init__(self, probe: LinearProbeModel) -> None:
        super().__init__()
        tracer = _CutTracer(dict(probe.backbone.named_modules())[probe.layer])
        graph = tracer.trace(probe.backbone)
        cut = next(n for n in graph.nodes if n.op == "call_module" and n.target == probe.layer)
        output = next(n for n in graph.nodes if n.op == "output")
        output.args = (cut,)
        backbone = torch.fx.GraphModule(probe.backbone, graph)
        backbone.graph.eliminate_dead_code()
        backbone.delete_all_unused_submodules()
        backbone.recompile()
        self.backbone = backbone
        self.pool, self.flatten, self.fc = probe.pool, probe.flatten, probe.fc
        self.layer = probe.layer
        self.train(probe.training)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.backbone(x))))


def graph_ready(model: nn.Module) -> nn.Module:
    """``model`` (changed in place where it can be) in the form FX graph mode quantizes well."""
    standardise_same_padding(model)
    if isinstance(model, LinearProbeModel):
        model = TracedProbe(model)
    return model.eval()
