"""Draw a digit for LeNet-5: how long from a reading of the pen until the predictions and the current layer's
maps show the new drawing.

    python benchmarks/bench_digit_draw.py [--segments 30] [--rounds 3]

Builds the real Network explorer offscreen with the bundled, trained LeNet-5, then draws a "3" on the pad
segment by segment, as a hand does. Each segment is one reading of the pen (the pad emits at most every
30 ms while drawing). For each reading, from the emit until the page has run the model on the drawing,
shown the top predictions and drawn the current layer's maps (painted): "update" in milliseconds. Three
layers: C1 (six 28×28 maps), C3 (sixteen 10×10) and F6 (84 units).

The baseline, measured in the same run right after each layer's drawings, in a phase of its own (run
between the page's updates, the bare pass shared the two cores with the page's worker and read as noise):
the bare work of one update in plain PyTorch, the digit preprocessing and LeNet-5's forward pass
(``torch.inference_mode``, no hooks), for the very same drawings. Printed: medians and 90th percentiles, the
ratio update / bare, and the issue's target: an update within 50 ms on this machine's CPU.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

import numpy as np
import torch

from cnn_explorer.core.images import default_sample, open_image
from cnn_explorer.qt.app import make_app, wait_until

TARGET_MS = 50.0
DIGIT = [(0.3, 0.2), (0.65, 0.22), (0.45, 0.48), (0.7, 0.65), (0.55, 0.84), (0.3, 0.8)]
LAYERS = ("c1", "c3", "f6_tanh")


def polyline(points: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    """``n + 1`` points evenly spaced along the polyline."""
    p = np.asarray(points, dtype=float)
    lengths = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
    at = np.linspace(0.0, lengths[-1], n + 1)
    return [(float(np.interp(t, lengths, p[:, 0])), float(np.interp(t, lengths, p[:, 1]))) for t in at]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=30, help="pen readings per drawing")
    parser.add_argument("--rounds", type=int, default=3, help="drawings per layer")
    args = parser.parse_args()

    app = make_app()
    from cnn_explorer.qt.pages.network import NetworkPage

    page = NetworkPage()
    page.resize(1300, 850)
    page.show()
    page.set_image(open_image(default_sample()))
    page.open_zoo_model("lenet5", LAYERS[0])
    wait_until(
        lambda: page.loaded is not None and page.loaded.info.name == "lenet5" and not page.is_busy(), 120
    )
    loaded = page.loaded
    canvas = page.digit_canvas
    print(f"LeNet-5 ({loaded.weights_detail}); torch {torch.__version__}, {torch.get_num_threads()} threads")
    points = polyline(DIGIT, args.segments)

    def bare(pixels: np.ndarray) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            loaded.model(loaded.preprocess(pixels)[None])
        return (time.perf_counter() - start) * 1000

    def update_done(layer: str) -> bool:
        view = page.view
        return (
            page.drawing_shown
            and not page.is_busy()
            and page.session.a.exploration is not None
            and view is not None
            and view.name == layer
        )

    print(
        f"{'layer':<9} {'readings':>8} {'update ms (median / p90 / max)':>32} {'bare ms (median)':>17} "
        f"{'ratio':>7} {'target':>8}"
    )
    worst = 0.0
    for layer in LAYERS:
        page.set_layer_by_name(layer)
        wait_until(lambda: not page.is_busy(), 60)
        updates: list[float] = []
        bares: list[float] = []
        drawings: list[np.ndarray] = []
        for _ in range(args.rounds):
            canvas.clear()
            wait_until(lambda: not page.is_busy(), 60)
            for a, b in itertools.pairwise(points):
                got: list[np.ndarray] = []
                canvas.drawn.connect(got.append)
                start = time.perf_counter()
                canvas.draw_strokes([[a, b]])  # one reading: the segment drawn, the pad emits
                wait_until(lambda layer=layer: update_done(layer), 60, poll_ms=1)
                app.processEvents()  # the repaint of the maps and the prediction bars
                updates.append((time.perf_counter() - start) * 1000)
                canvas.drawn.disconnect(got.append)
                drawings.append(got[-1])
        for _ in range(3):  # the baseline's own phase: the page is idle now
            bares.extend(bare(pixels) for pixels in drawings)
        med, p90, top = statistics.median(updates), pct(updates, 90), max(updates)
        base = statistics.median(bares)
        worst = max(worst, p90)
        verdict = "ok" if p90 <= TARGET_MS else "SLOW"
        print(
            f"{layer:<9} {len(updates):>8} {med:>14.1f} / {p90:>5.1f} / {top:>6.1f}   {base:>17.2f} "
            f"{med / base:>7.0f}× {verdict:>8}"
        )
    print(f"\nworst 90th percentile: {worst:.1f} ms per update (target ≤ {TARGET_MS:.0f} ms)")
    page.shutdown()
    wait_until(lambda: not page.is_busy(), 30)


if __name__ == "__main__":
    main()
