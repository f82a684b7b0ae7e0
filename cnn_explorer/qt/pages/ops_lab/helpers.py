"""The Operations lab's plain helpers: its constants, colour maps, shape text, and the small
widget factories every panel builds its controls with (so they all look and behave alike)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox

DEBOUNCE_MS = 60  # coalesce a burst of spin-box changes into one recompute
SOURCES = (
    ("Image — grayscale", "gray"),
    ("Image — red channel", "red"),
    ("Image — green channel", "green"),
    ("Image — blue channel", "blue"),
    ("Image — RGB (3 channels)", "rgb"),
    ("Typed matrix", "matrix"),
)
CUSTOM = "custom"
OWN_MATRIX = "(your own)"
COLOUR_CHOICES = ("auto", "gray", "viridis", "blue–white–red")
WINDOW = "#ff7f0e"
POOL_WINDOW = "#7b3fbf"
# Activations that keep the units of their input: the activation map can share the conv map's colours.
SAME_UNITS = {"none", "relu", "leaky_relu", "elu"}


def cmap(name: str) -> pg.ColorMap:
    return {
        "gray": pg.colormap.get("CET-L1"),
        "viridis": pg.colormap.get("viridis"),
        "blue–white–red": pg.colormap.get("CET-D1"),
    }[name]


def channel_cmap(channel: str) -> pg.ColorMap:
    if channel in ("red", "green", "blue"):
        top = {"red": (230, 30, 30), "green": (20, 170, 40), "blue": (40, 80, 235)}[channel]
        return pg.ColorMap([0.0, 1.0], [(0, 0, 0), top])
    return pg.colormap.get("CET-L1")


def shape_text(a: np.ndarray) -> str:
    return "×".join(str(n) for n in a.shape)


def combo() -> QComboBox:
    box = QComboBox()
    # Long item names must not dictate the page's minimum width: the combo shrinks and elides.
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(6)
    return box


def spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setToolTip(tip)
    box.setKeyboardTracking(False)  # typing "12" is one change, not "1" then "12"
    return box


def form() -> QFormLayout:
    layout = QFormLayout()
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setHorizontalSpacing(6)
    layout.setVerticalSpacing(4)
    layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return layout


def hint() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet("color: #666; font-size: 11px;")
    return label
