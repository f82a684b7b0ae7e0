"""The whole layer table at once: one sortable row per step, with a box to find layers by name.

``LayerTableView(parent=None)``; ``set_table(table)`` with a core ``LayerTable`` (``None`` or ``clear()``
empties it); ``set_current(name)`` selects a row without emitting anything; double-clicking a row emits
``layer_activated(name)``. Columns: step, name, type, output shape, parameters, multiply-adds, receptive
field, output memory. The cells are the ones ``inspect`` writes to layers.csv (core's ``table_records``),
so the two agree; numeric columns sort by value, not as text (the receptive field by its area, "whole"
last; the output shape by its number of values). ``shown_names()`` and ``cell_text(row, key)`` say what
is shown, in the order shown, for tests.
"""

from __future__ import annotations

import math

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.explorer.layer_facts import memory_text, table_records
from cnn_explorer.core.layers import LayerTable

SORT_ROLE = Qt.ItemDataRole.UserRole + 1

# (key, header): keys are layers.csv's columns, plus the step number and the output's bytes.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("step", "#"),
    ("name", "Name"),
    ("type", "Type"),
    ("output_shape", "Output shape"),
    ("params", "Parameters"),
    ("macs", "Multiply-adds"),
    ("rf_size", "Receptive field"),
    ("output_bytes", "Output memory"),
)
KEYS = tuple(key for key, _ in COLUMNS)
_NUMERIC = frozenset({"step", "output_shape", "params", "macs", "rf_size", "output_bytes"})
_Index = QModelIndex | QPersistentModelIndex


def _dims(text: str) -> list[int]:
    """ "64x56x56" → [64, 56, 56]; "" → []."""
    return [int(v) for v in text.split("x")] if text else []


def _cell(key: str, record: dict[str, str]) -> tuple[str, float | str]:
    """(text shown, value sorted by) of one cell; numbers sort as floats (one type per column for Qt)."""
    value = record[key]
    if key in ("params", "macs"):
        return f"{int(value):,}", float(value)
    if key == "output_bytes":
        return memory_text(int(value)), float(value)
    if key == "output_shape":
        dims = _dims(value)
        return "×".join(str(d) for d in dims) or "?", float(math.prod(dims))
    if key == "rf_size":
        if value == "whole":
            return "whole input", math.inf
        dims = _dims(value)
        side = dims * 2 if len(dims) == 1 else dims  # "5" is 5×5
        return "×".join(str(d) for d in dims), float(math.prod(side))
    if key == "step":
        return value, float(value)
    return value, value.casefold()


class _LayerTableModel(QAbstractTableModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cells: list[list[tuple[str, float | str]]] = []
        self._names: list[str] = []

    def set_records(self, records: list[dict[str, str]]) -> None:
        self.beginResetModel()
        self._names = [r["name"] for r in records]
        self._cells = [[_cell(key, {**r, "step": str(i + 1)}) for key in KEYS] for i, r in enumerate(records)]
        self.endResetModel()

    def name(self, row: int) -> str:
        return self._names[row]

    def row_of(self, name: str) -> int:
        return self._names.index(name)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._cells)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        text, value = self._cells[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole and KEYS[index.column()] in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        return None


class LayerTableView(QWidget):
    layer_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = _LayerTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(KEYS.index("name"))
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Find layers by name…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(KEYS.index("step"), Qt.SortOrder.AscendingOrder)  # the order the network runs
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.doubleClicked.connect(self._on_double_clicked)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: #555; font-size: 11px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.caption)

    def set_table(self, table: LayerTable | None) -> None:
        self.model.set_records(table_records(table) if table is not None else [])
        if table is None:
            self.caption.setText("")
        else:
            notes = "".join(f"; {n}" for n in table.notes)
            self.caption.setText(
                f"{len(table)} steps, {table.total_params:,} parameters, {table.total_macs:,} multiply-adds "
                f"per image{notes}."
            )
        self.view.resizeColumnsToContents()

    def clear(self) -> None:
        self.set_table(None)

    def set_current(self, name: str) -> None:
        """Select the row of layer ``name`` (if it is shown) and scroll to it."""
        try:
            source = self.model.index(self.model.row_of(name), 0)
        except ValueError:
            self.view.clearSelection()
            return
        index = self.proxy.mapFromSource(source)
        if not index.isValid():  # filtered out
            self.view.clearSelection()
            return
        self.view.selectRow(index.row())
        self.view.scrollTo(index)

    @Slot(QModelIndex)
    def _on_double_clicked(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if source.isValid():
            self.layer_activated.emit(self.model.name(source.row()))

    def column(self, key: str) -> int:
        return KEYS.index(key)

    def shown_names(self) -> list[str]:
        """The names of the rows shown, top to bottom."""
        return [
            self.model.name(self.proxy.mapToSource(self.proxy.index(r, 0)).row()) for r in range(self.rows())
        ]

    def rows(self) -> int:
        return self.proxy.rowCount()

    def cell_text(self, row: int, key: str) -> str:
        """The text shown in row ``row`` (as displayed, after sorting and filtering) and column ``key``."""
        return str(self.proxy.index(row, KEYS.index(key)).data())
