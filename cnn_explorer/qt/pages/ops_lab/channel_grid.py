"""One stage's maps, one per channel: a small grid of MapViews under one title, one caption and one readout.

With one channel a ChannelGrid looks like a plain MapView: the first view's own title, caption and readout
lines are the grid's (``title_label``, ``caption_label``, ``readout_label``), so ``grid.view(0)`` is the
stage's map as before. With several channels every map gets a small name line ("1 · Sobel x", "R"), they
share one colour scale (so the filters' responses compare at a glance) and hovering any of them writes
its value, with its name, in the shared readout line. ``cell_clicked(channel, row, col)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from cnn_explorer.qt.widgets.map_view import MapView

NAME_STYLE = "color: #444; font-size: 11px;"


def shared_levels(maps: np.ndarray, symmetric: bool) -> tuple[float, float]:
    """One colour range for every channel: the data's, or ±max|data| when ``symmetric``."""
    finite = maps[np.isfinite(maps)]
    if finite.size == 0:
        return 0.0, 1.0
    if symmetric:
        m = float(np.abs(finite).max())
        return -m, m
    return float(finite.min()), float(finite.max())


class ChannelGrid(QWidget):
    cell_clicked = Signal(int, int, int)  # channel, row, col

    def __init__(
        self,
        title: str = "",
        parent: QWidget | None = None,
        *,
        max_numbers_side: int = 16,
        formatter: Callable[[float], str] | None = None,
    ) -> None:
        super().__init__(parent)
        self._max_numbers_side = max_numbers_side
        self._formatter = formatter
        self._numbers = "auto"
        first = MapView(title, max_numbers_side=max_numbers_side)
        if formatter is not None:
            first.formatter = formatter
        self.views: list[MapView] = [first]
        self.names: list[QLabel] = [self._name_label()]
        self._names_text: list[str] = [""]
        # The first view's lines serve the whole grid.
        self.title_label, self.caption_label = first.title_label, first.caption_label
        self.readout_label = first.readout_label
        for label in (self.title_label, self.caption_label, self.readout_label):
            first.layout().removeWidget(label)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(6)
        self._grid.setVerticalSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title_label)
        layout.addLayout(self._grid, 1)
        layout.addWidget(self.caption_label)
        layout.addWidget(self.readout_label)
        self._wire(first, 0)
        self._place()

    def sizeHint(self) -> QSize:
        # Every stage asks for the same height, so the rows of maps (forward, backward) share it evenly
        # (a wrapped caption's height-for-width would otherwise let one row take most of it).
        return QSize(super().sizeHint().width(), 200)

    def hasHeightForWidth(self) -> bool:
        return False

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_caption()

    def _fit_caption(self) -> None:
        """Without height-for-width, the wrapped caption asks for the lines it needs at this width."""
        label = self.caption_label
        need = label.heightForWidth(max(1, self.width())) if label.text() else 0
        if need != label.minimumHeight():
            label.setMinimumHeight(max(0, need))

    # -- the views --------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.views)

    def view(self, channel: int) -> MapView:
        return self.views[min(max(channel, 0), len(self.views) - 1)]

    def _name_label(self) -> QLabel:
        label = QLabel()
        label.setStyleSheet(NAME_STYLE)
        label.setVisible(False)
        return label

    def _wire(self, view: MapView, channel: int) -> None:
        view.cell_clicked.connect(lambda r, c, k=channel: self.cell_clicked.emit(k, r, c))
        view.hovered.connect(lambda r, c, k=channel: self._on_hovered(k, r, c))

    def set_count(self, n: int) -> None:
        """Show ``n`` ≥ 1 maps (views are made or dropped as needed; the first always stays)."""
        n = max(1, int(n))
        if n == len(self.views):
            return
        while len(self.views) > n:
            view, name = self.views.pop(), self.names.pop()
            self._names_text.pop()
            for w in (view, name):
                self._grid.removeWidget(w)
                w.deleteLater()
        while len(self.views) < n:
            view = MapView(max_numbers_side=self._max_numbers_side, colorbar=False)
            if self._formatter is not None:
                view.formatter = self._formatter
            for label in (view.title_label, view.caption_label, view.readout_label):
                label.setVisible(False)
            view.set_numbers(self._numbers)
            self._wire(view, len(self.views))
            self.views.append(view)
            self.names.append(self._name_label())
            self._names_text.append("")
        self._place()

    def _place(self) -> None:
        n = len(self.views)
        for view in self.views:  # many small maps must fit where one map did
            view.graphics.setMinimumSize(*((120, 100) if n == 1 else (40, 36)))
        cols = max(1, math.ceil(math.sqrt(n)))
        for k, (view, name) in enumerate(zip(self.views, self.names, strict=True)):
            r, c = divmod(k, cols)
            self._grid.addWidget(name, 2 * r, c)
            self._grid.addWidget(view, 2 * r + 1, c)
            name.setVisible(n > 1)
        rows = math.ceil(n / cols)
        for r in range(max(rows, self._grid.rowCount() // 2 + 1)):
            self._grid.setRowStretch(2 * r, 0)
            self._grid.setRowStretch(2 * r + 1, 1 if r < rows else 0)
        for c in range(max(cols, self._grid.columnCount())):
            self._grid.setColumnStretch(c, 1 if c < cols else 0)

    # -- content ----------------------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.title_label.setText(text)

    def set_caption(self, html: str) -> None:
        self.caption_label.setText(html)
        self._fit_caption()

    def set_numbers(self, mode: str) -> None:
        self._numbers = mode
        for view in self.views:
            view.set_numbers(mode)

    def set_maps(
        self,
        maps: np.ndarray,
        names: Sequence[str] | None = None,
        *,
        colormaps: Sequence[str | pg.ColorMap | None] | None = None,
        levels: tuple[float, float] | None = None,
        symmetric: bool = False,
        origin: tuple[int, int] = (0, 0),
        valid: tuple[range, range] | None = None,
    ) -> None:
        """Show (C, H, W) ``maps`` (or (H, W)), one view each, on one colour scale (``levels`` or shared)."""
        maps = np.asarray(maps)
        maps = maps[None] if maps.ndim == 2 else maps
        n = maps.shape[0]
        self.set_count(n)
        common = levels
        if common is None and n > 1:
            common = shared_levels(maps, symmetric)
        for k, view in enumerate(self.views):
            cmap = colormaps[k] if colormaps else None
            view.set_map(
                maps[k], colormap=cmap, levels=common, symmetric=symmetric, origin=origin, valid=valid
            )
        self._after_set(names)

    def set_views(self, items: Sequence[dict], names: Sequence[str] | None = None) -> None:
        """Each view its own ``MapView.set_map`` arguments (e.g. a colour picture beside its channels)."""
        self.set_count(len(items))
        for view, kwargs in zip(self.views, items, strict=True):
            kwargs = dict(kwargs)
            view.set_map(kwargs.pop("data"), **kwargs)
        self._after_set(names)

    def _after_set(self, names: Sequence[str] | None) -> None:
        n = len(self.views)
        self._names_text = list(names) if names else [f"channel {k + 1}" for k in range(n)]
        for label, text in zip(self.names, self._names_text, strict=True):
            label.setText(text)
        bar = self.views[0].bar
        if bar is not None and n > 1:
            bar.setVisible(False)  # one scale for all: the numbers and the readout tell the values

    def clear(self, message: str = "") -> None:
        """Nothing to show: one empty view, ``message`` in its place."""
        self.set_count(1)
        self.views[0].clear_map(message)
        self.set_caption("")

    # -- highlights ---------------------------------------------------------------------------------
    def clear_highlights(self, names: Sequence[str]) -> None:
        for view in self.views:
            for name in names:
                view.set_highlight(name, None)

    # -- hover ------------------------------------------------------------------------------------
    def _on_hovered(self, channel: int, row: int, col: int) -> None:
        if len(self.views) == 1 or channel >= len(self.views):
            return
        if row < 0:
            self.readout_label.setText(" ")
            return
        view = self.views[channel]
        if view.data is None:
            return
        self.readout_label.setText(f"{self._names_text[channel]} · {view.readout(row, col)}")

    def cell_texts(self, channel: int = 0) -> list[list[str]]:
        """The numbers written in one channel's cells (see ``MapView.cell_texts``)."""
        return self.view(channel).cell_texts()
