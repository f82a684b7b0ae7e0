"""The explorer's model bar: the picker (each entry says where its weights would come from), the loaded
model's weights badge and line, "Open model file…", "Compare with…", and progress with Cancel."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QWidget,
)

from cnn_explorer.core.explorer.text import Badge, PickerStatus
from cnn_explorer.qt import style


def dot_icon(colour: str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pix)


class ModelBar(QWidget):
    """One side's model bar. Keys are the session's ``ModelSource.key`` strings."""

    source_chosen = Signal(str)
    open_file_clicked = Signal()
    cancel_clicked = Signal()
    compare_clicked = Signal()
    export_clicked = Signal()
    close_clicked = Signal()

    def __init__(self, title: str = "Model", *, side_b: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        self.title_label = QLabel(title)
        self.title_label.setStyleSheet(style.TITLE_STYLE)
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(250)
        self.model_combo.setMaxVisibleItems(20)
        self.model_combo.setIconSize(QSize(12, 12))
        self.model_combo.setToolTip("The network to explore; each entry says where its weights come from")
        self.badge = QLabel()
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.weights_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.open_button = QPushButton("Open model file…")
        self.open_button.setToolTip(
            "A fine-tuned checkpoint, a TorchScript file or a state_dict (.pt, .pth, .safetensors)"
        )
        # While work runs, its progress takes the place of the weights text (which is about to change).
        self.stage_label = QLabel()
        self.stage_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(140)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop loading or computing")
        busy = QWidget()
        busy_row = QHBoxLayout(busy)
        busy_row.setContentsMargins(0, 0, 0, 0)
        busy_row.setSpacing(8)
        busy_row.addWidget(self.stage_label, 1)
        busy_row.addWidget(self.progress)
        busy_row.addWidget(self.cancel_button)
        self._show_busy = QTimer(self)
        self._show_busy.setSingleShot(True)
        self._show_busy.timeout.connect(self._show_pending_busy)
        self._pending_text = ""
        self.status_stack = QStackedWidget()
        self.status_stack.addWidget(self.weights_label)
        self.status_stack.addWidget(busy)
        self.status_stack.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.compare_button = QPushButton("Close B" if side_b else "Compare with…")
        self.compare_button.setToolTip(
            "Stop comparing: show model A alone"
            if side_b
            else "Open a second model beside this one on the same picture, layer by layer (A | B)"
        )
        row.addWidget(self.title_label)
        row.addWidget(self.model_combo)
        row.addWidget(self.badge)
        row.addWidget(self.status_stack, 1)
        row.addWidget(self.open_button)
        if not side_b:
            self.export_button = QPushButton("Export…")
            self.export_button.setToolTip(
                "Save this model as ONNX, TorchScript or safetensors, checked against the app's own numbers"
            )
            self.export_button.clicked.connect(self.export_clicked)
            row.addWidget(self.export_button)
        row.addWidget(self.compare_button)

        self.model_combo.currentIndexChanged.connect(self._on_index)
        self.open_button.clicked.connect(self.open_file_clicked)
        self.cancel_button.clicked.connect(self.cancel_clicked)
        self.compare_button.clicked.connect(self.close_clicked if side_b else self.compare_clicked)

    # -- the picker ---------------------------------------------------------------------------------
    def add_zoo_entry(self, key: str, title: str, status: PickerStatus, tooltip: str) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.addItem(
            dot_icon(style.PICKER_DOTS[status.value]), f"{title}  ·  {status.value}", key
        )
        self.model_combo.setItemData(self.model_combo.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)
        self.model_combo.blockSignals(False)

    def set_entry(self, key: str, label: str, status: PickerStatus, tooltip: str) -> None:
        """After a load the picker says what really happened (e.g. the download failed: untrained)."""
        index = self.model_combo.findData(key)
        if index >= 0:
            self.model_combo.setItemText(index, f"{label}  ·  {status.value}")
            self.model_combo.setItemIcon(index, dot_icon(style.PICKER_DOTS[status.value]))
            self.model_combo.setItemData(index, tooltip, Qt.ItemDataRole.ToolTipRole)

    def add_file_entry(self, key: str, label: str, tooltip: str) -> None:
        index = self.model_combo.findData(key)
        self.model_combo.blockSignals(True)
        if index < 0:
            self.model_combo.insertSeparator(self.model_combo.count())
            self.model_combo.addItem(dot_icon(style.FILE_DOT), "", key)
            index = self.model_combo.count() - 1
        self.model_combo.setItemText(index, f"{label}  ·  your weights")
        self.model_combo.setItemData(index, tooltip, Qt.ItemDataRole.ToolTipRole)
        self.model_combo.blockSignals(False)

    def select(self, key: str | None) -> None:
        """Show ``key`` as chosen without announcing it (the session already knows)."""
        index = self.model_combo.findData(key) if key is not None else -1
        if index >= 0 and index != self.model_combo.currentIndex():
            self.model_combo.blockSignals(True)
            self.model_combo.setCurrentIndex(index)
            self.model_combo.blockSignals(False)

    @property
    def current_key(self) -> str | None:
        data = self.model_combo.currentData()
        return str(data) if data is not None else None

    def _on_index(self, index: int) -> None:
        key = self.model_combo.itemData(index)
        if key is not None:
            self.source_chosen.emit(str(key))

    # -- status ---------------------------------------------------------------------------------------
    def show_badge(self, badge: Badge | None) -> None:
        if badge is None:
            self.badge.setText("")
            self.badge.setStyleSheet("")
            self.weights_label.setText("")
            return
        self.badge.setText(badge.text)
        self.badge.setStyleSheet(style.badge_style(badge.kind))
        self.badge.setToolTip(badge.detail)
        self.weights_label.setText(badge.detail)
        self.weights_label.setToolTip(badge.detail)

    def set_busy(self, busy: bool, text: str = "", *, delay_ms: int = 0) -> None:
        """Show (or hide) the progress row. ``delay_ms``: show it only if still busy by then, so a job that
        is over in a blink (the same model on the next reading of a drawn digit) does not flash it."""
        self._show_busy.stop()
        if busy and delay_ms > 0 and self.status_stack.currentIndex() == 0:
            self._pending_text = text or self._pending_text
            self._show_busy.start(delay_ms)
            return
        self.status_stack.setCurrentIndex(1 if busy else 0)
        if busy:
            if text:
                self.stage_label.setText(text)
            if self.progress.maximum() != 0:
                self.progress.setRange(0, 0)

    def _show_pending_busy(self) -> None:
        text, self._pending_text = self._pending_text, ""
        self.set_busy(True, text)

    def show_stage(self, text: str) -> None:
        self.stage_label.setText(text)
        self.progress.setRange(0, 0)

    def show_download(self, done_bytes: int, total_bytes: int | None) -> None:
        done = done_bytes / 2**20
        if total_bytes:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done_bytes / total_bytes))
            self.stage_label.setText(f"Downloading weights: {done:.1f} of {total_bytes / 2**20:.1f} MB")
        else:
            self.progress.setRange(0, 0)
            self.stage_label.setText(f"Downloading weights: {done:.1f} MB")
