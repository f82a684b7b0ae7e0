"""The ``probe`` subcommand: a linear probe on every block of a pretrained model (core.transfer.probe).

``cnn-explorer probe DATA --out DIR`` runs DATA's images through the model once, trains a linear classifier
on each probe point's pooled features, prints validation accuracy against depth (the best layer marked)
and writes DIR/probes.csv and DIR/probes.png. Exit codes as the other commands: 0 done; 1 failed (a disk
that filled up included); 2 unusable input (dataset, model, settings, output folder), with one line
``error: ...`` naming it; 130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cnn_explorer.cli_train import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PLAIN_PROGRESS_EVERY_S,
    ctrl_c_cancels,
    is_terminal,
)
from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError, ScanProgress, scan_dataset
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir, write_failure
from cnn_explorer.core.train_config import ConfigError, resolve_device
from cnn_explorer.core.transfer.probe import (
    ProbeError,
    ProbeProgress,
    probe_every_block,
    write_probe_csv,
    write_probe_png,
)
from cnn_explorer.core.transfer.results import ProbeReport

_INPUT_ERRORS = (DatasetError, ConfigError, ProbeError, OutputDirError, zoo.ModelLoadError)
CSV_NAME, PNG_NAME = "probes.csv", "probes.png"
_TITLES = {
    "listing": "Listing folders",
    "checking": "Checking images",
    "features": "Features",
    "probes": "Training probes",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``probe`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "probe",
        help="train a linear probe on every block of a pretrained model: where do its features stop "
        "being generic for your images?",
        description=(
            "Run the images of DATA (DATA/<class>/*.jpg, or DATA/train/<class> + DATA/val/<class>) once "
            "through a pretrained model, train a linear classifier on the pooled output of each block and "
            f"report its validation accuracy against depth. Writes {CSV_NAME} and {PNG_NAME} into --out."
        ),
    )
    p.add_argument("data", metavar="DATA", help="dataset folder")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL, help=f"model name (default {zoo.DEFAULT_MODEL})")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="folder for the CSV and the chart")
    p.add_argument("--image-size", type=int, default=None, help="input crop in pixels (default: the model's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    p.add_argument("--offline", action="store_true", help="never download pretrained weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_probe)


class _Progress:
    """Scan and probe progress: a tqdm bar on a terminal, a plain line every few seconds in a log."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and is_terminal(sys.stderr)
        self.bar: tqdm | None = None
        self.phase = ""
        self.last_line = time.monotonic()

    def __call__(self, event: object) -> None:
        if self.quiet or not isinstance(event, (ScanProgress, ProbeProgress)):
            return
        phase = event.phase
        total = event.total or None
        if self.live:
            if self.bar is None or phase != self.phase:
                self.close()
                self.bar = tqdm(desc=_TITLES.get(phase, phase), total=total, leave=False, file=sys.stderr)
            self.bar.total = total
            self.bar.n = event.done
            self.bar.refresh()
        elif time.monotonic() - self.last_line >= PLAIN_PROGRESS_EVERY_S or (
            phase != self.phase and phase in ("features", "probes")
        ):
            self.last_line = time.monotonic()
            of = f"/{event.total}" if event.total else ""
            print(f"{_TITLES.get(phase, phase)}: {event.done}{of}", file=sys.stderr, flush=True)
        self.phase = phase

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _pct(x: float) -> str:
    return f"{x:6.1%}" if math.isfinite(x) else "   n/a"


def probe_table(report: ProbeReport) -> str:
    """Depth, layer, channels, training and validation accuracy, one line per probe point; best marked."""
    best = report.best
    width = max(len("layer"), *(len(r.layer) for r in report.rows))
    lines = [f"  depth  {'layer':<{width}}  channels  train acc  val acc"]
    for r in report.rows:
        mark = "  <- best" if best is not None and r is best else ""
        lines.append(
            f"  {r.depth:5d}  {r.layer:<{width}}  {r.channels:8d}     {_pct(r.train_accuracy)}   "
            f"{_pct(r.val_accuracy)}{mark}"
        )
    return "\n".join(lines)


def run_probe(args: argparse.Namespace) -> int:
    err = sys.stderr
    progress = _Progress(args.quiet)
    control = Control(report=progress)
    try:
        if args.image_size is not None and args.image_size < 16:
            raise ProbeError(f"--image-size must be at least 16 pixels, not {args.image_size}")
        if args.batch_size < 1:
            raise ProbeError(f"--batch-size must be at least 1, not {args.batch_size}")
        # everything that can be refused quickly is refused before the scan and the forward pass
        zoo.get_info(args.model)
        resolve_device(args.device)
        out = prepare_output_dir(args.out)
        with ctrl_c_cancels(control, "batch"):
            scan = scan_dataset(Path(args.data).expanduser(), seed=args.seed, control=control)
            progress.close()
            print(scan.summary())
            report = probe_every_block(
                scan,
                args.model,
                image_size=args.image_size,
                batch_size=args.batch_size,
                device=args.device,
                allow_download=not args.offline,
                seed=args.seed,
                control=control,
            )
        progress.close()
    except _INPUT_ERRORS as exc:
        progress.close()
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        print("Stopped; nothing was written.", file=err)
        return EXIT_INTERRUPTED

    _print_report(report)
    csv_path, png_path = out / CSV_NAME, out / PNG_NAME
    try:
        write_probe_csv(report, csv_path)
        write_probe_png(report, png_path)
    except OSError as exc:
        why = write_failure(exc)
        print(f"error: cannot write {exc.filename or out}: {why}", file=err)
        return EXIT_FAILED
    print(f"Wrote {csv_path}\nWrote {png_path}")
    return EXIT_OK


def _print_report(report: ProbeReport) -> None:
    print(
        f"Linear probes on every block of {report.model} at {report.image_size} px: "
        f"{report.n_train} training / {report.n_val} validation images, {len(report.class_names)} classes"
    )
    if report.skipped:
        print(f"note: {report.skipped} unreadable image(s) skipped", file=sys.stderr)
    print(probe_table(report))
    best = report.best
    chance = 1 / len(report.class_names) if report.class_names else float("nan")
    if best is None:
        print("No validation images: only the training accuracy is shown, and no layer is the best.")
    else:
        print(
            f"Best: {best.layer} (depth {best.depth} of {len(report.rows)}), validation accuracy "
            f"{best.val_accuracy:.1%} (chance {chance:.1%})"
        )
    print(
        f"One pass over the images: {report.feature_seconds:.1f} s "
        f"({report.feature_bytes / 2**20:.1f} MiB of pooled features); "
        f"{len(report.rows)} probes: {report.probe_seconds:.1f} s"
    )
