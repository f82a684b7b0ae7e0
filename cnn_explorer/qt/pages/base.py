"""What the main window expects of a page."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage


class Page(QWidget):
    """A page of the main window. Subclasses override what they need; the defaults do nothing."""

    status_message = Signal(str)
    title = ""

    def set_image(self, loaded: LoadedImage) -> None:
        """The user opened an image (the app starts with the bundled cat)."""

    def is_busy(self) -> bool:
        """True while the page still has work under way (the screenshot command waits for it)."""
        return False

    def prepare_screenshot(self) -> None:
        """Put the page into a telling state for a picture of it."""

    def confirm_close(self) -> bool:
        """Asked before the window closes; a page with precious work under way may ask the user."""
        return True

    def shutdown(self) -> None:
        """Cancel the page's jobs; the window then joins all worker threads."""


class ComingPage(Page):
    """Stands in for a page that is not built yet."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        label = QLabel(f"<h2>{title}</h2><p>{text}</p><p><i>Coming soon.</i></p>")
        label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(label)
        layout.addStretch(2)
