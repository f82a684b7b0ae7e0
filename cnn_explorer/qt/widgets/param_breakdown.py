"""Where each architecture's parameters sit: one horizontal stacked bar per model, convolutions | fully
connected | other (batch norm's scales and shifts).

``ParamBreakdown.set_facts(facts)`` draws one row per ``ArchitectureFacts``, in the given order, the title
as the row's label and "138 M · 89 % FC" at the bar's end. Sizes span 61 k (LeNet-5) to 138 M (VGG-16),
so by default every bar is the model's own 100 % ("share" mode: the split is readable for each model);
"absolute" mode draws the counts on one linear scale in millions, where VGG's FC layers dwarf the rest.

Clicking a row emits ``model_clicked(zoo name)``; ``set_selected(name)`` highlights a row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QRadioButton, QVBoxLayout, QWidget

from cnn_explorer.core.architectures import ArchitectureFacts
from cnn_explorer.core.explorer.text import short_number
from cnn_explorer.qt.style import FAINT, MUTED, SIDE_A, SIDE_B, SMALL_MUTED_STYLE, TITLE_STYLE
from cnn_explorer.qt.widgets.plots import static_plot

CONV_COLOUR = SIDE_A
FC_COLOUR = "#ff7f0e"
OTHER_COLOUR = "#b5b5b5"
SELECTED_BAND = (214, 39, 40, 28)  # SIDE_B, faint: the row behind the selected bar
BAR_HEIGHT = 0.64  # of a row
END_GAP_PX = 16  # room beyond the end labels
MODES = ("share", "absolute")
NO_PEN = pg.mkPen(None)
EMPTY_HINT = "The architectures' parameter counts appear here."


def fc_share_text(f: ArchitectureFacts) -> str:
    """89 % FC, < 1 % FC, no FC."""
    if f.fc_params == 0:
        return "no FC"
    pct = 100.0 * f.fc_share
    return "< 1 % FC" if pct < 0.5 else f"{pct:.0f} % FC"


def end_text(f: ArchitectureFacts) -> str:
    return f"{short_number(f.params)} · {fc_share_text(f)}"


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "—"


def tooltip_text(f: ArchitectureFacts) -> str:
    return (
        f"{f.title}: {f.params:,} parameters\n"
        f"convolutions {short_number(f.conv_params)} ({_pct(f.conv_params, f.params)}) · "
        f"fully connected {short_number(f.fc_params)} ({_pct(f.fc_params, f.params)}) · "
        f"other {short_number(f.other_params)} ({_pct(f.other_params, f.params)})\n"
        "click to open it in the explorer"
    )


def nice_ticks(top: float, approx: int = 5) -> list[tuple[float, str]]:
    """Round ticks from 0 to at most ``top`` (millions): 0, 25, 50, … ."""
    if top <= 0:
        return [(0.0, "0")]
    raw = top / approx
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    return [(k * step, f"{k * step:g}") for k in range(int(top // step) + 1)]


class ParamBreakdown(QWidget):
    model_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._facts: list[ArchitectureFacts] = []
        self._mode = "share"
        self.selected: str | None = None

        self.title_label = QLabel("Where the parameters are")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.legend_label = QLabel(
            f"<span style='color:{CONV_COLOUR}'>■</span> convolutions &nbsp; "
            f"<span style='color:{FC_COLOUR}'>■</span> fully connected &nbsp; "
            f"<span style='color:{OTHER_COLOUR}'>■</span> other (batch norm)"
        )
        self.legend_label.setTextFormat(Qt.TextFormat.RichText)
        self.share_button = QRadioButton("Share of each model")
        self.absolute_button = QRadioButton("Absolute counts")
        self.share_button.setToolTip("Every bar is its model's 100 %: the split is readable for each model")
        self.absolute_button.setToolTip("One linear scale in millions: the sizes side by side")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.share_button)
        self.mode_group.addButton(self.absolute_button)
        self.share_button.setChecked(True)
        self.share_button.toggled.connect(lambda on: self.set_mode("share" if on else "absolute"))
        top = QHBoxLayout()
        top.addWidget(self.title_label)
        top.addStretch(1)
        top.addWidget(self.share_button)
        top.addWidget(self.absolute_button)

        self.plot_widget, plot = static_plot(200)
        self.plot = plot
        plot.vb.invertY(True)  # the first model on top
        plot.showGrid(x=True, y=False, alpha=0.15)
        for side in ("left", "bottom"):
            plot.getAxis(side).enableAutoSIPrefix(False)
            plot.getAxis(side).setTextPen(MUTED)
            plot.getAxis(side).setPen(MUTED)
        plot.getAxis("left").setStyle(tickLength=0)

        self.band = pg.BarGraphItem(x0=[0], y=[0], width=[0], height=1.0, brush=SELECTED_BAND, pen=NO_PEN)
        self.conv_bars = pg.BarGraphItem(
            x0=[], y=[], width=[], height=BAR_HEIGHT, brush=CONV_COLOUR, pen=NO_PEN
        )
        self.fc_bars = pg.BarGraphItem(x0=[], y=[], width=[], height=BAR_HEIGHT, brush=FC_COLOUR, pen=NO_PEN)
        self.other_bars = pg.BarGraphItem(
            x0=[], y=[], width=[], height=BAR_HEIGHT, brush=OTHER_COLOUR, pen=NO_PEN
        )
        self.outline = pg.BarGraphItem(
            x0=[0], y=[0], width=[0], height=BAR_HEIGHT, brush=pg.mkBrush(None), pen=pg.mkPen(SIDE_B, width=2)
        )
        for item in (self.band, self.conv_bars, self.fc_bars, self.other_bars, self.outline):
            plot.addItem(item)
        self.band.setVisible(False)
        self.outline.setVisible(False)
        self.end_labels: dict[str, pg.TextItem] = {}
        self.empty_text = pg.TextItem(EMPTY_HINT, color=FAINT, anchor=(0.5, 0.5))
        plot.addItem(self.empty_text, ignoreBounds=True)

        self.caption_label = QLabel(
            "Bars split each model's parameters by the layers holding them (weights and biases). "
            "Click a bar to see the model's card."
        )
        self.caption_label.setWordWrap(True)
        self.caption_label.setStyleSheet(SMALL_MUTED_STYLE)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.legend_label)
        layout.addWidget(self.plot_widget, 1)
        layout.addWidget(self.caption_label)

        self.plot_widget.scene().sigMouseClicked.connect(self._on_clicked)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_moved)
        plot.vb.sigResized.connect(self._fit_range)
        self.set_facts([])

    # -- content ----------------------------------------------------------------------------------
    def set_facts(self, facts: Sequence[ArchitectureFacts]) -> None:
        self._facts = list(facts)
        for item in self.end_labels.values():
            self.plot.removeItem(item)
        self.end_labels = {}
        for f in self._facts:
            item = pg.TextItem(end_text(f), color=MUTED, anchor=(0, 0.5))
            self.plot.addItem(item, ignoreBounds=True)
            self.end_labels[f.name] = item
        self.plot.getAxis("left").setTicks([[(i, f.title) for i, f in enumerate(self._facts)], []])
        self.empty_text.setVisible(not self._facts)
        self._draw()

    def mode(self) -> str:
        """ "share" (each bar its model's 100 %) or "absolute" (parameters in millions)."""
        return self._mode

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self._mode = mode
        button = self.share_button if mode == "share" else self.absolute_button
        if not button.isChecked():
            button.setChecked(True)  # comes back here through toggled; nothing changes then
        self._draw()

    def set_selected(self, name: str | None) -> None:
        """Highlight model ``name``'s row (None or an unknown name: none)."""
        self.selected = name
        i = self._index(name)
        if i is None:
            self.band.setVisible(False)
            self.outline.setVisible(False)
            return
        x0, x1 = self.plot.vb.viewRange()[0]
        self.band.setOpts(x0=[x0], y=[i], width=[x1 - x0], height=1.0)
        self.outline.setOpts(x0=[0], y=[i], width=[self._length(self._facts[i])], height=BAR_HEIGHT)
        self.band.setVisible(True)
        self.outline.setVisible(True)

    # -- reading ----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [f.name for f in self._facts]

    def row_text(self, name: str) -> str:
        """The text at the end of ``name``'s bar, as drawn (plain text: no non-breaking spaces)."""
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        return self.end_labels[name].toPlainText()

    def bar_rect(self, name: str) -> QRectF:
        """Where ``name``'s whole stacked bar is drawn, in the plot widget's coordinates (tests click it)."""
        i = self._index(name)
        if i is None:
            raise KeyError(name)
        view = QRectF(0.0, i - BAR_HEIGHT / 2, self._length(self._facts[i]), BAR_HEIGHT)
        scene = self.plot.vb.mapViewToScene(view).boundingRect()
        return self.plot_widget.viewportTransform().mapRect(scene)

    def tooltip_at(self, pos: QPointF) -> str:
        """The tooltip hovering ``pos`` (plot widget coordinates) shows; "" off the rows."""
        i = self._row_at(QPointF(self.plot_widget.mapToScene(pos.toPoint())))
        return "" if i is None else tooltip_text(self._facts[i])

    # -- drawing ----------------------------------------------------------------------------------
    def _index(self, name: str | None) -> int | None:
        return next((i for i, f in enumerate(self._facts) if f.name == name), None)

    def _scale(self, f: ArchitectureFacts) -> float:
        """Data units per parameter: the model's share in %, or millions."""
        if self._mode == "share":
            return 100.0 / f.params if f.params else 0.0
        return 1e-6

    def _length(self, f: ArchitectureFacts) -> float:
        return f.params * self._scale(f)

    def _draw(self) -> None:
        ys = list(range(len(self._facts)))
        segments = []
        for f in self._facts:
            s = self._scale(f)
            segments.append((f.conv_params * s, f.fc_params * s, f.other_params * s))
        conv = [c for c, _, _ in segments]
        fc = [b for _, b, _ in segments]
        other = [o for _, _, o in segments]
        self.conv_bars.setOpts(x0=[0.0] * len(ys), y=ys, width=conv, height=BAR_HEIGHT)
        self.fc_bars.setOpts(x0=conv, y=ys, width=fc, height=BAR_HEIGHT)
        self.other_bars.setOpts(x0=[c + b for c, b in zip(conv, fc, strict=True)], y=ys, width=other)
        for f, y in zip(self._facts, ys, strict=True):
            self.end_labels[f.name].setPos(self._length(f), y)
        axis = self.plot.getAxis("bottom")
        if self._mode == "share":
            self.plot.setLabel("bottom", "share of the model's parameters", units="%")
        else:
            self.plot.setLabel("bottom", "parameters (millions)")
        self._fit_range()
        axis.setTicks([nice_ticks(self._longest(), approx=4 if self._mode == "share" else 6), []])

    def _longest(self) -> float:
        return max((self._length(f) for f in self._facts), default=0.0)

    def _fit_range(self) -> None:
        """The x range leaves room, in pixels, for the widest end label after the longest bar."""
        n = len(self._facts)
        self.plot.setYRange(-0.5, max(n, 1) - 0.5, padding=0.01)
        longest = self._longest()
        if not n or longest <= 0:
            self.plot.setXRange(0, 1, padding=0)
            self.empty_text.setPos(0.5, 0)
            self.set_selected(self.selected)
            return
        metrics = QFontMetricsF(self.font())
        widest = max(metrics.horizontalAdvance(t.toPlainText()) for t in self.end_labels.values())
        width = max(self.plot.vb.width(), 2.0 * (widest + END_GAP_PX))
        room = widest + END_GAP_PX
        self.plot.setXRange(0, longest * width / (width - room), padding=0)
        self.set_selected(self.selected)

    # -- mouse ------------------------------------------------------------------------------------
    def _row_at(self, scene_pos: QPointF) -> int | None:
        if not self._facts or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        i = round(self.plot.vb.mapSceneToView(scene_pos).y())
        return i if 0 <= i < len(self._facts) else None

    def _on_clicked(self, event) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        i = self._row_at(event.scenePos())
        if i is not None:
            self.model_clicked.emit(self._facts[i].name)

    def _on_moved(self, scene_pos: QPointF) -> None:
        i = self._row_at(scene_pos)
        self.plot_widget.setToolTip("" if i is None else tooltip_text(self._facts[i]))
        if i is None:
            self.plot_widget.viewport().unsetCursor()
        else:
            self.plot_widget.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
