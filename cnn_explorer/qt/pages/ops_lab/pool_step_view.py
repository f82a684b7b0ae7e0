"""One pooling window drawn as arithmetic: the window's values → max / mean / sum = the pooled value.

``PoolStepView(parent=None)`` paints, for a core :class:`~cnn_explorer.core.lab.PoolStep`, the k×k window
over the pooling stage's input (cells on the padding hatched; for max pooling the winning cell outlined),
the operation, the value, and the arithmetic written out (core's ``PoolStep.text``, e.g.
``max(1, 2, 5, 6) = 6``). With an average the gradient note says each cell gets 1/k² of it back; with a
max only the winner does.

With the backward view on, ``gradient`` (∂L/∂y at this window's output) is followed back: where it goes.

API: ``set_step(step, channel_name="", gradient=None)``; ``set_step(None, message=...)``; ``plain_text()``
(the arithmetic written out, then the backward line, for tests and tooltips); ``backward_text()``;
``step``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnn_explorer.core.lab import PoolStep
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.pages.ops_lab import helpers

WINDOW = QColor(helpers.POOL_WINDOW)  # the pooling window's colour, as on the maps
WINNER = QColor(helpers.WINDOW)
_HEADER_H = 18.0
_MAX_CELL = 46.0
_MIN_CELL = 14.0
_OPS = {"max": "max", "avg": "mean", "sum": "sum"}
_WHAT = {
    "max": "keeps the largest value (outlined); backward, only that cell gets the gradient",
    "avg": "keeps the mean; backward, every cell gets an equal share (÷ k²)",
    "sum": "keeps the sum; backward, every cell gets the whole gradient",
}


class PoolStepView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step: PoolStep | None = None
        self._channel = ""
        self._message = ""
        self._gradient: float | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(110)

    def sizeHint(self) -> QSize:
        return QSize(600, 200)

    def set_step(
        self, step: PoolStep | None, channel_name: str = "", message: str = "", gradient: float | None = None
    ) -> None:
        self.step = step
        self._channel = channel_name
        self._gradient = gradient
        self._message = message
        self.setToolTip(self.plain_text())
        self.update()

    def plain_text(self) -> str:
        if self.step is None:
            return self._message
        name = f"{self._channel}: " if self._channel else ""
        back = self.backward_text()
        return f"{name}{self.step.text}" + (f"; {back}" if back else "")

    def backward_text(self) -> str:
        """Where ∂L/∂y of this window goes back to ("" without the backward view)."""
        s, g = self.step, self._gradient
        if s is None or g is None:
            return ""
        k2 = s.window.size
        gt = format_number(g)
        if s.mode == "max" and s.winner is not None:
            r, c = s.winner
            return (
                f"backward: ∂L/∂y = {gt} goes to the winner {format_number(s.value)} (row {r}, col {c}); "
                f"the other {k2 - 1} cells get 0"
            )
        if s.mode == "avg":
            return f"backward: ∂L/∂y = {gt} is shared out: {gt}/{k2} = {format_number(g / k2)} to each cell"
        return f"backward: every cell of the window gets ∂L/∂y = {gt}"

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        s = self.step
        if s is None:
            painter.setPen(QColor("#555"))
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
            )
            painter.end()
            return
        k = s.window.shape[0]
        foot = 3 * 22.0
        cell = max(_MIN_CELL, min(_MAX_CELL, (self.height() - _HEADER_H - foot - 6) / k))
        x0, y0 = 6.0, _HEADER_H
        small, text_font, big = QFont(), QFont(), QFont()
        small.setPixelSize(11)
        text_font.setPixelSize(13)
        big.setPixelSize(20)
        painter.setFont(small)
        painter.setPen(QColor("#444"))
        title = f"pooling window ({self._channel})" if self._channel else "pooling window"
        painter.drawText(QRectF(x0, 0, max(k * cell, 140), _HEADER_H), Qt.AlignmentFlag.AlignLeft, title)
        self._grid(painter, x0, y0, cell, s)
        # → max → value
        gx = x0 + k * cell + 10
        painter.setFont(big)
        painter.setPen(QColor("#333"))
        op = f"→ {_OPS[s.mode]} →"
        op_w = QFontMetricsF(big).horizontalAdvance(op) + 8
        painter.drawText(QRectF(gx, y0, op_w, k * cell), Qt.AlignmentFlag.AlignCenter, op)
        bold = QFont(text_font)
        bold.setBold(True)
        bold.setPixelSize(18)
        value = format_number(s.value)
        vw = QFontMetricsF(bold).horizontalAdvance(value) + 14
        box = QRectF(gx + op_w + 4, y0 + k * cell / 2 - 16, vw, 32)
        painter.setPen(QPen(WINDOW, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(box, 3, 3)
        painter.setFont(bold)
        painter.setPen(QColor("#222"))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, value)
        # The arithmetic, and what pooling does backward.
        painter.setFont(text_font)
        y = y0 + k * cell + 4
        width = self.width() - x0 - 8
        text = QFontMetricsF(text_font).elidedText(s.text, Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRectF(x0, y, width, 22), Qt.AlignmentFlag.AlignVCenter, text)
        back = self.backward_text()
        if back:
            painter.setPen(QColor("#b2182b"))
            back = QFontMetricsF(text_font).elidedText(
                back[0].upper() + back[1:], Qt.TextElideMode.ElideRight, width
            )
            painter.drawText(QRectF(x0, y + 22, width, 22), Qt.AlignmentFlag.AlignVCenter, back)
            y += 22
        painter.setFont(small)
        painter.setPen(QColor("#555"))
        what = f"{_OPS[s.mode].title()} pooling {_WHAT[s.mode]}."
        painter.drawText(QRectF(x0, y + 22, width, 20), Qt.AlignmentFlag.AlignVCenter, what)
        painter.end()

    def _grid(self, painter: QPainter, x: float, y: float, cell: float, s: PoolStep) -> None:
        k = s.window.shape[0]
        finite = s.window[np.isfinite(s.window)]
        peak = float(np.abs(finite).max(initial=0.0)) or 1.0
        font = QFont()
        font.setPixelSize(max(8, int(min(15.0, cell * 0.42))))
        painter.setFont(font)
        for i in range(k):
            for j in range(k):
                r = QRectF(x + j * cell, y + i * cell, cell, cell)
                v = float(s.window[i, j])
                padding = bool(s.in_padding[i, j])
                shade = 0 if padding or not np.isfinite(v) else int(60 * abs(v) / peak)
                painter.setPen(QPen(QColor("#bbb"), 1))
                painter.setBrush(QColor(250, 250, 250) if padding else QColor(236 - shade, 232 - shade, 244))
                painter.drawRect(r)
                if padding:
                    painter.setBrush(QBrush(QColor("#ccc"), Qt.BrushStyle.BDiagPattern))
                    painter.drawRect(r)
                painter.setPen(QColor("#999") if padding else QColor("#111"))
                painter.drawText(r, Qt.AlignmentFlag.AlignCenter, format_number(v))
        painter.setPen(QPen(WINDOW, 2, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(x, y, k * cell, k * cell))
        if s.winner_tap is not None:
            i, j = s.winner_tap
            painter.setPen(QPen(WINNER, 3))
            painter.drawRect(QRectF(x + j * cell + 1.5, y + i * cell + 1.5, cell - 3, cell - 3))
