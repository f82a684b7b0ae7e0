"""Pruning with ``torch.nn.utils.prune``: global magnitude pruning of single weights, per-layer sparsities,
and structured L1 pruning of whole output channels of the convolutions; and the counts that show it
(zeros per layer, non-zero parameters), for float and quantized models alike.

Each pruning function changes the model in place, makes the pruning permanent (``prune.remove``: the
zeros are in ``weight`` itself, the model has its own parameter names again) and returns the masks
(layer name → bool tensor, True where a weight is kept), which a fine-tune uses to keep the zeros at zero.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.ao.nn import quantized as nnq
from torch.nn.utils import prune

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.padding import display_name

__all__ = [
    "Masks",
    "layer_sparsity",
    "param_counts",
    "prunable_layers",
    "prune_global",
    "prune_layers",
    "prune_structured",
    "weight_tensors",
]

Masks = dict[str, Tensor]


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every float convolution and linear layer, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _quantized_weight(m: nn.Module) -> Tensor | None:
    if isinstance(m, (nnq.Conv2d, nnq.Linear)):  # fused (ConvReLU2d) and dynamic Linear are subclasses
        return m.weight()
    return None


def weight_tensors(model: nn.Module, *, raw: bool = False) -> list[tuple[str, Tensor]]:
    """(layer, weight) of every convolution and linear layer, quantized ones dequantized (``raw``: as the
    quantized tensor). Standardised padded convolutions keep their original names."""
    modules = dict(model.named_modules())
    out: list[tuple[str, Tensor]] = []
    for name, m in modules.items():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out.append((display_name(name, modules), m.weight.detach()))
        else:
            q = _quantized_weight(m)
            if q is not None:
                out.append((display_name(name, modules), q if raw else q.dequantize()))
    return out


def layer_sparsity(model: nn.Module) -> list[tuple[str, float]]:
    """(layer, share of its weights that are exactly zero) for each convolution and linear layer."""
    return [(name, float((w == 0).sum()) / max(1, w.numel())) for name, w in weight_tensors(model)]


def _tensors(model: nn.Module) -> Iterable[Tensor]:
    """Every parameter the model holds; a quantized layer's (packed) weight and bias dequantized."""
    yield from (p.detach() for p in model.parameters())
    for m in model.modules():
        w = _quantized_weight(m)
        if w is None:
            continue
        yield w.dequantize()
        bias = m.bias()
        if bias is not None:
            yield bias.detach()


def param_counts(model: nn.Module) -> tuple[int, int]:
    """(parameters, non-zero parameters); quantized layers count their dequantized weights and biases."""
    total = nonzero = 0
    for t in _tensors(model):
        total += t.numel()
        nonzero += int(torch.count_nonzero(t))
    return total, nonzero


def _masks_and_remove(modules: list[tuple[str, nn.Module]]) -> Masks:
    masks: Masks = {}
    for name, m in modules:
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            masks[name] = m.weight_mask.detach().bool().clone()
            prune.remove(m, "weight")
    return masks


def prune_global(model: nn.Module, sparsity: float) -> Masks:
    """Zero the ``sparsity`` share of all conv and linear weights with the smallest magnitude, ranked
    together across layers (so layers with many small weights lose more)."""
    layers = prunable_layers(model)
    prune.global_unstructured(
        [(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured, amount=float(sparsity)
    )
    return _masks_and_remove(layers)


def prune_layers(
    model: nn.Module, per_layer: Iterable[tuple[str, float]], *, structured: bool = False
) -> Masks:
    """Each named layer on its own: its smallest-magnitude weights (``structured``: its output channels
    with the smallest L1 norm) at that layer's sparsity. KeyError for a name that is not a layer."""
    modules = dict(prunable_layers(model))
    done: list[tuple[str, nn.Module]] = []
    for name, sparsity in per_layer:
        m = modules[name]
        if structured:
            prune.ln_structured(m, "weight", amount=float(sparsity), n=1, dim=0)
        else:
            prune.l1_unstructured(m, "weight", amount=float(sparsity))
        done.append((name, m))
    return _masks_and_remove(done)


def structured_targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions structured pruning removes channels from: all but a convolutional classifier
    (removing its output channels would remove classes)."""
    try:
        head = zoo.classifier_head(model)
    except zoo.ModelLoadError:
        head = None
    return [(n, m) for n, m in prunable_layers(model) if isinstance(m, nn.Conv2d) and m is not head]


def prune_structured(model: nn.Module, sparsity: float) -> Masks:
    """Zero the ``sparsity`` share of each convolution's output channels with the smallest L1 norm
    (``ln_structured``, n=1, dim=0). The channels are zeroed, not cut out: shapes stay as they were."""
    targets = structured_targets(model)
    for _, m in targets:
        prune.ln_structured(m, "weight", amount=float(sparsity), n=1, dim=0)
    return _masks_and_remove(targets)
