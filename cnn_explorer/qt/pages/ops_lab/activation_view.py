"""An activation function drawn with its derivative, and where the current layer's values fall on it.

``ActivationView(parent=None)`` shows f(x) (solid, left axis) and f′(x) (dashed, right axis) of one of the
lab's activations (ReLU, leaky ReLU, ELU, sigmoid, tanh, softmax, or none) from core
``activation_curve``, so saturation — the flat parts where f′ ≈ 0 and the gradient vanishes — is visible.
The layer's pre-activation values, given with ``set_values``, are marked as a shaded band from their
minimum to their maximum, and the caption says how many of them sit where f′(x) < 0.01 (core
``activation_derivative``). The x axis spans −6…6, widened to take in the layer's values.

Softmax acts on the whole channel vector at a position, not on one number, so no single 1-D curve is
the softmax: the view draws, clearly labelled, channel 1's probability p₁ for two channels with x₂ fixed
at 0 (which is the sigmoid), and says so.

API: ``set_activation(name, param=None)`` (a key of core ``ACTIVATIONS``; ``param`` is the slope/alpha);
``set_values(array | None)`` (the layer's values before the activation, any shape; None clears the
band); ``curve() -> (xs, f, f′)`` as drawn. No signals. Public for tests: ``f_curve``,
``derivative_curve`` (PlotDataItems), ``region`` (the band), ``title_label``, ``caption_label``.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.ops import ACTIVATIONS, activation_curve, activation_derivative, format_number
from cnn_explorer.qt.style import SIDE_A, SIDE_B, TITLE_STYLE

SAMPLES = 401
SATURATED = 0.01  # f′ below this passes (almost) no gradient back
_SAMPLE_CAP = 65_536  # positions looked at to count saturated values (the full range is always exact)
_BAND = (255, 165, 0, 50)


def _finite(values: np.ndarray) -> np.ndarray:
    a = np.asarray(values)
    return a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64).ravel()


def _sample(values: np.ndarray) -> np.ndarray:
    """At most about ``_SAMPLE_CAP`` positions, every channel of each kept (softmax needs them together)."""
    a = np.asarray(values)
    if a.ndim < 2 or a.size <= _SAMPLE_CAP:
        return a
    h, w = a.shape[-2:]
    step = math.ceil(math.sqrt(h * w / _SAMPLE_CAP))
    return a[..., ::step, ::step]


class ActivationView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._name = "relu"
        self._param: float | None = None
        self._values: np.ndarray | None = None
        self._range: tuple[float, float] | None = None  # the layer's min and max
        self._xs = np.zeros(0)
        self._f = np.zeros(0)
        self._df = np.zeros(0)

        self.title_label = QLabel()
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.title_label.setWordWrap(True)
        self.formula_label = QLabel()
        self.formula_label.setWordWrap(True)
        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.caption_label.setTextFormat(Qt.TextFormat.RichText)

        self.plot = pg.PlotWidget()
        self.plot.setMinimumSize(260, 200)
        self.plot.setBackground("w")
        item = self.plot.getPlotItem()
        self._item = item
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.showGrid(x=True, y=True, alpha=0.25)
        item.showAxis("right")
        item.setLabel("left", "f(x)", color=SIDE_A)
        item.setLabel("right", "f′(x)", color=SIDE_B)
        self.legend = item.addLegend(offset=(8, 8), labelTextColor="#333")
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(*_BAND), pen=pg.mkPen(_BAND[:3]))
        self.region.setZValue(-10)
        self.region.setVisible(False)
        item.addItem(self.region)
        self.f_curve = item.plot(pen=pg.mkPen(SIDE_A, width=2), name="f(x)")
        # f′ gets its own y axis on the right: next to a ReLU of large inputs it would be a flat line.
        self._dview = pg.ViewBox(enableMenu=False)
        self._dview.setMouseEnabled(False, False)
        item.scene().addItem(self._dview)
        item.getAxis("right").linkToView(self._dview)
        self._dview.setXLink(item)
        self.derivative_curve = pg.PlotDataItem(pen=pg.mkPen(SIDE_B, width=2, style=Qt.PenStyle.DashLine))
        self._dview.addItem(self.derivative_curve)
        self.legend.addItem(self.derivative_curve, "f′(x)")
        item.vb.sigResized.connect(self._sync_views)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.title_label)
        layout.addWidget(self.formula_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption_label)
        self._redraw()

    # -- API --------------------------------------------------------------------------------------
    def set_activation(self, name: str, param: float | None = None) -> None:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        self._name, self._param = name, param
        self._redraw()

    def set_values(self, values: np.ndarray | None) -> None:
        self._values = None if values is None else np.asarray(values)
        finite = None if values is None else _finite(self._values)
        if finite is None or finite.size == 0:
            self._values, self._range = None, None
        else:
            self._range = (float(finite.min()), float(finite.max()))
        self._redraw()

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._xs.copy(), self._f.copy(), self._df.copy()

    # -- internals --------------------------------------------------------------------------------
    def _sync_views(self) -> None:
        self._dview.setGeometry(self._item.vb.sceneBoundingRect())
        self._dview.linkedViewChanged(self._item.vb, self._dview.XAxis)

    def _x_span(self) -> tuple[float, float]:
        lo, hi = -6.0, 6.0
        if self._range is not None:
            vlo, vhi = self._range
            margin = 0.05 * (max(hi, vhi) - min(lo, vlo))
            lo = min(lo, vlo - margin) if vlo < lo else lo
            hi = max(hi, vhi + margin) if vhi > hi else hi
        return lo, hi

    def _redraw(self) -> None:
        act = ACTIVATIONS[self._name]
        lo, hi = self._x_span()
        xs = np.linspace(lo, hi, SAMPLES)
        if lo < 0 < hi:  # draw the kink of ReLU and its kin at 0 itself
            xs = np.union1d(xs, [0.0])
        f, df = activation_curve(self._name, self._param, xs)
        self._xs, self._f, self._df = xs, np.asarray(f, dtype=np.float64), np.asarray(df, dtype=np.float64)
        self.f_curve.setData(xs, self._f)
        self.derivative_curve.setData(xs, self._df)
        param = ""
        if act.param is not None:
            value = act.default if self._param is None else self._param
            param = f" ({act.param} = {format_number(value)})"
        item = self._item
        names = ("p₁", "∂p₁/∂x₁") if self._name == "softmax" else ("f(x)", "f′(x)")
        for curve, text in zip((self.f_curve, self.derivative_curve), names, strict=True):
            label = self.legend.getLabel(curve)
            if label is not None:
                label.setText(text)
        if self._name == "softmax":
            self.title_label.setText("Softmax: it acts on the channel vector, not on one number")
            self.formula_label.setText(
                "pᵢ = eˣⁱ / Σⱼ eˣʲ across the channels at each position. No 1-D curve is the softmax; "
                "drawn here: channel 1's p₁ for two channels, against x₁ with x₂ fixed at 0 "
                "(the sigmoid), and ∂p₁/∂x₁ = p₁·(1 − p₁)."
            )
            item.setLabel("bottom", "x₁ (channel 1's value; channel 2 fixed at 0)")
            item.setLabel("left", "p₁", color=SIDE_A)
            item.setLabel("right", "∂p₁/∂x₁", color=SIDE_B)
        else:
            title = "No activation: f(x) = x" if self._name == "none" else f"{act.label}{param}"
            self.title_label.setText(title)
            self.formula_label.setText(f"f(x) = {act.formula};  f′(x) = {act.derivative}")
            item.setLabel("bottom", "x (the activation's input)")
            item.setLabel("left", "f(x)", color=SIDE_A)
            item.setLabel("right", "f′(x)", color=SIDE_B)
        item.setXRange(lo, hi, padding=0.0)
        f_span = self._y_span(self._f)
        item.setYRange(*f_span, padding=0.0)
        self._dview.setYRange(*self._derivative_span(f_span), padding=0.0)
        self._sync_views()
        self._show_values()

    @staticmethod
    def _y_span(f: np.ndarray) -> tuple[float, float]:
        lo, hi = float(f.min()), float(f.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 1.0, hi + 1.0
        pad = 0.06 * (hi - lo)
        return lo - pad, hi + pad

    def _derivative_span(self, f_span: tuple[float, float]) -> tuple[float, float]:
        """The right axis: the left one scaled so that both zeros sit on one line and f′ fits, its top at
        least 1 (a small f′ should look small: the sigmoid's peak is 0.25)."""
        f_hi, d_lo, d_hi = float(self._f.max()), float(self._df.min()), max(1.0, float(self._df.max()))
        f_lo = float(self._f.min())
        if f_hi <= 0:
            return min(0.0, d_lo) - 0.05 * d_hi, d_hi * 1.06
        scale = d_hi / f_hi
        if d_lo < 0 and f_lo < 0:
            scale = max(scale, d_lo / f_lo)
        elif d_lo < 0 <= f_lo:  # f′ dips below 0 where f does not: give it its own room below
            return d_lo - 0.05 * (d_hi - d_lo), d_hi * 1.06
        return f_span[0] * scale, f_span[1] * scale

    def _show_values(self) -> None:
        if self._range is None or self._values is None:
            self.region.setVisible(False)
            self.caption_label.setText(
                "The band of this layer's values appears here once the lab has computed the convolution."
            )
            return
        vlo, vhi = self._range
        width = max(vhi - vlo, 1e-6 * max(1.0, abs(vlo)))  # a single value still gets a visible line
        self.region.setRegion((vlo, vlo + width))
        self.region.setVisible(True)
        sample = _sample(self._values)
        deriv = activation_derivative(sample, self._name, self._param)
        flat = float(np.mean(np.abs(deriv) < SATURATED)) if deriv.size else 0.0
        about = "about " if sample.size < self._values.size else ""
        kept = _finite(sample)
        mean = float(kept.mean()) if kept.size else (vlo + vhi) / 2
        text = (
            f"<span style='background: rgba(255, 165, 0, 0.3)'>&nbsp;Band&nbsp;</span>: this layer's "
            f"values before the activation, {format_number(vlo)} … {format_number(vhi)} "
            f"(mean {format_number(mean)}). {about}{flat:.0%} of them sit where f′(x) &lt; {SATURATED}: "
            "almost no gradient flows back through those."
        )
        if self._name == "softmax":
            text += " (For softmax: ∂pᵢ/∂xᵢ of each channel, with the other channels as they are.)"
        self.caption_label.setText(text)
