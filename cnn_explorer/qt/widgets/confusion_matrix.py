"""A confusion matrix as a clickable table: rows are the true classes, columns the predicted ones.

``ConfusionMatrixView.set_matrix(matrix, class_names, per_class_acc=None)`` fills it: each cell holds its
count, shaded by its share of the row (blue on the diagonal — right answers —, red off it — mistakes), and
a last column gives each class's accuracy. Clicking a count emits ``cell_clicked(true_index,
predicted_index)``; the page then shows those images. ``clear(message)`` empties it.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

RIGHT = (33, 102, 172)  # diagonal
WRONG = (214, 96, 77)  # off the diagonal
STRETCH_UP_TO = 12  # classes
FRAME = "#ff7f0e"  # the chosen cell


def _shade(rgb: tuple[int, int, int], fraction: float) -> QColor:
    f = min(max(fraction, 0.0), 1.0)
    return QColor(*(round(255 + (c - 255) * f) for c in rgb))


class _FramedSelection(QStyledItemDelegate):
    """The chosen cell keeps its colour (which carries the meaning) and gets an orange frame."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        option.state &= ~QStyle.StateFlag.State_Selected
        super().paint(painter, option, index)
        if selected:
            painter.save()
            painter.setPen(QPen(QColor(FRAME), 3))
            painter.drawRect(option.rect.adjusted(2, 2, -2, -2))
            painter.restore()


class ConfusionMatrixView(QWidget):
    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None
        self.class_names: list[str] = []
        self.title_label = QLabel("Confusion matrix")
        self.title_label.setStyleSheet("font-weight: 600;")
        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.caption_label.setStyleSheet("color: #555;")
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.table.setItemDelegate(_FramedSelection(self.table))
        self.table.cellClicked.connect(self._on_cell_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.caption_label)
        self.clear()

    def clear(self, message: str = "The confusion matrix appears when a run has finished an epoch.") -> None:
        self.matrix = None
        self.class_names = []
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.caption_label.setText(message)

    def set_matrix(
        self,
        matrix: np.ndarray,
        class_names: list[str],
        per_class_acc: np.ndarray | None = None,
        title: str = "Confusion matrix",
    ) -> None:
        matrix = np.asarray(matrix, dtype=np.int64)
        n = len(class_names)
        self.matrix, self.class_names = matrix, list(class_names)
        self.title_label.setText(title)
        self.table.clear()
        self.table.setRowCount(n)
        self.table.setColumnCount(n + 1)
        self.table.setHorizontalHeaderLabels([*class_names, "accuracy"])
        self.table.setVerticalHeaderLabels(class_names)
        for c, name in enumerate(class_names):
            self.table.horizontalHeaderItem(c).setToolTip(f"predicted as '{name}'")
            self.table.verticalHeaderItem(c).setToolTip(f"true class '{name}'")
        # A few classes fill the area like a heat map; many keep readable cells and scroll.
        fit = (
            QHeaderView.ResizeMode.Stretch if n <= STRETCH_UP_TO else QHeaderView.ResizeMode.ResizeToContents
        )
        for c in range(n):
            self.table.horizontalHeader().setSectionResizeMode(c, fit)
            self.table.verticalHeader().setSectionResizeMode(c, fit)
        self.table.horizontalHeader().setSectionResizeMode(n, QHeaderView.ResizeMode.ResizeToContents)
        totals = matrix.sum(axis=1)
        for r in range(n):
            for c in range(n):
                count = int(matrix[r, c])
                share = count / totals[r] if totals[r] else 0.0
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                colour = _shade(RIGHT if r == c else WRONG, share if r == c else min(1.0, 1.5 * share))
                item.setBackground(QBrush(colour))
                if colour.lightness() < 140:
                    item.setForeground(QBrush(QColor("white")))
                item.setToolTip(
                    f"{count} of {totals[r]} '{class_names[r]}' validation images predicted as "
                    f"'{class_names[c]}' ({share:.0%}). Click to see them."
                )
                self.table.setItem(r, c, item)
            acc = (
                per_class_acc[r]
                if per_class_acc is not None
                else (matrix[r, r] / totals[r] if totals[r] else math.nan)
            )
            text = f"{acc:.0%} ({matrix[r, r]}/{totals[r]})" if math.isfinite(acc) else "— (no images)"
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            item.setBackground(QBrush(QColor("#f2f2f2")))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.table.setItem(r, n, item)
        total = int(matrix.sum())
        right = int(np.trace(matrix))
        overall = f"{right}/{total} = {right / total:.1%} right" if total else "no validation images"
        self.caption_label.setText(
            f"Rows: true class · columns: predicted class · {overall}. Click a cell to see its images."
        )

    def cell_text(self, row: int, col: int) -> str:
        item = self.table.item(row, col)
        return item.text() if item is not None else ""

    def _on_cell_clicked(self, row: int, col: int) -> None:
        if self.matrix is not None and col < len(self.class_names):
            self.cell_clicked.emit(row, col)
