"""What step mode and the backward view draw over the Operations lab's maps: the convolution's window and
output cell, a pooling window with its winner, every max-pooling winner of the layer, the backward step's
window over the upstream gradient, and the upstream cell the user clicked. Functions of a StagesView."""

from __future__ import annotations

import numpy as np

from cnn_explorer.core.lab import LabResult, PoolStep
from cnn_explorer.core.ops import ConvBackwardStep, ConvStep
from cnn_explorer.qt.pages.ops_lab.helpers import POOL_WINDOW, WINDOW
from cnn_explorer.qt.pages.ops_lab.stages import StagesView, source_column

UPSTREAM = "#b2182b"
MAX_WINNERS = 64  # per map: beyond that the outlines hide the map (and are hundreds of items to draw)


def _pool_geometry(res: LabResult) -> tuple[int, int, int]:
    s = res.settings
    return s.pool_size, s.pool_stride or s.pool_size, s.pool_padding


def show_conv_window(view: StagesView, res: LabResult, step: ConvStep, channel: int) -> None:
    """Outline the input window (or its spread-out taps) on every input map, the output cell of filter
    ``channel``, and the first pooling window (in reading order) that contains it."""
    s = res.settings
    r, c = step.out_row, step.out_col
    kh, kw = step.kernel.shape[-2:]
    if s.dilation == 1:
        window = [(int(step.rows[0]), int(step.cols[0]), kh, kw)]
    else:  # the taps are spread out: outline each one
        window = [(int(rr), int(cc), 1, 1) for rr in step.rows for cc in step.cols]
    for v in view.grid("input").views:
        v.set_highlight("window", window, WINDOW)
    on = s.stages_on
    for stage in ("conv", "activation"):
        if stage in on:
            view.channel_view(stage, channel).set_highlight("cell", [(r, c, 1, 1)], WINDOW)
    if res.pooled is None or "pool" not in on:
        return
    k, ps, pp = _pool_geometry(res)
    pooled_h, pooled_w = res.pooled.shape[-2:]
    prs = [i for i in range(pooled_h) if i * ps - pp <= r < i * ps - pp + k]
    pcs = [j for j in range(pooled_w) if j * ps - pp <= c < j * ps - pp + k]
    if prs and pcs:
        pr, pc = prs[0], pcs[0]
        source = view.channel_view(source_column("pool", on), channel)
        source.set_highlight("pool", [(pr * ps - pp, pc * ps - pp, k, k)], POOL_WINDOW, width=2, dashed=True)
        view.channel_view("pool", channel).set_highlight("pool", [(pr, pc, 1, 1)], POOL_WINDOW)


def show_pool_window(view: StagesView, res: LabResult, step: PoolStep) -> None:
    """The pooling window of ``step`` on the pooling's input, its winner, and the pooled cell."""
    on = res.settings.stages_on
    k = step.window.shape[0]
    source = view.channel_view(source_column("pool", on), step.channel)
    source.set_highlight(
        "pool", [(int(step.rows[0]), int(step.cols[0]), k, k)], POOL_WINDOW, width=3, dashed=True
    )
    if step.winner is not None:
        source.set_highlight("winner", [(step.winner[0], step.winner[1], 1, 1)], WINDOW, width=3)
    cell = [(step.out_row, step.out_col, 1, 1)]
    view.channel_view("pool", step.channel).set_highlight("pool", cell, POOL_WINDOW, width=3)
    if view.backward_shown():
        view.channel_view("pool", step.channel, gradient=True).set_highlight(
            "pool", cell, POOL_WINDOW, width=3
        )
        grad_source = view.channel_view(source_column("pool", on), step.channel, gradient=True)
        grad_source.set_highlight(
            "pool", [(int(step.rows[0]), int(step.cols[0]), k, k)], POOL_WINDOW, width=3
        )


def winner_cells(res: LabResult) -> list[list[tuple[int, int]]]:
    """For each map, the (row, col) of every max-pooling window's winner in the pooling's input."""
    if res.winners is None:
        return []
    width = res.activated.shape[-1]
    winners = res.winners[None] if res.winners.ndim == 2 else res.winners
    return [[(int(i) // width, int(i) % width) for i in np.unique(w.ravel())] for w in winners]


def show_winners(view: StagesView, res: LabResult) -> None:
    """Outline each window's winner on the maps that go into max pooling (and under them, their gradient:
    that is where it goes back to)."""
    on = res.settings.stages_on
    if "pool" not in on or res.winners is None:
        return
    source = source_column("pool", on)
    for channel, cells in enumerate(winner_cells(res)):
        if len(cells) > MAX_WINNERS:
            continue
        rects = [(r, c, 1, 1) for r, c in cells]
        view.channel_view(source, channel).set_highlight("winners", rects, POOL_WINDOW, width=1.5)
        if view.backward_shown():
            grad = view.channel_view(source, channel, gradient=True)
            grad.set_highlight("winners", rects, POOL_WINDOW, width=1.5)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs in sorted indices, as (start, length): a stride-1 window is one run."""
    runs: list[tuple[int, int]] = []
    for v in (int(x) for x in values):
        if runs and v == runs[-1][0] + runs[-1][1]:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((v, 1))
    return runs


def show_backward_window(view: StagesView, res: LabResult, step: ConvBackwardStep) -> None:
    """The input cell whose gradient is summed, and the upstream cells (of every filter's ∂L/∂z) that the
    flipped kernel meets there."""
    cell = [(step.in_row, step.in_col, 1, 1)]
    view.channel_view("input", step.channel, gradient=True).set_highlight("cell", cell, WINDOW)
    view.channel_view("input", step.channel).set_highlight("cell", cell, WINDOW)
    rows = np.sort(step.out_rows[step.out_rows >= 0])
    cols = np.sort(step.out_cols[step.out_cols >= 0])
    rects = [(r0, c0, rh, cw) for r0, rh in _runs(rows) for c0, cw in _runs(cols)]
    if "conv" in res.settings.stages_on:
        for v in view.gradient_grid("conv").views:
            v.set_highlight("window", rects, WINDOW)


def show_upstream_cell(view: StagesView, cell: tuple[int, ...] | None) -> None:
    """The output cell whose value is the loss (the "one cell" upstream gradient), on the last map and
    on its gradient."""
    last = view.last_column()
    for grid in (view.grid(last), view.gradient_grid(last)):
        grid.clear_highlights(("upstream",))
    if cell is None:
        return
    *channel, r, c = cell
    channels = channel or list(range(view.gradient_grid(last).count))
    for k in channels:
        for gradient in (False, True):
            view.channel_view(last, k, gradient).set_highlight("upstream", [(r, c, 1, 1)], UPSTREAM, width=3)
