"""The backward view's row of the Operations lab: under every map, the gradient of the loss with respect to
it, in blue–white–red (white is 0), with a caption saying how it came back from the map to its right —
through pooling (max → the winner, average → spread evenly, sum → copied), through the activation (× f′,
zeros where it is saturated) and through the convolution (full correlation with the flipped kernel)."""

from __future__ import annotations

import numpy as np

from cnn_explorer.core.lab import LabGradients, LabResult
from cnn_explorer.core.ops import ACTIVATIONS
from cnn_explorer.qt.pages.ops_lab.helpers import cmap, shape_text
from cnn_explorer.qt.pages.ops_lab.stages import COLUMNS, NUMBERS, StagesView, input_names

GRADIENT = "#b2182b"
SYMBOLS = {
    "input": ("x", "the input"),
    "conv": ("z", "the convolution's output"),
    "activation": ("a", "the activation's output"),
    "pool": ("y", "the pooled output"),
}


def _maps(a: np.ndarray) -> np.ndarray:
    return a[None] if a.ndim == 2 else a


def gradient_of(column: str, gradients: LabGradients, last: str) -> np.ndarray:
    """The gradient shown under ``column``: dL/d(the map shown there)."""
    if column == last:
        return gradients.upstream
    return {"input": gradients.d_input, "conv": gradients.d_conv, "activation": gradients.d_activated}[column]


def upstream_caption(kind: str, cell: tuple[int, ...] | None, channels: int) -> str:
    """How the backward pass starts, in words."""
    if kind == "ones":
        return "L = the sum of all outputs, so ∂L/∂y = 1 in every cell."
    if kind == "random":
        return "Random numbers as ∂L/∂y, as if a later layer had sent them back."
    *channel, r, c = cell or (0, 0)
    which = f" of map {channel[0] + 1}" if channel and channels > 1 else ""
    return (
        f"L = the output at row {r}, col {c}{which}: ∂L/∂y is 1 there and 0 elsewhere. "
        "Click a cell of this stage's map above to choose another."
    )


def rule_caption(stage: str, res: LabResult, gradient: np.ndarray, upstream: np.ndarray) -> str:
    """How the gradient came back through ``stage`` (the stage to the right) to the map on its left."""
    s = res.settings
    if stage == "pool":
        k, stride = s.pool_size, s.pool_stride or s.pool_size
        overlap = " Overlapping windows add up." if stride < k else ""
        rule = {
            "max": "each gradient goes to its window's winner (outlined); every other cell gets 0.",
            "avg": f"each gradient is spread evenly: ÷ {k * k} to every cell of its window.",
            "sum": "each gradient is copied to every cell of its window.",
        }[s.pool_mode]
        return f"← back through {s.pool_mode} pooling: {rule}{overlap}"
    if stage == "activation":
        act = ACTIVATIONS[s.activation]
        if s.activation == "softmax":
            return "← back through softmax across channels: ∂L/∂xᵢ = pᵢ·(gᵢ − Σⱼ gⱼ·pⱼ) at each position."
        blocked = int(np.count_nonzero((gradient == 0) & (upstream != 0)))
        note = f" Here {blocked:,} of {gradient.size:,} cells pass nothing back." if blocked else ""
        return f"← back through {act.label}: × f′(x), f′(x) = {act.derivative}; where f is flat, 0.{note}"
    n = 0 if res.filters is None else res.filters.shape[0]
    summed = f", summed over the {n} filters" if n > 1 else ""
    return (
        "← back through the convolution: the full correlation of ∂L/∂z with the kernel rotated 180°"
        f"{summed}. Step through it below."
    )


def show_gradients(
    view: StagesView,
    res: LabResult,
    gradients: LabGradients,
    kind: str,
    cell: tuple[int, ...] | None,
    names: list[str],
) -> None:
    """Fill the gradient row: one map per channel under each map that is shown."""
    columns = ["input", *res.settings.stages_on]
    last = columns[-1]
    colours = cmap("blue–white–red")
    for i, column in enumerate(columns):
        grad = np.asarray(gradient_of(column, gradients, last))
        maps = _maps(grad)
        grid = view.gradient_grid(column)
        labels = input_names(res.input) if column == "input" else names
        grid.set_maps(maps, labels, colormaps=[colours] * len(maps), symmetric=True)
        symbol, what = SYMBOLS[column]
        grid.set_title(
            f"<span style='color:{GRADIENT}'>∂L/∂{symbol}</span> {NUMBERS[column]} "
            f"<span style='font-weight:400'>of {what}</span> "
            f"&nbsp;<span style='color:#06c'>{shape_text(grad)}</span>"
        )
        if column == last:
            grid.set_caption(upstream_caption(kind, cell, len(maps)))
        else:
            right = np.asarray(gradient_of(columns[i + 1], gradients, last))
            grid.set_caption(rule_caption(columns[i + 1], res, grad, right))
    for column in COLUMNS:
        if column not in columns:
            view.gradient_grid(column).clear()
