"""The Fine-tune page's left column: the three choices a user makes, top to bottom, and the run buttons.

The dataset box, then the model, strategy and hyper-parameters (``TrainingSettingsForm``, with the
course's recommendation) in a scroll area, and under them "Run on several GPUs…" (:class:`LaunchPanel`,
closed at first): the command lines that train the same settings with ``torchrun``. Start / Pause / Stop
stay pinned below. The reactions live in :class:`~cnn_explorer.qt.pages.finetune.training.TrainingBinding`.
"""

from __future__ import annotations

import math

import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.launch import LaunchCommands
from cnn_explorer.qt.pages.base import form_scroll
from cnn_explorer.qt.pages.finetune.dataset_panel import DatasetPanel
from cnn_explorer.qt.style import SMALL_MUTED_STYLE
from cnn_explorer.qt.widgets.training_settings import TrainingSettingsForm

WIDTH = 350
COMMAND_LINES = (2, 10)  # a command's box fits its text, within these many lines (a longer one scrolls)


class LaunchPanel(QWidget):
    """A "Run on several GPUs…" button that opens (in place, no dialog) the command lines for the form's
    settings: every GPU of this machine, two machines, one process. Each has a line on what it is for, a
    read-only box to select it from and a Copy button. ``open_changed(bool)`` asks for fresh commands;
    ``gpus`` is the number of CUDA GPUs here (told, not asked for again)."""

    open_changed = Signal(bool)
    KINDS = ("local", "multi_node", "single")

    def __init__(self, gpus: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gpus = torch.cuda.device_count() if gpus is None else int(gpus)
        self.toggle = QToolButton()
        self.toggle.setText("Run on several GPUs…")
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolTip(
            "The commands that train these settings on several GPUs or machines (torchrun)"
        )
        self.toggle.toggled.connect(self._on_toggled)

        self.body = QWidget()
        v = QVBoxLayout(self.body)
        v.setContentsMargins(4, 0, 0, 0)
        v.setSpacing(3)
        self.machine_label = self._note(self._machine_text())
        v.addWidget(self.machine_label)
        self.error_label = self._note("")
        self.error_label.setStyleSheet("color: #b00020; font-size: 11px;")
        v.addWidget(self.error_label)
        self.captions: dict[str, QLabel] = {}
        self.boxes: dict[str, QPlainTextEdit] = {}
        self.copy_buttons: dict[str, QPushButton] = {}
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(max(7.0, mono.pointSizeF() - 1))
        for kind in self.KINDS:
            caption = self.captions[kind] = self._note("")
            caption.setStyleSheet("font-size: 11px; font-weight: 600;")
            copy = self.copy_buttons[kind] = QPushButton("Copy")
            copy.setToolTip("Copy this command to the clipboard")
            copy.clicked.connect(lambda _checked=False, kind=kind: self.copy(kind))
            row = QHBoxLayout()
            row.addWidget(caption, 1)
            row.addWidget(copy, 0, Qt.AlignmentFlag.AlignBottom)
            v.addLayout(row)
            box = self.boxes[kind] = QPlainTextEdit()
            box.setReadOnly(True)
            box.setFont(mono)
            box.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
            box.setWordWrapMode(box.wordWrapMode().WrapAtWordBoundaryOrAnywhere)
            box.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            v.addWidget(box)
            if kind == "multi_node":
                self.multi_node_note = self._note("")
                v.addWidget(self.multi_node_note)
        self.body.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)

    @staticmethod
    def _note(text: str) -> QLabel:
        label = QLabel(text)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setWordWrap(True)
        label.setStyleSheet(SMALL_MUTED_STYLE)
        return label

    def _machine_text(self) -> str:
        if self.gpus > 1:
            return f"This machine has {self.gpus} GPUs: launch the command below to train on all of them."
        has = "one GPU" if self.gpus == 1 else "no CUDA GPU"
        return (
            f"This machine has {has}: these commands are for a machine with several GPUs (set "
            "--nproc_per_node to their number), with the dataset at the same path."
        )

    def _on_toggled(self, opened: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if opened else Qt.ArrowType.RightArrow)
        self.body.setVisible(opened)
        self.open_changed.emit(opened)

    # -- the page's side --------------------------------------------------------------------------
    def is_open(self) -> bool:
        return self.toggle.isChecked()

    def set_open(self, opened: bool) -> None:
        self.toggle.setChecked(opened)

    def show_commands(self, commands: LaunchCommands) -> None:
        n = commands.nproc_per_node
        gpus = f"this machine's {n} GPUs" if self.gpus > 1 else f"a machine with {n} GPUs"
        captions = {
            "local": f"On {gpus}: one training process per GPU, each with a share of every batch",
            "multi_node": f"On two machines with {n} GPUs each: run it on both",
            "single": "In a terminal, one process: what ▶ Start runs here",
        }
        for kind in self.KINDS:
            self.captions[kind].setText(captions[kind])
            self.boxes[kind].setPlainText(getattr(commands, kind))
            self._fit(self.boxes[kind])
            self.boxes[kind].setEnabled(True)
            self.copy_buttons[kind].setEnabled(True)
        self.multi_node_note.setText(commands.multi_node_note)
        self.error_label.setVisible(False)

    @staticmethod
    def _fit(box: QPlainTextEdit) -> None:
        """About as tall as its wrapped text (the font is monospaced: a line holds a known count)."""
        width = box.viewport().width() if box.isVisible() else WIDTH - 40
        per_line = max(10, width // max(1, box.fontMetrics().horizontalAdvance("x")))
        text = box.toPlainText()
        lines = math.ceil(len(text) / per_line) + 1  # + 1: wrapping at spaces leaves lines short
        lines = min(max(lines, COMMAND_LINES[0]), COMMAND_LINES[1])
        box.setFixedHeight(box.fontMetrics().lineSpacing() * lines + 2 * box.frameWidth() + 8)

    def show_error(self, message: str) -> None:
        """The form's settings are not valid: say why instead of showing stale commands."""
        self.error_label.setText(message)
        self.error_label.setVisible(True)
        for kind in self.KINDS:
            self.boxes[kind].setEnabled(False)
            self.copy_buttons[kind].setEnabled(False)

    def command(self, kind: str) -> str:
        return self.boxes[kind].toPlainText()

    def copy(self, kind: str) -> None:
        QGuiApplication.clipboard().setText(self.command(kind))


class TrainingPanel(QWidget):
    """``dataset`` (a :class:`DatasetPanel`), ``form`` and the Start / Pause / Stop buttons, which emit
    ``start_requested``, ``pause_requested`` and ``stop_requested``."""

    start_requested = Signal()
    pause_requested = Signal()
    stop_requested = Signal()
    launch_refresh_requested = Signal()  # the launch commands may be out of date

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(0, 0, 4, 0)
        self.dataset = DatasetPanel()
        col.addWidget(self.dataset)
        self.form = TrainingSettingsForm()
        col.addWidget(self.form)
        self.launch = LaunchPanel()
        col.addWidget(self.launch)
        col.addStretch(1)
        for signal in (self.form.changed, self.launch.open_changed, self.dataset.folder_edit.textChanged):
            signal.connect(lambda *_: self.launch_refresh_requested.emit())
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
