"""Time the network explorer's all-layer capture against a bare forward pass, in one process.

    python benchmarks/bench_explorer.py [--repeat 20] [--models resnet18 efficientnet_lite0]

For each model at 224×224 on the sample photo: the bare forward pass (``torch.inference_mode``, no
hooks), ``capture_activations`` (the same pass keeping every step's output, given the layer table as the
explorer does), their ratio (target ≤ 1.3), the layer table itself (computed once per model and input
size, then reused for every image; timed separately), the same capture copying every step (no table),
and the time to tile and colour a 512-channel feature map into one RGB picture.

Everything is measured twice: first with glibc's malloc as it comes, then with the setting the app runs
with (:func:`cnn_explorer.core.allocator.keep_freed_memory`, which keeps freed blocks for reuse). The
verdict is for the app's setting; both are printed.

Bare and capture runs alternate, so a busy machine slows both alike. The verdict uses the fastest run
of each (as ``timeit`` advises: slower runs measure other processes, not the code); medians are
printed beside them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.allocator import keep_freed_memory
from cnn_explorer.core.features import capture_activations, render_grid
from cnn_explorer.core.images import default_sample, load_image
from cnn_explorer.core.layers import layer_table

TARGET_RATIO = 1.3


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def compare(names: list[str], pixels: np.ndarray, repeat: int) -> list[float]:
    """Print one row per model; return the capture/bare ratios of the fastest runs."""
    header = (
        f"{'model':<20} {'weights':<9} {'steps':>5} {'MB kept':>8} {'bare ms':>16} {'capture ms':>16} "
        f"{'ratio':>15} {'table ms':>9} {'copy-all ratio':>15}"
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for name in names:
        loaded = zoo.load_model(name, allow_download=False)
        x = loaded.preprocess(pixels)[None]
        model = loaded.model

        def bare(model=model, x=x) -> None:
            with torch.inference_mode():
                model(x)

        table = layer_table(model, 224)

        def capture(model=model, x=x, table=table) -> None:
            capture_activations(model, x, table=table)

        def copy_all(model=model, x=x) -> None:
            capture_activations(model, x)

        for _ in range(3):  # warm-up: allocator, oneDNN kernels, lazy init
            bare()
            capture()
            copy_all()
        bare_ms, cap_ms, all_ms = [], [], []
        for _ in range(repeat):
            bare_ms.append(timed(bare))
            cap_ms.append(timed(capture))
            all_ms.append(timed(copy_all))
        kept = capture_activations(model, x, table=table)
        table_ms = statistics.median(timed(lambda m=model: layer_table(m, 224)) for _ in range(5))
        med_b, med_c = statistics.median(bare_ms), statistics.median(cap_ms)
        ratio, ratio_med = min(cap_ms) / min(bare_ms), med_c / med_b
        ratios.append(ratio)
        print(
            f"{loaded.info.title:<20} {loaded.weights:<9} {len(kept):>5} {kept.nbytes / 2**20:>8.1f} "
            f"{min(bare_ms):>6.1f} (med {med_b:>4.0f}) {min(cap_ms):>6.1f} (med {med_c:>4.0f}) "
            f"{ratio:>5.2f} (med {ratio_med:.2f}) {table_ms:>9.1f} "
            f"{min(all_ms) / min(bare_ms):>5.2f} (med {statistics.median(all_ms) / med_b:.2f})"
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per variant (default 20)")
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_lite0"])
    args = parser.parse_args()

    pixels = load_image(default_sample())
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; input 224×224; {args.repeat} runs each")
    print("MB kept: the float32 outputs the capture holds until each step is first read.\n")
    print("glibc malloc as it comes:")
    default_ratios = compare(args.models, pixels, args.repeat)
    print("\nglibc malloc keeping freed memory, as the app runs (keep_freed_memory):")
    if not keep_freed_memory():
        print("(not glibc: the app changes nothing here, so this repeats the measurement above)")
    ratios = compare(args.models, pixels, args.repeat)

    fmap = np.random.default_rng(0).standard_normal((512, 14, 14)).astype(np.float16)
    render_grid(fmap)
    grid_ms = [
        timed(lambda: render_grid(fmap, cmap="viridis", normalize="channel", sort_by="mean"))
        for _ in range(20)
    ]
    rgb = render_grid(fmap)
    print(
        f"\n512-channel grid (512×14×14 → {rgb.shape[1]}×{rgb.shape[0]} RGB, per-channel scaling, sorted): "
        f"median {statistics.median(grid_ms):.1f} ms"
    )
    print(f"capture / bare (fastest runs) with malloc as it comes: worst {max(default_ratios):.2f}")
    verdict = "meets" if max(ratios) <= TARGET_RATIO else "MISSES"
    print(
        f"capture / bare (fastest runs) as the app runs: worst {max(ratios):.2f} — "
        f"{verdict} the ≤ {TARGET_RATIO} target"
    )


if __name__ == "__main__":
    main()
