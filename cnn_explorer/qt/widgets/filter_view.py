"""A layer's learned filters: the first layer's as colour patches, deeper ones one input slice at a time.

``FilterView(parent=None)`` is a :class:`MapView` plus a line of explanation. ``set_filters(facts, *,
selected=None, type_name="")`` takes a core ``LayerFacts`` (the weights as a numpy copy, the kind of
layer) and picks the telling picture:

- "rgb": a convolution on 3 input channels (the first layer): every filter as an RGB patch, grey = 0;
- "all": a convolution with one input channel per filter (LeNet's C1, depthwise convolutions): every
  k×k kernel, blue = negative, red = positive;
- "channel": any other convolution: the filter of the selected output channel, one k×k slice per input
  channel;
- "matrix": a linear layer's weight matrix (one row per output unit);
- "none": no filters (activation, pooling, normalisation, a block), with a message saying so.

The selected channel's filter is outlined. ``mode``, ``weights`` (what is drawn, in weight units) and
``map`` (the MapView) are public for tests. ``rgb_mosaic(weight)`` is the pure tiling function.
Asked again for the same weights (the facts' ``weight_version``), only what changed is redrawn (the
outline, or one channel's filter).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_explorer.core.explorer.layer_facts import FilterKind, LayerFacts
from cnn_explorer.core.features import Grid, tile_channels
from cnn_explorer.qt.widgets.feature_grid import SELECTED_COLOUR, colormap
from cnn_explorer.qt.widgets.map_view import MapView


def rgb_mosaic(weight: np.ndarray) -> tuple[np.ndarray, Grid]:
    """(N, 3, k, k) filters → (H, W, 3) picture in 0..1, each filter scaled so grey = 0; gaps white."""
    w = np.asarray(weight, dtype=np.float32)
    scale = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    scale[scale == 0] = 1.0
    patches = 0.5 + w / (2.0 * scale[:, None, None, None])
    planes = [tile_channels(patches[:, ch], normalize="none") for ch in range(3)]
    rgb = np.stack([p.image for p in planes], axis=-1)
    return np.nan_to_num(rgb, nan=1.0), planes[0]


class FilterView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.mode = "none"
        self.weights: np.ndarray | None = None
        self.grid: Grid | None = None
        self._shown: tuple[int, int | None] | None = None  # (weight version, selected) drawn now
        self.map = MapView("Filters", max_numbers_side=7)
        self.map.graphics.setMinimumSize(120, 120)
        for label in (self.map.title_label, self.map.caption_label):  # long titles must not widen the panel
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555; font-size: 11px;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.map, 1)
        layout.addWidget(self.note)

    @property
    def shown(self) -> tuple[int, int | None] | None:
        """What is drawn: (the weights' version, the filter outlined), or None."""
        return self._shown

    def clear(self, message: str = "") -> None:
        self.mode = "none"
        self.weights = None
        self.grid = None
        self._shown = None
        self.map.set_title("Filters")
        self.map.set_caption("")
        self.map.clear_map(message)
        self.note.setText("")

    def set_filters(
        self, facts: LayerFacts | None, *, selected: int | None = None, type_name: str = ""
    ) -> None:
        weights = facts.weights if facts is not None else None
        version = facts.weight_version if facts is not None and weights is not None else 0
        if version and self._shown is not None and self._shown[0] == version:
            if self.mode in ("rgb", "all"):  # every filter is drawn already: move the outline
                self._outline(selected)
                self._shown = (version, selected)
                return
            if self.mode == "matrix":
                self._highlight_row(selected)
                self._shown = (version, selected)
                return
            if self._shown[1] == selected:
                return
        if facts is not None and weights is not None and facts.filter_kind is FilterKind.CONV:
            self._show_conv(weights, selected, facts.colour_input)
            self._shown = (version, selected)
            self._add_caption(facts)
        elif facts is not None and weights is not None and facts.filter_kind is FilterKind.LINEAR:
            self._show_matrix(weights, selected)
            self._shown = (version, selected)
            self._add_caption(facts)
        elif facts is not None and facts.note:
            self.clear(facts.note)
        else:
            what = type_name or "This step"
            self.clear(
                f"{what} has no filters. Filters belong to convolution layers: step to a Conv layer "
                "(the first one shows its filters as colour patches)."
            )

    def _add_caption(self, facts: LayerFacts) -> None:
        if facts.caption:  # e.g. int8 weights shown dequantized
            self.note.setText(f"{self.note.text()} {facts.caption}".strip())

    def _show_conv(self, w: np.ndarray, selected: int | None, colour_input: bool) -> None:
        c_out, c_in, kh, kw = w.shape
        cmap = colormap("coolwarm")
        if colour_input:
            self.mode = "rgb"
            rgb, self.grid = rgb_mosaic(w)
            self.weights = w
            self.map.set_map(rgb, values=None)
            self.map.set_title(f"Filters: {c_out} × ({kh}×{kw}×3) as colour patches")
            self.note.setText(
                "Each patch is one filter's weights on the red, green and blue input: grey = 0, a colour "
                "= weights that respond to it. First layers learn edges and colour blobs."
            )
            self._outline(selected)
            return
        if c_in == 1:
            self.mode = "all"
            self.weights = w[:, 0]
            self.grid = tile_channels(self.weights, normalize="none")
            self.map.set_map(self.grid.image, colormap=cmap, symmetric=True)
            self.map.set_title(f"Filters: {c_out} kernels of {kh}×{kw}")
            self.note.setText(
                "One kernel per output channel, each applied to a single input channel (blue = negative, "
                "red = positive weight)."
            )
            self._outline(selected)
            return
        self.mode = "channel"
        channel = 0 if selected is None or not 0 <= selected < c_out else int(selected)
        self.weights = w[channel]
        self.grid = tile_channels(self.weights, normalize="none")
        self.map.set_map(self.grid.image, colormap=cmap, symmetric=True)
        self.map.set_highlight("selected", None)
        self.map.set_title(f"Filter of channel {channel}: {c_in} slices of {kh}×{kw}")
        if (kh, kw) == (1, 1):
            self.note.setText(
                f"A 1×1 convolution: channel {channel} is a weighted sum of the {c_in} input channels at the "
                "same position; these are its weights (blue = negative, red = positive)."
            )
        else:
            self.note.setText(
                f"Channel {channel} sums {c_in} input channels, each through its own {kh}×{kw} slice "
                "(blue = negative, red = positive)."
            )

    def _show_matrix(self, w: np.ndarray, selected: int | None) -> None:
        n_out, n_in = w.shape
        self.grid = None
        self.mode = "matrix"
        self.weights = w
        self.map.set_map(w, colormap=colormap("coolwarm"), symmetric=True)
        self.map.set_title(f"Weights: {n_out} × {n_in} (one row per output)")
        self.note.setText(
            "A fully-connected layer: output i is the weighted sum of all inputs with row i "
            "(blue = negative, red = positive)."
        )
        self._highlight_row(selected)

    def _highlight_row(self, selected: int | None) -> None:
        if self.weights is None or selected is None or not 0 <= selected < self.weights.shape[0]:
            self.map.set_highlight("selected", None)
            return
        self.map.set_highlight(
            "selected", [(int(selected), 0, 1, self.weights.shape[1])], SELECTED_COLOUR, width=2
        )

    def _outline(self, selected: int | None) -> None:
        if self.grid is None or selected is None or not 0 <= selected < len(self.grid.order):
            self.map.set_highlight("selected", None)
            return
        y, x = self.grid.cell_origin(int(selected))
        h, w = self.grid.cell
        self.map.set_highlight("selected", [(y, x, h, w)], SELECTED_COLOUR, width=2)
