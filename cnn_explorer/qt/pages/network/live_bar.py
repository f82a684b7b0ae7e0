"""The explorer's live box, under the layer list: where the frames come from (a camera by index, or a
video file), Live, Pause, Snapshot, "Use in lab" and Stop, the fps / latency / dropped line, and one
inline message (no camera, a file that cannot be decoded, the video ended). The box only shows and asks;
the page's :class:`LiveInput` decides."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QWidget,
)

from cnn_explorer.qt import style

CAMERA, FILE = "camera", "file"
MAX_CAMERA_INDEX = 9


class LiveBar(QWidget):
    start_clicked = Signal(object)  # a camera index (int), or None: choose a video file
    pause_clicked = Signal()
    snapshot_clicked = Signal()
    lab_clicked = Signal()
    stop_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title_label = QLabel("Live")
        self.title_label.setStyleSheet(style.TITLE_STYLE)
        self.title_label.setToolTip(
            "Run the model on a camera or a video, frame after frame: the newest frame is taken whenever the "
            "model is free, so what you see lags by at most one pass"
        )
        self.source_combo = QComboBox()
        self.source_combo.addItem("Camera", CAMERA)
        self.source_combo.addItem("Video file…", FILE)
        self.source_combo.setToolTip("The default camera (or another, by its index), or a video file")
        self.camera_spin = QSpinBox()
        self.camera_spin.setRange(0, MAX_CAMERA_INDEX)
        self.camera_spin.setPrefix("index ")
        self.camera_spin.setToolTip("Which camera: 0 is the default one")
        self.live_button = QPushButton("▶ Live")
        self.live_button.setToolTip("Start: the current layer, channel, top-5 and Grad-CAM follow the frames")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Freeze the frame on screen into an ordinary still, to explore it")
        self.snapshot_button = QPushButton("Snapshot")
        self.snapshot_button.setToolTip("Save the frame on screen as a PNG")
        self.lab_button = QPushButton("Use in lab")
        self.lab_button.setToolTip(
            "Freeze the frame and open it in the Operations lab (grayscale, at the lab's working size)"
        )
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop live: the explorer shows its still picture again")
        self.stats_label = QLabel()
        self.stats_label.setWordWrap(True)
        self.stats_label.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.stats_label.setToolTip(
            "Frames painted per second; latency from the frame's capture to its maps on screen (median, "
            "95th percentile); frames dropped because a newer one came before the model was free"
        )
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet(style.NOTICE_STYLE)
        self.message_label.setVisible(False)
        # Under the layer list (as the digit pad): its height comes from the list, not from the maps.
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 6, 0, 0)
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(3)
        top = QHBoxLayout()
        top.setSpacing(4)
        top.addWidget(self.title_label)
        top.addWidget(self.source_combo, 1)
        top.addWidget(self.camera_spin)
        grid.addLayout(top, 0, 0, 1, 3)
        grid.addWidget(self.live_button, 1, 0)
        grid.addWidget(self.pause_button, 1, 1)
        grid.addWidget(self.stop_button, 1, 2)
        grid.addWidget(self.snapshot_button, 2, 0)
        grid.addWidget(self.lab_button, 2, 1, 1, 2)
        grid.addWidget(self.stats_label, 3, 0, 1, 3)
        grid.addWidget(self.message_label, 4, 0, 1, 3)
        for button in (
            self.live_button,
            self.pause_button,
            self.stop_button,
            self.snapshot_button,
            self.lab_button,
        ):
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            button.setMinimumWidth(40)

        self.source_combo.currentIndexChanged.connect(self._on_source)
        self.live_button.clicked.connect(self._on_live)
        self.pause_button.clicked.connect(self.pause_clicked)
        self.snapshot_button.clicked.connect(self.snapshot_clicked)
        self.lab_button.clicked.connect(self.lab_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.set_state(running=False, has_frame=False)

    # -- what the page shows -------------------------------------------------------------------------
    def set_state(self, *, running: bool, has_frame: bool, opening: bool = False) -> None:
        """Which buttons act now: Live when stopped, the others while frames come (or one is on screen)."""
        self.live_button.setEnabled(not running and not opening)
        self.source_combo.setEnabled(not running and not opening)
        self.camera_spin.setEnabled(not running and not opening)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running or opening)
        self.snapshot_button.setEnabled(has_frame)
        self.lab_button.setEnabled(has_frame)
        if not running:
            self.stats_label.setText("")

    def show_source(self, camera: int | None) -> None:
        """The choice as it is playing: camera ``camera``, or (None) a file."""
        self.source_combo.setCurrentIndex(self.source_combo.findData(CAMERA if camera is not None else FILE))
        if camera is not None:
            self.camera_spin.setValue(camera)

    def show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    @property
    def message(self) -> str:
        return self.message_label.text() if self.message_label.isVisible() else ""

    def show_stats(self, text: str) -> None:
        self.stats_label.setText(text)

    # -- internals -----------------------------------------------------------------------------------
    def _on_source(self) -> None:
        self.camera_spin.setVisible(self.source_combo.currentData() == CAMERA)

    def _on_live(self) -> None:
        if self.source_combo.currentData() == CAMERA:
            self.start_clicked.emit(self.camera_spin.value())
        else:
            self.start_clicked.emit(None)
