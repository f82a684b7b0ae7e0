"""Fine-tune page (being built)."""

from PySide6.QtWidgets import QWidget

from cnn_explorer.qt.pages.base import ComingPage


class FineTunePage(ComingPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Fine-tune",
            "Point at a folder of labelled images, pick a pretrained model and a strategy, watch it train.",
            parent,
        )
