"""The Fine-tune page's training (a mixin of FineTunePage): Start, Resume, Pause and Stop, and the run's
events turned into the progress line, the banner, the live curves and, at the end, the results.

Runs go through ``core.training.fit`` / ``resume_with_logs`` in a child process
(``qt.workers.start_process_job``); their events arrive batched (≤ 20/s) and the plots redraw at most
10 times a second, so the page stays fluid while a run trains.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from PySide6.QtCore import Slot

from cnn_explorer.core import zoo
from cnn_explorer.core.data import DatasetError
from cnn_explorer.core.launch import launch_commands
from cnn_explorer.core.runs import RunDir, RunDirError, RunSummary, new_run_dir
from cnn_explorer.core.training import (
    STRATEGY_TITLES,
    ConfigError,
    EpochEnd,
    FileSkipped,
    Finished,
    Notice,
    PriorLogs,
    RunStarted,
    StepEnd,
    fit,
    resume_with_logs,
)
from cnn_explorer.core.transfer.progress import format_duration, hardware_text
from cnn_explorer.qt.pages.finetune.jobs import format_count
from cnn_explorer.qt.workers import Job, start_process_job


class TrainingBinding:
    def is_training(self) -> bool:
        return self._train_job is not None and self._train_job.is_running

    @property
    def training_job(self) -> Job | None:
        """The job of the latest run started here (running or not)."""
        return self._train_job

    @property
    def run_path(self) -> Path | None:
        """The run folder whose curves and results are on screen (the live one while training)."""
        return self._run_path

    # -- starting, pausing, stopping ---------------------------------------------------------------
    @Slot()
    def start_training(self) -> None:
        if self.is_training():
            return
        if self._scan is None:
            self._set_banner("Choose a usable dataset first (File ▸ Open dataset folder…).", "error")
            return
        watch = self.session.watch_image
        try:
            config = self.form.config(str(self._scan.root), watch_image=str(watch) if watch else "")
        except ConfigError as exc:
            self._set_banner(html.escape(str(exc)), "error")
            return
        scan = self._scan
        same_split = scan.layout == "train-val" or (
            scan.seed == config.seed and math.isclose(scan.val_fraction, config.val_fraction)
        )
        run_dir = new_run_dir(self.runs_folder, config.model, config.strategy)
        job = start_process_job(fit, config, run_dir, scan=scan if same_split else None, name="fine-tune")
        self._begin_run(
            job, run_dir, f"Starting {run_dir.name}: loading the model and the images…", config.epochs
        )

    @Slot(str, int)
    def resume_run(self, path: str, epochs: int) -> None:
        if self.is_training():
            return
        run_dir = Path(path)
        job = start_process_job(resume_with_logs, run_dir, epochs, name="fine-tune (resumed)")
        self._begin_run(job, run_dir, f"Resuming {run_dir.name} to {epochs} epochs…", epochs)

    def _begin_run(self, job: Job, run_dir: Path, message: str, epochs: int) -> None:
        self._train_job = job
        self._stopping = False
        self._run_path = run_dir
        self.results.set_run(None)
        self.results.predictions = []
        self.session.begin_run()
        self.watch_panel.strip.clear()
        self._view_runner.cancel()
        self.plots.reset()
        # The x axis is laid out for the whole run now, while it starts: done when its first event comes,
        # redrawing the three plots' axes at once was the longest stall of training (bench_gui_stall.py).
        self.plots.plan(epochs)
        self.confusion_view.clear("The confusion matrix appears when the run has finished.")
        self.results.reset_gallery()
        self._set_banner(html.escape(message), "info")
        self.progress_bar.setRange(0, 0)  # busy until the run reports its size
        self.progress_bar.setFormat("Preparing…")
        self.progress_label.setText(" ")
        self.pause_button.setText("Pause")
        job.events.connect(lambda events, job=job: self._on_train_events(job, events))
        job.result.connect(lambda summary, job=job: self._on_train_result(job, summary))
        job.failed.connect(lambda exc, job=job: self._on_train_failed(job, exc))
        job.cancelled.connect(lambda job=job: self._on_train_cancelled(job))
        job.finished.connect(lambda job=job: self._on_train_finished(job))
        self._update_buttons()
        self.status_message.emit(message)

    @Slot()
    def toggle_pause(self) -> None:
        job = self._train_job
        if not self.is_training() or self._stopping:
            return
        if job.control.paused:
            job.resume()
            self.pause_button.setText("Pause")
            self._show_progress()
        else:
            job.pause()
            self.pause_button.setText("Resume")
            self.progress_label.setText("Paused (after the current step) — Resume continues")

    def stop_training(self, wait_ms: int = 0) -> None:
        """Stop cooperatively after the current step; the run saves last.pt. ``wait_ms`` > 0 blocks
        until the worker has finished (used when the window closes)."""
        if not self.is_training():
            return
        self._stopping = True
        self._train_job.cancel()
        self.progress_label.setText("Stopping after the current step and saving last.pt…")
        self._update_buttons()
        if wait_ms > 0:
            self._train_job.wait(wait_ms)

    # -- the same run from a terminal -------------------------------------------------------------
    def refresh_launch_commands(self) -> None:
        """The command lines that would train the form's settings (only while they are on view)."""
        panel = self.training_panel.launch
        if not panel.is_open():
            return
        data = str(self._scan.root) if self._scan is not None else self.folder_edit.text().strip()
        watch = self.session.watch_image
        try:
            config = self.form.config(data, watch_image=str(watch) if watch else "")
        except ConfigError as exc:
            panel.show_error(str(exc))
            return
        out = new_run_dir(self.runs_folder, config.model, config.strategy)
        panel.show_commands(launch_commands(config, out, gpus=panel.gpus))

    # -- the run's events --------------------------------------------------------------------------
    def _on_train_events(self, job: Job, events: list) -> None:
        if job is not self._train_job:
            return
        self.session.add_run_events(events)  # the run's state, kept in one place (also for the CLI)
        for ev in events:
            if isinstance(ev, StepEnd):
                self.plots.add_step(ev.epoch, ev.step, ev.steps_per_epoch, ev.loss, ev.lr)
            elif isinstance(ev, EpochEnd):
                self.plots.add_epoch(ev.epoch, ev.train_loss, ev.val_loss, ev.train_acc, ev.val_acc)
                if ev.is_best:
                    self.plots.set_best_epoch(ev.epoch)
            elif isinstance(ev, RunStarted):
                self._on_run_started(ev)
            elif isinstance(ev, PriorLogs):
                self.plots.load(ev.steps, ev.epochs, ev.best_epoch)
            elif isinstance(ev, Notice):
                self._add_banner(html.escape(ev.message), "info")
            elif isinstance(ev, FileSkipped):
                self._add_banner(
                    f"Skipped an image that could not be decoded: <b>{html.escape(ev.path.name)}</b> — "
                    f"{html.escape(ev.reason)}",
                    "warning",
                )
            elif isinstance(ev, Finished):
                self._on_finished_event(ev)
        self._show_progress()

    def _on_run_started(self, ev: RunStarted) -> None:
        self.plots.plan(ev.config.epochs)  # (as planned at the start: the axes stay put while it trains)
        self.progress_bar.setRange(0, max(1, ev.total_steps))
        self.progress_bar.setValue(self.session.progress.steps_done)
        cached = ""
        if ev.cached:
            where = " on disk, reused by later runs" if ev.cache_path else ""
            cached = f" · embeddings cached after the first epoch{where}"
        self._set_banner(
            f"Training <b>{html.escape(zoo.get_info(ev.config.model).title)}</b> "
            f"({html.escape(STRATEGY_TITLES[ev.config.strategy])}) "
            f"on {ev.n_train} images, validating on {ev.n_val}, {html.escape(hardware_text(ev))}: "
            f"{format_count(ev.trainable_params)} of {format_count(ev.total_params)} parameters "
            f"trainable{cached}. Weights: {html.escape(ev.weights)}.",
            "info",
        )

    def _show_progress(self) -> None:
        job, progress = self._train_job, self.session.progress
        if progress.started is None:
            return
        self.progress_bar.setValue(progress.steps_done)
        self.progress_bar.setFormat(f"{progress.where()}  (%p%)")
        if job is not None and job.is_running and job.control.paused:
            return  # keep the "Paused" text
        if self._stopping:
            return
        self.progress_label.setText(progress.rate_text() or " ")

    def _on_finished_event(self, ev: Finished) -> None:
        self.results.set_run(ev.run_dir)
        self.results.predictions = list(ev.predictions)
        self.results.class_names = list(ev.class_names)
        if ev.confusion is not None:
            self.results.show_matrix(
                ev.confusion,
                f"Confusion matrix · best epoch {ev.best_epoch} · validation accuracy {ev.best_val_acc:.1%}",
                ev.per_class_acc,
            )
        else:
            self.confusion_view.clear("No epoch finished, so there is no confusion matrix.")
        if ev.status == "diverged":
            self._set_banner(html.escape(ev.message), "error")  # it says what happened and what to try
        else:
            self._set_banner(
                f"<b>{html.escape(ev.message)}</b> Run folder: {html.escape(str(ev.run_dir))}", "done"
            )
        progress = self.session.progress
        for notice in progress.notices:  # what the run said while it trained stays readable after it
            self._add_banner(html.escape(notice), "info")
        skipped = progress.skipped
        if skipped:
            names = ", ".join(html.escape(f.path.name) for f in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            self._add_banner(
                f"{len(skipped)} image(s) could not be decoded during training and were skipped: "
                f"<b>{names}</b>{more}.",
                "warning",
            )
        if ev.confusion is not None:
            self.tabs.setCurrentWidget(self.results)

    # -- the run's end -----------------------------------------------------------------------------
    def _on_train_result(self, job: Job, summary: RunSummary) -> None:
        if job is not self._train_job:
            return
        started = self.session.progress.started
        if started is not None:
            self.progress_bar.setRange(0, max(1, started.total_steps))
        if summary.status == "finished":
            self.progress_bar.setValue(self.progress_bar.maximum())
            self.progress_bar.setFormat("Finished (%p%)")
        else:
            self.progress_bar.setFormat(f"{summary.status.capitalize()} (%p%)")
        self.progress_label.setText(
            f"{summary.epochs_done} epochs in {format_duration(summary.seconds)}"
            + (f" · best val acc {summary.best_val_acc:.1%}" if math.isfinite(summary.best_val_acc) else "")
        )
        self.status_message.emit(f"Fine-tune: {summary.status} — {summary.message}")

    def _on_train_failed(self, job: Job, exc: BaseException) -> None:
        if job is not self._train_job:
            return
        known = (DatasetError, ConfigError, RunDirError, zoo.ModelLoadError)
        message = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        self._set_banner(f"<b>Training could not go on:</b> {html.escape(message)}", "error")
        for notice in self.session.progress.notices:  # what it said before it failed stays readable
            self._add_banner(html.escape(notice), "info")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Failed")
        self.status_message.emit(f"Fine-tune failed: {message}")

    def _on_train_cancelled(self, job: Job) -> None:
        if job is not self._train_job or self._run_path is None:
            return
        run = RunDir(self._run_path)
        kept = run.last_checkpoint.is_file()
        last = self.session.progress.last_step
        where = f"epoch {last.epoch}, step {last.step}" if last else "before the first step"
        text = (
            f"<b>Stopped</b> at {where}. The checkpoint {html.escape(str(run.last_checkpoint))} is kept: "
            "resume the run from the History tab."
            if kept
            else f"<b>Stopped</b> {where}; nothing was saved yet."
        )
        self._set_banner(text, "warning")
        for notice in self.session.progress.notices:
            self._add_banner(html.escape(notice), "info")
        started = self.session.progress.started
        if started is not None:
            self.progress_bar.setRange(0, max(1, started.total_steps))
        else:
            self.progress_bar.setRange(0, 1)
        self.progress_bar.setFormat("Stopped (%p%)")
        self.progress_label.setText("Stopped; last.pt kept." if kept else "Stopped.")
        if (run.path / "confusion.csv").is_file():
            self.show_run(str(run.path), switch=False)  # the best epoch so far: confusion matrix, images

    def _on_train_finished(self, job: Job) -> None:
        if job is not self._train_job:
            return
        self._stopping = False
        self.plots.redraw()  # the final curves now, not at the next tick of the throttled redraw
        self.pause_button.setText("Pause")
        self._update_buttons()
        self.refresh_history(select=str(self._run_path) if self._run_path else None)
        if self._demo_running:
            self._demo_done()
