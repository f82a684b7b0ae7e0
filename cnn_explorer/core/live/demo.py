"""A short video that looks like a camera pointed at something: the sample cat, slowly panned and zoomed,
with a coloured disc moving across. For the tests, the screenshot and the benchmark (no camera needed)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from cnn_explorer.core.images import assets_dir, load_image
from cnn_explorer.core.live.source import LiveSourceError, load_cv2

__all__ = ["demo_frame", "write_demo_video"]

# Containers and the codec each is written with: Motion-JPEG in AVI is in every OpenCV build.
_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


def _photo() -> np.ndarray:
    return load_image(assets_dir() / "chelsea.png")


def demo_frame(photo: np.ndarray, i: int, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``i`` of ``frames`` (RGB uint8, ``size`` = (w, h)): a window over the photo that drifts and
    zooms in and back out, and a disc that crosses the picture."""
    cv2 = load_cv2()
    w, h = size
    ph, pw = photo.shape[:2]
    t = i / max(1, frames - 1)
    zoom = 1.0 + 0.35 * math.sin(math.pi * t)  # 1 → 1.35 → 1
    aspect = w / h
    win_h = min(ph, pw / aspect) / zoom
    win_w = win_h * aspect
    cx = pw / 2 + (pw - win_w) / 2 * 0.8 * math.sin(2 * math.pi * t)
    cy = ph / 2 + (ph - win_h) / 2 * 0.6 * math.cos(2 * math.pi * t)
    x0, y0 = cx - win_w / 2, cy - win_h / 2
    # The window as an affine map from output pixels to photo pixels: sub-pixel smooth motion.
    matrix = np.array([[win_w / w, 0, x0], [0, win_h / h, y0]], dtype=np.float64)
    frame = cv2.warpAffine(
        photo, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT
    )
    radius = max(3, min(w, h) // 10)
    centre = (round(radius + (w - 2 * radius) * t), round(h * (0.75 - 0.2 * math.sin(3 * t))))
    hue = int(180 * t) % 180
    colour = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    cv2.circle(frame, centre, radius, tuple(int(c) for c in colour), thickness=-1, lineType=cv2.LINE_AA)
    return np.ascontiguousarray(frame)


def write_demo_video(
    path: str | os.PathLike[str],
    *,
    frames: int = 90,
    size: tuple[int, int] = (320, 240),
    fps: float = 15.0,
) -> Path:
    """Write the demo video to ``path`` (.avi: Motion-JPEG; .mp4: MPEG-4 part 2) and check it decodes.

    Written to a temporary name beside ``path`` and renamed, so a half-written video never exists."""
    path = Path(path).expanduser()
    codec = _CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(
            f"write the demo video as one of {', '.join(_CODECS)}, not {path.suffix or path.name}"
        )
    if frames < 1 or min(size) < 8 or fps <= 0:
        raise ValueError(f"need frames ≥ 1, a size of at least 8×8 and fps > 0 (got {frames}, {size}, {fps})")
    cv2 = load_cv2()
    photo = _photo()
    w, h = int(size[0]), int(size[1])
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
    if not writer.isOpened():
        raise LiveSourceError(f"cannot write video {path}: OpenCV has no {codec} encoder for {path.suffix}")
    try:
        for i in range(frames):
            writer.write(cv2.cvtColor(demo_frame(photo, i, frames, (w, h)), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    check = cv2.VideoCapture(str(tmp))
    try:
        ok, _ = check.read()
    finally:
        check.release()
    if not ok:
        tmp.unlink(missing_ok=True)
        raise LiveSourceError(f"cannot write video {path}: what OpenCV wrote does not decode back")
    os.replace(tmp, path)
    return path
