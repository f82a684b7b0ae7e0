"""The Operations lab's worker body: what the lab computes on (:class:`LabInput`), which gradient to send
back (:class:`BackwardRequest`), what comes back (:class:`LabOutcome`), and :func:`compute_lab`, which runs
in a JobSlot off the GUI thread. No Qt here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.lab import (
    LabGradients,
    LabResult,
    LabSettings,
    lab_backward,
    lab_filters,
    run_lab,
    upstream_gradient,
)
from cnn_explorer.core.ops import conv_output_shape, image_to_input


@dataclass(frozen=True)
class LabInput:
    """What the lab computes on: part of an image, a typed matrix, or a course example's array."""

    kind: str  # "image" | "matrix" | "array" (an example's (H, W) or (C, H, W) input, used as it is)
    pixels: np.ndarray | None = None
    channels: str = "gray"
    size: int = 64
    scale: float = 255.0
    matrix: np.ndarray | None = None  # "matrix": (H, W); "array": (H, W) or (C, H, W)
    keep: int | None = None  # use only the first `keep` channels (the depth panel's C_in); 1 gives (H, W)


@dataclass(frozen=True)
class BackwardRequest:
    """Which gradient dL/d(output) to start the backward pass from (core's ``upstream_gradient``)."""

    kind: str = "ones"  # "ones" | "random" | "cell"
    cell: tuple[int, ...] | None = None  # "cell": (row, col) or (channel, row, col); clamped to the output
    seed: int = 0


@dataclass(frozen=True)
class LabOutcome:
    source: LabInput  # what it was computed from (the controls may have moved on since)
    x: np.ndarray  # the input as computed on: (H, W) or (C, H, W)
    result: LabResult | None  # None when the convolution is impossible
    error_stage: str | None = None  # "conv" | "pool"
    error: str = ""
    gradients: LabGradients | None = None  # only when a backward pass was asked for
    upstream_cell: tuple[int, ...] | None = None  # the cell the "cell" gradient was put on, as used


def lab_input_array(source: LabInput) -> np.ndarray:
    """The input as the lab computes on it: (H, W) or (C, H, W)."""
    if source.kind in ("matrix", "array"):
        x = np.asarray(source.matrix, dtype=np.float64)
    else:
        x = image_to_input(source.pixels, source.channels, source.size, source.scale)
    if source.keep is not None and x.ndim == 3 and source.keep < x.shape[0]:
        x = x[0] if source.keep == 1 else x[: source.keep]
    return x


def _clamped_cell(cell: tuple[int, ...] | None, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The clicked cell, moved inside an output of ``shape`` (a stale click after a settings change)."""
    h, w = shape[-2:]
    channels = shape[0] if len(shape) == 3 else 1
    *channel, r, c = cell if cell else (0, 0)
    spot = (min(max(int(r), 0), h - 1), min(max(int(c), 0), w - 1))
    if channel and channels > 1:
        return (min(max(int(channel[0]), 0), channels - 1), *spot)
    return spot


def upstream_for(result: LabResult, request: BackwardRequest) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The gradient dL/d(output) the request asks for, and the output cell it starts from (if one)."""
    shape = result.output.shape
    cell = _clamped_cell(request.cell, shape) if request.kind == "cell" else None
    return upstream_gradient(request.kind, shape, cell=cell, seed=request.seed), cell


def _backward(result: LabResult, request: BackwardRequest) -> tuple[LabGradients, tuple[int, ...] | None]:
    upstream, cell = upstream_for(result, request)
    return lab_backward(result, upstream), cell


def compute_lab(
    source: LabInput,
    settings: LabSettings,
    backward: BackwardRequest | None = None,
    control: Control | None = None,
) -> LabOutcome:
    """Worker body: prepare the input, then the stages that are on (and, when asked, the backward pass);
    impossible settings are reported with the stage they belong to."""
    x = lab_input_array(source)
    checkpoint(control)
    s = settings
    if s.conv:
        try:
            weights, _ = lab_filters(x.shape, s)
            conv_output_shape(x.shape[-2:], weights.shape[-2:], s.stride, s.padding, s.dilation)
        except ValueError as exc:
            return LabOutcome(source, x, None, "conv", str(exc))
    try:
        result = run_lab(x, s, control)
        error_stage, error = None, ""
    except ValueError as exc:  # the pooling window does not fit: still show conv and activation
        result = run_lab(x, dataclasses.replace(s, pool_mode="none"), control)
        error_stage, error = "pool", str(exc)
    if backward is None:
        return LabOutcome(source, x, result, error_stage, error)
    checkpoint(control)
    gradients, cell = _backward(result, backward)
    return LabOutcome(source, x, result, error_stage, error, gradients, cell)
