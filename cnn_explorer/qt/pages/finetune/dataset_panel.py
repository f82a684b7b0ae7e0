"""The Fine-tune page's "1 · Dataset" box: the chosen folder, Choose…, and one line on the scan.

The scan itself (a worker, its progress, the summary table with thumbnails and unreadable files) is
driven by :class:`~cnn_explorer.qt.pages.finetune.dataset.DatasetBinding`; this box only shows it.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.core.data import DatasetScan, ScanProgress

HINT = "Layouts: data/<class>/*.jpg, or data/train/<class> + data/val/<class>."


class DatasetPanel(QGroupBox):
    """The dataset folder (read-only), a Choose… button, "Try the bundled animal silhouettes" and a status
    line; ``choose_requested`` and ``sample_requested`` when the buttons are clicked."""

    choose_requested = Signal()
    sample_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("1 · Dataset", parent)
        v = QVBoxLayout(self)
        v.setContentsMargins(8, 6, 8, 6)
        row = QHBoxLayout()
        self.folder_edit = QLineEdit()
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setPlaceholderText("a folder with one sub-folder per class")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.clicked.connect(lambda: self.choose_requested.emit())
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.choose_button)
        v.addLayout(row)
        self.sample_button = QPushButton("Try the bundled animal silhouettes")
        self.sample_button.setToolTip(
            "A small real dataset (5 animals, 40 silhouettes each) to try fine-tuning right away"
        )
        self.sample_button.clicked.connect(lambda: self.sample_requested.emit())
        v.addWidget(self.sample_button)
        self.status = QLabel(HINT)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #555;")
        v.addWidget(self.status)

    def set_folder(self, folder: Path) -> None:
        self.folder_edit.setText(str(folder))

    def show_checking(self, folder: Path) -> None:
        """A new folder: its scan has just started."""
        self.set_folder(folder)
        self.status.setText("Checking the images…")
        self.status.setStyleSheet("color: #555;")

    def show_progress(self, p: ScanProgress) -> None:
        if p.phase == "listing":
            self.status.setText(f"Listing the folders… {p.done:,} entries so far")
        else:
            self.status.setText(f"Checking the images… {p.done:,}/{p.total:,}")

    def show_scan(self, scan: DatasetScan) -> None:
        bad = f", {len(scan.bad_files)} unreadable skipped" if scan.bad_files else ""
        self.status.setText(
            f"{len(scan.train)} training + {len(scan.val)} validation images, "
            f"{scan.num_classes} classes{bad}."
        )
        self.status.setStyleSheet("color: #7a4b00;" if scan.warnings else "color: #14532d;")

    def show_unusable(self) -> None:
        self.status.setText("Not usable for training — see the Dataset tab.")
        self.status.setStyleSheet("color: #a31515; font-weight: 600;")
