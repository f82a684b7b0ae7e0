"""The top predictions as horizontal bars: class name, a bar as long as its probability, the percentage.

``PredictionBars(parent=None)``; ``set_predictions(predictions, *, selected=None)`` with core
``Prediction``s (most probable first); ``set_selected(class_index)`` marks one bar (the Grad-CAM class);
``clear(message)``. Clicking a bar emits ``class_clicked(class_index)``. ``rows()`` gives
``[(name, percent_text)]`` as drawn, for tests and tooltips.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnn_explorer.core.explorer.text import percent_text
from cnn_explorer.core.features import Prediction

ROW_H = 24
_BAR = QColor("#4a7fc1")
_BAR_SELECTED = QColor("#e8772e")
_TRACK = QColor("#edf0f4")


class PredictionBars(QWidget):
    class_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictions: list[Prediction] = []
        self.selected: int | None = None
        self.message = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_predictions(self, predictions: Sequence[Prediction], *, selected: int | None = None) -> None:
        self.predictions = list(predictions)
        self.selected = selected
        self.message = ""
        self.updateGeometry()
        self.update()

    def set_selected(self, class_index: int | None) -> None:
        self.selected = class_index
        self.update()

    def clear(self, message: str = "") -> None:
        self.predictions = []
        self.selected = None
        self.message = message
        self.update()

    def rows(self) -> list[tuple[str, str]]:
        return [(p.name, percent_text(p.probability)) for p in self.predictions]

    def sizeHint(self) -> QSize:
        return QSize(280, max(5, len(self.predictions)) * ROW_H + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(180, self.sizeHint().height())

    def _row_at(self, y: float) -> int | None:
        i = int((y - 2) // ROW_H)
        return i if 0 <= i < len(self.predictions) else None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        i = self._row_at(event.position().y())
        if i is not None and event.button() == Qt.MouseButton.LeftButton:
            self.class_clicked.emit(self.predictions[i].index)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        i = self._row_at(event.position().y())
        if i is None:
            self.setToolTip("")
        else:
            p = self.predictions[i]
            self.setToolTip(f"{p.name} (class {p.index}): {100 * p.probability:.3f} %. Click: where is it?")
        super().mouseMoveEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        width = self.width()
        if not self.predictions:
            painter.setPen(QColor("#777"))
            painter.drawText(
                QRectF(0, 0, width, self.height()),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.message,
            )
            return
        font = QFont(self.font())
        bold = QFont(font)
        bold.setBold(True)
        metrics = QFontMetrics(font)
        name_w = min(int(width * 0.42), max(metrics.horizontalAdvance(p.name) for p in self.predictions) + 8)
        pct_w = metrics.horizontalAdvance("100.0 %") + 8
        bar_x, bar_w = name_w + 4, max(10, width - name_w - pct_w - 8)
        for i, p in enumerate(self.predictions):
            top = 2 + i * ROW_H
            chosen = p.index == self.selected
            painter.setFont(bold if chosen or i == 0 else font)
            painter.setPen(QColor("#222"))
            name = QFontMetrics(painter.font()).elidedText(p.name, Qt.TextElideMode.ElideRight, name_w - 4)
            painter.drawText(
                QRectF(0, top, name_w - 4, ROW_H),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                name,
            )
            track = QRectF(bar_x, top + 5, bar_w, ROW_H - 10)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(_TRACK)
            painter.drawRoundedRect(track, 3, 3)
            fill = QRectF(track)
            fill.setWidth(max(2.0, bar_w * float(p.probability)))
            painter.setBrush(_BAR_SELECTED if chosen else _BAR)
            painter.drawRoundedRect(fill, 3, 3)
            if chosen:
                painter.setPen(QPen(_BAR_SELECTED, 1.5))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawRoundedRect(track.adjusted(-1, -1, 1, 1), 3, 3)
            painter.setPen(QColor("#333"))
            painter.drawText(
                QRectF(bar_x + bar_w + 6, top, pct_w, ROW_H),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                percent_text(p.probability),
            )
