"""Operations lab: what a convolution, an activation and a pooling do, position by position, forward and
backward, on one or several channels.

Top: the course examples (one click sets up a worked example of the notes) and the backward switch. Then
the settings, one box per stage — a stage can be switched off, and the input goes straight to the next —
and below them the maps, left to right: input → convolution → activation → pooling, one map per channel,
each with its shape and the output-size formula. With the backward view on, a second row shows under each
map the gradient of the loss with respect to it. At the bottom, tabs: step mode (the convolution, the
pooling or the backward pass, one window at a time), the depth (input channels × filters, each filter as
its C_in kernels), the activation with its derivative and softmax at a position, one SGD step on the
kernel, and the design calculators; beside them the parameter count against a fully-connected layer, and
the kernel's gradient.

The page composes the panels and wires them; step mode, the backward view, the course examples and depth,
and the screenshots' states live in mixins (``stepping``, ``backward``, ``examples``, ``screenshots``). All
arithmetic is core's (cnn_explorer.core.lab and .ops); recomputing — forward and backward — runs in a
worker (JobSlot, body in ``compute``), a moment after the last control change.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.lab import LabSettings, softmax_at
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.ops_lab.activation_view import ActivationView
from cnn_explorer.qt.pages.ops_lab.backward import BackwardView
from cnn_explorer.qt.pages.ops_lab.bottom import TABS, BottomTabs, SideColumn
from cnn_explorer.qt.pages.ops_lab.calculators_panel import CalculatorsPanel
from cnn_explorer.qt.pages.ops_lab.code import LabCode
from cnn_explorer.qt.pages.ops_lab.compute import LabInput, LabOutcome, compute_lab
from cnn_explorer.qt.pages.ops_lab.depth_panel import DepthPanel
from cnn_explorer.qt.pages.ops_lab.examples import CourseExamples
from cnn_explorer.qt.pages.ops_lab.helpers import DEBOUNCE_MS
from cnn_explorer.qt.pages.ops_lab.input_panel import InputPanel
from cnn_explorer.qt.pages.ops_lab.kernel_gradient import KernelGradientPanel
from cnn_explorer.qt.pages.ops_lab.lab_bar import LabBar
from cnn_explorer.qt.pages.ops_lab.params_panel import ParamsPanel
from cnn_explorer.qt.pages.ops_lab.screenshots import Screenshots
from cnn_explorer.qt.pages.ops_lab.settings_panel import ActivationPanel, ConvPanel, PoolPanel
from cnn_explorer.qt.pages.ops_lab.sgd_panel import SgdPanel
from cnn_explorer.qt.pages.ops_lab.softmax_view import SoftmaxView
from cnn_explorer.qt.pages.ops_lab.stages import StagesView
from cnn_explorer.qt.pages.ops_lab.step_panel import StepPanel
from cnn_explorer.qt.pages.ops_lab.stepping import StepMode
from cnn_explorer.qt.workers import Job, JobSlot


class OpsLabPage(StepMode, BackwardView, CourseExamples, Screenshots, LabCode, Page):
    title = "Operations lab"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._loaded: LoadedImage | None = None
        self._outcome: LabOutcome | None = None
        self._step_index = 0
        self._step_mode = "conv"
        self._wanted_mode = "conv"  # what the user chose to step through
        self._step_channel = 0
        self._kernel_filter = 0  # the filter whose kernel gradient is shown
        self._pending_step_fraction: float | tuple[float, float] | None = None
        self._filter_names: list[str] = []  # of the result shown
        self._example = None
        self._applying = False
        self._upstream_cell: tuple[int, ...] | None = None
        self._source_seen: str | None = None
        self._slot = JobSlot()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._recompute)
        self._build()
        self._connect()
        self._follow_source()
        self._on_conv_changed()

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.bar = LabBar()
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
        self.depth_panel = DepthPanel()
        self.activation_view = ActivationView()
        self.softmax_view = SoftmaxView()
        self.sgd_panel = SgdPanel()
        self.calculators_panel = CalculatorsPanel()
        activation_tab = QWidget()
        row = QHBoxLayout(activation_tab)
        row.addWidget(self.activation_view, 3)
        row.addWidget(self.softmax_view, 2)
        design = QScrollArea()
        design.setWidgetResizable(True)
        design.setWidget(self.calculators_panel)
        self.tabs = BottomTabs()
        for widget, text in (
            (self.step_panel, "Step through"),
            (self.depth_panel, "Depth: channels × filters"),
            (activation_tab, "Activation: f, f′, softmax"),
            (self.sgd_panel, "SGD step"),
            (design, "Design calculators"),
        ):
            self.tabs.addTab(widget, text)
        self.params_panel = ParamsPanel()
        self.kernel_panel = KernelGradientPanel()
        self.kernel_panel.setVisible(False)
        side = SideColumn(self.tabs, self.params_panel, self.kernel_panel)
        bottom = QHBoxLayout()
        bottom.setSpacing(8)
        bottom.addWidget(self.tabs, 5)
        bottom.addWidget(side, 2)

        content = ScrollContent()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(6)
        layout.addWidget(self.bar, 0)
        layout.addLayout(top, 0)
        layout.addWidget(self.bar.example_caption, 0)
        layout.addWidget(self.stages, 1)
        layout.addLayout(bottom, 0)
        self.scroll_page(content)
        self._aliases()

    def _aliases(self) -> None:
        """Names the tests, benchmarks and screenshots use: the panels' widgets, as the page's own."""
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
        self.input_map, self.conv_map, self.act_map, self.pool_map = self.stages.views()
        st = self.step_panel
        self.back_button, self.step_button, self.play_button = st.back_button, st.step_button, st.play_button
        self.speed_slider, self.speed_label = st.speed_slider, st.speed_label
        self.highlight_check, self.numbers_check = self.bar.highlight_check, self.bar.numbers_check
        self.colour_combo, self.position_label = self.bar.colour_combo, st.position_label
        self.step_view, self.pool_step_view = st.step_view, st.pool_view
        self.params_label = self.params_panel.params_label
        self.course_params_label = self.params_panel.course_params_label
        self.example_combo, self.backward_check = self.bar.example_combo, self.bar.backward_check
        self.upstream_combo = self.bar.upstream_combo

    def _connect(self) -> None:
        self.input_panel.changed.connect(self._on_input_changed)
        self.conv_panel.changed.connect(self._on_conv_changed)
        self.pool_panel.changed.connect(self._on_setting_changed)
        self.activation_panel.changed.connect(self._on_setting_changed)
        self.activation_panel.changed.connect(self._draw_activation_curve)
        self.depth_panel.changed.connect(self._on_depth_changed)
        self.conv_panel.invalid_entry.connect(self.status_message)
        self.bar.example_chosen.connect(self._on_example_chosen)
        self.bar.backward_toggled.connect(self._on_backward_toggled)
        self.bar.upstream_changed.connect(self._schedule)
        self.stages.cell_clicked.connect(self._jump_to_cell)
        self.stages.gradient_clicked.connect(self._jump_to_gradient)
        self.sgd_panel.kernel_stepped.connect(self._on_kernel_stepped)
        st = self.step_panel
        st.step_requested.connect(self._on_step_requested)
        st.play_started.connect(self._on_play_started)
        st.tick.connect(self._play_tick)
        self.bar.window_toggled.connect(self._update_step)
        self.bar.numbers_toggled.connect(self.stages.set_numbers)
        self.bar.colours_changed.connect(self._show_maps)
        st.mode_changed.connect(self._on_step_mode)
        st.channel_changed.connect(self.set_step_channel)

    # -- page API (the main window calls these) ---------------------------------------------------
    def set_image(self, loaded: LoadedImage) -> None:
        self._loaded = loaded
        if self._source_key() not in ("matrix", "array"):
            self._schedule()

    def is_busy(self) -> bool:
        return self._debounce.isActive() or self._slot.busy

    def show_tab(self, key: str) -> None:
        """Bring a bottom tab forward: one of "step", "depth", "activation", "sgd", "design"."""
        self.tabs.setCurrentIndex(TABS.index(key))

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
        bias = float(self.bias_spin.value())
        bank = self._filter_bank()
        return LabSettings(
            kernel=self.kernel_editor.kernel(),
            bias=bias,
            stride=self.stride_spin.value(),
            padding=self.padding_spin.value(),
            dilation=self.dilation_spin.value(),
            activation=self.activation_panel.name(),
            activation_param=self.activation_panel.param(),
            pool_mode=self.pool_panel.mode(),
            pool_size=self.pool_size_spin.value(),
            pool_stride=stride or None,
            pool_padding=self.pool_padding_spin.value(),
            conv=self.conv_panel.isChecked(),
            weights=bank.weights,
            biases=np.full(bank.filters, bias),  # the lab's bias, for every filter
        )

    def _current_source(self) -> LabInput | None:
        source = self.input_panel.current_source(self._loaded)
        if source is None:
            return None
        channels = self.input_panel.channels()
        keep = self._input_channels_used()
        if source.kind == "image" and channels == 3 and keep < 3:
            return dataclasses.replace(source, keep=keep)
        if source.kind == "array" and source.matrix.ndim == 3 and keep < source.matrix.shape[0]:
            return dataclasses.replace(source, keep=keep)
        return source

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
        names = list(self._filter_bank().names)
        job = self._slot.start(
            compute_lab, source, self.current_settings(), self.backward_request(), name="operations lab"
        )
        job.result.connect(lambda outcome, job=job: self._on_result(job, outcome, names))
        job.failed.connect(lambda exc, job=job: self._on_failed(job, exc))

    def _on_result(self, job: Job, outcome: LabOutcome, names: list[str]) -> None:
        if not self._slot.is_current(job):
            return
        self._outcome = outcome
        self._filter_names = names
        if outcome.error:
            self.status_message.emit(f"Operations lab: {outcome.error}")
        res = outcome.result
        pending = self._pending_step_fraction
        if pending is not None and res is not None and res.filters is not None:
            # Part-way down, at the strongest response of that row (or part-way across): a window on
            # something worth seeing.
            act = res.maps("activation")[0]
            rows, cols = act.shape
            fraction, across = pending if isinstance(pending, tuple) else (pending, None)
            row = min(rows - 1, int(rows * fraction))
            col = int(np.nanargmax(act[row])) if across is None else min(cols - 1, int(cols * across))
            self._step_index = row * cols + col
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
        choice = self.bar.colour_choice()
        x = outcome.x
        self.stages.clear_marks()
        self.stages.show_input(outcome.source, x, s, choice)
        if self._loaded is not None and outcome.source.kind == "image":
            h, w = x.shape[-2:]
            self.input_panel.show_image_info(self._loaded, w, h)
        res = outcome.result
        if res is None:
            self.stages.set_stages_on(s.stages_on)
            self.stages.show_impossible(outcome.error)
            self.stages.set_backward(False)
            self.params_panel.show_result(None)
            self._update_step()
            return
        self.stages.show_result(outcome, choice, self._filter_names)
        self.pool_panel.describe(s)
        example = self._example
        if example is not None and example.dense_outputs is not None:
            self.params_panel.show_result(res, example.dense_outputs, example.dense_bias)
        else:
            self.params_panel.show_result(res)
        self._show_backward()
        self._update_step()
        self._show_side_panels(res)

    def _show_side_panels(self, res) -> None:
        """The activation tab and the design calculators follow the result."""
        s = res.settings
        self.activation_view.set_activation(s.activation, s.activation_param)
        self.activation_view.set_values(res.maps("conv"))
        bank = self._filter_bank()
        self.calculators_panel.set_channels(bank.in_channels, bank.filters, max(bank.kernel_size))

    def _show_softmax(self) -> None:
        """Softmax across the channels at the position stepped through (the activation's input there)."""
        res = self._lab_result()
        if res is None or res.settings.activation != "softmax" or self._step_mode != "conv":
            self.softmax_view.clear(
                "Choose Softmax as the activation (2 or more filters), then click a position."
            )
            return
        pre = res.maps("conv")
        r, c = divmod(self._step_index, pre.shape[-1])
        self.softmax_view.set_breakdown(
            softmax_at(pre, r, c), self.stages.output_names(res, self._filter_names)
        )

    @Slot()
    def _draw_activation_curve(self) -> None:
        """The activation over the range of values the convolution actually produced."""
        reach = 3.0
        if self._outcome is not None and self._outcome.result is not None:
            conv = self._outcome.result.conv
            reach = float(np.abs(conv[np.isfinite(conv)]).max(initial=0.0)) or 3.0
        self.activation_panel.draw_curve(reach)
