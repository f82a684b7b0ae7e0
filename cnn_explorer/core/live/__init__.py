"""Live: a camera or a video through the explorer's model, latest frame wins (issue #17).

* :mod:`.source` opens a camera or a video file with OpenCV (``pip install 'cnn-explorer[live]'``);
* :mod:`.latest` is the one-frame slot between the capture thread and the model;
* :mod:`.pipeline` is one frame through the model: one pass, one hook, the top-5, the layer's grid,
  a channel and optionally Grad-CAM;
* :mod:`.runner` is the capture loop, its thread, the headless loop and the fps / latency statistics;
* :mod:`.demo` writes a short camera-like video from the sample photo.

No Qt here: the GUI runs :func:`capture_loop` and :meth:`LivePipeline.process` through its workers.
"""

from cnn_explorer.core.live.demo import demo_frame, write_demo_video
from cnn_explorer.core.live.latest import LatestFrame
from cnn_explorer.core.live.pipeline import CAM_AT, LivePipeline, LiveResult
from cnn_explorer.core.live.runner import Capture, LiveStats, capture_loop, run_live
from cnn_explorer.core.live.source import Frame, LiveSourceError, VideoSource, open_source

__all__ = [
    "CAM_AT",
    "Capture",
    "Frame",
    "LatestFrame",
    "LivePipeline",
    "LiveResult",
    "LiveSourceError",
    "LiveStats",
    "VideoSource",
    "capture_loop",
    "demo_frame",
    "open_source",
    "run_live",
    "write_demo_video",
]
