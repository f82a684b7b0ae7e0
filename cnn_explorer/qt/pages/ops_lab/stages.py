"""The Operations lab's maps, left to right: ① input (with its padding ring), ② convolution, ③ activation,
④ pooling — each a :class:`ChannelGrid` (one map per channel: the input's C_in, the F filters' outputs),
with its shape in the title and the output-size formula (core's ``LabStage.size_formula``) below. A stage
that is off is not drawn: the arrow that skips it says so. With the backward view on, a second row shows
under every map the gradient of the loss with respect to it (``gradients.py`` fills it); the step window,
pooling windows and winners are drawn over both rows (``marks.py``)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from cnn_explorer.core.lab import LabResult, LabSettings
from cnn_explorer.core.ops import ACTIVATIONS, format_number
from cnn_explorer.qt.pages.ops_lab.channel_grid import ChannelGrid
from cnn_explorer.qt.pages.ops_lab.compute import LabInput, LabOutcome
from cnn_explorer.qt.pages.ops_lab.helpers import SAME_UNITS, channel_cmap, cmap, shape_text

COLUMNS = ("input", "conv", "activation", "pool")  # each column shows that stage's output
MARKS = ("window", "cell", "pool", "winner", "winners", "upstream", "valid")
NUMBERS = {"input": "①", "conv": "②", "activation": "③", "pool": "④"}
OFF_NAMES = {"conv": "convolution", "activation": "activation", "pool": "pooling"}
POOL_NAMES = {"max": "Max", "avg": "Average", "sum": "Sum"}
RGB_NAMES = ("R", "G", "B")
ARROW = "font-size: 22px; color: #999;"
ROW_MIN_HEIGHT = 250  # a row of maps with its title and caption, below which the numbers cannot be read


def stage_colours(choice: str, data: np.ndarray) -> tuple[pg.ColorMap, tuple[float, float] | None, bool]:
    """Colour map, levels (None = data range) and symmetry for a computed map under colour ``choice``."""
    finite = data[np.isfinite(data)]
    negative = finite.size > 0 and finite.min() < 0
    if choice == "auto":
        choice = "blue–white–red" if negative else "viridis"
    symmetric = choice == "blue–white–red"
    return cmap(choice), None, symmetric


def gradient_number(value: float) -> str:
    """A gradient in a cell: two decimals are enough to follow where it goes (the readout has three)."""
    return format_number(value, 2)


def formula_caption(formula: tuple[str, str] | None) -> str:
    """The output-size formula for both axes (once when they read the same)."""
    if formula is None:
        return ""
    rows, cols = formula
    if rows == cols:
        return f"<i>H′ = W′</i> = {rows}"
    return f"<i>H′</i> = {rows}<br><i>W′</i> = {cols}"


def input_names(x: np.ndarray) -> list[str]:
    """The input's channel names: R, G, B for three channels, else numbered (one channel: none)."""
    if x.ndim == 2:
        return [""]
    return (
        list(RGB_NAMES[: x.shape[0]]) if x.shape[0] <= 3 else [f"channel {k + 1}" for k in range(x.shape[0])]
    )


def source_column(stage: str, on: tuple[str, ...]) -> str:
    """The column that shows ``stage``'s input: the nearest stage before it that is on, else the input."""
    before = [name for name in COLUMNS[1 : COLUMNS.index(stage)] if name in on]
    return before[-1] if before else "input"


class StagesView(QWidget):
    """The rows of maps. ``cell_clicked(stage, channel, row, col)`` for a forward map,
    ``gradient_clicked(stage, channel, row, col)`` for a gradient map."""

    cell_clicked = Signal(str, int, int, int)
    gradient_clicked = Signal(str, int, int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grids = {name: ChannelGrid(f"{NUMBERS[name]} {name.title()}") for name in COLUMNS}
        self.grids["conv"].set_title("② Convolution")
        self.grad_grids = {name: ChannelGrid(formatter=gradient_number) for name in COLUMNS}
        self.arrows = {name: self._arrow("→") for name in (*COLUMNS[1:], "end")}
        self.back_arrows = {name: self._arrow("←") for name in (*COLUMNS[1:], "end")}
        self._on: tuple[str, ...] = COLUMNS[1:]
        self._backward = False
        self._composite = False  # the input grid starts with a colour picture of its channels
        self._input_colours: tuple[pg.ColorMap, tuple[float, float]] | None = None  # a 2-D input's
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setHorizontalSpacing(4)
        layout.setVerticalSpacing(6)
        for i, name in enumerate(COLUMNS):
            if i:
                layout.addWidget(self.arrows[name], 0, 2 * i - 1)
                layout.addWidget(self.back_arrows[name], 1, 2 * i - 1)
            layout.addWidget(self.grids[name], 0, 2 * i)
            layout.addWidget(self.grad_grids[name], 1, 2 * i)
            self.grids[name].cell_clicked.connect(lambda k, r, c, n=name: self.cell_clicked.emit(n, k, r, c))
            self.grad_grids[name].cell_clicked.connect(
                lambda k, r, c, n=name: self.gradient_clicked.emit(n, k, r, c)
            )
        layout.addWidget(self.arrows["end"], 0, 2 * len(COLUMNS) - 1)
        layout.addWidget(self.back_arrows["end"], 1, 2 * len(COLUMNS) - 1)
        layout.setRowStretch(0, 1)
        layout.setRowStretch(1, 1)
        self._layout = layout
        self.set_stages_on(self._on)
        self.set_backward(False)

    @staticmethod
    def _arrow(text: str) -> QLabel:
        label = QLabel(text)
        label.setStyleSheet(ARROW)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        return label

    # -- what is shown ----------------------------------------------------------------------------
    def views(self) -> tuple:
        """The first map of each column (the only one with one channel): input, conv, activation, pool."""
        return tuple(self.grids[name].view(0) for name in COLUMNS)

    def grid(self, stage: str) -> ChannelGrid:
        return self.grids[stage]

    def gradient_grid(self, stage: str) -> ChannelGrid:
        return self.grad_grids[stage]

    def stages_on(self) -> tuple[str, ...]:
        return self._on

    def last_column(self) -> str:
        return self._on[-1] if self._on else "input"

    def channel_view(self, stage: str, channel: int, gradient: bool = False):
        """The map of ``channel`` in a column (the input's colour picture comes before its channels)."""
        if gradient:
            return self.grad_grids[stage].view(channel)
        offset = 1 if stage == "input" and self._composite else 0
        return self.grids[stage].view(channel + offset)

    def set_numbers(self, on: bool) -> None:
        for grid in (*self.grids.values(), *self.grad_grids.values()):
            grid.set_numbers("auto" if on else "off")

    def set_stages_on(self, on: tuple[str, ...]) -> None:
        """Show the columns of the stages that are on; an arrow says which stages it skips."""
        self._on = tuple(name for name in COLUMNS[1:] if name in on)
        skipped: list[str] = []
        for i, name in enumerate(COLUMNS[1:], start=1):
            visible = name in self._on
            self.grids[name].setVisible(visible)
            self.grad_grids[name].setVisible(visible and self._backward)
            self._layout.setColumnStretch(2 * i, 1 if visible else 0)
            if not visible:
                skipped.append(name)
            self._set_arrow(name, visible, skipped if visible else [])
            if visible:
                skipped = []
        self._set_arrow("end", bool(skipped), skipped)
        self._layout.setColumnStretch(0, 1)

    def _set_arrow(self, name: str, visible: bool, skipped: list[str]) -> None:
        for arrows, sign in ((self.arrows, "→"), (self.back_arrows, "←")):
            label = arrows[name]
            label.setVisible(visible and (arrows is self.arrows or self._backward))
            if skipped:
                off = "<br>".join(f"{OFF_NAMES[s]} off" for s in skipped)
                label.setText(
                    f"<div style='{ARROW}'>{sign}</div><div style='font-size:10px;color:#999'>{off}</div>"
                )
                label.setToolTip("Switched off: the values pass straight through")
            else:
                label.setText(sign)
                label.setToolTip("")

    def set_backward(self, on: bool) -> None:
        self._backward = on
        self.grad_grids["input"].setVisible(on)
        self._layout.setRowStretch(1, 1 if on else 0)
        self.setMinimumHeight(2 * ROW_MIN_HEIGHT if on else 0)  # too little room: the page scrolls
        self.set_stages_on(self._on)

    def backward_shown(self) -> bool:
        return self._backward

    def clear(self, message: str) -> None:
        """Nothing to compute on: every map empty, ``message`` on the input map."""
        for name, grid in self.grids.items():
            grid.clear(message if name == "input" else "")
        for grid in self.grad_grids.values():
            grid.clear()

    def clear_marks(self, names: tuple[str, ...] = MARKS) -> None:
        for grid in (*self.grids.values(), *self.grad_grids.values()):
            grid.clear_highlights(names)

    # -- forward ----------------------------------------------------------------------------------
    def show_input(self, src: LabInput, x: np.ndarray, s: LabSettings, choice: str) -> None:
        """The input as computed on, padded by the convolution's padding (dashed line around the real
        values). Three channels are drawn as a colour picture and then one map per channel."""
        grid = self.grids["input"]
        p = s.padding if s.conv else 0
        h, w = x.shape[-2:]
        valid = (range(h), range(w))
        source = src.channels if src.kind == "image" else src.kind
        scale = src.scale
        self._composite = x.ndim == 3 and x.shape[0] == 3
        self._input_colours = None
        if x.ndim == 3:
            padded = np.pad(x, ((0, 0), (p, p), (p, p)))
            items = []
            if self._composite:
                rgb = np.moveaxis(padded, 0, -1)
                items.append({"data": rgb / scale, "origin": (-p, -p), "valid": valid, "values": rgb})
            for k in range(x.shape[0]):
                if choice != "auto":
                    colours = cmap(choice)
                else:
                    colours = channel_cmap(("red", "green", "blue")[k]) if k < 3 else cmap("viridis")
                item = {"data": padded[k], "colormap": colours, "levels": (0, scale)}
                items.append({**item, "origin": (-p, -p), "valid": valid})
            names = (["RGB"] if self._composite else []) + input_names(x)
            grid.set_views(items, names)
        else:
            padded = np.pad(x, p)
            if choice != "auto":
                colours = cmap(choice)
            else:
                colours = cmap("viridis") if source in ("matrix", "array") else channel_cmap(source)
            levels = None if source in ("matrix", "array") else (0, scale)  # an image keeps its full scale
            grid.set_maps(padded, colormaps=[colours], levels=levels, origin=(-p, -p), valid=valid)
            self._input_colours = (colours, grid.view(0).levels) if choice == "auto" else None
        grid.set_title(f"① Input &nbsp;<span style='color:#06c'>{shape_text(x)}</span>")
        caption = f"{'C×H×W' if x.ndim == 3 else 'H×W'} = {shape_text(x)}"
        if p:
            caption += f"; with padding {p}: {h + 2 * p}×{w + 2 * p} (zeros outside the dashed line)"
        for view in grid.views:
            view.set_highlight("valid", [(0, 0, h, w)] if p else None, "#555", width=1.5, dashed=True)
        grid.set_caption(caption)

    def show_impossible(self, error: str) -> None:
        """The convolution cannot run: its map says why, the later maps are empty."""
        for name in COLUMNS[1:]:
            self.grids[name].clear(error if name == "conv" else "")
            self.grids[name].set_title(f"{NUMBERS[name]} {OFF_NAMES[name].title()}")
        for grid in self.grad_grids.values():
            grid.clear()

    def show_result(self, outcome: LabOutcome, choice: str, filter_names: list[str] | None = None) -> None:
        """The stages that are on of ``outcome`` (whose result is not None)."""
        res = outcome.result
        assert res is not None
        s = res.settings
        self.set_stages_on(s.stages_on)
        stages = {stage.name: stage for stage in res.stages}
        names = self.output_names(res, filter_names)
        # Colours a later map may share: without a convolution, the input's (its units go on).
        shared = None if s.conv else self._input_colours
        if s.conv:
            maps = res.maps("conv")
            colours, _, symmetric = stage_colours(choice, maps)
            grid = self.grids["conv"]
            grid.set_maps(maps, names, colormaps=[colours] * len(maps), symmetric=symmetric)
            shared = (colours, grid.view(0).levels)
            grid.set_title(f"② Convolution &nbsp;<span style='color:#06c'>{shape_text(res.conv)}</span>")
            caption = formula_caption(stages["conv"].size_formula)
            if len(maps) > 1:
                caption += f"<br>{len(maps)} filters → {len(maps)} maps, one per filter"
            grid.set_caption(caption)
            grid.setToolTip(stages["conv"].title)
        if s.activation != "none":
            act = ACTIVATIONS[s.activation]
            maps = res.maps("activation")
            grid = self.grids["activation"]
            if shared is not None and s.activation in SAME_UNITS and choice == "auto":
                # Same colours as the convolution: what the activation removes is visible at a glance.
                grid.set_maps(maps, names, colormaps=[shared[0]] * len(maps), levels=shared[1])
            else:
                colours, _, symmetric = stage_colours(choice, maps)
                grid.set_maps(maps, names, colormaps=[colours] * len(maps), symmetric=symmetric)
                shared = None if s.activation not in SAME_UNITS else shared
            grid.set_title(f"③ {act.label} &nbsp;<span style='color:#06c'>{shape_text(res.activated)}</span>")
            where = "across the channels at each position" if s.activation == "softmax" else "on every value"
            caption = f"f(x) = {act.formula} {where}; the shape does not change"
            grid.set_caption("<br>".join([caption, *res.messages]))
        if s.pool_mode != "none":
            self._show_pool(outcome, choice, names, shared, stages)

    def _show_pool(self, outcome: LabOutcome, choice: str, names: list[str], shared, stages) -> None:
        res = outcome.result
        s = res.settings
        grid = self.grids["pool"]
        if res.pooled is None:
            message = outcome.error if outcome.error_stage == "pool" else "No pooling"
            grid.clear(message)
            grid.set_title("④ Pooling")
            return
        maps = res.maps("pool")
        if shared is not None and s.pool_mode in ("max", "avg") and choice == "auto":
            grid.set_maps(maps, names, colormaps=[shared[0]] * len(maps), levels=shared[1])
        else:
            colours, _, symmetric = stage_colours(choice, maps)
            grid.set_maps(maps, names, colormaps=[colours] * len(maps), symmetric=symmetric)
        mode = POOL_NAMES[s.pool_mode]
        grid.set_title(f"④ {mode} pooling &nbsp;<span style='color:#06c'>{shape_text(res.pooled)}</span>")
        grid.set_caption(formula_caption(stages["pool"].size_formula))
        grid.setToolTip(stages["pool"].title)

    def output_names(self, res: LabResult, filter_names: list[str] | None) -> list[str]:
        """Names of the maps after the input: the filters' (numbered), or the input's channels."""
        if res.filters is None:
            return input_names(res.input)
        n = res.filters.shape[0]
        given = list(filter_names or [])
        return [f"{k + 1} · {given[k]}" if k < len(given) else f"filter {k + 1}" for k in range(n)]
