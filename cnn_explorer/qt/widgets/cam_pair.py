"""Where the model looked for each class: one misclassified image's Grad-CAM for the predicted class and
for the true class, side by side.

``CamPairView.show_pair(pixels, cam_predicted, cam_true, predicted, p_pred, true, p_true)`` draws both
overlays with their captions ("predicted: dog 71.0 %" / "true: cat 12.0 %"); ``busy(text)`` and
``clear(text)`` show a line in their place. ``cam_overlay(pixels, heatmap, side)`` is the picture both
this view and the "watch it learn" strip draw: the image fitted into ``side`` pixels with the heat map
stretched over it (core.cam.overlay does the colouring).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from cnn_explorer.core.cam import overlay
from cnn_explorer.core.explorer.text import BadgeKind, percent_text
from cnn_explorer.core.images import resize_to
from cnn_explorer.qt.style import BADGE_COLOURS, FAINT, MUTED, SMALL_MUTED_STYLE, TITLE_STYLE
from cnn_explorer.qt.widgets.thumbnails import to_pixmap

PAIR_SIDE = 200
EXPLANATION = (
    "Where the model looked for each class: bright regions raised that class's score. If the predicted "
    "class lights up something other than the object, the model was fooled by it."
)
PREDICTED_COLOUR = BADGE_COLOURS[BadgeKind.UNTRAINED][0]  # the wrong answer: red
TRUE_COLOUR = BADGE_COLOURS[BadgeKind.PRETRAINED][0]  # the right answer: green


def fit_image(pixels: np.ndarray, side: int) -> np.ndarray:
    """The picture scaled so its longer side is ``side`` pixels (aspect kept)."""
    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    return resize_to(np.ascontiguousarray(pixels), max(1, round(w * scale)), max(1, round(h * scale)))


def cam_overlay(pixels: np.ndarray | None, heatmap: np.ndarray, side: int) -> np.ndarray:
    """uint8 RGB: the image fitted into ``side`` with ``heatmap`` (0..1, any size) stretched over it; the
    heat map alone when there is no image."""
    heat = np.asarray(heatmap, dtype=np.float32)
    if pixels is None:
        base = np.zeros((side, side, 3), dtype=np.uint8)
        return overlay(base, resize_to(heat, side, side).clip(0, 1), alpha=1.0)
    base = fit_image(np.asarray(pixels, dtype=np.uint8), side)
    h, w = base.shape[:2]
    return overlay(base, resize_to(heat, w, h).clip(0, 1))


class CamPairView(QWidget):
    def __init__(self, parent: QWidget | None = None, *, side: int = PAIR_SIDE) -> None:
        super().__init__(parent)
        self.side = side
        self.title_label = QLabel("Why this mistake?")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.explanation_label = QLabel(EXPLANATION)
        self.explanation_label.setWordWrap(True)
        self.explanation_label.setStyleSheet(f"color: {MUTED};")

        self.predicted_image, self.true_image = QLabel(), QLabel()
        self.predicted_caption, self.true_caption = QLabel(), QLabel()
        pair = QWidget()
        grid = QGridLayout(pair)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(12)
        for col, (image, caption) in enumerate(
            ((self.predicted_image, self.predicted_caption), (self.true_image, self.true_caption))
        ):
            image.setFixedSize(side, side)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setStyleSheet("font-weight: 600;")
            grid.addWidget(image, 0, col, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(caption, 1, col)
        grid.setColumnStretch(2, 1)

        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setStyleSheet(f"color: {FAINT}; padding: 12px;")
        self.message_label.setMinimumHeight(side // 2)
        self.message_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message_label)
        self.stack.addWidget(pair)
        self.legend_label = QLabel("Grad-CAM heat map: dark = no influence, bright yellow = strong.")
        self.legend_label.setStyleSheet(SMALL_MUTED_STYLE)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.explanation_label)
        layout.addWidget(self.stack)
        layout.addWidget(self.legend_label)
        layout.addStretch(1)
        self.clear()

    def show_pair(
        self,
        pixels: np.ndarray,
        cam_predicted: np.ndarray,
        cam_true: np.ndarray,
        predicted: str,
        p_pred: float,
        true: str,
        p_true: float,
    ) -> None:
        self.predicted_image.setPixmap(to_pixmap(cam_overlay(pixels, cam_predicted, self.side)))
        self.true_image.setPixmap(to_pixmap(cam_overlay(pixels, cam_true, self.side)))
        self.predicted_caption.setText(f"predicted: {predicted} {percent_text(p_pred)}")
        self.true_caption.setText(f"true: {true} {percent_text(p_true)}")
        self.predicted_caption.setStyleSheet(f"font-weight: 600; color: {PREDICTED_COLOUR};")
        self.true_caption.setStyleSheet(f"font-weight: 600; color: {TRUE_COLOUR};")
        self.stack.setCurrentIndex(1)
        self.legend_label.show()

    def busy(self, text: str) -> None:
        self._message(text)

    def clear(
        self, text: str = "Click a misclassified validation image to see where the model looked."
    ) -> None:
        self.predicted_image.clear()
        self.true_image.clear()
        self.predicted_caption.setText("")
        self.true_caption.setText("")
        self._message(text)

    def captions(self) -> tuple[str, str]:
        """(predicted caption, true caption); empty while nothing is shown."""
        if self.stack.currentIndex() != 1:
            return "", ""
        return self.predicted_caption.text(), self.true_caption.text()

    def message(self) -> str:
        """The busy or empty line, "" while a pair is shown."""
        return self.message_label.text() if self.stack.currentIndex() == 0 else ""

    def _message(self, text: str) -> None:
        self.message_label.setText(text)
        self.stack.setCurrentIndex(0)
        self.legend_label.hide()
