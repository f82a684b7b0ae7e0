"""The Fine-tune page's "watch it learn" row: the watched image (the current image unless the user picks
another, or a validation image), and after every epoch of a run its Grad-CAM and top prediction under
that epoch's weights, one small map per epoch (the training process computes them).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.qt.style import SMALL_MUTED_STYLE
from cnn_explorer.qt.widgets.watch_strip import WatchStrip


class WatchPanel(QWidget):
    choose_requested = Signal()  # a file dialog
    dataset_image_requested = Signal()  # a validation image of the dataset

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.strip = WatchStrip()
        self.image_label = QLabel("")  # why the watched image cannot be shown, if it cannot
        self.image_label.setStyleSheet(SMALL_MUTED_STYLE)
        self.choose_button = QPushButton("Other image…")
        self.choose_button.setToolTip("Watch another image file (by default: the app's current image)")
        self.choose_button.clicked.connect(lambda: self.choose_requested.emit())
        self.dataset_button = QPushButton("A validation image")
        self.dataset_button.setToolTip(
            "Watch an image of the dataset's validation split (its class is known)"
        )
        self.dataset_button.clicked.connect(lambda: self.dataset_image_requested.emit())
        row = self.strip.header_layout
        row.addWidget(self.image_label)
        row.addWidget(self.dataset_button)
        row.addWidget(self.choose_button)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.strip)

    def set_enabled_choices(self, dataset: bool, training: bool) -> None:
        self.dataset_button.setEnabled(dataset and not training)
        self.choose_button.setEnabled(not training)
