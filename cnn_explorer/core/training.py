"""Fine-tuning as a plain PyTorch loop that yields typed events.

``fit(config, run_dir)`` is a generator: iterate it to train. It yields :class:`RunStarted`, then per step
:class:`StepEnd`, per epoch :class:`EpochEnd` and :class:`CheckpointSaved`, and finally :class:`Finished`;
its return value (``StopIteration.value``) is the run's :class:`~cnn_explorer.core.runs.RunSummary`. The GUI
runs it through ``qt.workers.start_job`` and the CLI with a tqdm bar; both call this same function.

Pause and cancel are cooperative (``control.checkpoint()`` before every step). A cancelled run, or one whose
generator is closed, saves ``last.pt`` at the step it reached and can be resumed with :func:`resume`; a run
whose loss becomes NaN, infinite or many times too large stops with status "diverged" and keeps its last
good checkpoint. A file that cannot be written (disk full) stops the run with status "failed" and
:class:`~cnn_explorer.core.runs.RunWriteError`; the previous checkpoint stays intact. While it trains, the
process holds the run's lock file, so a run that was killed reads as "interrupted".

Strategies follow the usual transfer-learning guide: the feature extractor trains only a new linear head on
a frozen backbone (caching the backbone's embeddings, so epochs after the first cost only the head),
"fine-tune-top" also trains the top N backbone blocks, "fine-tune-all" trains everything from the
pretrained weights, "scratch" trains everything from random weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control, checkpoint
from cnn_explorer.core.data import Augmentation, Batch, DatasetScan, scan_dataset
from cnn_explorer.core.distributed import SINGLE, DistContext
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.runs import (
    DATASET_FILE,
    EpochMetrics,
    Misclassified,
    RunDir,
    RunDirError,
    RunSummary,
    RunWriteError,
    SilentRunDir,
    ValPrediction,
    WriteProblem,
    write_error,
)
from cnn_explorer.core.train_config import (
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    STRATEGY_TITLES,
    ConfigError,
    TrainConfig,
    lr_factor,
    resolve_device,
)
from cnn_explorer.core.training_setup import TrainingSetup, prepare_training, run_preprocess
from cnn_explorer.core.transfer.results import WatchFrame
from cnn_explorer.core.transfer.watch import Watcher

__all__ = [
    "DEVICES",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "STRATEGIES",
    "STRATEGY_TITLES",
    "ConfigError",
    "TrainConfig",
    "TrainingSetup",
    "WatchFrame",
    "fit",
    "prepare_training",
    "resolve_device",
    "resume",
    "run_to_end",
]

_STEP_LOG_EVERY = 20  # steps.csv rows are written in bunches
# Divergence by scale, not only NaN: with few steps per epoch a huge learning rate ends the run before
# the loss overflows. The baseline is the cross-entropy of an even guess, log(classes), which a new head
# starts near (or the session's first loss, if higher). Measured on the animal silhouettes, runs that still
# converge reach 28x it (a head at lr 0.1) and 280x (lr 1.0, 100x the default): a linear head's loss grows
# with the scale of its weights before it settles. A blown-up run is at 10^7x after one step (lr 1e9).
# Hence 1000x: for training, over a few steps in a row (one bad batch is not enough); for validation, once
# an epoch, against the larger of the baseline and the previous validation loss, so slow overfitting never
# counts. A validation loss that only rises is overfitting, not divergence, and is no reason to stop.
_DIVERGE_FACTOR = 1000.0
_DIVERGE_STEPS = 3


# -- events ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    run_dir: Path
    config: TrainConfig
    class_names: list[str]
    n_train: int
    n_val: int
    device: str
    weights: str  # where the starting weights came from
    steps_per_epoch: int
    total_steps: int
    start_epoch: int  # epochs already done (0 unless resumed)
    start_step: int  # steps already done in that epoch (resuming mid-epoch)
    trainable_params: int
    total_params: int
    cached: bool  # feature extractor with the embedding cache
    precision: str = "fp32"  # what the forward pass computes in: "fp32", "bf16" or "fp16" (autocast)
    channels_last: bool = False  # the images and the model are in NHWC memory layout (CUDA)
    num_workers: int = 0  # DataLoader worker processes of each training process
    world_size: int = 1  # training processes (torchrun); the batch is split among them
    cache_path: str = ""  # the embedding cache's folder on disk ("" in memory or none)


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not stop the run."""

    message: str


@dataclass(frozen=True)
class FileSkipped:
    """An image that failed to decode during training; skipped, reported once."""

    path: Path
    reason: str


@dataclass(frozen=True)
class StepEnd:
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps_per_epoch: int
    global_step: int  # 1-based over the run
    total_steps: int
    loss: float
    lr: float
    images_per_s: float  # smoothed
    eta_s: float  # seconds to the end of the run (estimate)


@dataclass(frozen=True)
class ValidationStep:
    epoch: int
    step: int
    steps: int


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # 1-based
    epochs: int
    train_loss: float  # mean over the epoch (with label smoothing, as optimised)
    train_acc: float
    val_loss: float  # plain cross-entropy
    val_acc: float
    lr: float  # at the end of the epoch
    images_per_s: float  # training images per second over the epoch
    seconds: float
    eta_s: float
    is_best: bool


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path
    kind: str  # "best" or "last"
    epoch: int


@dataclass(frozen=True)
class Finished:
    status: str  # "finished" or "diverged"
    message: str
    run_dir: Path
    best_epoch: int
    best_val_acc: float
    class_names: list[str]
    confusion: np.ndarray | None  # (C, C) of the best epoch, rows = true class
    per_class_acc: np.ndarray | None  # (C,), NaN for a class without validation images
    misclassified: list[Misclassified]
    predictions: list[ValPrediction]  # every readable validation image (filter by true/predicted for a cell)


TrainEvent = (
    RunStarted
    | Notice
    | FileSkipped
    | StepEnd
    | ValidationStep
    | EpochEnd
    | WatchFrame
    | CheckpointSaved
    | Finished
)


# -- public entry points ---------------------------------------------------------------------------------


def fit(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    scan: DatasetScan | None = None,
    control: Control | None = None,
    dist: DistContext = SINGLE,
) -> Generator[TrainEvent, None, RunSummary]:
    """Train ``config.model`` on ``config.data`` (or the given ``scan``) into the new folder ``run_dir``.

    Raises DatasetError / ConfigError / RunDirError / zoo.ModelLoadError before training for bad inputs,
    and Cancelled (after saving last.pt) when ``control`` is cancelled. Under torchrun (``dist``) every
    process calls this; rank 0 scans the dataset and creates the folder, and only rank 0 writes to it.
    """
    config.validate()
    # An unknown model or unavailable GPU is reported before the dataset is scanned or a folder made.
    zoo.get_info(config.model)
    resolve_device(config.device)
    if scan is None:
        data = config.data
        scan = dist.from_main(
            lambda: scan_dataset(data, val_fraction=config.val_fraction, seed=config.seed, control=control)
        )
    if not config.data:
        config = dataclasses.replace(config, data=str(scan.root))
    made = dist.from_main(lambda: RunDir.create(run_dir, config.to_dict(), scan.to_dict()).path)
    run = RunDir(made) if dist.is_main else SilentRunDir(made)
    with contextlib.ExitStack() as held:
        dist.from_main(lambda: held.enter_context(run.locked()))  # a refusal reaches every process
        summary = yield from _Trainer(run, config, scan, None, control, dist).run()
    return summary


def resume(
    run_dir: str | Path,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    control: Control | None = None,
    dist: DistContext = SINGLE,
) -> Generator[TrainEvent, None, RunSummary]:
    """Continue a stopped, interrupted, diverged, failed or finished run from its last.pt; ``epochs`` sets a
    new total. RunDirError if another process trains it or the folder cannot be written. Under torchrun
    rank 0 reads the run and sends its checkpoint to the others (the folder need only be on its machine)."""
    run = RunDir(run_dir) if dist.is_main else SilentRunDir(run_dir)

    def settings() -> TrainConfig:
        if not run.exists():
            raise RunDirError(f"{run.path} is not a run directory (config.json is missing).")
        config = TrainConfig.from_dict(run.read_config())
        if epochs is not None:
            config.epochs = int(epochs)
        if lr is not None:
            config.lr = float(lr)
        config.validate()
        if not run.last_checkpoint.is_file():
            raise RunDirError(
                f"{run.path} has no last.pt to resume from: the run stopped before saving anything. "
                "Start it again."
            )
        run.check_writable()
        return config

    config = dist.from_main(settings)
    with contextlib.ExitStack() as held:
        dist.from_main(lambda: held.enter_context(run.locked()))  # "in use": every process stops

        def starting_point() -> tuple[dict[str, Any], DatasetScan]:
            run.remove_stale_temp_files()  # of a checkpoint write that was killed
            state = zoo.read_checkpoint(run.last_checkpoint)
            if int(state.get("epoch", 0)) >= config.epochs and int(state.get("step", 0)) == 0:
                raise RunDirError(
                    f"The run in {run.path} has already done {state.get('epoch')} of {config.epochs} "
                    "epochs; give a larger number of epochs to continue it."
                )
            scan = DatasetScan.from_dict(run.read_dataset())
            try:
                run.write_config(config.to_dict())
            except RunWriteError as exc:  # nothing trained yet: the folder is unusable
                raise RunDirError(str(exc), exc.problem) from exc
            return state, scan

        state, scan = dist.from_main(starting_point)
        summary = yield from _Trainer(run, config, scan, state, control, dist).run()
    return summary


def run_to_end(events: Generator[TrainEvent, None, RunSummary]) -> tuple[list[TrainEvent], RunSummary]:
    """Drain a fit()/resume() generator: (every event, the summary). For scripts and tests."""
    collected: list[TrainEvent] = []
    while True:
        try:
            collected.append(next(events))
        except StopIteration as stop:
            return collected, stop.value


# -- the loop --------------------------------------------------------------------------------------------


@dataclass
class _EpochTally:
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def add(self, loss_sum: float, correct: int, n: int) -> None:
        self.loss_sum += loss_sum
        self.correct += int(correct)
        self.seen += int(n)

    @property
    def loss(self) -> float:
        return self.loss_sum / self.seen if self.seen else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")


class _Diverged(Exception):
    pass


TRACE_ENV = "CNN_EXPLORER_TRACE_SAMPLES"


class _SampleTrace:
    """With ``$CNN_EXPLORER_TRACE_SAMPLES`` set to a folder, each process appends a line per training step to
    ``rank<N>.txt`` there: the epoch, then the dataset indices of the images it trained on. The way to check
    (and the distributed test's evidence) that every image is seen once per epoch across processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    @classmethod
    def from_environment(cls, rank: int) -> _SampleTrace | None:
        folder = os.environ.get(TRACE_ENV, "").strip()
        return cls(Path(folder) / f"rank{rank}.txt") if folder else None

    def write(self, epoch: int, indices: torch.Tensor) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{epoch} {' '.join(str(int(i)) for i in indices)}\n")


class _Trainer:
    def __init__(
        self,
        run: RunDir,
        config: TrainConfig,
        scan: DatasetScan,
        state: dict[str, Any] | None,
        control: Control | None,
        dist: DistContext = SINGLE,
    ) -> None:
        self.run_dir = run
        self.dist = dist
        self.config = config
        self.scan = scan
        self.state = state  # a last.pt to resume from
        self.control = control
        self.class_names = list(scan.class_names)
        self.step_rows: list[tuple[int, int, int, float, float]] = []
        self.skipped: dict[str, str] = {}  # path -> reason, for files that failed while training
        self.epoch_done = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.tally = _EpochTally()
        self.last_loss = float("nan")
        self.last_lr = 0.0
        self.best = (-1.0, float("inf"), 0)  # (val acc, val loss, epoch)
        self.session_start = time.time()
        self.prior_seconds = 0.0
        self.saved_epoch: int | None = int(state["epoch"]) if state else None  # of the last good last.pt
        self.loss_baseline: float | None = None  # see _DIVERGE_FACTOR
        self.high_loss_steps = 0
        self.prev_val_loss: float | None = None
        self.epoch_notices: list[str] = []  # said by this process in this epoch (torchrun: rank 0 relays)

    # -- setup --------------------------------------------------------------------------------------------
    def _setup(self) -> list[TrainEvent]:
        cfg = self.config
        torch.manual_seed(cfg.seed + (int(self.state["epoch"]) if self.state else 0))
        setup = self.setup = TrainingSetup(
            cfg, self.scan, state=self.state, control=self.control, dist=self.dist
        )
        if self.dist.enabled:
            # Every process starts alike (DistributedDataParallel copies rank 0's weights anyway); from here
            # each draws its own dropout masks and augmentations, for the images of its own share.
            torch.manual_seed(
                cfg.seed + (int(self.state["epoch"]) if self.state else 0) + 7919 * self.dist.rank
            )
        self._trace = _SampleTrace.from_environment(self.dist.rank)
        self.device = setup.device
        self.model = setup.model
        self.weights_detail = setup.weights_detail
        if self.state is not None:
            self.weights_detail = f"resumed from {self.run_dir.last_checkpoint}"
        self.preprocess = setup.preprocess
        self.trainable = setup.trainable
        self.optimizer = setup.optimizer
        self.train_set, self.val_set = setup.train_set, setup.val_set
        n_train, n_val = len(self.train_set), len(self.val_set)
        self.steps_per_epoch = len(setup.plan(0))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.step_epochs = cfg.step_epochs or max(1, cfg.epochs // 3)
        notices = [Notice(text) for text in setup.notices]
        self.watcher: Watcher | None = None
        if cfg.watch_image and self.dist.is_main:
            self.watcher, why = Watcher.create(
                cfg.watch_image,
                self.model,
                self.preprocess,
                self.scan.train + self.scan.val,
                self.class_names,
            )
            if self.watcher is None:
                notices.append(Notice(f"Cannot watch {Path(cfg.watch_image).name} learn: {why}"))

        if self.state is not None:
            st = self.state
            try:
                self.optimizer.load_state_dict(st["optimizer"])
            except (ValueError, KeyError):  # saved by a version that grouped the parameters differently
                notices.append(
                    Notice(
                        "The optimizer's state (momentum) in last.pt does not fit this version's parameter "
                        "groups; the weights are resumed, the momentum starts afresh."
                    )
                )
            if setup.scaler is not None and isinstance(st.get("scaler"), dict):
                setup.scaler.load_state_dict(st["scaler"])
            self.epoch_done = int(st["epoch"])
            self.step_in_epoch = int(st.get("step", 0))
            before = int(st.get("processes", 1))
            if before != self.dist.world_size and self.step_in_epoch:
                notices.append(
                    Notice(
                        f"This run stopped in an epoch trained by {before} process(es) and goes on with "
                        f"{self.dist.world_size}: the epoch's remaining batches are the same, only its last "
                        "batch may be divided differently."
                    )
                )
            self.global_step = int(st.get("global_step", self.epoch_done * self.steps_per_epoch))
            loss_sum, correct, seen = st.get("partial", (0.0, 0, 0))
            self.tally = _EpochTally(float(loss_sum), int(correct), int(seen))
            self.best = (
                float(st.get("best_val_acc", -1.0)),
                float(st.get("best_val_loss", math.inf)),
                int(st.get("best_epoch", 0)),
            )
            self.skipped = dict(st.get("skipped", {}))
            self.prior_seconds = float(st.get("seconds", 0.0))
            self._mark_known_bad()
            self.run_dir.truncate_logs(self.epoch_done, self.global_step)
            earlier = self.run_dir.read_epochs()
            if earlier and math.isfinite(earlier[-1].val_loss):
                self.prev_val_loss = earlier[-1].val_loss
            # every process judges divergence against the same previous loss: rank 0 read it
            self.prev_val_loss = self.dist.from_main(lambda: self.prev_val_loss)
            self.summary = self.run_dir.read_summary()
        else:
            self.summary = RunSummary(started=time.time())
        s = self.summary
        s.status, s.message, s.failure, s.epochs = "running", "", "", cfg.epochs
        s.n_train, s.n_val, s.num_classes = n_train, n_val, len(self.class_names)
        s.bad_files = len(self.scan.bad_files) + len(self.skipped)
        s.device = str(self.device)
        s.precision, s.processes = setup.accel.precision, self.dist.world_size
        s.weights = s.weights if self.state is not None else self.weights_detail
        # a resumed run keeps what it said before, and adds what it says now
        s.notices = list(dict.fromkeys([*s.notices, *(n.message for n in notices)]))

        def write() -> None:
            self.run_dir.write_summary(s)
            self.run_dir.write_config({**cfg.to_dict(), "runtime": self._runtime()})

        self._rank0_writes(write)
        return notices

    def _rank0_writes(self, write: Callable[[], None]) -> None:
        """Run ``write`` (only rank 0 writes anything). Under torchrun the processes then agree on whether
        it worked, so a full disk on rank 0 stops every process here, instead of leaving the others
        waiting for rank 0 in the next step."""
        if not self.dist.enabled:
            write()
            return
        failure: RunWriteError | None = None
        try:
            write()
        except RunWriteError as exc:
            failure = exc
        (failed,) = self.dist.all_sum([failure is not None])
        if failure is not None:
            raise failure
        if failed:
            stop = RunWriteError("Process 0 could not write the run folder (it says why).")
            stop.shared_by_ranks = True  # type: ignore[attr-defined]
            raise stop

    def _runtime(self) -> dict[str, Any]:
        """How the run is computed, as resolved on this machine (config.json's "runtime")."""
        setup = self.setup
        return {
            "device": str(self.device),
            "precision": setup.accel.precision,
            "channels_last": setup.accel.channels_last,
            "num_workers": setup.num_workers,
            "processes": self.dist.world_size,
            "backend": self.dist.backend or None,
            "embedding_cache": setup.cache_path or ("memory" if setup.cached else None),
        }

    @property
    def cached(self) -> bool:
        return self.setup.cached

    def _mark_known_bad(self, paths: Collection[str] | None = None) -> None:
        """Flag the images at ``paths`` (default: every file skipped so far) as unreadable, in both parts."""
        paths = self.skipped if paths is None else paths
        if not paths:
            return
        for samples, bad in ((self.scan.train, self.setup.train_bad), (self.scan.val, self.setup.val_bad)):
            for i, (path, _) in enumerate(samples):
                if path in paths:
                    bad[i] = True

    # -- the run ------------------------------------------------------------------------------------------
    def run(self) -> Generator[TrainEvent, None, RunSummary]:
        try:
            return (yield from self._run())
        except RunWriteError as exc:
            if getattr(exc, "shared_by_ranks", False):
                raise  # another process's failure: rank 0 records and reports it
            raise self._write_failed(exc) from exc
        finally:
            setup = getattr(self, "setup", None)
            if setup is not None:
                setup.close()  # the DataLoader workers end with the run, the cache is flushed

    def _write_failed(self, exc: RunWriteError) -> RunWriteError:
        """A run file could not be written: record it (as far as the disk allows), say what is kept."""
        advice = {
            WriteProblem.DISK_FULL: "Free some space, then resume the run.",
            WriteProblem.NOT_WRITABLE: "Make the folder writable, then resume the run.",
        }.get(exc.problem or WriteProblem.OTHER, "Resume the run once the problem is solved.")
        message = f"{exc} Training stopped. {self._kept_text()} {advice}"
        with contextlib.suppress(RunWriteError):
            self._flush_steps()
        s = getattr(self, "summary", None) or self.run_dir.read_summary()  # None: _setup did not get there
        s.status, s.message, s.seconds = "failed", message, self._elapsed()
        s.failure = (exc.problem or WriteProblem.OTHER).value
        self.run_dir.record_summary(s)
        return RunWriteError(message, exc.problem or WriteProblem.OTHER)

    def _run(self) -> Generator[TrainEvent, None, RunSummary]:
        try:
            notices = self._setup()
        except RunWriteError:
            raise  # recorded by run()
        except BaseException as exc:
            # Nothing trained yet: record why, keep whatever checkpoint the folder already had.
            summary = (
                self.run_dir.read_summary() if self.state is not None else RunSummary(started=time.time())
            )
            summary.status = "stopped" if isinstance(exc, Cancelled) else "failed"
            summary.message = "Stopped before training started." if isinstance(exc, Cancelled) else str(exc)
            self.run_dir.record_summary(summary)
            raise
        cfg = self.config
        self.step_time: float | None = None  # smoothed seconds per training step
        self.val_seconds: float | None = None
        try:
            yield RunStarted(
                run_dir=self.run_dir.path,
                config=cfg,
                class_names=self.class_names,
                n_train=len(self.train_set),
                n_val=len(self.val_set),
                device=str(self.device),
                weights=self.weights_detail,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
                start_epoch=self.epoch_done,
                start_step=self.step_in_epoch,
                trainable_params=sum(p.numel() for p in self.trainable),
                total_params=sum(p.numel() for p in self.model.parameters()),
                cached=self.cached,
                precision=self.setup.accel.precision,
                channels_last=self.setup.accel.channels_last,
                num_workers=self.setup.num_workers,
                world_size=self.dist.world_size,
                cache_path=self.setup.cache_path,
            )
            yield from notices
            while self.epoch_done < cfg.epochs:
                yield from self._train_epoch()
                yield from self._end_epoch()
        except _Diverged as exc:
            self._flush_steps()
            return (yield from self._finish("diverged", str(exc)))
        except (Cancelled, GeneratorExit, KeyboardInterrupt):
            # Stopped by the user between steps: the weights are consistent, keep them for resuming.
            self._flush_steps()
            self._save_last()
            self._set_status(
                "stopped", f"Stopped by the user in epoch {self.epoch_done + 1}; resume to continue."
            )
            raise
        except RunWriteError:
            raise  # recorded by run()
        except BaseException as exc:
            # A crash: last.pt is left as it was (the last good state), the logs up to here are kept.
            with contextlib.suppress(RunWriteError):
                self._flush_steps()
            self.summary.status, self.summary.message = "failed", f"{type(exc).__name__}: {exc}"
            self.summary.seconds = self._elapsed()
            self.run_dir.record_summary(self.summary)
            raise
        return (yield from self._finish("finished", ""))

    def _elapsed(self) -> float:
        return self.prior_seconds + time.time() - self.session_start

    def _eta(self, steps_left_in_epoch: int) -> float:
        step = self.step_time or 0.0
        val = (
            self.val_seconds
            if self.val_seconds is not None
            else 0.3 * step * max(1, len(self.val_set)) / max(1, self.config.batch_size)
        )
        epochs_left = self.config.epochs - self.epoch_done - 1
        return steps_left_in_epoch * step + val + epochs_left * (self.steps_per_epoch * step + val)

    def _scheduled_lr(self) -> float:
        """The learning rate for the next step under the configured schedule."""
        cfg = self.config
        factor = lr_factor(
            cfg.schedule,
            self.global_step,
            self.total_steps,
            self.steps_per_epoch,
            self.step_epochs,
            cfg.gamma,
        )
        return cfg.effective_lr() * factor

    def _train_epoch(self) -> Generator[TrainEvent, None, None]:
        cfg = self.config
        epoch = self.epoch_done  # 0-based index of the epoch being trained
        plan = self.setup.plan(epoch)
        self.epoch_start = time.time()
        self.epoch_train_seconds = 0.0
        self.last_lr = self._scheduled_lr()
        if self.step_in_epoch >= len(plan):
            return  # stopped during validation: the training part is done
        if self.step_in_epoch == 0:
            self.tally = _EpochTally()
        self.setup.set_train_mode()
        t_prev = time.perf_counter()
        for batch in self.setup.train_batches(epoch, self.step_in_epoch):
            yield from self._report_failures(batch, self.scan.train, self.setup.train_bad)
            lr = self._scheduled_lr()
            n = self._agree(int(batch.labels.numel()))
            if n >= 2 or (n == 1 and self.cached):
                self._train_step(batch, lr, n)
            self.step_in_epoch += 1
            self.global_step += 1
            now = time.perf_counter()
            dt = now - t_prev
            t_prev = now
            self.epoch_train_seconds += dt
            self.step_time = dt if self.step_time is None else 0.8 * self.step_time + 0.2 * dt
            self.step_rows.append((epoch + 1, self.step_in_epoch, self.global_step, self.last_loss, lr))
            if len(self.step_rows) >= _STEP_LOG_EVERY:
                self._rank0_writes(self._flush_steps)
            yield StepEnd(
                epoch=epoch + 1,
                step=self.step_in_epoch,
                steps_per_epoch=self.steps_per_epoch,
                global_step=self.global_step,
                total_steps=self.total_steps,
                loss=self.last_loss,
                lr=lr,
                images_per_s=cfg.batch_size / self.step_time if self.step_time else 0.0,
                eta_s=self._eta(self.steps_per_epoch - self.step_in_epoch),
            )
            self.last_lr = lr
            for text in self.setup.take_notices():
                self.epoch_notices.append(text)
                yield Notice(text)

    def _agree(self, images: int) -> int:
        """Before a step: stop if asked (Cancelled), and the step's images over all processes.

        A single process checks its control (pause and cancel). Under torchrun the processes add up their
        images and their stop requests, so a Ctrl+C that reached any of them stops all at this same step."""
        if not self.dist.enabled:
            checkpoint(self.control)
            return images
        asked = float(self.control is not None and self.control.cancelled)
        stop, total = self.dist.all_sum([asked, images])
        if stop:
            raise Cancelled("cancelled")
        return int(total)

    def _report_failures(
        self, batch: Batch, samples: Sequence[tuple[str, int]], bad: torch.Tensor
    ) -> Generator[TrainEvent, None, None]:
        for index, reason in batch.failures:
            path = samples[index][0]
            bad[index] = True
            if path not in self.skipped:
                self.skipped[path] = reason
                self.summary.bad_files += 1
                yield FileSkipped(Path(path), reason)

    def _train_step(self, batch: Batch, lr: float, images: int) -> None:
        """One step on the global batch of ``images`` images (this process's share is ``batch``): the
        gradients, the batch's mean loss over all processes, the divergence checks, then the update."""
        setup = self.setup
        setup.set_lr(lr)
        if self._trace is not None:
            self._trace.write(self.epoch_done + 1, batch.indices)
        mine = setup.forward_backward(batch, self.dist.world_size / images)
        loss_sum, correct, seen = self.dist.all_sum([mine.loss_sum, mine.correct, mine.count])
        value = loss_sum / max(seen, 1)
        if not math.isfinite(value):
            raise _Diverged(self._divergence_message(value, lr))
        if self.loss_baseline is None:
            self.loss_baseline = max(math.log(max(2, len(self.class_names))), value)
        if value > _DIVERGE_FACTOR * self.loss_baseline:
            self.high_loss_steps += 1
            if self.high_loss_steps >= _DIVERGE_STEPS:
                limit = f"{_DIVERGE_STEPS} steps in a row above {_DIVERGE_FACTOR:g} × {self._baseline_text()}"
                raise _Diverged(self._divergence_message(value, lr, limit=limit))
        else:
            self.high_loss_steps = 0
        setup.apply_step()
        self.last_loss = value
        self.tally.add(loss_sum, int(correct), int(seen))

    def _baseline(self) -> float:
        return self.loss_baseline or math.log(max(2, len(self.class_names)))

    def _baseline_text(self) -> str:
        guess = math.log(max(2, len(self.class_names)))
        if self._baseline() > guess:
            return f"{self._baseline():.3g}, the loss this run started from"
        return f"{guess:.3g}, the loss of an even guess among {len(self.class_names)} classes"

    def _kept_text(self) -> str:
        if self.saved_epoch is None or not self.run_dir.last_checkpoint.is_file():
            why = " because no epoch had finished" if not self.epoch_done else ""
            return f"No checkpoint was saved{why}."
        kept = self.run_dir.last_checkpoint
        return f"The last good checkpoint (epoch {self.saved_epoch}) is kept in {kept}."

    def _divergence_message(self, value: float, lr: float, *, where: str = "", limit: str = "") -> str:
        if math.isnan(value):
            what = "NaN (not a number)"
        elif math.isinf(value):
            what = "infinite"
        else:
            what = f"{value:.3g} ({limit})"
        where = where or f"at epoch {self.epoch_done + 1}, step {self.step_in_epoch + 1}"
        return (
            f"Training stopped: the loss became {what} {where}, with learning rate {lr:.3g}. The weights "
            f"diverged; try a lower learning rate, for example {self.config.effective_lr() / 10:.3g}. "
            f"{self._kept_text()}"
        )

    def _check_validation(self, val_loss: float, preds: np.ndarray) -> None:
        """_Diverged when the validation loss is NaN or jumped far beyond where it was (_DIVERGE_FACTOR)."""
        if not (preds >= 0).any():
            return  # no readable validation image: nothing to judge
        previous = self.prev_val_loss if self.prev_val_loss is not None else 0.0
        bound = _DIVERGE_FACTOR * max(self._baseline(), previous)
        if not math.isfinite(val_loss) or val_loss > bound:
            limit = (
                f"above {_DIVERGE_FACTOR:g} × {self._baseline_text()}"
                if self._baseline() >= previous
                else f"above {_DIVERGE_FACTOR:g} × {previous:.3g}, the previous epoch's"
            )
            where = f"on the validation images after epoch {self.epoch_done + 1}"
            raise _Diverged(self._divergence_message(val_loss, self.last_lr, where=where, limit=limit))
        self.prev_val_loss = val_loss

    # -- validation and epoch end -------------------------------------------------------------------------
    def _evaluate(self) -> Generator[TrainEvent, None, tuple[float, float, np.ndarray, np.ndarray]]:
        """(loss, accuracy, predicted class per val image (-1 unreadable), its probability)."""
        setup = self.setup
        n = len(self.val_set)
        preds = np.full(n, -1, dtype=np.int64)
        conf = np.zeros(n, dtype=np.float32)
        loss_sum, seen = 0.0, 0
        bs = max(1, self.config.batch_size)
        steps = setup.val_steps(bs)
        if self.dist.enabled:  # shards differ by an image at most: all go the longest one's way
            steps = int(self.dist.all_reduce_(np.array([steps], dtype=np.int64), "max")[0])
        setup.sync_buffers()
        self.model.eval()
        if setup.head is not None:
            setup.head.eval()
        batches = setup.val_batches(bs)
        for step in range(1, steps + 1):
            self._agree(0)  # a stop asked for while validating (under torchrun: by any process) acts here
            batch = next(batches, None)
            if batch is None:  # this process's shard is done; it keeps step with the others
                yield ValidationStep(self.epoch_done + 1, step, steps)
                continue
            yield from self._report_failures(batch, self.scan.val, setup.val_bad)
            if batch.labels.numel():
                # no_grad only around the computation: grad mode is per thread, and a generator must not
                # leave it switched off for its consumer while it is suspended at a yield
                with torch.no_grad():
                    logits = setup.logits(batch, "val")
                    y = batch.labels.to(self.device)
                    loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
                    p, k = logits.float().softmax(1).max(1)
                seen += int(y.numel())
                preds[batch.indices.numpy()] = k.cpu().numpy()
                conf[batch.indices.numpy()] = p.cpu().numpy()
            yield ValidationStep(self.epoch_done + 1, step, steps)
        if self.dist.enabled:  # each process validated its shard: every one gets the whole picture
            loss_sum, seen = self.dist.all_sum([loss_sum, seen])
            self.dist.all_reduce_(preds, "max")
            self.dist.all_reduce_(conf, "sum")
        if seen == 0:
            return float("nan"), float("nan"), preds, conf
        truth = setup.val_labels.numpy()
        ok = preds >= 0
        return loss_sum / seen, float((preds[ok] == truth[ok]).mean()), preds, conf

    def _end_epoch(self) -> Generator[TrainEvent, None, None]:
        cfg = self.config
        val_start = time.perf_counter()
        val_loss, val_acc, preds, conf = yield from self._evaluate()
        yield from self._share_news()
        self._check_validation(val_loss, preds)  # before anything of this epoch is saved
        self.setup.flush()
        self.val_seconds = time.perf_counter() - val_start
        epoch = self.epoch_done + 1
        seconds = time.time() - self.epoch_start
        self.epoch_done = epoch
        self.step_in_epoch = 0
        lr = self.last_lr
        train_seconds = max(self.epoch_train_seconds, 1e-9)
        metrics = EpochMetrics(
            epoch=epoch,
            train_loss=self.tally.loss,
            train_acc=self.tally.acc,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=lr,
            images_per_s=self.tally.seen / train_seconds,
            seconds=seconds,
        )
        score = (
            val_acc if math.isfinite(val_acc) else -1.0,
            val_loss if math.isfinite(val_loss) else math.inf,
        )
        is_best = score[0] > self.best[0] or (score[0] == self.best[0] and score[1] < self.best[1])
        if is_best:
            self.best = (score[0], score[1], epoch)
        self.tally = _EpochTally()  # before saving last.pt: it must not carry this epoch's partial sums

        def write() -> None:
            self._flush_steps()
            self.run_dir.append_epoch(metrics)
            if is_best:
                self._save_best(preds, conf)
            self._save_last()
            s = self.summary
            s.epochs_done, s.final_train_loss, s.final_val_acc = epoch, metrics.train_loss, val_acc
            s.best_epoch, s.best_val_acc, s.best_val_loss = self.best[2], self.best[0], self.best[1]
            s.seconds = self._elapsed()
            self.run_dir.write_summary(s)

        self._rank0_writes(write)
        if is_best:
            yield CheckpointSaved(self.run_dir.best_checkpoint, "best", epoch)
        yield CheckpointSaved(self.run_dir.last_checkpoint, "last", epoch)
        yield EpochEnd(
            epoch=epoch,
            epochs=cfg.epochs,
            train_loss=metrics.train_loss,
            train_acc=metrics.train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=lr,
            images_per_s=metrics.images_per_s,
            seconds=seconds,
            eta_s=self._eta(0) if epoch < cfg.epochs else 0.0,
            is_best=is_best,
        )
        if self.watcher is not None:
            yield self.watcher.frame(self.model, self.class_names, epoch)

    def _share_news(self) -> Generator[TrainEvent, None, None]:
        """Under torchrun, at the end of an epoch: the unreadable files every process met, known to all
        (rank 0 records them), and what the other processes had to say (rank 0 says it)."""
        said, self.epoch_notices = self.epoch_notices, []
        if not self.dist.enabled:
            return
        news = self.dist.gather_objects((dict(self.skipped), said))
        for rank, (_, theirs) in enumerate(news):
            if rank != self.dist.rank and self.dist.is_main:
                for text in theirs:
                    yield Notice(f"Process {rank}: {text}")
        found = [skipped for skipped, _ in news]
        new = {p: why for theirs in found for p, why in theirs.items() if p not in self.skipped}
        if not new:
            return
        self._mark_known_bad(new)
        for path, why in sorted(new.items()):
            self.skipped[path] = why
            self.summary.bad_files += 1
            yield FileSkipped(Path(path), why)

    def _confusion(self, preds: np.ndarray) -> np.ndarray:
        c = len(self.class_names)
        truth = self.setup.val_labels.numpy()
        ok = preds >= 0
        return np.bincount(truth[ok] * c + preds[ok], minlength=c * c).reshape(c, c)

    def _save_best(self, preds: np.ndarray, conf: np.ndarray) -> None:
        if not self.dist.is_main:
            return  # only rank 0 writes the run folder
        extra = {"epoch": self.epoch_done, "val_acc": self.best[0], "val_loss": self.best[1]}
        self._checkpoint(self.run_dir.best_checkpoint, extra)
        self.run_dir.write_confusion(self._confusion(preds), self.class_names)
        names = self.class_names
        every = [
            ValPrediction(path, names[y], names[int(preds[i])], float(conf[i]))
            for i, (path, y) in enumerate(self.scan.val)
            if preds[i] >= 0
        ]
        self.run_dir.write_predictions(every)
        self.run_dir.write_misclassified([p for p in every if not p.correct])

    def _save_last(self) -> None:
        """last.pt with everything needed to continue exactly here (epoch, step, optimizer, tallies)."""
        extra = {
            "epoch": self.epoch_done,
            "step": self.step_in_epoch,
            "global_step": self.global_step,
            "partial": [self.tally.loss_sum, self.tally.correct, self.tally.seen],
            "optimizer": self.optimizer.state_dict(),
            "best_val_acc": self.best[0],
            "best_val_loss": self.best[1] if math.isfinite(self.best[1]) else 1e30,
            "best_epoch": self.best[2],
            "skipped": dict(self.skipped),
            "seconds": self._elapsed(),
            "config": self.config.to_dict(),
            "processes": self.dist.world_size,
        }
        if self.setup.scaler is not None:  # fp16's loss scale, learnt over the steps so far
            extra["scaler"] = self.setup.scaler.state_dict()
        self._checkpoint(self.run_dir.last_checkpoint, extra)
        self.saved_epoch = self.epoch_done

    def _checkpoint(self, path: Path, extra: dict[str, Any]) -> None:
        """zoo.save_checkpoint (temp file, renamed); a failed write is a RunWriteError, the old file kept."""
        if not self.dist.is_main:
            return  # only rank 0 writes the run folder
        try:
            zoo.save_checkpoint(
                path,
                self.model,
                arch=self.config.model,
                class_names=self.class_names,
                preprocess=self.preprocess,
                extra=extra,
            )
        except OSError as exc:
            raise write_error(exc, path) from exc
        except RuntimeError as exc:
            # torch's zip writer reports a failed write (ENOSPC included) as a RuntimeError without errno
            needed = sum(t.numel() * t.element_size() for t in self.model.state_dict().values())
            if path.is_file():
                needed = max(needed, path.stat().st_size)
            free = shutil.disk_usage(path.parent).free
            if free >= needed:
                raise
            raise RunWriteError(
                f"Disk full: cannot write {path.name} in {path.parent} (about {needed / 2**20:.1f} MB "
                f"needed, {free / 2**20:.1f} MB free).",
                WriteProblem.DISK_FULL,
            ) from exc

    def _flush_steps(self) -> None:
        self.run_dir.append_steps(self.step_rows)
        self.step_rows = []

    def _set_status(self, status: str, message: str) -> None:
        s = self.summary
        s.status, s.message, s.seconds = status, message, self._elapsed()
        self.run_dir.write_summary(s)  # RunWriteError: run() records the failure

    def _finish(self, status: str, message: str) -> Generator[TrainEvent, None, RunSummary]:
        if status == "finished":
            done = f"{self.epoch_done} epoch{'' if self.epoch_done == 1 else 's'}"
            message = (
                f"Finished {done}; best validation accuracy {self.best[0]:.1%} at epoch {self.best[2]}."
                if self.best[2]
                else f"Finished {done}."
            )
        self._set_status(status, message)
        found = self.run_dir.read_confusion()
        confusion = found[0] if found is not None else None
        per_class = None
        if confusion is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                per_class = np.diag(confusion) / confusion.sum(1)
        yield Finished(
            status=status,
            message=message,
            run_dir=self.run_dir.path,
            best_epoch=self.best[2],
            best_val_acc=self.best[0] if self.best[2] else float("nan"),
            class_names=self.class_names,
            confusion=confusion,
            per_class_acc=per_class,
            misclassified=self.run_dir.read_misclassified(),
            predictions=self.run_dir.read_predictions(),
        )
        return self.summary


# -- using a trained model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    path: Path
    top: list[tuple[str, float]]  # (class name, probability), most likely first; empty on error
    error: str | None = None


def load_run_model(run_dir: str | Path, *, which: str = "best", trust_code: bool = False) -> zoo.LoadedModel:
    """The fine-tuned model of a run (``which`` = "best" or "last"; falls back to the other one).

    ``trust_code`` as for :func:`zoo.load_model_file` (a checkpoint replaced by a TorchScript file).

    A checkpoint that is a bare state_dict (saved by hand, without class names) gets the run's class names
    from dataset.json when their number matches the head; otherwise ``notes`` says that the names are
    missing, so "class 3" is not mistaken for a prediction.
    """
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunDirError(f"The run folder {run.path} does not exist.")
    order = [run.best_checkpoint, run.last_checkpoint]
    if which == "last":
        order.reverse()
    for path in order:
        if path.is_file():
            return _with_run_names(run, path, trust_code)
    raise RunDirError(f"{run.path} has no checkpoint (best.pt or last.pt) yet.")


def _with_run_names(run: RunDir, path: Path, trust_code: bool = False) -> zoo.LoadedModel:
    try:
        config = run.read_config()
        names = [str(c) for c in run.read_dataset().get("class_names", [])]
    except RunDirError:
        config, names = {}, []
    arch = config.get("model")
    try:
        arch = zoo.get_info(arch).name if isinstance(arch, str) else None  # the run's architecture helps
    except zoo.ModelLoadError:
        arch = None
    loaded = zoo.load_model_file(path, arch=arch, trust_code=trust_code)
    if loaded.categories == names:
        return loaded  # a CNN Explorer checkpoint of this run
    try:
        zoo.read_checkpoint(path)
        return loaded  # a checkpoint with class names of its own: they are the truth
    except zoo.ModelLoadError:
        pass
    n = loaded.num_classes
    if len(names) == n:
        pre = run_preprocess(loaded.preprocess, config.get("image_size"))
        note = f"{path.name} holds no class names; they are taken from the run's {DATASET_FILE}."
        return dataclasses.replace(loaded, categories=names, preprocess=pre, notes=[*loaded.notes, note])
    why = f"its {DATASET_FILE} lists {len(names)}" if names else f"the run has no {DATASET_FILE} with them"
    note = (
        f"{path.name} holds no class names and the model has {n} outputs but {why}: the predictions are "
        "shown as output numbers, not class names."
    )
    return dataclasses.replace(loaded, notes=[*loaded.notes, note])


def predict_files(
    loaded: zoo.LoadedModel,
    paths: Sequence[str | Path],
    *,
    top_k: int = 5,
    batch_size: int = 16,
    control: Control | None = None,
) -> list[Prediction]:
    """Top-k classes with probabilities for each image; an unreadable image gets its error instead."""
    model = loaded.model.eval()
    device = next(model.parameters()).device
    names = loaded.categories
    k = max(1, min(top_k, len(names)))
    out: dict[int, Prediction] = {}
    tensors: list[tuple[int, torch.Tensor]] = []
    for i, path in enumerate(paths):
        try:
            pixels = open_image(path, gray=loaded.preprocess.grayscale).pixels
            tensors.append((i, loaded.preprocess(pixels)))
        except ImageLoadError as exc:
            out[i] = Prediction(Path(path), [], str(exc))
    with torch.no_grad():
        for start in range(0, len(tensors), batch_size):
            checkpoint(control)
            chunk = tensors[start : start + batch_size]
            probs = model(torch.stack([t for _, t in chunk]).to(device)).float().softmax(1)
            p, idx = probs.topk(k, dim=1)
            for row, (i, _) in enumerate(chunk):
                top = [(names[int(c)], float(v)) for v, c in zip(p[row], idx[row], strict=True)]
                out[i] = Prediction(Path(paths[i]), top)
    return [out[i] for i in range(len(paths))]


@dataclass(frozen=True)
class PriorLogs:
    """The logs a resumed run already has, read in the worker before it continues."""

    steps: list[tuple[int, int, int, float, float]]
    epochs: list[EpochMetrics]
    best_epoch: int


def resume_with_logs(
    run_dir: str | Path, epochs: int | None = None, control: Control | None = None
) -> Generator[object, None, RunSummary]:
    """``resume``, with the run's earlier curves sent right after RunStarted (for a window)."""
    events = resume(run_dir, epochs=epochs, control=control)
    try:
        yield next(events)  # RunStarted: the logs are trimmed to the resume point by now
        run = RunDir(run_dir)
        yield PriorLogs(run.read_steps(), run.read_epochs(), run.read_summary().best_epoch)
        return (yield from events)
    finally:
        events.close()  # a stop while waiting here still saves last.pt


def demo_compare_run(root: Path) -> Path:
    """A real, small fine-tuning run for pictures of compare mode: EfficientNet-Lite0 with its top blocks
    fine-tuned for one epoch on the bundled silhouettes (seconds on a laptop). Returns the run folder."""
    from cnn_explorer.core.data import write_animal_dataset

    data = write_animal_dataset(root / "animal_shapes", per_class=8)
    config = TrainConfig(
        data=str(data),
        model=zoo.DEFAULT_MODEL,
        strategy="fine-tune-top",
        top_blocks=10,
        epochs=1,
        batch_size=8,
        augmentation=Augmentation.none(),
        allow_download=False,
    )
    run = root / "runs" / "silhouettes_fine-tune-top"
    run_to_end(fit(config, run))
    return run
