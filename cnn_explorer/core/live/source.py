"""Live sources: a camera or a video file, read with OpenCV's ``VideoCapture``, one RGB frame at a time.

OpenCV (``opencv-python-headless``, the ``live`` extra) is imported on first use, so the rest of the app
works without it. Everything that can go wrong before the first picture (no such camera, a camera in use,
a file that is not a video) raises :class:`LiveSourceError` from :func:`open_source`, naming the camera
or the file: :func:`open_source` reads the first frame to prove the source works. Later, a camera that
is unplugged or a file that stops decoding ends the stream: :meth:`VideoSource.read` returns None and
:attr:`VideoSource.error` says why (None at the normal end of a file).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Frame", "LiveSourceError", "VideoSource", "load_cv2", "open_source"]

INSTALL_HINT = "OpenCV is not installed: pip install 'cnn-explorer[live]'"
_MAX_NOMINAL_FPS = 1000.0  # above this a container's frame rate is a placeholder, not a rate


class LiveSourceError(Exception):
    """A camera or video cannot be used; ``str(err)`` names it and says why."""


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based, in capture order
    pixels: np.ndarray  # (H, W, 3) uint8 RGB, C-contiguous
    captured_at: float  # time.perf_counter() when the frame was delivered


def load_cv2() -> ModuleType:
    """The ``cv2`` module, with its log quiet (errors reach the user as LiveSourceError instead)."""
    try:
        import cv2
    except ImportError:
        raise LiveSourceError(INSTALL_HINT) from None
    return cv2


@contextlib.contextmanager
def _quiet(cv2: ModuleType):
    """OpenCV logs its own view of a failed open ("can't open camera by index") to stderr; the caller
    reports the failure in one sentence instead."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    before = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(before)


def _to_rgb(cv2: ModuleType, image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # a fresh, contiguous array


class VideoSource:
    """An open camera or video file. :meth:`read` is called from one thread (the capture loop);
    :meth:`close` may come from any thread."""

    def __init__(self, capture: Any, cv2: ModuleType, *, label: str, is_camera: bool, first: np.ndarray):
        self._capture = capture
        self._cv2 = cv2
        self._lock = threading.Lock()
        self._pending: np.ndarray | None = first  # the frame open_source read to check the source
        self._next_index = 0
        self.label = label
        self.is_camera = is_camera
        self.error: str | None = None
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = fps if math.isfinite(fps) and 0 < fps <= _MAX_NOMINAL_FPS else None
        self.frame_size: tuple[int, int] = (int(first.shape[1]), int(first.shape[0]))  # (w, h)
        count = 0 if is_camera else int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = count if count > 0 else None

    @property
    def closed(self) -> bool:
        return self._capture is None

    def read(self) -> Frame | None:
        """The next frame, or None at the end of the file, when the camera stops, or after close()."""
        with self._lock:
            if self._capture is None:
                return None
            if self._pending is not None:
                image, self._pending = self._pending, None
            else:
                try:
                    ok, image = self._capture.read()
                except self._cv2.error as exc:  # a corrupt packet, a driver failure
                    ok, image = False, None
                    self.error = f"{self.label}: reading stopped: {str(exc).strip() or type(exc).__name__}"
                if not ok or image is None:
                    if self.error is None and self.is_camera:
                        self.error = f"{self.label} stopped giving pictures (was it unplugged?)"
                    return None
            frame = Frame(self._next_index, _to_rgb(self._cv2, image), time.perf_counter())
            self._next_index += 1
            return frame

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.frame_size
        return f"VideoSource({self.label!r}, {w}×{h}, fps={self.fps}, frames={self.frame_count})"


def open_source(spec: int | str | os.PathLike[str]) -> VideoSource:
    """Open camera ``spec`` (an int: the camera index) or the video file ``spec`` (a path).

    Reads the first frame to prove the source works; raises :class:`LiveSourceError` naming the camera or
    file otherwise. The frame is kept: the first :meth:`~VideoSource.read` returns it.
    """
    if isinstance(spec, bool):
        raise TypeError("a camera index is an int, not a bool")
    if isinstance(spec, int):
        return _open_camera(spec)
    return _open_file(Path(spec).expanduser(), str(spec))


def _open_camera(index: int) -> VideoSource:
    if index < 0:
        raise LiveSourceError(f"No camera {index}: camera indices start at 0")
    cv2 = load_cv2()
    with _quiet(cv2):
        capture = cv2.VideoCapture(index)
        if not capture.isOpened():
            capture.release()
            raise LiveSourceError(
                f"No camera {index}: OpenCV could not open it (is one connected, and free?)"
            )
        ok, image = capture.read()
    if not ok or image is None:
        capture.release()
        raise LiveSourceError(f"Camera {index} opened but gave no picture (is another program using it?)")
    return VideoSource(capture, cv2, label=f"camera {index}", is_camera=True, first=image)


def _open_file(path: Path, shown: str) -> VideoSource:
    if not path.exists():
        raise LiveSourceError(f"cannot open video {shown}: no such file")
    if path.is_dir():
        raise LiveSourceError(f"cannot open video {shown}: it is a folder, not a video file")
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise LiveSourceError(f"cannot open video {shown}: {exc.strerror or exc}") from None
    if size == 0:
        raise LiveSourceError(f"cannot decode video {shown}: the file is empty")
    cv2 = load_cv2()
    with _quiet(cv2):
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            capture.release()
            raise LiveSourceError(
                f"cannot decode video {shown}: OpenCV found no video stream in it (is it a video file?)"
            )
        try:
            ok, image = capture.read()
        except cv2.error:
            ok, image = False, None
    if not ok or image is None:
        capture.release()
        raise LiveSourceError(f"cannot decode video {shown}: not one frame could be decoded")
    return VideoSource(capture, cv2, label=path.name, is_camera=False, first=image)
