"""The explorer's layer list: the steps as a tree (blocks hold their layers), Prev/Next, the position,
and a button for the whole layer table."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.explorer.text import shape_text
from cnn_explorer.core.layers import LayerRow
from cnn_explorer.qt import style


class LayerPanel(QWidget):
    layer_chosen = Signal(int)  # row index
    step_clicked = Signal(int)  # -1 or +1
    table_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.setSpacing(4)
        title = QLabel("Layers")
        title.setStyleSheet(style.TITLE_STYLE)
        self.table_button = QPushButton("Table…")
        self.table_button.setToolTip("Every layer in one sortable table: shapes, parameters, cost, fields")
        top = QHBoxLayout()
        top.addWidget(title, 1)
        top.addWidget(self.table_button)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.pairing_label = QLabel()
        self.pairing_label.setWordWrap(True)
        self.pairing_label.setStyleSheet(f"color: {style.SIDE_B}; font-size: 11px;")
        self.pairing_label.setVisible(False)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Layer", "Output"])
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(14)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, header.ResizeMode.Stretch)
        header.setSectionResizeMode(1, header.ResizeMode.ResizeToContents)
        self.prev_button = QPushButton("▲ Prev")
        self.next_button = QPushButton("Next ▼")
        self.prev_button.setToolTip("Previous layer (↑)")
        self.next_button.setToolTip("Next layer (↓)")
        self.position_label = QLabel()
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        nav = QHBoxLayout()
        nav.setSpacing(4)
        nav.addWidget(self.prev_button)
        nav.addWidget(self.position_label, 1)
        nav.addWidget(self.next_button)
        hint = QLabel("↑/↓ step through the layers in the order the network runs them; ←/→ pick a channel.")
        hint.setWordWrap(True)
        hint.setStyleSheet(f"color: {style.FAINT}; font-size: 11px;")
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.pairing_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(nav)
        layout.addWidget(hint)
        self.setMinimumWidth(220)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._count = 0

        self._shown: list[tuple] = []  # what the tree lists: (name, type, output shape, inactive, too large)
        self.tree.currentItemChanged.connect(self._on_item)
        self.prev_button.clicked.connect(lambda: self.step_clicked.emit(-1))
        self.next_button.clicked.connect(lambda: self.step_clicked.emit(1))
        self.table_button.clicked.connect(self.table_clicked)

    def set_rows(self, rows: list[LayerRow], too_large: set[str]) -> None:
        shown = [(r.name, r.type, r.out_shape, r.inactive, r.name in too_large) for r in rows]
        if rows and shown == self._shown:
            return  # the same layers (the same model on another picture): keep the tree as it is
        self._shown = shown
        self.tree.blockSignals(True)
        self.tree.clear()
        self._items = {}
        self._count = len(rows)
        for i, row in enumerate(rows):
            short = row.name[len(row.parent) + 1 :] if row.parent else row.name
            mark = " ⚠" if row.name in too_large else " (inactive)" if row.inactive else ""
            item = QTreeWidgetItem([short + mark, shape_text(row.out_shape)])
            item.setData(0, Qt.ItemDataRole.UserRole, i)
            tip = f"{row.name} — {row.type}"
            if row.name in too_large:
                tip += "\nToo large to keep in memory: shape only"
            if row.inactive:
                tip += f"\nInactive at inference: passes its input through unchanged; {row.inactive}"
                item.setForeground(0, QColor(style.FAINT))
            item.setToolTip(0, tip)
            item.setToolTip(1, f"output {shape_text(row.out_shape)}")
            if row.kind == "block":
                font = item.font(0)
                font.setBold(True)
                item.setFont(0, font)
            self._items[row.name] = item
        for row in rows:
            parent = self._items.get(row.parent) if row.parent else None
            if parent is not None:
                parent.addChild(self._items[row.name])
            else:
                self.tree.addTopLevelItem(self._items[row.name])
        self.tree.blockSignals(False)
        self.table_button.setEnabled(bool(rows))
        if not rows:
            self.show_position(None, 0)

    def show_position(self, name: str | None, index: int) -> None:
        """Mark the current layer in the tree and in the Prev/Next row."""
        n = self._count
        self.prev_button.setEnabled(n > 0 and index > 0)
        self.next_button.setEnabled(n > 0 and index < n - 1)
        self.position_label.setText(f"{index + 1} / {n}" if n and name is not None else "")
        item = self._items.get(name) if name is not None else None
        if item is None:
            return
        parent = item.parent()
        while parent is not None:
            parent.setExpanded(True)
            parent = parent.parent()
        self.tree.blockSignals(True)
        self.tree.setCurrentItem(item)
        self.tree.blockSignals(False)
        self.tree.scrollToItem(item)

    def _on_item(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        if item is not None and item.data(0, Qt.ItemDataRole.UserRole) is not None:
            self.layer_chosen.emit(int(item.data(0, Qt.ItemDataRole.UserRole)))
