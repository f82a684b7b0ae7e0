"""An editable grid of kernel weights, 1×1 to 7×7.

``KernelEditor(parent=None)``: a size spin box (k×k) above a table of numbers. Typing a number in a cell or
changing the size emits ``kernel_changed(np.ndarray)`` with the new (k, k) float64 kernel; a cell that does
not hold a number goes back to its previous value and ``invalid_entry(str)`` explains why.

API: ``set_kernel(array)`` (any shape the core accepts, 1…7 per side; emits nothing), ``kernel()``,
``set_cell(row, col, value)`` (as if typed; emits), signals ``kernel_changed`` and ``invalid_entry``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.kernels import MAX_KERNEL_SIDE, MIN_KERNEL_SIDE, validate_kernel
from cnn_explorer.core.ops import format_number

CELL_PX = 40


class KernelEditor(QWidget):
    kernel_changed = Signal(object)  # np.ndarray (k, k)
    invalid_entry = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._kernel = np.zeros((3, 3))
        self._updating = False

        self.size_spin = QSpinBox()
        self.size_spin.setRange(MIN_KERNEL_SIDE, MAX_KERNEL_SIDE)
        self.size_spin.setValue(3)
        self.size_spin.setToolTip("Kernel size k×k: a new size keeps the overlapping numbers")
        self.table = QTableWidget(3, 3)
        self.table.horizontalHeader().hide()
        self.table.verticalHeader().hide()
        for header in (self.table.horizontalHeader(), self.table.verticalHeader()):
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setMinimumSectionSize(10)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.table.setToolTip("Kernel weights: double-click or type to edit a number")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("size"))
        row.addWidget(self.size_spin)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(row)
        layout.addWidget(self.table, 0, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

        self.size_spin.valueChanged.connect(self._on_size)
        self.table.itemChanged.connect(self._on_item)
        self._fill()

    # -- API --------------------------------------------------------------------------------------
    def kernel(self) -> np.ndarray:
        return self._kernel.copy()

    def set_kernel(self, values: np.ndarray) -> None:
        """Show ``values`` (validated); does not emit ``kernel_changed``."""
        self._kernel = validate_kernel(values)
        self._fill()

    def set_cell(self, row: int, col: int, value: float | str) -> None:
        """Put a value in a cell as if the user typed it."""
        self.table.item(row, col).setText(str(value))

    # -- internals --------------------------------------------------------------------------------
    def _fill(self) -> None:
        self._updating = True
        try:
            k = self._kernel
            side = max(k.shape)
            self.size_spin.setValue(side)
            self.table.setRowCount(k.shape[0])
            self.table.setColumnCount(k.shape[1])
            cell = CELL_PX if side <= 5 else 34  # 7×7 still fits the control column
            for i in range(k.shape[0]):
                self.table.setRowHeight(i, int(cell * 0.7))
                for j in range(k.shape[1]):
                    self.table.setColumnWidth(j, cell)
                    item = self.table.item(i, j)
                    if item is None:  # reuse items: this also runs inside their own itemChanged
                        item = QTableWidgetItem()
                        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                        self.table.setItem(i, j, item)
                    v = k[i, j]
                    item.setText(format_number(v, 4))
                    # Warm for positive weights, cool for negative ones, as in the maps.
                    item.setBackground(
                        QColor(255, 225, 205)
                        if v > 0
                        else QColor(205, 222, 255)
                        if v < 0
                        else QColor("white")
                    )
            frame = 2 * self.table.frameWidth()
            self.table.setFixedSize(
                sum(self.table.columnWidth(j) for j in range(k.shape[1])) + frame,
                sum(self.table.rowHeight(i) for i in range(k.shape[0])) + frame,
            )
        finally:
            self._updating = False

    def _on_size(self, side: int) -> None:
        if self._updating:
            return
        new = np.zeros((side, side))
        old = self._kernel
        # Keep the centre where it was, so growing a kernel pads it and shrinking crops its middle.
        oi, ni = max(0, (old.shape[0] - side) // 2), max(0, (side - old.shape[0]) // 2)
        oj, nj = max(0, (old.shape[1] - side) // 2), max(0, (side - old.shape[1]) // 2)
        h, w = min(side, old.shape[0]), min(side, old.shape[1])
        new[ni : ni + h, nj : nj + w] = old[oi : oi + h, oj : oj + w]
        self._kernel = new
        self._fill()
        self.kernel_changed.emit(self.kernel())

    def _on_item(self, item: QTableWidgetItem) -> None:
        if self._updating:
            return
        text = item.text().strip().replace("−", "-").replace(",", ".")
        try:
            value = float(text)
            if not np.isfinite(value):
                raise ValueError
        except ValueError:
            self.invalid_entry.emit(f"“{item.text()}” is not a number; the kernel keeps its previous value")
            self._fill()
            return
        self._kernel[item.row(), item.column()] = value
        self._fill()
        self.kernel_changed.emit(self.kernel())
