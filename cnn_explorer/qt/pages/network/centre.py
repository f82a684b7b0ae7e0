"""The explorer's centre: the current layer's header, every channel as a grid (sort, scale, colours), the
picture as the network sees it with a unit's receptive field, and the chosen channel large.

One of these per side in compare mode (side B's without the options row: one set of options drives both).
The panel draws what it is given (numpy arrays, plain values); the page decides what that is.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_explorer.core.cam import CamResult, overlay
from cnn_explorer.core.explorer.text import shape_text
from cnn_explorer.core.features import COLORMAPS, LayerView
from cnn_explorer.core.layers import LayerRow
from cnn_explorer.qt import style
from cnn_explorer.qt.widgets.feature_grid import (
    NORMALIZE_CHOICES,
    SELECTED_COLOUR,
    SORT_CHOICES,
    FeatureGrid,
    colormap,
)
from cnn_explorer.qt.widgets.map_view import MapView

RF_COLOUR = SELECTED_COLOUR


class CentrePanel(QWidget):
    options_changed = Signal()
    channel_clicked = Signal(int, int, int)  # channel, y, x
    unit_clicked = Signal(int, int)
    input_clicked = Signal(int, int)  # picture row, column

    def __init__(self, *, with_options: bool = True, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(4)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setStyleSheet("font-size: 15px;")
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._title = title
        self.sort_combo = QComboBox()
        for text, key in SORT_CHOICES:
            self.sort_combo.addItem(text, key)
        self.sort_combo.setToolTip("Order of the channels in the grid (largest first)")
        self.scale_combo = QComboBox()
        for text, key in NORMALIZE_CHOICES:
            self.scale_combo.addItem(text, key)
        self.scale_combo.setToolTip(
            "Each channel: every map stretched to its own range (shows every pattern).\n"
            "Whole layer: one range for all (shows which channels are strong)."
        )
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.setCurrentText("viridis")
        options = QHBoxLayout()
        options.setSpacing(6)
        if with_options:
            for text, combo in (
                ("Sort", self.sort_combo),
                ("Scale", self.scale_combo),
                ("Colours", self.cmap_combo),
            ):
                lab = QLabel(text)
                lab.setStyleSheet(f"color: {style.MUTED};")
                options.addWidget(lab)
                options.addWidget(combo)
                options.addSpacing(6)
        options.addStretch(1)
        self.grid_caption = QLabel()
        self.grid_caption.setStyleSheet(f"color: {style.MUTED};")
        self.grid_caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.grid_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        options.addWidget(self.grid_caption)

        self.grid = FeatureGrid()
        self.input_view = MapView("Input", max_numbers_side=0)
        self.channel_view = MapView("Channel", max_numbers_side=10)
        for view in (self.input_view, self.channel_view):
            view.graphics.setMinimumSize(120, 120)
            view.title_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            view.caption_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            # Room for three lines of caption, so a caption one line longer or shorter at the next layer
            # does not resize the maps (each resize re-lays out and repaints the plots).
            view.caption_label.setMinimumHeight(3 * view.caption_label.fontMetrics().lineSpacing() + 2)
        below = QHBoxLayout()
        below.setSpacing(10)
        below.addWidget(self.input_view, 1)
        below.addWidget(self.channel_view, 1)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #ddd;")
        layout.addWidget(self.header)
        layout.addLayout(options)
        layout.addWidget(self.grid, 5)
        layout.addWidget(line)
        layout.addLayout(below, 4)
        self._input_drawn: tuple[object, object] | None = None

        for combo in (self.sort_combo, self.scale_combo, self.cmap_combo):
            combo.currentIndexChanged.connect(self.options_changed)
        self.grid.retile_wanted.connect(self.options_changed)
        self.grid.channel_clicked.connect(self.channel_clicked)
        self.channel_view.cell_clicked.connect(self.unit_clicked)
        self.input_view.cell_clicked.connect(self.input_clicked)

    def set_title(self, html: str) -> None:
        """A label in front of the layer's name ("A", "B" in compare mode)."""
        self._title = html

    def set_narrow(self, narrow: bool) -> None:
        """Compare mode: the option boxes shrink so that A and B can share the width."""
        policy = QComboBox.SizeAdjustPolicy
        for combo in (self.sort_combo, self.scale_combo, self.cmap_combo):
            combo.setSizeAdjustPolicy(
                policy.AdjustToMinimumContentsLengthWithIcon if narrow else policy.AdjustToContentsOnFirstShow
            )
            combo.setMinimumContentsLength(4 if narrow else 0)

    # -- options ---------------------------------------------------------------------------------------
    def options(self) -> dict[str, str]:
        return {
            "sort_by": str(self.sort_combo.currentData()),
            "normalize": str(self.scale_combo.currentData()),
            "cmap": self.cmap_combo.currentText(),
        }

    # -- showing -----------------------------------------------------------------------------------------
    def show_header(self, row: LayerRow | None, note: str = "") -> None:
        if row is None:
            self.header.setText(self._title)
            return
        where = f" <span style='color:#888'>in {row.parent}</span>" if row.parent else ""
        kind = "block output" if row.kind == "block" else row.type
        title = f"{self._title} " if self._title else ""
        extra = f" <span style='color:{style.FAINT}; font-size: 11px'>{note}</span>" if note else ""
        self.header.setText(
            f"{title}<b>{row.name}</b> &nbsp;<span style='color:{style.MUTED}'>{kind}</span>{where} "
            "&nbsp;→&nbsp; "
            f"<span style='color:{style.ACCENT}; font-weight:600'>{shape_text(row.out_shape)}</span>{extra}"
        )

    def clear(self, message: str) -> None:
        """No grid: say why, and clear what belonged to the previous layer."""
        self.grid.clear(message)
        self.grid_caption.setText("")
        self.channel_view.clear_map("")
        self.channel_view.set_title("Channel")
        self.channel_view.set_caption("")

    def clear_all(self, message: str) -> None:
        self.header.setText(self._title)
        self.clear(message)
        self._input_drawn = None
        self.input_view.clear_map("")
        self.input_view.set_caption("")

    def show_view(self, view: LayerView, caption: str) -> None:
        self.grid.show_view(view)
        self.grid_caption.setText(caption)

    def show_channel(
        self, view: LayerView, channel: int, unit: tuple[int, int] | None, row_type: str
    ) -> tuple[int, int] | None:
        """Enlarge one channel; returns the unit whose field is drawn (its peak when ``unit`` is None)."""
        n = view.channels
        self.grid.set_selected(channel)
        if not view.spatial:
            value = float(view.values[channel, 0, 0])
            self.channel_view.clear_map(
                f"{row_type} gives a vector of {n} numbers: no spatial layout left.\n"
                f"Unit {channel} = {value:.4g}"
            )
            self.channel_view.set_title(f"Unit {channel} of {n}")
            self.channel_view.set_caption("")
            return None
        fmap = view.channel_map(channel)
        if unit is None:
            unit = tuple(int(v) for v in np.unravel_index(int(np.argmax(fmap)), fmap.shape))
        y = max(0, min(fmap.shape[0] - 1, unit[0]))
        x = max(0, min(fmap.shape[1] - 1, unit[1]))
        levels = view.grid.value_range if view.scaling == "layer" else None
        self.channel_view.set_map(fmap, colormap=colormap(view.cmap), levels=levels)
        size = f"{fmap.shape[0]}×{fmap.shape[1]}"
        self.channel_view.set_title(
            f"Channel {channel} of {n} &nbsp;<span style='color:{style.ACCENT}'>{size}</span>"
        )
        self.channel_view.set_highlight("unit", [(y, x, 1, 1)], RF_COLOUR)
        self.channel_view.set_caption(
            f"mean {fmap.mean():.3g}, max {fmap.max():.3g}. The outlined unit ({y}, {x}) = "
            f"{fmap[y, x]:.3g}; click another to see what it sees."
        )
        return (y, x)

    def show_input(
        self,
        pixels: np.ndarray,
        cam: CamResult | None,
        field: tuple[int, int, int, int] | None,
        caption: str,
        how: str,
    ) -> None:
        """The picture as the network sees it, with Grad-CAM over it and a receptive field outlined."""
        h, w = pixels.shape[:2]
        if cam is not None and cam.heatmap.shape != (h, w):
            cam = None
        drawn = self._input_drawn
        if drawn is None or drawn[0] is not pixels or drawn[1] is not cam:
            # (Stepping layers only moves the field: the picture is drawn again only when it changes.)
            self._input_drawn = (pixels, cam)
            if cam is not None:
                self.input_view.set_map(overlay(pixels, cam.heatmap) / 255.0, values=cam.heatmap)
            elif pixels.ndim == 3:
                self.input_view.set_map(pixels / 255.0, values=pixels)
            else:
                self.input_view.set_map(pixels.astype(np.float32), colormap=colormap("gray"), levels=(0, 255))
        self.input_view.set_title(
            f"What the network sees &nbsp;<span style='color:{style.ACCENT}'>{w}×{h}</span>"
        )
        self.input_view.title_label.setToolTip(f"The picture after preprocessing{how}")
        self.input_view.set_highlight("rf", [field] if field is not None else None, RF_COLOUR, width=2.5)
        self.input_view.set_caption(caption)
