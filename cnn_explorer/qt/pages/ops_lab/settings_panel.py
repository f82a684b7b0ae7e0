"""The Operations lab's settings, one box per stage: the convolution (kernel presets and editor, stride,
padding, dilation, bias), the activation (function, its parameter, formula and derivative, and its
curve) and the pooling (mode, size, stride, padding). The convolution and pooling boxes have a
check box that switches the stage off (activation "None" does the same for the activation). Each box emits
``changed`` when the result it feeds must be recomputed."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QDoubleSpinBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.kernels import KERNEL_PRESETS, kernel_preset
from cnn_explorer.core.lab import LabSettings
from cnn_explorer.core.ops import ACTIVATIONS, activation_curve
from cnn_explorer.qt.pages.ops_lab.helpers import CUSTOM, combo, form, hint, spin
from cnn_explorer.qt.widgets.kernel_editor import KernelEditor


class ConvPanel(QGroupBox):
    """The kernel (named or hand-edited) and how it slides (stride, padding, dilation, bias); the check
    box switches the convolution off. How many filters, on how many channels: the depth panel."""

    changed = Signal()
    invalid_entry = Signal(str)  # a kernel cell was refused; the message says why

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Convolution", parent)
        self.setCheckable(True)
        self.setChecked(True)
        self.setToolTip("Untick to switch the convolution off: the input goes straight to the next stage")
        self.kernel_combo = combo()
        self.kernel_combo.addItems([*KERNEL_PRESETS, CUSTOM])
        self.kernel_combo.setCurrentText("Sobel x")
        self.kernel_combo.setToolTip("A named kernel; edit any number to make your own")
        self.kernel_combo.setMinimumContentsLength(12)
        self.kernel_editor = KernelEditor()
        self.kernel_info = hint()
        self.stride_spin = spin(1, 8, 1, "How far the window moves between outputs")
        self.padding_spin = spin(0, 7, 0, "Rings of zeros added around the input")
        self.dilation_spin = spin(1, 4, 1, "Spacing between the kernel's taps (1 = touching)")
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
        numbers = form()
        numbers.addRow("Stride", self.stride_spin)
        numbers.addRow("Padding", self.padding_spin)
        numbers.addRow("Dilation", self.dilation_spin)
        numbers.addRow("Bias", self.bias_spin)
        right = QVBoxLayout()
        right.addLayout(numbers)
        right.addStretch(1)
        row = QHBoxLayout()
        row.setSpacing(10)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.setSpacing(2)
        layout.addLayout(row, 1)
        layout.addWidget(self.kernel_info)

        self.kernel_combo.currentTextChanged.connect(self._on_kernel_preset)
        self.kernel_editor.kernel_changed.connect(self._on_kernel_edited)
        self.kernel_editor.invalid_entry.connect(self.invalid_entry)
        for box in (self.stride_spin, self.padding_spin, self.dilation_spin):
            box.valueChanged.connect(self._emit_changed)
        self.bias_spin.valueChanged.connect(self._emit_changed)
        self.toggled.connect(self._emit_changed)
        self._on_kernel_preset(self.kernel_combo.currentText())

    def set_kernel(self, kernel: np.ndarray, name: str = "") -> None:
        """Show ``kernel``, under its preset's name when it is one (``name`` first); ``changed`` follows."""
        kernel = np.asarray(kernel, dtype=np.float64)

        def same(preset: str) -> bool:
            values = KERNEL_PRESETS[preset].array
            return values.shape == kernel.shape and np.array_equal(values, kernel)

        named = [name] if name in KERNEL_PRESETS else []
        preset = next((n for n in [*named, *KERNEL_PRESETS] if same(n)), CUSTOM)
        self.kernel_combo.blockSignals(True)
        self.kernel_combo.setCurrentText(preset)
        self.kernel_combo.blockSignals(False)
        self.kernel_editor.set_kernel(kernel)
        self.kernel_info.setText(
            KERNEL_PRESETS[preset].description
            if preset != CUSTOM
            else "Your own kernel: click a number to change it."
        )
        self.changed.emit()

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()

    @Slot(str)
    def _on_kernel_preset(self, name: str) -> None:
        if name == CUSTOM:
            self.kernel_info.setText("Your own kernel: click a number to change it.")
            return
        self.kernel_editor.set_kernel(kernel_preset(name))
        self.kernel_info.setText(KERNEL_PRESETS[name].description)
        self.changed.emit()

    @Slot(object)
    def _on_kernel_edited(self, _kernel: np.ndarray) -> None:
        self.kernel_combo.blockSignals(True)
        self.kernel_combo.setCurrentText(CUSTOM)
        self.kernel_combo.blockSignals(False)
        self.kernel_info.setText("Your own kernel: click a number to change it.")
        self.changed.emit()


class ActivationPanel(QGroupBox):
    """The activation function, its parameter (slope, α) when it has one, its formula and its curve."""

    changed = Signal()  # the function or its parameter changed: recompute, and redraw the curve

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Activation", parent)
        self.act_combo = combo()
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
        rows = form()
        rows.addRow("Function", self.act_combo)
        rows.addRow(self.act_param_label, self.act_param_spin)
        layout = QVBoxLayout(self)
        layout.setSpacing(3)
        layout.addLayout(rows)
        layout.addWidget(self.act_formula)
        layout.addWidget(self.act_plot, 1)
        self.act_combo.currentIndexChanged.connect(self._on_activation_changed)
        self.act_param_spin.valueChanged.connect(self._emit_changed)
        self._show_activation()
        self.draw_curve(3.0)

    def name(self) -> str:
        return str(self.act_combo.currentData())

    def param(self) -> float | None:
        act = ACTIVATIONS[self.name()]
        return self.act_param_spin.value() if act.param is not None else None

    def draw_curve(self, reach: float) -> None:
        """The activation from −``reach`` to ``reach`` (the page passes the range the convolution made;
        the "Activation" tab draws it with its derivative)."""
        xs = np.linspace(-reach, reach, 201)
        self.act_curve.setData(xs, activation_curve(self.name(), self.param(), xs)[0])

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()

    def _show_activation(self) -> None:
        act = ACTIVATIONS[self.name()]
        has_param = act.param is not None
        self.act_param_spin.setEnabled(has_param)
        self.act_param_label.setText({"slope": "Slope", "alpha": "α"}.get(act.param or "", "Parameter"))
        if has_param:
            self.act_param_spin.blockSignals(True)
            self.act_param_spin.setValue(act.default)
            self.act_param_spin.blockSignals(False)
        self.act_formula.setText(
            f"<b>f(x)</b> = {act.formula}<br><span style='color:#2166ac'>f′(x) = {act.derivative}</span>"
        )
        self.act_formula.setWordWrap(True)

    @Slot()
    def _on_activation_changed(self) -> None:
        self._show_activation()
        self.changed.emit()


class PoolPanel(QGroupBox):
    """The pooling window: mode (max, average, sum), size, stride and padding, with a sentence; the check
    box switches pooling off."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Pooling", parent)
        self.setCheckable(True)
        self.setChecked(True)
        self.setToolTip("Untick to switch pooling off: the activation's map is the output")
        self.pool_mode_combo = combo()
        for text, key in (("Max", "max"), ("Average", "avg"), ("Sum", "sum")):
            self.pool_mode_combo.addItem(text, key)
        self.pool_size_spin = spin(1, 8, 2, "Pooling window size (k×k)")
        self.pool_stride_spin = spin(0, 8, 0, "How far the pooling window moves (0 = its size)")
        self.pool_stride_spin.setSpecialValueText("= size")
        self.pool_padding_spin = spin(0, 1, 0, "Padding for pooling (at most half the window)")
        self.pool_info = hint()
        rows = form()
        rows.addRow("Mode", self.pool_mode_combo)
        rows.addRow("Size", self.pool_size_spin)
        rows.addRow("Stride", self.pool_stride_spin)
        rows.addRow("Padding", self.pool_padding_spin)
        layout = QVBoxLayout(self)
        layout.setSpacing(3)
        layout.addLayout(rows)
        layout.addWidget(self.pool_info)
        layout.addStretch(1)
        self.pool_mode_combo.currentIndexChanged.connect(self._emit_changed)
        self.pool_size_spin.valueChanged.connect(self._on_pool_size)
        self.pool_stride_spin.valueChanged.connect(self._emit_changed)
        self.pool_padding_spin.valueChanged.connect(self._emit_changed)
        self.toggled.connect(self._emit_changed)

    def mode(self) -> str:
        """The pooling mode in force: "none" while the box is unticked."""
        return str(self.pool_mode_combo.currentData()) if self.isChecked() else "none"

    def describe(self, s: LabSettings) -> None:
        """One sentence on what the pooling of ``s`` (the settings last computed) does."""
        stride = s.pool_stride or s.pool_size
        what = {"max": "the largest value", "avg": "the average", "sum": "the sum", "none": "nothing"}[
            s.pool_mode
        ]
        self.pool_info.setText(
            f"Each {s.pool_size}×{s.pool_size} window, moved {stride} at a time, keeps {what}."
            if s.pool_mode != "none"
            else "Pooling is off: the activation map is the output."
        )

    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()

    @Slot(int)
    def _on_pool_size(self, size: int) -> None:
        self.pool_padding_spin.setMaximum(size // 2)
        self.changed.emit()
