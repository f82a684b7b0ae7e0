"""The Fine-tune page's History tab: the runs folder (Change…, Refresh) over the table of earlier runs.

Reading the folder, showing and resuming a run are the page's
(:class:`~cnn_explorer.qt.pages.finetune.runs.RunsBinding` and
:class:`~cnn_explorer.qt.pages.finetune.training.TrainingBinding`); the panel only emits what was asked.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.qt.widgets.run_history import RunHistoryView


class HistoryPanel(QWidget):
    """``runs_folder_edit`` with Change… (``change_folder_requested``) and Refresh
    (``refresh_requested``) above ``history``, a :class:`RunHistoryView` whose ``show_requested(path)``
    and ``resume_requested(path, epochs)`` the panel passes on."""

    change_folder_requested = Signal()
    refresh_requested = Signal()
    show_requested = Signal(str)
    resume_requested = Signal(str, int)

    def __init__(self, runs_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_folder_edit = QLineEdit(str(runs_folder))
        self.runs_folder_edit.setReadOnly(True)
        self.runs_folder_button = QPushButton("Change…")
        self.runs_folder_button.clicked.connect(lambda: self.change_folder_requested.emit())
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda: self.refresh_requested.emit())
        row = QHBoxLayout()
        row.addWidget(QLabel("Runs folder"))
        row.addWidget(self.runs_folder_edit, 1)
        row.addWidget(self.runs_folder_button)
        row.addWidget(self.refresh_button)
        self.history = RunHistoryView()
        self.history.show_requested.connect(self.show_requested)
        self.history.resume_requested.connect(self.resume_requested)
        v = QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        v.addLayout(row)
        v.addWidget(self.history, 1)

    def set_folder(self, folder: Path) -> None:
        """Show ``folder`` and empty the table until its runs are read."""
        self.runs_folder_edit.setText(str(folder))
        self.history.set_runs([])

    def set_locked(self, locked: bool) -> None:
        """While a run trains: no other folder, no Show or Resume of another run."""
        self.runs_folder_button.setEnabled(not locked)
        self.history.set_locked(locked)
