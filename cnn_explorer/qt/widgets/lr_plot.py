"""The learning-rate finder's curve: smoothed training loss against learning rate, on a log axis.

``LRPlot.set_result(result)`` draws an ``LRFindResult``: the raw losses (faint), the smoothed curve (what
the suggestion was read from) and the suggested learning rate as a labelled vertical line. While the
sweep runs, ``add_point(lr, loss)`` adds live points (drawn at most ``REDRAW_HZ`` times a second);
``clear()`` empties it. A click anywhere on the plot emits ``lr_chosen(lr)`` with the learning rate under
the cursor and marks it with a second line; ``set_chosen(lr)`` marks one without emitting.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.transfer.results import LRFindResult
from cnn_explorer.qt.style import ACCENT, FAINT, MUTED, SIDE_A, SIDE_B, SMALL_MUTED_STYLE, TITLE_STYLE
from cnn_explorer.qt.widgets.plots import static_plot
from cnn_explorer.qt.widgets.training_plots import smooth

REDRAW_HZ = 10
RAW_PEN = (31, 119, 180, 80)  # SIDE_A, faint
EMPTY_HINT = "Find a learning rate:\nthe loss of a short sweep from tiny to large rates appears here."


def lr_text(lr: float) -> str:
    return f"{lr:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def set_line_text(line: pg.InfiniteLine, text: str) -> None:
    """A line's label reads ``text`` (the label only reformats itself when the value changes, and only
    while it is visible)."""
    line.label.setFormat(text)
    line.label.setText(text)


def loss_range(smoothed: np.ndarray) -> tuple[float, float] | None:
    """The y range that shows the descent: from the lowest loss to a little above the starting loss, so
    the divergence at the end runs off the top instead of squashing the interesting part flat."""
    finite = smoothed[np.isfinite(smoothed)]
    if not len(finite):
        return None
    low, start, high = float(finite.min()), float(finite[0]), float(finite.max())
    top = min(high, max(start, low) + 0.5 * max(start - low, 1e-3))
    if top <= low:
        top = low + max(abs(low) * 0.1, 1e-3)
    return low, top


class LRPlot(QWidget):
    lr_chosen = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: LRFindResult | None = None
        self.chosen: float | None = None
        self._live_lr: list[float] = []
        self._live_loss: list[float] = []
        self._dirty = False
        self._lrs = self._smoothed = np.empty(0)  # what is drawn

        self.title_label = QLabel(
            f"Learning-rate finder  <span style='color:{SIDE_A}'>— smoothed loss</span> "
            f"<span style='color:{FAINT}'>· each step</span>"
        )
        self.title_label.setWordWrap(True)
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.plot_widget, plot = static_plot(200)
        self.plot = plot
        plot.setLogMode(x=True, y=False)
        plot.setLabel("bottom", "learning rate (log scale)")
        plot.setLabel("left", "training loss")
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)
            plot.getAxis(side).setTextPen(MUTED)
            plot.getAxis(side).setPen(MUTED)
        self.raw_curve = plot.plot(pen=pg.mkPen(RAW_PEN, width=1))
        self.smooth_curve = plot.plot(pen=pg.mkPen(SIDE_A, width=2.5))
        # Lines sit in view coordinates, which on a log axis are log10(lr).
        self.suggestion_line = pg.InfiniteLine(
            angle=90,
            pen=pg.mkPen(ACCENT, width=2),
            label="suggested",
            labelOpts={
                "position": 0.92,
                "color": ACCENT,
                "fill": (255, 255, 255, 220),
                "anchors": [(0, 0), (0, 0)],
            },
        )
        self.chosen_line = pg.InfiniteLine(
            angle=90,
            pen=pg.mkPen(SIDE_B, width=1.5, style=Qt.PenStyle.DashLine),
            label="chosen",
            labelOpts={
                "position": 0.08,
                "color": SIDE_B,
                "fill": (255, 255, 255, 220),
                "anchors": [(0, 1), (0, 1)],
            },
        )
        self.chosen_dot = pg.ScatterPlotItem(size=11, brush=pg.mkBrush(SIDE_B), pen=pg.mkPen("w"))
        for item in (self.suggestion_line, self.chosen_line, self.chosen_dot):
            plot.addItem(item, ignoreBounds=True)
        self.empty_text = pg.TextItem(EMPTY_HINT, color=FAINT, anchor=(0.5, 0.5))
        plot.addItem(self.empty_text, ignoreBounds=True)

        self.caption_label = QLabel()
        self.caption_label.setWordWrap(True)
        self.caption_label.setStyleSheet(SMALL_MUTED_STYLE)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.caption_label)

        self._timer = QTimer(self)
        self._timer.setInterval(1000 // REDRAW_HZ)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self.clear()

    # -- content ----------------------------------------------------------------------------------
    def clear(self) -> None:
        self.result = None
        self._live_lr, self._live_loss = [], []
        self._dirty = False
        self._lrs = self._smoothed = np.empty(0)
        self.raw_curve.setData([], [])
        self.smooth_curve.setData([], [])
        self.suggestion_line.hide()
        self._mark_chosen(None)
        self.empty_text.setText(EMPTY_HINT)
        self.empty_text.show()
        self.empty_text.setPos(-3, 0.5)  # log10(1e-3): the middle of a usual sweep
        self.plot.setXRange(-6, 0, padding=0)
        self.plot.setYRange(0, 1, padding=0.04)
        self.caption_label.setText("")

    def add_point(self, lr: float, loss: float) -> None:
        """One step of a running sweep."""
        if self.result is not None:
            self.result = None
            self.suggestion_line.hide()
        self._live_lr.append(float(lr))
        self._live_loss.append(float(loss))
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def set_result(self, result: LRFindResult | None) -> None:
        """A finished sweep (None: empty)."""
        if result is None:
            self.clear()
            return
        self._timer.stop()
        self._live_lr, self._live_loss, self._dirty = [], [], False
        self.result = result
        lrs = np.asarray(result.lrs, dtype=np.float64)
        self._draw(lrs, np.asarray(result.losses, dtype=np.float64), np.asarray(result.smoothed, np.float64))
        if math.isfinite(result.suggestion) and result.suggestion > 0:
            self.suggestion_line.setValue(math.log10(result.suggestion))
            set_line_text(self.suggestion_line, f"suggested {lr_text(result.suggestion)}")
            self._place_label(self.suggestion_line, top=True)
            self.suggestion_line.show()
        else:
            self.suggestion_line.hide()
        self.caption_label.setText(f"{result.reason} Click the plot to choose another learning rate.")

    def set_chosen(self, lr: float | None) -> None:
        """Mark a learning rate as chosen (the page's value) without emitting ``lr_chosen``."""
        self._mark_chosen(lr)

    def redraw(self) -> None:
        """Draw the live points now (the timer does it at most ``REDRAW_HZ`` times a second)."""
        self._dirty = False
        if not self._live_lr:
            return
        lrs, losses = np.asarray(self._live_lr), np.asarray(self._live_loss)
        finite = np.isfinite(losses)
        smoothed = np.full(len(losses), np.nan)
        smoothed[finite] = smooth(losses[finite])
        self._draw(lrs, losses, smoothed)
        self.caption_label.setText(
            f"Sweeping… {len(lrs)} steps, learning rate now {lr_text(lrs[-1])}, loss {losses[-1]:.3g}."
        )

    # -- reading ----------------------------------------------------------------------------------
    def point_count(self) -> int:
        """How many steps are drawn."""
        return len(self._lrs)

    def position_of(self, lr: float, loss: float) -> QPointF:
        """Where (lr, loss) is drawn, in the plot widget's coordinates (tests click there)."""
        scene = self.plot.vb.mapViewToScene(QPointF(math.log10(lr), loss))
        return QPointF(self.plot_widget.mapFromScene(scene))

    def caption(self) -> str:
        return self.caption_label.text()

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self, lrs: np.ndarray, losses: np.ndarray, smoothed: np.ndarray) -> None:
        keep = lrs > 0  # a log axis has no place for 0
        lrs, losses, smoothed = lrs[keep], losses[keep], smoothed[keep]
        self._lrs, self._smoothed = lrs, smoothed
        self.raw_curve.setData(lrs, losses)
        self.smooth_curve.setData(lrs, smoothed)
        self.empty_text.setVisible(not len(lrs))
        if not len(lrs):
            return
        low, high = math.log10(lrs.min()), math.log10(lrs.max())
        self.plot.setXRange(low, max(high, low + 1e-3), padding=0.02)
        y = loss_range(smoothed)
        if y is not None:
            self.plot.setYRange(*y, padding=0.05)

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()
        else:
            self._timer.stop()

    def _mark_chosen(self, lr: float | None) -> None:
        self.chosen = lr
        if lr is None or not lr > 0:
            self.chosen_line.hide()
            self.chosen_dot.setData([], [])
            return
        x = math.log10(lr)
        self.chosen_line.setValue(x)
        set_line_text(self.chosen_line, f"chosen {lr_text(lr)}")
        self._place_label(self.chosen_line, top=False)
        self.chosen_line.show()
        y = self._smoothed_at(lr)
        self.chosen_dot.setData([x] if y is not None else [], [y] if y is not None else [])

    def _place_label(self, line: pg.InfiniteLine, *, top: bool) -> None:
        """Text to the right of the line, or to its left in the last third of the plot (not cut off)."""
        x0, x1 = self.plot.vb.viewRange()[0]
        right = line.value() > x0 + 0.67 * (x1 - x0)
        anchor = (1.0 if right else 0.0, 0.0 if top else 1.0)
        line.label.anchors = [anchor, anchor]
        line.label.updatePosition()

    def _smoothed_at(self, lr: float) -> float | None:
        x, y = self._lrs, self._smoothed
        ok = np.isfinite(y) & (x > 0)
        if not ok.any():
            return None
        return float(np.interp(math.log10(lr), np.log10(x[ok]), y[ok]))

    # -- mouse ------------------------------------------------------------------------------------
    def _on_clicked(self, event) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton or self.point_count() == 0:
            return
        pos = event.scenePos()
        if not self.plot.vb.sceneBoundingRect().contains(pos):
            return
        lr = 10.0 ** self.plot.vb.mapSceneToView(pos).x()
        self._mark_chosen(lr)
        self.lr_chosen.emit(lr)
