"""The Operations lab's four maps, left to right: ① input (with its padding ring), ② convolution,
③ activation, ④ pooling — each with its shape in the title, the output-size formula (or what the stage
does) below, colours chosen per stage, and the step window drawn over them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from cnn_explorer.core.ops import ACTIVATIONS, ConvStep, LabResult, LabSettings
from cnn_explorer.qt.pages.ops_lab.compute import LabInput, LabOutcome
from cnn_explorer.qt.pages.ops_lab.helpers import (
    POOL_WINDOW,
    SAME_UNITS,
    WINDOW,
    channel_cmap,
    cmap,
    formula_html,
    shape_text,
)
from cnn_explorer.qt.widgets.map_view import MapView


def stage_colours(choice: str, data: np.ndarray) -> tuple[pg.ColorMap, tuple[float, float] | None, bool]:
    """Colour map, levels (None = data range) and symmetry for a computed map under colour ``choice``."""
    finite = data[np.isfinite(data)]
    negative = finite.size > 0 and finite.min() < 0
    if choice == "auto":
        choice = "blue–white–red" if negative else "viridis"
    symmetric = choice == "blue–white–red"
    return cmap(choice), None, symmetric


class StagesView(QWidget):
    """The row of maps. ``cell_clicked(row, col)``: an output cell of the convolution or activation map."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.input_map = MapView("① Input")
        self.conv_map = MapView("② Convolution")
        self.act_map = MapView("③ Activation")
        self.pool_map = MapView("④ Pooling")
        maps = QHBoxLayout(self)
        maps.setContentsMargins(0, 0, 0, 0)
        maps.setSpacing(4)
        for i, view in enumerate(self.views()):
            if i:
                arrow = QLabel("→")
                arrow.setStyleSheet("font-size: 22px; color: #999;")
                arrow.setAlignment(Qt.AlignmentFlag.AlignCenter)
                maps.addWidget(arrow)
            maps.addWidget(view, 1)
        self.conv_map.cell_clicked.connect(self.cell_clicked)
        self.act_map.cell_clicked.connect(self.cell_clicked)

    def views(self) -> tuple[MapView, MapView, MapView, MapView]:
        return self.input_map, self.conv_map, self.act_map, self.pool_map

    def set_numbers(self, on: bool) -> None:
        for view in self.views():
            view.set_numbers("auto" if on else "off")

    def clear(self, message: str) -> None:
        """Nothing to compute on: every map empty, ``message`` on the input map."""
        for view in self.views():
            view.clear_map(message if view is self.input_map else "")
            view.set_caption("")

    def show_input(self, src: LabInput, x: np.ndarray, s: LabSettings, choice: str) -> None:
        """The input as computed on, padded by ``s.padding`` (dashed line around the real values)."""
        p = s.padding
        h, w = x.shape[-2:]
        valid = (range(h), range(w))
        source = src.kind if src.kind == "matrix" else src.channels
        if x.ndim == 3:
            rgb = np.moveaxis(x, 0, -1)
            scale = src.scale
            padded = np.pad(rgb, ((p, p), (p, p), (0, 0)))
            self.input_map.set_map(padded / scale, origin=(-p, -p), valid=valid, values=padded)
        else:
            padded = np.pad(x, p)
            if choice != "auto":
                colours = cmap(choice)
            else:
                colours = cmap("viridis") if source == "matrix" else channel_cmap(source)
            levels = None if source == "matrix" else (0, src.scale)  # an image keeps its full 0…max scale
            self.input_map.set_map(padded, colormap=colours, levels=levels, origin=(-p, -p), valid=valid)
        self.input_map.set_title(f"① Input &nbsp;<span style='color:#06c'>{shape_text(x)}</span>")
        caption = f"{'C×H×W' if x.ndim == 3 else 'H×W'} = {shape_text(x)}"
        if p:
            caption += f"; with padding {p}: {h + 2 * p}×{w + 2 * p} (zeros outside the dashed line)"
            self.input_map.set_highlight("valid", [(0, 0, h, w)], "#555", width=1.5, dashed=True)
        else:
            self.input_map.set_highlight("valid", None)
        self.input_map.set_caption(caption)

    def show_impossible(self, error: str) -> None:
        """The convolution cannot run: its map says why, the later maps are empty."""
        for view in (self.conv_map, self.act_map, self.pool_map):
            view.clear_map(error if view is self.conv_map else "")
            view.set_caption("")
        self.conv_map.set_title("② Convolution")
        self.act_map.set_title("③ Activation")
        self.pool_map.set_title("④ Pooling")

    def show_result(self, outcome: LabOutcome, choice: str) -> None:
        """Convolution, activation and pooling of ``outcome`` (whose result is not None)."""
        res = outcome.result
        x = outcome.x
        s = res.settings
        kh, kw = res.weight.shape[-2:]
        colours, levels, symmetric = stage_colours(choice, res.conv)
        self.conv_map.set_map(res.conv, colormap=colours, levels=levels, symmetric=symmetric)
        conv_levels = self.conv_map.levels
        self.conv_map.set_title(f"② Convolution &nbsp;<span style='color:#06c'>{shape_text(res.conv)}</span>")
        self.conv_map.set_caption(
            formula_html(x.shape[-2], x.shape[-1], (kh, kw), s.stride, s.padding, s.dilation)
        )

        act = ACTIVATIONS[s.activation]
        if s.activation in SAME_UNITS and choice == "auto":
            # Same colours as the convolution: what the activation removes is visible at a glance.
            self.act_map.set_map(res.activated, colormap=colours, levels=conv_levels)
        else:
            a_cmap, a_levels, a_sym = stage_colours(choice, res.activated)
            self.act_map.set_map(res.activated, colormap=a_cmap, levels=a_levels, symmetric=a_sym)
        self.act_map.set_title(
            f"③ {act.label} &nbsp;<span style='color:#06c'>{shape_text(res.activated)}</span>"
        )
        self.act_map.set_caption(f"f(x) = {act.formula} on every value; the shape does not change")

        if res.pooled is None:
            message = outcome.error if outcome.error_stage == "pool" else "No pooling"
            self.pool_map.clear_map(message)
            self.pool_map.set_title("④ Pooling")
            self.pool_map.set_caption("")
            return
        if s.pool_mode in ("max", "avg") and s.activation in SAME_UNITS and choice == "auto":
            self.pool_map.set_map(res.pooled, colormap=colours, levels=conv_levels)
        else:
            p_cmap, p_levels, p_sym = stage_colours(choice, res.pooled)
            self.pool_map.set_map(res.pooled, colormap=p_cmap, levels=p_levels, symmetric=p_sym)
        mode = {"max": "Max", "avg": "Average", "sum": "Sum"}[s.pool_mode]
        self.pool_map.set_title(
            f"④ {mode} pooling &nbsp;<span style='color:#06c'>{shape_text(res.pooled)}</span>"
        )
        k = s.pool_size
        stride = s.pool_stride or k
        self.pool_map.set_caption(
            formula_html(res.activated.shape[0], res.activated.shape[1], (k, k), stride, s.pool_padding)
        )

    # -- the step window --------------------------------------------------------------------------
    def clear_window(self) -> None:
        for view in self.views():
            for name in ("window", "cell", "pool"):
                view.set_highlight(name, None)

    def show_window(self, res: LabResult, step: ConvStep) -> None:
        """Outline the input window (or its spread-out taps), the output cell, and its pooling window."""
        s = res.settings
        r, c = step.out_row, step.out_col
        kh, kw = res.weight.shape[-2:]
        if s.dilation == 1:
            window = [(int(step.rows[0]), int(step.cols[0]), kh, kw)]
        else:  # the taps are spread out: outline each one
            window = [(int(rr), int(cc), 1, 1) for rr in step.rows for cc in step.cols]
        self.input_map.set_highlight("window", window, WINDOW)
        self.conv_map.set_highlight("cell", [(r, c, 1, 1)], WINDOW)
        self.act_map.set_highlight("cell", [(r, c, 1, 1)], WINDOW)
        if res.pooled is not None:
            k = s.pool_size
            ps = s.pool_stride or k
            pp = s.pool_padding
            # The first pooling window (in reading order) that contains this output cell, if any.
            prs = [i for i in range(res.pooled.shape[0]) if i * ps - pp <= r < i * ps - pp + k]
            pcs = [j for j in range(res.pooled.shape[1]) if j * ps - pp <= c < j * ps - pp + k]
            if prs and pcs:
                pr, pc = prs[0], pcs[0]
                self.act_map.set_highlight(
                    "pool", [(pr * ps - pp, pc * ps - pp, k, k)], POOL_WINDOW, width=2, dashed=True
                )
                self.pool_map.set_highlight("pool", [(pr, pc, 1, 1)], POOL_WINDOW)
