"""A square pad to draw a digit on with the mouse: thick round strokes, dark ink on white paper.

``DigitCanvas`` keeps the drawing as a grayscale image of ``side``×``side`` pixels, whatever size the widget
has on screen, and emits ``drawn(pixels)`` with a copy (an ``(side, side)`` uint8 array) while a stroke is
being drawn, at most every ``interval_ms`` milliseconds, and once more when the stroke ends, so a reader
(LeNet-5 in the explorer) follows the pen without being asked for every mouse move. ``clear()`` wipes the
pad and emits ``cleared``. ``draw_strokes(strokes)`` draws polylines given in 0..1 pad coordinates: the
screenshot command draws its digit with it, as a hand would.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnn_explorer.qt import style

PAD_SIDE = 224  # pixels of the drawing itself (7× LeNet-5's 32: strokes keep their shape when scaled down)
STROKE_FRACTION = 0.085  # pen width as a share of the side: about a felt pen's line on a 3 cm box
EMIT_INTERVAL_MS = 30  # while drawing: at most ~33 readings a second
HINT = "Draw a digit here"

Stroke = Sequence[tuple[float, float]]


class DigitCanvas(QWidget):
    drawn = Signal(object)  # np.ndarray (side, side) uint8: dark strokes on white
    cleared = Signal()

    def __init__(
        self, side: int = PAD_SIDE, *, interval_ms: int = EMIT_INTERVAL_MS, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.side = side
        self._image = QImage(side, side, QImage.Format.Format_Grayscale8)
        self._image.fill(255)
        self._empty = True
        self._last: QPointF | None = None
        self._pen = QPen(QColor(0, 0, 0), side * STROKE_FRACTION)
        self._pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        self._pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._emit)
        self._dirty = False  # drawn on since the last emit
        self.setMinimumSize(140, 140)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw with the left mouse button; Clear starts again")

    # -- what is drawn ------------------------------------------------------------------------------
    def is_empty(self) -> bool:
        return self._empty

    def pixels(self) -> np.ndarray:
        """A copy of the drawing: (side, side) uint8, 255 is paper, 0 is ink."""
        ptr = self._image.constBits()
        rows = np.frombuffer(ptr, np.uint8).reshape(self.side, self._image.bytesPerLine())
        return rows[:, : self.side].copy()

    def clear(self) -> None:
        self._timer.stop()
        self._dirty = False
        self._last = None
        self._image.fill(255)
        was_empty, self._empty = self._empty, True
        self.update()
        if not was_empty:
            self.cleared.emit()

    def draw_strokes(self, strokes: Sequence[Stroke]) -> None:
        """Draw polylines in 0..1 pad coordinates (x right, y down), then emit the drawing once."""
        for stroke in strokes:
            points = [QPointF(x * self.side, y * self.side) for x, y in stroke]
            if not points:
                continue
            self._line(points[0], points[0])
            for a, b in itertools.pairwise(points):
                self._line(a, b)
        self._timer.stop()
        if self._dirty:
            self._emit()

    # -- geometry -----------------------------------------------------------------------------------
    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    def pad_rect(self) -> QRectF:
        """Where the pad is drawn in the widget: the largest centred square."""
        s = float(min(self.width(), self.height()))
        return QRectF((self.width() - s) / 2, (self.height() - s) / 2, s, s)

    def _to_pad(self, pos: QPointF) -> QPointF:
        r = self.pad_rect()
        scale = self.side / max(1.0, r.width())
        return QPointF((pos.x() - r.x()) * scale, (pos.y() - r.y()) * scale)

    # -- drawing ------------------------------------------------------------------------------------
    def _line(self, a: QPointF, b: QPointF) -> None:
        painter = QPainter(self._image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(self._pen)
        if a == b:
            painter.drawPoint(a)
        else:
            painter.drawLine(a, b)
        painter.end()
        self._empty = False
        self._dirty = True
        self.update()

    def _emit(self) -> None:
        if self._dirty and not self._empty:
            self._dirty = False
            self.drawn.emit(self.pixels())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self._last = self._to_pad(event.position())
        self._line(self._last, self._last)
        if not self._timer.isActive():
            self._timer.start()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._last is None or not event.buttons() & Qt.MouseButton.LeftButton:
            super().mouseMoveEvent(event)
            return
        point = self._to_pad(event.position())
        self._line(self._last, point)
        self._last = point
        if not self._timer.isActive():
            self._timer.start()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._last is None:
            super().mouseReleaseEvent(event)
            return
        point = self._to_pad(event.position())
        if point != self._last:
            self._line(self._last, point)
        self._last = None
        self._timer.stop()
        self._emit()  # the finished stroke, at once

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        r = self.pad_rect()
        painter.drawImage(r, self._image)
        painter.setPen(QPen(QColor(style.FAINT), 1))
        painter.drawRect(r.adjusted(0, 0, -1, -1))
        if self._empty:
            painter.setPen(QColor(style.FAINT))
            painter.drawText(r, Qt.AlignmentFlag.AlignCenter, HINT)
        painter.end()
