"""Named kernel presets and small example inputs for the operations lab.

Kernels are written as cross-correlation kernels (what deep-learning "convolution" computes): the number at
row i, column j multiplies the input under that position of the window, with no flipping. Sobel x therefore
gives positive values where the image gets brighter from left to right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_KERNEL_SIDE = 1
MAX_KERNEL_SIDE = 7


@dataclass(frozen=True)
class Preset:
    name: str
    values: tuple[tuple[float, ...], ...]  # immutable, so a preset cannot be edited by accident
    description: str

    @property
    def array(self) -> np.ndarray:
        """A fresh float64 copy, safe to edit."""
        return np.array(self.values, dtype=np.float64)


def _preset(name: str, values: np.ndarray | list, description: str) -> Preset:
    arr = np.asarray(values, dtype=np.float64)
    return Preset(name, tuple(tuple(float(v) for v in row) for row in arr), description)


_GAUSS_1D = np.array([1.0, 4.0, 6.0, 4.0, 1.0])

KERNEL_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset("identity", [[0, 0, 0], [0, 1, 0], [0, 0, 0]], "Copies the input: only the centre counts."),
        _preset("box blur", np.full((3, 3), 1 / 9), "The average of the 3×3 neighbourhood."),
        _preset(
            "Gaussian blur",
            np.outer([1, 2, 1], [1, 2, 1]) / 16,
            "A weighted average: near neighbours count more. Smooths noise.",
        ),
        _preset(
            "Gaussian blur 5×5",
            np.outer(_GAUSS_1D, _GAUSS_1D) / 256,
            "A wider Gaussian: stronger smoothing.",
        ),
        _preset(
            "sharpen",
            [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
            "The pixel minus its neighbours, added back: edges stand out.",
        ),
        _preset(
            "Sobel x",
            [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
            "Horizontal change (right minus left): lights up vertical edges.",
        ),
        _preset(
            "Sobel y",
            [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
            "Vertical change (bottom minus top): lights up horizontal edges.",
        ),
        _preset(
            "Prewitt x", [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], "Like Sobel x with equal weights for each row."
        ),
        _preset(
            "Prewitt y",
            [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
            "Like Sobel y with equal weights for each column.",
        ),
        _preset(
            "Laplacian",
            [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
            "Neighbours minus the centre: responds to edges in every direction, zero on flat areas.",
        ),
        _preset(
            "emboss",
            [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
            "A diagonal difference plus the pixel itself: looks like relief.",
        ),
        _preset(
            "vertical edge",
            [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
            "Bright on the left, dark on the right gives a large positive value.",
        ),
        _preset(
            "horizontal edge",
            [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
            "Bright on top, dark below gives a large positive value.",
        ),
        _preset(
            "course example [[0,1],[1,0]]",
            [[0, 1], [1, 0]],
            "The course's 2×2 example: adds the two anti-diagonal neighbours.",
        ),
    )
}

COURSE_KERNEL = "course example [[0,1],[1,0]]"


def kernel_preset(name: str) -> np.ndarray:
    """A preset kernel by name (a fresh copy); raises ValueError naming the choices."""
    try:
        return KERNEL_PRESETS[name].array
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; choose one of: {', '.join(KERNEL_PRESETS)}") from None


def validate_kernel(values: np.ndarray | list) -> np.ndarray:
    """A custom kernel as float64, checked: 2-D, each side 1…7, finite numbers."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"a kernel is a 2-D grid of numbers, got {arr.ndim} dimension(s)")
    h, w = arr.shape
    if not (MIN_KERNEL_SIDE <= h <= MAX_KERNEL_SIDE and MIN_KERNEL_SIDE <= w <= MAX_KERNEL_SIDE):
        raise ValueError(
            f"a kernel is {MIN_KERNEL_SIDE}×{MIN_KERNEL_SIDE} to {MAX_KERNEL_SIDE}×{MAX_KERNEL_SIDE}, "
            f"got {h}×{w}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("every kernel value must be a finite number")
    return arr


def _vertical_edge_image() -> np.ndarray:
    return np.array([[10] * 3 + [0] * 3] * 6, dtype=np.float64)


def _checkerboard() -> np.ndarray:
    return ((np.indices((8, 8)).sum(axis=0) % 2) * 9.0).astype(np.float64)


def _cross() -> np.ndarray:
    a = np.zeros((7, 7))
    a[3, 1:6] = 9
    a[1:6, 3] = 9
    return a


INPUT_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset("4×4 matrix 1…16", np.arange(1, 17).reshape(4, 4), "The course's worked example."),
        _preset(
            "6×6 vertical edge",
            _vertical_edge_image(),
            "Bright left half, dark right half: one vertical edge.",
        ),
        _preset("7×7 cross", _cross(), "A plus sign: a vertical and a horizontal stroke."),
        _preset("8×8 checkerboard", _checkerboard(), "Alternating 0 and 9: an edge everywhere."),
        _preset("5×5 diagonal", np.eye(5) * 9, "A diagonal line."),
    )
}

COURSE_MATRIX = "4×4 matrix 1…16"


def input_preset(name: str) -> np.ndarray:
    """An example input matrix by name (a fresh copy)."""
    try:
        return INPUT_PRESETS[name].array
    except KeyError:
        raise ValueError(f"unknown example {name!r}; choose one of: {', '.join(INPUT_PRESETS)}") from None


@dataclass(frozen=True)
class ChannelMix:
    """A 1×1 filter on an RGB input: one weight per channel, no neighbours. It mixes colours per pixel."""

    name: str
    weights: tuple[float, float, float]  # red, green, blue
    description: str

    @property
    def array(self) -> np.ndarray:
        """The filter as a (3, 1, 1) float64 array: C_in × 1 × 1."""
        return np.array(self.weights, dtype=np.float64).reshape(3, 1, 1)


CHANNEL_MIXES: dict[str, ChannelMix] = {
    m.name: m
    for m in (
        ChannelMix("grey", (0.299, 0.587, 0.114), "Brightness as the eye sees it (ITU-R 601 luma)."),
        ChannelMix(
            "red minus green", (1.0, -1.0, 0.0), "Positive where red wins, negative where green wins."
        ),
        ChannelMix("blue minus yellow", (-0.5, -0.5, 1.0), "Blue against the mean of red and green."),
        ChannelMix("red", (1.0, 0.0, 0.0), "Keeps only the red channel."),
        ChannelMix("green", (0.0, 1.0, 0.0), "Keeps only the green channel."),
        ChannelMix("blue", (0.0, 0.0, 1.0), "Keeps only the blue channel."),
        ChannelMix("mean", (1 / 3, 1 / 3, 1 / 3), "The plain average of the three channels."),
    )
}
