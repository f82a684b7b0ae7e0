"""Training events turned into progress state, in one place: the fine-tune page and ``cnn-explorer
finetune`` both feed every event to a :class:`TrainingProgress` and draw what it holds (Lightning's
progress bar follows the loop's events the same way; it is not a second loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cnn_explorer.core.training import (
    EpochEnd,
    FileSkipped,
    Finished,
    Notice,
    PriorLogs,
    RunStarted,
    StepEnd,
    ValidationStep,
)
from cnn_explorer.core.transfer.results import WatchFrame


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``; a dash for an unknown time."""
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_number(x: float, pattern: str = "{:.4f}") -> str:
    """``x`` formatted, or "n/a" for NaN and infinities (an epoch without validation images)."""
    return pattern.format(x) if math.isfinite(x) else "n/a"


@dataclass
class TrainingProgress:
    """Where a run stands, from its events (``update``); nothing here draws."""

    started: object | None = None  # RunStarted
    last_step: object | None = None  # StepEnd
    validating: object | None = None  # ValidationStep, while the epoch's validation runs
    epochs: list = field(default_factory=list)  # EpochEnd, in order
    best: tuple[float, int] = (math.nan, 0)  # best validation accuracy, its epoch
    notices: list[str] = field(default_factory=list)  # everything the run said; kept after it ends
    skipped: list = field(default_factory=list)  # FileSkipped
    watch: list[WatchFrame] = field(default_factory=list)
    finished: object | None = None  # Finished

    def update(self, ev: object) -> None:
        if isinstance(ev, StepEnd):
            self.last_step, self.validating = ev, None
        elif isinstance(ev, ValidationStep):
            self.validating = ev
        elif isinstance(ev, EpochEnd):
            self.epochs.append(ev)
            self.validating = None
            if ev.is_best:
                self.best = (ev.val_acc, ev.epoch)
        elif isinstance(ev, WatchFrame):
            self.watch.append(ev)
        elif isinstance(ev, RunStarted):
            self.started = ev
        elif isinstance(ev, PriorLogs):
            found = next((m for m in ev.epochs if m.epoch == ev.best_epoch), None)
            if found is not None:
                self.best = (found.val_acc, found.epoch)
        elif isinstance(ev, Notice):
            self.notices.append(ev.message)
        elif isinstance(ev, FileSkipped):
            self.skipped.append(ev)
        elif isinstance(ev, Finished):
            self.finished = ev

    # -- what is drawn ----------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return int(self.started.total_steps) if self.started is not None else 0

    @property
    def steps_done(self) -> int:
        if self.last_step is not None:
            return int(self.last_step.global_step)
        s = self.started
        return int(s.start_epoch * s.steps_per_epoch + s.start_step) if s is not None else 0

    def where(self) -> str:
        """ "Epoch 2/5 · step 3/10", or "· validating 1/4" while validating."""
        s = self.started
        if s is None:
            return ""
        epochs = s.config.epochs
        if self.validating is not None:
            v = self.validating
            return f"Epoch {v.epoch}/{epochs} · validating {v.step}/{v.steps}"
        if self.last_step is not None:
            st = self.last_step
            return f"Epoch {st.epoch}/{epochs} · step {st.step}/{st.steps_per_epoch}"
        return f"Epoch {s.start_epoch + 1}/{epochs}"

    def rate_text(self) -> str:
        """ "120 images/s · ETA 0:42 · best 91.0% (epoch 2)"."""
        parts = []
        if self.last_step is not None:
            parts += [
                f"{self.last_step.images_per_s:,.0f} images/s",
                f"ETA {format_duration(self.last_step.eta_s)}",
            ]
        if self.best[1]:
            parts.append(f"best {self.best[0]:.1%} (epoch {self.best[1]})")
        return " · ".join(parts)

    def step_line(self) -> str:
        """The last step as a plain log line: "epoch 2: step 3/10, loss 0.412, 120 img/s, about 0:42 left"."""
        st = self.last_step
        if st is None:
            return ""
        return (
            f"epoch {st.epoch}: step {st.step}/{st.steps_per_epoch}, loss {st.loss:.3f}, "
            f"{st.images_per_s:.0f} img/s, about {format_duration(max(0.0, st.eta_s))} left"
        )


def hardware_text(ev: RunStarted) -> str:
    """How the run computes, as it was resolved: "on cuda:0 · bf16 mixed precision · channels-last ·
    4 data workers · 2 processes" (only what applies)."""
    parts = [f"on {ev.device}", "fp32" if ev.precision == "fp32" else f"{ev.precision} mixed precision"]
    if ev.channels_last:
        parts.append("channels-last")
    workers = ev.num_workers
    parts.append("no data workers" if workers == 0 else f"{workers} data worker{'s' if workers > 1 else ''}")
    if ev.world_size > 1:
        parts.append(f"{ev.world_size} processes")
    return " · ".join(parts)


def epoch_line(ev: object) -> str:
    """One line per finished epoch, as the CLI prints it."""
    pct = "{:.1%}"
    return " | ".join(
        [
            f"epoch {ev.epoch}/{ev.epochs}",
            f"train loss {fmt_number(ev.train_loss)} acc {fmt_number(ev.train_acc, pct)}",
            f"val loss {fmt_number(ev.val_loss)} acc {fmt_number(ev.val_acc, pct)}",
            f"lr {ev.lr:.3g}",
            f"{ev.images_per_s:.0f} img/s, {ev.seconds:.1f} s{'  *best' if ev.is_best else ''}",
        ]
    )


def watch_line(frame: WatchFrame) -> str:
    """The CLI's line for a "watch it learn" frame."""
    truth = f" (true: {frame.true_class})" if frame.true_class else ""
    guess = f"{frame.predicted} {frame.probability:.0%}{truth}"
    return f"watch: epoch {frame.epoch}: {guess}, Grad-CAM at {frame.layer}"
