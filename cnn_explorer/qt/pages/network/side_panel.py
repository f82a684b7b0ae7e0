"""The explorer's right-hand panel: the layer's details, its statistics and filters, the top-5 and the
Grad-CAM controls."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.explorer.text import percent_text
from cnn_explorer.core.features import Prediction
from cnn_explorer.qt import style
from cnn_explorer.qt.pages.base import WrappedScrollContent
from cnn_explorer.qt.widgets.filter_view import FilterView
from cnn_explorer.qt.widgets.layer_details import LayerDetails
from cnn_explorer.qt.widgets.prediction_bars import PredictionBars
from cnn_explorer.qt.widgets.stats_view import StatsView


def predictions_box(title: str) -> tuple[QGroupBox, PredictionBars, QLabel]:
    """A top-5 box: the bars and a warning line for untrained models."""
    box = QGroupBox(title)
    note = QLabel("⚠ This model is untrained (random weights): its guesses mean nothing.")
    note.setWordWrap(True)
    note.setStyleSheet("color: #a61b14; font-size: 11px;")
    note.setVisible(False)
    bars = PredictionBars()
    layout = QVBoxLayout(box)
    layout.setSpacing(2)
    layout.addWidget(note)
    layout.addWidget(bars)
    return box, bars, note


LIVE_CLASS = "the live top-1:"  # the class list while live


class SidePanel(QScrollArea):
    cam_changed = Signal()  # the check box, the class or the layer mode changed
    tab_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        content = WrappedScrollContent()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 0, 6, 0)
        layout.setSpacing(6)

        self.pred_box, self.predictions, self.untrained_note = predictions_box("Top-5 predictions")

        cam_box = QGroupBox("Where does it look? (Grad-CAM)")
        self.cam_check = QCheckBox("Show Grad-CAM on the input")
        self.cam_check.setToolTip(
            "Colour the picture by how much each region raised the chosen class's score"
        )
        self.cam_class_combo = QComboBox()
        self._class_before_live: int | None = None  # the class chosen when live took the list over
        self.cam_class_combo.setToolTip("The class whose evidence is shown (one of the top 5)")
        self.cam_layer_combo = QComboBox()
        self.cam_layer_combo.addItem("Last spatial layer", "last")
        self.cam_layer_combo.addItem("Current layer", "current")
        self.cam_layer_combo.setToolTip(
            "Grad-CAM reads one layer's maps: the last one with a spatial layout is the usual choice"
        )
        self.cam_info = QLabel()
        self.cam_info.setWordWrap(True)
        self.cam_info.setStyleSheet(style.SMALL_MUTED_STYLE)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(3)
        form.addRow("Class", self.cam_class_combo)
        form.addRow("Layer", self.cam_layer_combo)
        cam_layout = QVBoxLayout(cam_box)
        cam_layout.setSpacing(3)
        cam_layout.addWidget(self.cam_check)
        cam_layout.addLayout(form)
        cam_layout.addWidget(self.cam_info)

        self.details_box = QGroupBox("This layer")
        self.details = LayerDetails()
        QVBoxLayout(self.details_box).addWidget(self.details)

        self.tabs = QTabWidget()
        self.stats_view = StatsView()
        self.filter_view = FilterView()
        self.tabs.addTab(self.stats_view, "Statistics")
        self.tabs.addTab(self.filter_view, "Filters")
        self.tabs.setMinimumHeight(200)

        self.extra = QVBoxLayout()  # compare mode puts its charts here
        self.extra.setSpacing(6)
        layout.addLayout(self.extra)
        layout.addWidget(self.details_box)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.pred_box)
        layout.addWidget(cam_box)

        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(content)
        self.setMinimumWidth(290)

        self.cam_check.toggled.connect(self.cam_changed)
        self.cam_class_combo.currentIndexChanged.connect(self._on_class)
        self.cam_layer_combo.currentIndexChanged.connect(self.cam_changed)
        self.predictions.class_clicked.connect(self._on_prediction_clicked)
        self.tabs.currentChanged.connect(self.tab_changed)

    def set_compact(self, compact: bool) -> None:
        """Compare mode: the comparison's charts instead of side A's details, statistics and filters."""
        self.details_box.setVisible(not compact)
        self.tabs.setVisible(not compact)
        self.setMinimumWidth(260 if compact else 290)

    @property
    def filters_shown(self) -> bool:
        return self.tabs.currentWidget() is self.filter_view

    def show_predictions(self, predictions: list[Prediction], untrained: bool) -> None:
        combo = self.cam_class_combo
        combo.blockSignals(True)
        previous = combo.currentData()
        if previous is None:  # (live showed its own top-1 here: the class chosen before it)
            previous, self._class_before_live = self._class_before_live, None
        combo.clear()
        for p in predictions:
            combo.addItem(f"{p.name} — {percent_text(p.probability)}", p.index)
        i = combo.findData(previous) if previous is not None else -1
        combo.setCurrentIndex(max(0, i))
        combo.blockSignals(False)
        self.predictions.set_predictions(predictions, selected=combo.currentData())
        self.untrained_note.setVisible(untrained)

    def show_live_class(self, name: str) -> None:
        """While live: Grad-CAM explains each frame's top-1, so the class list names it (and is off)."""
        combo = self.cam_class_combo
        label = f"{LIVE_CLASS} {name}"
        live_shown = combo.count() == 1 and combo.itemText(0).startswith(LIVE_CLASS)
        if live_shown and combo.itemText(0) == label and not combo.isEnabled():
            return
        if not live_shown:
            self._class_before_live = combo.currentData()  # chosen again when the still comes back
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(label, None)
        combo.setEnabled(False)
        combo.blockSignals(False)

    def clear(self, message: str) -> None:
        self.details.clear("")
        self.stats_view.clear("")
        self.filter_view.clear("")
        self.predictions.clear(message)
        self.untrained_note.setVisible(False)
        self.cam_class_combo.clear()
        self.cam_info.setText("")

    def cam_request(self) -> dict[str, object]:
        return {
            "enabled": self.cam_check.isChecked(),
            "class_index": self.cam_class_combo.currentData(),
            "layer_mode": str(self.cam_layer_combo.currentData()),
        }

    def _on_class(self) -> None:
        self.predictions.set_selected(self.cam_class_combo.currentData())
        self.cam_changed.emit()

    def _on_prediction_clicked(self, class_index: int) -> None:
        i = self.cam_class_combo.findData(class_index)
        if i >= 0:
            self.cam_class_combo.setCurrentIndex(i)
        self.cam_check.setChecked(True)  # clicking a class asks "where did you see it?"
