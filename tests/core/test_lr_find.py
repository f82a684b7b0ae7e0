"""The learning-rate finder: the sweep on toy problems, the suggestion, the files, a real sweep on the
animal silhouettes whose suggestion then trains."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import Batch, scan_dataset, write_animal_dataset
from cnn_explorer.core.training import ConfigError, TrainConfig, fit, run_to_end
from cnn_explorer.core.transfer import lr_find as lrf
from cnn_explorer.core.transfer.lr_find import (
    LRFindProgress,
    lr_find,
    lr_sweep,
    smoothing_for,
    suggest_lr,
    write_lr_csv,
    write_lr_png,
)
from cnn_explorer.core.transfer.results import LRFindResult


def noisy_quadratic(curvature: float = 1.0, seed: int = 0):
    """SGD on loss = curvature·w²/2 with noisy gradients: learns for lr < 2/curvature, explodes above."""
    w = 3.0
    rng = np.random.default_rng(seed)

    def step(lr: float) -> float:
        nonlocal w
        loss = 0.5 * curvature * w * w
        w -= lr * (curvature * w + 0.3 * rng.standard_normal())
        return loss

    return step


def test_schedule_is_exponential_and_spans_start_to_end():
    events: list[LRFindProgress] = []
    lrs, losses, smoothed, stopped = lr_sweep(
        lambda lr: 1.0, start_lr=1e-6, end_lr=1.0, steps=61, control=Control(report=events.append)
    )
    assert not stopped and len(lrs) == len(losses) == len(smoothed) == 61
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** (6 / 60))  # a constant factor: a straight line on a log axis
    np.testing.assert_allclose(smoothed, 1.0)  # bias-corrected: no ramp up from zero
    assert [e.step for e in events] == list(range(1, 62)) and events[-1].steps == 61
    assert events[10].lr == pytest.approx(lrs[10])


@pytest.mark.parametrize("curvature", [1.0, 10.0])
def test_a_diverging_problem_stops_early(curvature: float):
    lrs, _, smoothed, stopped = lr_sweep(noisy_quadratic(curvature), steps=100, beta=smoothing_for(100))
    assert stopped and len(lrs) < 100
    assert lrs[-1] > 2 / curvature  # where plain gradient descent on this quadratic blows up
    assert smoothed[-1] > 4 * smoothed[:-1].min()


def test_a_non_finite_loss_stops_at_once():
    lrs, losses, _, stopped = lr_sweep(lambda lr: math.nan if lr > 1e-3 else 1.0, steps=50)
    assert stopped and lrs[-2] <= 1e-3 < lrs[-1] and math.isnan(losses[-1])


def test_cancel_stops_the_sweep():
    control = Control()
    calls = []

    def step(lr: float) -> float:
        calls.append(lr)
        if len(calls) == 3:
            control.cancel()
        return 1.0

    with pytest.raises(Cancelled):
        lr_sweep(step, steps=20, control=control)
    assert len(calls) == 3


@pytest.mark.parametrize("bad", [{"steps": 1}, {"start_lr": 0.0}, {"start_lr": 1.0, "end_lr": 0.5}])
def test_unusable_settings_are_refused(bad):
    with pytest.raises(ConfigError, match="Invalid setting"):
        lr_sweep(lambda lr: 1.0, **bad)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("curvature", [1.0, 10.0])
def test_the_suggestion_lies_where_the_loss_falls(curvature: float, seed: int):
    lrs, _, smoothed, _ = lr_sweep(noisy_quadratic(curvature, seed), steps=100, beta=smoothing_for(100))
    lr, reason = suggest_lr(lrs, smoothed)
    low = int(np.argmin(smoothed))
    assert lr <= lrs[low] / 10 * 1.0001  # at least a decade below the minimum
    i = int(np.argmin(np.abs(np.log(lrs) - np.log(lr))))
    assert smoothed[i] > smoothed[low] and smoothed[i + 1] <= smoothed[i - 1]  # still falling there
    assert 0.02 / curvature < lr < 2 / curvature  # it learns, and is below the blow-up
    assert "decade" in reason


def test_degenerate_curves_get_a_fallback_and_say_why():
    lrs = np.geomspace(1e-7, 10, 50)
    lr, reason = suggest_lr(lrs, np.full(50, 2.3))
    assert math.isfinite(lr) and "hardly changed" in reason
    lr, reason = suggest_lr(lrs[:4], np.array([2.0, 1.9, 1.8, 1.7]))
    assert lr == pytest.approx(lrs[3] / 10) and "too few" in reason
    lr, reason = suggest_lr(lrs, np.linspace(1.0, 5.0, 50))  # only rises
    assert lr == pytest.approx(1e-8) and "lowest at the start" in reason
    lr, reason = suggest_lr(lrs[:3], np.full(3, np.nan))
    assert math.isnan(lr) and "no step" in reason
    # a curve that falls and then turns non-finite is read up to its last finite point
    falling = np.r_[np.full(20, 2.0), np.linspace(2.0, 0.5, 29), np.nan]
    lr, reason = suggest_lr(lrs, falling)
    assert lrs[20] <= lr < lrs[48] and "still falling" in reason


def _toy_result() -> LRFindResult:
    lrs, losses, smoothed, stopped = lr_sweep(noisy_quadratic(), steps=100, beta=smoothing_for(100))
    lr, reason = suggest_lr(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, lr, stopped, reason, strategy="toy", model="quadratic")


def test_csv_and_png_are_written(tmp_path: Path):
    result = _toy_result()
    csv = write_lr_csv(result, tmp_path / "lr_find.csv")
    rows = csv.read_text().splitlines()
    assert rows[0] == "lr,loss,smoothed" and len(rows) == len(result.lrs) + 1
    first = [float(v) for v in rows[1].split(",")]
    assert first == pytest.approx([result.lrs[0], result.losses[0], result.smoothed[0]], rel=1e-6)
    png = write_lr_png(result, tmp_path / "lr_find.png")
    with Image.open(png) as im:
        assert im.size == (800, 500)
        assert len(im.convert("RGB").getcolors(1 << 20)) > 10  # something was drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr_find.csv", "lr_find.png"]  # no temp left


class _FakeSetup:
    """Three batches an epoch, one of them all unreadable (no labels); the loss is a quadratic's."""

    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.step_fn = noisy_quadratic()
        self.training = False

    def set_train_mode(self) -> None:
        self.training = True

    def train_batches(self, epoch: int):
        self.epochs.append(epoch)
        good = Batch(torch.zeros(2, 1), torch.tensor([0, 1]), torch.tensor([0, 1]), [])
        empty = Batch(torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), [])
        yield from (good, empty, good)

    def step(self, batch: Batch, lr: float) -> float:
        assert batch.labels.numel() > 0
        assert self.training  # the sweep trains as a run does
        return self.step_fn(lr)

    def close(self) -> None:
        self.closed = True  # the sweep ends its setup's DataLoader workers


def test_lr_find_cycles_epochs_and_skips_empty_batches(monkeypatch, tmp_path: Path):
    fake = _FakeSetup()
    monkeypatch.setattr(lrf, "prepare_training", lambda config, scan, control=None: fake)
    scan = scan_dataset(write_animal_dataset(tmp_path / "shapes", per_class=6, classes=["cat", "bird"]))
    result = lr_find(TrainConfig(), scan, steps=30, start_lr=1e-4, end_lr=1.0)
    assert len(result.lrs) == 30 and not result.stopped_early
    assert fake.epochs == list(range(15))  # two usable batches an epoch
    assert result.strategy == "feature-extractor" and "all 30 steps" in result.reason
    assert fake.closed  # and the setup is closed


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory):
    root = write_animal_dataset(tmp_path_factory.mktemp("lr") / "shapes", per_class=20)
    return scan_dataset(root)


def test_the_suggestion_trains_the_silhouettes(shapes, tmp_path: Path):
    config = TrainConfig(data=str(shapes.root), image_size=48, batch_size=16, epochs=3, allow_download=False)
    result = lr_find(config, shapes, steps=100)
    assert 1e-3 < result.suggestion < 10 and result.suggestion < result.lrs[np.argmin(result.smoothed)]
    assert result.model == "efficientnet_lite0" and result.reason
    _, summary = run_to_end(
        fit(dataclasses.replace(config, lr=result.suggestion), tmp_path / "run", scan=shapes)
    )
    assert summary.status == "finished"
    assert summary.best_val_acc > 1 / len(shapes.class_names) + 0.1  # beats chance (5 classes)


def test_a_sweep_that_diverges_suggests_a_rate_that_trains(shapes, tmp_path: Path):
    config = TrainConfig(
        data=str(shapes.root), strategy="fine-tune-top", image_size=32, batch_size=16, epochs=1,
        allow_download=False,
    )  # fmt: skip
    result = lr_find(config, shapes, steps=60)
    assert result.stopped_early and "stopped at step" in result.reason
    assert result.suggestion < result.lrs[-1] / 10
    _, summary = run_to_end(
        fit(dataclasses.replace(config, lr=result.suggestion), tmp_path / "run", scan=shapes)
    )
    assert summary.status == "finished"
