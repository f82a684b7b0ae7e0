"""Operations lab: what one convolution, one activation and one pooling do, position by position.

Four columns read left to right, controls above the map they change: input → convolution → activation →
pooling. Each map has its colour bar, its shape and the output-size formula with the current numbers.
Below, step mode walks the window over the input and writes out patch × kernel = products → sum + bias,
and a box compares this layer's parameter count with a fully-connected layer doing the same job.

All arithmetic is core's (cnn_explorer.core.ops); recomputing runs in a worker (JobSlot), a moment after
the last control change, so dragging a spin box never freezes the page.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.kernels import (
    COURSE_MATRIX,
    INPUT_PRESETS,
    KERNEL_PRESETS,
    input_preset,
    kernel_preset,
)
from cnn_explorer.core.ops import (
    ACTIVATIONS,
    LabResult,
    LabSettings,
    activate,
    compare_params,
    conv_output_shape,
    conv_param_count,
    conv_step,
    dense_param_count,
    format_matrix,
    image_to_input,
    output_size_formula,
    parse_matrix,
    run_lab,
)
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.widgets.conv_step_view import ConvStepView
from cnn_explorer.qt.widgets.kernel_editor import KernelEditor
from cnn_explorer.qt.widgets.map_view import MapView
from cnn_explorer.qt.workers import Job, JobSlot

DEBOUNCE_MS = 60  # coalesce a burst of spin-box changes into one recompute
SOURCES = (
    ("Image — grayscale", "gray"),
    ("Image — red channel", "red"),
    ("Image — green channel", "green"),
    ("Image — blue channel", "blue"),
    ("Image — RGB (3 channels)", "rgb"),
    ("Typed matrix", "matrix"),
)
CUSTOM = "custom"
OWN_MATRIX = "(your own)"
COLOUR_CHOICES = ("auto", "gray", "viridis", "blue–white–red")
WINDOW = "#ff7f0e"
POOL_WINDOW = "#7b3fbf"
# Activations that keep the units of their input: the activation map can share the conv map's colours.
SAME_UNITS = {"none", "relu", "leaky_relu", "elu"}


@dataclass(frozen=True)
class LabInput:
    """What the lab computes on: part of an image, or a typed matrix."""

    kind: str  # "image" | "matrix"
    pixels: np.ndarray | None = None
    channels: str = "gray"
    size: int = 64
    scale: float = 255.0
    matrix: np.ndarray | None = None


@dataclass(frozen=True)
class LabOutcome:
    source: LabInput  # what it was computed from (the controls may have moved on since)
    x: np.ndarray  # the input as computed on: (H, W) or (C, H, W)
    result: LabResult | None  # None when the convolution is impossible
    error_stage: str | None = None  # "conv" | "pool"
    error: str = ""


def compute_lab(source: LabInput, settings: LabSettings, control: Control | None = None) -> LabOutcome:
    """Worker body: prepare the input, then conv → activation → pool; impossible settings are reported."""
    if source.kind == "matrix":
        x = np.asarray(source.matrix, dtype=np.float64)
    else:
        x = image_to_input(source.pixels, source.channels, source.size, source.scale)
    checkpoint(control)
    s = settings
    try:
        conv_output_shape(x.shape[-2:], np.shape(s.kernel), s.stride, s.padding, s.dilation)
    except ValueError as exc:
        return LabOutcome(source, x, None, "conv", str(exc))
    try:
        return LabOutcome(source, x, run_lab(x, s, control))
    except ValueError as exc:  # the pooling window does not fit: still show conv and activation
        result = run_lab(x, dataclasses.replace(s, pool_mode="none"), control)
        return LabOutcome(source, x, result, "pool", str(exc))


def _cmap(name: str) -> pg.ColorMap:
    return {
        "gray": pg.colormap.get("CET-L1"),
        "viridis": pg.colormap.get("viridis"),
        "blue–white–red": pg.colormap.get("CET-D1"),
    }[name]


def _channel_cmap(channel: str) -> pg.ColorMap:
    if channel in ("red", "green", "blue"):
        top = {"red": (230, 30, 30), "green": (20, 170, 40), "blue": (40, 80, 235)}[channel]
        return pg.ColorMap([0.0, 1.0], [(0, 0, 0), top])
    return pg.colormap.get("CET-L1")


def _formula_html(h: int, w: int, k: tuple[int, int], s: int, p: int, d: int = 1) -> str:
    """The output-size formula for both axes (once when they agree)."""
    fh = output_size_formula(h, k[0], s, p, d)
    if h == w and k[0] == k[1]:
        return f"<i>H′ = W′</i> = {fh}"
    return f"<i>H′</i> = {fh}<br><i>W′</i> = {output_size_formula(w, k[1], s, p, d)}"


def _shape_text(a: np.ndarray) -> str:
    return "×".join(str(n) for n in a.shape)


class OpsLabPage(Page):
    title = "Operations lab"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._loaded: LoadedImage | None = None
        self._matrix: np.ndarray | None = input_preset(COURSE_MATRIX)
        self._outcome: LabOutcome | None = None
        self._step_index = 0
        self._pending_step_fraction: float | None = None
        self._slot = JobSlot()
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self._recompute)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._play_tick)

        top = QHBoxLayout()
        top.setSpacing(8)
        for group in (
            self._build_input_group(),
            self._build_conv_group(),
            self._build_activation_group(),
            self._build_pool_group(),
        ):
            top.addWidget(group, 1)  # the row takes the height it needs (stretch 0 below); maps get the rest

        self.input_map = MapView("① Input")
        self.conv_map = MapView("② Convolution")
        self.act_map = MapView("③ Activation")
        self.pool_map = MapView("④ Pooling")
        maps = QHBoxLayout()
        maps.setSpacing(4)
        for i, view in enumerate((self.input_map, self.conv_map, self.act_map, self.pool_map)):
            if i:
                arrow = QLabel("→")
                arrow.setStyleSheet("font-size: 22px; color: #999;")
                arrow.setAlignment(Qt.AlignmentFlag.AlignCenter)
                maps.addWidget(arrow)
            maps.addWidget(view, 1)
        self.conv_map.cell_clicked.connect(self._jump_to_cell)
        self.act_map.cell_clicked.connect(self._jump_to_cell)

        bottom = QHBoxLayout()
        bottom.setSpacing(8)
        bottom.addWidget(self._build_step_group(), 5)
        bottom.addWidget(self._build_params_group(), 2)

        content = ScrollContent()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(6)
        layout.addLayout(top, 0)
        layout.addLayout(maps, 1)
        layout.addLayout(bottom, 0)
        self.scroll_page(content)

        self._on_source_changed()
        self._on_activation_changed()
        self._on_kernel_preset(self.kernel_combo.currentText())

    # ================================================================================================
    # Building the controls
    # ================================================================================================
    @staticmethod
    def _combo() -> QComboBox:
        combo = QComboBox()
        # Long item names must not dictate the page's minimum width: the combo shrinks and elides.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(6)
        return combo

    @staticmethod
    def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setValue(value)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)  # typing "12" is one change, not "1" then "12"
        return spin

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(6)
        form.setVerticalSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        return form

    @staticmethod
    def _hint() -> QLabel:
        label = QLabel()
        label.setWordWrap(True)
        label.setStyleSheet("color: #666; font-size: 11px;")
        return label

    def _build_input_group(self) -> QGroupBox:
        box = QGroupBox("Input")
        self.source_combo = self._combo()
        for text, key in SOURCES:
            self.source_combo.addItem(text, key)
        self.source_combo.setToolTip(
            "Compute on the loaded image (one channel or all three) or on numbers you type"
        )

        self.size_spin = self._spin(4, 512, 64, "The image is shrunk so its longer side has this many pixels")
        self.size_spin.setSuffix(" px")
        self.size_spin.setSingleStep(8)
        self.scale_combo = self._combo()
        self.scale_combo.addItem("0 … 255", 255.0)
        self.scale_combo.addItem("0 … 1", 1.0)
        self.scale_combo.setToolTip("Pixel values as bytes (0…255) or as fractions (0…1)")
        self.image_info = self._hint()
        image_page = QWidget()
        form = self._form()
        form.addRow("Working size", self.size_spin)
        form.addRow("Pixel values", self.scale_combo)
        form.addRow(self.image_info)
        image_page.setLayout(form)

        self.matrix_combo = self._combo()
        self.matrix_combo.addItems([*INPUT_PRESETS, OWN_MATRIX])
        self.matrix_edit = QPlainTextEdit()
        self.matrix_edit.setPlaceholderText(
            "Type or paste numbers: one row per line, spaces or commas between"
        )
        self.matrix_edit.setTabChangesFocus(True)
        self.matrix_edit.setFixedHeight(88)
        font = self.matrix_edit.font()
        font.setFamily("monospace")
        self.matrix_edit.setFont(font)
        self.matrix_error = self._hint()
        self.matrix_error.setStyleSheet("color: #b22; font-size: 11px;")
        matrix_page = QWidget()
        mform = self._form()
        mform.addRow("Example", self.matrix_combo)
        mform.addRow(self.matrix_edit)
        mform.addRow(self.matrix_error)
        matrix_page.setLayout(mform)
        self.matrix_edit.setPlainText(format_matrix(self._matrix))

        self.input_stack = QStackedWidget()
        self.input_stack.addWidget(image_page)
        self.input_stack.addWidget(matrix_page)
        layout = QVBoxLayout(box)
        layout.setSpacing(4)
        row = self._form()
        row.addRow("Source", self.source_combo)
        layout.addLayout(row)
        layout.addWidget(self.input_stack, 1)

        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.size_spin.valueChanged.connect(self._schedule)
        self.scale_combo.currentIndexChanged.connect(self._schedule)
        self.matrix_combo.currentTextChanged.connect(self._on_matrix_preset)
        self.matrix_edit.textChanged.connect(self._on_matrix_text)
        return box

    def _build_conv_group(self) -> QGroupBox:
        box = QGroupBox("Convolution (one filter)")
        self.kernel_combo = self._combo()
        self.kernel_combo.addItems([*KERNEL_PRESETS, CUSTOM])
        self.kernel_combo.setCurrentText("Sobel x")
        self.kernel_combo.setToolTip("A named kernel; edit any number to make your own")
        self.kernel_combo.setMinimumContentsLength(12)
        self.kernel_editor = KernelEditor()
        self.kernel_info = self._hint()
        self.stride_spin = self._spin(1, 8, 1, "How far the window moves between outputs")
        self.padding_spin = self._spin(0, 7, 0, "Rings of zeros added around the input")
        self.dilation_spin = self._spin(1, 4, 1, "Spacing between the kernel's taps (1 = touching)")
        self.bias_spin = QDoubleSpinBox()
        self.bias_spin.setRange(-1000, 1000)
        self.bias_spin.setDecimals(2)
        self.bias_spin.setToolTip("Added to every output value")
        self.bias_spin.setKeyboardTracking(False)

        left = QVBoxLayout()
        left.setSpacing(3)
        left.addWidget(self.kernel_combo)
        left.addWidget(self.kernel_editor)
        left.addStretch(1)
        form = self._form()
        form.addRow("Stride", self.stride_spin)
        form.addRow("Padding", self.padding_spin)
        form.addRow("Dilation", self.dilation_spin)
        form.addRow("Bias", self.bias_spin)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addStretch(1)
        row = QHBoxLayout()
        row.setSpacing(10)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        layout = QVBoxLayout(box)
        layout.setSpacing(2)
        layout.addLayout(row, 1)
        layout.addWidget(self.kernel_info)

        self.kernel_combo.currentTextChanged.connect(self._on_kernel_preset)
        self.kernel_editor.kernel_changed.connect(self._on_kernel_edited)
        self.kernel_editor.invalid_entry.connect(self.status_message)
        for spin in (self.stride_spin, self.padding_spin, self.dilation_spin):
            spin.valueChanged.connect(self._schedule)
        self.bias_spin.valueChanged.connect(self._schedule)
        return box

    def _build_activation_group(self) -> QGroupBox:
        box = QGroupBox("Activation")
        self.act_combo = self._combo()
        for name, act in ACTIVATIONS.items():
            self.act_combo.addItem(act.label, name)
        self.act_combo.setCurrentIndex(list(ACTIVATIONS).index("relu"))
        self.act_param_label = QLabel("Parameter")
        self.act_param_spin = QDoubleSpinBox()
        self.act_param_spin.setRange(0.0, 5.0)
        self.act_param_spin.setDecimals(3)
        self.act_param_spin.setSingleStep(0.01)
        self.act_param_spin.setKeyboardTracking(False)
        self.act_formula = QLabel()
        self.act_formula.setStyleSheet("font-size: 13px;")
        self.act_plot = pg.PlotWidget()
        self.act_plot.setBackground(None)
        self.act_plot.setFixedHeight(84)
        self.act_plot.setMouseEnabled(False, False)
        self.act_plot.hideButtons()
        self.act_plot.setMenuEnabled(False)
        self.act_plot.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("left", "bottom"):
            self.act_plot.getAxis(axis).setStyle(tickFont=self.font(), tickLength=-4)
        self.act_curve = self.act_plot.plot(pen=pg.mkPen("#d6604d", width=2))
        form = self._form()
        form.addRow("Function", self.act_combo)
        form.addRow(self.act_param_label, self.act_param_spin)
        layout = QVBoxLayout(box)
        layout.setSpacing(3)
        layout.addLayout(form)
        layout.addWidget(self.act_formula)
        layout.addWidget(self.act_plot, 1)
        self.act_combo.currentIndexChanged.connect(self._on_activation_changed)
        self.act_param_spin.valueChanged.connect(self._schedule)
        self.act_param_spin.valueChanged.connect(self._draw_activation_curve)
        return box

    def _build_pool_group(self) -> QGroupBox:
        box = QGroupBox("Pooling")
        self.pool_mode_combo = self._combo()
        for text, key in (("Max", "max"), ("Average", "avg"), ("Sum", "sum"), ("None", "none")):
            self.pool_mode_combo.addItem(text, key)
        self.pool_size_spin = self._spin(1, 8, 2, "Pooling window size (k×k)")
        self.pool_stride_spin = self._spin(0, 8, 0, "How far the pooling window moves (0 = its size)")
        self.pool_stride_spin.setSpecialValueText("= size")
        self.pool_padding_spin = self._spin(0, 1, 0, "Padding for pooling (at most half the window)")
        self.pool_info = self._hint()
        form = self._form()
        form.addRow("Mode", self.pool_mode_combo)
        form.addRow("Size", self.pool_size_spin)
        form.addRow("Stride", self.pool_stride_spin)
        form.addRow("Padding", self.pool_padding_spin)
        layout = QVBoxLayout(box)
        layout.setSpacing(3)
        layout.addLayout(form)
        layout.addWidget(self.pool_info)
        layout.addStretch(1)
        self.pool_mode_combo.currentIndexChanged.connect(self._schedule)
        self.pool_size_spin.valueChanged.connect(self._on_pool_size)
        self.pool_stride_spin.valueChanged.connect(self._schedule)
        self.pool_padding_spin.valueChanged.connect(self._schedule)
        return box

    def _build_step_group(self) -> QGroupBox:
        box = QGroupBox("Step through the convolution")
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
        self.colour_combo = self._combo()
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
        layout = QVBoxLayout(box)
        layout.setSpacing(4)
        layout.addLayout(controls)
        layout.addWidget(self.step_view, 1)
        layout.addLayout(options)

        self.back_button.clicked.connect(self.step_back)
        self.step_button.clicked.connect(self.step_forward)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.speed_slider.valueChanged.connect(self._on_speed)
        self.highlight_check.toggled.connect(self._update_step)
        self.numbers_check.toggled.connect(self._on_numbers_toggled)
        self.colour_combo.currentIndexChanged.connect(self._show_maps)
        self._on_speed(self.speed_slider.value())
        return box

    def _build_params_group(self) -> QGroupBox:
        box = QGroupBox("Parameters: convolution vs fully connected")
        self.params_label = QLabel()
        self.params_label.setWordWrap(True)
        self.params_label.setTextFormat(Qt.TextFormat.RichText)
        self.params_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.params_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #ddd;")
        self.course_params_label = course = self._hint()
        conv = conv_param_count(5, 3, 16)
        dense = dense_param_count(32 * 32 * 3, 500, bias=False)
        course.setText(
            f"Course example: a 5×5 convolution on 3 channels with 16 filters has 5·5·3·16 + 16 = {conv:,} "
            f"parameters; a fully-connected layer 32×32×3 → 500 has 3,072·500 = {dense:,} (without bias)."
        )
        layout = QVBoxLayout(box)
        layout.addWidget(self.params_label, 1)
        layout.addWidget(line)
        layout.addWidget(course)
        return box

    # ================================================================================================
    # Page API (the main window calls these)
    # ================================================================================================
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

    # ================================================================================================
    # Reacting to controls
    # ================================================================================================
    def _source_key(self) -> str:
        return str(self.source_combo.currentData())

    @Slot()
    def _schedule(self) -> None:
        """Recompute a moment after the last change (restarting the timer coalesces a burst)."""
        self._debounce.start()

    @Slot()
    def _on_source_changed(self) -> None:
        is_matrix = self._source_key() == "matrix"
        self.input_stack.setCurrentIndex(1 if is_matrix else 0)
        self._schedule()

    @Slot(str)
    def _on_matrix_preset(self, name: str) -> None:
        if name == OWN_MATRIX:
            return
        self.matrix_edit.blockSignals(True)
        self.matrix_edit.setPlainText(format_matrix(input_preset(name)))
        self.matrix_edit.blockSignals(False)
        self._on_matrix_text(from_preset=True)

    @Slot()
    def _on_matrix_text(self, from_preset: bool = False) -> None:
        try:
            self._matrix = parse_matrix(self.matrix_edit.toPlainText())
            self.matrix_error.setText(f"{self._matrix.shape[0]}×{self._matrix.shape[1]} matrix")
            self.matrix_error.setStyleSheet("color: #666; font-size: 11px;")
        except ValueError as exc:
            self._matrix = None
            self.matrix_error.setText(str(exc))
            self.matrix_error.setStyleSheet("color: #b22; font-size: 11px;")
        if not from_preset:
            self.matrix_combo.blockSignals(True)
            self.matrix_combo.setCurrentText(OWN_MATRIX)
            self.matrix_combo.blockSignals(False)
        if self._source_key() == "matrix":
            self._schedule()

    @Slot(str)
    def _on_kernel_preset(self, name: str) -> None:
        if name == CUSTOM:
            self.kernel_info.setText("Your own kernel: click a number to change it.")
            return
        self.kernel_editor.set_kernel(kernel_preset(name))
        self.kernel_info.setText(KERNEL_PRESETS[name].description)
        self._schedule()

    @Slot(object)
    def _on_kernel_edited(self, _kernel: np.ndarray) -> None:
        self.kernel_combo.blockSignals(True)
        self.kernel_combo.setCurrentText(CUSTOM)
        self.kernel_combo.blockSignals(False)
        self.kernel_info.setText("Your own kernel: click a number to change it.")
        self._schedule()

    @Slot()
    def _on_activation_changed(self) -> None:
        act = ACTIVATIONS[str(self.act_combo.currentData())]
        has_param = act.param is not None
        self.act_param_spin.setEnabled(has_param)
        self.act_param_label.setText({"slope": "Slope", "alpha": "α"}.get(act.param or "", "Parameter"))
        if has_param:
            self.act_param_spin.blockSignals(True)
            self.act_param_spin.setValue(act.default)
            self.act_param_spin.blockSignals(False)
        self.act_formula.setText(f"<b>f(x)</b> = {act.formula}")
        self._draw_activation_curve()
        self._schedule()

    @Slot()
    def _draw_activation_curve(self) -> None:
        """The activation over the range of values the convolution actually produced."""
        name = str(self.act_combo.currentData())
        reach = 3.0
        if self._outcome is not None and self._outcome.result is not None:
            conv = self._outcome.result.conv
            reach = float(np.abs(conv[np.isfinite(conv)]).max(initial=0.0)) or 3.0
        xs = np.linspace(-reach, reach, 201)
        self.act_curve.setData(xs, activate(xs, name, self._act_param()))

    def _act_param(self) -> float | None:
        act = ACTIVATIONS[str(self.act_combo.currentData())]
        return self.act_param_spin.value() if act.param is not None else None

    @Slot(int)
    def _on_pool_size(self, size: int) -> None:
        self.pool_padding_spin.setMaximum(size // 2)
        self._schedule()

    @Slot(bool)
    def _on_numbers_toggled(self, on: bool) -> None:
        for view in self._views():
            view.set_numbers("auto" if on else "off")

    def _views(self) -> tuple[MapView, MapView, MapView, MapView]:
        return self.input_map, self.conv_map, self.act_map, self.pool_map

    def current_settings(self) -> LabSettings:
        stride = self.pool_stride_spin.value()
        return LabSettings(
            kernel=self.kernel_editor.kernel(),
            bias=float(self.bias_spin.value()),
            stride=self.stride_spin.value(),
            padding=self.padding_spin.value(),
            dilation=self.dilation_spin.value(),
            activation=str(self.act_combo.currentData()),
            activation_param=self._act_param(),
            pool_mode=str(self.pool_mode_combo.currentData()),
            pool_size=self.pool_size_spin.value(),
            pool_stride=stride or None,
            pool_padding=self.pool_padding_spin.value(),
        )

    def _current_source(self) -> LabInput | None:
        key = self._source_key()
        if key == "matrix":
            return None if self._matrix is None else LabInput("matrix", matrix=self._matrix)
        if self._loaded is None:
            return None
        return LabInput(
            "image",
            pixels=self._loaded.pixels,
            channels=key,
            size=self.size_spin.value(),
            scale=float(self.scale_combo.currentData()),
        )

    # ================================================================================================
    # Recomputing (in a worker) and showing the result
    # ================================================================================================
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
            for view in self._views():
                view.clear_map(message if view is self.input_map else "")
                view.set_caption("")
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

    def _stage_colours(self, data: np.ndarray) -> tuple[pg.ColorMap, tuple[float, float] | None, bool]:
        """Colour map, levels (None = data range) and symmetry for a computed map."""
        choice = self.colour_combo.currentText()
        finite = data[np.isfinite(data)]
        negative = finite.size > 0 and finite.min() < 0
        if choice == "auto":
            choice = "blue–white–red" if negative else "viridis"
        symmetric = choice == "blue–white–red"
        return _cmap(choice), None, symmetric

    @Slot()
    def _show_maps(self) -> None:
        outcome = self._outcome
        if outcome is None:
            return
        s = self.current_settings() if outcome.result is None else outcome.result.settings
        x = outcome.x
        self._show_input(outcome.source, x, s)
        res = outcome.result
        if res is None:
            for view in (self.conv_map, self.act_map, self.pool_map):
                view.clear_map(outcome.error if view is self.conv_map else "")
                view.set_caption("")
            self.conv_map.set_title("② Convolution")
            self.act_map.set_title("③ Activation")
            self.pool_map.set_title("④ Pooling")
            self._update_params(None)
            self._update_step()
            return

        kh, kw = res.weight.shape[-2:]
        cmap, levels, symmetric = self._stage_colours(res.conv)
        self.conv_map.set_map(res.conv, colormap=cmap, levels=levels, symmetric=symmetric)
        conv_levels = self.conv_map.levels
        self.conv_map.set_title(
            f"② Convolution &nbsp;<span style='color:#06c'>{_shape_text(res.conv)}</span>"
        )
        self.conv_map.set_caption(
            _formula_html(x.shape[-2], x.shape[-1], (kh, kw), s.stride, s.padding, s.dilation)
        )

        act = ACTIVATIONS[s.activation]
        if s.activation in SAME_UNITS and self.colour_combo.currentText() == "auto":
            # Same colours as the convolution: what the activation removes is visible at a glance.
            self.act_map.set_map(res.activated, colormap=cmap, levels=conv_levels)
        else:
            a_cmap, a_levels, a_sym = self._stage_colours(res.activated)
            self.act_map.set_map(res.activated, colormap=a_cmap, levels=a_levels, symmetric=a_sym)
        self.act_map.set_title(
            f"③ {act.label} &nbsp;<span style='color:#06c'>{_shape_text(res.activated)}</span>"
        )
        self.act_map.set_caption(f"f(x) = {act.formula} on every value; the shape does not change")

        if res.pooled is None:
            message = outcome.error if outcome.error_stage == "pool" else "No pooling"
            self.pool_map.clear_map(message)
            self.pool_map.set_title("④ Pooling")
            self.pool_map.set_caption("")
        else:
            if (
                s.pool_mode in ("max", "avg")
                and s.activation in SAME_UNITS
                and self.colour_combo.currentText() == "auto"
            ):
                self.pool_map.set_map(res.pooled, colormap=cmap, levels=conv_levels)
            else:
                p_cmap, p_levels, p_sym = self._stage_colours(res.pooled)
                self.pool_map.set_map(res.pooled, colormap=p_cmap, levels=p_levels, symmetric=p_sym)
            mode = {"max": "Max", "avg": "Average", "sum": "Sum"}[s.pool_mode]
            self.pool_map.set_title(
                f"④ {mode} pooling &nbsp;<span style='color:#06c'>{_shape_text(res.pooled)}</span>"
            )
            k = s.pool_size
            stride = s.pool_stride or k
            self.pool_map.set_caption(
                _formula_html(res.activated.shape[0], res.activated.shape[1], (k, k), stride, s.pool_padding)
            )
        stride = s.pool_stride or s.pool_size
        what = {"max": "the largest value", "avg": "the average", "sum": "the sum", "none": "nothing"}[
            s.pool_mode
        ]
        self.pool_info.setText(
            f"Each {s.pool_size}×{s.pool_size} window, moved {stride} at a time, keeps {what}."
            if s.pool_mode != "none"
            else "Pooling is off: the activation map is the output."
        )
        self._update_params(res)
        self._update_step()

    def _show_input(self, src: LabInput, x: np.ndarray, s: LabSettings) -> None:
        p = s.padding
        h, w = x.shape[-2:]
        valid = (range(h), range(w))
        source = src.kind if src.kind == "matrix" else src.channels
        if x.ndim == 3:
            rgb = np.moveaxis(x, 0, -1)
            scale = src.scale
            padded = np.pad(rgb, ((p, p), (p, p), (0, 0)))
            self.input_map.set_map(padded / scale, origin=(-p, -p), valid=valid, values=padded)
        else:
            padded = np.pad(x, p)
            choice = self.colour_combo.currentText()
            if choice != "auto":
                cmap = _cmap(choice)
            else:
                cmap = _cmap("viridis") if source == "matrix" else _channel_cmap(source)
            levels = None if source == "matrix" else (0, src.scale)  # an image keeps its full 0…max scale
            self.input_map.set_map(padded, colormap=cmap, levels=levels, origin=(-p, -p), valid=valid)
        self.input_map.set_title(f"① Input &nbsp;<span style='color:#06c'>{_shape_text(x)}</span>")
        caption = f"{'C×H×W' if x.ndim == 3 else 'H×W'} = {_shape_text(x)}"
        if p:
            caption += f"; with padding {p}: {h + 2 * p}×{w + 2 * p} (zeros outside the dashed line)"
            self.input_map.set_highlight("valid", [(0, 0, h, w)], "#555", width=1.5, dashed=True)
        else:
            self.input_map.set_highlight("valid", None)
        self.input_map.set_caption(caption)
        if self._loaded is not None and source != "matrix":
            full_w, full_h = self._loaded.size
            how = f"shrunk to {w}×{h}" if (w, h) != (full_w, full_h) else "used at full size"
            self.image_info.setText(f"{self._loaded.path.name}: {full_w}×{full_h}, {how}")

    def _update_params(self, res: LabResult | None) -> None:
        if res is None:
            self.params_label.setText("<i>No convolution output to compare.</i>")
            return
        x = res.input
        c = x.shape[0] if x.ndim == 3 else 1
        h, w = x.shape[-2:]
        kh, kw = res.weight.shape[-2:]
        s = res.settings
        cmp = compare_params((c, h, w), (kh, kw), 1, s.stride, s.padding, s.dilation)
        oh, ow = res.conv.shape
        self.params_label.setText(
            f"<b>This convolution</b> &nbsp;<span style='color:#666'>kH·kW·C<sub>in</sub>·F + F</span><br>"
            f"&nbsp;&nbsp;{cmp.conv_formula}"
            f"<p style='margin:6px 0 0 0'><b>Fully connected</b>, from the same {cmp.in_features:,} inputs "
            f"({c}×{h}×{w}) to the same {cmp.out_features:,} outputs ({oh}×{ow}):<br>"
            f"&nbsp;&nbsp;{cmp.dense_formula}</p>"
            f"<p style='margin:6px 0 0 0'><b style='color:#c40'>{cmp.ratio:,.0f}×</b> as many parameters: "
            f"the convolution reuses its {cmp.conv:,} numbers at all {cmp.out_features:,} positions.</p>"
        )

    # ================================================================================================
    # Step mode
    # ================================================================================================
    def step_count(self) -> int:
        res = None if self._outcome is None else self._outcome.result
        return 0 if res is None else int(res.conv.size)

    @property
    def step_index(self) -> int:
        return self._step_index

    def set_step_index(self, index: int) -> None:
        count = self.step_count()
        self._step_index = max(0, min(index, count - 1)) if count else 0
        self._update_step()

    @Slot()
    def step_forward(self) -> None:
        self.set_step_index(self._step_index + 1)

    @Slot()
    def step_back(self) -> None:
        self.set_step_index(self._step_index - 1)

    @Slot(int, int)
    def _jump_to_cell(self, row: int, col: int) -> None:
        res = None if self._outcome is None else self._outcome.result
        if res is not None:
            self.set_step_index(row * res.conv.shape[1] + col)

    @Slot(bool)
    def _on_play_toggled(self, playing: bool) -> None:
        self.play_button.setText("⏸ Pause" if playing else "▶ Play")
        if playing:
            if self._step_index >= self.step_count() - 1:
                self.set_step_index(0)  # play from the start once the end is reached
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _stop_playing(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    @Slot()
    def _play_tick(self) -> None:
        if self._step_index >= self.step_count() - 1:
            self._stop_playing()
            return
        self.step_forward()

    @Slot(int)
    def _on_speed(self, per_second: int) -> None:
        self._play_timer.setInterval(int(1000 / per_second))
        self.speed_label.setText(f"{per_second}/s")

    @Slot()
    def _update_step(self) -> None:
        res = None if self._outcome is None else self._outcome.result
        for view in self._views():
            for name in ("window", "cell", "pool"):
                view.set_highlight(name, None)
        count = self.step_count()
        enabled = count > 0
        for w in (self.back_button, self.step_button, self.play_button):
            w.setEnabled(enabled)
        if res is None:
            self.position_label.setText("")
            self.step_view.set_step(None, message="Nothing to step through yet.")
            return
        self._step_index = max(0, min(self._step_index, count - 1))
        self.back_button.setEnabled(self._step_index > 0)
        self.step_button.setEnabled(self._step_index < count - 1)
        s = res.settings
        kernel = res.weight
        step = conv_step(res.input, kernel, self._step_index, s.bias, s.stride, s.padding, s.dilation)
        r, c = step.out_row, step.out_col
        activated = float(res.activated[r, c])
        act = ACTIVATIONS[s.activation]
        self.position_label.setText(f"Output row {r}, col {c} — position {self._step_index + 1} of {count}")
        names = ["R", "G", "B"] if res.input.ndim == 3 and res.input.shape[0] == 3 else None
        self.step_view.set_step(
            step,
            channel_names=names,
            activation=None if s.activation == "none" else act.label,
            activated=activated,
        )
        if not self.highlight_check.isChecked():
            return
        kh, kw = kernel.shape[-2:]
        if s.dilation == 1:
            window = [(int(step.rows[0]), int(step.cols[0]), kh, kw)]
        else:  # the taps are spread out: outline each one
            window = [(int(rr), int(cc), 1, 1) for rr in step.rows for cc in step.cols]
        self.input_map.set_highlight("window", window, WINDOW)
        self.conv_map.set_highlight("cell", [(r, c, 1, 1)], WINDOW)
        self.act_map.set_highlight("cell", [(r, c, 1, 1)], WINDOW)
        if res.pooled is not None:
            k = s.pool_size
            ps = s.pool_stride or k
            pp = s.pool_padding
            # The first pooling window (in reading order) that contains this output cell, if any.
            prs = [i for i in range(res.pooled.shape[0]) if i * ps - pp <= r < i * ps - pp + k]
            pcs = [j for j in range(res.pooled.shape[1]) if j * ps - pp <= c < j * ps - pp + k]
            if prs and pcs:
                pr, pc = prs[0], pcs[0]
                self.act_map.set_highlight(
                    "pool", [(pr * ps - pp, pc * ps - pp, k, k)], POOL_WINDOW, width=2, dashed=True
                )
                self.pool_map.set_highlight("pool", [(pr, pc, 1, 1)], POOL_WINDOW)
