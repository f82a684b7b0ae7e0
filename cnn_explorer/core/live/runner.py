"""The live loop: a capture thread fills a :class:`LatestFrame`; the model takes the newest frame whenever
it is free. Nothing queues, so when the model is slower than the camera frames are dropped (and
counted), never delayed.

:func:`capture_loop` is a plain module-level function, so the GUI runs it through its own worker;
:class:`Capture` runs it on a thread of its own for the command line and the benchmark, and
:func:`run_live` is the whole headless loop. :class:`LiveStats` turns results into fps and latency.
"""

from __future__ import annotations

import collections
import dataclasses
import statistics
import threading
import time
from collections.abc import Callable

from cnn_explorer.core.control import Cancelled, Control, checkpoint
from cnn_explorer.core.live.latest import LatestFrame
from cnn_explorer.core.live.pipeline import LivePipeline, LiveResult
from cnn_explorer.core.live.source import VideoSource

__all__ = ["Capture", "LiveStats", "capture_loop", "run_live"]

_POLL_S = 0.05  # how often a wait looks at the cancel flag and the slot
_LATENCY_WINDOW = 10_000  # latencies kept for the percentiles (a long camera session stays bounded)
_RECENT = 30  # results behind recent_fps
FALLBACK_FPS = 25.0  # pace for a file that does not say its frame rate


def capture_loop(
    source: VideoSource, slot: LatestFrame, *, pace: bool = True, control: Control | None = None
) -> int:
    """Read ``source`` into ``slot`` until the source ends, the slot is closed by its consumer, or
    ``control`` is cancelled (``Cancelled`` is raised); close the slot; return the frames captured.

    ``pace=True`` delivers a file's frames at its nominal frame rate (25 fps if it does not say), as a
    camera would (a slow model then drops frames); a camera paces itself. ``pace=False`` reads a file's
    next frame only once the consumer asked for it (``slot.asked``: when it took the previous one, or when
    it called ``slot.ask()`` after its pass), and hands it over once the slot is empty: every frame is
    processed, as fast as the model goes (the decoder does not race ahead and take the model's CPU for
    frames that would only be dropped). A camera is never held back (its driver would queue frames).
    The source is not closed: it belongs to the caller.
    """
    captured = 0
    paced = pace and not source.is_camera
    rate = source.fps or FALLBACK_FPS
    in_step = not pace and not source.is_camera  # (a camera never waits: its driver would queue frames)
    asks = in_step and not slot.ask_on_take  # the consumer calls slot.ask() itself, after its pass
    start, first = 0.0, 0
    try:
        while not slot.closed:
            checkpoint(control)
            if asks and captured:
                while not slot.wait_asked(captured, _POLL_S):
                    if slot.closed:
                        return captured
                    checkpoint(control)
            frame = source.read()
            if frame is None:
                break
            if paced:
                if captured == 0:
                    start, first = time.perf_counter(), frame.index
                due = start + (frame.index - first) / rate
                if not _sleep_until(due, slot, control):
                    break
            elif in_step:
                while not slot.wait_taken(_POLL_S):
                    if slot.closed:
                        return captured
                    checkpoint(control)
            if not source.is_camera:  # delivered now, as a camera would have taken it
                frame = dataclasses.replace(frame, captured_at=time.perf_counter())
            if not slot.put(frame):
                break
            captured += 1
        return captured
    finally:
        slot.close()


def _sleep_until(due: float, slot: LatestFrame, control: Control | None) -> bool:
    """Sleep until ``due`` (perf_counter); False if the slot was closed meanwhile."""
    while True:
        left = due - time.perf_counter()
        if slot.closed:
            return False
        if left <= 0:
            return True
        checkpoint(control)
        time.sleep(min(left, _POLL_S))


class Capture:
    """:func:`capture_loop` on a thread of its own (not a daemon: always stopped and joined).

    ``with Capture(source, slot):`` starts it and, on the way out, stops and joins it."""

    def __init__(self, source: VideoSource, slot: LatestFrame, pace: bool = True) -> None:
        self.source = source
        self.slot = slot
        self.pace = pace
        self.control = Control()
        self.captured = 0
        self.error: BaseException | None = None  # what ended the loop, if not the end or a stop
        self._thread = threading.Thread(target=self._run, name=f"live capture ({source.label})", daemon=False)

    def _run(self) -> None:
        try:
            self.captured = capture_loop(self.source, self.slot, pace=self.pace, control=self.control)
        except Cancelled:
            self.captured = self.slot.captured
        except BaseException as exc:  # handed to whoever joins
            self.error = exc
        finally:
            self.slot.close()

    def start(self) -> Capture:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the loop to end (it notices within a frame or 50 ms)."""
        self.control.cancel()
        self.slot.close()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()


class LiveStats:
    """Frames per second and end-to-end latency (frame captured → result painted, or ready)."""

    def __init__(self, slot: LatestFrame | None = None) -> None:
        self.slot = slot
        self.processed = 0
        self.first_captured_at: float | None = None
        self.last_end: float | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._passes: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)
        self._ends: collections.deque[float] = collections.deque(maxlen=_RECENT)

    def record(self, result: LiveResult, painted_at: float | None = None) -> None:
        end = painted_at if painted_at is not None else result.done_at
        if self.first_captured_at is None:
            self.first_captured_at = result.frame.captured_at
        self.processed += 1
        self.last_end = end
        self._latencies.append((end - result.frame.captured_at) * 1000)
        self._passes.append(result.seconds * 1000)
        self._ends.append(end)

    @property
    def wall_s(self) -> float:
        if self.first_captured_at is None or self.last_end is None:
            return 0.0
        return max(0.0, self.last_end - self.first_captured_at)

    @property
    def fps(self) -> float:
        """Results per second of wall time, from the first frame's capture to the last result."""
        wall = self.wall_s
        return self.processed / wall if wall > 0 else 0.0

    @property
    def recent_fps(self) -> float:
        """Over the last results only: what a live display shows."""
        if len(self._ends) < 2:
            return 0.0
        span = self._ends[-1] - self._ends[0]
        return (len(self._ends) - 1) / span if span > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        """Median end-to-end latency (ms)."""
        return statistics.median(self._latencies) if self._latencies else 0.0

    @property
    def latency_p95_ms(self) -> float:
        return _percentile(list(self._latencies), 95)

    @property
    def pass_ms(self) -> float:
        """Median time of :meth:`LivePipeline.process` (preprocess, pass, drawing)."""
        return statistics.median(self._passes) if self._passes else 0.0

    @property
    def captured(self) -> int:
        return self.slot.captured if self.slot is not None else self.processed

    @property
    def dropped(self) -> int:
        return self.slot.dropped if self.slot is not None else 0

    def summary(self) -> str:
        return (
            f"{self.processed} frames in {self.wall_s:.1f} s: {self.fps:.1f} fps; latency median "
            f"{self.latency_ms:.0f} ms, p95 {self.latency_p95_ms:.0f} ms; "
            f"{self.dropped} of {self.captured} captured frames dropped"
        )


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n·q/100)
    return ordered[int(min(rank, len(ordered))) - 1]


def run_live(
    source: VideoSource,
    pipeline: LivePipeline,
    *,
    frames: int | None = None,
    pace: bool = True,
    on_result: Callable[[LiveResult], None] | None = None,
    control: Control | None = None,
    stats: LiveStats | None = None,
) -> LiveStats:
    """Process ``source`` live until it ends, ``frames`` results were produced, or ``control`` is
    cancelled (``Cancelled`` is raised, the capture thread stopped first).

    A capture thread keeps the newest frame in a :class:`LatestFrame`; this thread takes it whenever it is
    free, runs ``pipeline`` on it and calls ``on_result``. Frames that arrive meanwhile are dropped.
    An error in the capture thread is raised here; a camera that stops ends the run (``source.error``).
    ``stats``: record into this (fresh) LiveStats, which then still holds the counts after a cancel.
    """
    # Unpaced, the next frame of a file is read while this thread draws (single-threaded work), not
    # during the model's pass: a decoder on one core stalls every multi-threaded operation of the pass.
    in_step = not pace and not source.is_camera
    slot = LatestFrame(ask_on_take=not in_step)
    if stats is None:
        stats = LiveStats()
    stats.slot = slot
    capture = Capture(source, slot, pace=pace)
    capture.start()
    try:
        while frames is None or stats.processed < frames:
            checkpoint(control)
            frame = slot.take(timeout=_POLL_S)
            if frame is None:
                if slot.closed and not slot.has_unseen:
                    break
                continue
            if in_step:
                result = pipeline.process(frame, control=control, after_pass=slot.ask)
            else:
                result = pipeline.process(frame, control=control)
            stats.record(result)
            if on_result is not None:
                on_result(result)
    finally:
        capture.stop()
        capture.join()
    if capture.error is not None:
        raise capture.error
    return stats
