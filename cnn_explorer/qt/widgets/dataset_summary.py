"""What a dataset scan found: class counts with example thumbnails, unreadable files, warnings, errors.

``DatasetSummaryView`` shows a :class:`~cnn_explorer.core.data.DatasetScan` (read-only; it does no I/O):

- ``show_scanning(folder)``, ``set_scan(scan, thumbnails)``, ``set_error(folder, message)``, ``clear()``;
- ``table``: one row per class — name, training images, validation images, example thumbnails;
- ``bad_list``: one line per unreadable file (name and reason; the full path in the tooltip), hidden
  when there are none; ``problems_label`` heads it and also counts non-image files that were ignored;
- ``message_label``: dataset errors (red) and warnings (amber).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.data import DatasetScan
from cnn_explorer.qt.widgets.thumbnails import THUMB_SIDE, strip_pixmap

ERROR_STYLE = "color: #a31515; background: #fdecea; border: 1px solid #f5c2c0; padding: 6px;"
WARNING_STYLE = "color: #7a4b00; background: #fff4e0; border: 1px solid #f3d19e; padding: 6px;"
COLUMNS = ("Class", "Train", "Val", "Examples")


class DatasetSummaryView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scan: DatasetScan | None = None
        self.header_label = QLabel("No dataset yet: choose a folder with one sub-folder of images per class.")
        self.header_label.setWordWrap(True)
        self.header_label.setTextFormat(Qt.TextFormat.RichText)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.hide()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setIconSize(QSize(6 * (THUMB_SIDE + 4), THUMB_SIDE))
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIDE + 8)
        header = self.table.horizontalHeader()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)

        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        self.bad_list = QListWidget()
        self.bad_list.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.bad_list)

    # -- states -------------------------------------------------------------------------------------
    def clear(self) -> None:
        self.scan = None
        self.table.setRowCount(0)
        self.message_label.hide()
        self.problems_label.hide()
        self.bad_list.clear()
        self.bad_list.hide()

    def show_scanning(self, folder: str | Path) -> None:
        self.clear()
        self.header_label.setText(f"Checking the images in <b>{html.escape(str(folder))}</b>…")

    def set_error(self, folder: str | Path, message: str) -> None:
        """The dataset cannot be used: say why (the message names the problem and what to do)."""
        self.clear()
        self.header_label.setText(f"<b>{html.escape(str(folder))}</b> cannot be used for training:")
        self._message(html.escape(message), ERROR_STYLE)

    def set_scan(self, scan: DatasetScan, thumbnails: dict[str, list[np.ndarray]] | None = None) -> None:
        self.clear()
        self.scan = scan
        how = (
            "its train/ and val/ folders"
            if scan.layout == "train-val"
            else f"a {1 - scan.val_fraction:.0%}/{scan.val_fraction:.0%} split with seed {scan.seed}"
        )
        self.header_label.setText(
            f"<b>{html.escape(str(scan.root))}</b><br>{len(scan.train)} training and {len(scan.val)} "
            f"validation images in {scan.num_classes} classes ({how})."
        )
        counts = scan.class_counts()
        self.table.setRowCount(len(counts))
        for row, (name, (n_train, n_val)) in enumerate(counts.items()):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            for col, n in ((1, n_train), (2, n_val)):
                item = QTableWidgetItem(str(n))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
            thumbs = (thumbnails or {}).get(name, [])
            examples = QTableWidgetItem("" if thumbs else "—")
            if thumbs:
                examples.setData(Qt.ItemDataRole.DecorationRole, strip_pixmap(thumbs))
                examples.setToolTip("\n".join(str(p) for p in scan.examples(name, len(thumbs))))
            self.table.setItem(row, 3, examples)
        if scan.warnings:
            self._message("<br>".join(html.escape(w) for w in scan.warnings), WARNING_STYLE)
        parts = []
        if scan.bad_files:
            parts.append(f"<b>{len(scan.bad_files)} unreadable file(s) skipped</b> (not used for training):")
        if scan.ignored_files:
            names = ", ".join(html.escape(p.name) for p in scan.ignored_files[:5])
            more = f" and {len(scan.ignored_files) - 5} more" if len(scan.ignored_files) > 5 else ""
            parts.append(f"{len(scan.ignored_files)} non-image file(s) ignored: {names}{more}.")
        if parts:
            self.problems_label.setText("<br>".join(parts))
            self.problems_label.show()
        for bad in scan.bad_files:
            item = QListWidgetItem(f"{bad.path.parent.name}/{bad.path.name} — {bad.reason}")
            item.setToolTip(str(bad))
            self.bad_list.addItem(item)
        if scan.bad_files:
            rows = min(len(scan.bad_files), 4)
            self.bad_list.setFixedHeight(
                rows * self.bad_list.sizeHintForRow(0) + 2 * self.bad_list.frameWidth() + 2
            )
        self.bad_list.setVisible(bool(scan.bad_files))

    def _message(self, rich_text: str, style: str) -> None:
        self.message_label.setText(rich_text)
        self.message_label.setStyleSheet(style)
        self.message_label.show()
