"""The Operations lab's step-mode box: Back / Step / Play with its speed, the current output position,
the patch × kernel = products → sum + bias (→ activation) sheet, and the map options (window on maps,
numbers in small maps, colours). It owns the play timer; which position is shown is the page's."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.ops import ConvStep
from cnn_explorer.qt.pages.ops_lab.helpers import COLOUR_CHOICES, combo
from cnn_explorer.qt.widgets.conv_step_view import ConvStepView


class StepPanel(QGroupBox):
    step_requested = Signal(int)  # -1 (Back) or +1 (Step)
    play_started = Signal()  # Play was pressed: the page rewinds first if it is at the end
    tick = Signal()  # while playing, time for the next position
    window_toggled = Signal(bool)  # "Show window on maps"
    numbers_toggled = Signal(bool)  # "Numbers in small maps"
    colours_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Step through the convolution", parent)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self.tick)
        self.back_button = QPushButton("◀ Back")
        self.step_button = QPushButton("Step ▶")
        self.play_button = QPushButton("▶ Play")
        self.play_button.setCheckable(True)
        for button, tip in (
            (self.back_button, "Move the window one position back"),
            (self.step_button, "Move the window to the next output position"),
            (self.play_button, "Slide the window automatically"),
        ):
            button.setToolTip(tip)
        self.speed_slider = QSlider(Qt.Orientation.Horizontal)
        self.speed_slider.setRange(1, 30)
        self.speed_slider.setValue(4)
        self.speed_slider.setFixedWidth(110)
        self.speed_slider.setToolTip("Play speed: output positions per second")
        self.speed_label = QLabel()
        self.highlight_check = QCheckBox("Show window on maps")
        self.highlight_check.setChecked(True)
        self.numbers_check = QCheckBox("Numbers in small maps")
        self.numbers_check.setChecked(True)
        self.colour_combo = combo()
        self.colour_combo.addItems(COLOUR_CHOICES)
        self.colour_combo.setToolTip(
            "Colour map for the maps (auto: blue–white–red when values can be negative)"
        )
        self.position_label = QLabel()
        self.position_label.setStyleSheet("font-weight: 600;")
        self.position_label.setMinimumWidth(60)
        self.position_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.step_view = ConvStepView()

        controls = QHBoxLayout()
        controls.setSpacing(6)
        for w in (self.back_button, self.step_button, self.play_button, self.speed_slider, self.speed_label):
            controls.addWidget(w)
        controls.addSpacing(12)
        controls.addWidget(self.position_label, 1)
        options = QHBoxLayout()
        options.setSpacing(10)
        options.addWidget(self.highlight_check)
        options.addWidget(self.numbers_check)
        options.addStretch(1)
        options.addWidget(QLabel("Colours"))
        options.addWidget(self.colour_combo)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.step_view, 1)
        layout.addLayout(options)

        self.back_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.step_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.play_button.toggled.connect(self._on_play_toggled)
        self.speed_slider.valueChanged.connect(self._on_speed)
        self.highlight_check.toggled.connect(self.window_toggled)
        self.numbers_check.toggled.connect(self.numbers_toggled)
        self.colour_combo.currentIndexChanged.connect(lambda _i: self.colours_changed.emit())
        self._on_speed(self.speed_slider.value())

    # -- what the page reads and sets -------------------------------------------------------------
    def colour_choice(self) -> str:
        return self.colour_combo.currentText()

    def window_shown(self) -> bool:
        return self.highlight_check.isChecked()

    def stop_playing(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def show_nothing(self) -> None:
        for w in (self.back_button, self.step_button, self.play_button):
            w.setEnabled(False)
        self.position_label.setText("")
        self.step_view.set_step(None, message="Nothing to step through yet.")

    def show_step(
        self,
        step: ConvStep,
        index: int,
        count: int,
        channel_names: list[str] | None,
        activation: str | None,
        activated: float,
    ) -> None:
        """Position ``index`` of ``count``: the buttons that can move, the position, and the sheet."""
        self.play_button.setEnabled(count > 0)
        self.back_button.setEnabled(index > 0)
        self.step_button.setEnabled(index < count - 1)
        self.position_label.setText(
            f"Output row {step.out_row}, col {step.out_col} — position {index + 1} of {count}"
        )
        self.step_view.set_step(step, channel_names=channel_names, activation=activation, activated=activated)

    # -- playing ----------------------------------------------------------------------------------
    @Slot(bool)
    def _on_play_toggled(self, playing: bool) -> None:
        self.play_button.setText("⏸ Pause" if playing else "▶ Play")
        if playing:
            self.play_started.emit()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    @Slot(int)
    def _on_speed(self, per_second: int) -> None:
        self._play_timer.setInterval(int(1000 / per_second))
        self.speed_label.setText(f"{per_second}/s")
