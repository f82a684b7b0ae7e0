"""A small matrix drawn as a grid of numbers: a kernel, a gradient, a velocity.

``NumberGrid(title="", parent=None, *, digits=3)`` paints a 2-D array (at most a few dozen cells: kernels
up to 7×7) with each value written in its cell, tinted warm for positive and cool for negative numbers (as
the kernel editor colours weights), the stronger the larger |value| is against the grid's largest. It is
read-only and cheap: one paint, no item per cell, so a panel can hold two dozen of them.

API: ``set_matrix(values, title=None)`` ((kH, kW), or (k,) as one row; emits nothing); ``clear(message="")``;
``texts() -> list[list[str]]`` (the numbers as drawn, for tests and tooltips); ``matrix`` (what is shown, or
None); ``title``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnn_explorer.core.ops import format_number

_CELL_H = 20.0
_MIN_CELL_W = 26.0
_PAD = 6.0  # room either side of the widest number
_TITLE_H = 16.0
POSITIVE = QColor(255, 190, 160)  # the kernel editor's warm and cool, a little stronger
NEGATIVE = QColor(170, 200, 255)


def _tint(colour: QColor, strength: float) -> QColor:
    """``colour`` mixed with white: 0 gives white, 1 the colour itself."""
    s = float(np.clip(strength, 0.0, 1.0))
    return QColor(
        round(255 + (colour.red() - 255) * s),
        round(255 + (colour.green() - 255) * s),
        round(255 + (colour.blue() - 255) * s),
    )


class NumberGrid(QWidget):
    def __init__(self, title: str = "", parent: QWidget | None = None, *, digits: int = 3) -> None:
        super().__init__(parent)
        self.title = title
        self.digits = digits
        self.matrix: np.ndarray | None = None
        self._texts: list[list[str]] = []
        self._message = ""
        self._font = QFont()
        self._font.setPixelSize(11)
        self._cell_w = _MIN_CELL_W
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    # -- API --------------------------------------------------------------------------------------
    def set_matrix(self, values: np.ndarray, title: str | None = None) -> None:
        a = np.asarray(values, dtype=np.float64)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2:
            raise ValueError(f"a number grid shows a 2-D matrix, got shape {a.shape}")
        self.matrix = a.copy()
        if title is not None:
            self.title = title
        self._message = ""
        self._texts = [[format_number(v, self.digits) for v in row] for row in a]
        metrics = QFontMetricsF(self._font)
        widest = max((metrics.horizontalAdvance(t) for row in self._texts for t in row), default=0.0)
        self._cell_w = max(_MIN_CELL_W, widest + 2 * _PAD)
        self.updateGeometry()
        self.update()

    def clear(self, message: str = "") -> None:
        self.matrix = None
        self._texts = []
        self._message = message
        self.updateGeometry()
        self.update()

    def texts(self) -> list[list[str]]:
        return [list(row) for row in self._texts]

    # -- drawing ----------------------------------------------------------------------------------
    def _title_h(self) -> float:
        return _TITLE_H if self.title else 0.0

    def sizeHint(self) -> QSize:
        if self.matrix is None:
            width = QFontMetricsF(self._font).horizontalAdvance(self._message or self.title) + 4
            return QSize(max(40, round(width)), round(self._title_h() + _CELL_H))
        h, w = self.matrix.shape
        title_w = QFontMetricsF(self._font).horizontalAdvance(self.title) + 4
        return QSize(round(max(w * self._cell_w, title_w)) + 1, round(self._title_h() + h * _CELL_H) + 1)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setFont(self._font)
        top = self._title_h()
        if self.title:
            painter.setPen(QColor("#333"))
            painter.drawText(QRectF(0, 0, self.width(), _TITLE_H), Qt.AlignmentFlag.AlignLeft, self.title)
        if self.matrix is None:
            painter.setPen(QColor("#777"))
            painter.drawText(QRectF(0, top, self.width(), _CELL_H), Qt.AlignmentFlag.AlignLeft, self._message)
            painter.end()
            return
        a = self.matrix
        peak = float(np.abs(a[np.isfinite(a)]).max(initial=0.0)) or 1.0
        grid = QPen(QColor("#bbb"))
        grid.setWidthF(1.0)
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                rect = QRectF(j * self._cell_w, top + i * _CELL_H, self._cell_w, _CELL_H)
                v = a[i, j]
                fill = QColor("white")
                if np.isfinite(v) and v != 0:
                    fill = _tint(POSITIVE if v > 0 else NEGATIVE, 0.25 + 0.75 * abs(v) / peak)
                painter.fillRect(rect, fill)
                painter.setPen(grid)
                painter.drawRect(rect)
                painter.setPen(QColor("#111"))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, self._texts[i][j])
        painter.end()
