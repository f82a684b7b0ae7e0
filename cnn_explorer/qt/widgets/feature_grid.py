"""All channels of one layer's output side by side, as a grid of small maps; click one to pick it.

``FeatureGrid(parent=None)`` draws a core :class:`~cnn_explorer.core.features.LayerView`: the channels
already tiled, ordered and coloured by core's ``prepare_layer_view`` (in a worker, for a real network),
so the picture is the same one ``cnn-explorer inspect`` writes to PNG and the widget only pushes arrays.
A (N,) vector (a linear layer's output) is shown as N one-pixel cells.

Public API
- ``show_view(view)``: show a prepared view. The view box is fitted only when the grid's size changes,
  so stepping between layers of one shape keeps the user's zoom and costs no re-layout.
- ``columns_for(shape)``: how many columns fill the widget's shape (a wide widget gets a wide grid); pass
  it to ``prepare_layer_view``. After a resize that calls for another number of columns the widget emits
  ``retile_wanted()`` (debounced) and keeps showing the old tiling until it gets a new view.
- ``set_selected(channel)``: outline a channel's cell (None: no outline). ``selected`` is the channel.
- ``clear(message="")``: nothing to show, optionally a message in its place.
- ``layer_view`` (the LayerView shown), ``view`` (the pyqtgraph ViewBox), ``grid`` (core ``Grid``),
  ``order`` (channel in each cell), ``fmap`` (the values, (C, H, W)), ``sort_by``, ``normalize``,
  ``cmap``, ``effective_normalize`` (None while nothing is shown).
- ``cell_rect(channel) -> (row, col, height, width)`` in grid pixels, ``view_point(channel, y, x)``: where
  unit (y, x) of a channel is in the view's coordinates (tests click there).
- Signal ``channel_clicked(channel, y, x)``: a cell was clicked at unit (y, x) of that channel.
- ``colormap(name) -> pg.ColorMap``: core's colour map for pyqtgraph items (colour bars, MapView).
"""

from __future__ import annotations

import functools

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen, QResizeEvent
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.features import Grid, LayerView, apply_colormap, grid_columns
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.widgets.plots import set_range_now

SORT_CHOICES = (("Channel number", "index"), ("Mean activation", "mean"), ("Max activation", "max"))
NORMALIZE_CHOICES = (("Each channel", "channel"), ("Whole layer", "layer"))
SELECTED_COLOUR = "#ff7f0e"
_RETILE_MS = 120  # re-tile a moment after the last resize, not on every pixel of a drag


@functools.cache
def colormap(name: str) -> pg.ColorMap:
    """Core's colour map ``name`` (256 steps) as a pyqtgraph ColorMap, for colour bars and map views."""
    lut = apply_colormap(np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :], name)[0]
    return pg.ColorMap(np.linspace(0.0, 1.0, 256), lut, name=name)


class FeatureGrid(QWidget):
    channel_clicked = Signal(int, int, int)  # channel, y, x
    retile_wanted = Signal()  # the widget's shape now calls for another number of columns

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer_view: LayerView | None = None
        self.selected: int | None = None

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(None)
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setMinimumSize(160, 120)
        self.view = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.01)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        pen = QPen(QColor(SELECTED_COLOUR))
        pen.setWidthF(3.0)
        pen.setCosmetic(True)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        self.outline = QGraphicsRectItem()
        self.outline.setPen(pen)
        self.outline.setZValue(10)
        self.outline.setVisible(False)
        self.view.addItem(self.outline)

        self.message_label = QLabel()
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #a33; padding: 16px; font-size: 13px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message_label)
        self.readout_label = QLabel(" ")
        self.readout_label.setStyleSheet("color: #555;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.readout_label)

        self._retile = QTimer(self)
        self._retile.setSingleShot(True)
        self._retile.setInterval(_RETILE_MS)
        self._retile.timeout.connect(self._retile_if_needed)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_mouse_clicked)

    # -- content ----------------------------------------------------------------------------------
    @property
    def fmap(self) -> np.ndarray | None:
        return None if self.layer_view is None else self.layer_view.values

    @property
    def grid(self) -> Grid | None:
        return None if self.layer_view is None else self.layer_view.grid

    @property
    def order(self) -> np.ndarray:
        return np.zeros(0, np.int64) if self.layer_view is None else self.layer_view.grid.order

    @property
    def sort_by(self) -> str | None:
        return None if self.layer_view is None else self.layer_view.sort_by

    @property
    def normalize(self) -> str | None:
        return None if self.layer_view is None else self.layer_view.normalize

    @property
    def cmap(self) -> str | None:
        return None if self.layer_view is None else self.layer_view.cmap

    @property
    def effective_normalize(self) -> str | None:
        """The scaling really used: a one-value cell stretched to its own range would be blank, so
        vectors always share the layer's range."""
        return None if self.layer_view is None else self.layer_view.scaling

    def columns_for(self, shape: tuple[int, ...]) -> int:
        """Columns for a map of ``shape`` ((C, H, W) or (N,)) that fill the widget's shape."""
        width, height = max(1, self.graphics.width()), max(1, self.graphics.height())
        return grid_columns(shape, width / height)

    def show_view(self, view: LayerView) -> None:
        old = self.grid
        self.layer_view = view
        if self.image.image is not view.rgb:
            self.image.setImage(view.rgb, autoLevels=False, levels=(0, 255))
        self.stack.setCurrentWidget(self.graphics)
        if old is None or old.image.shape != view.grid.image.shape:
            h, w = view.grid.image.shape
            set_range_now(self.view, QRectF(0, 0, w, h), padding=0.01)
        self.set_selected(self.selected)

    def clear(self, message: str = "") -> None:
        self.layer_view = None
        self.image.clear()
        self.outline.setVisible(False)
        self.readout_label.setText(" ")
        self.message_label.setText(message)
        self.stack.setCurrentWidget(self.message_label if message else self.graphics)

    def _retile_if_needed(self) -> None:
        grid = self.grid
        if grid is not None and self.columns_for(self.layer_view.values.shape) != grid.columns:
            self.retile_wanted.emit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self.layer_view is not None:
            self._retile.start()

    # -- selection --------------------------------------------------------------------------------
    def cell_rect(self, channel: int) -> tuple[int, int, int, int] | None:
        """(row, col, height, width) of a channel's cell in grid pixels; None if it is not shown."""
        if self.grid is None:
            return None
        where = np.flatnonzero(self.grid.order == channel)
        if where.size == 0:
            return None
        y, x = self.grid.cell_origin(int(where[0]))
        return y, x, self.grid.cell[0], self.grid.cell[1]

    def set_selected(self, channel: int | None) -> None:
        self.selected = channel
        rect = None if channel is None else self.cell_rect(channel)
        if rect is None:
            self.outline.setVisible(False)
            return
        y, x, h, w = rect
        self.outline.setRect(QRectF(x - 0.5, y - 0.5, w + 1, h + 1))
        self.outline.setVisible(True)

    def view_point(self, channel: int, y: int = 0, x: int = 0) -> QPointF:
        """The centre of unit (y, x) of ``channel`` in view coordinates."""
        rect = self.cell_rect(channel)
        if rect is None:
            raise KeyError(f"channel {channel} is not in the grid")
        return QPointF(rect[1] + x + 0.5, rect[0] + y + 0.5)

    # -- mouse ------------------------------------------------------------------------------------
    def _unit_at_scene(self, scene_pos: QPointF) -> tuple[int, int, int] | None:
        if self.grid is None:
            return None
        p = self.view.mapSceneToView(scene_pos)
        gy, gx = p.y(), p.x()
        channel = self.grid.channel_at(gy, gx)
        if channel is None:
            return None
        ph, pw = self.grid.cell[0] + self.grid.gap, self.grid.cell[1] + self.grid.gap
        return channel, int(gy % ph), int(gx % pw)

    def readout(self, channel: int, y: int, x: int) -> str:
        assert self.fmap is not None
        value = format_number(float(self.fmap[channel, y, x]))
        if self.fmap.shape[1:] == (1, 1):
            return f"unit {channel}: {value}"
        return f"channel {channel}, row {y}, col {x}: {value}"

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        hit = self._unit_at_scene(scene_pos)
        self.readout_label.setText(" " if hit is None else self.readout(*hit) + "  (click to enlarge)")

    def _on_mouse_clicked(self, event: object) -> None:
        hit = self._unit_at_scene(event.scenePos())  # type: ignore[attr-defined]
        if hit is not None:
            self.channel_clicked.emit(*hit)
