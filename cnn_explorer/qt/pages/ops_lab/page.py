"""Operations lab: what one convolution, one activation and one pooling do, position by position.

Four columns read left to right, controls above the map they change: input → convolution → activation →
pooling. Each map has its colour bar, its shape and the output-size formula with the current numbers.
Below, step mode walks the window over the input and writes out patch × kernel = products → sum + bias,
and a box compares this layer's parameter count with a fully-connected layer doing the same job.

The page composes the panels (``input_panel``, ``settings_panel``, ``stages``, ``step_panel``,
``params_panel``) and wires them; step mode's reactions live in the ``stepping`` mixin. All arithmetic is
core's (cnn_explorer.core.ops); recomputing runs in a worker (JobSlot, body in ``compute``), a moment
after the last control change, so dragging a spin box never freezes the page.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.ops import ACTIVATIONS, LabSettings
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.ops_lab.compute import LabInput, LabOutcome, compute_lab
from cnn_explorer.qt.pages.ops_lab.helpers import DEBOUNCE_MS, SOURCES
from cnn_explorer.qt.pages.ops_lab.input_panel import InputPanel
from cnn_explorer.qt.pages.ops_lab.params_panel import ParamsPanel
from cnn_explorer.qt.pages.ops_lab.settings_panel import ActivationPanel, ConvPanel, PoolPanel
from cnn_explorer.qt.pages.ops_lab.stages import StagesView
from cnn_explorer.qt.pages.ops_lab.step_panel import StepPanel
from cnn_explorer.qt.pages.ops_lab.stepping import StepMode
from cnn_explorer.qt.workers import Job, JobSlot


class OpsLabPage(StepMode, Page):
    title = "Operations lab"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._loaded: LoadedImage | None = None
        self._outcome: LabOutcome | None = None
        self._step_index = 0
        self._pending_step_fraction: float | None = None
        self._slot = JobSlot()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._recompute)
        self._build()
        self._connect()
        self._schedule()

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.input_panel = InputPanel()
        self.conv_panel = ConvPanel()
        self.activation_panel = ActivationPanel()
        self.pool_panel = PoolPanel()
        top = QHBoxLayout()
        top.setSpacing(8)
        for group in (self.input_panel, self.conv_panel, self.activation_panel, self.pool_panel):
            top.addWidget(group, 1)  # the row takes the height it needs (stretch 0 below); maps get the rest

        self.stages = StagesView()
        self.step_panel = StepPanel()
        self.params_panel = ParamsPanel()
        bottom = QHBoxLayout()
        bottom.setSpacing(8)
        bottom.addWidget(self.step_panel, 5)
        bottom.addWidget(self.params_panel, 2)

        content = ScrollContent()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(6)
        layout.addLayout(top, 0)
        layout.addWidget(self.stages, 1)
        layout.addLayout(bottom, 0)
        self.scroll_page(content)

        # Names the tests, benchmarks and screenshots use: the panels' widgets, as the page's own.
        p = self.input_panel
        self.source_combo, self.size_spin, self.scale_combo = p.source_combo, p.size_spin, p.scale_combo
        self.image_info, self.input_stack = p.image_info, p.input_stack
        self.matrix_combo, self.matrix_edit, self.matrix_error = p.matrix_combo, p.matrix_edit, p.matrix_error
        c = self.conv_panel
        self.kernel_combo, self.kernel_editor = c.kernel_combo, c.kernel_editor
        self.kernel_info = c.kernel_info
        self.stride_spin, self.padding_spin = c.stride_spin, c.padding_spin
        self.dilation_spin, self.bias_spin = c.dilation_spin, c.bias_spin
        a = self.activation_panel
        self.act_combo, self.act_param_label = a.act_combo, a.act_param_label
        self.act_param_spin = a.act_param_spin
        self.act_formula, self.act_plot, self.act_curve = a.act_formula, a.act_plot, a.act_curve
        o = self.pool_panel
        self.pool_mode_combo, self.pool_size_spin = o.pool_mode_combo, o.pool_size_spin
        self.pool_stride_spin, self.pool_padding_spin = o.pool_stride_spin, o.pool_padding_spin
        self.pool_info = o.pool_info
        m = self.stages
        self.input_map, self.conv_map, self.act_map, self.pool_map = m.views()
        st = self.step_panel
        self.back_button, self.step_button, self.play_button = st.back_button, st.step_button, st.play_button
        self.speed_slider, self.speed_label = st.speed_slider, st.speed_label
        self.highlight_check, self.numbers_check = st.highlight_check, st.numbers_check
        self.colour_combo, self.position_label = st.colour_combo, st.position_label
        self.step_view = st.step_view
        self.params_label = self.params_panel.params_label
        self.course_params_label = self.params_panel.course_params_label

    def _connect(self) -> None:
        for panel in (self.input_panel, self.conv_panel, self.pool_panel):
            panel.changed.connect(self._schedule)
        self.activation_panel.changed.connect(self._schedule)
        self.activation_panel.changed.connect(self._draw_activation_curve)
        self.conv_panel.invalid_entry.connect(self.status_message)
        self.stages.cell_clicked.connect(self._jump_to_cell)
        st = self.step_panel
        st.step_requested.connect(self._on_step_requested)
        st.play_started.connect(self._on_play_started)
        st.tick.connect(self._play_tick)
        st.window_toggled.connect(self._update_step)
        st.numbers_toggled.connect(self.stages.set_numbers)
        st.colours_changed.connect(self._show_maps)

    # -- page API (the main window calls these) ---------------------------------------------------
    def set_image(self, loaded: LoadedImage) -> None:
        self._loaded = loaded
        if self._source_key() != "matrix":
            self._schedule()

    def is_busy(self) -> bool:
        return self._debounce.isActive() or self._slot.busy

    def prepare_screenshot(self) -> None:
        """Mid-way through a Sobel convolution of the sample photo, window visible, numbers readable."""
        self._stop_playing()
        self.source_combo.setCurrentIndex([k for _, k in SOURCES].index("gray"))
        self.size_spin.setValue(40)
        self.scale_combo.setCurrentIndex(0)
        self.kernel_combo.setCurrentText("Sobel x")
        self.stride_spin.setValue(1)
        self.padding_spin.setValue(1)
        self.dilation_spin.setValue(1)
        self.bias_spin.setValue(0)
        self.act_combo.setCurrentIndex(list(ACTIVATIONS).index("relu"))
        self.pool_mode_combo.setCurrentIndex(0)
        self.pool_size_spin.setValue(2)
        self.pool_stride_spin.setValue(0)
        self.highlight_check.setChecked(True)
        self._pending_step_fraction = 0.42
        self._schedule()

    def shutdown(self) -> None:
        self._stop_playing()
        self._debounce.stop()
        self._slot.cancel()

    # -- what to compute --------------------------------------------------------------------------
    def _source_key(self) -> str:
        return self.input_panel.source_key()

    @Slot()
    def _schedule(self) -> None:
        """Recompute a moment after the last change (restarting the timer coalesces a burst)."""
        self._debounce.start()

    def current_settings(self) -> LabSettings:
        stride = self.pool_stride_spin.value()
        return LabSettings(
            kernel=self.kernel_editor.kernel(),
            bias=float(self.bias_spin.value()),
            stride=self.stride_spin.value(),
            padding=self.padding_spin.value(),
            dilation=self.dilation_spin.value(),
            activation=self.activation_panel.name(),
            activation_param=self.activation_panel.param(),
            pool_mode=str(self.pool_mode_combo.currentData()),
            pool_size=self.pool_size_spin.value(),
            pool_stride=stride or None,
            pool_padding=self.pool_padding_spin.value(),
        )

    def _current_source(self) -> LabInput | None:
        return self.input_panel.current_source(self._loaded)

    # -- recomputing (in a worker) and showing the result -----------------------------------------
    @Slot()
    def _recompute(self) -> None:
        source = self._current_source()
        if source is None:
            self._slot.cancel()
            message = (
                "Fix the matrix to see its convolution."
                if self._source_key() == "matrix"
                else "Open an image (File ▸ Open) or choose “Typed matrix”."
            )
            self._outcome = None
            self.stages.clear(message)
            self._update_step()
            return
        job = self._slot.start(compute_lab, source, self.current_settings(), name="operations lab")
        job.result.connect(lambda outcome, job=job: self._on_result(job, outcome))
        job.failed.connect(lambda exc, job=job: self._on_failed(job, exc))

    def _on_result(self, job: Job, outcome: LabOutcome) -> None:
        if not self._slot.is_current(job):
            return
        self._outcome = outcome
        if outcome.error:
            self.status_message.emit(f"Operations lab: {outcome.error}")
        if self._pending_step_fraction is not None and outcome.result is not None:
            # Part-way down, at the strongest response of that row: a window on something worth seeing.
            act = outcome.result.activated
            row = min(act.shape[0] - 1, int(act.shape[0] * self._pending_step_fraction))
            self._step_index = row * act.shape[1] + int(np.nanargmax(act[row]))
            self._pending_step_fraction = None
        self._show_maps()
        self._draw_activation_curve()

    def _on_failed(self, job: Job, exc: BaseException) -> None:
        if self._slot.is_current(job):
            self.status_message.emit(f"Operations lab: {exc}")

    @Slot()
    def _show_maps(self) -> None:
        outcome = self._outcome
        if outcome is None:
            return
        s = self.current_settings() if outcome.result is None else outcome.result.settings
        choice = self.step_panel.colour_choice()
        x = outcome.x
        self.stages.show_input(outcome.source, x, s, choice)
        if self._loaded is not None and outcome.source.kind != "matrix":
            h, w = x.shape[-2:]
            self.input_panel.show_image_info(self._loaded, w, h)
        res = outcome.result
        if res is None:
            self.stages.show_impossible(outcome.error)
            self.params_panel.show_result(None)
            self._update_step()
            return
        self.stages.show_result(outcome, choice)
        self.pool_panel.describe(s)
        self.params_panel.show_result(res)
        self._update_step()

    @Slot()
    def _draw_activation_curve(self) -> None:
        """The activation over the range of values the convolution actually produced."""
        reach = 3.0
        if self._outcome is not None and self._outcome.result is not None:
            conv = self._outcome.result.conv
            reach = float(np.abs(conv[np.isfinite(conv)]).max(initial=0.0)) or 3.0
        self.activation_panel.draw_curve(reach)
