""" "Watch it learn": one image's Grad-CAM after every epoch, as a strip of small tiles.

``WatchStrip.set_image(pixels, title)`` sets the watched picture (drawn plain as the strip's first tile);
``add_frame(frame)`` appends an epoch's tile: the picture with that epoch's heat map over it and the
caption "epoch 3 · cat 87%", green when the prediction is the image's true class, red when not (grey
when the class is unknown). The strip scrolls sideways and follows the newest epoch. ``clear()`` drops
the frames (the picture stays), ``frame_count()`` counts them.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from cnn_explorer.core.explorer.text import BadgeKind
from cnn_explorer.core.transfer.results import WatchFrame
from cnn_explorer.qt.style import BADGE_COLOURS, FAINT, MUTED, SMALL_MUTED_STYLE, TITLE_STYLE
from cnn_explorer.qt.widgets.cam_pair import cam_overlay, fit_image
from cnn_explorer.qt.widgets.thumbnails import to_pixmap

TILE_SIDE = 96
CAPTION_WIDTH = TILE_SIDE + 24
RIGHT_COLOUR = BADGE_COLOURS[BadgeKind.PRETRAINED][0]  # green
WRONG_COLOUR = BADGE_COLOURS[BadgeKind.UNTRAINED][0]  # red
EMPTY_HINT = (
    "Watch it learn: after every epoch this image's Grad-CAM is drawn here, so you see where the model "
    "looks as it learns. Start a run to fill the strip."
)


def caption_colour(frame: WatchFrame) -> str:
    if frame.true_class is None:
        return MUTED
    return RIGHT_COLOUR if frame.predicted == frame.true_class else WRONG_COLOUR


def caption_font() -> QFont:
    font = QFont()
    font.setPixelSize(11)
    font.setBold(True)
    return font


class _Tile(QWidget):
    def __init__(self, caption: str, colour: str, tooltip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture = QLabel()
        self.picture.setFixedSize(TILE_SIDE, TILE_SIDE)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption = QLabel(caption)
        self.caption.setFont(caption_font())
        self.caption.setFixedWidth(CAPTION_WIDTH)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.caption.setStyleSheet(f"color: {colour};")
        self.colour = colour
        self.setToolTip(tooltip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.caption)
        layout.addStretch(1)

    def set_picture(self, pixels: np.ndarray) -> None:
        self.picture.setPixmap(to_pixmap(pixels))


class WatchStrip(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixels: np.ndarray | None = None
        self.image_title = ""
        self._frames: list[WatchFrame] = []
        self._tiles: list[_Tile] = []

        self.title_label = QLabel("Watch it learn")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.subtitle_label = QLabel()
        self.subtitle_label.setStyleSheet(SMALL_MUTED_STYLE)

        self.strip = QWidget()
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(4, 4, 4, 4)
        self.strip_layout.setSpacing(6)
        self.image_tile = _Tile("", MUTED, "the watched image, before training")
        self.strip_layout.addWidget(self.image_tile)
        separator = QFrame()
        separator.setFrameShape(QFrame.Shape.VLine)
        separator.setStyleSheet(f"color: {FAINT};")
        self.strip_layout.addWidget(separator)
        self.hint_label = QLabel(EMPTY_HINT)
        self.hint_label.setWordWrap(True)
        self.hint_label.setMinimumWidth(260)
        self.hint_label.setMaximumWidth(520)
        self.hint_label.setStyleSheet(f"color: {FAINT};")
        self.strip_layout.addWidget(self.hint_label)
        self.strip_layout.addStretch(1)

        self.scroll = QScrollArea()
        self.scroll.setWidget(self.strip)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        bar = self.scroll.horizontalScrollBar()
        bar.rangeChanged.connect(lambda _low, high: bar.setValue(high))  # follow the newest epoch
        caption_height = 2 * QFontMetrics(caption_font()).lineSpacing() + 4
        self.scroll.setFixedHeight(TILE_SIDE + caption_height + 10 + bar.sizeHint().height())

        self.header_layout = QHBoxLayout()  # a page may add its controls to this row
        self.header_layout.addWidget(self.title_label)
        self.header_layout.addWidget(self.subtitle_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.header_layout)
        layout.addWidget(self.scroll)
        layout.addStretch(1)
        self._show_image_tile()

    # -- content ----------------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray | None, title: str = "") -> None:
        """The watched picture, uint8 (H, W, 3) or (H, W); its title names it (a file name, its class)."""
        self.pixels = None if pixels is None else np.asarray(pixels, dtype=np.uint8)
        self.image_title = title
        self.subtitle_label.setText(title)
        self._show_image_tile()
        for tile, frame in zip(self._tiles, self._frames, strict=True):
            tile.set_picture(cam_overlay(self.pixels, frame.heatmap, TILE_SIDE))

    def add_frame(self, frame: WatchFrame) -> None:
        tile = _Tile(self._caption(frame), caption_colour(frame), self._tooltip(frame))
        tile.set_picture(cam_overlay(self.pixels, frame.heatmap, TILE_SIDE))
        self._frames.append(frame)
        self._tiles.append(tile)
        self.strip_layout.insertWidget(self.strip_layout.count() - 1, tile)  # before the stretch
        self.hint_label.hide()

    def clear(self) -> None:
        """Drop every epoch's tile (a new run); the watched picture stays."""
        for tile in self._tiles:
            self.strip_layout.removeWidget(tile)
            tile.deleteLater()
        self._frames, self._tiles = [], []
        self.hint_label.show()

    # -- reading ----------------------------------------------------------------------------------
    def frame_count(self) -> int:
        return len(self._frames)

    def captions(self) -> list[tuple[str, str]]:
        """(text, colour) under every epoch's tile, oldest first."""
        return [(t.caption.text(), t.colour) for t in self._tiles]

    def tile_pixmaps(self) -> list[QPixmap]:
        """The pictures of the epochs' tiles, oldest first."""
        return [t.picture.pixmap() for t in self._tiles]

    def hint(self) -> str:
        """The empty-state line, "" once a frame is shown."""
        return self.hint_label.text() if not self._tiles else ""

    # -- drawing ----------------------------------------------------------------------------------
    def _show_image_tile(self) -> None:
        if self.pixels is None:
            self.image_tile.hide()
            return
        self.image_tile.set_picture(fit_image(self.pixels, TILE_SIDE))
        self.image_tile.caption.setText(self._elide(self.image_title or "the image", CAPTION_WIDTH))
        self.image_tile.show()

    def _caption(self, frame: WatchFrame) -> str:
        """ "epoch 3 · cat 87%" on one line when it fits, else broken after the epoch with the class name
        shortened to the tile's width."""
        pct = f"{frame.probability:.0%}"
        metrics = QFontMetrics(caption_font())
        text = f"epoch {frame.epoch} · {frame.predicted} {pct}"
        if metrics.horizontalAdvance(text) <= CAPTION_WIDTH:
            return text
        room = CAPTION_WIDTH - metrics.horizontalAdvance(f" {pct}")
        name = metrics.elidedText(frame.predicted, Qt.TextElideMode.ElideRight, room)
        return f"epoch {frame.epoch} ·\n{name} {pct}"

    def _elide(self, text: str, width: int) -> str:
        return QFontMetrics(caption_font()).elidedText(text, Qt.TextElideMode.ElideMiddle, max(20, width))

    @staticmethod
    def _tooltip(frame: WatchFrame) -> str:
        lines = [f"epoch {frame.epoch}: predicted {frame.predicted} ({frame.probability:.1%})"]
        if frame.true_class is not None:
            lines.append(f"true class: {frame.true_class}")
        lines += [f"  {name}: {p:.1%}" for name, p in frame.top]
        if frame.layer:
            lines.append(f"Grad-CAM at {frame.layer}")
        return "\n".join(lines)
