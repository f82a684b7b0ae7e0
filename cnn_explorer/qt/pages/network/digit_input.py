"""Draw a digit for LeNet-5 (a mixin of NetworkPage): the pad beside the layer list, and which picture the
explorer runs on.

When side A's model reads digits (its preprocessing is the digit one: the bundled LeNet-5, or a model
fine-tuned from it), the pad appears. Each reading of the pen becomes the session's picture, so the usual
"latest request wins" runners run the model and redraw the current layer; nothing new runs on the GUI
thread. The drawing is fed as drawn (dark ink on white): the model's own preprocessing centres and scales
it, as the training digits were. Clear, opening a picture, or a model that does not read digits goes back
to the opened picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.explorer.tasks import ModelSource
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.qt import style
from cnn_explorer.qt.widgets.digit_canvas import DigitCanvas

DRAWING_PATH = Path("your drawing")  # names the picture (LoadedImage.path); no file is read or written
USING_TEXT = "LeNet-5 reads your drawing, centred and scaled as its training digits were."
# A "3" as a hand draws it, in 0..1 pad coordinates: the screenshot's digit, drawn on the real canvas.
SCREENSHOT_DIGIT = [[(0.3, 0.2), (0.65, 0.22), (0.45, 0.48), (0.7, 0.65), (0.55, 0.84), (0.3, 0.8)]]
SCREENSHOT_LAYER = "c3"  # C3's sixteen maps: each combines several of C1's strokes
WAITING_TEXT = "Draw a digit: the predictions and the layer's maps follow your pen."


def drawing_image(pixels: np.ndarray) -> LoadedImage:
    return LoadedImage(np.ascontiguousarray(pixels), DRAWING_PATH, "drawing", "L")


class DigitPad(QWidget):
    """The canvas with its title, Clear button and a line saying what the explorer is showing."""

    drawn = Signal(object)
    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Draw a digit")
        self.title.setStyleSheet(style.TITLE_STYLE)
        self.canvas = DigitCanvas()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Wipe the pad and go back to the opened picture")
        self.hint = QLabel(WAITING_TEXT)
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(style.SMALL_MUTED_STYLE)
        row = QHBoxLayout()
        row.addWidget(self.title, 1)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.hint)
        self.canvas.drawn.connect(self._on_drawn)
        self.canvas.cleared.connect(self._on_cleared)
        self.clear_button.clicked.connect(self.canvas.clear)

    def _on_drawn(self, pixels: np.ndarray) -> None:
        self.hint.setText(USING_TEXT)
        self.drawn.emit(pixels)

    def _on_cleared(self) -> None:
        self.hint.setText(WAITING_TEXT)
        self.cleared.emit()


class DigitInput:
    """NetworkPage's picture: the opened one, or the drawing while a digit reader is shown."""

    def _build_digit_pad(self) -> DigitPad:
        self.digit_pad = DigitPad()
        self.digit_pad.setVisible(False)
        self.digit_canvas = self.digit_pad.canvas
        self._picture: LoadedImage | None = None  # the window's picture (the app starts with the cat)
        self._drawing: LoadedImage | None = None
        self.digit_pad.drawn.connect(self._on_digit_drawn)
        self.digit_pad.cleared.connect(self._on_digit_cleared)
        self.session.events.image.connect(self._on_session_image)
        return self.digit_pad

    @property
    def reads_digits(self) -> bool:
        loaded = self.session.a.loaded
        return loaded is not None and loaded.preprocess.digit

    @property
    def drawing_shown(self) -> bool:
        return self._drawing is not None and self.session.image is self._drawing

    def set_image(self, loaded: LoadedImage) -> None:
        """A picture opened in the window: it replaces the drawing."""
        self._picture = loaded
        if self._drawing is not None:
            self._drawing = None
            self.digit_pad.canvas.clear()  # (emits cleared only if it was not empty)
        self._show_picture(loaded)

    def _show_picture(self, picture: LoadedImage) -> None:
        if self.session.set_image(picture) or not self.session.a.ready:
            for side in self.session.active_sides():
                self._run(side)

    def _on_session_image(self) -> None:
        """A picture that a job opened (a run opened in the explorer with its image) is the picture now."""
        image = self.session.image
        if image is None or image is self._drawing or image is self._picture:
            return
        self._picture = image
        if self._drawing is not None:
            self._drawing = None
            self.digit_pad.canvas.clear()

    def _on_digit_drawn(self, pixels: np.ndarray) -> None:
        first = not self.drawing_shown
        self._drawing = drawing_image(pixels)
        if self.reads_digits:
            self._show_picture(self._drawing)
            if first:
                self.status_message.emit(f"{self.session.a.loaded.info.title} reads your drawing.")

    def _on_digit_cleared(self) -> None:
        shown = self.drawing_shown
        self._drawing = None
        if shown and self._picture is not None:
            self._show_picture(self._picture)
            self.status_message.emit(f"Back to {self._picture.path.name}.")

    def _before_source_runs(self, side: Side, source: ModelSource) -> None:
        """Side A is about to run another model: one that does not read digits gets the opened picture at
        once (not a pass over the drawing first), and the pad goes while it loads."""
        if side is not Side.A:
            return
        reads = source.path is None and source.name is not None and zoo.reads_digits(source.name)
        if not reads:
            self.digit_pad.setVisible(False)  # (a model file that reads digits brings it back once loaded)
        if not reads and self.drawing_shown and self._picture is not None:
            self.session.set_image(self._picture)
            for other in self.session.active_sides():
                if other is not side:
                    self._run(other)

    def _update_digit_pad(self, side: int = 0) -> None:
        """Side A's model changed: the pad is shown for a digit reader, which is fed the drawing if any."""
        if side != 0:
            return
        self.digit_pad.setVisible(self.reads_digits)
        QTimer.singleShot(0, self._switch_picture)  # after this model event has reached every listener

    def _switch_picture(self) -> None:
        reads = self.reads_digits
        if reads and self._drawing is not None and not self.drawing_shown:
            self._show_picture(self._drawing)
        elif not reads and self.drawing_shown and self._picture is not None:
            self._show_picture(self._picture)

    # -- the screenshot ----------------------------------------------------------------------------
    def prepare_draw_screenshot(self, step: int) -> bool:
        """``lenet-draw.png`` in two steps, each followed by waiting for the page: 0 opens LeNet-5 at C3,
        1 draws the digit on the canvas. Returns False once there is nothing left to do."""
        if step == 0:
            self.open_zoo_model("lenet5", SCREENSHOT_LAYER)
            return True
        if step == 1:
            self.digit_canvas.clear()
            self.digit_canvas.draw_strokes(SCREENSHOT_DIGIT)
            return True
        return False
