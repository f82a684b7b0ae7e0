"""One architecture in full: where it comes from, what it costs, how well it does, the ideas that made it
matter, where the zoo's build differs from the paper, and its signature block drawn from the real module.

``ArchCard.show_facts(facts, graphs)`` takes the core's ``ArchitectureFacts`` and the block graphs drawn for
it (the signature block first, then the extra ones), plain values only. "Open in explorer" and a click on a
box of the diagram emit ``open_in_explorer(model, layer)``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.architectures import ArchitectureFacts
from cnn_explorer.core.block_graph import BlockGraph
from cnn_explorer.core.explorer.text import short_number
from cnn_explorer.qt import style
from cnn_explorer.qt.widgets.block_diagram import BlockDiagram

PLAIN_STACK_TEXT = (
    "A plain stack of layers: no block to draw. Open it in the explorer to walk its convolutions, "
    "pooling and fully connected layers one by one."
)


def accuracy_text(f: ArchitectureFacts) -> str:
    if f.top1 is None:
        return f"no ImageNet number — {f.accuracy_source}"
    return f"{f.top1:.1f} % top-1, {f.top5:.1f} % top-5 (from {f.accuracy_source})"


def depth_text(f: ArchitectureFacts) -> str:
    counted = f"{f.depth} weight layers ({f.conv_layers} conv + {f.fc_layers} FC)"
    if f.paper_depth is not None and f.paper_depth != f.depth:
        return f"{counted}; the paper says {f.paper_depth}"
    return counted


def breakdown_text(f: ArchitectureFacts) -> str:
    parts = [f"conv {short_number(f.conv_params)}", f"FC {short_number(f.fc_params)}"]
    if f.other_params:
        parts.append(f"other {short_number(f.other_params)} (batch norm)")
    return " · ".join(parts) + f" — {100 * f.fc_share:.0f} % in fully connected layers"


def facts_html(f: ArchitectureFacts) -> str:
    """The card's text as rich text: every number from the facts, nothing typed here."""
    e = html.escape
    rows = [
        ("Depth", depth_text(f)),
        ("Parameters", f"{f.params:,} ({short_number(f.params)}): {breakdown_text(f)}"),
        ("Multiply-adds", f"{short_number(f.macs)} per {f.input_size}×{f.input_size} image"),
        ("ImageNet", accuracy_text(f)),
    ]
    table = "".join(
        f"<tr><td style='color:{style.MUTED}; padding-right:8px'>{e(k)}</td><td>{e(v)}</td></tr>"
        for k, v in rows
    )
    notes = [n for n in (f.depth_note, f.accuracy_note) if n]
    ideas = "".join(f"<li>{e(i)}</li>" for i in f.key_ideas)
    differs = "".join(f"<li>{e(d)}</li>" for d in f.differs)
    paper = f"<a href='{e(f.paper_url)}'>{e(f.paper)}</a>" if f.paper_url else e(f.paper)
    parts = [
        f"<div style='{style.TITLE_STYLE}'>{e(f.title)} <span style='color:{style.MUTED}; font-weight:400'>"
        f"· {f.year} · {e(f.authors)}</span></div>",
        f"<div style='color:{style.MUTED}'>{paper}</div>",
        f"<table style='margin-top:4px'>{table}</table>",
        _bullets("Key ideas", ideas),
        _bullets("Not in torchvision's build", differs),
        "".join(f"<p style='color:{style.FAINT}; margin:2px 0'>{e(n)}</p>" for n in notes),
    ]
    return "".join(parts)


def _bullets(title: str, items: str) -> str:
    if not items:
        return ""
    return f"<p style='margin:4px 0 0 0'><b>{title}</b></p><ul style='margin-top:0'>{items}</ul>"


class ArchCard(QWidget):
    open_in_explorer = Signal(str, str)  # zoo name, layer ("" for the first)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facts: ArchitectureFacts | None = None
        self._graphs: list[tuple[str, str, BlockGraph | None]] = []  # (block, what it shows, graph)
        self.text = QLabel("Choose an architecture.")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setOpenExternalLinks(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.block_title = QLabel("Signature block")
        self.block_title.setStyleSheet(style.TITLE_STYLE)
        self.block_combo = QComboBox()
        self.block_combo.setToolTip("The blocks that show this architecture's ideas, drawn from its modules")
        self.block_shows = QLabel()
        self.block_shows.setWordWrap(True)
        self.block_shows.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.diagram = BlockDiagram()
        self.diagram.setMinimumHeight(200)
        self.open_button = QPushButton("Open in explorer")
        self.open_button.setToolTip(
            "Walk this model in the Network explorer, starting at the block drawn here"
        )
        head = QHBoxLayout()
        head.addWidget(self.block_title)
        head.addWidget(self.block_combo, 1)
        head.addWidget(self.open_button)
        text_scroll = QScrollArea()  # a long card scrolls on its own; the diagram stays in view
        text_scroll.setWidgetResizable(True)
        text_scroll.setFrameShape(QFrame.Shape.NoFrame)
        text_scroll.setWidget(self.text)
        block = QWidget()
        block_column = QVBoxLayout(block)
        block_column.setContentsMargins(0, 0, 0, 0)
        block_column.addLayout(head)
        block_column.addWidget(self.block_shows)
        block_column.addWidget(self.diagram, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.setSpacing(12)
        layout.addWidget(text_scroll, 1)
        layout.addWidget(block, 1)
        self.block_combo.currentIndexChanged.connect(self._show_block)
        self.open_button.clicked.connect(self._open_current)
        self.diagram.layer_clicked.connect(self._open_layer)

    def show_facts(
        self, facts: ArchitectureFacts, graphs: Sequence[tuple[str, str, BlockGraph | None]]
    ) -> None:
        """``graphs``: (block's module name, what it shows, its graph, None if it could not be drawn)."""
        self.facts = facts
        self._graphs = list(graphs)
        self.text.setText(facts_html(facts))
        self.block_combo.blockSignals(True)
        self.block_combo.clear()
        for block, _shows, graph in self._graphs:
            kind = graph.type if graph is not None else ""
            self.block_combo.addItem(f"{block} ({kind})" if kind else block, block)
        self.block_combo.blockSignals(False)
        self.block_combo.setVisible(len(self._graphs) > 1)
        self.block_title.setText("Signature block" if self._graphs else "Blocks")
        self._show_block(0)

    def current_block(self) -> str | None:
        i = self.block_combo.currentIndex()
        return self._graphs[i][0] if 0 <= i < len(self._graphs) else None

    def _show_block(self, index: int) -> None:
        if not self._graphs:
            self.block_shows.setText("")
            self.diagram.set_graph(None, PLAIN_STACK_TEXT)
            self.open_button.setToolTip("Walk this model in the Network explorer from its first layer")
            return
        block, shows, graph = self._graphs[max(0, index)]
        article = "an" if graph is not None and graph.type[:1].lower() in "aeiou" else "a"
        where = f"{block}, {article} {graph.type}" if graph is not None else block
        self.block_shows.setText(f"{where}: {shows}" if shows else where)
        self.diagram.set_graph(graph, "" if graph is not None else f"{block} could not be drawn")
        self.open_button.setToolTip(f"Walk this model in the Network explorer, starting at {block}")

    def _open_current(self) -> None:
        if self.facts is not None:
            self.open_in_explorer.emit(self.facts.name, self.current_block() or "")

    def _open_layer(self, layer: str) -> None:
        if self.facts is not None:
            self.open_in_explorer.emit(self.facts.name, layer)
