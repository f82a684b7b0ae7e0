""" "Probe every block": where a pretrained network's features stop being generic for *this* dataset.

The course (seed 000 §2.4): for a small dataset unlike ImageNet, train a linear classifier on features of
an earlier layer rather than the top. To show which layer, :func:`probe_every_block` runs the data through
the frozen model once, with a forward hook on every probe point (``core.transfer.layers``) that keeps
only the global-average-pooled output, (N, C) float16 per layer; the forward stops after the last probe
point, so the head never runs. Then a multinomial logistic regression (a linear probe) is trained on each
layer's features and scored on the validation images. Early layers see edges and blobs, the top sees
ImageNet's object parts: the validation accuracy against depth rises, and for data unlike ImageNet it
levels off or falls before the top.

Memory is bounded by the pooled features (a few kB per image for EfficientNet-Lite0), never the maps.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.charts import line_chart_png
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.data import (
    DatasetError,
    DatasetScan,
    EpochBatches,
    ImageSamples,
    close_loader,
    make_loader,
    resolve_num_workers,
)
from cnn_explorer.core.runs import write_bytes_atomic
from cnn_explorer.core.train_config import resolve_device
from cnn_explorer.core.training_setup import run_preprocess
from cnn_explorer.core.transfer.layers import probe_layers
from cnn_explorer.core.transfer.results import ProbeReport, ProbeRow

__all__ = [
    "CSV_HEADER",
    "ProbeError",
    "ProbeProgress",
    "pooled_block_features",
    "probe_every_block",
    "train_linear_probe",
    "write_probe_csv",
    "write_probe_png",
]

CSV_HEADER = ("layer", "depth", "val_accuracy", "channels", "train_accuracy")
# L2 penalty on the probe's weights, per training image (the loss is a mean). On standardised features it
# keeps a separable problem's optimum finite (few images, hundreds of features is the usual case here) and
# barely touches a large dataset's.
PROBE_L2 = 1e-3
PROBE_MAX_ITER = 50  # L-BFGS iterations: the accuracies no longer change after them (100 gave the same)
_STD_FLOOR = 1e-6  # a feature constant over the training images is centred, not blown up


class ProbeError(ValueError):
    """The probe cannot run with this model or these settings; ``str(err)`` says why."""


@dataclass(frozen=True)
class ProbeProgress:
    """Reported through ``control.report``: phase "features" counts images through the network (``total``
    is the dataset's), then phase "probes" counts the layers whose linear probe is trained."""

    phase: str
    done: int
    total: int


class _AllCaptured(Exception):  # control flow, not an error: every probe point's output is in
    pass


def pooled_block_features(
    model: nn.Module,
    layers: Sequence[tuple[str, nn.Module]],
    samples: ImageSamples,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    control: Control | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Global-average-pooled outputs of every ``layers`` module for every image of ``samples``.

    One forward pass per batch (eval mode, no autograd): hooks keep ``output.mean((-2, -1))`` as float16
    on the CPU, and the pass stops once the last probe point has produced its output. ``model`` is moved
    to ``device`` (and left there, in the train/eval mode it had). Returns ({layer name: (N, C) float16},
    readable) where ``readable`` is an (N,) bool mask; an unreadable image's rows are zeros. Reports
    :class:`ProbeProgress` ("features") and honours ``control`` between batches.
    """
    if not layers:
        raise ProbeError(f"{type(model).__name__}: no probe points were given")
    if batch_size < 1:
        raise ProbeError(f"batch size must be at least 1, not {batch_size}")
    device = torch.device(device)
    n = len(samples)
    features: dict[str, np.ndarray] = {}
    readable = np.zeros(n, dtype=bool)
    captured: dict[str, Tensor] = {}

    def hook_for(name: str):
        def keep(_module: nn.Module, _args: tuple, output: object) -> None:
            if not isinstance(output, Tensor) or output.ndim != 4:
                shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
                raise ProbeError(f"probe point {name} gives {shape}, not an (N, C, h, w) feature map")
            captured[name] = output.mean((-2, -1)).to("cpu", torch.float16)
            if len(captured) == len(layers):
                raise _AllCaptured  # the rest of the network (the head) is not needed

        return keep

    was_training = model.training
    model.to(device).eval()
    handles = [module.register_forward_hook(hook_for(name)) for name, module in layers]
    plan = [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]
    loader = make_loader(samples, EpochBatches(plan), num_workers=resolve_num_workers(None, n))
    done = 0
    report(control, ProbeProgress("features", 0, n))
    try:
        for batch in loader:
            checkpoint(control)
            done += len(batch.failures) + int(batch.labels.numel())
            if batch.labels.numel():
                captured.clear()
                with torch.no_grad(), contextlib.suppress(_AllCaptured):
                    model(batch.images.to(device))
                missing = [name for name, _ in layers if name not in captured]
                if missing:
                    raise ProbeError(
                        f"{type(model).__name__}: the forward pass never reached {', '.join(missing)}"
                    )
                rows = batch.indices.numpy()
                for name, _ in layers:
                    pooled = captured[name].numpy()
                    if name not in features:
                        features[name] = np.zeros((n, pooled.shape[1]), dtype=np.float16)
                    features[name][rows] = pooled
                readable[rows] = True
            report(control, ProbeProgress("features", done, n))
    finally:
        close_loader(loader)
        for handle in handles:
            handle.remove()
        captured.clear()
        model.train(was_training)
    if not features:  # no image could be read: the channel counts come from the modules, if they tell
        for name, module in layers:
            features[name] = np.zeros((n, _out_channels(module)), dtype=np.float16)
    return features, readable


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return int(convs[-1].out_channels) if convs else 0


def train_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    n_classes: int,
    *,
    seed: int = 0,
) -> tuple[float, float]:
    """(training accuracy, validation accuracy) of a multinomial logistic regression on ``train_x``.

    The features are standardised with the training images' mean and standard deviation, the weights
    start at zero and full-batch L-BFGS minimises the mean cross-entropy plus ``PROBE_L2/2 · ‖W‖²``, in
    float32. The problem is convex with one optimum, so the result does not depend on a starting draw;
    ``seed`` only fixes torch's random state for the duration, should a step ever draw. Validation
    accuracy is NaN when there is no validation image.
    """
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ProbeError(f"a linear probe needs (N, C) training features with N > 0, not {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ProbeError(f"{x.shape[0]} training feature rows but labels of shape {tuple(y.shape)}")
    if n_classes < 1 or int(y.max()) >= n_classes or int(y.min()) < 0:
        raise ProbeError(f"labels must lie in 0..{n_classes - 1}")
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(_STD_FLOOR)
    x = (x - mean) / std

    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        weight = torch.zeros(x.shape[1], n_classes, requires_grad=True)
        bias = torch.zeros(n_classes, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=PROBE_MAX_ITER, history_size=20, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(x @ weight + bias, y) + 0.5 * PROBE_L2 * weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        train_acc = float(((x @ weight + bias).argmax(1) == y).float().mean())
        vx = torch.as_tensor(np.asarray(val_x), dtype=torch.float32)
        vy = torch.as_tensor(np.asarray(val_y), dtype=torch.long)
        if vx.ndim != 2 or vx.shape[0] == 0:
            return train_acc, float("nan")
        val_acc = float(((((vx - mean) / std) @ weight + bias).argmax(1) == vy).float().mean())
    return train_acc, val_acc


def probe_every_block(
    scan: DatasetScan,
    model_name: str,
    *,
    image_size: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
    allow_download: bool = True,
    seed: int = 0,
    control: Control | None = None,
) -> ProbeReport:
    """A linear probe on every probe point of the pretrained ``model_name``, trained on ``scan.train``
    and scored on ``scan.val``, from one pass over the images (see the module docstring).

    Raises zoo.ModelLoadError (unknown model), ConfigError (unavailable device), ProbeError (bad settings,
    a model without probe points), DatasetError (no readable training image) and Cancelled.
    """
    if image_size is not None and image_size < 16:
        raise ProbeError(f"image size must be at least 16 pixels, not {image_size}")
    if batch_size < 1:
        raise ProbeError(f"batch size must be at least 1, not {batch_size}")
    if not scan.train:
        raise DatasetError(f"{scan.root} has no training images to train the probes on.")
    dev = resolve_device(device)
    loaded = zoo.build_model(model_name, pretrained=True, allow_download=allow_download, control=control)
    layers = probe_layers(loaded.model)
    if not layers:
        raise ProbeError(
            f"{loaded.info.title} has no convolutional block whose feature map a linear probe could read"
        )
    preprocess = run_preprocess(loaded.preprocess, image_size)
    samples = ImageSamples([*scan.train, *scan.val], preprocess, gray=preprocess.grayscale)

    start = time.perf_counter()
    features, readable = pooled_block_features(
        loaded.model, layers, samples, batch_size=batch_size, device=dev, control=control
    )
    feature_seconds = time.perf_counter() - start
    loaded.model.to("cpu")  # the GPU memory is not needed for the probes

    n_train = len(scan.train)
    labels = np.array([y for _, y in scan.train] + [y for _, y in scan.val], dtype=np.int64)
    train_ok = readable.copy()
    train_ok[n_train:] = False
    val_ok = readable.copy()
    val_ok[:n_train] = False
    if not train_ok.any():
        raise DatasetError(
            f"None of the {n_train} training images of {scan.root} could be read (first: "
            f"{scan.train[0][0]}); there is nothing to train the probes on."
        )

    start = time.perf_counter()
    rows: list[ProbeRow] = []
    report(control, ProbeProgress("probes", 0, len(layers)))
    for depth, (name, _) in enumerate(layers, start=1):
        checkpoint(control)
        feats = features[name]
        train_acc, val_acc = train_linear_probe(
            feats[train_ok], labels[train_ok], feats[val_ok], labels[val_ok], scan.num_classes, seed=seed
        )
        rows.append(ProbeRow(name, depth, int(feats.shape[1]), train_acc, val_acc))
        report(control, ProbeProgress("probes", depth, len(layers)))
    probe_seconds = time.perf_counter() - start

    return ProbeReport(
        model=model_name,
        rows=rows,
        class_names=list(scan.class_names),
        n_train=int(train_ok.sum()),
        n_val=int(val_ok.sum()),
        image_size=preprocess.crop,
        feature_seconds=feature_seconds,
        probe_seconds=probe_seconds,
        feature_bytes=sum(int(f.nbytes) for f in features.values()),
        skipped=int((~readable).sum()),
    )


# -- files -----------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) else "nan"


def write_probe_csv(report: ProbeReport, path: str | os.PathLike[str]) -> Path:
    """One row per probe point: ``layer,depth,val_accuracy,channels,train_accuracy`` (accuracies 0..1,
    ``nan`` without validation images). Written to a temporary name and renamed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in report.rows:
        writer.writerow([r.layer, r.depth, _fmt(r.val_accuracy), r.channels, _fmt(r.train_accuracy)])
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))
    return path


def write_probe_png(report: ProbeReport, path: str | os.PathLike[str]) -> Path:
    """The chart: validation (and training) accuracy against depth, chance level, the best layer marked."""
    depths = [float(r.depth) for r in report.rows]
    if not depths:
        raise ProbeError("the probe report has no rows to draw")
    # training first, so the validation line (the one that matters) is drawn over it
    series: list[tuple[Sequence[float], Sequence[float], str]] = [
        (depths, [r.train_accuracy for r in report.rows], "training")
    ]
    if any(math.isfinite(r.val_accuracy) for r in report.rows):
        series.append((depths, [r.val_accuracy for r in report.rows], "validation"))
    if report.class_names:
        chance = 1.0 / len(report.class_names)
        series.append(([depths[0], depths[-1]], [chance, chance], f"chance (1/{len(report.class_names)})"))
    best = report.best
    marker = None
    if best is not None:
        marker = (float(best.depth), best.val_accuracy, f"best: {best.layer}, {best.val_accuracy:.0%}")
    step = max(1, math.ceil(len(depths) / 20))
    ticks = [(d, str(int(d))) for d in depths[::step]]
    return line_chart_png(
        path,
        series,
        title=(
            f"Linear probe on every block of {report.model} "
            f"({report.n_train} train / {report.n_val} val images, {report.image_size} px)"
        ),
        x_label=f"probe point, input to output ({report.rows[0].layer} ... {report.rows[-1].layer})",
        y_label="accuracy",
        marker=marker,
        x_ticks=ticks,
    )
