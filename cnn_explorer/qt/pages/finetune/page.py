"""Fine-tune: point at a folder of labelled images, pick a model and a strategy, watch it train.

Left (:class:`TrainingPanel`), top to bottom, the three choices a user makes: the dataset (scanned in a
worker: class counts, thumbnails, unreadable files), the model and strategy (with the course's
rule-of-thumb recommendation and its reason), the hyper-parameters; Start / Pause / Stop stay pinned
below. Right: a progress line, a :class:`Banner` for notices and errors, the live curves, and tabs for
the dataset, the results (:class:`ResultsPanel`: a clickable confusion matrix, per-class accuracy,
"Open in explorer") and the history of earlier runs (:class:`HistoryPanel`).

The page composes the panels and keeps the state they share; the reactions live in the mixins
``dataset.py`` (the scan), ``training.py`` (a run and its events) and ``runs.py`` (runs on disk). All
the work is core's: ``core.data.scan_dataset``, ``core.training.fit`` / ``resume`` and ``core.runs``,
run through ``qt.workers``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.data import DatasetScan
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.finetune.banner import Banner
from cnn_explorer.qt.pages.finetune.code import RunCode
from cnn_explorer.qt.pages.finetune.dataset import DatasetBinding
from cnn_explorer.qt.pages.finetune.guide_panel import GuidePanel
from cnn_explorer.qt.pages.finetune.history_panel import HistoryPanel
from cnn_explorer.qt.pages.finetune.jobs import choose_data, default_runs_folder, demo_scan
from cnn_explorer.qt.pages.finetune.lr_panel import LRPanel
from cnn_explorer.qt.pages.finetune.results_panel import ResultsPanel
from cnn_explorer.qt.pages.finetune.runs import SETTINGS_RUNS_FOLDER, RunsBinding
from cnn_explorer.qt.pages.finetune.training import TrainingBinding
from cnn_explorer.qt.pages.finetune.training_panel import TrainingPanel
from cnn_explorer.qt.pages.finetune.transfer import TransferBinding
from cnn_explorer.qt.pages.finetune.watch_panel import WatchPanel
from cnn_explorer.qt.widgets.dataset_summary import DatasetSummaryView
from cnn_explorer.qt.widgets.training_plots import TrainingPlots
from cnn_explorer.qt.workers import Job, LatestRunner

DEMO_TIMEOUT_MS = 45_000  # the screenshot's demo run is stopped if the machine is too slow for it


class FineTunePage(DatasetBinding, TrainingBinding, TransferBinding, RunsBinding, RunCode, Page):
    title = "Fine-tune"
    open_in_explorer = Signal(str, str)  # checkpoint path, image path ("" for none)

    def __init__(self, parent: QWidget | None = None, *, runs_folder: str | Path | None = None) -> None:
        super().__init__(parent)
        owner_settings = getattr(parent, "settings", None)
        self._settings: QSettings | None = owner_settings if isinstance(owner_settings, QSettings) else None
        if runs_folder is None and self._settings is not None:
            runs_folder = self._settings.value(SETTINGS_RUNS_FOLDER, "") or None
        self.runs_folder = Path(runs_folder) if runs_folder else default_runs_folder()
        self.ask_before_close = True  # False: closing while training stops it without a dialog
        self._shut_down = False  # after shutdown() the page starts no new work

        self._scan: DatasetScan | None = None
        self._scan_folder: Path | None = None
        # background work, "latest request wins": a newer scan, listing or run view supersedes the older
        self._scan_runner = LatestRunner(self)
        self._history_runner = LatestRunner(self)
        self._view_runner = LatestRunner(self)
        self._scan_requests = self._history_requests = 0
        self._train_job: Job | None = None
        self._stopping = False
        self._run_path: Path | None = None  # the run whose curves and results are shown
        self._demo_running = False
        self._demo_dir: tempfile.TemporaryDirectory | None = None
        self._demo_timer = QTimer(self)
        self._demo_timer.setSingleShot(True)
        self._demo_timer.timeout.connect(self._demo_timeout)
        self._rescan_timer = QTimer(self)
        self._rescan_timer.setSingleShot(True)
        self._rescan_timer.setInterval(300)  # a new seed / validation share re-splits after typing stops
        self._rescan_timer.timeout.connect(self._rescan)

        content = ScrollContent()
        row = QHBoxLayout(content)
        row.setContentsMargins(6, 6, 6, 6)
        row.addWidget(self._build_left())
        row.addWidget(self._build_right(), 1)
        self.scroll_page(content)
        self._init_transfer()

        self._update_buttons()
        self.refresh_history()

    # -- building: the panels, and the page's names for their widgets -----------------------------
    def _build_left(self) -> QWidget:
        panel = self.training_panel = TrainingPanel()
        self.dataset_panel = panel.dataset
        self.dataset_panel.choose_requested.connect(self.choose_dataset)
        self.folder_edit = panel.dataset.folder_edit
        self.choose_button = panel.dataset.choose_button
        self.dataset_status = panel.dataset.status
        self.form = panel.form
        self.form.split_changed.connect(self._schedule_rescan)
        self.start_button = panel.start_button
        self.pause_button = panel.pause_button
        self.stop_button = panel.stop_button
        panel.start_requested.connect(self.start_training)
        panel.pause_requested.connect(self.toggle_pause)
        panel.stop_requested.connect(lambda: self.stop_training())
        panel.launch_refresh_requested.connect(self.refresh_launch_commands)
        return panel

    def _build_right(self) -> QWidget:
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("No run yet")
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel(" ")
        self.progress_label.setStyleSheet("color: #444;")
        top = QHBoxLayout()
        top.addWidget(self.progress_bar, 1)
        top.addWidget(self.progress_label, 1)
        self.banner_area = Banner()
        self.banner = self.banner_area.label

        self.plots = TrainingPlots()
        self.tabs = QTabWidget()
        self.dataset_view = DatasetSummaryView()
        self.tabs.addTab(self.dataset_view, "Dataset")
        self.guide_panel = GuidePanel()
        self.tabs.addTab(self.guide_panel, "Guide")
        self.lr_panel = LRPanel()
        self.tabs.addTab(self.lr_panel, "LR finder")
        self.tabs.addTab(self._build_results_tab(), "Results")
        self.tabs.addTab(self._build_history_tab(), "History")
        self.watch_panel = WatchPanel()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 4)
        splitter.setSizes([5000, 4000])  # scaled to the space it gets: plots above, tabs below, 5 : 4
        splitter.setChildrenCollapsible(False)

        right = QWidget()
        v = QVBoxLayout(right)
        v.setContentsMargins(0, 0, 0, 0)
        v.addLayout(top)
        v.addWidget(self.banner_area)
        v.addWidget(self.watch_panel)
        v.addWidget(splitter, 1)
        return right

    def _build_results_tab(self) -> QWidget:
        self.results = ResultsPanel()
        self.results.open_requested.connect(self.emit_open_in_explorer)
        self.results.export_requested.connect(self.export_run)
        self.confusion_view = self.results.confusion_view
        self.gallery = self.results.gallery
        self.explorer_image_label = self.results.explorer_image_label
        self.choose_image_button = self.results.choose_image_button
        self.open_explorer_button = self.results.open_explorer_button
        return self.results

    def _build_history_tab(self) -> QWidget:
        self.history_panel = HistoryPanel(self.runs_folder)
        self.history_panel.change_folder_requested.connect(self.choose_runs_folder)
        self.history_panel.refresh_requested.connect(lambda: self.refresh_history())
        self.history_panel.show_requested.connect(self.show_run)
        self.history_panel.resume_requested.connect(self.resume_run)
        self.runs_folder_edit = self.history_panel.runs_folder_edit
        self.runs_folder_button = self.history_panel.runs_folder_button
        self.refresh_button = self.history_panel.refresh_button
        self.history = self.history_panel.history
        return self.history_panel

    # -- page API (the main window calls these) ----------------------------------------------------
    def set_image(self, loaded: LoadedImage) -> None:
        self.results.set_current_image(Path(loaded.path))
        self._follow_current_image(Path(loaded.path))

    def is_busy(self) -> bool:
        return (
            self._demo_running
            or self._rescan_timer.isActive()
            or self._scan_runner.busy
            or self._history_runner.busy
            or self._view_runner.busy
            or self.results.busy
            or self._probe_runner.busy
            or self._lr_runner.busy
            or self._watch_runner.busy
            # the similarity estimate runs in the background while the user goes on; the screenshot's
            # demo waits for it, so that the guide shows its answer
            or (self._demo_dir is not None and self._similarity_runner.busy)
        )

    def prepare_screenshot(self) -> None:
        """A real, short run on the bundled silhouettes: dataset summary, recommendation, curves and the
        confusion matrix. It trains in a temporary runs folder and is stopped if it takes too long."""
        if self.is_training():
            return
        self._demo_dir = tempfile.TemporaryDirectory(prefix="cnn-explorer-demo-")
        root = Path(self._demo_dir.name)
        self._set_runs_folder(root / "runs", remember=False)
        self._demo_running = True
        self._demo_timer.start(DEMO_TIMEOUT_MS)
        form = self.form
        choose_data(form.model_combo, zoo.DEFAULT_MODEL)
        choose_data(form.strategy_combo, "feature-extractor")
        form.epochs_spin.setValue(6)
        form.batch_spin.setValue(16)
        choose_data(form.optimizer_combo, "adamw")  # a smooth curve on this small set (SGD's 0.01 overfits)
        form.choose_size(64)
        folder = root / "animal_shapes"
        self._scan_folder = folder
        self.dataset_panel.set_folder(folder)
        self.dataset_view.show_scanning(folder)
        self._start_scan(demo_scan, folder, then=self._demo_scanned)

    def confirm_close(self) -> bool:
        if not self.is_training():
            return True
        dialogs = self.ask_before_close and getattr(self.window(), "_dialogs_enabled", True)
        if dialogs:
            answer = QMessageBox.question(
                self,
                "Training is running",
                "A training run is still going. Stop training and close?\n\n"
                "Its last checkpoint (last.pt) is kept; you can resume the run later from the History tab.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        self.stop_training(wait_ms=60_000)
        return True

    def shutdown(self) -> None:
        self._shut_down = True
        self._demo_timer.stop()
        self._rescan_timer.stop()
        for runner in (self._scan_runner, self._history_runner, self._view_runner, *self._transfer_runners):
            runner.shutdown()
        self.results.shutdown()
        if self.is_training():
            self._train_job.cancel()  # cooperative: the run saves last.pt; the window joins the thread

    # -- the results panel's actions, under the page's names -------------------------------------
    @Slot(int, int)
    def show_cell_images(self, row: int, col: int) -> None:
        """The validation images of one confusion cell (true class ``row``, predicted ``col``)."""
        self.results.show_cell_images(row, col)

    @Slot()
    def choose_explorer_image(self) -> None:
        self.results.choose_explorer_image()

    # -- state -----------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        training = self.is_training()
        self.training_panel.set_running(training, self._stopping, startable=self._scan is not None)
        self.open_explorer_button.setEnabled(not training and self.explorer_checkpoint() is not None)
        self.results.export_button.setEnabled(not training and self.explorer_checkpoint() is not None)
        self.history_panel.set_locked(training)

    def _set_banner(self, rich_text: str, kind: str) -> None:
        self.banner_area.set_text(rich_text, kind)

    def _add_banner(self, rich_text: str, kind: str) -> None:
        self.banner_area.add(rich_text, kind)

    def banner_text(self) -> str:
        """What the banner says ("" while it only shows its idle hint)."""
        return self.banner_area.text()

    # -- the screenshot's demo run ---------------------------------------------------------------
    def _demo_scanned(self, ok: bool) -> None:
        if not ok:
            self._demo_done()
            return
        self.watch_dataset_image()  # the screenshot's strip watches a silhouette of the dataset
        self._demo_start()

    def _demo_start(self) -> None:
        if not self._demo_running:
            return
        self.start_training()
        if not self.is_training():
            self._demo_done()

    def _demo_done(self) -> None:
        self._demo_running = False
        self._demo_timer.stop()

    def _demo_timeout(self) -> None:
        if self.is_training():
            self.stop_training()  # its finished signal ends the demo
        else:
            self._demo_done()
