"""Architectures: the history of CNNs from LeNet-5 to EfficientNet, one card per zoo model, accuracy against
cost, where the parameters sit, and each model's signature block drawn from its real modules.

The facts (``core.architectures``) and the block graphs (``core.block_graph``) are measured in a worker the
first time the page is shown (building the models on the meta device takes a few seconds); the page then
only draws plain values. Clicking a point of the scatter, "Open in explorer" or a box of a block diagram
emits ``open_in_explorer(model, layer)``; the main window shows the Network explorer there.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.architectures import ArchitectureFacts, architecture_facts
from cnn_explorer.core.block_graph import BlockGraph, signature_graph
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.explorer.text import short_number
from cnn_explorer.qt import style
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.gallery.card import ArchCard
from cnn_explorer.qt.widgets.arch_scatter import ArchScatter
from cnn_explorer.qt.widgets.param_breakdown import ParamBreakdown
from cnn_explorer.qt.workers import LatestRunner

SCREENSHOT_MODEL = "googlenet"  # the Inception module's four branches: the most telling diagram


@dataclass(frozen=True)
class Gallery:
    facts: list[ArchitectureFacts]
    blocks: dict[str, list[tuple[str, str, BlockGraph | None]]]  # model -> (block, what it shows, graph)
    notes: list[str] = field(default_factory=list)  # what could not be measured or drawn, and why


def load_gallery(control: Control | None = None) -> Gallery:
    """Worker body: every zoo architecture's facts and block graphs (signature block first). A model that
    cannot be measured is left out, and a block that cannot be drawn is shown as such, each with a note:
    one failure does not blank the gallery."""
    facts: list[ArchitectureFacts] = []
    notes: list[str] = []
    for info in zoo.available_models():
        checkpoint(control)
        if info.source == "file":
            continue
        try:
            facts.append(architecture_facts(info.name))
        except Exception as exc:  # a broken zoo entry must not take the others with it
            notes.append(f"{info.title} is left out: {type(exc).__name__}: {exc}")
    facts.sort(key=lambda f: f.published)
    blocks: dict[str, list[tuple[str, str, BlockGraph | None]]] = {}
    for f in facts:
        checkpoint(control)
        wanted = ([(f.signature_block, "")] if f.signature_block else []) + list(f.extra_blocks)
        blocks[f.name] = []
        for block, shows in wanted:
            try:
                graph = signature_graph(f.name, block)
            except Exception as exc:
                graph = None
                notes.append(f"{f.title}'s {block} cannot be drawn: {type(exc).__name__}: {exc}")
            blocks[f.name].append((block, shows, graph))
    return Gallery(facts, blocks, notes)


def list_text(f: ArchitectureFacts) -> str:
    top1 = f"{f.top1:.1f} % top-1" if f.top1 is not None else "no ImageNet top-1"
    return (
        f"{f.title}  ·  {f.year}  ·  {f.depth} layers\n"
        f"{short_number(f.params)} params · {short_number(f.macs)} MACs · {top1}"
    )


class GalleryPage(Page):
    title = "Architectures"
    open_in_explorer = Signal(str, str)  # zoo name, layer ("" for the model's first row)
    gallery_ready = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.gallery: Gallery | None = None
        self.runner = LatestRunner(self)
        self._build()

    def _build(self) -> None:
        self.header = QLabel(
            "From LeNet-5 (1998) to EfficientNet (2019): each architecture with the idea that made it "
            "matter. Click a point to open that model in the explorer."
        )
        self.header.setWordWrap(True)
        self.header.setStyleSheet(f"color: {style.MUTED};")
        self.model_list = QListWidget()
        self.model_list.setAlternatingRowColors(True)
        self.model_list.setMinimumWidth(260)
        self.model_list.setStyleSheet("QListWidget::item { padding: 5px 4px; }")
        self.scatter = ArchScatter()
        self.breakdown = ParamBreakdown()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.scatter, "Accuracy against cost")
        self.tabs.addTab(self.breakdown, "Where the parameters are")
        self.card = ArchCard()
        right = QSplitter(Qt.Orientation.Vertical)
        right.setChildrenCollapsible(False)
        right.addWidget(self.tabs)
        right.addWidget(self.card)
        right.setSizes([370, 480])
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.model_list)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([330, 1000])
        self.loading = QLabel("Measuring the architectures…")
        self.loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.loading.setStyleSheet(f"color: {style.FAINT}; font-size: 14px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.loading)
        self.stack.addWidget(self.splitter)
        content = ScrollContent()  # a small window scrolls the page instead of squeezing the plots
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.addWidget(self.header)
        layout.addWidget(self.stack, 1)
        self.scroll_page(content)
        self.model_list.currentRowChanged.connect(self._on_row)
        self.scatter.model_clicked.connect(self._on_point)
        self.breakdown.model_clicked.connect(self.select_model)
        self.card.open_in_explorer.connect(self.open_in_explorer)

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        """Measure the architectures in a worker (once)."""
        if self.gallery is not None or self.runner.busy:
            return
        self.runner.request(
            ("gallery",),
            load_gallery,
            on_result=self._on_gallery,
            on_failed=lambda exc: self.loading.setText(
                f"Cannot measure the architectures: {type(exc).__name__}: {exc}"
            ),
            name="architecture gallery",
        )

    def _on_gallery(self, gallery: Gallery) -> None:
        self.gallery = gallery
        self.model_list.blockSignals(True)
        self.model_list.clear()
        for f in gallery.facts:
            item = QListWidgetItem(list_text(f))
            item.setData(Qt.ItemDataRole.UserRole, f.name)
            item.setToolTip(f"{f.paper} ({f.authors}, {f.year})")
            self.model_list.addItem(item)
        self.model_list.blockSignals(False)
        self.scatter.set_facts(gallery.facts)
        self.breakdown.set_facts(gallery.facts)
        self.stack.setCurrentWidget(self.splitter)
        if gallery.notes:
            notes = html.escape("; ".join(gallery.notes))
            self.header.setText(f"{html.escape(self.header.text())}<br><i>{notes}</i>")
        self.model_list.setCurrentRow(0)
        self.gallery_ready.emit()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.load()

    # -- choosing ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [f.name for f in self.gallery.facts] if self.gallery is not None else []

    def select_model(self, name: str) -> None:
        if name in self.names():
            self.model_list.setCurrentRow(self.names().index(name))

    def selected(self) -> str | None:
        item = self.model_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _on_row(self, row: int) -> None:
        if self.gallery is None or not 0 <= row < len(self.gallery.facts):
            return
        f = self.gallery.facts[row]
        self.card.show_facts(f, self.gallery.blocks.get(f.name, []))
        self.scatter.set_selected(f.name)
        self.breakdown.set_selected(f.name)

    def _on_point(self, name: str) -> None:
        self.select_model(name)
        self.open_in_explorer.emit(name, "")

    # -- page API ---------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self.runner.busy

    def prepare_screenshot(self) -> None:
        self.load()
        if self.gallery is not None:
            self.select_model(SCREENSHOT_MODEL)

    def shutdown(self) -> None:
        self.runner.shutdown()
