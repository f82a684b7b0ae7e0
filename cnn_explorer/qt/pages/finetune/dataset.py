"""The Fine-tune page's dataset handling (a mixin of FineTunePage): choosing a folder, scanning it in a
worker (``core.data.scan_dataset`` plus thumbnails), re-splitting when the seed or validation share
changes, and showing the outcome in the dataset box and the Dataset tab (class counts, thumbnails,
unreadable files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog

from cnn_explorer.core.data import DatasetError, ScanProgress
from cnn_explorer.qt.pages.finetune.jobs import ScanOutcome, scan_with_thumbnails


class DatasetBinding:
    def set_dataset_folder(self, path: str | Path) -> None:
        """Scan ``path`` in a worker and show what it holds."""
        folder = Path(path)
        self.cancel_dataset_tools()  # a probe or LR sweep of the previous dataset would land on this one
        self._scan_folder = folder
        self._scan = None
        self.dataset_panel.show_checking(folder)
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

    def _start_scan(self, fn, *args, then: Callable[[bool], None] | None = None, **kwargs) -> None:
        """Scan through the page's "latest request wins" runner (a newer scan supersedes this one);
        ``then(ok)`` runs after this scan's outcome is shown."""
        self._scan_requests += 1  # every request is new: the folder's files may have changed

        def done(outcome: ScanOutcome) -> None:
            self._on_scan_result(outcome)
            if then is not None:
                then(True)

        def failed(exc: BaseException) -> None:
            self._on_scan_failed(exc)
            if then is not None:
                then(False)

        self._scan_runner.request(
            ("scan", self._scan_requests),
            fn,
            *args,
            on_events=self._on_scan_events,
            on_result=done,
            on_failed=failed,
            name="scan dataset",
            **kwargs,
        )

    def _schedule_rescan(self) -> None:
        if self._scan_folder is not None:
            self._rescan_timer.start()

    def _rescan(self) -> None:
        if self._scan_folder is not None:
            self.set_dataset_folder(self._scan_folder)

    def _on_scan_events(self, events: list) -> None:
        progress = [e for e in events if isinstance(e, ScanProgress)]
        if progress:
            self.dataset_panel.show_progress(progress[-1])

    def _on_scan_result(self, outcome: ScanOutcome) -> None:
        scan = outcome.scan
        self._scan = scan
        self.dataset_view.set_scan(scan, outcome.thumbnails)
        self.dataset_panel.show_scan(scan)
        if not self.is_training():
            self.tabs.setCurrentWidget(self.dataset_view)
        self.session.set_scan(scan)
        if self.session.estimate is None:
            self.estimate_similarity()  # "similar to ImageNet?" is estimated from the images, not asked
        self._update_buttons()
        self.status_message.emit(
            f"Dataset: {len(scan.train) + len(scan.val)} images in {scan.num_classes} classes"
        )

    def _on_scan_failed(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, DatasetError) else f"Cannot read the dataset: {exc}"
        self._scan = None
        self.dataset_view.set_error(self._scan_folder or "", message)
        self.dataset_panel.show_unusable()
        self.tabs.setCurrentWidget(self.dataset_view)
        self.session.set_scan(None)
        self._update_buttons()
        self.status_message.emit(message)
