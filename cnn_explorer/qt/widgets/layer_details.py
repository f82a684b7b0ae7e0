"""One layer's facts written out with its numbers: window, shapes, the output-size formula, parameters,
multiply-adds, receptive field and the memory its captured output takes.

``LayerDetails(parent=None)``: ``set_layer(row, facts=None, activation=None, children=0)`` with a core
``LayerRow`` (the numbers) and its ``LayerFacts`` (the parameter breakdown, written out in core);
``clear(message)``; ``plain_text()`` gives what is shown, for tests. The texts come from core's
``params_text`` and the pure function ``macs_text(row)``.

Stepping through layers, the table grows to the tallest one shown and does not shrink back (until
``clear``): the panels below it stay put instead of being moved, re-laid out and repainted every step.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from cnn_explorer.core.explorer.layer_facts import LayerFacts, memory_text, params_text
from cnn_explorer.core.explorer.text import shape_text, short_number
from cnn_explorer.core.features import Activation
from cnn_explorer.core.layers import LayerRow


def _with_short(n: int) -> str:
    return f"{n:,}" + (f" ({short_number(n)})" if n >= 10_000 else "")


def macs_text(row: LayerRow) -> str:
    """Multiply-adds per image, e.g. "28·28 positions · 6 filters · 1·5·5 = 117,600"."""
    if row.macs == 0:
        return "none"
    if row.kind == "block":
        return f"{_with_short(row.macs)}, the sum over its layers"
    if row.type.startswith("Conv") and row.kernel and len(row.out_shape) == 3 and len(row.in_shape) == 3:
        c_out, h, w = row.out_shape
        per = row.in_shape[0] // (row.groups or 1)
        kh, kw = row.kernel
        if h * w * c_out * per * kh * kw == row.macs:
            return f"{h}·{w} positions · {c_out} filters · {per}·{kh}·{kw} = {_with_short(row.macs)}"
    if row.type == "Linear" and row.in_shape and row.out_shape:
        n_in, n_out = row.in_shape[-1], row.out_shape[-1]
        if n_in * n_out * math.prod(row.out_shape[:-1]) == row.macs:
            return f"{n_out} outputs · {n_in} inputs = {_with_short(row.macs)}"
    return _with_short(row.macs)


def _rf_text(row: LayerRow) -> str:
    if row.rf_size is None:
        return "the whole input (the spatial layout is gone)"
    jump = row.rf_jump or (1, 1)
    step = f"{jump[0]}" if jump[0] == jump[1] else f"{jump[0]}×{jump[1]}"
    size = f"{row.rf_size[0]}×{row.rf_size[1]}"
    return f"{size} px of the input; neighbouring units {step} px apart"


# Every name the table's first column can show: the column is as wide as the widest, so that stepping
# to a layer with another set of rows does not move and repaint every label in the table.
KEYS = (
    "Type",
    "At inference",
    "Window",
    "Shape",
    "Output size",
    "Output height",
    "Output width",
    "Parameters",
    "Multiply-adds",
    "Receptive field",
    "Output in memory",
)


class LayerDetails(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # A grid of plain-text labels, not one rich-text table: laying out a rich-text table again at
        # every step through the layers cost several milliseconds of the GUI thread.
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(8)
        self._grid.setVerticalSpacing(2)
        self._grid.setColumnStretch(1, 1)
        # The rows at the top, in their own heights: the room the table keeps (see the docstring) stays
        # empty below them instead of being shared out, which moved every row whenever their number changed.
        self._grid.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._grid.setColumnMinimumWidth(0, max(self.fontMetrics().horizontalAdvance(k) for k in KEYS) + 2)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #777; font-style: italic;")
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._grid.addWidget(self.message_label, 0, 0, 1, 2)
        self._pairs: list[tuple[QLabel, QLabel]] = []
        self._rows: list[tuple[str, str]] = []

    def _pair(self, i: int) -> tuple[QLabel, QLabel]:
        while len(self._pairs) <= i:
            key = QLabel()
            key.setStyleSheet("color: #666;")
            key.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            value = QLabel()
            value.setWordWrap(True)
            value.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            row = len(self._pairs) + 1
            self._grid.addWidget(key, row, 0)
            self._grid.addWidget(value, row, 1)
            self._pairs.append((key, value))
        return self._pairs[i]

    def _show_rows(self, rows: list[tuple[str, str]]) -> None:
        self._rows = rows
        for i, (k, v) in enumerate(rows):
            key, value = self._pair(i)
            key.setText(k)  # (QLabel skips a text it already shows)
            value.setText(v)
            key.setVisible(True)
            value.setVisible(True)
        for key, value in self._pairs[len(rows) :]:
            key.setVisible(False)
            value.setVisible(False)

    def clear(self, message: str = "") -> None:
        self.setMinimumHeight(0)
        self._show_rows([])
        self.message_label.setText(message)
        self.message_label.setVisible(True)

    def set_layer(
        self,
        row: LayerRow,
        facts: LayerFacts | None = None,
        activation: Activation | None = None,
        children: int = 0,
    ) -> None:
        rows: list[tuple[str, str]] = []
        kind = f"block of {children} layers" if row.kind == "block" and children else row.kind
        rows.append(("Type", f"{row.type} ({kind})"))
        if row.inactive:
            rows.append(("At inference", f"inactive: passes its input through unchanged; {row.inactive}"))
        if row.geometry_text():
            rows.append(("Window", row.geometry_text()))
        rows.append(("Shape", f"{shape_text(row.in_shape)} → {shape_text(row.out_shape)}"))
        arithmetic = row.shape_arithmetic()
        if arithmetic:
            for line in arithmetic.splitlines():
                label, _, formula = line.rpartition(": ")
                rows.append((f"Output {label}" if label else "Output size", formula))
        rows.append(("Parameters", facts.params_text if facts is not None else params_text(row)))
        rows.append(("Multiply-adds", macs_text(row)))
        rows.append(("Receptive field", _rf_text(row)))
        if activation is not None:
            size = memory_text(activation.nbytes)
            kept = "too large to keep: not captured" if activation.too_large else "kept as float16"
            rows.append(("Output in memory", f"{size}, {kept}"))
        if self.isVisible():  # grow, never shrink (see the module's docstring)
            self.setMinimumHeight(max(self.minimumHeight(), self.height()))
        self.message_label.setVisible(False)
        self._show_rows(rows)

    def resizeEvent(self, event: QResizeEvent) -> None:
        # Another width wraps the text differently: measure the tallest again from the current layer.
        if event.oldSize().width() != event.size().width():
            self.setMinimumHeight(0)
        super().resizeEvent(event)

    def plain_text(self) -> str:
        return "\n".join(f"{k}: {v}" for k, v in self._rows)
