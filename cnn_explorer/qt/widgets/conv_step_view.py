"""One convolution step drawn as arithmetic: patch × kernel = products → Σ (+ bias) = value.

``ConvStepView(parent=None)`` paints, for a :class:`cnn_explorer.core.ops.ConvStep`, the input patch under
the window (taps on zero padding hatched), the kernel, their element-wise products coloured by sign, the
sum, the bias and the output value; with several input channels one row per channel, then the total.
An optional activation is appended (``→ ReLU → 17``). The backward pass's steps use the same sheet with
their own column headings (upstream ∂L/∂z, flipped kernel), no bias and a name for the value.

API: ``set_step(step, *, channel_names=None, activation=None, activated=None, headings=None, bias=True,
value_name=None)``;
``set_step(None, message=...)`` shows a message instead; ``plain_text()`` gives the same arithmetic as
one line of text (tests, tooltips).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnn_explorer.core.ops import ConvStep, format_number

_OP_W = 26.0  # room for "×", "=" between grids
_SUM_W = 110.0  # room for "→ Σ = 123.45"
_GAP = 18.0  # between channel blocks
_MIN_CELL = 10.0
_MAX_CELL = 46.0
_HEADER_H = 18.0
_FOOT_H = 24.0

PATCH_FILL = QColor(236, 239, 244)
PADDING_FILL = QColor(250, 250, 250)
POSITIVE = QColor(214, 96, 77)
NEGATIVE = QColor(67, 147, 195)
WINDOW_COLOUR = QColor("#ff7f0e")
HEADINGS = ("input patch", "kernel", "products")


def _tint(colour: QColor, strength: float) -> QColor:
    """``colour`` mixed with white: 0 gives white, 1 the colour itself."""
    s = float(np.clip(strength, 0.0, 1.0)) * 0.75
    return QColor(
        round(255 + (colour.red() - 255) * s),
        round(255 + (colour.green() - 255) * s),
        round(255 + (colour.blue() - 255) * s),
    )


def _factor(v: float) -> str:
    """A number as the second factor of a product: negatives in parentheses, 3·(−1)."""
    text = format_number(v)
    return f"({text})" if v < 0 else text


class ConvStepView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step: ConvStep | None = None
        self._channels: list[str] = []
        self._activation: str | None = None
        self._activated: float | None = None
        self._message = ""
        self._headings: tuple[str, str, str] = HEADINGS
        self._bias = True
        self._value_name: str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(110)

    def sizeHint(self) -> QSize:
        return QSize(700, 215)

    # -- API --------------------------------------------------------------------------------------
    def set_step(
        self,
        step: ConvStep | None,
        *,
        channel_names: Sequence[str] | None = None,
        activation: str | None = None,
        activated: float | None = None,
        message: str = "",
        headings: tuple[str, str, str] | None = None,
        bias: bool = True,
        value_name: str | None = None,
    ) -> None:
        self.step = step
        self._headings = headings or HEADINGS
        self._bias = bias
        self._value_name = value_name
        n = 1 if step is None or step.patch.ndim == 2 else step.patch.shape[0]
        self._channels = (
            list(channel_names) if channel_names else ([""] if n == 1 else [f"ch {i}" for i in range(n)])
        )
        self._activation = activation
        self._activated = activated
        self._message = message
        self.setToolTip(self.plain_text())
        self.update()

    def plain_text(self) -> str:
        """The step's arithmetic in one line, e.g. ``patch [[6, 7], [10, 11]] × kernel … = 17``."""
        s = self.step
        if s is None:
            return self._message

        def grid(a: np.ndarray) -> str:
            return "[" + ", ".join("[" + ", ".join(format_number(v) for v in row) + "]" for row in a) + "]"

        parts = []
        first, second, third = (h.split()[-1] for h in self._headings)  # "patch", "kernel", "products"
        for c, (patch, kernel, products) in enumerate(self._channel_arrays()):
            name = f"{self._channels[c]}: " if self._channels[c] else ""
            parts.append(
                f"{name}{first} {grid(patch)} × {second} {grid(kernel)} = {third} {grid(products)}"
                f" → Σ = {format_number(products.sum())}"
            )
        text = "; ".join(parts)
        text += f"; total {format_number(s.total)}"
        if self._bias:
            text += f" + bias {format_number(s.bias)}"
        if self._value_name:
            text += f" = {self._value_name}"
        text += f" = {format_number(s.value)}"
        if self._activation and self._activated is not None:
            text += f" → {self._activation} → {format_number(self._activated)}"
        return text

    # -- painting ---------------------------------------------------------------------------------
    def _channel_arrays(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        s = self.step
        assert s is not None
        if s.patch.ndim == 2:
            return [(s.patch, s.kernel, s.products)]
        return [(s.patch[c], s.kernel[c], s.products[c]) for c in range(s.patch.shape[0])]

    def _layout(self, n: int, kh: int, kw: int) -> tuple[float, bool, float]:
        """Cell size, whether channel blocks sit side by side, and the label width: the larger cells win.

        Stacked, each channel's sum goes to the right of its products; side by side, underneath.
        """
        label_w = 24.0 if n > 1 else 0.0
        free_h = self.height() - _HEADER_H - 2 * _FOOT_H - 4
        free_w = self.width() - 8
        stacked_w = (free_w - label_w - 2 * _OP_W - _SUM_W) / (3 * kw)
        stacked_h = (free_h - n * _GAP / 2) / (n * kh)
        beside_w = (free_w - n * (label_w + 2 * _OP_W) - (n - 1) * _GAP) / (n * 3 * kw)
        beside_h = (free_h - _FOOT_H) / kh
        stacked = min(_MAX_CELL, stacked_w, stacked_h)
        beside = min(_MAX_CELL, beside_w, beside_h)
        if n > 1 and beside > stacked:
            return max(_MIN_CELL, beside), True, label_w
        return max(_MIN_CELL, stacked), False, label_w

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        if self.step is None:
            painter.setPen(QColor("#555"))
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message
            )
            painter.end()
            return
        s = self.step
        channels = self._channel_arrays()
        kh, kw = s.kernel.shape[-2:]
        cell, side_by_side, label_w = self._layout(len(channels), kh, kw)
        text_font = QFont()
        text_font.setPixelSize(13)
        small = QFont()
        small.setPixelSize(11)
        big = QFont()
        big.setPixelSize(20)
        products_max = float(np.abs(s.products).max()) or 1.0
        kernel_max = float(np.abs(s.kernel).max()) or 1.0
        grid_w, grid_h = kw * cell, kh * cell
        block_w = label_w + 3 * grid_w + 2 * _OP_W + (0.0 if side_by_side else _SUM_W)

        def kernel_fill(i: int, j: int, v: float) -> QColor:
            return _tint(POSITIVE if v > 0 else NEGATIVE, abs(v) / kernel_max)

        def product_fill(i: int, j: int, v: float) -> QColor:
            return _tint(POSITIVE if v > 0 else NEGATIVE, abs(v) / products_max)

        def patch_fill(i: int, j: int, v: float) -> QColor:
            return PADDING_FILL if s.in_padding[i, j] else PATCH_FILL

        bottom = _HEADER_H
        for c, (patch, kernel, products) in enumerate(channels):
            bx = 4.0 + (c * (block_w + _GAP) if side_by_side else 0.0)
            by = _HEADER_H + (0.0 if side_by_side else c * (grid_h + _GAP / 2))
            xs = [bx + label_w + k * (grid_w + _OP_W) for k in range(3)]
            if c == 0 or side_by_side:
                painter.setFont(small)
                painter.setPen(QColor("#444"))
                for x, title in zip(xs, self._headings, strict=True):
                    box = QRectF(x - _OP_W / 2, by - _HEADER_H, grid_w + _OP_W, _HEADER_H)
                    painter.drawText(box, Qt.AlignmentFlag.AlignCenter, title)
            if label_w:
                painter.setFont(text_font)
                painter.setPen(QColor("#333"))
                painter.drawText(
                    QRectF(bx, by, label_w, grid_h), Qt.AlignmentFlag.AlignCenter, self._channels[c]
                )
            self._grid(painter, xs[0], by, cell, patch, patch_fill, s.in_padding, WINDOW_COLOUR)
            self._grid(painter, xs[1], by, cell, kernel, kernel_fill, None, QColor("#888"))
            self._grid(painter, xs[2], by, cell, products, product_fill, None, QColor("#888"))
            painter.setFont(big)
            painter.setPen(QColor("#333"))
            mid = QRectF(0, by, _OP_W, grid_h)
            painter.drawText(mid.translated(xs[0] + grid_w, 0), Qt.AlignmentFlag.AlignCenter, "×")
            painter.drawText(mid.translated(xs[1] + grid_w, 0), Qt.AlignmentFlag.AlignCenter, "=")
            painter.setFont(text_font)
            total = f"Σ = {format_number(products.sum())}"
            if side_by_side:
                below = QRectF(xs[2] - _OP_W, by + grid_h, grid_w + 2 * _OP_W, _FOOT_H)
                painter.drawText(below, Qt.AlignmentFlag.AlignCenter, total)
                bottom = max(bottom, by + grid_h + _FOOT_H)
            else:
                beside = QRectF(xs[2] + grid_w + 6, by, _SUM_W, grid_h)
                painter.drawText(
                    beside, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, f"→ {total}"
                )
                bottom = max(bottom, by + grid_h + 4)
        x0 = 4.0
        y = bottom

        # The result line: sum(s) + bias = value (→ activation → its value).
        painter.setFont(text_font)
        if len(channels) > 1:
            line = " + ".join(format_number(p.sum()) for _, _, p in channels)
        else:
            line = f"Σ products {format_number(s.total)}"
        line += (f" + bias {format_number(s.bias)}" if self._bias else "") + " = "
        if self._value_name:
            line += f"{self._value_name} = "
        value = format_number(s.value)
        metrics = QFontMetricsF(text_font)
        bold = QFont(text_font)
        bold.setBold(True)
        painter.setPen(QColor("#222"))
        painter.drawText(
            QRectF(x0, y, metrics.horizontalAdvance(line) + 2, _FOOT_H), Qt.AlignmentFlag.AlignVCenter, line
        )
        vx = x0 + metrics.horizontalAdvance(line)
        box = QRectF(vx - 3, y + 2, QFontMetricsF(bold).horizontalAdvance(value) + 8, _FOOT_H - 4)
        painter.setPen(QPen(WINDOW_COLOUR, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(box, 3, 3)
        painter.setFont(bold)
        painter.setPen(QColor("#222"))
        painter.drawText(QRectF(vx + 1, y, box.width(), _FOOT_H), Qt.AlignmentFlag.AlignVCenter, value)
        if self._activation and self._activated is not None:
            painter.setFont(text_font)
            tail = f"  →  {self._activation}  →  {format_number(self._activated)}"
            painter.drawText(
                QRectF(box.right() + 2, y, self.width(), _FOOT_H), Qt.AlignmentFlag.AlignVCenter, tail
            )

        # For small single-channel kernels, the sum written out term by term.
        if len(channels) == 1 and kh * kw <= 25:
            patch, kernel, _ = channels[0]
            terms = " + ".join(
                f"{format_number(p)}·{_factor(k)}" for p, k in zip(patch.ravel(), kernel.ravel(), strict=True)
            )
            painter.setFont(small)
            painter.setPen(QColor("#555"))
            text = QFontMetricsF(small).elidedText(
                f"= {terms}", Qt.TextElideMode.ElideRight, self.width() - x0 - 8
            )
            painter.drawText(
                QRectF(x0, y + _FOOT_H, self.width() - x0, _FOOT_H - 4), Qt.AlignmentFlag.AlignVCenter, text
            )
        painter.end()

    def _grid(
        self,
        painter: QPainter,
        x: float,
        y: float,
        cell: float,
        values: np.ndarray,
        fill: Callable[[int, int, float], QColor],
        hatch: np.ndarray | None,
        border: QColor,
    ) -> None:
        kh, kw = values.shape
        widest = max(len(format_number(v)) for v in values.ravel())
        font = QFont()
        probe = QFont()
        probe.setPixelSize(100)
        per_char = QFontMetricsF(probe).horizontalAdvance("0") / 100
        font.setPixelSize(max(7, int(min(15.0, cell * 0.42, cell * 0.88 / max(1, widest * per_char)))))
        painter.setFont(font)
        for i in range(kh):
            for j in range(kw):
                r = QRectF(x + j * cell, y + i * cell, cell, cell)
                v = float(values[i, j])
                painter.setPen(QPen(QColor("#bbb"), 1))
                painter.setBrush(fill(i, j, v))
                painter.drawRect(r)
                if hatch is not None and hatch[i, j]:
                    painter.setBrush(QBrush(QColor("#ccc"), Qt.BrushStyle.BDiagPattern))
                    painter.drawRect(r)
                painter.setPen(QColor("#999") if hatch is not None and hatch[i, j] else QColor("#111"))
                painter.drawText(r, Qt.AlignmentFlag.AlignCenter, format_number(v))
        painter.setPen(QPen(border, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(x, y, kw * cell, kh * cell))
