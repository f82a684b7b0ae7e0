"""The ``architectures`` subcommand: the architecture gallery as a table, and every fact as JSON.

    cnn-explorer architectures                 # the table, oldest paper first
    cnn-explorer architectures --json facts.json

Exit codes: 0 success, 2 unusable input (a --json path that cannot be written).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from cnn_explorer.cli_train import EXIT_BAD_INPUT, EXIT_OK
from cnn_explorer.core.architectures import ArchitectureFacts, all_architecture_facts
from cnn_explorer.core.runs import write_json_atomic

JSON_FORMAT = "cnn-explorer-architectures/1"
IDEAS_WIDTH = 108  # characters per line of the key ideas under each row


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``architectures`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "architectures",
        help="the architecture gallery: year, depth, parameters, cost, ImageNet accuracy, key ideas",
        description=(
            "Print every zoo architecture, oldest paper first: year, depth (convolutions + fully connected "
            "layers of the zoo's build), parameters, multiply-adds at its input size, ImageNet top-1/top-5 "
            "with their source, and the ideas that made it matter."
        ),
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every fact to FILE (JSON)")
    p.set_defaults(func=run_architectures)


def _millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _giga(n: int) -> str:
    return f"{n / 1e9:.2f} G" if n >= 1e8 else f"{n / 1e6:.1f} M"


def _acc(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f} %"


def format_table(facts: list[ArchitectureFacts]) -> str:
    """The gallery as text: one row per model, its key ideas below it, the accuracy sources at the end."""
    sources: list[str] = []
    rows = []
    for f in facts:
        if f.accuracy_source not in sources:
            sources.append(f.accuracy_source)
        rows.append(
            (
                f.title,
                str(f.year),
                str(f.depth),
                _millions(f.params),
                f"{100 * f.fc_share:.0f} %",
                _giga(f.macs),
                _acc(f.top1),
                _acc(f.top5),
                f"[{sources.index(f.accuracy_source) + 1}]",
            )
        )
    header = ("model", "year", "depth", "params", "in FC", "MACs", "top-1", "top-5", "source")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {1, 2, 3, 4, 5, 6, 7}

    def line(cells: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    for f, row in zip(facts, rows, strict=True):
        out.append(line(row))
        out.extend(
            textwrap.wrap(
                "; ".join(f.key_ideas), IDEAS_WIDTH, initial_indent="    ideas: ", subsequent_indent=" " * 11
            )
        )
    out.append("")
    out.append(f"MACs: multiply-adds for one image at the model's input size ({', '.join(_sizes(facts))}).")
    out.append(
        "Depth: every Conv2d + Linear of the zoo's build (no auxiliary heads); papers may count otherwise."
    )
    out.append("Accuracy (ImageNet-1K validation):")
    out.extend(f"  [{i}] {s}" for i, s in enumerate(sources, 1))
    return "\n".join(out)


def _sizes(facts: list[ArchitectureFacts]) -> list[str]:
    sizes = sorted({f.input_size for f in facts}, reverse=True)
    return [f"{s}×{s}" for s in sizes]


def run_architectures(args: argparse.Namespace) -> int:
    facts = all_architecture_facts()
    if args.json is not None:
        data = {"format": JSON_FORMAT, "architectures": [f.to_dict() for f in facts]}
        try:
            write_json_atomic(args.json, data)
        except OSError as exc:
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    print(format_table(facts))
    if args.json is not None:
        print(f"\nwrote {args.json}")
    return EXIT_OK
