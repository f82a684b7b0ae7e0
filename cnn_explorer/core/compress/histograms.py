"""One layer's weights before and after a variant: shared bins over the non-zero values of both, the exact
zeros counted apart (pruning's zeros would otherwise hide in the middle bin), and for an int8 layer the
number of distinct levels its weights use (at most 256)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnn_explorer.core.compress.prune import weight_tensors
from cnn_explorer.core.compress.spec import WeightHistogram

__all__ = ["BINS", "default_layer", "layer_weights", "weight_histogram"]

BINS = 40


def default_layer(model: nn.Module) -> str:
    """The convolution with the most weights (the largest layer when there is no convolution)."""
    convs = [(name, w) for name, w in weight_tensors(model) if w.ndim == 4]
    pool = convs or weight_tensors(model)
    return max(pool, key=lambda item: item[1].numel())[0]


def layer_weights(model: nn.Module, layer: str) -> Tensor | None:
    """The layer's weight as stored (a quantized tensor for an int8 layer); None if the model lacks it."""
    return dict(weight_tensors(model, raw=True)).get(layer)


def weight_histogram(
    layer: str, variant: str, before: Tensor, after: Tensor, bins: int = BINS
) -> WeightHistogram:
    """``before`` (float) and ``after`` (float or quantized) on the same bins."""
    levels = int(torch.unique(after.int_repr()).numel()) if after.is_quantized else None
    b = before.detach().float().flatten()
    a = (after.dequantize() if after.is_quantized else after.detach()).float().flatten()
    nonzero = torch.cat([b[b != 0], a[a != 0]])
    if nonzero.numel():
        lo, hi = float(nonzero.min()), float(nonzero.max())
    else:
        lo, hi = -1.0, 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)

    def counts(t: Tensor) -> tuple[int, ...]:
        values = t[t != 0].double()
        return tuple(int(c) for c in torch.histc(values, bins=bins, min=lo, max=hi).round().long())

    return WeightHistogram(
        layer=layer,
        variant=variant,
        edges=tuple(float(e) for e in edges),
        before=counts(b),
        after=counts(a),
        zeros_before=int((b == 0).sum()),
        zeros_after=int((a == 0).sum()),
        levels=levels,
    )
