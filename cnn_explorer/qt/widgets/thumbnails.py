"""Small pictures of dataset images: made off the GUI thread as numpy arrays, shown as QPixmaps.

``load_thumbnail(path, side)`` decodes with the app's one image loader (core.images.open_image) and
shrinks to fit a ``side`` × ``side`` square; it touches no Qt object, so a worker can call it.
``to_pixmap(pixels)`` and ``strip_pixmap(thumbs)`` run on the GUI thread.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from PySide6.QtGui import QImage, QPixmap

from cnn_explorer.core.images import ImageLoadError, open_image

THUMB_SIDE = 48


def load_thumbnail(path: str | os.PathLike[str], side: int = THUMB_SIDE) -> np.ndarray | None:
    """RGB uint8 thumbnail (aspect kept, longest side = ``side``), or None for an unreadable file."""
    try:
        pixels = open_image(path).pixels
    except ImageLoadError:
        return None
    im = Image.fromarray(pixels)
    scale = side / max(im.width, im.height)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    # Tiny images (28×28 silhouettes) are enlarged without blur; photos are shrunk with antialiasing.
    method = Image.Resampling.NEAREST if scale >= 1.5 else Image.Resampling.LANCZOS
    return np.ascontiguousarray(np.asarray(im.convert("RGB").resize(size, method)))


def to_pixmap(pixels: np.ndarray) -> QPixmap:
    """uint8 (H, W, 3) or (H, W) -> QPixmap (copied, so the array may go away)."""
    a = np.ascontiguousarray(pixels)
    h, w = a.shape[:2]
    if a.ndim == 2:
        image = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def strip_pixmap(thumbs: list[np.ndarray], side: int = THUMB_SIDE, gap: int = 4) -> QPixmap:
    """Thumbnails side by side on a white strip, each centred in its ``side`` × ``side`` square."""
    n = max(1, len(thumbs))
    strip = np.full((side, n * side + (n - 1) * gap, 3), 255, dtype=np.uint8)
    for i, t in enumerate(thumbs):
        h, w = t.shape[:2]
        y, x = (side - h) // 2, i * (side + gap) + (side - w) // 2
        strip[y : y + h, x : x + w] = t if t.ndim == 3 else t[..., None]
    return to_pixmap(strip)
