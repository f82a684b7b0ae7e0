"""Live curves of a training run: loss per step (raw and smoothed) with validation loss, accuracy, lr.

``TrainingPlots`` holds three pyqtgraph plots sharing one x axis measured in epochs (a step sits at its
fraction of the epoch, so per-step and per-epoch curves line up):

- ``loss_plot``: ``loss_raw`` (every step, faint), ``loss_smooth`` (exponential moving average), and
  ``val_loss`` (one point per epoch);
- ``acc_plot``: ``train_acc`` and ``val_acc`` per epoch, in percent, and a line at the best epoch
  (``set_best_epoch``);
- ``lr_plot``: ``lr_curve``, the learning rate of every step.

Data arrive with ``add_step`` / ``add_epoch`` (cheap: appended to lists) and are drawn by a timer at most
``REDRAW_HZ`` times a second, so a fast run cannot flood the GUI thread with repaints. ``redraw()`` draws
now. ``load(steps, epochs)`` shows a finished run from its logs; ``reset()`` empties everything.

While a run trains, the axes stay put: ``plan(epochs)`` fixes the x axis to the whole run, and the loss
and learning-rate axes only move when a value leaves them or shrinks to under half of them. A redraw
then only redraws the curves; new ticks (laying out their labels) cost twice as much as the curves
(bench_gui_stall.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

from cnn_explorer.core.runs import EpochMetrics
from cnn_explorer.qt.widgets.plots import set_range_now

REDRAW_HZ = 10
SMOOTHING = 0.9  # weight of the past in the moving average of the step loss
TRAIN_COLOUR = "#1f77b4"
RAW_COLOUR = (31, 119, 180, 90)
VAL_COLOUR = "#ff7f0e"
LR_COLOUR = "#2ca02c"
BEST_COLOUR = "#9aa0a6"


def smooth(values: Sequence[float], weight: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average (as TensorBoard draws it): early points are not dragged
    towards zero by the average's start value."""
    out = np.empty(len(values), dtype=np.float64)
    avg = 0.0
    for i, v in enumerate(values):
        avg = weight * avg + (1 - weight) * float(v)
        out[i] = avg / (1 - weight ** (i + 1))
    return out


class TrainingPlots(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumHeight(220)
        self.loss_plot = self.graphics.addPlot(row=0, col=0, rowspan=2)
        self.acc_plot = self.graphics.addPlot(row=0, col=1)
        self.lr_plot = self.graphics.addPlot(row=1, col=1)
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        for plot, title, ylabel in (
            (self.loss_plot, "Loss", "cross-entropy"),
            (self.acc_plot, "Accuracy", "%"),
            (self.lr_plot, "Learning rate", ""),
        ):
            plot.setTitle(title, size="10pt")
            plot.setLabel("bottom", "epoch")
            if ylabel:
                plot.setLabel("left", ylabel)
            # No grid lines: they are redrawn with every new step and made each repaint 2-3x dearer, the
            # largest GUI stalls during training (bench_gui_stall.py: 68-82 ms with them, 25-42 ms without).
            plot.setMenuEnabled(False)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            for side in ("left", "bottom"):
                plot.getAxis(side).enableAutoSIPrefix(False)  # "epoch (x0.001)" reads as a bug
        self.acc_plot.setXLink(self.loss_plot)
        self.lr_plot.setXLink(self.loss_plot)
        self.acc_plot.setYRange(0, 100, padding=0.02)
        self.acc_plot.enableAutoRange(axis="y", enable=False)

        loss_legend = self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_raw = self.loss_plot.plot(pen=pg.mkPen(RAW_COLOUR, width=1), name="training, per step")
        self.loss_smooth = self.loss_plot.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), name="training, smoothed")
        self.val_loss = self.loss_plot.plot(
            pen=pg.mkPen(VAL_COLOUR, width=2),
            symbol="o",
            symbolSize=7,
            symbolBrush=VAL_COLOUR,
            symbolPen=None,
            name="validation, per epoch",
        )
        loss_legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        # Same colours as the loss plot's legend; named in the title to keep the small plot uncluttered.
        self.acc_plot.setTitle(
            f"Accuracy <span style='color:{TRAIN_COLOUR}'>● training</span> "
            f"<span style='color:{VAL_COLOUR}'>● validation</span>",
            size="10pt",
        )
        self.train_acc = self.acc_plot.plot(
            pen=pg.mkPen(TRAIN_COLOUR, width=2), symbol="o", symbolSize=6, symbolBrush=TRAIN_COLOUR,
            symbolPen=None, name="training",
        )  # fmt: skip
        self.val_acc = self.acc_plot.plot(
            pen=pg.mkPen(VAL_COLOUR, width=2), symbol="o", symbolSize=7, symbolBrush=VAL_COLOUR,
            symbolPen=None, name="validation",
        )  # fmt: skip
        self.best_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen(BEST_COLOUR, width=1, style=Qt.PenStyle.DashLine)
        )
        self.best_line.hide()
        self.acc_plot.addItem(self.best_line, ignoreBounds=True)
        self.lr_curve = self.lr_plot.plot(pen=pg.mkPen(LR_COLOUR, width=2))

        self.empty_text = pg.TextItem("Start a training run to see its curves here.", color="#777")
        self.empty_text.setAnchor((0.5, 0.5))
        self.loss_plot.addItem(self.empty_text, ignoreBounds=True)
        self.empty_text.setPos(0.5, 0.5)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

        self._timer = QTimer(self)
        self._timer.setInterval(1000 // REDRAW_HZ)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self.redraws = 0  # how many times the curves were redrawn (tests and the stall benchmark read it)
        self.reset()

    # -- data -----------------------------------------------------------------------------------------
    def plan(self, epochs: int) -> None:
        """The run will have ``epochs`` epochs: the x axis shows all of them from now on."""
        self._x_extent = float(max(1, epochs))
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.enableAutoRange(axis="x", enable=False)
        set_range_now(self.loss_plot.getViewBox(), xRange=(0, self._x_extent), padding=0.02)
        for plot in (self.acc_plot, self.lr_plot):  # (linked: their ranges followed; apply them too)
            plot.getViewBox().updateMatrix()
        self.empty_text.hide()  # (a run is on its way: its curves, not the hint, come next)

    def reset(self) -> None:
        """No data; the x axis follows the data again until the next :meth:`plan`."""
        self._x_extent: float | None = None
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.enableAutoRange(axis="x", enable=True)
        for plot in (self.loss_plot, self.lr_plot):  # (the accuracy axis is always 0–100 %)
            plot.enableAutoRange(axis="y", enable=True)
        self._clear()

    def _clear(self) -> None:
        self._y_tops: dict[str, float] = {}
        self._step_x: list[float] = []
        self._step_loss: list[float] = []
        self._step_smooth: list[float] = []
        self._step_lr: list[float] = []
        self._avg = 0.0
        self._n_finite = 0
        self._epochs: dict[int, tuple[float, float, float, float]] = {}  # epoch -> losses and accuracies
        self._epochs_drawn: dict[int, tuple[float, float, float, float]] | None = None  # as last drawn
        self._best_epoch = 0
        self._dirty = True
        self.redraw()
        self.empty_text.show()

    @property
    def step_count(self) -> int:
        return len(self._step_x)

    @property
    def epoch_count(self) -> int:
        return len(self._epochs)

    def add_step(self, epoch: int, step: int, steps_per_epoch: int, loss: float, lr: float) -> None:
        """One training step (1-based epoch and step)."""
        self._step_x.append(epoch - 1 + step / max(1, steps_per_epoch))
        self._step_loss.append(loss)
        if math.isfinite(loss):
            self._n_finite += 1
            self._avg = SMOOTHING * self._avg + (1 - SMOOTHING) * loss
            self._step_smooth.append(self._avg / (1 - SMOOTHING**self._n_finite))
        else:
            self._step_smooth.append(float("nan"))
        self._step_lr.append(lr)
        self._changed()

    def add_epoch(
        self, epoch: int, train_loss: float, val_loss: float, train_acc: float, val_acc: float
    ) -> None:
        """One finished epoch (accuracies as fractions)."""
        self._epochs[epoch] = (train_loss, val_loss, train_acc, val_acc)
        self._changed()

    def set_best_epoch(self, epoch: int) -> None:
        """Mark the epoch whose weights were kept as best (0: none). The run decides, not the plot: it
        breaks ties in accuracy by the lower validation loss."""
        self._best_epoch = epoch
        self._changed()

    def load(
        self,
        steps: Sequence[tuple[int, int, int, float, float]],
        epochs: Sequence[EpochMetrics],
        best_epoch: int = 0,
    ) -> None:
        """Show a run from its logs: steps.csv rows (epoch, step, global step, loss, lr) and metrics (a
        planned x axis stays: a resumed run's logs come in before its new steps)."""
        self._clear()
        per_epoch: dict[int, int] = {}
        for e, s, *_ in steps:
            per_epoch[e] = max(per_epoch.get(e, 0), s)
        spe = max(per_epoch.values(), default=1)
        for e, s, _g, loss, lr in steps:
            self._step_x.append(e - 1 + s / spe)
            self._step_loss.append(loss)
            self._step_lr.append(lr)
        finite = [v for v in self._step_loss if math.isfinite(v)]
        smoothed = smooth(finite)
        it = iter(smoothed)
        self._step_smooth = [next(it) if math.isfinite(v) else float("nan") for v in self._step_loss]
        smoothed_last = float(smoothed[-1]) if finite else 0.0
        self._n_finite = len(finite)
        self._avg = smoothed_last * (1 - SMOOTHING ** len(finite)) if finite else 0.0
        for m in epochs:
            self.add_epoch(m.epoch, m.train_loss, m.val_loss, m.train_acc, m.val_acc)
        self._best_epoch = best_epoch
        self.redraw()

    # -- drawing ----------------------------------------------------------------------------------------
    def _settle_y(self, plot: pg.PlotItem, key: str, *series: np.ndarray) -> None:
        """A y axis from 0 to a little above the largest value, changed only when a value goes over it or
        the largest falls under half of it (not at every redraw, as autorange would)."""
        finite = [a[np.isfinite(a)] for a in series]
        top = max((float(a.max()) for a in finite if a.size), default=None)
        if top is None or top <= 0:
            plot.enableAutoRange(axis="y", enable=True)
            self._y_tops.pop(key, None)
            return
        shown = self._y_tops.get(key)
        if shown is None or top > shown or top < 0.5 * shown:
            shown = self._y_tops[key] = 1.15 * top
            plot.enableAutoRange(axis="y", enable=False)
            set_range_now(plot.getViewBox(), yRange=(0, shown), padding=0)

    def _changed(self) -> None:
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()
        else:
            self._timer.stop()  # nothing new for a tick: sleep until the next data

    def redraw(self) -> None:
        self._dirty = False
        self.redraws += 1
        x = np.asarray(self._step_x, dtype=np.float64)
        loss = np.asarray(self._step_loss, dtype=np.float64)
        lr = np.asarray(self._step_lr, dtype=np.float64)
        self.loss_raw.setData(x, loss)
        self.loss_smooth.setData(x, np.asarray(self._step_smooth, dtype=np.float64))
        self.lr_curve.setData(x, lr)
        ep = np.array(sorted(self._epochs), dtype=np.float64)
        rows = np.array([self._epochs[int(e)] for e in ep], dtype=np.float64).reshape(-1, 4)
        if self._epochs_drawn != self._epochs:  # (the symbols' curves cost most: only when an epoch ends)
            self._epochs_drawn = dict(self._epochs)
            self.val_loss.setData(ep, rows[:, 1])
            self.train_acc.setData(ep, rows[:, 2] * 100)
            self.val_acc.setData(ep, rows[:, 3] * 100)
        if self._x_extent is not None:
            if len(x) and x[-1] > self._x_extent:  # (more epochs than planned: a resumed run)
                self.plan(math.ceil(x[-1]))
            self._settle_y(self.loss_plot, "loss", loss, rows[:, 1])
            self._settle_y(self.lr_plot, "lr", lr)
        if self._best_epoch:
            self.best_line.setValue(self._best_epoch)
            self.best_line.show()
        else:
            self.best_line.hide()
        if len(x) or len(ep):
            self.empty_text.hide()
