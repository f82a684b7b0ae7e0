"""Compress: prune and quantize a model, then see size, speed and quality side by side.

Left (:class:`CompressForm`): the model (a fine-tuned run, or a zoo model with optional weights), the images
that judge it (accuracy with labels, agreement with the original's predictions without), pruning,
a fine-tune after pruning, quantization, the sparsity sweep and the output folder; Run / Cancel, the
progress bar and the stage line below. Right (:class:`CompressResults`): the variants' table, the
quality-vs-size scatter, the sweep, the per-layer sparsity bars and the weight histograms, with the live
fine-tune curves in their own tab; "Open in explorer" emits ``open_in_explorer(model file, "")``.

All the work is the core's: ``check_request`` first (on a worker thread; its CompressError is shown under
the form), then ``run_compression`` in a worker *process* (it fine-tunes and times the models on the CPU:
in this process it would make the window stutter and the window would disturb its timings). Only one run
at a time.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.compress.spec import (
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    CompressStage,
)
from cnn_explorer.core.digits import write_digit_folder
from cnn_explorer.core.training import EpochEnd, Notice, RunStarted, StepEnd
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.compress.form_panel import CompressForm, FormError
from cnn_explorer.qt.pages.compress.jobs import check, read_report
from cnn_explorer.qt.pages.compress.results_panel import CompressResults
from cnn_explorer.qt.style import SMALL_MUTED_STYLE
from cnn_explorer.qt.workers import Job, LatestRunner, start_process_job

DEMO_TIMEOUT_MS = 240_000  # the screenshot's run is cancelled if the machine is too slow for it
IDLE_STATUS = (
    "Choose a model and how to compress it, then Run: every variant is saved and measured the same way "
    "(size on disk, non-zero parameters, CPU latency, quality)."
)


class CompressPage(Page):
    title = "Compress"
    open_in_explorer = Signal(str, str)  # model file, image path ("" for none)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._check_runner = LatestRunner(self)
        self._report_runner = LatestRunner(self)
        self._job: Job | None = None
        self._request: tuple[CompressSource, CompressSpec, Path] | None = None  # being checked or run
        self._shut_down = False
        self._demo_running = False
        self._demo_dir: tempfile.TemporaryDirectory | None = None
        self._demo_timer = QTimer(self)
        self._demo_timer.setSingleShot(True)
        self._demo_timer.timeout.connect(self.cancel)

        self.form = CompressForm()
        self.form.run_requested.connect(self.run)
        self.form.cancel_requested.connect(self.cancel)
        self.form.open_report_requested.connect(self.choose_report)
        self.form.changed.connect(self._form_changed)
        self.results = CompressResults()
        self.results.open_requested.connect(lambda path: self.open_in_explorer.emit(path, ""))
        self.status_label = QLabel(IDLE_STATUS)
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(SMALL_MUTED_STYLE)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        right = QWidget()
        v = QVBoxLayout(right)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.status_label)
        v.addWidget(self.results, 1)
        content = ScrollContent()
        row = QHBoxLayout(content)
        row.setContentsMargins(6, 6, 6, 6)
        row.addWidget(self.form)
        row.addWidget(right, 1)
        self.scroll_page(content)

    # -- page API ---------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._demo_running or self.is_running() or self._report_runner.busy

    def is_running(self) -> bool:
        """A run is being checked or is under way."""
        return self._request is not None

    def prepare_screenshot(self) -> None:
        """A real, small compression: LeNet-5 judged on 200 held-out UCI digits (accuracy), pruned 50 %,
        int8-static and the sweep, into a temporary folder; it is cancelled if it takes too long."""
        if self.is_running():
            return
        self._demo_dir = tempfile.TemporaryDirectory(prefix="cnn-explorer-compress-")
        digits = write_digit_folder(Path(self._demo_dir.name) / "digits", per_class=20)
        form = self.form
        form.set_model("lenet5")
        form.weights_edit.clear()
        form.data_edit.setText(str(digits))
        form.prune_combo.setCurrentIndex(form.prune_combo.findData("global"))
        form.prune_spin.setValue(50)
        form.finetune_spin.setValue(0)
        form.quantize_combo.setCurrentIndex(form.quantize_combo.findData("int8-static"))
        form.sweep_check.setChecked(True)
        form.out_edit.setText(str(Path(self._demo_dir.name) / "lenet5-compressed"))
        self._demo_running = True
        self._demo_timer.start(DEMO_TIMEOUT_MS)
        self.run()
        if not self.is_running():
            self._demo_done()

    def shutdown(self) -> None:
        self._shut_down = True
        self._demo_timer.stop()
        self._check_runner.shutdown()
        self._report_runner.shutdown()
        if self._job is not None and self._job.is_running:
            self._job.cancel()  # cooperative; the window joins the worker
        elif self._demo_dir is not None:
            self._demo_dir.cleanup()
            self._demo_dir = None

    # -- running ----------------------------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        """Check the form's request in a worker, then run it in a worker process."""
        if self.is_running() or self._shut_down:
            return
        try:
            source, spec = self.form.source(), self.form.spec()
        except FormError as exc:
            self.form.show_error(str(exc))
            return
        out_dir = self.form.out_dir()
        self.form.show_error("")
        self._request = (source, spec, out_dir)
        self.form.set_running(True)
        self._progress(0, 0, "Checking the request…")
        self._check_runner.request(
            ("check", source, spec),
            check,
            source,
            spec,
            on_result=lambda _none: self._start(source, spec, out_dir),
            on_failed=self._failed,
            on_cancelled=lambda: self._ended("Cancelled", "Cancelled before it started."),
            name="compress check",
        )

    def _start(self, source: CompressSource, spec: CompressSpec, out_dir: Path) -> None:
        from cnn_explorer.core.compress import run_compression

        if self._shut_down:
            return
        self.results.plots.reset()
        self._progress(0, 0, f"Starting: loading the model… (output: {out_dir})")
        job = self._job = start_process_job(run_compression, source, spec, out_dir, name="compress")
        job.events.connect(lambda events, job=job: self._on_events(job, events))
        job.result.connect(lambda report, job=job: self._on_result(job, report, out_dir))
        job.failed.connect(lambda exc, job=job: job is self._job and self._failed(exc))
        job.cancelled.connect(lambda job=job: job is self._job and self._cancelled())
        job.finished.connect(lambda job=job: self._on_finished(job))

    @Slot()
    def cancel(self) -> None:
        if self._job is not None and self._job.is_running:
            self._job.cancel()
            self.form.stage_label.setText("Cancelling after the current step…")
        elif self._request is not None:
            self._check_runner.cancel()

    def _on_events(self, job: Job, events: list) -> None:
        if job is not self._job:
            return
        for ev in events:
            if isinstance(ev, CompressStage):
                self._progress(ev.done, ev.total, ev.text)
            elif isinstance(ev, RunStarted):
                self.results.plots.reset()
                self.results.show_training()
                self.form.stage_label.setText(
                    f"Fine-tuning the pruned model on {ev.n_train} images ({ev.config.epochs} epochs)…"
                )
            elif isinstance(ev, StepEnd):
                self.results.plots.add_step(ev.epoch, ev.step, ev.steps_per_epoch, ev.loss, ev.lr)
            elif isinstance(ev, EpochEnd):
                self.results.plots.add_epoch(ev.epoch, ev.train_loss, ev.val_loss, ev.train_acc, ev.val_acc)
                if ev.is_best:
                    self.results.plots.set_best_epoch(ev.epoch)
            elif isinstance(ev, Notice):
                self.status_label.setText(html.escape(ev.message))

    def _on_result(self, job: Job, report: CompressReport, out_dir: Path) -> None:
        if job is not self._job:
            return
        self._show_report(report, out_dir)
        bar = self.form.progress_bar
        bar.setRange(0, 1)
        bar.setValue(1)
        bar.setFormat("Finished")
        self.form.stage_label.setText(f"{len(report.variants)} variants measured.")
        self.status_message.emit(f"Compress: {len(report.variants)} variants saved in {out_dir}")

    def _failed(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, CompressError) else f"{type(exc).__name__}: {exc}"
        self.form.show_error(message)
        self._ended("Failed", "Failed: see the message above Run.")
        self.status_message.emit(f"Compress failed: {message}")

    def _cancelled(self) -> None:
        self._ended("Cancelled", "Cancelled: the output folder is as it was, no half-written file is kept.")

    def _ended(self, outcome: str, text: str) -> None:
        bar = self.form.progress_bar
        bar.setRange(0, 1)
        bar.setValue(0)
        bar.setFormat(outcome)
        self.form.stage_label.setText(text)
        if self._job is None:  # it ended before a worker process started
            self._request = None
            self.form.set_running(False)
            if self._demo_running:
                self._demo_done()

    def _on_finished(self, job: Job) -> None:
        if job is not self._job:
            return
        self._job = None
        self._request = None
        self.results.plots.redraw()
        self.form.set_running(False)
        if self._demo_running:
            self._demo_done()
        if self._shut_down and self._demo_dir is not None:
            self._demo_dir.cleanup()
            self._demo_dir = None

    def _progress(self, done: int, total: int, text: str) -> None:
        bar = self.form.progress_bar
        bar.setRange(0, max(0, total))  # 0..0: busy, until the run says how many steps it has
        bar.setValue(done)
        bar.setFormat("%p%" if total else "Working…")
        self.form.stage_label.setText(text)

    def _demo_done(self) -> None:
        self._demo_running = False
        self._demo_timer.stop()

    def _form_changed(self) -> None:
        if self.form.error() and not self.is_running():
            self.form.show_error("")  # the user is fixing it; Run checks again

    # -- earlier results --------------------------------------------------------------------------
    @Slot()
    def choose_report(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A compression's output folder (with report.json)")
        if folder:
            self.open_report(folder)

    def open_report(self, out_dir: str | Path) -> None:
        """Show a finished run's report.json (read on a worker thread)."""
        out_dir = Path(out_dir).expanduser()
        self._report_runner.request(
            ("report", str(out_dir)),
            read_report,
            out_dir,
            on_result=lambda report: self._show_report(report, out_dir),
            on_failed=lambda exc: self.form.show_error(str(exc)),
            name="read compression report",
        )

    def _show_report(self, report: CompressReport, out_dir: Path) -> None:
        self.results.set_report(report, out_dir)
        notes = "".join(f"<br>{html.escape(n)}" for n in report.notes)
        self.status_label.setText(
            f"<b>{html.escape(report.base)}</b>: {len(report.variants)} variants in "
            f"{html.escape(str(out_dir))}{notes}"
        )
