"""The Operations lab's input panel: where the numbers come from (the loaded image — one channel or all
three — at a working size and pixel scale, or a typed matrix with its examples and parse errors)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QGroupBox, QPlainTextEdit, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.kernels import COURSE_MATRIX, INPUT_PRESETS, input_preset
from cnn_explorer.core.ops import format_matrix, parse_matrix
from cnn_explorer.qt.pages.ops_lab.compute import LabInput
from cnn_explorer.qt.pages.ops_lab.helpers import OWN_MATRIX, SOURCES, combo, form, hint, spin


class InputPanel(QGroupBox):
    """The "Input" box. ``matrix`` is the typed matrix as parsed (None while the text has a mistake)."""

    changed = Signal()  # something the computation depends on changed: recompute soon

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Input", parent)
        self.matrix: np.ndarray | None = input_preset(COURSE_MATRIX)
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

        self.input_stack = QStackedWidget()
        self.input_stack.addWidget(image_page)
        self.input_stack.addWidget(matrix_page)
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
        if loaded is None:
            return None
        return LabInput(
            "image",
            pixels=loaded.pixels,
            channels=key,
            size=self.size_spin.value(),
            scale=float(self.scale_combo.currentData()),
        )

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
        self.input_stack.setCurrentIndex(1 if self.source_key() == "matrix" else 0)

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
