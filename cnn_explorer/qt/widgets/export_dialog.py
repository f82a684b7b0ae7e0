"""The Export… dialog: a run folder, zoo model or weights file written as ONNX, TorchScript or safetensors,
verified against the original (core.export), with progress and the verification result.

The dialog is given *what* to export, never an in-memory model: its worker loads its own copy, so the
explorer's model is not shared across threads. The work is one core call chain run by a LatestRunner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.explorer.text import BadgeKind
from cnn_explorer.core.export.result import EXPORT_FORMATS, SUFFIXES, ExportError, ExportResult, Stage
from cnn_explorer.core.runs import RunDir, RunDirError
from cnn_explorer.qt.style import BADGE_COLOURS, NOTICE_STYLE, SMALL_MUTED_STYLE, TITLE_STYLE
from cnn_explorer.qt.widgets.compress_table import size_text
from cnn_explorer.qt.workers import LatestRunner

# The order shown, each with the one line that says what the format is for.
FORMAT_CHOICES = (
    ("onnx", "ONNX", "one file with graph and weights; runs with onnxruntime in C++, C#, JavaScript, mobile"),
    ("torchscript", "TorchScript", "a self-contained PyTorch program: torch.jit.load or libtorch, no Python"),
    (
        "safetensors",
        "safetensors",
        "weights only, loads without running code; rebuild the architecture first",
    ),
)
assert {f for f, _, _ in FORMAT_CHOICES} == set(EXPORT_FORMATS)

_fg, _bg = BADGE_COLOURS[BadgeKind.PRETRAINED]
PASSED_STYLE = f"color: {_fg}; background: {_bg}; border: 1px solid {_fg}; border-radius: 4px; padding: 4px;"
FAILED_STYLE = NOTICE_STYLE + " font-weight: 700;"


def export_job(
    run_dir: Path | None,
    model: str | None,
    weights: Path | None,
    fmt: str,
    out_path: Path,
    trust_code: bool = False,
    control: Control | None = None,
) -> ExportResult:
    """The worker's whole job: refuse a bad target at once, load the source, export and verify it."""
    from cnn_explorer.core.export import check_target, export_model, resolve_export_source  # imports torch

    check_target(out_path)  # before loading a model: a missing folder is reported in a moment
    if control is not None:
        control.report(Stage("loading", "the model and its verification images"))
    source = resolve_export_source(
        run_dir, model=model, weights=weights, trust_code=trust_code, control=control
    )
    checkpoint(control)
    result = export_model(
        source.loaded,
        fmt,
        out_path,
        images=source.images,
        images_source=source.images_source,
        origin=source.origin,
        control=control,
    )
    return dataclasses.replace(result, notes=[*source.notes, *result.notes]) if source.notes else result


def default_stem(run_dir: Path | None, model: str | None, weights: Path | None) -> str:
    """The file name without suffix: the model's name (a run's, from its config) or the weights file's."""
    if weights is not None:
        return Path(weights).stem
    if model:
        return model
    if run_dir is not None:
        with contextlib.suppress(RunDirError, OSError, ValueError, AttributeError):
            name = RunDir(run_dir).read_config().get("model")
            if isinstance(name, str) and name:
                return name
        return Path(run_dir).name or "model"
    return "model"


def describe_source(run_dir: Path | None, model: str | None, weights: Path | None) -> str:
    if run_dir is not None:
        return f"the fine-tuned model of the run {run_dir}"
    if weights is not None:
        on = f" on the {model} architecture" if model else ""
        return f"the weights file {weights}{on}"
    return f"the zoo model {model}"


class ExportDialog(QDialog):
    """Export… : choose a format and a file, export in the background, show the verification result."""

    exported = Signal(object)  # ExportResult, after a successful export (verified or not)

    def __init__(
        self,
        *,
        run_dir: Path | None = None,
        model: str | None = None,
        weights: Path | None = None,
        title: str = "",
        trust_code: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if (run_dir is None) == (model is None and weights is None):
            raise ValueError("ExportDialog needs either run_dir or model / weights")
        self._source = (
            Path(run_dir) if run_dir is not None else None,
            model,
            Path(weights) if weights is not None else None,
        )
        self._trust_code = trust_code
        self._result: ExportResult | None = None
        self._close_when_idle = False
        self._runner = LatestRunner(self)
        self._runner.busy_changed.connect(self._on_busy_changed)
        self.setWindowTitle(f"Export {title}" if title else "Export the model")
        self.setMinimumWidth(560)

        what = QLabel(f"Exporting {html.escape(title or describe_source(*self._source))}")
        what.setStyleSheet(TITLE_STYLE)
        what.setWordWrap(True)
        self.what_label = what

        self._formats = QButtonGroup(self)
        self._format_buttons: dict[str, QRadioButton] = {}
        formats_box = QVBoxLayout()
        formats_box.setSpacing(2)
        for fmt, name, why in FORMAT_CHOICES:
            button = QRadioButton(f"{name} ({SUFFIXES[fmt]})")
            button.setToolTip(why)
            explain = QLabel(why)
            explain.setStyleSheet(SMALL_MUTED_STYLE + " margin-left: 22px;")
            self._formats.addButton(button)
            self._format_buttons[fmt] = button
            formats_box.addWidget(button)
            formats_box.addWidget(explain)
            button.toggled.connect(lambda on, f=fmt: on and self._format_changed(f))

        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("the file to write")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self._choose_output)
        out_row = QHBoxLayout()
        out_row.addWidget(QLabel("Save as"))
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(self.choose_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # indeterminate: the steps take unequal, unknown times
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.stage_label = QLabel("")
        self.stage_label.setStyleSheet(SMALL_MUTED_STYLE)

        self.status_label = QLabel("")  # the verification line, or the error
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setVisible(False)
        self.details_label = QLabel("")  # size, model.json, notes
        self.details_label.setWordWrap(True)
        self.details_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details_label.setStyleSheet(SMALL_MUTED_STYLE)
        self.details_label.setVisible(False)

        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)

        layout = QVBoxLayout(self)
        layout.addWidget(what)
        layout.addSpacing(6)
        layout.addWidget(QLabel("Format"))
        layout.addLayout(formats_box)
        layout.addSpacing(6)
        layout.addLayout(out_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.details_label)
        layout.addStretch(1)
        layout.addLayout(buttons)

        folder = self._source[0] if self._source[0] is not None else Path.home()
        self._stem = default_stem(*self._source)
        self.output_edit.setText(str(folder / f"{self._stem}{SUFFIXES['onnx']}"))
        self._format_buttons["onnx"].setChecked(True)

    # -- public API ---------------------------------------------------------------------------------
    def format(self) -> str:
        for fmt, button in self._format_buttons.items():
            if button.isChecked():
                return fmt
        return "onnx"

    def set_format(self, fmt: str) -> None:
        if fmt not in self._format_buttons:
            raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
        self._format_buttons[fmt].setChecked(True)

    def output(self) -> Path:
        return Path(self.output_edit.text().strip()).expanduser()

    def set_output(self, path: str | os.PathLike[str]) -> None:
        self.output_edit.setText(str(path))

    def start(self) -> None:
        """Export with the chosen format to the chosen file, in the background."""
        if self.is_busy():
            return
        if not self.output_edit.text().strip():
            self._show_error("Choose a file to write the export to")
            return
        fmt, out = self.format(), self.output()
        self._result = None
        self._close_when_idle = False
        self.status_label.setVisible(False)
        self.details_label.setVisible(False)
        self.stage_label.setText("Starting…")
        run_dir, model, weights = self._source
        self._runner.request(
            ("export", fmt, str(out)),
            export_job,
            run_dir,
            model,
            weights,
            fmt,
            out,
            self._trust_code,
            name=f"export {fmt}",
            on_result=self._on_result,
            on_failed=lambda exc: self._on_failed(exc, out),
            on_events=self._on_events,
            on_cancelled=self._on_cancelled,
        )

    def is_busy(self) -> bool:
        return self._runner.busy

    def result(self) -> ExportResult | None:  # (QDialog.result() is the exit code; this one is the export's)
        return self._result

    def message(self) -> str:
        """What the dialog says now: the stage while running, then the verification line and details or
        the error."""
        parts = [w.text() for w in (self.status_label, self.details_label) if not w.isHidden() and w.text()]
        return "\n".join(parts) if parts else self.stage_label.text()

    def shutdown(self) -> None:
        """Stop the export and deliver nothing more (the owner is going away)."""
        self._runner.shutdown()

    # -- closing ---------------------------------------------------------------------------------------
    def reject(self) -> None:
        """Escape, the window's close button or Cancel when idle: while an export runs, cancel it and close
        once it has stopped (the half-written file is removed by the core)."""
        if self.is_busy():
            self._close_when_idle = True
            self._runner.cancel()
            self.stage_label.setText("Stopping the export…")
            return
        self._runner.shutdown()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.is_busy():
            event.ignore()
            self.reject()
            return
        self._runner.shutdown()
        super().closeEvent(event)

    # -- slots -------------------------------------------------------------------------------------------
    def _cancel_clicked(self) -> None:
        if self.is_busy():
            self._runner.cancel()
            self.stage_label.setText("Stopping the export…")
        else:
            self.reject()

    def _format_changed(self, fmt: str) -> None:
        """The file's suffix follows the format, unless the user typed a suffix of their own."""
        text = self.output_edit.text().strip()
        if not text:
            return
        path = Path(text)
        if path.suffix.lower() in (*SUFFIXES.values(), ""):
            self.output_edit.setText(str(path.with_suffix(SUFFIXES[fmt])))

    def _choose_output(self) -> None:
        fmt = self.format()
        name = dict((f, n) for f, n, _ in FORMAT_CHOICES)[fmt]
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.output_edit.text(), f"{name} (*{SUFFIXES[fmt]})"
        )
        if path:
            chosen = Path(path)
            self.set_output(chosen if chosen.suffix else chosen.with_suffix(SUFFIXES[fmt]))

    def _on_busy_changed(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.export_button.setEnabled(not busy)
        for widget in (*self._format_buttons.values(), self.output_edit, self.choose_button):
            widget.setEnabled(not busy)
        if not busy:
            self.stage_label.setText("")
            self.cancel_button.setText("Close" if self._result is not None else "Cancel")
            if self._close_when_idle:
                self._close_when_idle = False
                self._runner.shutdown()
                super().reject()

    def _on_events(self, events: list) -> None:
        stages = [e for e in events if isinstance(e, Stage)]
        if stages:
            last = stages[-1]
            self.stage_label.setText(f"{last.step.capitalize()}: {last.detail}…")

    def _on_result(self, result: ExportResult) -> None:
        self._result = result
        v = result.verification
        self.status_label.setText(v.line())
        self.status_label.setStyleSheet(PASSED_STYLE if v.passed else FAILED_STYLE)
        self.status_label.setVisible(True)
        details = [
            f"Wrote {result.path} ({size_text(result.size_bytes)}) in {result.seconds:.1f} s",
            f"Description: {result.model_json}",
            *result.notes,
        ]
        if not v.passed:
            details.insert(0, "The file is kept and its description says that it failed verification.")
        self.details_label.setText("\n".join(details))
        self.details_label.setVisible(True)
        self.exported.emit(result)

    def _on_failed(self, exc: BaseException, out: Path) -> None:
        if isinstance(exc, ExportError):
            text = str(exc)
            if str(out) not in text and out.name not in text:
                text = f"Could not export to {out}: {text}"
        else:
            text = f"Could not export to {out}: {exc}"
        self._show_error(text)

    def _on_cancelled(self) -> None:
        self._show_error("Export cancelled; nothing was written.")

    def _show_error(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(NOTICE_STYLE)
        self.status_label.setVisible(True)
        self.details_label.setVisible(False)
