"""The backward view's kernel gradient: ∂L/∂W of one filter (one small matrix per input channel, as the
filter has one kernel per channel) and ∂L/∂b, with what they are: each tap's Σ over all output positions
of ∂L/∂z × the input value that tap saw there; the bias's, Σ ∂L/∂z."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.lab import LabGradients
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.pages.ops_lab.helpers import hint
from cnn_explorer.qt.widgets.number_grid import NumberGrid

MAX_SHOWN_CHANNELS = 3


class KernelGradientPanel(QGroupBox):
    """``show(gradients, filter_index, filter_name, channel_names)``; ``clear(message)``;
    ``matrices()`` (the numbers shown, channel by channel) and ``bias_text()`` for tests."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Kernel gradient ∂L/∂W, ∂L/∂b", parent)
        self.grids = [NumberGrid() for _ in range(MAX_SHOWN_CHANNELS)]
        self.bias_label = QLabel()
        self.bias_label.setStyleSheet("font-weight: 600;")
        self.note = hint()
        self.note.setText(
            "Each weight's: Σ over all output positions of ∂L/∂z × the input value it saw there. "
            "The SGD tab takes a step against it."
        )
        row = QHBoxLayout()
        row.setSpacing(10)
        for grid in self.grids:
            row.addWidget(grid)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.bias_label)
        layout.addWidget(self.note)
        layout.addStretch(1)
        self.clear("Switch on the backward view to see it.")

    def clear(self, message: str = "") -> None:
        for i, grid in enumerate(self.grids):
            grid.clear(message if i == 0 else "")
            grid.setVisible(i == 0)
        self.bias_label.setText("")

    def show(self, gradients: LabGradients, f: int, filter_name: str, channel_names: Sequence[str]) -> None:
        if gradients.d_weight is None or gradients.d_bias is None:
            self.clear("The convolution is off: no kernel, no kernel gradient.")
            return
        dw = np.asarray(gradients.d_weight)
        f = min(max(f, 0), dw.shape[0] - 1)
        channels = dw.shape[1]
        for c, grid in enumerate(self.grids):
            grid.setVisible(c < channels)
            if c < channels:
                name = channel_names[c] if c < len(channel_names) and channel_names[c] else ""
                title = f"∂L/∂W {filter_name}" + (f", {name}" if name else "")
                grid.set_matrix(dw[f, c], title=title)
        self.bias_label.setText(
            f"∂L/∂b ({filter_name}) = Σ ∂L/∂z = {format_number(float(gradients.d_bias[f]))}"
        )
        self.setMinimumHeight(self.sizeHint().height())  # the matrices are never squeezed

    def matrices(self) -> list[list[list[str]]]:
        return [grid.texts() for grid in self.grids if grid.isVisibleTo(self) and grid.matrix is not None]

    def bias_text(self) -> str:
        return self.bias_label.text()
