"""The Compress page's left column: what to compress, what to judge it on, how to compress it, and Run.

:class:`CompressForm` turns its fields into the core's plain values — :meth:`source` (a
:class:`CompressSource`), :meth:`spec` (a :class:`CompressSpec`) and :meth:`out_dir` — and raises
:class:`FormError` for what it can tell on its own (a per-layer line it cannot read). Everything else is
the core's ``check_request``, which the page runs in a worker and whose message :meth:`show_error` puts
under the form. Run / Cancel, the progress bar and the stage line stay pinned at the bottom.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.spec import QUANTIZE_MODES, SWEEP_SPARSITIES, CompressSource, CompressSpec
from cnn_explorer.qt.pages.base import form_scroll
from cnn_explorer.qt.style import MUTED, NOTICE_STYLE, SMALL_MUTED_STYLE

WIDTH = 350
DEFAULT_MODEL = "lenet5"  # small and bundled: a compression of it takes seconds
MODEL_FILE_FILTER = "Model files (*.pt *.pth *.safetensors *.ckpt);;All files (*)"
PRUNE_METHODS = (
    ("none", "No pruning"),
    ("global", "Global magnitude (single weights)"),
    ("per-layer", "Per layer (single weights)"),
    ("structured", "Structured L1 (whole channels)"),
)
QUANTIZE_TITLES = {
    "int8-dynamic": "int8 dynamic (Linear layers)",
    "int8-static": "int8 static (whole CNN, calibrated)",
    "fp16": "fp16 weights",
}


class FormError(ValueError):
    """A field the form itself cannot read; the message names the field."""


def parse_per_layer(text: str) -> tuple[tuple[str, float], ...]:
    """ "c1=30, f6=80" (percent) -> (("c1", 0.3), ("f6", 0.8)); FormError for anything else."""
    pairs = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        try:
            pct = float(value.strip().rstrip("%"))
        except ValueError:
            pct = float("nan")
        if not sep or not name.strip() or not 0 < pct < 100:
            raise FormError(
                f"Per-layer sparsity: cannot read “{part}”; write layer=percent, e.g. c1=30, f6=80."
            )
        pairs.append((name.strip(), pct / 100))
    if not pairs:
        raise FormError("Per-layer sparsity: name at least one layer, e.g. c1=30, f6=80.")
    return tuple(pairs)


def app_compress_folder() -> Path:
    """Where compressions of zoo models go by default (the app's data folder, beside its runs)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".cnn-explorer") / "compressed"


def _path_row(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    h = QHBoxLayout(row)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(edit, 1)
    h.addWidget(button)
    return row


def _small(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(SMALL_MUTED_STYLE)
    return label


class CompressForm(QWidget):
    run_requested = Signal()
    cancel_requested = Signal()
    open_report_requested = Signal()
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(0, 0, 4, 0)
        col.addWidget(self._build_source())
        col.addWidget(self._build_data())
        col.addWidget(self._build_compression())
        col.addWidget(self._build_output())
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(NOTICE_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        col.addWidget(self.error_label)
        col.addStretch(1)
        scroll = form_scroll(content)

        self.run_button = QPushButton("▶ Run")
        self.run_button.setStyleSheet("font-weight: 600; padding: 6px;")
        self.run_button.setToolTip("Make the variants, measure each one and save them in the output folder")
        self.run_button.clicked.connect(lambda: self.run_requested.emit())
        self.cancel_button = QPushButton("■ Cancel")
        self.cancel_button.setToolTip("Stop the run; no half-written model file is left behind")
        self.cancel_button.clicked.connect(lambda: self.cancel_requested.emit())
        self.open_report_button = QPushButton("Open report…")
        self.open_report_button.setToolTip("Show an earlier compression: a folder with its report.json")
        self.open_report_button.clicked.connect(lambda: self.open_report_requested.emit())
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        buttons.addWidget(self.open_report_button, 1)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("No run yet")
        self.progress_bar.setTextVisible(True)
        self.stage_label = _small(" ")

        self.setFixedWidth(WIDTH)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(scroll, 1)
        v.addLayout(buttons)
        v.addWidget(self.progress_bar)
        v.addWidget(self.stage_label)
        self._update_enabled()
        self.set_running(False)

    # -- building ---------------------------------------------------------------------------------
    def _build_source(self) -> QGroupBox:
        box = QGroupBox("Model to compress")
        form = QFormLayout(box)
        self.run_radio = QRadioButton("A fine-tuned run")
        self.zoo_radio = QRadioButton("A zoo model")
        self.source_group = QButtonGroup(self)
        self.source_group.addButton(self.run_radio)
        self.source_group.addButton(self.zoo_radio)
        self.zoo_radio.setChecked(True)
        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("a run folder (from Fine-tune)")
        self.run_button_choose = QPushButton("Choose…")
        self.run_button_choose.clicked.connect(self._choose_run)
        self.model_combo = QComboBox()
        for info in zoo.available_models():
            self.model_combo.addItem(info.title, info.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, info.summary, Qt.ItemDataRole.ToolTipRole
            )
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(DEFAULT_MODEL)))
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("its own weights (optional)")
        self.weights_choose = QPushButton("Choose…")
        self.weights_choose.clicked.connect(self._choose_weights)
        form.addRow(self.run_radio)
        form.addRow(_path_row(self.run_edit, self.run_button_choose))
        form.addRow(self.zoo_radio)
        form.addRow("Model", self.model_combo)
        form.addRow("Weights", _path_row(self.weights_edit, self.weights_choose))
        for w in (self.run_radio, self.zoo_radio):
            w.toggled.connect(self._on_changed)
        for edit in (self.run_edit, self.weights_edit):
            edit.textChanged.connect(self._on_changed)
        self.model_combo.currentIndexChanged.connect(self._on_changed)
        return box

    def _build_data(self) -> QGroupBox:
        box = QGroupBox("Images to judge it on")
        v = QVBoxLayout(box)
        self.data_edit = QLineEdit()
        self.data_choose = QPushButton("Choose…")
        self.data_choose.clicked.connect(self._choose_data)
        self.data_edit.textChanged.connect(self._on_changed)
        v.addWidget(_path_row(self.data_edit, self.data_choose))
        self.quality_label = _small()
        self.quality_label.setTextFormat(Qt.TextFormat.RichText)
        v.addWidget(self.quality_label)
        return box

    def _build_compression(self) -> QGroupBox:
        box = QGroupBox("Compression")
        form = QFormLayout(box)
        self.prune_combo = QComboBox()
        for key, title in PRUNE_METHODS:
            self.prune_combo.addItem(title, key)
        self.prune_combo.setCurrentIndex(self.prune_combo.findData("global"))
        self.prune_spin = QSpinBox()
        self.prune_spin.setRange(1, 99)
        self.prune_spin.setValue(50)
        self.prune_spin.setSuffix(" % of the weights")
        self.per_layer_edit = QLineEdit()
        self.per_layer_edit.setPlaceholderText("layer=percent, e.g. c1=30, f6=80")
        self.finetune_spin = QSpinBox()
        self.finetune_spin.setRange(0, 50)
        self.finetune_spin.setSuffix(" epochs")
        self.finetune_spin.setToolTip(
            "A short fine-tune after pruning recovers accuracy (needs labelled images)"
        )
        self.quantize_combo = QComboBox()
        self.quantize_combo.addItem("No quantization", None)
        for mode in QUANTIZE_MODES:
            self.quantize_combo.addItem(QUANTIZE_TITLES.get(mode, mode), mode)
        levels = ", ".join(f"{100 * s:.0f}" for s in SWEEP_SPARSITIES)
        self.sweep_check = QCheckBox(f"Sparsity sweep ({levels} %)")
        self.sweep_check.setToolTip(
            "Also measure quality at each level of global pruning: how far can we prune?"
        )
        form.addRow("Pruning", self.prune_combo)
        form.addRow("Amount", self.prune_spin)
        self.per_layer_label = QLabel("Per layer")
        form.addRow(self.per_layer_label, self.per_layer_edit)
        form.addRow("Fine-tune after", self.finetune_spin)
        form.addRow("Quantization", self.quantize_combo)
        form.addRow(self.sweep_check)
        self.prune_combo.currentIndexChanged.connect(self._on_changed)
        self.prune_spin.valueChanged.connect(self._on_changed)
        self.per_layer_edit.textChanged.connect(self._on_changed)
        self.finetune_spin.valueChanged.connect(self._on_changed)
        self.quantize_combo.currentIndexChanged.connect(self._on_changed)
        self.sweep_check.toggled.connect(self._on_changed)
        return box

    def _build_output(self) -> QGroupBox:
        box = QGroupBox("Output folder")
        v = QVBoxLayout(box)
        self.out_edit = QLineEdit()
        self.out_choose = QPushButton("Choose…")
        self.out_choose.clicked.connect(self._choose_out)
        v.addWidget(_path_row(self.out_edit, self.out_choose))
        v.addWidget(_small("Each variant is saved there as compressed/<variant>.pt, with report.json."))
        return box

    # -- values -----------------------------------------------------------------------------------
    def uses_run(self) -> bool:
        return self.run_radio.isChecked()

    def source(self) -> CompressSource:
        data = self.data_edit.text().strip()
        if self.uses_run():
            run = self.run_edit.text().strip()
            return CompressSource(run_dir=Path(run) if run else None, data=Path(data) if data else None)
        weights = self.weights_edit.text().strip()
        return CompressSource(
            model=str(self.model_combo.currentData()),
            weights=Path(weights) if weights else None,
            data=Path(data) if data else None,
        )

    def spec(self) -> CompressSpec:
        method = self.prune_combo.currentData()
        share = self.prune_spin.value() / 100
        pruned = method != "none"
        return CompressSpec(
            prune=share if method in ("global", "structured") else None,
            per_layer=parse_per_layer(self.per_layer_edit.text()) if method == "per-layer" else (),
            structured=method == "structured",
            finetune_epochs=self.finetune_spin.value() if pruned else 0,
            quantize=self.quantize_combo.currentData(),
            sweep=self.sweep_check.isChecked(),
        )

    def out_dir(self) -> Path:
        """The folder typed in, else the default: beside the run, or in the app's data folder."""
        text = self.out_edit.text().strip()
        if text:
            return Path(text).expanduser()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = self.run_edit.text().strip()
        if self.uses_run() and run:
            return Path(run).expanduser() / f"compressed-{stamp}"
        return app_compress_folder() / f"{self.model_combo.currentData()}-{stamp}"

    # -- state ------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.open_report_button.setEnabled(not running)

    def show_error(self, text: str) -> None:
        """The core's (or the form's) message under the form; "" hides it."""
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def error(self) -> str:
        return self.error_label.text() if self.error_label.isVisibleTo(self) else ""

    def set_model(self, name: str) -> None:
        self.zoo_radio.setChecked(True)
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(name)))

    def set_run(self, path: str | Path) -> None:
        self.run_radio.setChecked(True)
        self.run_edit.setText(str(path))

    def _on_changed(self, *_args: object) -> None:
        self._update_enabled()
        self.changed.emit()

    def _update_enabled(self) -> None:
        run = self.uses_run()
        self.run_edit.setEnabled(run)
        self.run_button_choose.setEnabled(run)
        for w in (self.model_combo, self.weights_edit, self.weights_choose):
            w.setEnabled(not run)
        method = self.prune_combo.currentData()
        self.prune_spin.setEnabled(method in ("global", "structured"))
        self.per_layer_edit.setVisible(method == "per-layer")
        self.per_layer_label.setVisible(method == "per-layer")
        self.finetune_spin.setEnabled(method != "none")
        self.data_edit.setPlaceholderText("the run's validation split" if run else "the bundled photos")
        self.out_edit.setPlaceholderText(
            "default: the run's folder/compressed-<time>" if run else f"default: {app_compress_folder()}/…"
        )
        self.quality_label.setText(self._quality_text())

    def _quality_text(self) -> str:
        """What "quality" will mean, said before the run (the core measures it the same way)."""
        data = self.data_edit.text().strip()
        if self.uses_run() and not data:
            return "Measures <b>accuracy</b> on the run's validation split."
        if not data:
            return (
                "Measures <b>agreement</b> with the original model's top-1 / top-5 on the bundled photos "
                "(no labels, so it is not accuracy)."
            )
        return (
            "Measures <b>accuracy</b> on its validation split if its sub-folders are classes the model "
            "outputs; otherwise <b>agreement</b> with the original's top-1 / top-5 (not accuracy). "
            f"<span style='color:{MUTED}'>A fine-tune after pruning needs the labelled kind.</span>"
        )

    # -- choosers ---------------------------------------------------------------------------------
    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A fine-tuned run folder", self.run_edit.text())
        if folder:
            self.set_run(folder)

    def _choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights file", self.weights_edit.text(), MODEL_FILE_FILTER
        )
        if path:
            self.weights_edit.setText(path)

    def _choose_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Images to judge the variants on", self.data_edit.text()
        )
        if folder:
            self.data_edit.setText(folder)

    def _choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.out_edit.text())
        if folder:
            self.out_edit.setText(folder)
