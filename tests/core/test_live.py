"""Live sources and the latest-frame-wins loop (issue #17), on a short video written in the test."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.features import explore
from cnn_explorer.core.live import (
    Frame,
    LatestFrame,
    LivePipeline,
    LiveSourceError,
    LiveStats,
    VideoSource,
    capture_loop,
    open_source,
    run_live,
    write_demo_video,
)

pytest.importorskip("cv2")

FPS = 30.0


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 frames of 160×120 at 30 fps: 1.3 s of panned cat."""
    return write_demo_video(tmp_path_factory.mktemp("live") / "demo.avi", frames=40, size=(160, 120), fps=FPS)


@pytest.fixture(scope="module")
def lenet() -> zoo.LoadedModel:
    return zoo.load_model("lenet5", allow_download=False)


@pytest.fixture(scope="module")
def lite0() -> zoo.LoadedModel:
    return zoo.load_model("efficientnet_lite0", allow_download=False)


class SlowPipeline:
    """A model slower than the video: the real pipeline, then a nap."""

    def __init__(self, inner: LivePipeline, nap_s: float) -> None:
        self.inner = inner
        self.nap_s = nap_s

    def process(self, frame: Frame, control: Control | None = None):
        time.sleep(self.nap_s)
        return self.inner.process(frame, control)


def _frame(i: int) -> Frame:
    return Frame(i, np.full((4, 4, 3), i % 256, np.uint8), time.perf_counter())


# ---------------------------------------------------------------------------------------------------------
# Sources


def test_the_demo_video_decodes_as_a_moving_picture(video: Path):
    with open_source(video) as source:
        assert (source.label, source.is_camera, source.frame_size) == ("demo.avi", False, (160, 120))
        assert source.fps == pytest.approx(FPS)
        assert source.frame_count == 40
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.error is None  # the end of a file is no error
    assert [f.index for f in frames] == list(range(40))
    first = frames[0].pixels
    assert first.shape == (120, 160, 3) and first.dtype == np.uint8 and first.flags.c_contiguous
    assert np.abs(first.astype(int) - frames[20].pixels.astype(int)).mean() > 10  # it moves (and loops)
    assert source.read() is None  # closed


def test_a_missing_camera_is_named():
    with pytest.raises(LiveSourceError, match=r"No camera 9: OpenCV could not open it"):
        open_source(9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"These are my notes, not a video.\n" * 20, "cannot decode video .*notes.mp4"),
        (b"", "cannot decode video .*notes.mp4: the file is empty"),
    ],
)
def test_a_file_that_is_not_a_video_is_named(tmp_path: Path, content: bytes, message: str):
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(content)
    with pytest.raises(LiveSourceError, match=message):
        open_source(bad)


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(LiveSourceError, match=r"cannot open video .*gone.avi: no such file"):
        open_source(tmp_path / "gone.avi")


class _UnpluggedCamera:
    """A capture that gives three pictures, then nothing (the cable was pulled)."""

    def __init__(self) -> None:
        self.left = 3

    def read(self):
        self.left -= 1
        return (self.left >= 0), (np.zeros((8, 8, 3), np.uint8) if self.left >= 0 else None)

    def get(self, _prop):
        return 30.0

    def release(self):
        pass


def test_a_camera_that_stops_ends_the_stream_with_a_reason():
    import cv2

    source = VideoSource(
        _UnpluggedCamera(), cv2, label="camera 0", is_camera=True, first=np.zeros((8, 8, 3), np.uint8)
    )
    slot = LatestFrame()
    assert capture_loop(source, slot) == 4  # the first frame plus three
    assert slot.closed and source.error == "camera 0 stopped giving pictures (was it unplugged?)"


# ---------------------------------------------------------------------------------------------------------
# The slot


def test_latest_frame_keeps_only_the_newest():
    slot = LatestFrame()
    assert slot.take(timeout=0.01) is None
    a, b = _frame(0), _frame(1)
    slot.put(a)
    slot.put(b)
    assert (slot.captured, slot.dropped) == (2, 1)
    assert slot.peek() is b
    assert slot.take() is b and slot.taken == 1
    assert slot.take(timeout=0.01) is None
    assert slot.peek() is b  # still what Pause would freeze
    slot.put(c := _frame(2))
    slot.close()
    assert slot.take() is c  # put before the close: still handed out
    started = time.perf_counter()
    assert slot.take() is None  # closed and empty: no wait
    assert time.perf_counter() - started < 0.5
    assert slot.put(_frame(3)) is False and slot.captured == 3


def test_latest_frame_between_threads():
    slot = LatestFrame()
    n = 2000

    def produce():
        for i in range(n):
            slot.put(_frame(i))
        slot.close()

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    while (frame := slot.take(timeout=5)) is not None:
        got.append(frame.index)
        time.sleep(0.0005)  # a consumer slower than the producer
    producer.join()
    assert got == sorted(set(got)) and got[-1] == n - 1  # newest first, never back in time, the last kept
    assert slot.captured == n == slot.taken + slot.dropped and slot.dropped > 0


def test_a_waiting_take_wakes_when_a_frame_comes():
    slot = LatestFrame()
    timer = threading.Timer(0.05, lambda: slot.put(_frame(7)))
    timer.start()
    frame = slot.take(timeout=5)
    timer.join()
    assert frame is not None and frame.index == 7


# ---------------------------------------------------------------------------------------------------------
# The loop


def test_every_frame_is_processed_in_order_without_pacing(video: Path, lenet: zoo.LoadedModel):
    pipeline = LivePipeline(lenet)
    results = []
    with open_source(video) as source:
        stats = run_live(source, pipeline, pace=False, on_result=results.append)
    indices = [r.frame.index for r in results]
    assert indices == list(range(40))
    assert (stats.processed, stats.dropped, stats.captured) == (40, 0, 40)
    assert stats.fps > 0 and 0 < stats.latency_ms <= stats.latency_p95_ms
    r = results[-1]
    assert r.layer == pipeline.layer and r.shape == tuple(pipeline.row.out_shape)
    assert [p.name for p in r.top] and len(r.top) == 5 and r.top[0].probability >= r.top[-1].probability
    assert r.grid.dtype == np.uint8 and r.grid.ndim == 3 and r.grid.shape[2] == 3
    assert "40 frames" in stats.summary() and "0 of 40 captured frames dropped" in stats.summary()


def test_a_slow_model_drops_frames_and_the_lag_stays_bounded(video: Path, lenet: zoo.LoadedModel):
    nap = 0.1  # 3 frame intervals of the 30 fps video
    pipeline = SlowPipeline(LivePipeline(lenet), nap)
    stats = LiveStats()
    results = []
    held = []
    alive: list[weakref.ref] = []
    with open_source(video) as source:
        read = source.read

        def tracked_read():
            frame = read()
            if frame is not None:
                alive.append(weakref.ref(frame.pixels))  # (kept when re-stamped)
            return frame

        source.read = tracked_read  # type: ignore[method-assign]

        def on_result(r):
            results.append((r.frame.index, r.done_at - r.frame.captured_at, r.seconds))
            slot = stats.slot
            held.append(slot.captured - slot.taken - slot.dropped)  # frames waiting in the slot
            held.append(sum(ref() is not None for ref in alive))  # frames alive anywhere

        stats = run_live(source, pipeline, pace=True, on_result=on_result, stats=stats)
    indices = [i for i, _, _ in results]
    assert indices == sorted(set(indices))  # in order
    assert stats.captured == 40 and stats.dropped >= 20  # the video was captured at its pace, most dropped
    assert stats.captured == stats.processed + stats.dropped
    assert max(held[0::2]) <= 1  # the slot never holds more than one frame
    assert max(held[1::2]) <= 4  # in the result, the slot, being decoded: nothing piles up
    pass_s = nap + max(s for _, _, s in results)
    assert max(lat for _, lat, _ in results) < 2 * pass_s + 0.05  # a frame waits at most about one pass


def test_layers_channels_and_gradcam_switch_mid_stream(video: Path, lenet: zoo.LoadedModel):
    pipeline = LivePipeline(lenet)
    first_layer = pipeline.layer_names[0]
    results = []

    def on_result(r):
        results.append(r)
        if len(results) == 3:
            pipeline.set_layer(first_layer)
            pipeline.set_channel(1)
        if len(results) == 6:
            pipeline.set_gradcam(True)

    with open_source(video) as source:
        run_live(source, pipeline, frames=9, pace=False, on_result=on_result)
    assert len(results) == 9
    before, after, cam = results[2], results[3], results[8]
    assert before.layer == pipeline.last_spatial and before.channel is None and before.cam is None
    assert after.layer == first_layer and after.channel == 1
    assert after.shape == tuple(pipeline.table.rows[0].out_shape)
    assert after.channel_map is not None and after.channel_map.shape == after.shape[1:]
    assert after.grid.shape != before.grid.shape
    assert cam.cam is not None and cam.cam_layer == pipeline.last_spatial and cam.layer == first_layer


def test_the_live_grid_is_the_explorers(video: Path, lenet: zoo.LoadedModel):
    """One hook on one layer gives the values the explorer's all-layer capture keeps."""
    pipeline = LivePipeline(lenet)
    with open_source(video) as source:
        frame = source.read()
    for layer in (pipeline.layer_names[0], pipeline.last_spatial, pipeline.layer_names[-1]):
        pipeline.set_layer(layer)
        result = pipeline.process(frame)
        still = explore(lenet, frame.pixels)
        want = still.capture[layer].data.astype(np.float32)
        got = result.view.values.reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
        assert [p.index for p in result.top] == [p.index for p in still.predictions]


@pytest.mark.parametrize("name", ["lenet5", "efficientnet_lite0"])
def test_seen_is_the_frame_as_the_network_saw_it(video: Path, name: str, request):
    loaded = request.getfixturevalue("lenet" if name == "lenet5" else "lite0")
    pipeline = LivePipeline(loaded)
    with open_source(video) as source:
        for _ in range(3):
            frame = source.read()
            np.testing.assert_array_equal(
                pipeline.process(frame).seen, loaded.preprocess.crop_pixels(frame.pixels)
            )


def test_gradcam_reads_the_layer_and_logits_from_its_own_pass(video: Path, lite0: zoo.LoadedModel):
    pipeline = LivePipeline(lite0)
    with open_source(video) as source:
        frame = source.read()
    plain = pipeline.process(frame)
    pipeline.set_gradcam(True)
    cam = pipeline.process(frame)
    assert cam.cam is not None and cam.cam.shape == (224, 224) and cam.seen.shape == (224, 224, 3)
    assert float(cam.cam.min()) >= 0.0 and float(cam.cam.max()) <= 1.0 and cam.cam.max() > 0
    assert cam.cam_class == cam.top[0].index == plain.top[0].index
    assert cam.top[0].probability == pytest.approx(plain.top[0].probability, abs=1e-4)
    np.testing.assert_allclose(cam.view.values, plain.view.values, atol=1e-4)
    pipeline.set_gradcam(True, at="current")
    pipeline.set_layer(pipeline.layer_names[0])
    assert pipeline.process(frame).cam_layer == pipeline.layer_names[0]


def test_a_bad_layer_or_channel_is_refused_with_the_names(lenet: zoo.LoadedModel):
    with pytest.raises(ValueError, match=r"no layer named 'conv9'.*its layers: "):
        LivePipeline(lenet, "conv9")
    pipeline = LivePipeline(lenet)
    with pytest.raises(ValueError, match="has channels 0–"):
        pipeline.set_channel(pipeline.channels)
    with pytest.raises(ValueError):
        pipeline.set_layer("nope")
    assert pipeline.layer == pipeline.last_spatial  # unchanged


def test_cancel_stops_the_loop_and_its_thread(video: Path, lenet: zoo.LoadedModel):
    control = Control()
    seen = []

    def on_result(r):
        seen.append(r)
        if len(seen) == 2:
            control.cancel()

    with open_source(video) as source, pytest.raises(Cancelled):
        run_live(source, LivePipeline(lenet), pace=True, on_result=on_result, control=control)
    assert len(seen) == 2  # (the fixture fails the test if the capture thread were still running)


def test_grid_options_apply_from_the_next_frame_and_statistics_follow_at_their_pace(
    video: Path, lenet: zoo.LoadedModel
):
    from cnn_explorer.core.features import layer_stats

    pipeline = LivePipeline(lenet, stats_interval_s=3600.0)  # statistics once, then kept for the layer
    with open_source(video) as source:
        frames = [source.read() for _ in range(3)]
    first = pipeline.process(frames[0])
    assert first.stats_frame == frames[0].index
    pipeline.set_view(cmap="gray", sort_by="mean", columns=2)
    second = pipeline.process(frames[1])
    assert (second.view.cmap, second.view.sort_by) == ("gray", "mean")
    assert pipeline.columns == 2 and pipeline.normalize == "channel"  # (what was not given stays)
    assert second.view.stats is first.view.stats and second.stats_frame == frames[0].index
    pipeline.set_layer(pipeline.layer_names[0])  # another layer: its own statistics at once
    third = pipeline.process(frames[2])
    assert third.stats_frame == frames[2].index
    want = layer_stats(third.view.values)
    assert (third.view.stats.minimum, third.view.stats.maximum) == (want.minimum, want.maximum)
    every = LivePipeline(lenet, stats_interval_s=0.0)  # every frame
    a, b = every.process(frames[0]), every.process(frames[1])
    assert (a.stats_frame, b.stats_frame) == (frames[0].index, frames[1].index)


def test_a_layer_table_given_is_used_if_it_is_for_the_input_size(lenet: zoo.LoadedModel):
    import dataclasses

    own = LivePipeline(lenet).table
    assert LivePipeline(lenet, table=own).table is own
    other = dataclasses.replace(own, input_shape=(1, 64, 64))  # another input size's: recomputed
    again = LivePipeline(lenet, table=other).table
    assert again is not other and again.input_shape == own.input_shape


def test_unpaced_the_next_frame_is_read_after_the_pass_not_during_it(video: Path, lenet: zoo.LoadedModel):
    """Decoding on one core during the model's pass stalls every multi-threaded operation of the pass."""
    inner = LivePipeline(lenet)
    read_during_pass = []
    stats = LiveStats()

    class Watching:
        def process(self, frame: Frame, control=None, after_pass=None):
            def passed() -> None:
                time.sleep(0.02)  # (a capture thread reading ahead would have read the next frame by now)
                read_during_pass.append(stats.slot.captured - (frame.index + 1))
                after_pass()

            return inner.process(frame, control, after_pass=passed)

    with open_source(video) as source:
        run_live(source, Watching(), pace=False, stats=stats)
    assert stats.processed == 40 and stats.dropped == 0
    assert read_during_pass == [0] * 40
