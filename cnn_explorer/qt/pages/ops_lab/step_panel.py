"""The Operations lab's step-mode box: what to step through (the convolution, the pooling, or the backward
pass into the convolution's input), which map (filter or channel), Back / Step / Play with its speed, the
current position, and the sheet (patch × kernel = products → sum + bias (→ activation); the pooling
window → max/mean/sum; upstream ∂L/∂z × flipped kernel → ∂L/∂x). It owns the play timer; which position
is shown is the page's."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.lab import PoolStep
from cnn_explorer.core.ops import ConvStep
from cnn_explorer.qt.pages.ops_lab.helpers import combo
from cnn_explorer.qt.pages.ops_lab.pool_step_view import PoolStepView
from cnn_explorer.qt.widgets.conv_step_view import ConvStepView

STEP_MODES = (
    ("the convolution", "conv"),
    ("the pooling", "pool"),
    ("backward: ∂L/∂x", "backward"),
)
BACKWARD_HEADINGS = ("upstream ∂L/∂z", "flipped kernel", "products")


class StepPanel(QGroupBox):
    step_requested = Signal(int)  # -1 (Back) or +1 (Step)
    play_started = Signal()  # Play was pressed: the page rewinds first if it is at the end
    tick = Signal()  # while playing, time for the next position
    mode_changed = Signal(str)  # "conv" | "pool" | "backward"
    channel_changed = Signal(int)  # the map stepped through: a filter's, or a channel's

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode_combo = combo()
        for text, key in STEP_MODES:
            self.mode_combo.addItem(text, key)
        self.mode_combo.setToolTip("What the window walks over: a stage forward, or the gradient backward")
        self.mode_combo.setMinimumContentsLength(14)
        self.map_label = QLabel("map")
        self.map_combo = combo()
        self.map_combo.setToolTip("Which map to step through (one per filter, or per channel)")
        self.map_combo.setMinimumContentsLength(10)
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
        self.position_label = QLabel()
        self.position_label.setStyleSheet("font-weight: 600;")
        self.position_label.setMinimumWidth(60)
        self.position_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.step_view = ConvStepView()
        self.pool_view = PoolStepView()
        self.sheets = QStackedWidget()
        self.sheets.addWidget(self.step_view)
        self.sheets.addWidget(self.pool_view)

        controls = QHBoxLayout()
        controls.setSpacing(6)
        controls.addWidget(QLabel("Step through"))
        controls.addWidget(self.mode_combo)
        controls.addWidget(self.map_label)
        controls.addWidget(self.map_combo)
        for w in (self.back_button, self.step_button, self.play_button, self.speed_slider, self.speed_label):
            controls.addWidget(w)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.position_label)
        layout.addWidget(self.sheets, 1)

        self.back_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.step_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.play_button.toggled.connect(self._on_play_toggled)
        self.speed_slider.valueChanged.connect(self._on_speed)
        self.mode_combo.currentIndexChanged.connect(lambda _i: self.mode_changed.emit(self.mode()))
        self.map_combo.currentIndexChanged.connect(self._on_map)
        self._on_speed(self.speed_slider.value())
        self.set_maps([])

    # -- what the page reads and sets -------------------------------------------------------------
    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    def set_mode(self, mode: str) -> None:
        """Choose what to step through (as the user would: ``mode_changed`` follows)."""
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))

    def set_available(self, conv: bool, pool: bool, backward: bool, prefer: str = "conv") -> str:
        """Offer only what exists now: ``prefer`` (what the user chose last) when it exists, else the
        first that does. Returns the mode in force (without emitting ``mode_changed``)."""
        allowed = {"conv": conv, "pool": pool, "backward": backward}
        model = self.mode_combo.model()
        for i in range(self.mode_combo.count()):
            model.item(i).setEnabled(allowed[str(self.mode_combo.itemData(i))])
        mode = prefer if allowed.get(prefer) else next((k for _, k in STEP_MODES if allowed[k]), "conv")
        if mode != self.mode():
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))
            self.mode_combo.blockSignals(False)
        return self.mode()

    def set_maps(self, names: list[str], current: int = 0) -> None:
        """The maps one can step through; the choice is hidden when there is only one."""
        self.map_combo.blockSignals(True)
        if [self.map_combo.itemText(i) for i in range(self.map_combo.count())] != names:
            self.map_combo.clear()
            self.map_combo.addItems(names)
        self.map_combo.setCurrentIndex(min(max(current, 0), max(len(names) - 1, 0)))
        self.map_combo.blockSignals(False)
        for w in (self.map_label, self.map_combo):
            w.setVisible(len(names) > 1)

    def map_index(self) -> int:
        return max(0, self.map_combo.currentIndex())

    @Slot(int)
    def _on_map(self, index: int) -> None:
        if index >= 0:
            self.channel_changed.emit(index)

    def stop_playing(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def show_nothing(self) -> None:
        for w in (self.back_button, self.step_button, self.play_button):
            w.setEnabled(False)
        self.position_label.setText("")
        self.sheets.setCurrentWidget(self.step_view)
        self.step_view.set_step(None, message="Nothing to step through yet.")

    def _buttons(self, index: int, count: int) -> None:
        self.play_button.setEnabled(count > 0)
        self.back_button.setEnabled(index > 0)
        self.step_button.setEnabled(index < count - 1)

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
        self._buttons(index, count)
        self.position_label.setText(
            f"Output row {step.out_row}, col {step.out_col} — position {index + 1} of {count}"
        )
        self.sheets.setCurrentWidget(self.step_view)
        self.step_view.set_step(step, channel_names=channel_names, activation=activation, activated=activated)

    def show_pool_step(
        self, step: PoolStep, index: int, count: int, channel_name: str = "", gradient: float | None = None
    ) -> None:
        """One pooling window: its values, the max/mean/sum and (max) the winner; with ``gradient``
        (∂L/∂y there) also where it goes back to."""
        self._buttons(index, count)
        self.position_label.setText(
            f"Pooled row {step.out_row}, col {step.out_col} — position {index + 1} of {count}"
        )
        self.sheets.setCurrentWidget(self.pool_view)
        self.pool_view.set_step(step, channel_name, gradient=gradient)

    def show_backward_step(
        self, step: ConvStep, index: int, count: int, filter_names: list[str] | None, channel: str = ""
    ) -> None:
        """One cell of ∂L/∂x: the upstream gradient under the flipped kernel, the products, their sum
        (``step`` is core's ``backward_step(...).as_conv_step()``)."""
        self._buttons(index, count)
        where = f" of {channel}" if channel else ""
        self.position_label.setText(
            f"∂L/∂x{where}, row {step.out_row}, col {step.out_col} — cell {index + 1} of {count}"
        )
        self.sheets.setCurrentWidget(self.step_view)
        name = f"∂L/∂x[{step.out_row}, {step.out_col}]"
        self.step_view.set_step(
            step, channel_names=filter_names, headings=BACKWARD_HEADINGS, bias=False, value_name=name
        )

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
