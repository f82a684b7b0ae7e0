"""What the explorer shows of a network: the whole pass on a picture (:func:`explore`), each step's
channels tiled and coloured into a grid with its statistics (:func:`prepare_layer_view`, a pure function
the GUI runs in a worker) and the receptive field of a clicked unit.

The pass itself, which keeps every step's output, is :mod:`cnn_explorer.core.capture`; its names are
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnn_explorer.core.capture import (
    MAX_LAYER_BYTES,
    MAX_TOTAL_BYTES,
    Activation,
    Capture,
    Prediction,
    capture_activations,
    top_predictions,
)
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.layers import LayerRow, LayerTable, layer_table, step_modules
from cnn_explorer.core.zoo import LoadedModel

__all__ = [
    "COLORMAPS",
    "Activation",
    "Capture",
    "Exploration",
    "Grid",
    "LayerStats",
    "LayerView",
    "Prediction",
    "Region",
    "apply_colormap",
    "capture_activations",
    "channel_order",
    "explore",
    "grid_columns",
    "layer_stats",
    "prepare_layer_view",
    "receptive_region",
    "render_grid",
    "tile_channels",
    "top_predictions",
]

# ---------------------------------------------------------------------------------------------------------
# The whole explorer pass, for the GUI and the CLI alike


@dataclass
class Exploration:
    capture: Capture
    table: LayerTable
    predictions: list[Prediction]  # top-5
    pixels: np.ndarray  # uint8, the resized and cropped picture the network saw (for overlays)

    def row(self, name: str) -> LayerRow:
        return self.table.row(name)


def explore(
    loaded: LoadedModel,
    pixels: np.ndarray,
    *,
    top_k: int = 5,
    table: LayerTable | None = None,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    control: Control | None = None,
) -> Exploration:
    """Preprocess ``pixels`` for ``loaded``, capture every step, and compute the layer table and top-k.

    The layer table depends only on the model and the input size: pass the previous result's ``table``
    when only the image changed, to skip recomputing it (one that does not fit is recomputed).
    """
    x = loaded.preprocess(pixels)
    checkpoint(control)
    steps = {name for name, _, _ in step_modules(loaded.model)}
    fits = table is not None and tuple(table.input_shape) == tuple(x.shape)
    if not fits or not {r.module_name for r in table.rows} <= steps:
        table = layer_table(loaded.model, tuple(x.shape[1:]), in_channels=int(x.shape[0]), control=control)
    capture = capture_activations(
        loaded.model,
        x,
        table=table,
        max_layer_bytes=max_layer_bytes,
        max_total_bytes=max_total_bytes,
        control=control,
    )
    return Exploration(
        capture, table, capture.top(loaded.categories, top_k), loaded.preprocess.crop_pixels(pixels)
    )


# ---------------------------------------------------------------------------------------------------------
# Grids


def channel_order(fmap: np.ndarray, by: str = "mean") -> np.ndarray:
    """Channel indices sorted by ``by`` ("mean" or "max" activation), largest first; "index" keeps order."""
    c = fmap.shape[0]
    if by == "index":
        return np.arange(c)
    flat = np.asarray(fmap, dtype=np.float32).reshape(c, -1)
    if by == "mean":
        key = flat.mean(axis=1)
    elif by == "max":
        key = flat.max(axis=1)
    else:
        raise ValueError(f"unknown channel order {by!r} (use 'mean', 'max' or 'index')")
    return np.argsort(-key, kind="stable")


@dataclass
class Grid:
    """Channels tiled into one image; gaps between cells are NaN."""

    image: np.ndarray  # float32 (rows·(h + gap) − gap, columns·(w + gap) − gap)
    columns: int
    rows: int
    cell: tuple[int, int]  # (h, w) of one channel
    gap: int
    order: np.ndarray  # channel shown in cell i
    value_range: tuple[float, float]  # what 0 and 1 mean in the original units (per-layer scaling)

    def cell_origin(self, i: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of cell i."""
        r, c = divmod(i, self.columns)
        return r * (self.cell[0] + self.gap), c * (self.cell[1] + self.gap)

    def channel_at(self, y: float, x: float) -> int | None:
        """The channel under grid pixel (y, x), None over a gap or an empty cell."""
        if y < 0 or x < 0:
            return None
        ph, pw = self.cell[0] + self.gap, self.cell[1] + self.gap
        r, c = int(y // ph), int(x // pw)
        if c >= self.columns or y - r * ph >= self.cell[0] or x - c * pw >= self.cell[1]:
            return None
        i = r * self.columns + c
        return int(self.order[i]) if i < len(self.order) else None


def tile_channels(
    fmap: np.ndarray,
    *,
    columns: int | None = None,
    order: np.ndarray | Sequence[int] | None = None,
    normalize: str = "channel",
    gap: int = 1,
) -> Grid:
    """Tile a (C, H, W) map into a near-square grid, values scaled to 0..1.

    ``normalize``: "channel" stretches each channel to its own min..max (shows every pattern), "layer"
    uses the whole layer's min..max (shows which channels are strong), "none" keeps raw values.
    """
    fmap = np.asarray(fmap)
    if fmap.ndim == 1:
        fmap = fmap[:, None, None]
    if fmap.ndim != 3:
        raise ValueError(f"expected a (C, H, W) feature map, got shape {fmap.shape}")
    c, h, w = fmap.shape
    idx = np.arange(c) if order is None else np.asarray(order, dtype=np.int64)
    n = len(idx)
    if columns is None:
        columns = max(1, math.ceil(math.sqrt(n * h / w)))
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    data = np.take(fmap, idx, axis=0).astype(np.float32, copy=False)  # (one copy: ours to change)
    if normalize not in ("channel", "layer", "none"):
        raise ValueError(f"unknown normalisation {normalize!r} (use 'channel', 'layer' or 'none')")
    if normalize == "channel" and data.size:  # in place, one pass each (the layer's range from the channels')
        lo = data.min(axis=(1, 2), keepdims=True)
        hi = data.max(axis=(1, 2), keepdims=True)
        lo_all, hi_all = float(lo.min()), float(hi.max())
        span = hi - lo
        data -= lo
        with np.errstate(invalid="ignore"):  # (an infinite channel: inf / inf, NaN as before)
            np.divide(data, span, out=data, where=span > 0)
        flat = ~(span[:, 0, 0] > 0)  # one value only (or NaN): a dark cell
        if flat.any():
            data[flat] = 0
    else:
        lo_all, hi_all = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
        if normalize == "layer":
            span = hi_all - lo_all
            data = (data - lo_all) / span if span > 0 else np.zeros_like(data)
    # (rows, cols, h, w) with the gap on the right/bottom of every cell, then drop the last one.
    padded = np.full((rows, columns, h + gap, w + gap), np.nan, np.float32)
    padded.reshape(rows * columns, h + gap, w + gap)[:n, :h, :w] = data
    image = padded.transpose(0, 2, 1, 3).reshape(rows * (h + gap), columns * (w + gap))
    image = image[: rows * (h + gap) - gap, : columns * (w + gap) - gap]
    return Grid(np.ascontiguousarray(image), columns, rows, (h, w), gap, idx, (lo_all, hi_all))


# Colormaps as a few anchor colours (evenly spaced samples of the well-known maps), interpolated to 256.
_ANCHORS = {
    "gray": ["#000000", "#ffffff"],
    "viridis": [
        "#440154",
        "#472d7b",
        "#3b528b",
        "#2c728e",
        "#21918c",
        "#28ae80",
        "#5ec962",
        "#addc30",
        "#fde725",
    ],
    "inferno": [
        "#000004",
        "#1f0c48",
        "#550f6d",
        "#88226a",
        "#ba3655",
        "#e35933",
        "#f98e09",
        "#f9cb35",
        "#fcffa4",
    ],
    "coolwarm": ["#3b4cc0", "#7b9ff9", "#c0d4f5", "#f2cbb7", "#ee8468", "#b40426"],
}
COLORMAPS = tuple(_ANCHORS)
_LUTS: dict[str, np.ndarray] = {}
_LUTS_WITH: dict[tuple, np.ndarray] = {}


def _lut(name: str) -> np.ndarray:
    if name not in _LUTS:
        try:
            anchors = _ANCHORS[name]
        except KeyError:
            raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}") from None
        rgb = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in anchors], dtype=np.float64)
        pos = np.linspace(0, 1, len(anchors))
        t = np.linspace(0, 1, 256)
        _LUTS[name] = (
            np.stack([np.interp(t, pos, rgb[:, ch]) for ch in range(3)], axis=1).round().astype(np.uint8)
        )
    return _LUTS[name]


def apply_colormap(
    values: np.ndarray, cmap: str = "viridis", background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """0..1 floats → uint8 RGB through a colormap; NaN (grid gaps) becomes ``background``."""
    lut = _lut_with(cmap, background)
    scaled = np.asarray(values, dtype=np.float32) * np.float32(255)  # (a fresh array, changed in place)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)  # ±inf to the ends; NaN stays NaN
    np.nan_to_num(scaled, copy=False, nan=256.0)  # NaN: the background's entry, after the 256 colours
    return np.take(lut, scaled.astype(np.uint16), axis=0)  # np.take: ~4x faster than lut[idx] here


def _lut_with(name: str, background: tuple[int, int, int]) -> np.ndarray:
    """The colour map's 256 colours and, as entry 256, the background (one lookup paints both)."""
    key = (name, *background)
    if key not in _LUTS_WITH:
        _LUTS_WITH[key] = np.vstack([_lut(name), np.asarray(background, np.uint8)[None]])
    return _LUTS_WITH[key]


def render_grid(
    fmap: np.ndarray,
    *,
    cmap: str = "viridis",
    normalize: str = "channel",
    sort_by: str = "index",
    columns: int | None = None,
    gap: int = 1,
) -> np.ndarray:
    """A (C, H, W) map as one RGB uint8 picture of all channels (for PNGs and slides)."""
    order = channel_order(fmap, sort_by)
    grid = tile_channels(fmap, columns=columns, order=order, normalize=normalize, gap=gap)
    return apply_colormap(grid.image, cmap)


# ---------------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class LayerStats:
    minimum: float
    mean: float
    maximum: float
    std: float
    zero_fraction: float  # share of exact zeros (what a ReLU switched off)
    negative_fraction: float
    hist_counts: np.ndarray  # int64 (bins,)
    hist_edges: np.ndarray  # float64 (bins + 1,)
    count: int


def layer_stats(values: np.ndarray, bins: int = 64) -> LayerStats:
    """Min/mean/max, share of zeros and a histogram of one step's activations."""
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size == 0:
        raise ValueError("no activations to summarise")
    lo, hi = float(v.min()), float(v.max())
    finite = v
    if not (math.isfinite(lo) and math.isfinite(hi)):  # (NaN anywhere makes min or max NaN)
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi if hi > lo else lo + 1e-6))
    return LayerStats(
        minimum=lo,
        mean=float(finite.mean(dtype=np.float64)) if finite.size else float("nan"),
        maximum=hi,
        std=float(finite.std(dtype=np.float64)) if finite.size else float("nan"),
        zero_fraction=float(np.count_nonzero(v == 0) / v.size),
        negative_fraction=float(np.count_nonzero(v < 0) / v.size),
        hist_counts=counts.astype(np.int64),
        hist_edges=edges,
        count=int(v.size),
    )


# ---------------------------------------------------------------------------------------------------------
# One step as the explorer shows it


def grid_columns(shape: Sequence[int], aspect: float = 1.0) -> int:
    """Columns for tiling a (C, H, W) map, or an (N,) vector (one cell per value), into a grid whose
    overall shape is near ``aspect`` (width / height of the space it is drawn in)."""
    c, h, w = _as_cells(tuple(shape))
    gap = _cell_gap(h, w)
    cols = math.sqrt(c * (h + gap) / (w + gap) * max(aspect, 1e-3))
    return max(1, min(c, math.ceil(cols)))


def _as_cells(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 1:
        return shape[0], 1, 1
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise ValueError(f"expected a (C, H, W) feature map or a vector, got shape {shape}")


def _cell_gap(h: int, w: int) -> int:
    return 0 if (h, w) == (1, 1) else 1  # one-pixel cells (a vector) need no gaps


@dataclass(eq=False)
class LayerView:
    """Everything the explorer draws for one step, computed in one go off the GUI thread.

    Arrays are plain numpy, not shared with torch. ``values`` is the capture's own copy, read-only.
    """

    name: str
    values: np.ndarray  # (C, H, W), float16 (float32 beyond its range); a vector as (N, 1, 1); read-only
    spatial: bool  # False for a vector (a linear layer's output)
    sort_by: str
    normalize: str  # as asked ("channel" | "layer")
    scaling: str  # as used: a vector's one-value cells always share the layer's range
    cmap: str
    grid: Grid  # tiled values in 0..1 (NaN in the gaps), the channel order, the value range
    rgb: np.ndarray  # uint8 (H, W, 3): ``grid.image`` through the colour map, gaps white
    stats: LayerStats

    @property
    def channels(self) -> int:
        return int(self.values.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory this view adds to the capture's own values."""
        return self.grid.image.nbytes + self.rgb.nbytes

    def channel_map(self, channel: int) -> np.ndarray:
        """One channel as a float32 (H, W) array (a fresh copy)."""
        return self.values[channel].astype(np.float32)


def prepare_layer_view(
    capture: Capture,
    name: str,
    *,
    sort_by: str = "index",
    normalize: str = "channel",
    cmap: str = "viridis",
    columns: int | None = None,
    stats: LayerStats | None = None,
    bins: int = 64,
    control: Control | None = None,
) -> LayerView:
    """Step ``name`` of ``capture`` ready to draw: its values (recomputed now if the step is derived),
    its channels ordered by ``sort_by``, tiled in ``columns`` (default: a square grid) and scaled by
    ``normalize``, coloured with ``cmap``, and its statistics (pass ``stats`` to reuse them).

    Costs tens of milliseconds for an early layer of a real network: the explorer calls it in a worker.
    Raises ``ValueError`` when the step's values were too large to keep.
    """
    act = capture[name]
    data = act.data
    if data is None:
        raise ValueError(f"{name}'s output was too large to keep: there is nothing to draw")
    c, h, w = _as_cells(tuple(data.shape))
    values = data.reshape(c, h, w).view()
    values.flags.writeable = False  # the capture's copy: a view must not change it
    checkpoint(control)
    scaling = "layer" if (h, w) == (1, 1) else normalize
    order = channel_order(values, sort_by)
    checkpoint(control)
    grid = tile_channels(
        values,
        columns=columns if columns is not None else grid_columns(values.shape),
        order=order,
        normalize=scaling,
        gap=_cell_gap(h, w),
    )
    checkpoint(control)
    rgb = apply_colormap(grid.image, cmap)
    checkpoint(control)
    if stats is None:
        stats = layer_stats(values, bins)
    return LayerView(name, values, len(data.shape) == 3, sort_by, normalize, scaling, cmap, grid, rgb, stats)


# ---------------------------------------------------------------------------------------------------------
# Receptive field of one unit


@dataclass(frozen=True)
class Region:
    """Input pixels [top, bottom] × [left, right] (inclusive) that can influence one unit."""

    top: int
    left: int
    bottom: int
    right: int
    full_height: int  # the theoretical field, before clipping to the image
    full_width: int
    clipped: bool  # part of the field lies in the padding outside the image

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1


def receptive_region(row: LayerRow, y: int, x: int, input_hw: tuple[int, int]) -> Region:
    """The input region seen by unit (y, x) of ``row``'s feature map, clipped to the ``input_hw`` image.

    Uses the layer table's receptive-field size, jump and start (see ``layers.py`` for where branching
    makes them approximate). Layers after flattening see the whole input.
    """
    h, w = input_hw
    if row.rf_size is None or row.rf_jump is None or row.rf_start is None:
        return Region(0, 0, h - 1, w - 1, h, w, False)
    if len(row.out_shape) == 3 and not (0 <= y < row.out_shape[1] and 0 <= x < row.out_shape[2]):
        raise IndexError(f"unit ({y}, {x}) is outside {row.name}'s {row.out_shape[1]}×{row.out_shape[2]} map")
    bounds = []
    for pos, axis in ((y, 0), (x, 1)):
        centre = row.rf_start[axis] + pos * row.rf_jump[axis]
        half = (row.rf_size[axis] - 1) / 2
        bounds.append((math.floor(centre - half + 1e-9), math.ceil(centre + half - 1e-9)))
    (t, b), (left, r) = bounds
    clipped = t < 0 or left < 0 or b > h - 1 or r > w - 1
    return Region(max(t, 0), max(left, 0), min(b, h - 1), min(r, w - 1), b - t + 1, r - left + 1, clipped)
