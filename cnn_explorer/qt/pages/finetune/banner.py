"""The Fine-tune page's banner: notices, warnings and errors of a run, the most serious one's colour.

It keeps one height, three lines, and scrolls beyond: a banner that grew and shrank with its text
resized the plots below, and each relayout repainted them whole (20-30 ms, the largest GUI stalls when
a run started, bench_gui_stall.py).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QWidget

from cnn_explorer.qt.widgets.dataset_summary import ERROR_STYLE, WARNING_STYLE

IDLE_STYLE = "color: #666; background: #f6f6f6; border: 1px solid #dddddd; padding: 6px;"
INFO_STYLE = "color: #0b3d6b; background: #e8f1fb; border: 1px solid #b8d4f0; padding: 6px;"
DONE_STYLE = "color: #14532d; background: #e7f6ec; border: 1px solid #a9dbb8; padding: 6px;"
IDLE_TEXT = "Notices, warnings and errors of a run appear here."
_BANNER_STYLES = {"info": INFO_STYLE, "done": DONE_STYLE, "warning": WARNING_STYLE, "error": ERROR_STYLE}
_BANNER_RANK = {"info": 0, "done": 1, "warning": 2, "error": 3}


class Banner(QScrollArea):
    """A fixed-height, scrolling rich-text banner; ``label`` is the text itself.

    ``kind`` is one of "info", "done", "warning", "error": the banner takes the colour of the most
    serious kind among its lines. The last twelve lines are kept (it scrolls); a repeated line is not
    added again.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setWidget(self.label)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(3 * self.label.fontMetrics().lineSpacing() + 16)
        self._kind = "info"
        self._lines: list[str] = []
        self.clear()

    def set_text(self, rich_text: str, kind: str) -> None:
        """Replace what the banner says with one line."""
        self._lines = []
        self._kind = "info"
        self.add(rich_text, kind)

    def add(self, rich_text: str, kind: str) -> None:
        """Add a line below the others (and scroll to it)."""
        if rich_text in self._lines:
            return
        self._lines.append(rich_text)
        if _BANNER_RANK[kind] >= _BANNER_RANK[self._kind]:
            self._kind = kind
        self.label.setText("<br>".join(self._lines[-12:]))
        self.label.setStyleSheet(_BANNER_STYLES[self._kind])
        bar = self.verticalScrollBar()
        QTimer.singleShot(0, bar, lambda: bar.setValue(bar.maximum()))  # the newest line, once laid out

    def clear(self) -> None:
        """Back to the idle hint."""
        self._lines = []
        self._kind = "info"
        self.label.setText(IDLE_TEXT)
        self.label.setStyleSheet(IDLE_STYLE)

    def text(self) -> str:
        """What the banner says ("" while it only shows its idle hint)."""
        return self.label.text() if self._lines else ""
