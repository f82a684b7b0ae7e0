"""The Operations lab's input panel: where the numbers come from (the loaded image — one channel or all
three — at a working size and pixel scale, a typed matrix with its examples and parse errors, or a course
example's picture, which is used as it is)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QGroupBox, QPlainTextEdit, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.kernels import COURSE_MATRIX, INPUT_PRESETS, input_preset
from cnn_explorer.core.ops import format_matrix, format_number, parse_matrix
from cnn_explorer.qt.pages.ops_lab.compute import LabInput
from cnn_explorer.qt.pages.ops_lab.helpers import OWN_MATRIX, SOURCES, combo, form, hint, spin


class InputPanel(QGroupBox):
    """The "Input" box. ``matrix`` is the typed matrix as parsed (None while the text has a mistake);
    ``array`` a course example's (C, H, W) picture once one was chosen (source "array")."""

    changed = Signal()  # something the computation depends on changed: recompute soon

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Input", parent)
        self.matrix: np.ndarray | None = input_preset(COURSE_MATRIX)
        self.array: np.ndarray | None = None
        self._array_name = ""
        self.source_combo = combo()
        for text, key in SOURCES:
            self.source_combo.addItem(text, key)
        self.source_combo.setToolTip(
            "Compute on the loaded image (one channel or all three) or on numbers you type"
        )

        self.size_spin = spin(4, 512, 64, "The image is shrunk so its longer side has this many pixels")
        self.size_spin.setSuffix(" px")
        self.size_spin.setSingleStep(8)
        self.scale_combo = combo()
        self.scale_combo.addItem("0 … 255", 255.0)
        self.scale_combo.addItem("0 … 1", 1.0)
        self.scale_combo.setToolTip("Pixel values as bytes (0…255) or as fractions (0…1)")
        self.image_info = hint()
        image_page = QWidget()
        image_form = form()
        image_form.addRow("Working size", self.size_spin)
        image_form.addRow("Pixel values", self.scale_combo)
        image_form.addRow(self.image_info)
        image_page.setLayout(image_form)

        self.matrix_combo = combo()
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
        self.matrix_error = hint()
        self.matrix_error.setStyleSheet("color: #b22; font-size: 11px;")
        matrix_page = QWidget()
        mform = form()
        mform.addRow("Example", self.matrix_combo)
        mform.addRow(self.matrix_edit)
        mform.addRow(self.matrix_error)
        matrix_page.setLayout(mform)
        self.matrix_edit.setPlainText(format_matrix(self.matrix))

        self.array_info = hint()
        array_page = QWidget()
        aform = form()
        aform.addRow(self.array_info)
        array_page.setLayout(aform)

        self.input_stack = QStackedWidget()
        self.input_stack.addWidget(image_page)
        self.input_stack.addWidget(matrix_page)
        self.input_stack.addWidget(array_page)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        row = form()
        row.addRow("Source", self.source_combo)
        layout.addLayout(row)
        layout.addWidget(self.input_stack, 1)

        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.size_spin.valueChanged.connect(self._emit_changed)
        self.scale_combo.currentIndexChanged.connect(self._emit_changed)
        self.matrix_combo.currentTextChanged.connect(self._on_matrix_preset)
        self.matrix_edit.textChanged.connect(self._on_matrix_text)
        self._show_source()

    # -- what the page reads ----------------------------------------------------------------------
    def source_key(self) -> str:
        return str(self.source_combo.currentData())

    def current_source(self, loaded: LoadedImage | None) -> LabInput | None:
        """What to compute on now; None when there is nothing (no image, or a matrix with a mistake)."""
        key = self.source_key()
        if key == "matrix":
            return None if self.matrix is None else LabInput("matrix", matrix=self.matrix)
        if key == "array":
            if self.array is None:
                return None
            scale = 1.0 if float(np.nanmax(self.array)) <= 1.0 else 255.0
            return LabInput("array", matrix=self.array, scale=scale)
        if loaded is None:
            return None
        return LabInput(
            "image",
            pixels=loaded.pixels,
            channels=key,
            size=self.size_spin.value(),
            scale=float(self.scale_combo.currentData()),
        )

    def channels(self) -> int:
        """How many channels the chosen source has: 3 for RGB (an image's, or an example's picture)."""
        key = self.source_key()
        if key == "rgb":
            return 3
        if key == "array" and self.array is not None and self.array.ndim == 3:
            return int(self.array.shape[0])
        return 1

    def set_source(self, key: str) -> None:
        """Choose a source (``changed`` follows, as if the user had chosen it)."""
        self.source_combo.setCurrentIndex(self.source_combo.findData(key))

    def set_matrix(self, matrix: np.ndarray) -> None:
        """Type ``matrix`` in and compute on it (a course example's input)."""
        matrix = np.asarray(matrix, dtype=np.float64)
        same = [
            n
            for n, p in INPUT_PRESETS.items()
            if p.array.shape == matrix.shape and np.array_equal(p.array, matrix)
        ]
        if same:
            self.matrix_combo.setCurrentText(same[0])  # (types it in)
        if not same or self.matrix is None or not np.array_equal(self.matrix, matrix):
            self.matrix_edit.setPlainText(format_matrix(matrix))  # parsed; the example combo says "own"
        self.set_source("matrix")

    def set_array(self, array: np.ndarray, name: str) -> None:
        """Compute on a course example's picture ((C, H, W), used as it is)."""
        self.array = np.asarray(array, dtype=np.float64)
        self._array_name = name
        if self.source_combo.findData("array") < 0:
            self.source_combo.addItem("Course example's picture", "array")
        c = self.array.shape[0] if self.array.ndim == 3 else 1
        h, w = self.array.shape[-2:]
        lo, hi = format_number(float(self.array.min())), format_number(float(self.array.max()))
        self.array_info.setText(f"{name}: {c}×{h}×{w}, values {lo} … {hi}, used as they are.")
        if self.source_key() == "array":
            self.changed.emit()
        else:
            self.set_source("array")

    def show_image_info(self, loaded: LoadedImage, w: int, h: int) -> None:
        """Say how the image was used: its name, full size, and whether it was shrunk to ``w``×``h``."""
        full_w, full_h = loaded.size
        how = f"shrunk to {w}×{h}" if (w, h) != (full_w, full_h) else "used at full size"
        self.image_info.setText(f"{loaded.path.name}: {full_w}×{full_h}, {how}")

    # -- reacting to the controls -----------------------------------------------------------------
    @Slot()
    def _emit_changed(self) -> None:
        self.changed.emit()

    def _show_source(self) -> None:
        self.input_stack.setCurrentIndex({"matrix": 1, "array": 2}.get(self.source_key(), 0))

    @Slot()
    def _on_source_changed(self) -> None:
        self._show_source()
        self.changed.emit()

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
            self.matrix = parse_matrix(self.matrix_edit.toPlainText())
            self.matrix_error.setText(f"{self.matrix.shape[0]}×{self.matrix.shape[1]} matrix")
            self.matrix_error.setStyleSheet("color: #666; font-size: 11px;")
        except ValueError as exc:
            self.matrix = None
            self.matrix_error.setText(str(exc))
            self.matrix_error.setStyleSheet("color: #b22; font-size: 11px;")
        if not from_preset:
            self.matrix_combo.blockSignals(True)
            self.matrix_combo.setCurrentText(OWN_MATRIX)
            self.matrix_combo.blockSignals(False)
        if self.source_key() == "matrix":
            self.changed.emit()
