"""Network explorer page (being built)."""

from PySide6.QtWidgets import QWidget

from cnn_explorer.qt.pages.base import ComingPage


class NetworkPage(ComingPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Network explorer",
            "Run a real pretrained CNN on the image and walk it layer by layer: feature maps, filters, "
            "shapes, parameters, top-5 predictions and Grad-CAM.",
            parent,
        )
