"""The ``live`` subcommand: a camera or a video through a model, headless, with the GUI's live pipeline.

``cnn-explorer live (--camera N | VIDEO) --model NAME [--layer L] [--frames N] [--out DIR] [--gradcam]
[--no-pace]`` processes frames latest-frame-wins (a slow model drops frames instead of falling behind),
prints a line per processed frame (every Nth for long runs) and, at the end, the fps, the latency from
capture to result (median, p95) and the frames dropped. With ``--out`` it writes ``frames.csv`` (one row
per processed frame) and, for the first, middle and last processed frames, ``frame_<i>.png`` and
``grid_<i>.png`` (and ``gradcam_<i>.png`` with ``--gradcam``).

Exit codes: 0 done; 1 failed (the camera stopped, a disk that filled up); 2 unusable input (no such
camera, a file that is not a video, an unknown model or layer, an output folder that cannot be written),
with one line naming it; 130 stopped with Ctrl+C (what was processed is still summarised and written).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from pathlib import Path

import numpy as np

from cnn_explorer.cli_train import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ctrl_c_cancels
from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.features import COLORMAPS
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir, write_failure

COMMAND = "live"
CSV_NAME = "frames.csv"
CSV_COLUMNS = ("frame", "captured_s", "latency_ms", "top1", "probability", "dropped")
_KEEP = 16  # results held for picking the middle one (a long camera run keeps a thinning sample)
_MIN_PNG_WIDTH = 400


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``live`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        COMMAND,
        help="run a model on a camera or a video, live (latest frame wins): top-1 per frame, fps, latency",
        description=(
            "Run a CNN live on a camera (--camera N) or a video file, as the explorer's live view does: the "
            "model always takes the newest frame, frames that arrive while it is busy are dropped. Prints "
            "the top-1 of processed frames, then fps, latency (capture to result: median, p95) and dropped "
            f"frames. With --out: {CSV_NAME} and, for the first, middle and last processed frames, "
            "frame_<i>.png and grid_<i>.png (the layer's channels)."
        ),
    )
    p.add_argument("video", nargs="?", metavar="VIDEO", type=Path, help="a video file (MP4, AVI, MKV …)")
    p.add_argument("--camera", type=int, metavar="N", help="camera index instead of a file (0: the default)")
    p.add_argument(
        "--model", default=zoo.DEFAULT_MODEL, help=f"model name (default {zoo.DEFAULT_MODEL}; see `models`)"
    )
    p.add_argument("--weights", type=Path, metavar="FILE", help="weights file instead of the pretrained ones")
    p.add_argument("--trust-code", action="store_true", help="allow a TorchScript --weights file to run")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument(
        "--layer", metavar="NAME", help="layer to draw (as in `inspect`'s layers.csv; default the last map)"
    )
    p.add_argument("--channel", type=int, metavar="C", help="also follow this channel of the layer")
    p.add_argument("--frames", type=int, metavar="N", help="stop after N processed frames")
    p.add_argument("--out", type=Path, metavar="DIR", help=f"write {CSV_NAME} and a few PNGs here")
    p.add_argument("--gradcam", action="store_true", help="Grad-CAM of the top class on every frame")
    p.add_argument(
        "--no-pace",
        action="store_true",
        help="a video's frames as fast as the model takes them (every frame processed, none dropped), "
        "instead of at the video's frame rate",
    )
    p.add_argument("--every", type=int, metavar="N", help="print every Nth processed frame (default: auto)")
    p.add_argument("--cmap", choices=COLORMAPS, default="viridis", help="colormap of the grids")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    p.set_defaults(func=run_live_command)


def _bad(message: str) -> int:
    print(f"cnn-explorer: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _check_args(args: argparse.Namespace) -> str | None:
    if (args.video is None) == (args.camera is None):
        return "live needs a video file or --camera N (one of them)"
    if args.frames is not None and args.frames < 1:
        return f"--frames must be at least 1, not {args.frames}"
    if args.every is not None and args.every < 1:
        return f"--every must be at least 1, not {args.every}"
    return None


def _print_every(args: argparse.Namespace, frame_count: int | None) -> int:
    if args.every is not None:
        return args.every
    expected = args.frames or frame_count
    if expected is None:
        return 10  # a camera until Ctrl+C
    return 1 if expected <= 60 else math.ceil(expected / 50)


class _Keeper:
    """The first result, the last, and an evenly thinned sample between them (the middle one is in it)."""

    def __init__(self) -> None:
        self.first = None
        self.last = None
        self.sample: list = []
        self.step = 1
        self.count = 0

    def add(self, result) -> None:
        if self.first is None:
            self.first = result
        self.last = result
        if self.count % self.step == 0:
            self.sample.append(result)
            if len(self.sample) > _KEEP:
                self.sample = self.sample[::2]
                self.step *= 2
        self.count += 1

    def chosen(self) -> list:
        picks = [self.first, self.sample[len(self.sample) // 2] if self.sample else None, self.last]
        seen: dict[int, object] = {}
        for r in picks:
            if r is not None:
                seen.setdefault(r.frame.index, r)
        return list(seen.values())


def _enlarge(rgb: np.ndarray, min_width: int = _MIN_PNG_WIDTH) -> np.ndarray:
    factor = max(1, math.ceil(min_width / max(1, rgb.shape[1])))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


def _write_pictures(out: Path, results: list) -> list[str]:
    from PIL import Image

    from cnn_explorer.core.cam import overlay

    written = []
    for r in results:
        i = r.frame.index
        Image.fromarray(r.frame.pixels).save(out / f"frame_{i}.png")
        Image.fromarray(_enlarge(r.grid)).save(out / f"grid_{i}.png")
        written += [f"frame_{i}.png", f"grid_{i}.png"]
        if r.cam is not None:
            Image.fromarray(overlay(r.seen, r.cam)).save(out / f"gradcam_{i}.png")
            written.append(f"gradcam_{i}.png")
    return written


def run_live_command(args: argparse.Namespace) -> int:
    problem = _check_args(args)
    if problem:
        return _bad(problem)
    from cnn_explorer.core.live import LivePipeline, LiveSourceError, open_source

    if args.out is not None:
        try:
            prepare_output_dir(args.out)
        except OutputDirError as exc:
            return _bad(str(exc))
    try:
        source = open_source(args.camera if args.camera is not None else args.video)
    except LiveSourceError as exc:
        return _bad(str(exc))
    with source:
        try:
            if args.weights is not None:
                loaded = zoo.load_model(args.model, weights_file=args.weights, trust_code=args.trust_code)
            else:
                loaded = zoo.load_model(args.model, allow_download=not args.offline)
            pipeline = LivePipeline(
                loaded, args.layer, channel=args.channel, gradcam=args.gradcam, cmap=args.cmap
            )
        except (zoo.ModelLoadError, ValueError) as exc:
            return _bad(str(exc))
        except (KeyboardInterrupt, Cancelled):
            print("cnn-explorer: stopped", file=sys.stderr)
            return EXIT_INTERRUPTED
        if not loaded.trained:
            print("cnn-explorer: note: this model is UNTRAINED (random weights)", file=sys.stderr)
        return _run(args, source, loaded, pipeline)


def _run(args: argparse.Namespace, source, loaded: zoo.LoadedModel, pipeline) -> int:
    from cnn_explorer.core.live import LiveStats

    w, h = source.frame_size
    rate = f"{source.fps:g} fps" if source.fps else "frame rate unknown"
    length = f", {source.frame_count} frames" if source.frame_count else ""
    print(
        f"{source.label} ({w}×{h}, {rate}{length}) → {loaded.info.title}, layer {pipeline.layer} "
        f"{tuple(pipeline.row.out_shape)}" + (", Grad-CAM" if pipeline.gradcam else ""),
        file=sys.stderr,
    )
    every = _print_every(args, source.frame_count)
    keeper = _Keeper()
    stats = LiveStats()
    rows: _Rows | None = None
    try:
        if args.out is not None:
            rows = _Rows(args.out)
        code = _loop(args, source, pipeline, stats, every, keeper, rows)
        if rows is not None:
            rows.finish()
        written = _write_pictures(args.out, keeper.chosen()) if args.out is not None else []
    except OSError as exc:
        print(f"cnn-explorer: cannot write to {args.out}: {write_failure(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if rows is not None:
            rows.close()
    print(stats.summary())
    if source.error:
        print(f"cnn-explorer: {source.error}", file=sys.stderr)
        if code == EXIT_OK:
            code = EXIT_FAILED
    if args.out is not None:
        print(f"wrote {CSV_NAME} and {len(written)} picture(s) to {args.out}")
    return code


def _loop(args, source, pipeline, stats, every: int, keeper: _Keeper, rows: _Rows | None) -> int:
    from cnn_explorer.core.live import run_live

    def on_result(r) -> None:
        t0 = stats.first_captured_at or r.frame.captured_at
        latency = (r.done_at - r.frame.captured_at) * 1000
        top = r.top[0]
        if rows is not None:
            dropped = r.frame.index + 1 - stats.processed  # captured up to this frame, never processed
            rows.add(r.frame.index, r.frame.captured_at - t0, latency, top.name, top.probability, dropped)
            keeper.add(r)
        if not args.quiet and (stats.processed - 1) % every == 0:
            print(
                f"frame {r.frame.index:>5}  +{r.frame.captured_at - t0:7.2f} s  {latency:6.0f} ms  "
                f"{100 * top.probability:5.1f}% {top.name}",
                flush=True,
            )

    control = Control()
    try:
        with ctrl_c_cancels(control, "frame"):
            run_live(
                source,
                pipeline,
                frames=args.frames,
                pace=not args.no_pace,
                on_result=on_result,
                control=control,
                stats=stats,
            )
    except (Cancelled, KeyboardInterrupt):
        print("cnn-explorer: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError:
        raise  # writing frames.csv: reported by the caller
    except Exception as exc:  # the model failed on a frame: say which, keep what was written
        print(f"cnn-explorer: the live run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


class _Rows:
    """frames.csv, written as the run goes to a temporary name and renamed at the end."""

    def __init__(self, out: Path) -> None:
        self.final = out / CSV_NAME
        self.tmp = out / f".{CSV_NAME}.partial"
        self.file = self.tmp.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow(CSV_COLUMNS)

    def add(self, frame: int, captured_s: float, latency_ms: float, top1: str, prob: float, dropped: int):
        self.writer.writerow((frame, f"{captured_s:.4f}", f"{latency_ms:.1f}", top1, f"{prob:.6f}", dropped))

    def finish(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.final)

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)
