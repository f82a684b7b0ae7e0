"""A wrapping grid of image thumbnails with captions, e.g. the validation images of a confusion cell.

``ImageGallery.set_items(items)`` shows ``(path, thumbnail or None, caption)`` tuples (thumbnails come
from ``thumbnails.load_thumbnail`` in a worker); ``paths()`` lists what is shown; clicking one emits
``image_chosen(path)``. ``set_message(text)`` shows a line of text in place of the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from cnn_explorer.qt.widgets.thumbnails import to_pixmap

GALLERY_SIDE = 72

GalleryItem = tuple[str, "np.ndarray | None", str]


class ImageGallery(QWidget):
    image_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(GALLERY_SIDE, GALLERY_SIDE))
        self.list.setGridSize(QSize(GALLERY_SIDE + 34, GALLERY_SIDE + 34))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setWordWrap(True)
        self.list.itemClicked.connect(self._on_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption_label)
        layout.addWidget(self.list, 1)

    def set_message(self, text: str) -> None:
        self.list.clear()
        self.caption_label.setText(text)

    def set_items(self, items: Sequence[GalleryItem], caption: str = "") -> None:
        self.list.clear()
        self.caption_label.setText(caption)
        for path, thumb, text in items:
            item = QListWidgetItem(text)
            if thumb is not None:
                item.setIcon(QIcon(to_pixmap(thumb)))
            item.setToolTip(f"{path}\n{text}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.list.addItem(item)

    def paths(self) -> list[Path]:
        return [Path(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())]

    def _on_clicked(self, item: QListWidgetItem) -> None:
        self.image_chosen.emit(str(item.data(Qt.ItemDataRole.UserRole)))
