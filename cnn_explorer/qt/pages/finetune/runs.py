"""The Fine-tune page's runs on disk (a mixin of FineTunePage): the History tab's list (``core.runs``,
read in a worker), the runs folder, "Show" of an earlier run (its curves, confusion matrix and
validation images) and "Open in explorer" with the run's checkpoint."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog

from cnn_explorer.core.runs import BEST_CHECKPOINT, LAST_CHECKPOINT, RunRecord, list_runs
from cnn_explorer.qt.pages.finetune.jobs import RunView, read_run_view

SETTINGS_RUNS_FOLDER = "finetune/runs_folder"


class RunsBinding:
    # -- showing a run -----------------------------------------------------------------------------
    def show_run(self, path: str, switch: bool = True) -> None:
        """Show a run's curves, confusion matrix and images (read in a worker)."""
        if self._shut_down:
            return
        if self.is_training():
            self.status_message.emit("A run is training; its live curves stay on screen until it ends.")
            return
        self._view_runner.request(
            ("view", str(path), switch),
            read_run_view,
            path,
            on_result=lambda view: self._on_run_view(view, switch),
            on_failed=self._on_view_failed,
            name="read run",
        )

    def _on_run_view(self, view: RunView, switch: bool) -> None:
        if self.is_training():
            return
        rec = view.record
        self._run_path = rec.path
        self.results.set_run(rec.path)
        self.results.predictions = view.predictions
        self.plots.reset()  # (a finished run: its axes follow its data, not the last run's plan)
        self.plots.load(view.steps, rec.epochs, rec.summary.best_epoch)
        if view.confusion is not None:
            matrix, names = view.confusion
            self.results.class_names = names
            s = rec.summary
            self.results.show_matrix(
                matrix,
                f"Confusion matrix · {rec.name} · best epoch {s.best_epoch} · "
                f"validation accuracy {s.best_val_acc:.1%}",
            )
        else:
            self.results.class_names = []
            self.confusion_view.clear(f"{rec.name} has no finished epoch, so no confusion matrix.")
        self.results.reset_gallery()
        if switch:
            kind = {"finished": "done", "stopped": "warning", "interrupted": "warning"}.get(
                rec.summary.status, "error"
            )
            self._set_banner(
                f"<b>{html.escape(rec.name)}</b>: {html.escape(rec.settings_text())}. "
                f"{html.escape(rec.result_text())}. {html.escape(rec.summary.message)}",
                kind,
            )
            for notice in rec.summary.notices:  # what the run said when it started
                self._add_banner(html.escape(notice), "info")
            self.tabs.setCurrentWidget(self.results)
        self._update_buttons()

    def _on_view_failed(self, exc: BaseException) -> None:
        self._set_banner(html.escape(f"Cannot show the run: {exc}"), "error")

    # -- "Open in explorer" ------------------------------------------------------------------------
    def explorer_image(self) -> Path | None:
        """The image "Open in explorer" uses: the one picked here, else the app's current image."""
        return self.results.explorer_image()

    def explorer_checkpoint(self) -> Path | None:
        if self._run_path is None:
            return None
        for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
            if (self._run_path / name).is_file():
                return self._run_path / name
        return None

    @Slot()
    def emit_open_in_explorer(self) -> None:
        ckpt = self.explorer_checkpoint()
        if ckpt is None:
            self._set_banner("This run has no checkpoint yet.", "warning")
            return
        image = self.explorer_image()
        self.open_in_explorer.emit(str(ckpt), str(image) if image is not None else "")

    # -- the history -------------------------------------------------------------------------------
    def refresh_history(self, select: str | None = None) -> None:
        if self._shut_down:
            return
        self._history_requests += 1  # always a new listing: runs may have been added since the last
        self._history_runner.request(
            ("history", self._history_requests),
            list_runs,
            self.runs_folder,
            on_result=lambda records: self._on_history(records, select),
            name="list runs",
        )

    def _on_history(self, records: list[RunRecord], select: str | None) -> None:
        self.history.set_runs(records, select=select)
        if select is not None:
            self.history.set_compared(select, True)

    @Slot()
    def choose_runs_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for training runs", str(self.runs_folder))
        if folder:
            self._set_runs_folder(Path(folder), remember=True)

    def _set_runs_folder(self, folder: Path, remember: bool) -> None:
        self.runs_folder = folder
        self.history_panel.set_folder(folder)
        if remember and self._settings is not None:
            self._settings.setValue(SETTINGS_RUNS_FOLDER, str(folder))
        self.refresh_history()
