"""The ``code`` subcommand: write the plain PyTorch behind a page (core.codegen), as its Code panel shows it.

    cnn-explorer code lab [the lab's options: --example KEY | --matrix TEXT | --image PATH, --conv, ...,
                          --backward KIND] --out FILE.py
    cnn-explorer code explore --model NAME --layer L [--image PATH] [--weights FILE] [--gradcam] [--top-k K]
                          [--untrained] --out FILE.py
    cnn-explorer code RUN_DIR --out FOLDER        writes FOLDER/train.py and FOLDER/predict.py

The first word picks the page (a folder that is not ``lab`` or ``explore`` is a run). ``lab`` takes the
options of ``cnn-explorer lab`` (without --json and --png). Exit codes: 0 written; 1 the disk failed;
2 unusable input (settings, model, layer, run folder, output path), with one line ``error: ...`` naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnn_explorer.cli_train import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from cnn_explorer.core.outdir import OutputDirError, is_disk_full, prepare_output_dir, write_failure

DEFAULT_IMAGE = Path(__file__).resolve().parent.parent / "assets" / "chelsea.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``code`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "code",
        help="write the plain PyTorch behind the lab, the explorer or a fine-tuning run",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", metavar="lab|explore|RUN_DIR", help="the page: lab, explore, or a run folder")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="that page's options, then --out")
    p.set_defaults(func=run_code_command)


def _lab_parser() -> argparse.ArgumentParser:
    """cnn-explorer lab's own options (one definition: cli_lab's), without its --json/--png outputs."""
    from cnn_explorer import cli_lab

    holder = argparse.ArgumentParser(add_help=False).add_subparsers()
    cli_lab.register(holder)
    parser = holder.choices["lab"]
    parser.prog = "cnn-explorer code lab"
    for action in parser._actions:
        if action.dest == "json":
            action.required = False
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.py", help="where to write the code")
    return parser


def _explore_parser() -> argparse.ArgumentParser:
    from cnn_explorer.core import zoo

    p = argparse.ArgumentParser(prog="cnn-explorer code explore")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL)
    p.add_argument("--layer", required=True, help='a module name, e.g. layer2.0; "#2" for its second call')
    p.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="default: the bundled chelsea.png")
    p.add_argument("--weights", type=Path, help="a weights file (state_dict .pt/.pth/.safetensors)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--gradcam", action="store_true", help="add Grad-CAM for the top class")
    p.add_argument("--untrained", action="store_true", help="random weights (seeded), no pretrained ones")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.py")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnn-explorer code RUN_DIR")
    p.add_argument("--out", type=Path, required=True, metavar="FOLDER", help="gets train.py and predict.py")
    return p


class _BadInput(Exception):
    pass


def _lab_code(args: argparse.Namespace) -> str:
    from cnn_explorer import cli_lab
    from cnn_explorer.core.codegen import LabImageSource, lab_code
    from cnn_explorer.core.lab import course_example, run_lab

    try:
        if args.example is not None:
            try:
                example = course_example(args.example)
            except ValueError as exc:
                raise _BadInput(str(exc)) from None
            x, settings, source = example.input, example.settings, example.input
        else:
            x, _ = cli_lab.lab_input(args)
            settings, _ = cli_lab.lab_settings(args, x)
            source = x
            if args.image is not None:
                size = cli_lab.DEFAULT_IMAGE_SIZE if args.size is None else args.size
                source = LabImageSource(args.image.expanduser().resolve(), args.channels or "gray", size)
        upstream: object = "ones"
        if args.backward is not None:
            shape = run_lab(x, settings).output.shape
            upstream = cli_lab.lab_upstream(args.backward, shape, args.seed)
        return lab_code(settings, source, backward=args.backward is not None, upstream=upstream)
    except cli_lab.BadLabInput as exc:
        raise _BadInput(str(exc)) from None
    except ValueError as exc:
        raise _BadInput(str(exc)) from None


def _explore_code(args: argparse.Namespace) -> str:
    from cnn_explorer.core import zoo
    from cnn_explorer.core.codegen import explorer_code

    if not args.image.is_file():
        raise _BadInput(f"--image {args.image}: no such file")
    try:
        return explorer_code(
            args.model,
            weights_path=args.weights,
            layer=args.layer,
            image_path=args.image,
            top_k=args.top_k,
            gradcam=args.gradcam,
            pretrained=False if args.untrained else None,
        )
    except (ValueError, zoo.ModelLoadError) as exc:
        raise _BadInput(str(exc)) from None


def _write(path: Path, text: str) -> None:
    from cnn_explorer.core.runs import write_bytes_atomic

    write_bytes_atomic(path, text.encode("utf-8"))


def run_code_command(args: argparse.Namespace) -> int:
    err = sys.stderr
    what, rest = args.what, list(args.rest)
    try:
        if what == "lab":
            sub = _lab_parser().parse_args(rest)
            files = {sub.out: _lab_code(sub)}
        elif what == "explore":
            sub = _explore_parser().parse_args(rest)
            files = {sub.out: _explore_code(sub)}
        else:
            from cnn_explorer.core.codegen import run_code

            sub = _run_parser().parse_args(rest)
            run = Path(what).expanduser()
            if not (run / "config.json").is_file():
                raise _BadInput(
                    f"{run} is not a run folder (no config.json); the first word is lab, explore or a run"
                )
            try:
                code = run_code(run)
            except ValueError as exc:
                raise _BadInput(str(exc)) from None
            out = prepare_output_dir(sub.out)
            files = {out / name: text for name, text in code.items()}
        for path in files:
            if path.is_dir():
                raise _BadInput(f"--out {path} is a folder; name a file such as {path / 'code.py'}")
            prepare_output_dir(path.parent)
    except (_BadInput, OutputDirError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except SystemExit as exc:  # argparse already said what was wrong with the options
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    for path, text in files.items():
        try:
            _write(path, text)
        except OSError as exc:
            why = write_failure(exc)
            print(f"error: cannot write {path}: {why}", file=err)
            return EXIT_FAILED if is_disk_full(exc) else EXIT_BAD_INPUT
        print(f"Wrote {path}")
    return EXIT_OK
