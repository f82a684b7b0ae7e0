"""Softmax at one position, written out: the channel values, their exponentials, the sum, the probabilities.

``SoftmaxView(parent=None)`` shows a core ``SoftmaxBreakdown`` (from ``softmax_at(maps, y, x)`` at the
position the user clicked): a small table with one row per channel — the value xᵢ, e^xᵢ, pᵢ = e^xᵢ / Σ and
a bar as long as pᵢ — then the sum Σ and the arithmetic as one line of text. When core shifted the
values by their largest before exp (large values), the exp column says so; p does not change.

API: ``set_breakdown(breakdown, channel_names=None)`` (names default to "channel 1", …);
``clear(message="")`` (nothing to show, e.g. "Click a position of the activation map"); ``rows()`` →
``[(channel, value, exp, p)]`` as the table shows them; ``probabilities()`` (the shown breakdown's, or
None); ``breakdown``. No signals. Public for tests: ``table``, ``text_label``, ``title_label``.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QProgressBar,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.explorer.text import percent_text
from cnn_explorer.core.lab import SoftmaxBreakdown
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.style import TITLE_STYLE

_BAR_STEPS = 1000
_HEADERS = ("channel", "value xᵢ", "e^xᵢ", "pᵢ = e^xᵢ / Σ", "")


class SoftmaxView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.breakdown: SoftmaxBreakdown | None = None

        self.title_label = QLabel("Softmax at one position")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.table = QTableWidget(0, len(_HEADERS))
        self.table.setHorizontalHeaderLabels(_HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        for col in range(len(_HEADERS) - 1):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(_HEADERS) - 1, QHeaderView.ResizeMode.Stretch)
        self.sum_label = QLabel()
        self.text_label = QLabel()
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setStyleSheet("color: #777; padding: 8px;")

        content = QWidget()
        inner = QVBoxLayout(content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.table, 1)
        inner.addWidget(self.sum_label)
        inner.addWidget(self.text_label)
        self.stack = QStackedWidget()
        self.stack.addWidget(content)
        self.stack.addWidget(self.message_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.title_label)
        layout.addWidget(self.stack, 1)
        self.clear("Click a position on a map to see softmax across its channels there.")

    # -- API --------------------------------------------------------------------------------------
    def set_breakdown(self, breakdown: SoftmaxBreakdown, channel_names: Sequence[str] | None = None) -> None:
        b = breakdown
        n = len(b.values)
        names = list(channel_names) if channel_names is not None else [f"channel {i + 1}" for i in range(n)]
        if len(names) != n:
            raise ValueError(f"{len(names)} channel name(s) for {n} channel(s)")
        self.breakdown = b
        self.title_label.setText(
            f"Softmax across {n} channel{'s' if n > 1 else ''} at row {b.row}, col {b.col}"
        )
        exp_header = f"e^(xᵢ − {format_number(b.shift)})" if b.shift else "e^xᵢ"
        self.table.setHorizontalHeaderItem(2, QTableWidgetItem(exp_header))
        self.table.setRowCount(n)
        for i in range(n):
            cells = (
                names[i],
                format_number(b.values[i]),
                format_number(b.exps[i]),
                format_number(b.probabilities[i], 4),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                align = Qt.AlignmentFlag.AlignLeft if col == 0 else Qt.AlignmentFlag.AlignRight
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, col, item)
            bar = self.table.cellWidget(i, 4)
            if not isinstance(bar, QProgressBar):
                bar = QProgressBar()
                bar.setRange(0, _BAR_STEPS)
                bar.setMaximumHeight(16)
                self.table.setCellWidget(i, 4, bar)
            p = float(b.probabilities[i])
            bar.setValue(round(p * _BAR_STEPS))
            bar.setFormat(percent_text(p))
        self.sum_label.setText(
            f"Σ e^xᵢ = {format_number(b.total)};  Σ pᵢ = {format_number(float(b.probabilities.sum()), 4)}"
        )
        self.text_label.setText(b.text)
        self.stack.setCurrentIndex(0)

    def clear(self, message: str = "") -> None:
        self.breakdown = None
        self.table.setRowCount(0)
        self.sum_label.clear()
        self.text_label.clear()
        self.message_label.setText(message)
        self.title_label.setText("Softmax at one position")
        self.stack.setCurrentIndex(1 if message else 0)

    def rows(self) -> list[tuple[str, str, str, str]]:
        out = []
        for i in range(self.table.rowCount()):
            texts = [self.table.item(i, col).text() for col in range(4)]
            out.append((texts[0], texts[1], texts[2], texts[3]))
        return out

    def probabilities(self) -> list[float] | None:
        return None if self.breakdown is None else [float(p) for p in self.breakdown.probabilities]

    def bar_values(self) -> list[float]:
        """The bars' lengths as fractions of the full bar (for tests)."""
        bars = [self.table.cellWidget(i, 4) for i in range(self.table.rowCount())]
        return [bar.value() / _BAR_STEPS for bar in bars if isinstance(bar, QProgressBar)]
