"""Compression of a real fine-tuned run: EfficientNet-Lite0 as a feature extractor on the bundled animal
silhouettes, then fp32 against int8-static and against 50 % pruning + one fine-tune epoch.

    python benchmarks/bench_compress.py [--per-class 100] [--latency-runs 40] [--keep DIR]

Trains the run first (a few seconds: the backbone is frozen, its features are cached), then calls the same
``run_compression`` as the Compress page and ``cnn-explorer compress``. Every number comes from its report:
size is the saved file's size on disk, latency the median at batch 1 on the CPU, interleaved run by run with
the original in the same process and thread count (so a busy machine slows both alike), accuracy on the
run's own validation split. Printed as ratios against fp32, with the issue's targets:

- int8-static ≥ 3.5× smaller, latency ≤ 0.8× fp32, accuracy within 2 points;
- 50 % pruning + one fine-tune epoch: accuracy within 2 points.

A target that is missed is printed as MISSED, with the numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from cnn_explorer.core.compress import CompressSource, CompressSpec, run_compression
from cnn_explorer.core.data import Augmentation, write_animal_dataset
from cnn_explorer.core.train_config import TrainConfig
from cnn_explorer.core.training import fit, run_to_end

SIZE_TARGET = 3.5
LATENCY_TARGET = 0.8
ACCURACY_POINTS = 2.0


def train_run(root: Path, per_class: int) -> Path:
    data = write_animal_dataset(root / "silhouettes", per_class=per_class)
    config = TrainConfig(
        data=str(data),
        model="efficientnet_lite0",
        strategy="feature-extractor",
        epochs=5,
        batch_size=16,
        augmentation=Augmentation.none(),
        allow_download=False,
    )
    run = root / "run"
    run_to_end(fit(config, run))
    return run


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100, help="silhouettes per class (4 classes)")
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="keep the run and the variants in this folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        run = train_run(root, args.per_class)
        took = time.perf_counter() - start
        print(f"run: Lite0 feature extractor on {4 * args.per_class} silhouettes ({took:.0f} s)")
        start = time.perf_counter()
        report = run_compression(
            CompressSource(run_dir=run),
            CompressSpec(
                prune=0.5, finetune_epochs=1, quantize="int8-static", latency_runs=args.latency_runs
            ),
            root / "compressed-bench",
        )
        print(
            f"compressed in {time.perf_counter() - start:.0f} s; {report.metric} on {report.images} "
            f"validation images; {report.threads} threads (torch {torch.__version__}); "
            f"{report.quantization_flow}"
        )
    fp32 = report.variant("fp32")
    print(
        f"\n{'variant':<28} {'size':>10} {'smaller':>8} {'latency':>10} {'× fp32':>7} {'accuracy':>9} "
        f"{'Δ points':>9}"
    )
    for v in report.variants:
        delta = 100 * (v.accuracy - fp32.accuracy)
        print(
            f"{v.name:<28} {v.size_bytes / 2**20:>7.2f} MB {fp32.size_bytes / v.size_bytes:>7.2f}× "
            f"{v.latency_ms_median:>7.1f} ms {v.latency_ratio:>6.2f}× {100 * v.accuracy:>8.1f}% "
            f"{delta:>+9.1f}"
        )
    int8 = report.variant("int8-static")
    pruned = next(v for v in report.variants if v.name.startswith("pruned-50+ft"))
    size_ratio = fp32.size_bytes / int8.size_bytes
    int8_delta = 100 * (int8.accuracy - fp32.accuracy)
    pruned_delta = 100 * (pruned.accuracy - fp32.accuracy)
    print("\ntargets")
    print(
        f"  int8 size      {size_ratio:.2f}× smaller  (≥ {SIZE_TARGET}×)  "
        f"{verdict(size_ratio >= SIZE_TARGET)}"
    )
    print(
        f"  int8 latency   {int8.latency_ratio:.2f}× fp32     (≤ {LATENCY_TARGET}×)  "
        f"{verdict(int8.latency_ratio <= LATENCY_TARGET)}"
    )
    print(
        f"  int8 accuracy  {int8_delta:+.1f} points     (within {ACCURACY_POINTS:g})  "
        f"{verdict(abs(int8_delta) <= ACCURACY_POINTS)}"
    )
    print(
        f"  {pruned.name} accuracy {pruned_delta:+.1f} points (within {ACCURACY_POINTS:g})  "
        f"{verdict(abs(pruned_delta) <= ACCURACY_POINTS)}"
    )


if __name__ == "__main__":
    main()
