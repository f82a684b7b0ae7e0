"""The Operations lab's bottom row, sized so the maps above keep the height: the tabs (step mode, depth,
activation, SGD, design calculators) ask for the step sheet's height — the depth tab for room to show its
filters — not their tallest page's (which scrolls), and the column beside them (parameters, kernel
gradient) asks for no more than the tabs do."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

TABS = ("step", "depth", "activation", "sgd", "design")
TABS_HEIGHT = 290  # what the step sheet needs; the maps above take the rest of the height
DEPTH_TAB_HEIGHT = 560  # four filters of three kernels each, under the depth settings


class BottomTabs(QTabWidget):
    """The bottom tabs ask for the step sheet's height (the depth tab: room for its filters), not their
    tallest page's (which scrolls)."""

    def __init__(self) -> None:
        super().__init__()
        self.setDocumentMode(True)
        self.currentChanged.connect(lambda _i: self.updateGeometry())

    def sizeHint(self) -> QSize:
        tall = self.currentIndex() == TABS.index("depth")
        return QSize(super().sizeHint().width(), DEPTH_TAB_HEIGHT if tall else TABS_HEIGHT)

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), 220)

    def hasHeightForWidth(self) -> bool:
        return False  # (the pages' wrapped labels would make it ask for their full height)


class SideColumn(QWidget):
    """The parameter box (over the kernel gradient, when it is shown), as tall as the tabs beside it, or
    as the two boxes need."""

    def __init__(self, tabs: QTabWidget, first: QWidget, *more: QWidget) -> None:
        super().__init__()
        self._tabs = tabs
        self._more = more
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(first, 1)
        for panel in more:
            layout.addWidget(panel, 0)

    def sizeHint(self) -> QSize:
        height = self._tabs.sizeHint().height()
        if any(panel.isVisibleTo(self) for panel in self._more):
            height = max(height, super().sizeHint().height())
        return QSize(super().sizeHint().width(), height)

    def hasHeightForWidth(self) -> bool:
        return False
