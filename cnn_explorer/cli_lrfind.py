"""The ``lr-find`` subcommand: the learning-rate finder of core.transfer.lr_find, in a terminal.

``cli.py`` calls :func:`register` with its subparsers; the command's ``func`` returns the exit code:
0 a suggestion was found (and, with ``--out``, lr_find.csv and lr_find.png written); 1 the sweep failed (no
finite loss, a disk that filled up); 2 unusable input (dataset, model, settings, output folder); 130 Ctrl+C.
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
    add_model_settings,
    ctrl_c_cancels,
    is_terminal,
    model_settings,
    scan_with_progress,
)
from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir, write_failure
from cnn_explorer.core.training import OPTIMIZERS, STRATEGIES, ConfigError, TrainConfig
from cnn_explorer.core.transfer.lr_find import (
    LRFindProgress,
    check_sweep_settings,
    lr_find,
    write_lr_csv,
    write_lr_png,
)

CSV_NAME, PNG_NAME = "lr_find.csv", "lr_find.png"
_INPUT_ERRORS = (DatasetError, ConfigError, OutputDirError, zoo.ModelLoadError)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lr-find`` to the main parser's subcommands."""
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "lr-find",
        help="find a learning rate: a short sweep from tiny to huge learning rates",
        description=(
            "Train a throwaway copy of the model on DATA for a few steps while the learning rate grows "
            "exponentially from --start-lr to --end-lr, stopping when the loss diverges, and suggest a "
            "learning rate from the loss curve (Smith 2015; fastai's lr_find). With --out, the curve is "
            f"written to OUT/{CSV_NAME} and OUT/{PNG_NAME}."
        ),
    )
    p.add_argument("data", metavar="DATA", help="dataset folder (DATA/<class>/ or DATA/train + DATA/val)")
    p.add_argument("--model", default=defaults.model, help=f"model name (default {defaults.model})")
    p.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy)
    p.add_argument("--out", metavar="DIR", type=Path, help=f"folder for {CSV_NAME} and {PNG_NAME}")
    p.add_argument("--steps", type=int, default=100, help="training steps of the sweep (default 100)")
    p.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument(
        "--top-blocks", type=int, default=defaults.top_blocks, help="blocks trained by fine-tune-top"
    )
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--image-size", type=int, default=None, help="input crop in pixels (default: the model's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    add_model_settings(p)  # the same settings as finetune: the sweep trains what the run would
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=defaults.device)
    p.add_argument("--offline", action="store_true", help="never download pretrained weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_lr_find)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=str(Path(args.data).expanduser().resolve()),
        model=args.model,
        strategy=args.strategy,
        top_blocks=args.top_blocks,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        image_size=args.image_size,
        seed=args.seed,
        device=args.device,
        allow_download=not args.offline,
        **model_settings(args),
    )


class _Progress:
    """A tqdm bar on a terminal; into a log, a plain line at most every PLAIN_PROGRESS_EVERY_S seconds."""

    def __init__(self, steps: int, quiet: bool) -> None:
        self.quiet = quiet
        live = not quiet and is_terminal(sys.stderr)
        self.bar = tqdm(total=steps, desc="LR sweep", unit="step", file=sys.stderr) if live else None
        self.last_line = time.monotonic()

    def __call__(self, event: object) -> None:
        if self.quiet or not isinstance(event, LRFindProgress):
            return
        if self.bar is not None:
            self.bar.set_postfix(lr=f"{event.lr:.2g}", loss=f"{event.smoothed:.3f}", refresh=False)
            self.bar.update(event.step - self.bar.n)
        elif time.monotonic() - self.last_line >= PLAIN_PROGRESS_EVERY_S:
            self.last_line = time.monotonic()
            print(
                f"LR sweep: step {event.step}/{event.steps}, lr {event.lr:.3g}, loss {event.smoothed:.3f}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_lr_find(args: argparse.Namespace) -> int:
    err = sys.stderr
    progress: _Progress | None = None
    try:
        config = _config_from_args(args)
        config.validate()
        check_sweep_settings(args.steps, args.start_lr, args.end_lr)
        zoo.get_info(config.model)  # an unknown model is reported before the dataset is scanned
        out = prepare_output_dir(args.out) if args.out is not None else None
        scan = scan_with_progress(config, args.quiet)
        print(scan.summary())
        progress = _Progress(args.steps, args.quiet)  # after the scan's own bar has gone
        control = Control(report=progress)
        with ctrl_c_cancels(control):
            result = lr_find(
                config, scan, steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr, control=control
            )
        progress.close()
        ok = math.isfinite(result.suggestion)
        if ok:
            print(f"suggested learning rate: {result.suggestion:.3g}")
            print(result.reason)
        else:
            print(f"error: no learning rate could be suggested: {result.reason}", file=err)
        if out is not None:
            written = [write_lr_csv(result, out / CSV_NAME)]
            if ok:
                written.append(write_lr_png(result, out / PNG_NAME))
            print("Wrote " + ", ".join(str(p) for p in written))
        return EXIT_OK if ok else EXIT_FAILED
    except _INPUT_ERRORS as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        print("Stopped; no learning rate suggested.", file=err)
        return EXIT_INTERRUPTED
    except OSError as exc:  # writing the results
        why = write_failure(exc)
        print(f"error: cannot write {exc.filename or 'the results'}: {why}", file=err)
        return EXIT_FAILED
    finally:
        if progress is not None:
            progress.close()
