"""The ``compress`` subcommand: pruning and quantization of a fine-tuned run or a zoo model, each variant
measured (core.compress).

``cnn-explorer compress (RUN_DIR | --model NAME [--weights FILE]) [--data DIR] [--prune SPARSITY]
[--structured] [--finetune-epochs N] [--quantize int8-dynamic|int8-static|fp16] [--sweep] --out DIR``
makes the variants, prints one table (size on disk, non-zero parameters, CPU latency at batch 1 against
the original's, accuracy or agreement) and writes DIR/report.json, DIR/compressed/<variant>.pt (each
reopens in the explorer) and the plots. Exit codes as the other commands: 0 done; 1 failed (a disk that
filled up included); 2 unusable input or an unsupported combination, with one line ``error: ...`` naming
it; 130 stopped with Ctrl+C (nothing half-written is left).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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
from cnn_explorer.core.compress import (
    QUANTIZE_MODES,
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    CompressStage,
    check_request,
    run_compression,
)
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir, write_failure

_INPUT_ERRORS = (CompressError, DatasetError, OutputDirError, zoo.ModelLoadError)
REPORT_NAME = "report.json"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compress`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "compress",
        help="prune and quantize a fine-tuned run or a zoo model; size, latency and accuracy of each variant",
        description=(
            "Make pruned and quantized variants of a model and measure each one: its file's size on disk, "
            "its non-zero parameters, its CPU latency at batch 1 (interleaved with the original) and its "
            "accuracy (a run's validation split, or a labelled --data folder) or, without labels, its "
            "agreement with the original's top-1 and top-5 (on --data, or the bundled photos). Writes "
            f"{REPORT_NAME}, compressed/<variant>.pt and the plots into --out."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", type=Path, help="a fine-tuned run folder")
    p.add_argument("--model", help="a zoo model instead of a run (see `cnn-explorer models`)")
    p.add_argument("--weights", type=Path, help="a weights file for --model")
    p.add_argument(
        "--data", type=Path, help="images to judge the variants on: labelled (class folders) or not"
    )
    p.add_argument("--prune", type=float, metavar="SPARSITY", help="share of weights to remove, e.g. 0.5")
    p.add_argument("--structured", action="store_true", help="prune whole conv channels (L1) instead")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune after pruning (needs labels)")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, help="int8 (dynamic or static) or fp16 weights")
    p.add_argument("--sweep", action="store_true", help="also measure 0–90%% global pruning")
    p.add_argument("--calibration-batches", type=int, default=4, help="batches for static int8 (default 4)")
    p.add_argument("--latency-runs", type=int, default=20, help="timed runs per variant (default 20)")
    p.add_argument("--out", metavar="DIR", type=Path, required=True, help="folder for the report and models")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_compress)


class _Progress:
    """One line per stage on a terminal (overwritten), a plain line every few seconds in a log."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and is_terminal(sys.stderr)
        self.last_line = 0.0
        self.last_text = ""

    def __call__(self, event: object) -> None:
        if self.quiet or not isinstance(event, CompressStage):
            return
        line = f"[{event.done}/{event.total}] {event.text}"
        if self.live:
            print(f"\r{line[:100]:<100}", end="", file=sys.stderr, flush=True)
        elif event.text != self.last_text or time.monotonic() - self.last_line >= PLAIN_PROGRESS_EVERY_S:
            print(line, file=sys.stderr, flush=True)
            self.last_line = time.monotonic()
        self.last_text = event.text

    def close(self) -> None:
        if self.live and self.last_text:
            print(file=sys.stderr)
        self.last_text = ""


def _source(args: argparse.Namespace) -> CompressSource:
    if (args.run_dir is None) == (args.model is None):
        raise CompressError("give either a run folder (RUN_DIR) or --model NAME, not both and not neither")
    if args.weights is not None and args.model is None:
        raise CompressError("--weights needs --model (a run folder brings its own weights)")
    return CompressSource(
        run_dir=args.run_dir.expanduser() if args.run_dir is not None else None,
        model=args.model,
        weights=args.weights.expanduser() if args.weights is not None else None,
        data=args.data.expanduser() if args.data is not None else None,
    )


def _spec(args: argparse.Namespace) -> CompressSpec:
    if args.structured and args.prune is None:
        raise CompressError("--structured needs --prune SPARSITY (the share of channels to remove)")
    if args.finetune_epochs and args.prune is None:
        raise CompressError("--finetune-epochs fine-tunes after pruning: give --prune SPARSITY too")
    if args.finetune_epochs < 0 or args.calibration_batches < 1 or args.latency_runs < 1:
        raise CompressError("--finetune-epochs must be ≥ 0, --calibration-batches and --latency-runs ≥ 1")
    return CompressSpec(
        prune=args.prune,
        structured=args.structured,
        finetune_epochs=args.finetune_epochs,
        quantize=args.quantize,
        sweep=args.sweep,
        calibration_batches=args.calibration_batches,
        latency_runs=args.latency_runs,
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def report_table(report: CompressReport) -> str:
    """One line per variant: size (and how many times smaller), non-zero parameters, latency, quality."""
    base = report.variants[0] if report.variants else None
    quality = "accuracy" if report.metric == "accuracy" else "agree top-1 / top-5"
    width = max(len("variant"), *(len(v.name) for v in report.variants)) if report.variants else 7
    head = (
        f"  {'variant':<{width}}  {'size':>10} {'smaller':>8}  {'non-zero':>11}  {'latency':>9} {'ratio':>6}"
    )
    lines = [f"{head}  {quality}"]
    for v in report.variants:
        smaller = base.size_bytes / v.size_bytes if base is not None and v.size_bytes else float("nan")
        if report.metric == "accuracy":
            q = f"{v.accuracy:.1%}" if v.accuracy is not None else "—"
        else:
            t1 = f"{v.agreement_top1:.1%}" if v.agreement_top1 is not None else "—"
            t5 = f"{v.agreement_top5:.1%}" if v.agreement_top5 is not None else "—"
            q = f"{t1} / {t5}"
        lines.append(
            f"  {v.name:<{width}}  {_size(v.size_bytes):>10} {smaller:>7.1f}×  {v.nonzero_params:>11,}  "
            f"{v.latency_ms_median:>6.1f} ms {v.latency_ratio:>5.2f}×  {q}"
        )
    return "\n".join(lines)


def run_compress(args: argparse.Namespace) -> int:
    err = sys.stderr
    progress = _Progress(args.quiet)
    control = Control(report=progress)
    try:
        source, spec = _source(args), _spec(args)
        check_request(source, spec)  # everything that can be refused quickly, before any work
        out = prepare_output_dir(args.out)
        with ctrl_c_cancels(control, "step"):
            report = run_compression(source, spec, out, control=control)
        progress.close()
    except _INPUT_ERRORS as exc:
        progress.close()
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        print("Stopped; no half-written file was left.", file=err)
        return EXIT_INTERRUPTED
    except OSError as exc:
        progress.close()
        why = write_failure(exc)
        print(f"error: cannot write {exc.filename or args.out}: {why}", file=err)
        return EXIT_FAILED

    what = "accuracy" if report.metric == "accuracy" else "agreement with the original"
    print(f"{report.base}: {len(report.variants)} variants, {what} on {report.images} images")
    if report.quantization_flow:
        print(f"quantization: {report.quantization_flow}")
    print(report_table(report))
    for note in report.notes:
        print(f"note: {note}")
    if report.sweep:
        points = ", ".join(f"{p.sparsity:.0%}: {p.quality:.1%}" for p in report.sweep)
        print(f"sweep ({report.metric}): {points}")
    print(f"Wrote {out / REPORT_NAME} and {out / 'compressed'}")
    return EXIT_OK
