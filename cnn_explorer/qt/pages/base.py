"""What the main window expects of a page."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from cnn_explorer.core.images import LoadedImage


class ScrollContent(QWidget):
    """A page's content inside its scroll area.

    Word-wrapped labels give the layout a height-for-width, which QScrollArea would honour with the
    children's (large) preferred heights and scroll at any window size; the minimum height is the honest
    answer.
    """

    def heightForWidth(self, width: int) -> int:
        return self.minimumSizeHint().height()


class WrappedScrollContent(ScrollContent):
    """A column of boxes whose word-wrapped texts need more lines than the width-free minimum counts
    (the explorer's side panel): its minimum at a width counts the lines each wrapped label takes there.
    With the width-free minimum, the layout squeezed a box below its own minimum and its chart and caption
    drew over each other. (Not for every page: a tab widget's height at a width is its pages' preferred
    height, which would make pages of charts scroll at any size.)"""

    def heightForWidth(self, width: int) -> int:
        layout = self.layout()
        at_width = layout.minimumHeightForWidth(width) if layout is not None else -1
        return max(self.minimumSizeHint().height(), at_width)


def form_scroll(content: QWidget) -> QScrollArea:
    """A form column in a frameless scroll area that scrolls only up and down (a short window scrolls
    the form; it never grows a horizontal bar)."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(content)
    return scroll


@dataclass(frozen=True)
class PageCode:
    """The PyTorch behind what a page shows: a title and its files (name -> code)."""

    title: str
    files: dict[str, str]


class Page(QWidget):
    """A page of the main window. Subclasses override what they need; the defaults do nothing."""

    status_message = Signal(str)
    title = ""

    def code(self) -> PageCode | str:
        """The code for "Show the code", or why there is none now (a line for the status bar)."""
        return "This page has no code to show."

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

    def scroll_page(self, content: ScrollContent) -> QScrollArea:
        """Fill the page with ``content`` in a frameless scroll area: in a small window the page scrolls
        instead of squeezing its maps and plots to nothing."""
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        return scroll


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
