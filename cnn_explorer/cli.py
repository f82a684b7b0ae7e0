"""Command line: no arguments opens the window; subcommands work without one."""

from __future__ import annotations

import argparse
import sys

from cnn_explorer import __version__
from cnn_explorer.core.allocator import keep_freed_memory


def _screenshot(args: argparse.Namespace) -> int:
    from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir

    try:
        prepare_output_dir(args.outdir)
    except OutputDirError as exc:
        print(f"cnn-explorer: {exc}", file=sys.stderr)
        return 2
    from cnn_explorer.qt.app import screenshot

    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        if len(size) != 2 or min(size) < 200:
            raise ValueError
    except ValueError:
        print(f"cnn-explorer: --size must look like 1400x900, not {args.size!r}", file=sys.stderr)
        return 2
    try:
        written = screenshot(args.outdir, image=args.image, size=size)  # type: ignore[arg-type]
    except RuntimeError as exc:
        print(f"cnn-explorer: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


# Subcommands whose modules import torch: registered only when the command line may need them, so that
# `--version`, `screenshot` and opening the window do not pay for it before they start.
_HEAVY_COMMANDS = (
    "models",
    "inspect",
    "finetune",
    "predict",
    "compare",
    "lab",
    "recommend",
    "probe",
    "lr-find",
    "architectures",
    "compress",
    "export",
    "code",
    "live",
)


def _needs_heavy_commands(argv: list[str]) -> bool:
    if any(arg in ("-h", "--help") for arg in argv):
        return True
    tokens = iter(argv)
    for arg in tokens:
        if arg == "--image":
            next(tokens, None)  # its value is not a command
        elif not arg.startswith("-"):
            return arg != "screenshot"
    return False


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnn-explorer",
        description="See inside convolutional neural networks. Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--image", metavar="PATH", help="open this image instead of the sample photo")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    shot = sub.add_parser("screenshot", help="render each page to a PNG (offscreen)")
    shot.add_argument("outdir", metavar="OUTDIR", help="folder for the PNGs (one per page, and compare.png)")
    shot.add_argument("--image", metavar="PATH", help="image to load instead of the sample photo")
    shot.add_argument("--size", default="1400x900", help="window size WIDTHxHEIGHT (default 1400x900)")
    shot.set_defaults(func=_screenshot)

    if _needs_heavy_commands(sys.argv[1:] if argv is None else argv):
        from cnn_explorer import (
            cli_architectures,
            cli_code,
            cli_compare,
            cli_compress,
            cli_explore,
            cli_export,
            cli_guide,
            cli_lab,
            cli_live,
            cli_lrfind,
            cli_probe,
            cli_train,
        )

        cli_explore.register(sub)
        cli_train.register(sub)
        cli_compare.register(sub)
        cli_lab.register(sub)
        cli_guide.register(sub)
        cli_lrfind.register(sub)
        cli_probe.register(sub)
        cli_architectures.register(sub)
        cli_compress.register(sub)
        cli_export.register(sub)
        cli_code.register(sub)
        cli_live.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    keep_freed_memory()  # forward passes reuse memory instead of faulting it in afresh
    if args.command is None:
        from cnn_explorer.qt.app import run_gui

        return run_gui(image=args.image)
    return int(args.func(args))
