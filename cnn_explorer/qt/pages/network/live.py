"""Live input for the explorer (a mixin of NetworkPage): a camera or a video through side A's model, the
current layer's grid, the chosen channel, the top-5 and Grad-CAM following the frames.

Latest frame wins. The capture runs as a worker job (``core.live.capture_loop``) that keeps only the
newest frame in a :class:`LatestFrame`. The model pass is one "latest request wins" job at a time: it
takes the newest frame when it starts, runs ``LivePipeline.process`` and returns the result. When a
result arrives the next frame's job starts at once and the result is painted meanwhile
(:class:`LiveDrawing`: set pictures and labels, no model work). At most one result is on its way and
one on screen, so the lag stays at most about one pass; frames that came in meanwhile are counted as
dropped.

While live, the session keeps the still picture and the cursor: stepping layers and picking channels
change the pipeline for the next frame instead of preparing the still's views. Pause freezes the frame on
screen into an ordinary still (the session's picture), Stop goes back to the still, and leaving the page,
closing the window or choosing another model stops live.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from PySide6.QtCore import QStandardPaths, QTimer, Signal
from PySide6.QtGui import QHideEvent
from PySide6.QtWidgets import QFileDialog

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.live import (
    LatestFrame,
    LivePipeline,
    LiveResult,
    LiveSourceError,
    LiveStats,
    VideoSource,
)
from cnn_explorer.qt.pages.network.drawing import SCREENSHOT_LAYERS
from cnn_explorer.qt.pages.network.live_bar import LiveBar
from cnn_explorer.qt.pages.network.live_drawing import LiveDrawing
from cnn_explorer.qt.pages.network.live_work import (
    LiveRun,
    SourceSpec,
    capture,
    describe_spec,
    frame_image,
    next_result,
    open_live,
    save_png,
)
from cnn_explorer.qt.workers import Job, LatestRunner, start_job

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.webm *.mov *.m4v);;All files (*)"
STATS_INTERVAL_MS = 250  # the fps line: at most four updates a second


class LiveInput(LiveDrawing):
    """NetworkPage's live controller: the live state, its jobs, Pause, Stop, Snapshot and the lab."""

    live_painted = Signal(object)  # a LiveResult, once on screen
    live_stopped = Signal(str)  # why: "stopped", "paused", "ended", "failed"
    use_in_lab = Signal(object)  # a LoadedImage for the Operations lab

    def _build_live_bar(self) -> LiveBar:
        self.live_bar = LiveBar()
        self._live: LiveRun | None = None
        self._live_opening: Job | None = None
        self._live_spec: SourceSpec | None = None
        self._live_frame: LoadedImage | None = None  # the last frame frozen (Pause / the video's end)
        self.live_runner = LatestRunner(self)
        self.snapshot_runner = LatestRunner(self)
        self._live_stats_timer = QTimer(self)
        self._live_stats_timer.setInterval(STATS_INTERVAL_MS)
        self._live_stats_timer.timeout.connect(self._show_live_stats)
        bar = self.live_bar
        bar.start_clicked.connect(self._on_live_clicked)
        bar.pause_clicked.connect(self.pause_live)
        bar.stop_clicked.connect(self.stop_live)
        bar.snapshot_clicked.connect(lambda: self.snapshot())
        bar.lab_clicked.connect(self.send_frame_to_lab)
        self.session.events.source.connect(self._on_live_source)
        self.session.events.image.connect(self._on_live_image)
        self.session.events.compare.connect(self._on_live_compare)
        return bar

    # -- state ----------------------------------------------------------------------------------------
    @property
    def live_on(self) -> bool:
        """Frames are coming (or the source is being opened)."""
        return self._live is not None or self._live_opening is not None

    @property
    def live_result(self) -> LiveResult | None:
        return self._live.last if self._live is not None else None

    def _live_busy(self) -> bool:
        """Opening a source, saving a snapshot, or stopping: work that ends by itself (running live does
        not count, or waiting for the page to be idle would wait for the camera to end)."""
        stopping = self._live is None and self.live_runner.busy
        return self._live_opening is not None or self.snapshot_runner.busy or stopping

    # -- starting ---------------------------------------------------------------------------------------
    def _on_live_clicked(self, camera: int | None) -> None:
        if camera is not None:
            self.start_live(camera)
            return
        dialog = QFileDialog(self, "Open a video", "", VIDEO_FILTER)  # .open(): the window goes on
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.start_live)
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def start_live(self, spec: SourceSpec) -> None:
        """Run side A's model on camera ``spec`` (an int) or the video file ``spec`` (a path)."""
        if self._shut_down:
            return
        if self.live_on:
            self.stop_live()
        loaded = self.session.a.loaded
        if loaded is None or not self.session.a.ready:
            self.live_bar.show_message("Live needs a model: wait until one is loaded, then press Live.")
            return
        row = self.current_row
        options = {
            "layer": row.name if row is not None else None,
            "channel": self.session.channel_for(Side.A),
            "gradcam": self.session.cam.enabled,
            "cmap": self.session.options.cmap,
            "sort_by": self.session.options.sort_by,
            "normalize": self.session.options.normalize,
            "columns": self.grid.columns_for(row.out_shape) if row is not None and row.out_shape else None,
            "table": ex.table if (ex := self.session.a.exploration) is not None else None,
        }
        self._live_spec = spec
        self.live_bar.show_message(f"Opening {describe_spec(spec)}…")
        self.live_bar.set_state(running=False, has_frame=False, opening=True)
        job = start_job(open_live, spec, loaded, options, name=f"open {describe_spec(spec)}")
        self._live_opening = job
        job.result.connect(lambda opened, job=job: self._on_live_opened(job, *opened))
        job.failed.connect(lambda exc, job=job: self._on_live_open_failed(job, exc))

    def _on_live_opened(self, job: Job, source: VideoSource, pipeline: LivePipeline) -> None:
        if job is not self._live_opening or self._shut_down:
            start_job(source.close, name="close a stale source")  # (a camera can take a moment)
            return
        self._live_opening = None
        slot = LatestFrame()
        run = LiveRun(self._live_spec, source, slot, pipeline, LiveStats(slot), None)  # type: ignore[arg-type]
        run.capture = start_job(capture, source, slot, name=f"capture {source.label}")
        run.capture.failed.connect(lambda exc, run=run: self._on_capture_failed(run, exc))
        self._live = run
        # The channel's outlined unit follows each frame's peak until one is clicked.
        self.session.cursor = dataclasses.replace(self.session.cursor, unit=None)
        self._on_layer()  # the cursor may have moved while the source opened: the pipeline follows it
        self._request_cams()
        self.live_bar.show_source(self._live_spec if isinstance(self._live_spec, int) else None)
        self.cam_class_combo.setEnabled(False)  # live explains each frame's top-1
        self.live_bar.show_message("")
        self.live_bar.set_state(running=True, has_frame=False)
        self.live_bar.show_stats(f"{source.label}: waiting for the first frame…")
        self._live_stats_timer.start()
        self.status_message.emit(f"Live: {source.label} through {self.session.a.loaded.info.title}.")
        self._request_live_frame(run)

    def _on_live_open_failed(self, job: Job, exc: BaseException) -> None:
        if job is not self._live_opening:
            return
        self._live_opening = None
        self.live_bar.set_state(running=False, has_frame=self._live_frame is not None)
        if isinstance(exc, LiveSourceError):
            message = f"{exc}. The explorer keeps its still picture."
        else:
            message = f"Cannot start live: {type(exc).__name__}: {exc}"
        self.live_bar.show_message(message)
        self.status_message.emit(message)

    # -- the frames -------------------------------------------------------------------------------------
    def _request_live_frame(self, run: LiveRun) -> None:
        self.live_runner.request(
            ("live", id(run), run.frames),
            next_result,
            run.pipeline,
            run.slot,
            on_result=lambda result, run=run: self._on_live_result(run, result),
            on_failed=lambda exc, run=run: self._on_live_failed(run, exc),
            name="live frame",
        )

    def _on_live_result(self, run: LiveRun, result: LiveResult | None) -> None:
        if run is not self._live:
            return
        if result is None:  # the file ended (or the camera stopped)
            error = run.source.error
            self._freeze(run, "ended")
            if error:
                self.live_bar.show_message(f"{error}. Its last frame is a still now.")
            return
        run.last = result
        self._request_live_frame(run)  # first: the model works on the next frame while this one is painted
        self._paint_live(result)
        run.frames += 1
        run.stats.record(result, time.perf_counter())
        if run.frames == 1:
            self.live_bar.set_state(running=True, has_frame=True)
        self.live_painted.emit(result)

    def _on_live_failed(self, run: LiveRun, exc: BaseException) -> None:
        if run is not self._live:
            return
        self._stop_live_jobs()
        self._show_still()
        self.live_bar.show_message(f"Live stopped: the model failed on a frame: {type(exc).__name__}: {exc}")
        self.live_stopped.emit("failed")

    def _on_capture_failed(self, run: LiveRun, exc: BaseException) -> None:
        if run is self._live:
            self.live_bar.show_message(f"Reading {run.source.label} failed: {exc}")

    # -- pause, stop, snapshot, the lab ----------------------------------------------------------------
    def pause_live(self) -> None:
        """Freeze the frame on screen into an ordinary still that the explorer explores."""
        if self._live is not None:
            self._freeze(self._live, "paused")

    def _freeze(self, run: LiveRun, why: str) -> None:
        last = run.last
        label = run.source.label
        self._stop_live_jobs()
        if last is None:
            self._show_still()
            self.live_bar.show_message(f"{label} ended before a frame was processed.")
            self.live_stopped.emit(why)
            return
        image = frame_image(last.frame.pixels, label, last.frame.index)
        self._live_frame = image
        self.live_bar.set_state(running=False, has_frame=True)
        # The session's picture now: every layer, Grad-CAM and compare work on it. (The frame stays on
        # screen until its still is in: no flash of the picture from before.)
        self.set_image(image)
        what = "Paused at" if why == "paused" else "The video ended at"
        self.live_bar.show_message(f"{what} {image.path.name}: it is a still now, explore it.")
        self.status_message.emit(f"{what} {image.path.name}.")
        self.live_stopped.emit(why)

    def stop_live(self) -> None:
        """Stop live; the explorer shows its still picture again."""
        was_on = self.live_on
        self._stop_live_jobs()
        if was_on:
            self._show_still()
            self.live_bar.show_message("")
            self.live_stopped.emit("stopped")

    def _stop_live_jobs(self) -> None:
        run, self._live = self._live, None
        self._live_opening = None  # (its source, if it opens after all, is closed then)
        self._live_stats_timer.stop()
        self.live_runner.cancel()
        if run is not None:
            run.capture.cancel()
            run.slot.close()
            self.cam_class_combo.setEnabled(True)
        self.live_bar.set_state(running=False, has_frame=self._live_frame is not None)

    def _show_still(self) -> None:
        """Paint the session's still again (live painted over it)."""
        ex = self.session.a.exploration
        loaded = self.session.a.loaded
        if ex is not None and loaded is not None:
            self.side_panel.show_predictions(ex.predictions, loaded.weights is zoo.WeightsSource.UNTRAINED)
        self._on_layer()
        self._request_cams()

    def current_frame(self) -> LoadedImage | None:
        """The frame on screen (live), or the last one frozen."""
        run = self._live
        if run is not None and run.last is not None:
            return frame_image(run.last.frame.pixels, run.source.label, run.last.frame.index)
        return self._live_frame  # (cleared as soon as another picture is shown: _on_live_image)

    def _on_live_image(self, *_args: object) -> None:
        """Another picture (opened, drawn, dropped): a frame frozen before is no longer on screen."""
        if self._live_frame is not None and self.session.image is not self._live_frame:
            self._live_frame = None
            if self._live is None and self._live_opening is None:
                self.live_bar.set_state(running=False, has_frame=False)

    def snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the frame on screen as a PNG (to ``path``, or to the pictures folder); returns the path.
        A worker writes it (``status_message`` says when it is there)."""
        image = self.current_frame()
        if image is None:
            self.live_bar.show_message("No frame to save yet: start live first.")
            return None
        if path is None:
            folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation))
            name = image.path.name.replace(", ", "-").replace(" ", "-")
            path = folder / "CNN Explorer" / f"{name}.png"
        path = Path(path)
        self.snapshot_runner.request(
            ("snapshot", str(path), id(image.pixels)),
            save_png,
            image.pixels,
            path,
            on_result=lambda p: self.status_message.emit(f"Saved the frame as {p}"),
            on_failed=lambda exc: self.live_bar.show_message(f"Cannot save the snapshot {path}: {exc}"),
            name="snapshot",
        )
        return path

    def send_frame_to_lab(self) -> None:
        """Freeze the frame and hand it to the Operations lab (grayscale, at the lab's working size)."""
        if self._live is not None:
            self.pause_live()
        image = self.current_frame()
        if image is not None:
            self.use_in_lab.emit(image)

    # -- the screenshot --------------------------------------------------------------------------------
    def live_frame_index(self) -> int:
        """The index of the frame on screen while live (-1: none yet)."""
        last = self.live_result
        return last.frame.index if last is not None else -1

    def prepare_live_screenshot(self, step: int, video: Path) -> bool:
        """``live.png`` in steps, each followed by waiting for the page: 0 opens the default model at its
        screenshot layer, 1 picks a telling channel and turns Grad-CAM on, 2 starts live on ``video``.
        Returns False once there is nothing left to do."""
        if step == 0:
            self.open_zoo_model(zoo.DEFAULT_MODEL, SCREENSHOT_LAYERS.get(zoo.DEFAULT_MODEL))
            return True
        if step == 1:
            self.prepare_screenshot()
            self.cam_check.setChecked(True)
            return True
        if step == 2:
            self.start_live(video)
            return True
        return False

    def _on_live_source(self, side: Side) -> None:
        if side is Side.A and self.live_on:
            self.stop_live()
            self.live_bar.show_message("Live stopped: another model was chosen. Press Live to go on.")

    def _on_live_compare(self) -> None:
        """Live feeds side A only: compare mode (two models on one still) has no live row."""
        comparing = self.session.comparing
        if comparing and self.live_on:
            self.stop_live()
        self.live_bar.setVisible(not comparing)

    def hideEvent(self, event: QHideEvent) -> None:
        if not event.spontaneous() and self.live_on:  # (a minimised window keeps going)
            self.stop_live()
        super().hideEvent(event)

    def _shutdown_live(self) -> None:
        """The page is closing: stop the frames without drawing the still again."""
        self._stop_live_jobs()
        self._live_stats_timer.stop()
        self.live_runner.shutdown()
        self.snapshot_runner.shutdown()
