"""The gallery's scatter: ImageNet top-1 against multiply-adds per image, one labelled point per model.

``ArchScatter.set_facts(facts)`` draws the ``ArchitectureFacts`` that have a top-1 number: x is the
multiply-adds on a log axis (the view's x is ``log10(MACs)``; ticks read 100M, 300M, 1G…), y the top-1 %,
the marker's *area* grows with the parameters and its colour with the year (older lighter). Every point is
labelled with its title; the labels are placed, in pixels, where they cover no other label or marker if
such a place exists (and again whenever the plot is resized). Models without a number are listed in the
caption with the reason.

Hovering a point shows its numbers as a tooltip; clicking a marker (or its label) emits
``model_clicked(zoo name)``; the page decides and calls ``set_selected(name)`` back, which rings it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFont, QTextDocumentFragment
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.architectures import ACCURACY_WEIGHTS, ArchitectureFacts
from cnn_explorer.core.explorer.text import short_number
from cnn_explorer.qt.style import FAINT, MUTED, SIDE_B, TITLE_STYLE
from cnn_explorer.qt.widgets.plots import caption_label, static_plot

EMPTY_HINT = "The architectures' accuracy and cost appear here."
MIN_MARKER_PX = 9  # small enough to show "small", big enough to hit
MAX_MARKER_PX = 50  # the largest model's diameter
RING_EXTRA_PX = 10  # the selection ring's diameter beyond the marker's
CLICK_TOLERANCE_PX = 5  # beyond the marker's edge
LABEL_GAP_PX = 2
LABEL_COLOUR = "#222"
LABEL_FILL = (255, 255, 255, 190)  # keeps a label readable over a big translucent marker
MARKER_ALPHA = 200
# Year colours, old → new: light to dark blue (the selection ring is red, so it stands out).
YEAR_COLOURS = ("#c3dcf0", "#5b9bd5", "#0b2f6e")
# Caption-length versions of ArchitectureFacts.accuracy_source for the models with no number.
SHORT_REASONS = {
    "lenet5": "reads digits",
    "efficientnet_lite0": "its port publishes none",
}


def macs_tick_text(macs: float) -> str:
    """1e8 → "100M", 3e9 → "3G": the axis' labels, without the non-breaking space of ``short_number``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= scale:
            return f"{macs / scale:g}{unit}"
    return f"{macs:g}"


def log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Major ticks at 1, 3, 10, 30, … × powers of ten between 10**lo and 10**hi (view x is log10)."""
    ticks = []
    for decade in range(math.floor(lo), math.ceil(hi) + 1):
        for mantissa in (1, 3):
            x = decade + math.log10(mantissa)
            if lo <= x <= hi:
                ticks.append((x, macs_tick_text(mantissa * 10.0**decade)))
    return ticks


def minor_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    return [
        (x, "")
        for decade in range(math.floor(lo), math.ceil(hi) + 1)
        for m in (2, 4, 5, 6, 7, 8, 9)
        if lo <= (x := decade + math.log10(m)) <= hi
    ]


def marker_sizes(params: Sequence[int]) -> list[float]:
    """Diameters in pixels with area ∝ parameters: the largest model gets ``MAX_MARKER_PX``, nobody gets
    less than ``MIN_MARKER_PX``."""
    largest = max(params, default=0)
    if largest <= 0:
        return [float(MIN_MARKER_PX)] * len(params)
    return [max(MIN_MARKER_PX, MAX_MARKER_PX * math.sqrt(p / largest)) for p in params]


def tooltip_text(f: ArchitectureFacts) -> str:
    top1 = f"{f.top1:.1f} % top-1" if f.top1 is not None else "no ImageNet top-1"
    return f"{f.title} ({f.year}) — {top1}, {short_number(f.macs)} MACs, {short_number(f.params)} params"


def _overlap(a: QRectF, b: QRectF) -> float:
    r = a.intersected(b)
    return r.width() * r.height() if r.isValid() else 0.0


def _candidates(cx: float, cy: float, r: float, w: float, h: float) -> list[QRectF]:
    """Places for a w×h label around a marker of radius r at (cx, cy), best first."""
    g = r + LABEL_GAP_PX
    d = r * 0.72  # a diagonal just off the circle
    far = g + h
    spots = [
        (cx + g, cy - h / 2),  # right
        (cx - w / 2, cy - g - h),  # above
        (cx - w / 2, cy + g),  # below
        (cx - g - w, cy - h / 2),  # left
        (cx + d, cy - d - h),  # above right
        (cx + d, cy + d),  # below right
        (cx - d - w, cy - d - h),  # above left
        (cx - d - w, cy + d),  # below left
        (cx - w / 2, cy - far - h),  # further above
        (cx - w / 2, cy + far),  # further below
        (cx + g, cy - far),  # right, raised
        (cx + g, cy + far - h),  # right, lowered
        (cx - g - w, cy - far),
        (cx - g - w, cy + far - h),
    ]
    return [QRectF(x, y, w, h) for x, y in spots]


def place_labels(
    centres: Sequence[tuple[float, float]],
    radii: Sequence[float],
    sizes: Sequence[tuple[float, float]],
    bounds: QRectF,
) -> list[QRectF]:
    """Greedy label placement in pixels: each label takes the first candidate place that covers the least
    of the labels placed before it, then of the markers, then of the area outside ``bounds``. The most
    crowded points choose first, while most places are still free."""
    markers = [QRectF(x - r, y - r, 2 * r, 2 * r) for (x, y), r in zip(centres, radii, strict=True)]

    def crowding(i: int) -> float:
        x, y = centres[i]
        return -sum(1 for j, (u, v) in enumerate(centres) if j != i and math.hypot(u - x, v - y) < 90)

    placed: dict[int, QRectF] = {}
    for i in sorted(range(len(centres)), key=crowding):
        (cx, cy), r, (w, h) = centres[i], radii[i], sizes[i]
        best, best_cost = None, math.inf
        for rank, rect in enumerate(_candidates(cx, cy, r, w, h)):
            inside = _overlap(rect, bounds)
            cost = (
                100.0 * sum(_overlap(rect, other.adjusted(-2, -2, 2, 2)) for other in placed.values())
                + 3.0 * sum(_overlap(rect, m) for j, m in enumerate(markers) if j != i)
                + 50.0 * (w * h - inside)
                + 0.5 * rank  # ties go to the plainer places
            )
            if cost < best_cost:
                best, best_cost = rect, cost
        placed[i] = best
    return [placed[i] for i in range(len(centres))]


def _year_colours(years: Sequence[int]) -> list[tuple[int, int, int, int]]:
    lo, hi = min(years, default=0), max(years, default=0)
    cmap = pg.ColorMap(np.linspace(0, 1, len(YEAR_COLOURS)), list(YEAR_COLOURS))
    out = []
    for year in years:
        t = (year - lo) / (hi - lo) if hi > lo else 0.5
        c = cmap.map(t, mode="qcolor")
        out.append((c.red(), c.green(), c.blue(), MARKER_ALPHA))
    return out


class ArchScatter(QWidget):
    model_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._facts: list[ArchitectureFacts] = []  # the plotted ones, in the given order
        self._sizes: list[float] = []
        self._label_rects: list[QRectF] = []  # scene pixels
        self._ticks: list[tuple[float, str]] = []
        self.selected: str | None = None

        self.title_label = QLabel("Accuracy against cost")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.plot_widget, plot = static_plot(240)
        self.plot = plot
        plot.showGrid(x=True, y=True, alpha=0.12)
        plot.setLabel("bottom", "multiply-adds per image (log scale)")
        plot.setLabel("left", "ImageNet top-1", units="%")
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)
            plot.getAxis(side).setTextPen(MUTED)
            plot.getAxis(side).setPen(MUTED)

        self.scatter = pg.ScatterPlotItem(pen=pg.mkPen("w", width=1))
        self.ring = pg.ScatterPlotItem(brush=pg.mkBrush(0, 0, 0, 0), pen=pg.mkPen(SIDE_B, width=3))
        self.ring.setZValue(10)  # over the labels' white boxes
        plot.addItem(self.scatter)
        plot.addItem(self.ring, ignoreBounds=True)
        self.labels: dict[str, pg.TextItem] = {}
        self.empty_text = pg.TextItem(EMPTY_HINT, color=FAINT, anchor=(0.5, 0.5))
        plot.addItem(self.empty_text, ignoreBounds=True)

        self.caption_label = caption_label()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.caption_label)

        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        plot.vb.sigResized.connect(self._relayout)
        self.set_facts([])

    # -- content ----------------------------------------------------------------------------------
    def set_facts(self, facts: Sequence[ArchitectureFacts]) -> None:
        """Plot the models that have an ImageNet top-1; list the others in the caption."""
        self._facts = [f for f in facts if f.top1 is not None and f.macs > 0]
        missing = [f for f in facts if f not in self._facts]
        for item in self.labels.values():
            self.plot.removeItem(item)
        self.labels = {}
        self._sizes = marker_sizes([f.params for f in self._facts])
        colours = _year_colours([f.year for f in self._facts])
        self.scatter.setData(
            x=[math.log10(f.macs) for f in self._facts],
            y=[f.top1 for f in self._facts],
            size=self._sizes,
            brush=[pg.mkBrush(c) for c in colours],
            data=[f.name for f in self._facts],
        )
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() - 0.5))
        for f in self._facts:
            item = pg.TextItem(f.title, color=LABEL_COLOUR, fill=LABEL_FILL, anchor=(0, 0))
            item.setFont(font)
            item.textItem.document().setDocumentMargin(1)
            item.updateTextPos()
            self.plot.addItem(item, ignoreBounds=True)
            self.labels[f.name] = item
        self.empty_text.setVisible(not self._facts)
        self._update_caption(missing)
        self.set_selected(self.selected)  # rings it and lays the labels out

    def set_selected(self, name: str | None) -> None:
        """Ring the point of model ``name`` (None, or a model not plotted: no ring)."""
        self.selected = name
        i = self._index(name)
        if i is None:
            self.ring.setData([], [])
        else:
            f = self._facts[i]
            self.ring.setData([math.log10(f.macs)], [f.top1], size=[self._sizes[i] + RING_EXTRA_PX])
        self._relayout()  # the ring is wider than the marker: its label steps aside

    # -- reading ----------------------------------------------------------------------------------
    def plotted_names(self) -> list[str]:
        return [f.name for f in self._facts]

    def point_pos(self, name: str) -> QPointF:
        """Where model ``name``'s marker centre is, in the plot widget's coordinates (tests click there)."""
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        return self.plot_widget.viewportTransform().map(self._scene_pos(i))

    def marker_size(self, name: str) -> float:
        """The diameter of ``name``'s marker in pixels."""
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        return self._sizes[i]

    def label_rect(self, name: str) -> QRectF:
        """Where ``name``'s label is drawn, in the plot widget's coordinates."""
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        return self.plot_widget.viewportTransform().mapRect(self._label_rects[i])

    def tooltip_at(self, pos: QPointF) -> str:
        """The tooltip hovering ``pos`` (plot widget coordinates) shows; "" off the points."""
        return self._tooltip(self._hit(QPointF(self.plot_widget.mapToScene(pos.toPoint()))))

    def tick_labels(self) -> list[str]:
        """The labelled ticks of the multiply-adds axis, left to right ("100M", "300M", "1G", …)."""
        return [text for _, text in self._ticks]

    def caption(self) -> str:
        return QTextDocumentFragment.fromHtml(self.caption_label.text()).toPlainText()

    # -- drawing ----------------------------------------------------------------------------------
    def _index(self, name: str | None) -> int | None:
        return next((i for i, f in enumerate(self._facts) if f.name == name), None)

    def _scene_pos(self, i: int) -> QPointF:
        f = self._facts[i]
        return self.plot.vb.mapViewToScene(QPointF(math.log10(f.macs), f.top1))

    def _relayout(self) -> None:
        """Fit the range so the largest markers stay inside, then place the labels for this size."""
        vb = self.plot.vb
        if not self._facts:
            self.plot.setXRange(7, 10, padding=0)
            self.plot.setYRange(50, 80, padding=0)
            self.empty_text.setPos(8.5, 65)
            self._set_x_ticks(7, 10)
            self._label_rects = []
            return
        xs = [math.log10(f.macs) for f in self._facts]
        ys = [f.top1 for f in self._facts]
        width, height = max(vb.width(), 50.0), max(vb.height(), 50.0)
        # Room in pixels at each side: half the biggest marker, and a label's width on the left and right.
        pad_x, pad_y = MAX_MARKER_PX / 2 + 60, MAX_MARKER_PX / 2 + 14
        span_x = max(max(xs) - min(xs), 0.5)
        span_y = max(max(ys) - min(ys), 5.0)
        ex = span_x * pad_x / max(width - 2 * pad_x, 10.0)
        ey = span_y * pad_y / max(height - 2 * pad_y, 10.0)
        x0, x1 = min(xs) - ex, max(xs) + ex
        self.plot.setXRange(x0, x1, padding=0)
        self.plot.setYRange(min(ys) - ey, max(ys) + ey, padding=0)
        self._set_x_ticks(x0, x1)

        centres = [(p.x(), p.y()) for p in (self._scene_pos(i) for i in range(len(self._facts)))]
        items = [self.labels[f.name] for f in self._facts]
        sizes = [(it.textItem.boundingRect().width(), it.textItem.boundingRect().height()) for it in items]
        radii = [
            (s + (RING_EXTRA_PX + 3 if f.name == self.selected else 0)) / 2
            for f, s in zip(self._facts, self._sizes, strict=True)
        ]
        self._label_rects = place_labels(centres, radii, sizes, vb.sceneBoundingRect())
        for item, rect in zip(items, self._label_rects, strict=True):
            item.setPos(vb.mapSceneToView(rect.topLeft()))

    def _set_x_ticks(self, x0: float, x1: float) -> None:
        self._ticks = log_ticks(x0, x1)
        self.plot.getAxis("bottom").setTicks([self._ticks, minor_ticks(x0, x1)])

    def _update_caption(self, missing: Sequence[ArchitectureFacts]) -> None:
        if not self._facts and not missing:
            self.caption_label.setText("")
            return
        years = sorted({f.year for f in self._facts})
        light, dark = YEAR_COLOURS[0], YEAR_COLOURS[-1]
        parts = [
            "marker area ∝ parameters",
            f"colour: year, <span style='color:{light}'>●</span> {years[0]} → "
            f"<span style='color:{dark}'>●</span> {years[-1]}"
            if len(years) > 1
            else "",
            f"top-1 from torchvision's {ACCURACY_WEIGHTS} metadata",
            "click a point to open the model in the explorer",
        ]
        text = "; ".join(p for p in parts if p) + "."
        if missing:
            why = "; ".join(f"{f.title} {SHORT_REASONS.get(f.name, f.accuracy_source)}" for f in missing)
            text += f"<br>Not plotted, no ImageNet number: {why}."
        self.caption_label.setText(text)
        self.caption_label.setToolTip("\n".join(f"{f.title}: {f.accuracy_source}" for f in missing))

    # -- mouse ------------------------------------------------------------------------------------
    def _hit(self, scene_pos: QPointF) -> int | None:
        """The point under ``scene_pos``: the nearest marker within its radius + tolerance, else a label."""
        if not self._facts or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        best, best_d = None, math.inf
        for i in range(len(self._facts)):
            p = self._scene_pos(i)
            d = math.hypot(p.x() - scene_pos.x(), p.y() - scene_pos.y())
            if d <= self._sizes[i] / 2 + CLICK_TOLERANCE_PX and d < best_d:
                best, best_d = i, d  # the nearest centre: a small marker on a big one is still hit
        if best is not None:
            return best
        return next((i for i, r in enumerate(self._label_rects) if r.contains(scene_pos)), None)

    def _tooltip(self, i: int | None) -> str:
        return "" if i is None else tooltip_text(self._facts[i]) + "\nclick to open it in the explorer"

    def _on_clicked(self, event) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        i = self._hit(event.scenePos())
        if i is not None:
            self.model_clicked.emit(self._facts[i].name)

    def _on_moved(self, scene_pos: QPointF) -> None:
        i = self._hit(scene_pos)
        self.plot_widget.setToolTip(self._tooltip(i))
        if i is None:
            self.plot_widget.viewport().unsetCursor()
        else:
            self.plot_widget.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
