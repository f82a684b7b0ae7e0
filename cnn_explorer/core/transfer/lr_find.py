"""The learning-rate finder (Smith 2015, "Cyclical learning rates"; fastai's ``lr_find``).

Train a throwaway copy of the model for a few hundred steps at most while the learning rate grows
exponentially from tiny to huge, and record the loss of each step. At first the steps are too small to
change anything (a flat curve), then the loss falls, and finally it blows up. A good learning rate lies
where the loss falls fastest, well before its minimum: at the minimum the steps are already so large that
the next ones overshoot.

:func:`lr_sweep` is the sweep itself over any ``step(lr) -> loss`` function, :func:`suggest_lr` reads the
curve, :func:`lr_find` runs both on a real training setup (``core.training.prepare_training``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.data import Batch, DatasetError, DatasetScan
from cnn_explorer.core.runs import write_bytes_atomic
from cnn_explorer.core.training import ConfigError, TrainConfig, TrainingSetup, prepare_training
from cnn_explorer.core.transfer.results import LRFindResult

__all__ = [
    "MAX_STEPS",
    "LRFindProgress",
    "check_sweep_settings",
    "lr_find",
    "lr_sweep",
    "smoothing_for",
    "suggest_lr",
    "write_lr_csv",
    "write_lr_png",
]

MAX_STEPS = 1000  # a sweep is a quick look, not a training run
MIN_STEPS = 2
_WARMUP_STEPS = 5  # the divergence test waits this long: the first smoothed values rest on one or two batches
_MIN_POINTS = 8  # fewer finite points than this carry no usable slope
_FLAT_DROP = 0.05  # a curve whose loss never falls by 5 % of its height has no descent to read
_DIVERGE_FACTOR = 4.0  # the sweep stops when the smoothed loss is this many times its best
_SKIP_START = 0.05  # the first 5 % of the points: the smoothed curve still rests on a handful of batches


@dataclass(frozen=True)
class LRFindProgress:
    """After each step of the sweep."""

    step: int  # 1-based
    steps: int  # planned
    lr: float
    loss: float  # this step's training loss (may be non-finite when it diverges)
    smoothed: float  # the smoothed, bias-corrected loss the curve shows


def check_sweep_settings(
    steps: int, start_lr: float, end_lr: float, beta: float = 0.98, diverge_factor: float = _DIVERGE_FACTOR
) -> None:
    """ConfigError naming the first unusable sweep setting (for callers that check before a dataset scan)."""
    checks = [
        (MIN_STEPS <= steps <= MAX_STEPS, f"the sweep needs {MIN_STEPS} to {MAX_STEPS} steps, not {steps}"),
        (math.isfinite(start_lr) and start_lr > 0, f"the start learning rate must be positive ({start_lr})"),
        (
            math.isfinite(end_lr) and end_lr > start_lr,
            f"the end learning rate ({end_lr:g}) must be larger than the start ({start_lr:g})",
        ),
        (0 <= beta < 1, f"the smoothing factor beta must be in [0, 1), not {beta}"),
        (diverge_factor > 1, f"the divergence factor must be above 1, not {diverge_factor}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"Invalid setting: {message}.")


def smoothing_for(steps: int) -> float:
    """The smoothing factor ``lr_find`` uses for a sweep of ``steps`` steps.

    An exponential average lags by about beta / (1 - beta) steps; fastai's 0.98 is 49 steps, half of a
    100-step sweep, or four decades of learning rate, which moves the curve's minimum and steepest descent
    far to the right of where the raw losses have them. A window of a tenth of the sweep keeps the lag near
    0.8 decades whatever the length, and still averages ten batches.
    """
    return float(np.clip(1.0 - 10.0 / max(steps, 1), 0.6, 0.98))


def lr_sweep(
    step: Callable[[float], float],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    beta: float = 0.98,
    diverge_factor: float = _DIVERGE_FACTOR,
    control: Control | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Call ``step(lr)`` with lr_i = start·(end/start)^(i/(steps−1)) until the loss diverges.

    Returns (learning rates, raw losses, smoothed bias-corrected losses, stopped early), one entry per step
    taken, the step that diverged included. The sweep stops at a non-finite loss, or, after a few warm-up
    steps, when the smoothed loss exceeds ``diverge_factor`` times the best smoothed loss so far.
    ConfigError for unusable settings; Cancelled when ``control`` is cancelled.
    """
    check_sweep_settings(steps, start_lr, end_lr, beta, diverge_factor)
    schedule = start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    diverged = False
    for i, lr in enumerate(schedule):
        checkpoint(control)
        loss = float(step(float(lr)))
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))  # bias correction: the average starts from 0
        lrs.append(float(lr))
        losses.append(loss)
        smoothed.append(value)
        report(control, LRFindProgress(i + 1, steps, float(lr), loss, value))
        if not math.isfinite(value) or (i >= _WARMUP_STEPS and value > diverge_factor * best):
            diverged = True
            break
        best = min(best, value)
    stopped_early = diverged and len(lrs) < steps
    return np.array(lrs), np.array(losses), np.array(smoothed), stopped_early


def _finite_prefix(lrs: np.ndarray, smoothed: np.ndarray) -> int:
    """How many points come before the first non-finite one (after it the model is broken)."""
    bad = ~(np.isfinite(lrs) & np.isfinite(smoothed) & (lrs > 0))
    return int(np.argmax(bad)) if bad.any() else len(lrs)


def suggest_lr(lrs: np.ndarray, smoothed: np.ndarray) -> tuple[float, str]:
    """(learning rate, why) read from a sweep's smoothed curve.

    The steepest descent of the loss against log(lr), searched between the curve's last high point and its
    minimum, so it never lands where the loss already rises, or on a wiggle of the flat start; but at least
    a decade below the minimum (the smaller of the two), since near the minimum the next steps overshoot.
    A curve too short or too flat to have a descent gets a decade below its lowest point, said so; one
    with no finite loss at all gets NaN.
    """
    lrs = np.asarray(lrs, dtype=float)
    smoothed = np.asarray(smoothed, dtype=float)
    n = _finite_prefix(lrs, smoothed)
    if n == 0:
        return math.nan, "no step gave a finite loss, so there is no curve to read: check the data and model"
    x, y = np.log10(lrs[:n]), smoothed[:n]
    low = int(np.argmin(y))
    lr_low = float(lrs[low])
    fallback = lr_low / 10
    if n < _MIN_POINTS:
        return fallback, (
            f"only {n} usable steps, too few to see where the loss falls fastest: a decade below the "
            f"learning rate of the lowest loss ({lr_low:.3g}); run more steps for a better estimate"
        )
    if (float(np.max(y)) - y[low]) / max(abs(float(np.max(y))), 1e-12) < _FLAT_DROP:
        return fallback, (
            f"the loss hardly changed over the sweep (between {y[low]:.3g} and {np.max(y):.3g}): no "
            f"learning rate in {lrs[0]:.3g}–{lrs[n - 1]:.3g} clearly helps. A decade below the lowest "
            f"loss's learning rate ({lr_low:.3g}); try a wider range or more steps"
        )
    slope = np.gradient(y, x)  # loss change per decade of learning rate
    first = min(int(_SKIP_START * n), max(low - 1, 0))
    if low <= first:  # the minimum is at the very start: the loss only rose
        return fallback, (
            f"the loss was lowest at the start of the sweep ({lr_low:.3g}) and only rose after it: a decade "
            "below that; start the sweep at a smaller learning rate to see a descent"
        )
    top = float(np.max(y[: low + 1]))
    if (top - y[low]) / max(abs(top), 1e-12) < _FLAT_DROP:
        return fallback, (
            f"the loss hardly fell ({top:.3g} to {y[low]:.3g}) before it rose: a decade below the learning "
            f"rate of its lowest point ({lr_low:.3g}); start the sweep at a smaller learning rate"
        )
    # the descent begins at the curve's highest point before its minimum: wiggles of the flat start
    # (the smoothed curve still averages few batches there) are not a descent
    first += int(np.argmax(y[first:low]))
    steep = first + int(np.argmin(slope[first:low]))
    lr_steep = float(lrs[steep])
    decades = math.log10(lr_low / lr_steep)
    if low == n - 1:
        where = f"the curve's last point ({lr_low:.3g}, loss {y[low]:.3g}), where the loss was still falling"
    else:
        where = f"its minimum ({y[low]:.3g}) at {lr_low:.3g}"
    if slope[steep] >= 0:
        return fallback, f"the smoothed loss never fell steadily before {where}: a decade below that"
    if decades < 1:
        return fallback, (
            f"a decade below {where}: its steepest descent ({lr_steep:.3g}) is only {decades:.1f} decades "
            "below it, too close to where the steps start to overshoot"
        )
    return lr_steep, f"steepest descent of the loss, {decades:.1f} decades below {where}"


def _stop_text(result_lrs: np.ndarray, smoothed: np.ndarray, steps: int, stopped_early: bool) -> str:
    taken = len(result_lrs)
    if not stopped_early:
        return f"The sweep ran all {steps} steps, up to learning rate {result_lrs[-1]:.3g}."
    why = (
        "was no longer finite"
        if not math.isfinite(smoothed[-1])
        else f"rose above {_DIVERGE_FACTOR:g}x its best"
    )
    return (
        f"The sweep stopped at step {taken} of {steps} (learning rate {result_lrs[-1]:.3g}): the loss {why}."
    )


def _cycle_batches(setup: TrainingSetup, scan: DatasetScan) -> Iterator[Batch]:
    """The training batches, epoch after epoch, for as long as the sweep asks."""
    epoch = 0
    while True:
        found = False
        for batch in setup.train_batches(epoch):
            if batch.labels.numel() == 0:  # every image unreadable: no step, and its NaN is no divergence
                continue
            found = True
            yield batch
        if not found:
            raise DatasetError(
                f"No training image in {scan.root} could be loaded for the learning-rate sweep."
            )
        epoch += 1


def lr_find(
    config: TrainConfig,
    scan: DatasetScan,
    *,
    steps: int = 100,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    control: Control | None = None,
) -> LRFindResult:
    """Sweep the learning rate over ``steps`` training steps of ``config`` on ``scan`` and suggest one.

    The model is a throwaway: a real run starts again from fresh weights. Reports :class:`LRFindProgress`
    to ``control``; ConfigError / DatasetError / zoo.ModelLoadError for bad input; Cancelled when cancelled.
    """
    beta = smoothing_for(steps)
    check_sweep_settings(steps, start_lr, end_lr, beta)
    setup = prepare_training(config, scan, control=control)  # validates the config
    setup.set_train_mode()  # as a run trains: BatchNorm on batch statistics, dropout on
    batches = _cycle_batches(setup, scan)
    try:
        lrs, losses, smoothed, stopped = lr_sweep(
            lambda lr: setup.step(next(batches), lr),
            start_lr=start_lr,
            end_lr=end_lr,
            steps=steps,
            beta=beta,
            control=control,
        )
    finally:
        batches.close()
        setup.close()  # its DataLoader workers, its cache
    suggestion, why = suggest_lr(lrs, smoothed)
    return LRFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        stopped_early=stopped,
        reason=f"{why[:1].upper()}{why[1:]}. {_stop_text(lrs, smoothed, steps, stopped)}",
        strategy=config.strategy,
        model=config.model,
    )


def write_lr_csv(result: LRFindResult, path: str | os.PathLike[str]) -> Path:
    """``lr,loss,smoothed``, one row per step (non-finite losses as ``nan`` / ``inf``)."""
    path = Path(path)
    rows = ["lr,loss,smoothed"]
    rows += [
        f"{lr:.8g},{loss:.8g},{s:.8g}"
        for lr, loss, s in zip(result.lrs, result.losses, result.smoothed, strict=True)
    ]
    write_bytes_atomic(path, ("\n".join(rows) + "\n").encode("utf-8"))
    return path


def write_lr_png(result: LRFindResult, path: str | os.PathLike[str]) -> Path:
    """Loss against learning rate on a log axis: each step's loss, the smoothed curve, the suggestion."""
    from cnn_explorer.core.charts import line_chart_png

    lrs = np.asarray(result.lrs, dtype=float)
    n = _finite_prefix(lrs, np.asarray(result.smoothed, dtype=float))
    xs, smooth = lrs[:n], np.asarray(result.smoothed, dtype=float)[:n]
    raw = np.asarray(result.losses, dtype=float)[:n]
    # the last raw losses of a diverging sweep can be 100x the rest and would flatten the curve
    ceiling = 1.5 * float(np.max(smooth)) if n else math.inf
    keep = np.isfinite(raw) & (raw <= ceiling)
    series = []
    if keep.any():
        series.append((xs[keep], raw[keep], "loss of each step"))
    if n:
        series.append((xs, smooth, "smoothed loss"))
    marker = None
    if n and math.isfinite(result.suggestion) and result.suggestion > 0:
        y = float(np.interp(math.log10(result.suggestion), np.log10(xs), smooth))
        marker = (result.suggestion, y, f"suggested {result.suggestion:.2g}")
    name = ", ".join(part for part in (result.model, result.strategy) if part)
    return line_chart_png(
        Path(path),
        series,
        title=f"Learning-rate finder{f' ({name})' if name else ''}",
        x_label="learning rate",
        y_label="training loss",
        log_x=True,
        marker=marker,
    )
