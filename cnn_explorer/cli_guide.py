"""The ``recommend`` subcommand: the course's transfer-learning guide for a dataset folder.

``cnn-explorer recommend DATA [--model NAME] [--similar yes|no|auto]`` scans DATA, counts its usable images,
estimates whether they look like ImageNet's photos (``--similar auto``, the default) and prints the guide's
case, strategy and reason (and, for case 3, the layer to cut at). Exit codes: 0 ok; 2 unusable input
(unknown model, a folder that is not a dataset, no readable image); 130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnn_explorer.cli_train import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError, scan_dataset
from cnn_explorer.core.transfer.guide import GUIDE_GRID, recommend_for_model
from cnn_explorer.core.transfer.similarity import SimilarityError, estimate_similarity


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``recommend`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "recommend",
        help="which transfer-learning strategy suits a dataset (the course's guide)",
        description=(
            "Recommend a transfer-learning strategy for DATA, a folder with one sub-folder of images per "
            "class, from its size (small: fewer than 5,000 images) and its similarity to ImageNet "
            "(estimated from the pretrained classifier's confidence unless --similar says)."
        ),
    )
    p.add_argument("data", metavar="DATA", type=Path, help="dataset folder")
    p.add_argument("--model", default=zoo.DEFAULT_MODEL, help=f"model name (default {zoo.DEFAULT_MODEL})")
    p.add_argument(
        "--similar",
        choices=("yes", "no", "auto"),
        default="auto",
        help="are the pictures like ImageNet's photos? auto: estimate it (default)",
    )
    p.add_argument("--offline", action="store_true", help="never download pretrained weights")
    p.set_defaults(func=run_recommend)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def run_recommend(args: argparse.Namespace) -> int:
    err, out = sys.stderr, sys.stdout
    control = Control()
    try:
        zoo.get_info(args.model)  # before the scan: a typo in the name should not wait for it
        try:
            scan = scan_dataset(args.data, control=control)
        except DatasetError as exc:
            text = _one_line(exc)
            where = (
                ""
                if str(args.data) in text or str(Path(args.data).expanduser()) in text
                else f"{args.data}: "
            )
            print(f"error: {where}{text}", file=err)
            return EXIT_BAD_INPUT
        n_images = len(scan.train) + len(scan.val)
        bad = f", {len(scan.bad_files)} unreadable file(s) skipped" if scan.bad_files else ""
        print(f"{scan.root}: {n_images:,} usable images in {scan.num_classes} classes{bad}", file=out)
        if args.similar == "auto":
            estimate = estimate_similarity(
                scan, model_name=args.model, allow_download=not args.offline, control=control
            )
            print(f"Similarity: {estimate.reason}", file=out)
            similar = estimate.similar
        else:
            similar = args.similar == "yes"
        rec = recommend_for_model(n_images, similar, args.model)
    except zoo.ModelLoadError as exc:
        print(f"error: {_one_line(exc)}", file=err)
        return EXIT_BAD_INPUT
    except SimilarityError as exc:
        print(f"error: {args.data}: {_one_line(exc)}", file=err)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        print("Stopped.", file=err)
        return EXIT_INTERRUPTED
    cell = GUIDE_GRID[rec.case]
    print(f"Case {int(rec.case)}: {cell.title} — {cell.text}", file=out)
    print(f"Strategy: {rec.strategy}", file=out)
    if rec.cut_layer is not None:
        print(
            f"Cut layer: {rec.cut_layer} (the linear classifier reads this layer's pooled features)", file=out
        )
    if rec.alternative is not None:
        print(f"Alternative: {rec.alternative}", file=out)
    print(f"Why: {rec.reason}", file=out)
    return EXIT_OK
