"""A 2-D map (feature map, image, matrix) with a colour bar, hover readout, numbers in cells and highlights.

``MapView(title="", parent=None, *, max_numbers_side=16, colorbar=True)`` is a QWidget holding, top to
bottom: a title line, the map (a pyqtgraph ImageItem in a ViewBox with aspect locked and row 0 at the top,
plus a ColorBarItem on its right), a caption line (rich text, for shapes and formulas) and a readout line
that shows the value under the mouse.

Coordinates are (row, col) cells, as numpy indexes arrays. ``set_map(..., origin=(r0, c0))`` puts
``data[0, 0]`` at cell (r0, c0), so a zero-padded input can be drawn at origin (−p, −p) while the real
pixels keep their own coordinates; ``valid=(rows, cols)`` marks which cells are real (others are labelled
padding in the readout and get faded numbers).

Public API
- ``set_map(data, *, levels=None, colormap=None, symmetric=False, origin=(0, 0), valid=None)``:
  show a (H, W) array through a colour map, or an (H, W, 3) RGB array (values 0…1) as colours. ``levels``
  is (low, high); by default the data's range, or ±max|data| with ``symmetric=True``. ``colormap`` is a
  pyqtgraph colormap name or ``pg.ColorMap``; default "viridis". ``values`` (same shape) is what the
  readout reports when it differs from what is drawn (e.g. RGB drawn as 0…1 but measured in 0…255).
- ``clear_map(message="")``: nothing to show; an optional message in its place (e.g. why it is empty).
- ``set_title(text)``, ``set_caption(html)``.
- ``set_numbers(mode)``: "auto" (default) writes each value in its cell when both sides ≤
  ``max_numbers_side`` and the cells are big enough to read; "off" never does.
- ``set_highlight(name, rects, color="#ff7f0e", *, width=3, dashed=False)``: a named group of rectangles,
  each (row, col, height, width) in cells; ``rects=[]`` or None removes the group. ``clear_highlights()``.
- ``value_at(row, col)``, ``readout(row, col) -> str``, ``show_readout(row, col)``: what hovering shows.
- ``cell_texts() -> list[list[str]]``: the numbers written in the cells ("" where hidden); for tests.
- ``data``, ``origin``, ``levels``: what is shown now.
- Signals ``hovered(int, int)`` (row, col; (−1, −1) when the mouse leaves) and ``cell_clicked(int, int)``.
- ``formatter``: callable turning a value into cell/readout text (default: core ``format_number``).

Maps are redrawn often (every step through a network's layers): a map of the same extent keeps the
view's range, the same colour map is not applied again, and the colour bar draws only its value axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.widgets.plots import KeptAxisItem, set_range_now

Rect = tuple[int, int, int, int]  # row, col, height, width (cells)

_MIN_FONT_PX = 9.0  # smaller numbers are noise, not information
_MAX_FONT_PX = 18.0


def _colormap(cmap: str | pg.ColorMap | None) -> pg.ColorMap:
    if isinstance(cmap, pg.ColorMap):
        return cmap
    return pg.colormap.get(cmap or "viridis")


class KeptColorBar(pg.ColorBarItem):
    """pyqtgraph's vertical colour bar, its value axis a :class:`KeptAxisItem`: stepping back to a layer seen
    before (the same levels) draws the axis from the picture kept for them."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        old = self.axis
        axis = KeptAxisItem("right")
        self.setAxisItems({"right": axis})
        # Set up as ColorBarItem sets up its own value axis (a vertical bar's is on the right).
        axis.setWidth(old.fixedWidth)
        axis.setStyle(showValues=True)
        axis.unlinkFromView()
        axis.setRange(*self.values)
        self.axis = axis


class MapView(QWidget):
    hovered = Signal(int, int)
    cell_clicked = Signal(int, int)

    def __init__(
        self,
        title: str = "",
        parent: QWidget | None = None,
        *,
        max_numbers_side: int = 16,
        colorbar: bool = True,
    ) -> None:
        super().__init__(parent)
        self.max_numbers_side = max_numbers_side
        self.formatter: Callable[[float], str] = format_number
        self.data: np.ndarray | None = None
        self.origin: tuple[int, int] = (0, 0)
        self.levels: tuple[float, float] = (0.0, 1.0)
        self._valid: tuple[range, range] | None = None
        self._values: np.ndarray | None = None
        self._cmap = _colormap(None)
        self._numbers_mode = "auto"
        self._texts: list[pg.TextItem] = []
        self._text_cells: list[tuple[int, int]] = []
        self._numbers_font_px: int | None = None  # the font size the numbers were last given
        self._highlights: dict[str, list[QGraphicsRectItem]] = {}

        self.title_label = QLabel(title)
        self.title_label.setTextFormat(Qt.TextFormat.RichText)
        self.title_label.setStyleSheet("font-weight: 600; font-size: 13px;")
        self.caption_label = QLabel()
        self.caption_label.setTextFormat(Qt.TextFormat.RichText)
        self.caption_label.setWordWrap(True)
        self.caption_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout_label = QLabel(" ")
        self.readout_label.setStyleSheet("color: #555;")

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(None)  # the page's own background: the map sits on the page
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.graphics.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setMinimumSize(120, 100)
        self.view = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(False, False)  # a stray drag must not lose the map; it always fits
        self.view.setDefaultPadding(0.02)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.bar: pg.ColorBarItem | None = None
        self._bar_cmap: pg.ColorMap | None = None  # the colour map the bar (and image) were last given
        self._rect: QRectF | None = None  # the view's range as last set
        if colorbar:
            self.bar = KeptColorBar(
                values=(0, 1), colorMap=self._cmap, interactive=False, width=12, colorMapMenu=False
            )
            self._bar_cmap = self._cmap
            # Only the value axis says something; the other three just frame the bar but cost an axis
            # repaint each, every time the levels change. A view-box border frames it for nothing.
            for side in ("left", "top", "bottom"):
                self.bar.hideAxis(side)
            self.bar.getViewBox().setBorder(pg.mkPen("#999", width=1))
            self.bar.setImageItem(self.image)
            self.graphics.addItem(self.bar, row=0, col=1)

        self.message_label = QLabel()
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #a33; padding: 12px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title_label)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.caption_label)
        layout.addWidget(self.readout_label)

        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.graphics.viewport().installEventFilter(self)
        self.view.sigResized.connect(self._layout_numbers)
        self.view.sigRangeChanged.connect(self._layout_numbers)

    # -- content ----------------------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.title_label.setText(text)

    def set_caption(self, html: str) -> None:
        self.caption_label.setText(html)

    def set_map(
        self,
        data: np.ndarray,
        *,
        levels: tuple[float, float] | None = None,
        colormap: str | pg.ColorMap | None = None,
        symmetric: bool = False,
        origin: tuple[int, int] = (0, 0),
        valid: tuple[range, range] | None = None,
        values: np.ndarray | None = None,
    ) -> None:
        data = np.asarray(data)
        if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[2] != 3):
            raise ValueError(f"a map is (H, W) or (H, W, 3), got {data.shape}")
        self.data = data
        self._values = None if values is None else np.asarray(values)
        self.origin = (int(origin[0]), int(origin[1]))
        self._valid = valid
        self.stack.setCurrentWidget(self.graphics)
        h, w = data.shape[:2]
        rect = QRectF(self.origin[1], self.origin[0], w, h)
        if data.ndim == 3:  # colours as they are: no colour map, no colour bar
            rgb = np.clip(np.nan_to_num(data.astype(np.float32)), 0, 1)
            self.image.setLookupTable(None)  # RGB data is shown as is
            self.image.setImage((rgb * 255).astype(np.uint8), autoLevels=False, rect=rect)
            # After setImage: on a fresh view, setImage applies the levels the colour bar gave the still
            # empty image, (0, 1), which would saturate every byte.
            self.image.setLevels((0, 255))
            self.levels = (0.0, 1.0)
            if self.bar is not None:
                self.bar.setVisible(False)
            self._bar_cmap = None  # the lookup table is gone: a colour map must be set again
        else:
            self._cmap = _colormap(colormap)
            self.levels = self._levels_for(data, levels, symmetric)
            self.image.setImage(data.astype(np.float32), autoLevels=False, rect=rect)
            new_cmap = self._cmap is not self._bar_cmap  # re-colouring the bar and image is not free
            self._bar_cmap = self._cmap
            if self.bar is not None:
                self.bar.setVisible(True)
                if new_cmap:
                    self.bar.setColorMap(self._cmap)
                self.bar.setLevels(self.levels)
            else:
                if new_cmap:
                    self.image.setColorMap(self._cmap)
                self.image.setLevels(self.levels)
        if rect != self._rect:  # the same extent again: no new range, no re-layout of the numbers
            self._rect = rect
            set_range_now(self.view, rect, padding=0.02)
        self._rebuild_numbers()

    def clear_map(self, message: str = "") -> None:
        self.data = None
        self.image.clear()
        self._remove_numbers()
        self.clear_highlights()
        self.message_label.setText(message)
        self.stack.setCurrentWidget(self.message_label if message else self.graphics)
        self.readout_label.setText(" ")

    @staticmethod
    def _levels_for(
        data: np.ndarray, levels: tuple[float, float] | None, symmetric: bool
    ) -> tuple[float, float]:
        if levels is None:
            finite = data[np.isfinite(data)]
            if finite.size == 0:
                lo, hi = 0.0, 1.0
            elif symmetric:
                m = float(np.abs(finite).max())
                lo, hi = -m, m
            else:
                lo, hi = float(finite.min()), float(finite.max())
        else:
            lo, hi = float(levels[0]), float(levels[1])
        if not hi > lo:  # a flat map still needs a range to colour it
            pad = abs(lo) * 0.5 or 1.0
            lo, hi = lo - pad, hi + pad
        return lo, hi

    # -- numbers in cells -------------------------------------------------------------------------
    def set_numbers(self, mode: str) -> None:
        if mode not in ("auto", "off"):
            raise ValueError("numbers mode is 'auto' or 'off'")
        self._numbers_mode = mode
        self._rebuild_numbers()

    def _wants_numbers(self) -> bool:
        d = self.data
        return (
            self._numbers_mode == "auto"
            and d is not None
            and d.ndim == 2
            and max(d.shape) <= self.max_numbers_side + 2 * max(0, -min(self.origin))  # padding may add a rim
        )

    def _remove_numbers(self) -> None:
        for item in self._texts:
            self.view.removeItem(item)
        self._texts.clear()
        self._text_cells.clear()
        self._numbers_font_px = None

    def _rebuild_numbers(self) -> None:
        """Write each value in its cell, reusing the text items already there: creating a few dozen
        pyqtgraph TextItems costs tens of milliseconds, changing their text a few."""
        if not self._wants_numbers():
            self._remove_numbers()
            return
        d = self.data
        h, w = d.shape
        norm = (np.nan_to_num(d.astype(np.float64)) - self.levels[0]) / (self.levels[1] - self.levels[0])
        colours = self._cmap.map(np.clip(norm, 0, 1).ravel(), mode="float").reshape(h, w, -1)
        while len(self._texts) > h * w:
            self.view.removeItem(self._texts.pop())
        fresh = len(self._texts) < h * w
        while len(self._texts) < h * w:
            item = pg.TextItem("", anchor=(0.5, 0.5))
            self.view.addItem(item)
            self._texts.append(item)
        r0, c0 = self.origin
        self._text_cells = [(r0 + i, c0 + j) for i in range(h) for j in range(w)]
        for item, (r, c) in zip(self._texts, self._text_cells, strict=True):
            i, j = r - r0, c - c0
            red, green, blue = colours[i, j, :3]
            luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
            colour = QColor("#111") if luminance > 0.5 else QColor("#fafafa")
            if not self._is_valid(r, c):
                colour.setAlpha(120)
            text = self.formatter(d[i, j])
            if item.textItem.toPlainText() != text:
                item.setText(text)
            if item.color != colour:
                item.setColor(colour)
            item.setPos(c + 0.5, r + 0.5)
        if fresh:
            self._numbers_font_px = None  # new items need their font
        self._layout_numbers()

    def _layout_numbers(self, *_: object) -> None:
        """Size the numbers to the cells; hide them all when the cells are too small to read."""
        if not self._texts:
            return
        px = self.view.viewPixelSize()[0]
        cell = 1.0 / px if px > 0 else 0.0
        widest = max(len(t.textItem.toPlainText()) for t in self._texts)
        base = QFont()
        base.setPixelSize(100)
        per_char = QFontMetricsF(base).horizontalAdvance("0") / 100  # width of a digit per pixel of size
        size = min(_MAX_FONT_PX, cell * 0.42, cell * 0.88 / max(1, widest * per_char))
        visible = size >= _MIN_FONT_PX
        pixels = max(1, int(size))
        if pixels != self._numbers_font_px:  # (setting a font re-lays out every text)
            self._numbers_font_px = pixels
            font = QFont()
            font.setPixelSize(pixels)
            for item in self._texts:
                item.setFont(font)
        for item in self._texts:
            item.setVisible(visible)

    def cell_texts(self) -> list[list[str]]:
        """The numbers written in the cells, row by row ("" when numbers are hidden)."""
        if self.data is None or self.data.ndim != 2:
            return []
        out = [["" for _ in range(self.data.shape[1])] for _ in range(self.data.shape[0])]
        r0, c0 = self.origin
        for item, (r, c) in zip(self._texts, self._text_cells, strict=True):
            if item.isVisible():
                out[r - r0][c - c0] = item.textItem.toPlainText()
        return out

    # -- highlights -------------------------------------------------------------------------------
    def set_highlight(
        self,
        name: str,
        rects: Sequence[Rect] | None,
        color: str = "#ff7f0e",
        *,
        width: float = 3.0,
        dashed: bool = False,
    ) -> None:
        for item in self._highlights.pop(name, []):
            self.view.removeItem(item)
        if not rects:
            return
        pen = QPen(QColor(color))
        pen.setWidthF(width)
        pen.setCosmetic(True)  # width in screen pixels, whatever the zoom
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        items = []
        for row, col, h, w in rects:
            item = QGraphicsRectItem(QRectF(col, row, w, h))
            item.setPen(pen)
            item.setZValue(20)
            self.view.addItem(item)
            items.append(item)
        self._highlights[name] = items

    def highlight_rects(self, name: str) -> list[Rect]:
        """The rectangles of a highlight group, as (row, col, height, width)."""
        out = []
        for item in self._highlights.get(name, []):
            r = item.rect()
            out.append((round(r.top()), round(r.left()), round(r.height()), round(r.width())))
        return out

    def clear_highlights(self) -> None:
        for name in list(self._highlights):
            self.set_highlight(name, None)

    # -- hover and click --------------------------------------------------------------------------
    def _is_valid(self, row: int, col: int) -> bool:
        return self._valid is None or (row in self._valid[0] and col in self._valid[1])

    def _cell_at_scene(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self.data is None:
            return None
        p = self.view.mapSceneToView(scene_pos)
        row, col = math.floor(p.y()), math.floor(p.x())
        r0, c0 = self.origin
        h, w = self.data.shape[:2]
        if r0 <= row < r0 + h and c0 <= col < c0 + w:
            return row, col
        return None

    def value_at(self, row: int, col: int) -> np.ndarray | float:
        assert self.data is not None
        source = self.data if self._values is None else self._values
        v = source[row - self.origin[0], col - self.origin[1]]
        return v if np.ndim(v) else float(v)

    def readout(self, row: int, col: int) -> str:
        """The hover text for a cell, e.g. ``row 1, col 2: 17``."""
        v = self.value_at(row, col)
        if np.ndim(v):
            text = "R, G, B = " + ", ".join(self.formatter(x) for x in np.asarray(v))
        else:
            text = self.formatter(v)
        where = f"row {row}, col {col}"
        if not self._is_valid(row, col):
            where += " (zero padding)"
        return f"{where}: {text}"

    def show_readout(self, row: int, col: int) -> None:
        self.readout_label.setText(self.readout(row, col))
        self.hovered.emit(row, col)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self._cell_at_scene(scene_pos)
        if cell is None:
            self.readout_label.setText(" ")
            return
        self.show_readout(*cell)

    def _on_mouse_clicked(self, event: object) -> None:
        cell = self._cell_at_scene(event.scenePos())  # type: ignore[attr-defined]
        if cell is not None:
            self.cell_clicked.emit(*cell)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self.readout_label.setText(" ")
            self.hovered.emit(-1, -1)
        return super().eventFilter(obj, event)
