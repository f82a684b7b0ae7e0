"""Fine-tune: point at a folder of labelled images, pick a model and a strategy, watch it train.

Left, top to bottom, the three choices a user makes: the dataset (scanned in a worker: class counts,
thumbnails, unreadable files), the model and strategy (with the course's rule-of-thumb recommendation and
its reason), the hyper-parameters; Start / Pause / Stop stay pinned below. Right: a progress line, a
banner for notices and errors, the live curves, and tabs for the dataset, the results (a clickable
confusion matrix, per-class accuracy, "Open in explorer") and the history of earlier runs.

All the work is core's: ``core.data.scan_dataset``, ``core.training.fit`` / ``resume`` and
``core.runs``. Everything slow runs through ``qt.workers``; training events arrive batched (≤ 20/s) and
the plots redraw at most 10 times a second, so the page stays fluid while a run trains.
"""

from __future__ import annotations

import html
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.data import (
    DEFAULT_VAL_FRACTION,
    DatasetError,
    DatasetScan,
    ScanProgress,
    scan_dataset,
    write_animal_dataset,
)
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.runs import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    RunDir,
    RunDirError,
    RunRecord,
    RunSummary,
    ValPrediction,
    list_runs,
    load_run,
    new_run_dir,
)
from cnn_explorer.core.training import (
    STRATEGY_TITLES,
    CheckpointSaved,
    ConfigError,
    EpochEnd,
    FileSkipped,
    Finished,
    Notice,
    PriorLogs,
    RunStarted,
    StepEnd,
    ValidationStep,
    fit,
    resume_with_logs,
)
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.widgets.confusion_matrix import ConfusionMatrixView
from cnn_explorer.qt.widgets.dataset_summary import ERROR_STYLE, WARNING_STYLE, DatasetSummaryView
from cnn_explorer.qt.widgets.image_gallery import GalleryItem, ImageGallery
from cnn_explorer.qt.widgets.run_history import RunHistoryView
from cnn_explorer.qt.widgets.thumbnails import load_thumbnail
from cnn_explorer.qt.widgets.training_plots import TrainingPlots
from cnn_explorer.qt.widgets.training_settings import TrainingSettingsForm
from cnn_explorer.qt.workers import Job, JobSlot, start_process_job

THUMBS_PER_CLASS = 6
GALLERY_LIMIT = 60  # images shown for one confusion cell
IDLE_STYLE = "color: #666; background: #f6f6f6; border: 1px solid #dddddd; padding: 6px;"
INFO_STYLE = "color: #0b3d6b; background: #e8f1fb; border: 1px solid #b8d4f0; padding: 6px;"
DONE_STYLE = "color: #14532d; background: #e7f6ec; border: 1px solid #a9dbb8; padding: 6px;"
SETTINGS_RUNS_FOLDER = "finetune/runs_folder"
DEMO_TIMEOUT_MS = 45_000  # the screenshot's demo run is stopped if the machine is too slow for it
_BANNER_STYLES = {"info": INFO_STYLE, "done": DONE_STYLE, "warning": WARNING_STYLE, "error": ERROR_STYLE}
_BANNER_RANK = {"info": 0, "done": 1, "warning": 2, "error": 3}


# ================================================================================================
# Worker bodies (no widgets here: these run on worker threads)
# ================================================================================================
@dataclass
class ScanOutcome:
    scan: DatasetScan
    thumbnails: dict[str, list[np.ndarray]]


def scan_with_thumbnails(
    folder: str | Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    per_class: int = THUMBS_PER_CLASS,
    control: Control | None = None,
) -> ScanOutcome:
    """core.data.scan_dataset, plus a few example thumbnails per class for the summary table."""
    scan = scan_dataset(folder, val_fraction=val_fraction, seed=seed, control=control)
    thumbs: dict[str, list[np.ndarray]] = {}
    for name in scan.class_names:
        checkpoint(control)
        found = (load_thumbnail(p) for p in scan.examples(name, per_class))
        thumbs[name] = [t for t in found if t is not None]
    return ScanOutcome(scan, thumbs)


def demo_scan(root: str | Path, *, per_class: int = 30, control: Control | None = None) -> ScanOutcome:
    """Write the silhouettes to ``root`` and scan them (the screenshot's dataset)."""
    write_animal_dataset(root, per_class=per_class)
    return scan_with_thumbnails(root, control=control)


@dataclass
class RunView:
    """Everything "Show" displays of a finished or stopped run."""

    record: RunRecord
    steps: list[tuple[int, int, int, float, float]]
    confusion: tuple[np.ndarray, list[str]] | None
    predictions: list[ValPrediction] = field(default_factory=list)


def read_run_view(run_dir: str | Path) -> RunView:
    run = RunDir(run_dir)
    return RunView(load_run(run_dir), run.read_steps(), run.read_confusion(), run.read_predictions())


def gallery_items(predictions: Sequence[ValPrediction], control: Control | None = None) -> list[GalleryItem]:
    out: list[GalleryItem] = []
    for p in predictions:
        checkpoint(control)
        out.append((p.path, load_thumbnail(p.path, 72), f"{p.predicted} {p.confidence:.0%}"))
    return out


# ================================================================================================
# Small formatting helpers
# ================================================================================================
def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1_000_000 else f"{n:,}"


def choose_data(combo: QComboBox, data: object) -> None:
    """Select the entry of ``combo`` whose data is ``data`` (if offered)."""
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


def _default_runs_folder() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".cnn-explorer") / "runs"


# ================================================================================================
# The page
# ================================================================================================
class FineTunePage(Page):
    title = "Fine-tune"
    open_in_explorer = Signal(str, str)  # checkpoint path, image path ("" for none)

    def __init__(self, parent: QWidget | None = None, *, runs_folder: str | Path | None = None) -> None:
        super().__init__(parent)
        owner_settings = getattr(parent, "settings", None)
        self._settings: QSettings | None = owner_settings if isinstance(owner_settings, QSettings) else None
        if runs_folder is None and self._settings is not None:
            runs_folder = self._settings.value(SETTINGS_RUNS_FOLDER, "") or None
        self.runs_folder = Path(runs_folder) if runs_folder else _default_runs_folder()
        self.ask_before_close = True  # False: closing while training stops it without a dialog
        self._shut_down = False  # after shutdown() the page starts no new work

        self._scan: DatasetScan | None = None
        self._scan_folder: Path | None = None
        self._scan_slot = JobSlot()
        self._history_slot = JobSlot()
        self._view_slot = JobSlot()
        self._gallery_slot = JobSlot()
        self._train_job: Job | None = None
        self._stopping = False
        self._run_path: Path | None = None  # the run whose curves and results are shown
        self._run_class_names: list[str] = []
        self._predictions: list[ValPrediction] = []
        self._last_step: StepEnd | None = None
        self._started: RunStarted | None = None
        self._best: tuple[float, int] = (math.nan, 0)  # best val acc, its epoch
        self._validating: ValidationStep | None = None
        self._skipped: list[FileSkipped] = []  # images that failed to decode during this run
        self._banner_kind = "info"
        self._banner_lines: list[str] = []
        self._current_image: Path | None = None
        self._chosen_image: Path | None = None  # picked for "Open in explorer" (a file or a val image)
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

        self._update_buttons()
        self._update_explorer_image()
        self.refresh_history()

    # ============================================================================================
    # Building
    # ============================================================================================
    def _build_left(self) -> QWidget:
        content = QWidget()
        col = QVBoxLayout(content)
        col.setContentsMargins(0, 0, 4, 0)
        col.addWidget(self._build_dataset_group())
        self.form = TrainingSettingsForm()
        self.form.split_changed.connect(self._schedule_rescan)
        col.addWidget(self.form)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)

        self.start_button = QPushButton("▶ Start")
        self.start_button.setToolTip("Train a new run with these settings (saved in the runs folder)")
        self.start_button.setStyleSheet("font-weight: 600; padding: 6px;")
        self.start_button.clicked.connect(self.start_training)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Hold training after the current step; Resume continues it")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setToolTip("Stop after the current step; last.pt is kept and the run can be resumed")
        self.stop_button.clicked.connect(lambda: self.stop_training())
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 2)
        buttons.addWidget(self.pause_button, 1)
        buttons.addWidget(self.stop_button, 1)

        panel = QWidget()
        panel.setFixedWidth(350)
        v = QVBoxLayout(panel)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(scroll, 1)
        v.addLayout(buttons)
        return panel

    def _build_dataset_group(self) -> QGroupBox:
        group = QGroupBox("1 · Dataset")
        v = QVBoxLayout(group)
        v.setContentsMargins(8, 6, 8, 6)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setPlaceholderText("a folder with one sub-folder per class")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(self.choose_dataset)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.choose_button)
        v.addLayout(row)
        self.dataset_status = QLabel("Layouts: data/<class>/*.jpg, or data/train/<class> + data/val/<class>.")
        self.dataset_status.setWordWrap(True)
        self.dataset_status.setStyleSheet("color: #555;")
        v.addWidget(self.dataset_status)
        return group

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
        # The banner keeps one height, three lines, and scrolls beyond: a banner that grew and shrank
        # with its text resized the plots below, and each relayout repainted them whole (20-30 ms, the
        # largest GUI stalls when a run started, bench_gui_stall.py).
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextFormat(Qt.TextFormat.RichText)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.banner_area = QScrollArea()
        self.banner_area.setWidget(self.banner)
        self.banner_area.setWidgetResizable(True)
        self.banner_area.setFrameShape(QFrame.Shape.NoFrame)
        self.banner_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.banner_area.setFixedHeight(3 * self.banner.fontMetrics().lineSpacing() + 16)
        self._clear_banner()

        self.plots = TrainingPlots()
        self.tabs = QTabWidget()
        self.dataset_view = DatasetSummaryView()
        self.tabs.addTab(self.dataset_view, "Dataset")
        self.tabs.addTab(self._build_results_tab(), "Results")
        self.tabs.addTab(self._build_history_tab(), "History")
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
        v.addWidget(splitter, 1)
        return right

    def _build_results_tab(self) -> QWidget:
        self.confusion_view = ConfusionMatrixView()
        self.confusion_view.cell_clicked.connect(self.show_cell_images)
        self.gallery = ImageGallery()
        self.gallery.set_message("Click a cell of the confusion matrix to see its validation images.")
        self.gallery.image_chosen.connect(self._on_gallery_image)
        self.explorer_image_label = QLabel()
        self.explorer_image_label.setWordWrap(True)
        self.choose_image_button = QPushButton("Other image…")
        self.choose_image_button.clicked.connect(self.choose_explorer_image)
        self.open_explorer_button = QPushButton("Open in explorer")
        self.open_explorer_button.setToolTip("Load this run's best checkpoint into the Network explorer")
        self.open_explorer_button.setStyleSheet("font-weight: 600;")
        self.open_explorer_button.clicked.connect(self.emit_open_in_explorer)
        explorer = QHBoxLayout()
        explorer.addWidget(self.explorer_image_label, 1)
        explorer.addWidget(self.choose_image_button)
        explorer.addWidget(self.open_explorer_button)
        side = QVBoxLayout()
        side.addWidget(self.gallery, 1)
        side.addLayout(explorer)
        tab = QWidget()
        row = QHBoxLayout(tab)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.confusion_view, 5)
        row.addLayout(side, 4)
        return tab

    def _build_history_tab(self) -> QWidget:
        self.runs_folder_edit = QLineEdit(str(self.runs_folder))
        self.runs_folder_edit.setReadOnly(True)
        self.runs_folder_button = QPushButton("Change…")
        self.runs_folder_button.clicked.connect(self.choose_runs_folder)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(lambda: self.refresh_history())
        row = QHBoxLayout()
        row.addWidget(QLabel("Runs folder"))
        row.addWidget(self.runs_folder_edit, 1)
        row.addWidget(self.runs_folder_button)
        row.addWidget(self.refresh_button)
        self.history = RunHistoryView()
        self.history.show_requested.connect(self.show_run)
        self.history.resume_requested.connect(self.resume_run)
        tab = QWidget()
        v = QVBoxLayout(tab)
        v.setContentsMargins(4, 4, 4, 4)
        v.addLayout(row)
        v.addWidget(self.history, 1)
        return tab

    # ============================================================================================
    # Page API (the main window calls these)
    # ============================================================================================
    def set_dataset_folder(self, path: str | Path) -> None:
        """Scan ``path`` in a worker and show what it holds."""
        folder = Path(path)
        self._scan_folder = folder
        self._scan = None
        self.folder_edit.setText(str(folder))
        self.dataset_status.setText("Checking the images…")
        self.dataset_status.setStyleSheet("color: #555;")
        self.dataset_view.show_scanning(folder)
        self._update_buttons()  # no Start until the new folder is checked
        if not self.is_training():
            self.tabs.setCurrentWidget(self.dataset_view)
        self._start_scan(
            scan_with_thumbnails,
            folder,
            val_fraction=self.form.val_spin.value(),
            seed=self.form.seed_spin.value(),
        )

    def set_image(self, loaded: LoadedImage) -> None:
        self._current_image = Path(loaded.path)
        self._update_explorer_image()

    def is_busy(self) -> bool:
        return (
            self._demo_running
            or self._rescan_timer.isActive()
            or self._scan_slot.busy
            or self._history_slot.busy
            or self._view_slot.busy
            or self._gallery_slot.busy
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
        form.imagenet_check.setChecked(False)  # silhouettes are not photos
        choose_data(form.strategy_combo, "feature-extractor")
        form.epochs_spin.setValue(6)
        form.batch_spin.setValue(16)
        choose_data(form.optimizer_combo, "adamw")  # a smooth curve on this small set (SGD's 0.01 overfits)
        form.choose_size(64)
        folder = root / "animal_shapes"
        self._scan_folder = folder
        self.folder_edit.setText(str(folder))
        self.dataset_view.show_scanning(folder)
        job = self._start_scan(demo_scan, folder)
        job.result.connect(lambda _outcome: self._demo_start())
        job.failed.connect(lambda _exc: self._demo_done())

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
        for slot in (self._scan_slot, self._history_slot, self._view_slot, self._gallery_slot):
            slot.cancel()
        if self.is_training():
            self._train_job.cancel()  # cooperative: the run saves last.pt; the window joins the thread

    # ============================================================================================
    # Dataset
    # ============================================================================================
    @Slot()
    def choose_dataset(self) -> None:
        start = str(
            self._scan_folder or (self._settings.value("last_dataset_folder", "") if self._settings else "")
        )
        folder = QFileDialog.getExistingDirectory(
            self, "Dataset folder (one sub-folder of images per class)", start
        )
        if folder:
            if self._settings is not None:
                self._settings.setValue("last_dataset_folder", folder)
            self.set_dataset_folder(folder)

    def _start_scan(self, fn, *args, **kwargs) -> Job:
        job = self._scan_slot.start(fn, *args, name="scan dataset", **kwargs)
        job.events.connect(lambda events, job=job: self._on_scan_events(job, events))
        job.result.connect(lambda outcome, job=job: self._on_scan_result(job, outcome))
        job.failed.connect(lambda exc, job=job: self._on_scan_failed(job, exc))
        return job

    def _schedule_rescan(self) -> None:
        if self._scan_folder is not None:
            self._rescan_timer.start()

    def _rescan(self) -> None:
        if self._scan_folder is not None:
            self.set_dataset_folder(self._scan_folder)

    def _on_scan_events(self, job: Job, events: list) -> None:
        if not self._scan_slot.is_current(job):
            return
        progress = [e for e in events if isinstance(e, ScanProgress)]
        if progress:
            p = progress[-1]
            if p.phase == "listing":
                self.dataset_status.setText(f"Listing the folders… {p.done:,} entries so far")
            else:
                self.dataset_status.setText(f"Checking the images… {p.done:,}/{p.total:,}")

    def _on_scan_result(self, job: Job, outcome: ScanOutcome) -> None:
        if not self._scan_slot.is_current(job):
            return
        scan = outcome.scan
        self._scan = scan
        self.dataset_view.set_scan(scan, outcome.thumbnails)
        bad = f", {len(scan.bad_files)} unreadable skipped" if scan.bad_files else ""
        self.dataset_status.setText(
            f"{len(scan.train)} training + {len(scan.val)} validation images, "
            f"{scan.num_classes} classes{bad}."
        )
        self.dataset_status.setStyleSheet("color: #7a4b00;" if scan.warnings else "color: #14532d;")
        if not self.is_training():
            self.tabs.setCurrentWidget(self.dataset_view)
        self.form.set_dataset_size(len(scan.train) + len(scan.val))
        self._update_buttons()
        self.status_message.emit(
            f"Dataset: {len(scan.train) + len(scan.val)} images in {scan.num_classes} classes"
        )

    def _on_scan_failed(self, job: Job, exc: BaseException) -> None:
        if not self._scan_slot.is_current(job):
            return
        message = str(exc) if isinstance(exc, DatasetError) else f"Cannot read the dataset: {exc}"
        self._scan = None
        self.dataset_view.set_error(self._scan_folder or "", message)
        self.dataset_status.setText("Not usable for training — see the Dataset tab.")
        self.dataset_status.setStyleSheet("color: #a31515; font-weight: 600;")
        self.tabs.setCurrentWidget(self.dataset_view)
        self.form.set_dataset_size(None)
        self._update_buttons()
        self.status_message.emit(message)

    # ============================================================================================
    # Training
    # ============================================================================================
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

    @Slot()
    def start_training(self) -> None:
        if self.is_training():
            return
        if self._scan is None:
            self._set_banner("Choose a usable dataset first (File ▸ Open dataset folder…).", "error")
            return
        try:
            config = self.form.config(str(self._scan.root))
        except ConfigError as exc:
            self._set_banner(html.escape(str(exc)), "error")
            return
        scan = self._scan
        same_split = scan.layout == "train-val" or (
            scan.seed == config.seed and math.isclose(scan.val_fraction, config.val_fraction)
        )
        run_dir = new_run_dir(self.runs_folder, config.model, config.strategy)
        job = start_process_job(fit, config, run_dir, scan=scan if same_split else None, name="fine-tune")
        self._begin_run(job, run_dir, f"Starting {run_dir.name}: loading the model and the images…")

    @Slot(str, int)
    def resume_run(self, path: str, epochs: int) -> None:
        if self.is_training():
            return
        run_dir = Path(path)
        job = start_process_job(resume_with_logs, run_dir, epochs, name="fine-tune (resumed)")
        self._begin_run(job, run_dir, f"Resuming {run_dir.name} to {epochs} epochs…")

    def _begin_run(self, job: Job, run_dir: Path, message: str) -> None:
        self._train_job = job
        self._stopping = False
        self._run_path = run_dir
        self._predictions = []
        self._last_step = None
        self._started = None
        self._best = (math.nan, 0)
        self._validating = None
        self._skipped = []
        self._view_slot.cancel()
        self.plots.reset()
        self.confusion_view.clear("The confusion matrix appears when the run has finished.")
        self.gallery.set_message("Click a cell of the confusion matrix to see its validation images.")
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

    def _on_train_events(self, job: Job, events: list) -> None:
        if job is not self._train_job:
            return
        for ev in events:
            if isinstance(ev, StepEnd):
                self.plots.add_step(ev.epoch, ev.step, ev.steps_per_epoch, ev.loss, ev.lr)
                self._last_step = ev
                self._validating = None
            elif isinstance(ev, ValidationStep):
                self._validating = ev
            elif isinstance(ev, EpochEnd):
                self.plots.add_epoch(ev.epoch, ev.train_loss, ev.val_loss, ev.train_acc, ev.val_acc)
                if ev.is_best:
                    self._best = (ev.val_acc, ev.epoch)
                    self.plots.set_best_epoch(ev.epoch)
                self._validating = None
            elif isinstance(ev, RunStarted):
                self._on_run_started(ev)
            elif isinstance(ev, PriorLogs):
                self.plots.load(ev.steps, ev.epochs, ev.best_epoch)
                best = next((m for m in ev.epochs if m.epoch == ev.best_epoch), None)
                if best is not None:
                    self._best = (best.val_acc, best.epoch)
            elif isinstance(ev, Notice):
                self._add_banner(html.escape(ev.message), "info")
            elif isinstance(ev, FileSkipped):
                self._skipped.append(ev)
                self._add_banner(
                    f"Skipped an image that could not be decoded: <b>{html.escape(ev.path.name)}</b> — "
                    f"{html.escape(ev.reason)}",
                    "warning",
                )
            elif isinstance(ev, CheckpointSaved):
                pass  # the progress line says when an epoch ends; the files are listed in History
            elif isinstance(ev, Finished):
                self._on_finished_event(ev)
        self._show_progress()

    def _on_run_started(self, ev: RunStarted) -> None:
        self._started = ev
        self.progress_bar.setRange(0, max(1, ev.total_steps))
        self.progress_bar.setValue(ev.start_epoch * ev.steps_per_epoch + ev.start_step)
        cached = " · embeddings cached after the first epoch" if ev.cached else ""
        self._set_banner(
            f"Training <b>{html.escape(zoo.get_info(ev.config.model).title)}</b> "
            f"({html.escape(STRATEGY_TITLES[ev.config.strategy])}) "
            f"on {ev.n_train} images, validating on {ev.n_val}, device {html.escape(ev.device)}: "
            f"{_count(ev.trainable_params)} of {_count(ev.total_params)} parameters trainable{cached}. "
            f"Weights: {html.escape(ev.weights)}.",
            "info",
        )

    def _show_progress(self) -> None:
        job, started, step = self._train_job, self._started, self._last_step
        if started is None:
            return
        epochs = started.config.epochs
        if step is not None:
            self.progress_bar.setValue(step.global_step)
            where = f"Epoch {step.epoch}/{epochs} · step {step.step}/{step.steps_per_epoch}"
        else:
            where = f"Epoch {started.start_epoch + 1}/{epochs}"
        if self._validating is not None:
            v = self._validating
            where = f"Epoch {v.epoch}/{epochs} · validating {v.step}/{v.steps}"
        self.progress_bar.setFormat(f"{where}  (%p%)")
        if job is not None and job.is_running and job.control.paused:
            return  # keep the "Paused" text
        if self._stopping:
            return
        parts = []
        if step is not None:
            parts += [f"{step.images_per_s:,.0f} images/s", f"ETA {format_duration(step.eta_s)}"]
        if self._best[1]:
            parts.append(f"best {self._best[0]:.1%} (epoch {self._best[1]})")
        self.progress_label.setText(" · ".join(parts) or " ")

    def _on_finished_event(self, ev: Finished) -> None:
        self._predictions = list(ev.predictions)
        self._run_class_names = list(ev.class_names)
        if ev.confusion is not None:
            self.confusion_view.set_matrix(
                ev.confusion,
                ev.class_names,
                ev.per_class_acc,
                title=f"Confusion matrix · best epoch {ev.best_epoch} · "
                f"validation accuracy {ev.best_val_acc:.1%}",
            )
            self._preselect_cell()
        else:
            self.confusion_view.clear("No epoch finished, so there is no confusion matrix.")
        if ev.status == "diverged":
            self._set_banner(html.escape(ev.message), "error")  # it says what happened and what to try
        else:
            self._set_banner(
                f"<b>{html.escape(ev.message)}</b> Run folder: {html.escape(str(ev.run_dir))}", "done"
            )
        if self._skipped:
            names = ", ".join(html.escape(f.path.name) for f in self._skipped[:5])
            more = f" and {len(self._skipped) - 5} more" if len(self._skipped) > 5 else ""
            self._add_banner(
                f"{len(self._skipped)} image(s) could not be decoded during training and were skipped: "
                f"<b>{names}</b>{more}.",
                "warning",
            )
        if ev.confusion is not None:
            self.tabs.setCurrentIndex(1)

    def _on_train_result(self, job: Job, summary: RunSummary) -> None:
        if job is not self._train_job:
            return
        if self._started is not None:
            self.progress_bar.setRange(0, max(1, self._started.total_steps))
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
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Failed")
        self.status_message.emit(f"Fine-tune failed: {message}")

    def _on_train_cancelled(self, job: Job) -> None:
        if job is not self._train_job or self._run_path is None:
            return
        run = RunDir(self._run_path)
        kept = run.last_checkpoint.is_file()
        where = (
            f"epoch {self._last_step.epoch}, step {self._last_step.step}"
            if self._last_step
            else "before the first step"
        )
        text = (
            f"<b>Stopped</b> at {where}. The checkpoint {html.escape(str(run.last_checkpoint))} is kept: "
            "resume the run from the History tab."
            if kept
            else f"<b>Stopped</b> {where}; nothing was saved yet."
        )
        self._set_banner(text, "warning")
        if self._started is not None:
            self.progress_bar.setRange(0, max(1, self._started.total_steps))
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

    # ============================================================================================
    # Results
    # ============================================================================================
    def show_run(self, path: str, switch: bool = True) -> None:
        """Show a run's curves, confusion matrix and images (read in a worker)."""
        if self._shut_down:
            return
        if self.is_training():
            self.status_message.emit("A run is training; its live curves stay on screen until it ends.")
            return
        job = self._view_slot.start(read_run_view, path, name="read run")
        job.result.connect(lambda view, job=job: self._on_run_view(job, view, switch))
        job.failed.connect(lambda exc, job=job: self._on_view_failed(job, exc))

    def _on_run_view(self, job: Job, view: RunView, switch: bool) -> None:
        if not self._view_slot.is_current(job) or self.is_training():
            return
        rec = view.record
        self._run_path = rec.path
        self._predictions = view.predictions
        self.plots.load(view.steps, rec.epochs, rec.summary.best_epoch)
        if view.confusion is not None:
            matrix, names = view.confusion
            self._run_class_names = names
            s = rec.summary
            self.confusion_view.set_matrix(
                matrix,
                names,
                title=f"Confusion matrix · {rec.name} · best epoch {s.best_epoch} · "
                f"validation accuracy {s.best_val_acc:.1%}",
            )
            self._preselect_cell()
        else:
            self._run_class_names = []
            self.confusion_view.clear(f"{rec.name} has no finished epoch, so no confusion matrix.")
        self.gallery.set_message("Click a cell of the confusion matrix to see its validation images.")
        if switch:
            kind = {"finished": "done", "stopped": "warning", "interrupted": "warning"}.get(
                rec.summary.status, "error"
            )
            self._set_banner(
                f"<b>{html.escape(rec.name)}</b>: {html.escape(rec.settings_text())}. "
                f"{html.escape(rec.result_text())}. {html.escape(rec.summary.message)}",
                kind,
            )
            self.tabs.setCurrentIndex(1)
        self._update_buttons()

    def _on_view_failed(self, job: Job, exc: BaseException) -> None:
        if self._view_slot.is_current(job):
            self._set_banner(html.escape(f"Cannot show the run: {exc}"), "error")

    def _preselect_cell(self) -> None:
        """Open on the most frequent mistake (or the first class when there is none): the telling cell."""
        matrix = self.confusion_view.matrix
        if matrix is None or not matrix.size:
            return
        mistakes = matrix.copy()
        np.fill_diagonal(mistakes, 0)
        r, c = np.unravel_index(int(mistakes.argmax()), mistakes.shape) if mistakes.any() else (0, 0)
        self.confusion_view.table.setCurrentCell(int(r), int(c))
        self.show_cell_images(int(r), int(c))

    @Slot(int, int)
    def show_cell_images(self, row: int, col: int) -> None:
        names = self._run_class_names
        if not (0 <= row < len(names) and 0 <= col < len(names)):
            return
        true, predicted = names[row], names[col]
        chosen = [p for p in self._predictions if p.true == true and p.predicted == predicted]
        what = "correctly recognised" if row == col else f"predicted as '{predicted}'"
        caption = f"{len(chosen)} '{true}' validation image(s) {what}"
        if len(chosen) > GALLERY_LIMIT:
            caption += f" (the first {GALLERY_LIMIT} shown)"
        if not chosen:
            self._gallery_slot.cancel()
            self.gallery.set_message(caption + ".")
            return
        self.gallery.set_message(caption + " — loading…")
        job = self._gallery_slot.start(gallery_items, chosen[:GALLERY_LIMIT], name="cell images")
        job.result.connect(
            lambda items, job=job: self._on_gallery(job, items, caption + ". Click one to use it.")
        )

    def _on_gallery(self, job: Job, items: list[GalleryItem], caption: str) -> None:
        if self._gallery_slot.is_current(job):
            self.gallery.set_items(items, caption)

    def _on_gallery_image(self, path: str) -> None:
        self._chosen_image = Path(path)
        self._update_explorer_image()

    @Slot()
    def choose_explorer_image(self) -> None:
        start = str(self._chosen_image or self._current_image or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Image for the Network explorer", start)
        if path:
            self._chosen_image = Path(path)
            self._update_explorer_image()

    def explorer_image(self) -> Path | None:
        """The image "Open in explorer" uses: the one picked here, else the app's current image."""
        return self._chosen_image or self._current_image

    def explorer_checkpoint(self) -> Path | None:
        if self._run_path is None:
            return None
        for name in (BEST_CHECKPOINT, LAST_CHECKPOINT):
            if (self._run_path / name).is_file():
                return self._run_path / name
        return None

    def _update_explorer_image(self) -> None:
        image = self.explorer_image()
        if image is None:
            self.explorer_image_label.setText("Image: none (open one, or click a validation image)")
        else:
            which = "validation image" if image == self._chosen_image else "the current image"
            self.explorer_image_label.setText(f"Image: <b>{html.escape(image.name)}</b> ({which})")

    @Slot()
    def emit_open_in_explorer(self) -> None:
        ckpt = self.explorer_checkpoint()
        if ckpt is None:
            self._set_banner("This run has no checkpoint yet.", "warning")
            return
        image = self.explorer_image()
        self.open_in_explorer.emit(str(ckpt), str(image) if image is not None else "")

    # ============================================================================================
    # History
    # ============================================================================================
    def refresh_history(self, select: str | None = None) -> None:
        if self._shut_down:
            return
        job = self._history_slot.start(list_runs, self.runs_folder, name="list runs")
        job.result.connect(lambda records, job=job: self._on_history(job, records, select))

    def _on_history(self, job: Job, records: list[RunRecord], select: str | None) -> None:
        if self._history_slot.is_current(job):
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
        self.runs_folder_edit.setText(str(folder))
        if remember and self._settings is not None:
            self._settings.setValue(SETTINGS_RUNS_FOLDER, str(folder))
        self.history.set_runs([])
        self.refresh_history()

    # ============================================================================================
    # State
    # ============================================================================================
    def _update_buttons(self) -> None:
        training = self.is_training()
        self.start_button.setEnabled(not training and self._scan is not None)
        self.pause_button.setEnabled(training and not self._stopping)
        self.stop_button.setEnabled(training and not self._stopping)
        self.open_explorer_button.setEnabled(not training and self.explorer_checkpoint() is not None)
        self.runs_folder_button.setEnabled(not training)
        self.history.set_locked(training)

    def _set_banner(self, rich_text: str, kind: str) -> None:
        self._banner_lines = []
        self._banner_kind = "info"
        self._add_banner(rich_text, kind)

    def _add_banner(self, rich_text: str, kind: str) -> None:
        if rich_text in self._banner_lines:
            return
        self._banner_lines.append(rich_text)
        if _BANNER_RANK[kind] >= _BANNER_RANK[self._banner_kind]:
            self._banner_kind = kind
        self.banner.setText("<br>".join(self._banner_lines[-4:]))
        self.banner.setStyleSheet(_BANNER_STYLES[self._banner_kind])
        bar = self.banner_area.verticalScrollBar()
        QTimer.singleShot(0, bar, lambda: bar.setValue(bar.maximum()))  # the newest line, once laid out

    def _clear_banner(self) -> None:
        self._banner_lines = []
        self._banner_kind = "info"
        self.banner.setText("Notices, warnings and errors of a run appear here.")
        self.banner.setStyleSheet(IDLE_STYLE)

    def banner_text(self) -> str:
        """What the banner says ("" while it only shows its idle hint)."""
        return self.banner.text() if self._banner_lines else ""

    # -- the screenshot's demo run --------------------------------------------------------------
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
