"""The Fine-tune page's left column: the three choices a user makes, top to bottom, and the run buttons.

The dataset box, then the model, strategy and hyper-parameters (``TrainingSettingsForm``, with the
course's recommendation) in a scroll area; Start / Pause / Stop stay pinned below it. The reactions to
the buttons live in :class:`~cnn_explorer.qt.pages.finetune.training.TrainingBinding`.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.qt.pages.base import form_scroll
from cnn_explorer.qt.pages.finetune.dataset_panel import DatasetPanel
from cnn_explorer.qt.widgets.training_settings import TrainingSettingsForm

WIDTH = 350


class TrainingPanel(QWidget):
    """``dataset`` (a :class:`DatasetPanel`), ``form`` and the Start / Pause / Stop buttons, which emit
    ``start_requested``, ``pause_requested`` and ``stop_requested``."""

    start_requested = Signal()
    pause_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(0, 0, 4, 0)
        self.dataset = DatasetPanel()
        col.addWidget(self.dataset)
        self.form = TrainingSettingsForm()
        col.addWidget(self.form)
        col.addStretch(1)
        scroll = form_scroll(content)

        self.start_button = QPushButton("▶ Start")
        self.start_button.setToolTip("Train a new run with these settings (saved in the runs folder)")
        self.start_button.setStyleSheet("font-weight: 600; padding: 6px;")
        self.start_button.clicked.connect(lambda: self.start_requested.emit())
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Hold training after the current step; Resume continues it")
        self.pause_button.clicked.connect(lambda: self.pause_requested.emit())
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setToolTip("Stop after the current step; last.pt is kept and the run can be resumed")
        self.stop_button.clicked.connect(lambda: self.stop_requested.emit())
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 2)
        buttons.addWidget(self.pause_button, 1)
        buttons.addWidget(self.stop_button, 1)

        self.setFixedWidth(WIDTH)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(scroll, 1)
        v.addLayout(buttons)

    def set_running(self, training: bool, stopping: bool, startable: bool) -> None:
        """Enable the buttons for the state: Start when idle with a usable dataset, Pause and Stop while
        a run trains and is not already stopping."""
        self.start_button.setEnabled(not training and startable)
        self.pause_button.setEnabled(training and not stopping)
        self.stop_button.setEnabled(training and not stopping)
