"""The Fine-tune page's LR finder tab (fastai's ``lr_find``, Smith 2015): an exponential sweep of the
learning rate with the current settings, the loss against it with the suggestion marked; a click on the
curve, or "Use the suggestion", fills in the learning-rate field.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from cnn_explorer.qt.style import SMALL_MUTED_STYLE
from cnn_explorer.qt.widgets.lr_plot import LRPlot

DEFAULT_STEPS = 100


class LRPanel(QWidget):
    """``plot`` (an :class:`LRPlot`), the Find button (``find_requested``), the number of steps and
    "Use the suggestion" (``use_requested``)."""

    find_requested = Signal()
    use_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.find_button = QPushButton("Find the learning rate")
        self.find_button.setToolTip(
            "Trains a throwaway copy of the model for a few steps while the learning rate grows from 1e-7 "
            "to 10, and stops when the loss diverges. The model, strategy and settings are the form's."
        )
        self.find_button.clicked.connect(lambda: self.find_requested.emit())
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(10, 1000)
        self.steps_spin.setValue(DEFAULT_STEPS)
        self.steps_spin.setSuffix(" steps")
        self.use_button = QPushButton("Use the suggestion")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(lambda: self.use_requested.emit())
        self.status = QLabel("Click a point of the curve to use its learning rate.")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(SMALL_MUTED_STYLE)
        self.plot = LRPlot()
        row = QHBoxLayout()
        row.addWidget(self.find_button)
        row.addWidget(self.steps_spin)
        row.addWidget(self.use_button)
        row.addWidget(self.status, 1)
        v = QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        v.addLayout(row)
        v.addWidget(self.plot, 1)
