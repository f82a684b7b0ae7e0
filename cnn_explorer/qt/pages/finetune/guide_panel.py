"""The Fine-tune page's Guide tab: the course's 2×2 transfer-learning guide with the dataset placed in
it (and the similarity estimate with its override), and "probe every block": validation accuracy of a
linear classifier on each layer's pooled features, against depth. A click on a point makes that layer
the cut layer of the "linear classifier on an earlier layer" strategy.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.qt.style import SMALL_MUTED_STYLE
from cnn_explorer.qt.widgets.guide_grid import GuideGrid
from cnn_explorer.qt.widgets.probe_chart import ProbeChart


class GuidePanel(QWidget):
    """``grid`` (a :class:`GuideGrid`) beside ``chart`` (a :class:`ProbeChart`) with its button, which
    emits ``probe_requested``."""

    probe_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.grid = GuideGrid(show_reason=False)  # the form's recommendation box gives the reason
        self.probe_button = QPushButton("Probe every block")
        self.probe_button.setToolTip(
            "One pass over the dataset caches every block's pooled output; a linear classifier is trained "
            "on each. Where the accuracy stops rising, the features stop being generic for your data."
        )
        self.probe_button.clicked.connect(lambda: self.probe_requested.emit())
        self.probe_status = QLabel("")
        self.probe_status.setWordWrap(True)
        self.probe_status.setStyleSheet(SMALL_MUTED_STYLE)
        self.chart = ProbeChart()
        top = QHBoxLayout()
        top.addWidget(self.probe_button)
        top.addWidget(self.probe_status, 1)
        right = QWidget()
        col = QVBoxLayout(right)
        col.setContentsMargins(0, 0, 0, 0)
        col.addLayout(top)
        col.addWidget(self.chart, 1)
        grid_scroll = QScrollArea()  # the grid keeps its natural height; a short tab scrolls
        grid_scroll.setWidget(self.grid)
        grid_scroll.setWidgetResizable(True)
        grid_scroll.setFrameShape(QFrame.Shape.NoFrame)
        grid_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = grid_scroll.verticalScrollBar().sizeHint().width()
        grid_scroll.setMinimumWidth(self.grid.minimumSizeHint().width() + bar + 4)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(grid_scroll)
        splitter.addWidget(right)
        splitter.setSizes([5000, 4000])
        splitter.setChildrenCollapsible(False)
        v = QVBoxLayout(self)
        v.setContentsMargins(4, 4, 4, 4)
        v.addWidget(splitter)

    def set_probe_enabled(self, enabled: bool) -> None:
        self.probe_button.setEnabled(enabled)
