"""Measuring a variant the same way as every other: its quality on the base's images (accuracy with labels,
agreement with the original's top-1 without), and its CPU latency at batch 1, interleaved run by run with
the original's in the same process, with the same thread count, after a warm-up — so a machine that gets
slower or faster meanwhile slows both alike."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cnn_explorer.core.compress import quantize as q
from cnn_explorer.core.compress.evalset import EvalImages
from cnn_explorer.core.control import Control, checkpoint

__all__ = ["Latency", "Predictions", "Quality", "latency", "predict", "quality"]

WARMUP_RUNS = 5
MIN_RUNS = 10  # fewer timed runs cannot outvote one pause of a busy machine
MIN_SECONDS = 0.25  # and at least this long per model: a 0.2 ms LeNet-5 gets hundreds of runs


@dataclass(frozen=True)
class Predictions:
    top1: Tensor  # (N,) class index per image
    top5: Tensor  # (N, k) the k best classes, k = min(5, classes)


@dataclass(frozen=True)
class Quality:
    accuracy: float | None
    agreement_top1: float
    agreement_top5: float


@dataclass(frozen=True)
class Latency:
    median_ms: float
    original_ms: float  # the original's median over the runs interleaved with these

    @property
    def ratio(self) -> float:
        return self.median_ms / self.original_ms if self.original_ms > 0 else float("nan")


def predict(
    model: nn.Module, images: EvalImages, *, engine: str | None = None, control: Control | None = None
) -> Predictions:
    """Top-1 and top-5 classes of every readable image."""
    top1: list[Tensor] = []
    top5: list[Tensor] = []
    model.eval()
    with q.engine(engine), torch.inference_mode():
        for batch in images.batches(control):
            logits = model(batch).float()
            k = min(5, logits.shape[1])
            top5.append(logits.topk(k, dim=1).indices)
            top1.append(logits.argmax(1))
    return Predictions(torch.cat(top1), torch.cat(top5))


def quality(found: Predictions, reference: Predictions, labels: Tensor | None) -> Quality:
    """Accuracy against ``labels`` (None without), and agreement with the original's top-1."""
    accuracy = float((found.top1 == labels).float().mean()) if labels is not None else None
    agree1 = float((found.top1 == reference.top1).float().mean())
    agree5 = float((found.top5 == reference.top1[:, None]).any(1).float().mean())
    return Quality(accuracy, agree1, agree5)


def latency(
    original: nn.Module,
    variant: nn.Module,
    x: Tensor,
    runs: int,
    *,
    engine: str | None = None,
    control: Control | None = None,
) -> Latency:
    """Median milliseconds of ``variant(x)`` and of ``original(x)``, alternating, over ``runs`` runs each (at
    least MIN_RUNS, and until each model has run for MIN_SECONDS)."""
    times: dict[str, list[float]] = {"original": [], "variant": []}
    order = (("original", original), ("variant", variant))
    with q.engine(engine), torch.inference_mode():
        for _ in range(WARMUP_RUNS):
            original(x)
            variant(x)
        i = 0
        spent = 0.0
        while i < max(runs, MIN_RUNS) or spent < MIN_SECONDS:
            checkpoint(control)
            # alternate which goes first, so neither always runs on a cache the other warmed
            for name, model in order if i % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
            spent = min(sum(times["original"]), sum(times["variant"]))
            i += 1
            if i >= 100 * max(runs, MIN_RUNS):
                break  # (a model too fast to time: enough)
    return Latency(
        1000.0 * statistics.median(times["variant"]),
        1000.0 * statistics.median(times["original"]),
    )
