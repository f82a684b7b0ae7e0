"""Time "probe every block" against one feature-extractor training run on the same data, in one process.

    python benchmarks/bench_probe.py [--image-size 224] [--per-class 40] [--rounds 3] [--device cpu]

probe_every_block (core.transfer.probe) runs the dataset once through EfficientNet-Lite0, keeping the
pooled output of all 18 probe points, and trains 18 linear probes. The baseline is what a user would
otherwise run to get one number for the top layer: fit() with strategy "feature-extractor", its default
5 epochs and embedding cache (one pass of the backbone, then epochs that train only the head), the same
dataset scan, input size, batch size and device, drained with run_to_end into a fresh run folder (its
checkpoints, logs and confusion matrix included). Both build their model from the bundled pretrained
weights inside the timed call.

Rounds alternate (probe, FE, probe, FE, ...) so a busy phase of a shared machine slows both alike; round 0
is a warm-up and not counted. It prints the median of each, the median of the per-round ratios probe/FE
against the target (probe <= 3 × FE: all 18 depths for at most three times the price of the top one),
and how the probe's time splits between the forward pass and the probes.
Data: the bundled animal silhouettes (5 classes) written as an image folder in a temp directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cnn_explorer.core.data import scan_dataset, write_animal_dataset
from cnn_explorer.core.training import TrainConfig, fit, run_to_end
from cnn_explorer.core.transfer.probe import probe_every_block

TARGET_RATIO = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224, help="input crop (default 224, Lite0's own)")
    parser.add_argument("--per-class", type=int, default=40, help="images per class, 5 classes (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after a warm-up (default 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_probe_") as tmp:
        root = write_animal_dataset(Path(tmp) / "shapes", per_class=args.per_class)
        scan = scan_dataset(root)
        print(
            f"efficientnet_lite0 on {args.device}, {args.image_size} px, batch {args.batch_size}: "
            f"{len(scan.train)} training + {len(scan.val)} validation images, {scan.num_classes} classes"
        )
        probe_s: list[float] = []
        fe_s: list[float] = []
        ratios: list[float] = []
        split: list[tuple[float, float]] = []
        for round_ in range(args.rounds + 1):
            start = time.perf_counter()
            report = probe_every_block(
                scan,
                "efficientnet_lite0",
                image_size=args.image_size,
                batch_size=args.batch_size,
                device=args.device,
                allow_download=False,
            )
            t_probe = time.perf_counter() - start

            config = TrainConfig(
                data=str(root),
                strategy="feature-extractor",
                image_size=args.image_size,
                batch_size=args.batch_size,
                device=args.device,
                allow_download=False,
            )
            start = time.perf_counter()
            _, summary = run_to_end(fit(config, Path(tmp) / f"run{round_}", scan=scan))
            t_fe = time.perf_counter() - start
            if summary.status != "finished":
                raise SystemExit(f"the feature-extractor run ended {summary.status}: {summary.message}")

            best = report.best
            tag = "warm-up" if round_ == 0 else f"round {round_}"
            print(
                f"  {tag:8s} probe {t_probe:6.1f} s (features {report.feature_seconds:.1f} s, probes "
                f"{report.probe_seconds:.2f} s; best {best.layer if best else '-'})   FE {t_fe:6.1f} s   "
                f"ratio {t_probe / t_fe:.2f}"
            )
            if round_ == 0:
                continue
            probe_s.append(t_probe)
            fe_s.append(t_fe)
            ratios.append(t_probe / t_fe)
            split.append((report.feature_seconds, report.probe_seconds))

    ratio = statistics.median(ratios)
    print(f"probe_every_block (18 layers):  median {statistics.median(probe_s):.1f} s")
    print(f"feature-extractor fit, 5 epochs: median {statistics.median(fe_s):.1f} s")
    print(
        f"  of the probe: forward pass median {statistics.median(s[0] for s in split):.1f} s, "
        f"18 linear probes median {statistics.median(s[1] for s in split):.2f} s"
    )
    verdict = "OK" if ratio <= TARGET_RATIO else "SLOWER THAN TARGET"
    print(f"median ratio probe / FE: {ratio:.2f}  (target <= {TARGET_RATIO:g}): {verdict}")


if __name__ == "__main__":
    main()
