"""Live input's worker bodies and values (core calls, run through ``qt.workers``; no widgets here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.live import (
    LatestFrame,
    LivePipeline,
    LiveResult,
    LiveStats,
    VideoSource,
    capture_loop,
    open_source,
)
from cnn_explorer.qt.workers import Job

TAKE_WAIT_S = 0.05  # a frame job waits this long for a frame between checks for Cancel

SourceSpec = int | str | Path


def open_live(
    spec: SourceSpec, loaded: zoo.LoadedModel, pipeline_options: dict
) -> tuple[VideoSource, LivePipeline]:
    """Open the camera or file (its first frame proves it works) and the pipeline that will read it."""
    source = open_source(spec)
    try:
        return source, LivePipeline(loaded, **pipeline_options)
    except BaseException:
        source.close()
        raise


def capture(source: VideoSource, slot: LatestFrame, control: Control | None = None) -> int:
    """The capture loop; the source is closed however it ends."""
    try:
        return capture_loop(source, slot, control=control)
    finally:
        source.close()


def next_result(
    pipeline: LivePipeline, slot: LatestFrame, control: Control | None = None
) -> LiveResult | None:
    """The newest frame through the model, once there is one; None when the source has ended."""
    while True:
        checkpoint(control)
        frame = slot.take(TAKE_WAIT_S)
        if frame is not None:
            return pipeline.process(frame, control=control)
        if slot.closed:
            return None


def save_png(pixels: np.ndarray, path: Path) -> Path:
    """Write ``pixels`` as a PNG through a temporary name, so a half-written file never has the name."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
    tmp.replace(path)
    return path


def frame_image(pixels: np.ndarray, label: str, index: int) -> LoadedImage:
    """A frame as a picture the explorer (or the lab) can take; no file is read or written."""
    return LoadedImage(np.ascontiguousarray(pixels), Path(f"{label}, frame {index}"), "live", "RGB")


def describe_spec(spec: SourceSpec) -> str:
    return f"camera {spec}" if isinstance(spec, int) else Path(spec).name


@dataclass(eq=False)
class LiveRun:
    """One live session: its source, slot, pipeline, statistics and capture job."""

    spec: SourceSpec
    source: VideoSource
    slot: LatestFrame
    pipeline: LivePipeline
    stats: LiveStats
    capture: Job
    last: LiveResult | None = None  # the result on screen
    frames: int = 0  # results painted


@dataclass(frozen=True)
class LiveCam:
    """Grad-CAM's heatmap for the input view (which reads only ``heatmap``)."""

    heatmap: np.ndarray


def class_name(loaded: zoo.LoadedModel, index: int) -> str:
    cats = loaded.categories
    return cats[index] if 0 <= index < len(cats) else f"class {index}"
