"""Time the operations lab's full recompute against plain PyTorch, in one process.

    python benchmarks/bench_ops.py [--size 512] [--repeat 30]

The lab recomputes convolution -> activation -> max pooling (cnn_explorer.core.ops.run_lab) whenever a
control changes. This script times that on a 512×512 RGB image next to torch.nn.functional's
conv2d + relu + max_pool2d on the same data, and prints both medians, their ratio and the 60 Hz frame
budget (16.7 ms) the lab aims to stay well inside.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnn_explorer.core.images import default_sample, load_image, resize_to
from cnn_explorer.core.kernels import kernel_preset
from cnn_explorer.core.ops import LabSettings, image_to_input, run_lab

FRAME_BUDGET_MS = 1000 / 60


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: first-call allocations and torch's lazy initialisation are not what a user waits for
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per variant (default 30)")
    parser.add_argument("--kernel", default="Sobel x", help="kernel preset (default Sobel x)")
    args = parser.parse_args()

    pixels = resize_to(load_image(default_sample()), args.size, args.size)
    x = image_to_input(pixels, "rgb", size=args.size)  # (3, H, W) float32, 0…255
    kernel = kernel_preset(args.kernel)
    settings = LabSettings(kernel=kernel, activation="relu", pool_mode="max", pool_size=2, padding=1)

    weight = torch.from_numpy(np.repeat(kernel[None], 3, axis=0)[None].astype(np.float32))
    xt = torch.from_numpy(x)[None]

    def torch_pipeline() -> torch.Tensor:
        with torch.no_grad():
            return F.max_pool2d(F.relu(F.conv2d(xt, weight, padding=1)), 2)

    lab = run_lab(x, settings)
    ref = torch_pipeline()[0, 0].numpy()
    agree = np.allclose(lab.pooled, ref, rtol=1e-4, atol=1e-2)

    lab_ms = median_ms(lambda: run_lab(x, settings), args.repeat)
    torch_ms = median_ms(torch_pipeline, args.repeat)

    print(f"input: {args.size}×{args.size} RGB, kernel {args.kernel} 3×3 (padding 1) -> ReLU -> max pool 2×2")
    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeat} (median times)")
    print(f"  lab recompute (numpy, run_lab):               {lab_ms:8.2f} ms")
    print(f"  torch conv2d + relu + max_pool2d:             {torch_ms:8.2f} ms")
    print(f"  ratio lab / torch:                            {lab_ms / torch_ms:8.2f}")
    print(f"  frame budget at 60 Hz:                        {FRAME_BUDGET_MS:8.2f} ms")
    verdict = "within" if lab_ms < FRAME_BUDGET_MS else "OVER"
    print(f"  lab recompute is {verdict} one frame ({lab_ms / FRAME_BUDGET_MS:.0%} of the budget)")
    print(f"  results agree with torch: {'yes' if agree else 'NO'}")


if __name__ == "__main__":
    main()
