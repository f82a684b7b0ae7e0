"""The ``finetune`` and ``predict`` subcommands: the fine-tuning engine of core.training, in a terminal.

``cli.py`` calls :func:`register` with its subparsers; each command sets ``func`` to a function that takes the
parsed arguments and returns the process exit code:

- 0 success; 1 training diverged or failed (a disk that filled up included), or an image could not be read
  by ``predict``;
- 2 unusable input (dataset, settings, a run folder that cannot be written, model); 130 stopped with Ctrl+C
  (checkpoint kept).

On a terminal ``finetune`` shows tqdm bars; into a log (stderr not a terminal) it writes plain lines, one per
epoch and a progress line at most every PLAIN_PROGRESS_EVERY_S seconds, without carriage returns.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import Augmentation, DatasetError, DatasetScan, ScanProgress, scan_dataset
from cnn_explorer.core.distributed import SINGLE, DistContext, from_environment
from cnn_explorer.core.runs import RunDir, RunDirError, RunWriteError, check_new_run_folder, new_run_dir
from cnn_explorer.core.training import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    ConfigError,
    EpochEnd,
    FileSkipped,
    Finished,
    Notice,
    RunStarted,
    StepEnd,
    TrainConfig,
    ValidationStep,
    WatchFrame,
    fit,
    load_run_model,
    predict_files,
    resume,
)
from cnn_explorer.core.transfer.progress import (
    TrainingProgress,
    epoch_line,
    fmt_number,
    hardware_text,
    watch_line,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
PLAIN_PROGRESS_EVERY_S = 10.0  # without a terminal: a progress line at most this often
_INPUT_ERRORS = (DatasetError, ConfigError, RunDirError, zoo.ModelLoadError)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``finetune`` and ``predict`` to the main parser's subcommands."""
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a pretrained model on a folder of labelled images",
        description=(
            "Fine-tune a model on DATA, a folder with one sub-folder of images per class "
            "(DATA/<class>/*.jpg, split into train/val here) or DATA/train/<class> + DATA/val/<class>. "
            "The run folder receives config.json, metrics.csv, best.pt, last.pt, the confusion matrix "
            "and the misclassified validation images. Ctrl+C stops and keeps a checkpoint; "
            "--resume continues."
        ),
    )
    p.add_argument("data", nargs="?", metavar="DATA", help="dataset folder (not needed with --resume)")
    p.add_argument("--model", default=defaults.model, help=f"model name (default {defaults.model})")
    p.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy)
    p.add_argument("--epochs", type=int, default=None, help=f"number of epochs (default {defaults.epochs})")
    p.add_argument(
        "--out", metavar="RUN_DIR", type=Path, help="run folder (default runs/<time>_<model>_<strategy>)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument(
        "--top-blocks", type=int, default=defaults.top_blocks, help="blocks trained by fine-tune-top"
    )
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: chosen for the strategy)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    add_model_settings(p)
    p.add_argument(
        "--watch",
        metavar="IMAGE",
        type=Path,
        default=None,
        help="watch it learn: print this image's top prediction (Grad-CAM computed) after every epoch",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default=defaults.schedule)
    p.add_argument(
        "--step-epochs",
        type=int,
        default=defaults.step_epochs,
        help="step schedule: multiply the rate by --gamma every this many epochs (default 0: a third)",
    )
    p.add_argument("--gamma", type=float, default=defaults.gamma, help="step schedule's factor (default 0.1)")
    p.add_argument("--image-size", type=int, default=None, help="input crop in pixels (default: the model's)")
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default=None,
        help=f"where to train (default {defaults.device}; with --resume: the run's own device)",
    )
    p.add_argument(
        "--workers",
        type=workers_setting,
        default=None,
        metavar="N|auto",
        help="DataLoader worker processes that decode images (default auto: none for small sets or fewer "
        "than 4 cores, else one per CPU core but one, at most 8)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="arithmetic of the forward pass (default auto: bf16 or fp16 mixed precision on CUDA, else fp32)",
    )
    p.add_argument(
        "--no-channels-last",
        action="store_true",
        help="CUDA: keep the NCHW memory layout (channels-last is the default there)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        default="",
        help="where the embedding cache is kept (default: the user's cache folder); reused by later runs",
    )
    p.add_argument("--no-augment", action="store_true", help="no random crops/flips for training images")
    p.add_argument("--no-crop", action="store_true", help="no random resized crops (flips stay on)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips (crops stay on)")
    p.add_argument(
        "--crop-scale",
        type=float,
        default=Augmentation().crop_scale_min,
        help="smallest area fraction a random crop keeps (default %(default)s)",
    )
    p.add_argument("--rotation", type=float, default=0.0, help="random rotation in degrees")
    p.add_argument("--color-jitter", type=float, default=0.0, help="random brightness/contrast/saturation")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="feature-extractor / linear-probe: do not cache the frozen layers' output",
    )
    p.add_argument("--thorough-scan", action="store_true", help="decode every image before training")
    p.add_argument("--offline", action="store_true", help="never download pretrained weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_finetune)

    q = subparsers.add_parser(
        "predict",
        help="classify images with a fine-tuned model",
        description="Print the top-k classes with probabilities for each IMAGE, using RUN_DIR's best.pt "
        "(or a checkpoint file given directly).",
    )
    q.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="run folder or checkpoint file")
    q.add_argument("images", metavar="IMAGE", nargs="+", type=Path)
    q.add_argument("--top-k", type=int, default=5)
    q.add_argument("--checkpoint", choices=("best", "last"), default="best")
    q.add_argument(
        "--trust-code",
        action="store_true",
        help="allow a TorchScript model file: it is a program and runs its own code when opened",
    )
    q.set_defaults(func=run_predict)


def add_model_settings(p: argparse.ArgumentParser) -> None:
    """The settings that shape what trains and how (shared by ``finetune`` and ``lr-find``): the cut
    layer, the LR factor of earlier blocks, momentum, weight decay, dropout and label smoothing."""
    defaults = TrainConfig()
    p.add_argument(
        "--layer",
        metavar="NAME",
        default="",
        help="linear-probe: the layer whose pooled features the linear head reads (default: halfway up)",
    )
    p.add_argument(
        "--lr-mult",
        type=float,
        default=defaults.lr_mult,
        help="fine-tune-top/-all: the earliest trained block learns at this factor of the head's rate "
        f"(geometric in between; default {defaults.lr_mult:g}: one rate for all)",
    )
    p.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument(
        "--dropout", type=float, default=defaults.dropout, help="dropout before the new head while training"
    )
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)


def model_settings(args: argparse.Namespace) -> dict:
    """:func:`add_model_settings`' values as TrainConfig fields."""
    return dict(
        cut_layer=args.layer,
        lr_mult=args.lr_mult,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        label_smoothing=args.label_smoothing,
    )


def workers_setting(text: str) -> int | None:
    """``--workers``: a number of processes, or "auto" (None)."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the number of workers must not be negative")
    return value


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.no_augment:
        aug = Augmentation.none()
    else:
        aug = Augmentation(random_resized_crop=not args.no_crop, flip=not args.no_flip)
    aug.crop_scale_min, aug.rotation, aug.color_jitter = args.crop_scale, args.rotation, args.color_jitter
    return TrainConfig(
        data=str(Path(args.data).expanduser().resolve()),
        model=args.model,
        strategy=args.strategy,
        top_blocks=args.top_blocks,
        epochs=args.epochs if args.epochs is not None else TrainConfig().epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        watch_image=str(args.watch.expanduser().resolve()) if args.watch else "",
        schedule=args.schedule,
        step_epochs=args.step_epochs,
        gamma=args.gamma,
        augmentation=aug,
        cache_embeddings=not args.no_cache,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device or TrainConfig().device,
        num_workers=args.workers,
        precision=args.precision,
        channels_last=not args.no_channels_last,
        cache_dir=str(Path(args.cache_dir).expanduser().resolve()) if args.cache_dir else "",
        allow_download=not args.offline,
        **model_settings(args),
    )


@contextmanager
def ctrl_c_cancels(control: Control, unit: str = "step", dist: DistContext = SINGLE) -> Iterator[None]:
    """First Ctrl+C asks the work to stop after the current ``unit`` (a run saves a checkpoint); a second
    one aborts.

    Under torchrun the launcher passes a Ctrl+C on to every process as SIGINT (and SIGTERM when it shuts
    the job down): both ask for the stop, which the processes then agree on at the next step.
    """
    speak = dist.is_main

    def handler(signum, frame):
        if control.cancelled:
            raise KeyboardInterrupt
        control.cancel()
        if speak:
            tqdm.write(f"Stopping after this {unit} (Ctrl+C again to abort)…", file=sys.stderr)

    signals = [signal.SIGINT] + ([signal.SIGTERM] if dist.enabled else [])
    try:
        previous = {sig: signal.signal(sig, handler) for sig in signals}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_finetune(args: argparse.Namespace) -> int:
    """``finetune``: one process, or one of torchrun's (rank 0 talks, every rank trains)."""
    err = sys.stderr
    if args.resume and args.out is None:
        print("error: --resume needs --out RUN_DIR, the run to continue", file=err)
        return EXIT_BAD_INPUT
    if not args.resume and not args.data:
        print("error: give the dataset folder DATA (or --resume with --out RUN_DIR)", file=err)
        return EXIT_BAD_INPUT
    try:
        dist = from_environment(args.device or _resumed_device(args) or TrainConfig().device)
    except ConfigError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    try:
        return _finetune(args, dist)
    finally:
        dist.close()


def _resumed_device(args: argparse.Namespace) -> str | None:
    """The device a run to resume was trained on (its config.json), so that torchrun's processes join
    the process group the run used (gloo for CPUs, NCCL for GPUs); None when it cannot be read here."""
    if not args.resume or args.out is None:
        return None
    try:
        device = RunDir(args.out).read_config().get("device")
    except (RunDirError, OSError, AttributeError):
        return None
    return device if isinstance(device, str) else None


def _finetune(args: argparse.Namespace, dist: DistContext) -> int:
    err = sys.stderr
    speak = dist.is_main  # the other processes train silently: rank 0 reports for all
    quiet = args.quiet or not speak
    control = Control()
    again = "the same torchrun command with " if dist.enabled else ""
    try:
        with ctrl_c_cancels(control, dist=dist):
            if args.resume:
                events = resume(args.out, epochs=args.epochs, lr=args.lr, control=control, dist=dist)
            else:
                config = _config_from_args(args)
                config.validate()

                def new_folder() -> Path:
                    out = args.out or new_run_dir(Path("runs"), config.model, config.strategy)
                    return check_new_run_folder(out)  # refused before the scan, not after it

                out = dist.from_main(new_folder)
                scan = dist.from_main(lambda: scan_with_progress(config, quiet))
                if speak:
                    print(scan.summary())
                events = fit(config, out, scan=scan, control=control, dist=dist)
            return _drive(events, quiet) if speak else _drain(events)
    except RunWriteError as exc:  # the run had started: it failed (disk full), the input was fine
        _say_error(exc, dist)
        return EXIT_FAILED
    except _INPUT_ERRORS as exc:
        _say_error(exc, dist)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        if speak:
            print(
                f"Stopped. The last checkpoint is kept; continue with {again}--resume --out RUN_DIR.",
                file=err,
            )
        return EXIT_INTERRUPTED


def _say_error(exc: Exception, dist: DistContext) -> None:
    """An error that every process has (rank 0 found it) is said once, by rank 0; one that a single process
    met is said by that process, with its rank.

    Every process stops on a shared error, so they wait for each other and end together. torchrun sends
    SIGTERM to the processes still running once one has ended with an error, and would report them as
    killed instead of with their own exit code; waiting together narrows that race, and from then on each
    process, already on its way out, ignores that SIGTERM, so what torchrun reports is each one's own code
    (a barrier alone still lost the race about one run in ten: ``test_distributed``)."""
    shared = getattr(exc, "shared_by_ranks", False)
    if dist.is_main or not shared:
        prefix = "" if dist.is_main else f"[process {dist.rank}] "
        print(f"error: {prefix}{exc}", file=sys.stderr)
    if shared:
        dist.barrier()
        if dist.enabled:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (torchrun sends SIGKILL after 30 s regardless)


def _drain(events) -> int:
    """Train without a word (torchrun's processes other than rank 0)."""
    while True:
        try:
            next(events)
        except StopIteration as stop:
            return EXIT_OK if stop.value.status == "finished" else EXIT_FAILED


def is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def scan_with_progress(config: TrainConfig, quiet: bool) -> DatasetScan:
    live = not quiet and is_terminal(sys.stderr)
    bar = tqdm(desc="Checking images", unit="img", leave=False, file=sys.stderr) if live else None
    last_line = time.monotonic()

    def progress(event: object) -> None:
        nonlocal last_line
        if quiet or not isinstance(event, ScanProgress):
            return
        # while the folders are walked (phase "listing") the total is not known: show a count of entries
        listing = getattr(event, "phase", "checking") == "listing"
        if bar is not None:
            bar.set_description("Listing folders" if listing else "Checking images", refresh=False)
            bar.unit = "entry" if listing else "img"
            bar.total = None if listing or not event.total else event.total
            bar.n = event.done
            bar.refresh()
        elif time.monotonic() - last_line >= PLAIN_PROGRESS_EVERY_S:
            last_line = time.monotonic()
            text = (
                f"Listing folders: {event.done} entries"
                if listing
                else f"Checking images: {event.done}/{event.total}"
            )
            print(text, file=sys.stderr, flush=True)

    control = Control(report=progress)
    try:
        with ctrl_c_cancels(control):
            return scan_dataset(
                config.data, val_fraction=config.val_fraction, seed=config.seed, control=control
            )
    finally:
        if bar is not None:
            bar.close()


def _drive(events, quiet: bool) -> int:
    """Consume training events through the shared progress state: a bar, one line per epoch, the report."""
    bar: tqdm | None = None
    out = sys.stdout
    live = not quiet and is_terminal(sys.stderr)  # a log gets lines, not a bar redrawn with \r
    last_line = time.monotonic()
    progress = TrainingProgress()
    try:
        while True:
            try:
                ev = next(events)
            except StopIteration as stop:
                summary = stop.value
                break
            progress.update(ev)
            if isinstance(ev, RunStarted):
                print(
                    f"Run folder: {ev.run_dir}\n{ev.config.model}, {ev.config.strategy}, "
                    f"{ev.trainable_params:,} of {ev.total_params:,} parameters trained, "
                    f"{hardware_text(ev)}; {ev.n_train} training / {ev.n_val} validation images\n"
                    f"Starting weights: {ev.weights}",
                    file=out,
                )
                if ev.cache_path:
                    print(
                        f"Embedding cache: {ev.cache_path} (later runs on the same files reuse it)", file=out
                    )
                if live:
                    bar = tqdm(
                        total=progress.total_steps,
                        initial=progress.steps_done,
                        unit="step",
                        file=sys.stderr,
                        dynamic_ncols=True,
                    )
            elif isinstance(ev, StepEnd):
                if bar is not None:
                    bar.set_description(f"epoch {ev.epoch}", refresh=False)
                    bar.set_postfix(
                        loss=f"{ev.loss:.3f}",
                        lr=f"{ev.lr:.2g}",
                        img_s=f"{ev.images_per_s:.0f}",
                        refresh=False,
                    )
                    bar.update(progress.steps_done - bar.n)
                elif not quiet and time.monotonic() - last_line >= PLAIN_PROGRESS_EVERY_S:
                    last_line = time.monotonic()
                    print(
                        progress.step_line(),
                        file=sys.stderr,
                        flush=True,
                    )
            elif isinstance(ev, ValidationStep):
                if bar is not None:
                    bar.set_description(progress.where())
            elif isinstance(ev, EpochEnd):
                _write(epoch_line(ev), bar, out)
                last_line = time.monotonic()
            elif isinstance(ev, WatchFrame):
                _write(watch_line(ev), bar, out)
            elif isinstance(ev, (Notice, FileSkipped)):
                text = ev.message if isinstance(ev, Notice) else f"skipped unreadable {ev.path}: {ev.reason}"
                _write(f"note: {text}", bar, sys.stderr)
            elif isinstance(ev, Finished):
                if bar is not None:
                    bar.close()
                    bar = None
                print(ev.message, file=out if ev.status == "finished" else sys.stderr)
                if ev.confusion is not None and ev.status == "finished":
                    print(_per_class_table(ev.class_names, ev.per_class_acc), file=out)
                    print(f"Best model: {ev.run_dir / 'best.pt'}", file=out)
    finally:
        if bar is not None:
            bar.close()
    return EXIT_OK if summary.status == "finished" else EXIT_FAILED


def _write(line: str, bar: tqdm | None, stream) -> None:
    if bar is not None:
        tqdm.write(line, file=stream)
    else:
        print(line, file=stream, flush=True)  # a log being followed sees each epoch as it ends


def _per_class_table(names: list[str], acc) -> str:
    width = max(len(n) for n in names)
    rows = [f"  {n:<{width}}  {fmt_number(float(a), '{:.1%}')}" for n, a in zip(names, acc, strict=True)]
    return "Validation accuracy per class (best epoch):\n" + "\n".join(rows)


def run_predict(args: argparse.Namespace) -> int:
    try:
        if args.run_dir.is_file():
            loaded = zoo.load_model_file(args.run_dir, trust_code=args.trust_code)
        else:
            loaded = load_run_model(args.run_dir, which=args.checkpoint, trust_code=args.trust_code)
    except (RunDirError, zoo.ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.top_k < 1:
        print("error: --top-k must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in loaded.notes:  # e.g. the class names came from the run folder, or are missing
        print(f"note: {note}", file=sys.stderr)
    results = predict_files(loaded, args.images, top_k=args.top_k)
    width = max(len(c) for c in loaded.categories)
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            print(f"error: {r.error}", file=sys.stderr)
            continue
        print(r.path)
        for rank, (name, p) in enumerate(r.top, start=1):
            print(f"  {rank}. {name:<{width}}  {p:6.1%}")
    return EXIT_FAILED if failed else EXIT_OK
