"""The Fine-tune page's Results tab: a clickable confusion matrix with per-class accuracy, the gallery of
a cell's validation images (loaded in a worker), and the image and button for "Open in explorer".

The panel keeps the shown run's validation predictions and class names; the page tells it which run
that is and answers ``open_requested`` (it knows the run's checkpoint).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.core.runs import ValPrediction
from cnn_explorer.qt.pages.finetune.jobs import gallery_items
from cnn_explorer.qt.widgets.confusion_matrix import ConfusionMatrixView
from cnn_explorer.qt.widgets.image_gallery import GalleryItem, ImageGallery
from cnn_explorer.qt.workers import Job, JobSlot

GALLERY_LIMIT = 60  # images shown for one confusion cell
GALLERY_HINT = "Click a cell of the confusion matrix to see its validation images."


class ResultsPanel(QWidget):
    """``confusion_view`` and ``gallery`` side by side, the explorer image and "Open in explorer" below
    the gallery. ``open_requested`` when that button is clicked.

    ``predictions`` and ``class_names`` are the shown run's: a click on a cell lists the validation
    images of that (true, predicted) pair.
    """

    open_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictions: list[ValPrediction] = []
        self.class_names: list[str] = []
        self.current_image: Path | None = None  # the app's current image
        self.chosen_image: Path | None = None  # picked for "Open in explorer" (a file or a val image)
        self._gallery_slot = JobSlot()

        self.confusion_view = ConfusionMatrixView()
        self.confusion_view.cell_clicked.connect(self.show_cell_images)
        self.gallery = ImageGallery()
        self.gallery.set_message(GALLERY_HINT)
        self.gallery.image_chosen.connect(self._on_gallery_image)
        self.explorer_image_label = QLabel()
        self.explorer_image_label.setWordWrap(True)
        self.choose_image_button = QPushButton("Other image…")
        self.choose_image_button.clicked.connect(self.choose_explorer_image)
        self.open_explorer_button = QPushButton("Open in explorer")
        self.open_explorer_button.setToolTip("Load this run's best checkpoint into the Network explorer")
        self.open_explorer_button.setStyleSheet("font-weight: 600;")
        self.open_explorer_button.clicked.connect(lambda: self.open_requested.emit())
        explorer = QHBoxLayout()
        explorer.addWidget(self.explorer_image_label, 1)
        explorer.addWidget(self.choose_image_button)
        explorer.addWidget(self.open_explorer_button)
        side = QVBoxLayout()
        side.addWidget(self.gallery, 1)
        side.addLayout(explorer)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.confusion_view, 5)
        row.addLayout(side, 4)
        self._update_explorer_image()

    @property
    def busy(self) -> bool:
        """A cell's images are loading."""
        return self._gallery_slot.busy

    def cancel(self) -> None:
        self._gallery_slot.cancel()

    # -- the matrix and its cells ----------------------------------------------------------------
    def show_matrix(self, matrix: np.ndarray, title: str, per_class_acc: np.ndarray | None = None) -> None:
        """Show ``matrix`` (rows and columns in ``class_names``' order) and open its telling cell."""
        self.confusion_view.set_matrix(matrix, self.class_names, per_class_acc, title=title)
        self._preselect_cell()

    def reset_gallery(self) -> None:
        self.gallery.set_message(GALLERY_HINT)

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
        names = self.class_names
        if not (0 <= row < len(names) and 0 <= col < len(names)):
            return
        true, predicted = names[row], names[col]
        chosen = [p for p in self.predictions if p.true == true and p.predicted == predicted]
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

    # -- the image for "Open in explorer" --------------------------------------------------------
    def _on_gallery_image(self, path: str) -> None:
        self.chosen_image = Path(path)
        self._update_explorer_image()

    def set_current_image(self, path: Path) -> None:
        self.current_image = path
        self._update_explorer_image()

    @Slot()
    def choose_explorer_image(self) -> None:
        start = str(self.chosen_image or self.current_image or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Image for the Network explorer", start)
        if path:
            self.chosen_image = Path(path)
            self._update_explorer_image()

    def explorer_image(self) -> Path | None:
        """The image "Open in explorer" uses: the one picked here, else the app's current image."""
        return self.chosen_image or self.current_image

    def _update_explorer_image(self) -> None:
        image = self.explorer_image()
        if image is None:
            self.explorer_image_label.setText("Image: none (open one, or click a validation image)")
        else:
            which = "validation image" if image == self.chosen_image else "the current image"
            self.explorer_image_label.setText(f"Image: <b>{html.escape(image.name)}</b> ({which})")
