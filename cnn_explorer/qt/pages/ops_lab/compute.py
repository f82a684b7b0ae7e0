"""The Operations lab's worker body: what the lab computes on (:class:`LabInput`), what comes back
(:class:`LabOutcome`), and :func:`compute_lab`, which runs in a JobSlot off the GUI thread. No Qt here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.ops import LabResult, LabSettings, conv_output_shape, image_to_input, run_lab


@dataclass(frozen=True)
class LabInput:
    """What the lab computes on: part of an image, or a typed matrix."""

    kind: str  # "image" | "matrix"
    pixels: np.ndarray | None = None
    channels: str = "gray"
    size: int = 64
    scale: float = 255.0
    matrix: np.ndarray | None = None


@dataclass(frozen=True)
class LabOutcome:
    source: LabInput  # what it was computed from (the controls may have moved on since)
    x: np.ndarray  # the input as computed on: (H, W) or (C, H, W)
    result: LabResult | None  # None when the convolution is impossible
    error_stage: str | None = None  # "conv" | "pool"
    error: str = ""


def compute_lab(source: LabInput, settings: LabSettings, control: Control | None = None) -> LabOutcome:
    """Worker body: prepare the input, then conv → activation → pool; impossible settings are reported."""
    if source.kind == "matrix":
        x = np.asarray(source.matrix, dtype=np.float64)
    else:
        x = image_to_input(source.pixels, source.channels, source.size, source.scale)
    checkpoint(control)
    s = settings
    try:
        conv_output_shape(x.shape[-2:], np.shape(s.kernel), s.stride, s.padding, s.dilation)
    except ValueError as exc:
        return LabOutcome(source, x, None, "conv", str(exc))
    try:
        return LabOutcome(source, x, run_lab(x, s, control))
    except ValueError as exc:  # the pooling window does not fit: still show conv and activation
        result = run_lab(x, dataclasses.replace(s, pool_mode="none"), control)
        return LabOutcome(source, x, result, "pool", str(exc))
