"""The ``export`` subcommand: write a model as TorchScript, ONNX or safetensors, verified (core.export).

``cnn-explorer export (RUN_DIR | --model NAME [--weights FILE]) --format onnx|torchscript|safetensors
--out FILE`` writes FILE and FILE's ``.json`` description beside it, reloads FILE, compares it with the
original model on the bundled photos (or the run's validation images) and prints the verification line.
Exit codes: 0 exported and verified; 1 written but the verification failed (the files are kept and say
so), or a disk that filled up; 2 unusable input (run folder, model, weights, format, target folder), with one
line ``error: ...`` naming it; 130 stopped with Ctrl+C (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnn_explorer.cli_train import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ctrl_c_cancels
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.export import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportError,
    Stage,
    check_target,
    export_model,
    resolve_export_source,
)
from cnn_explorer.core.outdir import is_disk_full, write_failure


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "export",
        help="export a model (zoo, weights file or fine-tuned run) to TorchScript, ONNX or safetensors, "
        "verified against the original",
        description=(
            "Write the model of RUN_DIR (its best.pt) or --model NAME [--weights FILE] as --format to --out, "
            "with a .json description beside it (class names, preprocessing, architecture, weights' origin). "
            "The written file is reloaded and compared with the original on sample images: the exit code "
            "is 1 when their logits differ by more than 1e-4 or a top-1 prediction differs."
        ),
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", type=Path, help="a fine-tuning run folder")
    p.add_argument("--model", help="zoo model name (offline: the bundled or cached weights, else untrained)")
    p.add_argument("--weights", metavar="FILE", type=Path, help="a weights file or compressed variant")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="the file to write")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    p.add_argument("--trust-code", action="store_true", help="allow a TorchScript --weights file to run")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    err = sys.stderr

    def progress(event: object) -> None:
        if not args.quiet and isinstance(event, Stage):
            print(f"{event.step.capitalize()}: {event.detail}", file=err, flush=True)

    control = Control(report=progress)
    try:
        if args.run_dir is not None and (args.model or args.weights):
            raise ExportError("give either RUN_DIR or --model/--weights, not both")
        if args.run_dir is None and not (args.model or args.weights):
            raise ExportError("say what to export: RUN_DIR, or --model NAME [--weights FILE]")
        out = check_target(args.out)  # refused before a model is loaded
        with ctrl_c_cancels(control, "step"):
            source = resolve_export_source(
                args.run_dir,
                model=args.model,
                weights=args.weights,
                trust_code=args.trust_code,
                control=control,
            )
            for note in source.notes:
                print(f"note: {note}", file=err)
            result = export_model(
                source.loaded,
                args.format,
                out,
                images=source.images,
                images_source=source.images_source,
                origin=source.origin,
                opset=args.opset,
                control=control,
            )
    except ExportError as exc:
        cause = exc.__context__ or exc.__cause__
        print(f"error: {exc}", file=err)
        return EXIT_FAILED if is_disk_full(cause) else EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        print("Stopped; nothing was written.", file=err)
        return EXIT_INTERRUPTED
    except OSError as exc:
        why = write_failure(exc)
        print(f"error: cannot write {exc.filename or args.out}: {why}", file=err)
        return EXIT_FAILED

    how = ", ".join(f"{k} {v}" for k, v in result.how.items() if isinstance(v, (str, int, bool)))
    print(f"Wrote {result.path} ({result.size_bytes / 2**20:.1f} MiB; {how}) and {result.model_json.name}")
    print(result.verification.line())
    return EXIT_OK if result.passed else EXIT_FAILED
