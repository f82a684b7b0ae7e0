"""The Fine-tune page's Results tab: a clickable confusion matrix with per-class accuracy, the gallery of
a cell's validation images (loaded in a worker), "why" for a clicked image (its Grad-CAM for the predicted
and for the true class, side by side, computed in a worker), and the image and button for "Open in
explorer".

The panel keeps the shown run's validation predictions and class names; the page tells it which run
that is (``set_run``) and answers ``open_requested`` (it knows the run's checkpoint).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.core.runs import ValPrediction
from cnn_explorer.core.transfer.why import CamPair, RunModels
from cnn_explorer.qt.pages.finetune.jobs import gallery_items
from cnn_explorer.qt.widgets.cam_pair import CamPairView
from cnn_explorer.qt.widgets.confusion_matrix import ConfusionMatrixView
from cnn_explorer.qt.widgets.image_gallery import GalleryItem, ImageGallery
from cnn_explorer.qt.workers import LatestRunner

GALLERY_LIMIT = 60  # images shown for one confusion cell
GALLERY_HINT = "Click a cell of the confusion matrix to see its validation images."
WHY_HINT = "Click a validation image to see where the model looked for the predicted and the true class."
WHY_SIDE = 112  # px of each of the two heat maps (the tab shares the page with the curves)


class ResultsPanel(QWidget):
    """``confusion_view`` and ``gallery`` side by side; under the gallery ``cam_view`` (why the clicked
    image got its answer), then the explorer image and "Open in explorer". ``open_requested`` when that
    button is clicked.

    ``predictions`` and ``class_names`` are the shown run's: a click on a cell lists the validation
    images of that (true, predicted) pair; a click on one of them explains it with ``run_path``'s model.
    """

    open_requested = Signal()
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.predictions: list[ValPrediction] = []
        self.class_names: list[str] = []
        self.current_image: Path | None = None  # the app's current image
        self.chosen_image: Path | None = None  # picked for "Open in explorer" (a file or a val image)
        self._gallery_runner = LatestRunner(self)
        self._run_path: Path | None = None
        self._models = RunModels()  # the run's model stays loaded while images are clicked through
        self._why_runner = LatestRunner(self)

        self.confusion_view = ConfusionMatrixView()
        self.confusion_view.cell_clicked.connect(self.show_cell_images)
        self.gallery = ImageGallery()
        self.gallery.set_message(GALLERY_HINT)
        self.gallery.image_chosen.connect(self._on_gallery_image)
        self.cam_view = CamPairView(side=WHY_SIDE)
        self.cam_view.clear(WHY_HINT)
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
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save this run's model as ONNX, TorchScript or safetensors, verified")
        self.export_button.clicked.connect(lambda: self.export_requested.emit())
        explorer.addWidget(self.export_button)
        images = QHBoxLayout()  # the cell's images, and why the clicked one was classified so
        images.addWidget(self.gallery, 1)
        images.addWidget(self.cam_view)
        side = QVBoxLayout()
        side.addLayout(images, 1)
        side.addLayout(explorer)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 4, 4, 4)
        row.addWidget(self.confusion_view, 4)
        row.addLayout(side, 5)
        self._update_explorer_image()

    @property
    def busy(self) -> bool:
        """A cell's images are loading, or an image's Grad-CAM pair is being computed."""
        return self._gallery_runner.busy or self._why_runner.busy

    def cancel(self) -> None:
        self._gallery_runner.cancel()
        self._why_runner.cancel()

    def shutdown(self) -> None:
        """Stop the workers for good (the page is closing)."""
        self._gallery_runner.shutdown()
        self._why_runner.shutdown()

    # -- the run whose results are shown -------------------------------------------------------
    @property
    def run_path(self) -> Path | None:
        """The run folder whose model explains a clicked image (None: no run shown)."""
        return self._run_path

    def set_run(self, path: Path | None) -> None:
        """The run whose results are shown: its best checkpoint explains clicked images."""
        path = Path(path) if path is not None else None
        if path == self._run_path:
            return
        self._run_path = path
        self._why_runner.cancel()  # a pair of the previous run's model would mislead
        self._models.clear()
        self.cam_view.clear(WHY_HINT)

    # -- the matrix and its cells ----------------------------------------------------------------
    def show_matrix(self, matrix: np.ndarray, title: str, per_class_acc: np.ndarray | None = None) -> None:
        """Show ``matrix`` (rows and columns in ``class_names``' order) and open its telling cell."""
        self.confusion_view.set_matrix(matrix, self.class_names, per_class_acc, title=title)
        self._preselect_cell()

    def reset_gallery(self) -> None:
        self.gallery.set_message(GALLERY_HINT)
        self._clear_why()

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
        self._clear_why()  # the shown pair belongs to an image of another cell
        what = "correctly recognised" if row == col else f"predicted as '{predicted}'"
        caption = f"{len(chosen)} '{true}' validation image(s) {what}"
        if len(chosen) > GALLERY_LIMIT:
            caption += f" (the first {GALLERY_LIMIT} shown)"
        if not chosen:
            self._gallery_runner.cancel()
            self.gallery.set_message(caption + ".")
            return
        self.gallery.set_message(caption + " — loading…")
        mistake = row != col
        self._gallery_runner.request(
            ("cell", str(self._run_path), row, col, len(chosen)),
            gallery_items,
            chosen[:GALLERY_LIMIT],
            on_result=lambda items: self._on_gallery(items, caption + ". Click one to use it.", mistake),
            name="cell images",
        )

    def _on_gallery(self, items: list[GalleryItem], caption: str, mistake: bool) -> None:
        self.gallery.set_items(items, caption)
        if mistake and items:  # a cell of mistakes opens with its first image explained
            self._explain(Path(items[0][0]))

    # -- why: the clicked image's Grad-CAM for the predicted and the true class --------------------
    def _on_gallery_image(self, path: str) -> None:
        self.chosen_image = Path(path)
        self._update_explorer_image()
        self._explain(Path(path))

    def _explain(self, path: Path) -> None:
        prediction = next((p for p in self.predictions if Path(p.path) == path), None)
        if self._run_path is None or prediction is None:
            self._why_runner.cancel()
            what = (
                "no run is shown"
                if self._run_path is None
                else "it is not one of the run's validation images"
            )
            self.cam_view.clear(f"Cannot explain {path.name}: {what}.")
            return
        classes = f"'{prediction.predicted}' (predicted) and '{prediction.true}' (true)"
        self.cam_view.busy(f"Grad-CAM of {path.name} for {classes}…")
        self._why_runner.request(
            (str(self._run_path), str(path)),
            self._models.cam_pair,
            self._run_path,
            path,
            prediction.true,
            on_result=self._on_pair,
            on_failed=lambda exc: self.cam_view.clear(str(exc)),
            name="why",
        )

    def _on_pair(self, pair: CamPair) -> None:
        self.cam_view.show_pair(
            pair.pixels,
            pair.cam_predicted,
            pair.cam_true,
            pair.predicted,
            pair.p_pred,
            pair.true,
            pair.p_true,
        )

    def _clear_why(self) -> None:
        self._why_runner.cancel()
        self.cam_view.clear(WHY_HINT)

    # -- the image for "Open in explorer" --------------------------------------------------------
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
