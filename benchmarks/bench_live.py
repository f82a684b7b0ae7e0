"""Time the live view's loop against a bare forward pass, in one process (issue #17).

    python benchmarks/bench_live.py [--rounds 5] [--frames 60] [--size 320x240] [--model efficientnet_lite0]

On the generated demo video (the sample cat panned and zoomed, written with OpenCV; 320×240 as the demo
writes it, or ``--size 640x480`` as a webcam gives, which adds the decoding and resizing of four times the
pixels to every frame), EfficientNet-Lite0 at 224 px on the CPU:

* **bare**: the forward pass alone on the same frames, already decoded and preprocessed (batch 1, eval
  mode, no autograd: ``torch.inference_mode``, the stricter of it and ``no_grad``), as frames per second;
* **live**: :func:`cnn_explorer.core.live.run_live` with ``pace=False`` (the model is the bottleneck):
  decoding in the capture thread (the next frame while this one is drawn), preprocessing, the pass with
  its one hook, the top-5 and the layer's channel grid drawn as the explorer draws it, every frame; its
  fps against the bare rate. Target ≥ 0.8;
* the same at the first convolution (the largest grid: 32 channels of 112×112), reported;
* **Grad-CAM** on (a backward pass per frame), reported, no target;
* **paced**: the video at its own 30 fps, as a camera delivers it: fps, latency (capture → result,
  median and p95) and frames dropped;
* **the window while live**: the explorer page offscreen playing the video (paced, as a camera): its
  longest GUI stall (target < 50 ms) and the frames it paints per second against the bare rate
  (reported: every frame is also painted on the GUI thread, which shares the cores with the model).

Variants alternate within each round, so a busy machine slows them alike; ratios are taken per round and
the median of rounds decides.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.allocator import keep_freed_memory
from cnn_explorer.core.live import LivePipeline, open_source, run_live, write_demo_video

TARGET_RATIO = 0.8
GUI_STALL_TARGET_MS = 50.0
VIDEO_FPS = 30.0


def decoded_frames(video: Path) -> list:
    with open_source(video) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame.pixels)
    return frames


def bare_fps(model: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for x in inputs:
            model(x)
    return len(inputs) / (time.perf_counter() - start)


def bare_with_preprocessing_fps(model: torch.nn.Module, loaded: zoo.LoadedModel, pixels: list) -> float:
    """The same with each frame preprocessed first (resize, crop, normalise): where the live cost lies."""
    start = time.perf_counter()
    with torch.inference_mode():
        for p in pixels:
            model(loaded.preprocess(p)[None])
    return len(pixels) / (time.perf_counter() - start)


def live_fps(video: Path, pipeline: LivePipeline, frames: int | None = None) -> tuple[float, float]:
    """(fps, median ms of one frame's processing) through run_live, unpaced."""
    with open_source(video) as source:
        stats = run_live(source, pipeline, frames=frames, pace=False)
    return stats.fps, stats.pass_ms


# ---------------------------------------------------------------------------------------------------------
# The window while live


def gui_longest_stall_ms(video: Path, loaded: zoo.LoadedModel) -> tuple[float | None, float]:
    """The explorer page offscreen (1400×900) with ``loaded`` on the sample cat, live on ``video`` from
    Live to the still its last frame becomes: the longest gap between two ticks of a 5 ms heartbeat, and
    the frames painted per second."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer

    from cnn_explorer.core.cam import default_cam_layer
    from cnn_explorer.core.images import default_sample, open_image
    from cnn_explorer.qt import workers
    from cnn_explorer.qt.app import make_app, wait_until
    from cnn_explorer.qt.pages.network import NetworkPage

    make_app()
    page = NetworkPage()
    page.resize(1400, 900)
    page.show()
    page.caches.models.put(f"zoo:{loaded.info.name}", loaded)  # the model loaded above: no second load
    page.open_zoo_model(loaded.info.name)
    page.set_image(open_image(default_sample()))
    wait_until(lambda: page.session.a.ready and not page.is_busy(), 300)
    layer = default_cam_layer(page.exploration.table)
    page.set_layer_by_name(layer)  # the live default, as above
    wait_until(lambda: not page.is_busy(), 60)

    gaps: list[float] = []
    last: list[float] = []

    def tick() -> None:
        now = time.perf_counter()
        if last:
            gaps.append((now - last[0]) * 1000)
            last[0] = now
        else:
            last.append(now)

    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(tick)
    painted: list[float] = []
    ended: list[str] = []
    page.live_painted.connect(lambda _result: painted.append(time.perf_counter()))
    page.live_stopped.connect(ended.append)
    heartbeat.start()
    wait_until(lambda: len(gaps) >= 20, 5)  # the idle page's rhythm first
    page.start_live(video)
    wait_until(lambda: bool(ended), 300)
    wait_until(lambda: not page.is_busy(), 300)  # the last frame's still: a full pass, then painted
    wait_until(lambda: False, 0.2)
    heartbeat.stop()
    page.shutdown()
    wait_until(lambda: not workers.active_jobs(), 60)
    page.close()
    page.deleteLater()
    span = painted[-1] - painted[0] if len(painted) > 1 else 0.0
    rate = (len(painted) - 1) / span if span > 0 else 0.0
    ordered = sorted(gaps)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
    print(
        f"GUI live ({loaded.info.title} at {layer}, offscreen page): {len(painted)} frames painted, "
        f"{rate:.1f} fps on screen; heartbeat gaps median {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms "
        f"({len(gaps)} ticks, {ended[0] if ended else 'not ended'})"
    )
    return (max(gaps) if gaps else None), rate


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--frames", type=int, default=60, help="frames of the demo video (default 60)")
    parser.add_argument("--cam-frames", type=int, default=15, help="frames per Grad-CAM run (default 15)")
    parser.add_argument(
        "--size", default="320x240", help="video size WIDTHxHEIGHT (default 320x240, the demo video's)"
    )
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    keep_freed_memory()  # as the app runs

    loaded = zoo.load_model(args.model, allow_download=False)
    model = loaded.model
    with tempfile.TemporaryDirectory() as tmp:
        video = write_demo_video(Path(tmp) / "demo.avi", frames=args.frames, size=(w, h), fps=VIDEO_FPS)
        pixels = decoded_frames(video)
        inputs = [loaded.preprocess(p)[None] for p in pixels]
        default = LivePipeline(loaded)
        early = LivePipeline(loaded, default.layer_names[0])
        cam = LivePipeline(loaded, gradcam=True)
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; {loaded.info.title} "
            f"({loaded.weights}) at {tuple(inputs[0].shape[1:])}; video {w}×{h}, {len(inputs)} frames "
            f"(MJPG); {args.rounds} rounds"
        )
        print(
            f"live layers: default {default.layer} {tuple(default.row.out_shape)}, "
            f"early {early.layer} {tuple(early.row.out_shape)}\n"
        )
        bare_fps(model, inputs[:5])  # warm-up: oneDNN kernels, the allocator, the hooks' paths
        live_fps(video, default, 5)
        live_fps(video, early, 5)
        live_fps(video, cam, 3)

        bare, bare_pre, live, live_early, live_cam = [], [], [], [], []
        ms_default, ms_early, ms_cam = [], [], []
        for _ in range(args.rounds):
            bare.append(bare_fps(model, inputs))
            bare_pre.append(bare_with_preprocessing_fps(model, loaded, pixels))
            fps, ms = live_fps(video, default)
            live.append(fps)
            ms_default.append(ms)
            fps, ms = live_fps(video, early)
            live_early.append(fps)
            ms_early.append(ms)
            fps, ms = live_fps(video, cam, args.cam_frames)
            live_cam.append(fps)
            ms_cam.append(ms)

        def ratio(values: list[float]) -> float:
            return statistics.median(v / b for v, b in zip(values, bare, strict=True))

        med = statistics.median
        print(f"{'variant':<34} {'fps':>7} {'ms/frame':>9} {'× bare':>7}")
        print("-" * 60)
        print(f"{'bare forward pass':<34} {med(bare):>7.1f} {1000 / med(bare):>9.1f} {1.0:>7.2f}")
        rows = [
            ("bare + preprocessing (no drawing)", bare_pre, [1000 / v for v in bare_pre]),
            (f"live, {default.layer}", live, ms_default),
            (f"live, {early.layer}", live_early, ms_early),
            ("live + Grad-CAM", live_cam, ms_cam),
        ]
        for label, values, ms in rows:
            print(f"{label[:34]:<34} {med(values):>7.1f} {med(ms):>9.1f} {ratio(values):>7.2f}")

        with open_source(video) as source:
            paced = run_live(source, default, pace=True)
        print(f"\npaced at the video's {VIDEO_FPS:g} fps, {default.layer}: {paced.summary()}")

        stall, gui_fps = gui_longest_stall_ms(video, loaded)
        print(f"the window's live fps / bare forward rate: {gui_fps / med(bare):.2f} (reported, no target)")
        if stall is None:
            print("GUI's longest stall while live: no heartbeat ticks")
        else:
            verdict = "meets" if stall < GUI_STALL_TARGET_MS else "MISSES"
            print(
                f"GUI's longest stall while live: {stall:.0f} ms — {verdict} the "
                f"< {GUI_STALL_TARGET_MS:g} ms target"
            )

    r = ratio(live)
    verdict = "meets" if r >= TARGET_RATIO else "MISSES"
    print(
        f"\nlive fps / bare forward rate (median of {args.rounds} rounds, default layer): {r:.2f} — "
        f"{verdict} the ≥ {TARGET_RATIO} target (first convolution: {ratio(live_early):.2f}; "
        f"Grad-CAM: {ratio(live_cam):.2f}, no target)"
    )


if __name__ == "__main__":
    main()
