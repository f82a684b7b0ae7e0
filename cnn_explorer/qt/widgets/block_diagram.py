"""A signature block drawn from its core ``BlockGraph``: one rounded box per layer, top to bottom, arrows
between them, merges as a small "+" / "×" circle or a "concat" pill, and shortcuts as curves around the
right side.

``BlockDiagram(parent=None)``: ``set_graph(graph, message="")`` (None shows ``message`` instead),
``graph()``; signal ``layer_clicked(str)`` with the clicked box's explorer row name (boxes without one are
not clickable); ``node_rect(module)`` and ``node_rects()`` give where boxes are, in the widget's
coordinates. The drawing scales down to fit the width (not below ``MIN_SCALE``) and scrolls vertically.

Placement: a box sits in its graph column; a box alone at its rank (nothing beside it, no arrow running
past it) is centred over all columns, so an Inception module's input and concat sit above and below the
middle of its four branches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QToolTip, QVBoxLayout, QWidget

from cnn_explorer.core.explorer.text import shape_text
from cnn_explorer.qt.style import ACCENT, FAINT, MUTED

if TYPE_CHECKING:
    from cnn_explorer.core.block_graph import BlockGraph, BlockNode

__all__ = ["BlockDiagram"]

MIN_SCALE = 0.6  # below this the text gets too small: scroll sideways instead
MAX_SCALE = 1.0
SPLIT_BELOW_SCALE = 0.95  # labels go to two lines rather than the drawing shrinking below this

# (fill, border) per kind of box
KIND_COLOURS: dict[str, tuple[str, str]] = {
    "conv": ("#dceaf8", "#5a8ec6"),
    "pool": ("#fdebd3", "#c98a35"),
    "linear": ("#e1f1dd", "#549a4a"),
    "gate": ("#ede3f7", "#8963b4"),
    "shuffle": ("#fff3c4", "#c3a02a"),
    "split": ("#fff3c4", "#c3a02a"),
    "act": ("#eeeeee", "#9a9a9a"),
    "norm": ("#eeeeee", "#9a9a9a"),
    "other": ("#f3f3f3", "#9a9a9a"),
    "input": ("#ffffff", "#8a8a8a"),
    "output": ("#ffffff", "#8a8a8a"),
    "add": ("#ffffff", "#444444"),
    "mul": ("#ffffff", "#444444"),
    "cat": ("#ffffff", "#444444"),
}
TEXT_COLOUR = "#1a1a1a"
EDGE_COLOUR = FAINT
SHORTCUT_COLOUR = ACCENT
HOVER_COLOUR = ACCENT

MARGIN = 14.0
PAD_X = 10.0
PAD_Y = 6.0
COLUMN_GAP = 22.0
RANK_GAP = 30.0
MERGE_DIAMETER = 26.0
PILL_HEIGHT = 24.0
LANE_GAP = 12.0  # between parallel shortcut curves
LANE_OFFSET = 22.0  # from the rightmost box to the first shortcut curve
CORNER = 8.0
LINE_GAP = 2.0
ARROW = 6.0
SHORTCUT_LABELS_UP_TO = 2  # more shortcuts than this (DenseNet) go unlabelled: the caption explains them


@dataclass
class _Placed:
    node: BlockNode
    rect: QRectF  # the drawn shape, in unscaled drawing units
    footprint: QRectF  # the shape and the shape text beside it (merges)


@dataclass
class _Edge:
    path: QPainterPath
    tip: QPointF
    towards: QPointF  # the tip's direction: from this point to the tip
    shortcut: bool


@dataclass
class _Drawing:
    placed: dict[str, _Placed] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)
    labels: list[tuple[QPointF, str]] = field(default_factory=list)
    split: bool = False  # labels in two lines (see _text_lines)
    width: float = 0.0
    height: float = 0.0


def _fonts(base: QFont) -> dict[str, QFont]:
    """The fonts of a box's lines: "bold" for what it is, "plain" for its channels, "small" for the rest."""
    bold = QFont(base)
    bold.setPointSizeF(9.5)
    bold.setWeight(QFont.Weight.DemiBold)
    plain = QFont(base)
    plain.setPointSizeF(9.0)
    small = QFont(base)
    small.setPointSizeF(8.0)
    return {"bold": bold, "plain": plain, "small": small}


def _text_lines(node: BlockNode, split: bool) -> list[tuple[str, str]]:
    """(text, font key) of a box's lines, top to bottom. ``split``: the label in two lines, what it is
    ("3×3 conv") above its numbers ("64 → 128, stride 2"), so that branches side by side fit."""
    head, _, rest = node.label.partition(", ")
    lines = [(head, "bold"), (rest, "plain")] if split and rest else [(node.label, "bold")]
    return lines + [(t, "small") for t in (node.detail, _shape_line(node)) if t]


def _shape_line(node: BlockNode) -> str:
    return shape_text(node.out_shape) if node.out_shape else ""


# Kinds drawn as wide as a column (the others, e.g. a lone ReLU, as wide as their text).
_FULL_WIDTH = ("conv", "pool", "linear", "gate", "shuffle", "split", "other")


def _is_merge(node: BlockNode) -> bool:
    return node.kind in ("add", "mul", "cat")


class _Measure:
    def __init__(self, fonts: dict[str, QFont]) -> None:
        self.metrics = {key: QFontMetricsF(font) for key, font in fonts.items()}
        self.slack = 6.0  # text drawn scaled can come out a little wider than measured

    def width(self, text: str, font: str = "small") -> float:
        return self.metrics[font].horizontalAdvance(text) + self.slack if text else 0.0

    def height(self, font: str) -> float:
        return self.metrics[font].height()

    def box_size(self, node: BlockNode, split: bool) -> tuple[float, float]:
        """(width, height) of the drawn shape; merges: the circle or pill alone."""
        if node.kind in ("add", "mul"):
            return MERGE_DIAMETER, MERGE_DIAMETER
        if node.kind == "cat":
            return self.width(node.label, "bold") + 2 * PAD_X, PILL_HEIGHT
        lines = _text_lines(node, split)
        width = max(self.width(text, font) for text, font in lines) + 2 * PAD_X
        if node.kind in _FULL_WIDTH and not node.detail:
            lines.append(("", "small"))  # boxes side by side keep one height
        return width, 2 * PAD_Y + sum(self.height(font) + LINE_GAP for _, font in lines) - LINE_GAP


def _passing(graph: BlockGraph, rank_of: dict[str, int], column_of: dict[str, int]) -> set[tuple[int, int]]:
    """(rank, column) cells that a straight arrow runs through without stopping."""
    fan_out = {n.id: sum(1 for e in graph.edges if e.src == n.id and not e.shortcut) for n in graph.nodes}
    cells: set[tuple[int, int]] = set()
    for e in graph.edges:
        if e.shortcut:
            continue
        column = column_of[e.dst] if fan_out[e.src] > 1 else column_of[e.src]
        for r in range(rank_of[e.src] + 1, rank_of[e.dst]):
            cells.add((r, column))
    return cells


def _layout(graph: BlockGraph, measure: _Measure, split: bool) -> _Drawing:
    drawing = _Drawing(split=split)
    nodes = graph.nodes
    rank_of = {n.id: n.rank for n in nodes}
    column_of = {n.id: n.column for n in nodes}
    sizes = {n.id: measure.box_size(n, split) for n in nodes}
    regular = [sizes[n.id][0] for n in nodes if not _is_merge(n)]
    column_width = max(regular, default=120.0)
    columns = max(column_of.values(), default=0) + 1
    passing = _passing(graph, rank_of, column_of)

    def column_x(c: float) -> float:
        return MARGIN + c * (column_width + COLUMN_GAP) + column_width / 2

    ranks = sorted({n.rank for n in nodes})
    heights = {r: max(sizes[n.id][1] for n in nodes if n.rank == r) for r in ranks}
    tops: dict[int, float] = {}
    y = MARGIN
    for r in ranks:
        tops[r] = y
        y += heights[r] + RANK_GAP
    for n in nodes:
        alone = all(m.rank != n.rank for m in nodes if m.id != n.id) and not any(
            cell[0] == n.rank and cell[1] != n.column for cell in passing
        )
        cx = (column_x(0) + column_x(columns - 1)) / 2 if alone else column_x(n.column)
        w, h = sizes[n.id]
        if n.kind in _FULL_WIDTH:
            w = column_width
        cy = tops[n.rank] + heights[n.rank] / 2
        rect = QRectF(cx - w / 2, cy - h / 2, w, h)
        footprint = QRectF(rect)
        if _is_merge(n):
            beside = measure.width(_shape_line(n)) + 6
            footprint = rect.adjusted(-beside, 0, beside, 0)
        drawing.placed[n.id] = _Placed(n, rect, footprint)
    right = max((p.footprint.right() for p in drawing.placed.values()), default=MARGIN)
    drawing.edges = [_straight_edge(graph, drawing, e.src, e.dst) for e in graph.edges if not e.shortcut]
    label_room = _shortcut_edges(graph, drawing, right, measure)
    lanes_right = max((e.path.boundingRect().right() for e in drawing.edges if e.shortcut), default=right)
    drawing.width = max(right, lanes_right) + label_room + MARGIN
    drawing.height = y - RANK_GAP + MARGIN
    return drawing


def _straight_edge(graph: BlockGraph, drawing: _Drawing, src: str, dst: str) -> _Edge:
    """Down from the source, across, down into the target: the jog right below a fan-out (so branches
    leave together), else right above the target (so branches arrive together)."""
    a, b = drawing.placed[src].rect, drawing.placed[dst].rect
    start, end = QPointF(a.center().x(), a.bottom()), QPointF(b.center().x(), b.top())
    fans_out = sum(1 for e in graph.edges if e.src == src and not e.shortcut) > 1
    jog = a.bottom() + RANK_GAP / 2 if fans_out else b.top() - RANK_GAP / 2
    path = QPainterPath(start)
    if abs(start.x() - end.x()) < 0.5:
        path.lineTo(end)
        before = QPointF(end.x(), end.y() - 1)
    else:
        path.lineTo(start.x(), jog)
        path.lineTo(end.x(), jog)
        path.lineTo(end)
        before = QPointF(end.x(), jog)
    return _Edge(path, end, before, False)


def _shortcut_edges(graph: BlockGraph, drawing: _Drawing, right: float, measure: _Measure) -> float:
    """Adds the shortcut curves around the right side; returns the width their labels need."""
    shortcuts = [e for e in graph.edges if e.shortcut]
    placed = drawing.placed
    spans = sorted(  # the shortest inside, so curves nest instead of crossing
        ((placed[e.src].node.rank, placed[e.dst].node.rank, e) for e in shortcuts),
        key=lambda t: (t[1] - t[0], t[0]),
    )
    lanes: list[list[tuple[int, int]]] = []  # per lane: the rank spans it carries
    label = "identity"
    label_width = measure.width(label) if 0 < len(shortcuts) <= SHORTCUT_LABELS_UP_TO else 0.0
    for lo, hi, e in spans:
        lane = next(
            (i for i, used in enumerate(lanes) if all(hi <= a or lo >= b for a, b in used)),
            len(lanes),
        )
        if lane == len(lanes):
            lanes.append([])
        lanes[lane].append((lo, hi))
        x = right + LANE_OFFSET + lane * LANE_GAP
        a, b = placed[e.src].rect, placed[e.dst].rect
        y0, y1 = a.center().y(), b.center().y()
        path = QPainterPath(QPointF(a.right(), y0))
        path.lineTo(x - CORNER, y0)
        path.quadTo(x, y0, x, y0 + CORNER)
        path.lineTo(x, y1 - CORNER)
        path.quadTo(x, y1, x - CORNER, y1)
        tip = QPointF(b.right(), y1)
        path.lineTo(tip)
        drawing.edges.append(_Edge(path, tip, QPointF(tip.x() + 1, y1), True))
        if label_width:
            drawing.labels.append((QPointF(x + 4, (y0 + y1) / 2), label))
    return label_width + 4 if label_width else 0.0


class _Canvas(QWidget):
    """Paints the drawing, scaled; finds the box under the mouse."""

    clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.fonts = _fonts(self.font())
        self.measure = _Measure(self.fonts)
        self.graph: BlockGraph | None = None
        self.layouts: dict[bool, _Drawing] = {}  # by "labels split in two lines"
        self.drawing: _Drawing | None = None
        self.scale = 1.0
        self.offset_x = 0.0
        self.hovered: str | None = None

    def set_graph(self, graph: BlockGraph | None) -> None:
        self.graph = graph
        self.layouts = {}
        self.drawing = self._layout(split=False) if graph is not None else None
        self.hovered = None
        self.unsetCursor()

    def _layout(self, split: bool) -> _Drawing:
        assert self.graph is not None
        if split not in self.layouts:
            self.layouts[split] = _layout(self.graph, self.measure, split)
        return self.layouts[split]

    def fit(self, width: int) -> None:
        """Scale to ``width`` pixels and take the height that needs; labels go to two lines when that
        lets the drawing be larger."""
        if self.graph is None:
            self.drawing = None
            self.resize(width, 0)
            return
        one_line = self._layout(split=False)
        self.drawing = one_line
        if width / one_line.width < SPLIT_BELOW_SCALE:
            two_lines = self._layout(split=True)
            if two_lines.width < one_line.width:
                self.drawing = two_lines
        self.scale = max(MIN_SCALE, min(MAX_SCALE, width / self.drawing.width))
        scaled_w = self.drawing.width * self.scale
        total_w = max(width, int(scaled_w + 0.999))
        self.offset_x = (total_w - scaled_w) / 2
        self.setFixedSize(total_w, int(self.drawing.height * self.scale + 0.999))
        self.update()

    def to_widget(self, rect: QRectF) -> QRectF:
        s = self.scale
        return QRectF(self.offset_x + rect.x() * s, rect.y() * s, rect.width() * s, rect.height() * s)

    def node_at(self, pos: QPointF) -> _Placed | None:
        if self.drawing is None:
            return None
        for placed in self.drawing.placed.values():
            if self.to_widget(placed.rect).contains(pos):
                return placed
        return None

    def sizeHint(self) -> QSize:
        if self.drawing is None:
            return QSize(200, 0)
        return QSize(int(self.drawing.width), int(self.drawing.height))

    # --- mouse --------------------------------------------------------------------------------------------

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        placed = self.node_at(event.position())
        hovered = placed.node.id if placed is not None and placed.node.module else None
        if hovered != self.hovered:
            self.hovered = hovered
            if hovered:
                self.setCursor(Qt.CursorShape.PointingHandCursor)
            else:
                self.unsetCursor()
            self.update()
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        if self.hovered is not None:
            self.hovered = None
            self.unsetCursor()
            self.update()
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            placed = self.node_at(event.position())
            if placed is not None and placed.node.module:
                self.clicked.emit(placed.node.module)
                return
        super().mouseReleaseEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            placed = self.node_at(QPointF(event.pos()))
            if placed is not None and placed.node.module:
                n = placed.node
                QToolTip.showText(
                    event.globalPos(), f"{n.module}\n{n.label}\nclick: show it in the explorer", self
                )
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    # --- painting -----------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.drawing is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        painter.translate(self.offset_x, 0)
        painter.scale(self.scale, self.scale)
        for edge in self.drawing.edges:
            self._paint_edge(painter, edge)
        painter.setFont(self.fonts["small"])
        painter.setPen(QColor(SHORTCUT_COLOUR))
        for point, text in self.drawing.labels:
            painter.drawText(QRectF(point.x(), point.y() - 10, 200, 20), Qt.AlignmentFlag.AlignVCenter, text)
        for placed in self.drawing.placed.values():
            self._paint_node(painter, placed)
        painter.end()

    def _paint_edge(self, painter: QPainter, edge: _Edge) -> None:
        colour = QColor(SHORTCUT_COLOUR if edge.shortcut else EDGE_COLOUR)
        pen = QPen(colour, 1.6 if edge.shortcut else 1.3)
        if edge.shortcut:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(edge.path)
        dx, dy = edge.tip.x() - edge.towards.x(), edge.tip.y() - edge.towards.y()
        length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
        ux, uy = dx / length, dy / length
        base = QPointF(edge.tip.x() - ux * ARROW * 1.6, edge.tip.y() - uy * ARROW * 1.6)
        left = QPointF(base.x() - uy * ARROW, base.y() + ux * ARROW)
        right = QPointF(base.x() + uy * ARROW, base.y() - ux * ARROW)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(colour))
        painter.drawPolygon(QPolygonF([edge.tip, left, right]))

    def _paint_node(self, painter: QPainter, placed: _Placed) -> None:
        node, rect = placed.node, placed.rect
        fill, border = KIND_COLOURS.get(node.kind, KIND_COLOURS["other"])
        hovered = node.id == self.hovered
        pen = QPen(QColor(HOVER_COLOUR if hovered else border), 2.2 if hovered else 1.2)
        painter.setPen(pen)
        painter.setBrush(QBrush(QColor(fill)))
        if node.kind in ("add", "mul"):
            painter.drawEllipse(rect)
            big = QFont(self.fonts["bold"])
            big.setPointSizeF(12)
            painter.setFont(big)
            painter.setPen(QColor(TEXT_COLOUR))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, node.label)
            self._paint_beside(painter, placed)
            return
        radius = rect.height() / 2 if node.kind in ("cat", "input", "output") else 6.0
        painter.drawRoundedRect(rect, radius, radius)
        painter.setPen(QColor(TEXT_COLOUR))
        painter.setFont(self.fonts["bold"])
        if node.kind == "cat":
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, node.label)
            self._paint_beside(painter, placed)
            return
        lines = _text_lines(node, self.drawing.split if self.drawing else False)
        heights = [self.measure.height(font) for _, font in lines]
        y = rect.center().y() - (sum(heights) + LINE_GAP * (len(lines) - 1)) / 2
        for (text, font), h in zip(lines, heights, strict=True):
            painter.setFont(self.fonts[font])
            painter.setPen(QColor(MUTED if font == "small" else TEXT_COLOUR))
            painter.drawText(QRectF(rect.x(), y, rect.width(), h), Qt.AlignmentFlag.AlignCenter, text)
            y += h + LINE_GAP

    def _paint_beside(self, painter: QPainter, placed: _Placed) -> None:
        text = _shape_line(placed.node)
        if not text:
            return
        painter.setFont(self.fonts["small"])
        painter.setPen(QColor(MUTED))
        rect = placed.rect
        room = rect.left() - placed.footprint.left()  # on the left: shortcuts arrive from the right
        painter.drawText(
            QRectF(placed.footprint.left(), rect.y(), room - 6, rect.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            text,
        )


class BlockDiagram(QWidget):
    """The caption above, the drawing below (scrolling when tall); a message instead when no graph."""

    layer_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._graph: BlockGraph | None = None
        self._caption = QLabel()
        self._caption.setWordWrap(True)
        self._caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._message = QLabel()
        self._message.setWordWrap(True)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setStyleSheet(f"color: {MUTED};")
        self._canvas = _Canvas()
        self._canvas.clicked.connect(self.layer_clicked)
        self._scroll = QScrollArea()
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setWidgetResizable(False)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self._scroll.setWidget(self._canvas)
        self._scroll.viewport().installEventFilter(self)
        self._caption.setContentsMargins(6, 4, 6, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self._caption)
        layout.addWidget(self._message, 1)
        layout.addWidget(self._scroll, 1)
        self.set_graph(None)

    def set_graph(self, graph: BlockGraph | None, message: str = "") -> None:
        self._graph = graph
        self._canvas.set_graph(graph)
        self._caption.setText(graph.caption if graph is not None else "")
        self._caption.setVisible(graph is not None)
        self._message.setText(message)
        self._message.setVisible(graph is None)
        self._scroll.setVisible(graph is not None)
        self._scroll.verticalScrollBar().setValue(0)
        self._fit()

    def graph(self) -> BlockGraph | None:
        return self._graph

    def node_rects(self) -> dict[str, QRectF]:
        """Every box's rectangle by node id, in this widget's coordinates."""
        drawing = self._canvas.drawing
        if drawing is None:
            return {}
        return {node_id: self._to_self(p.rect) for node_id, p in drawing.placed.items()}

    def node_rect(self, module: str) -> QRectF:
        """Where the box standing for explorer row ``module`` is, in this widget's coordinates."""
        drawing = self._canvas.drawing
        if drawing is not None:
            for placed in drawing.placed.values():
                if placed.node.module == module:
                    return self._to_self(placed.rect)
        raise KeyError(module)

    def _to_self(self, rect: QRectF) -> QRectF:
        on_canvas = self._canvas.to_widget(rect)
        top_left = self._canvas.mapTo(self, on_canvas.topLeft().toPoint())
        return QRectF(QPointF(top_left), on_canvas.size())

    def _fit(self) -> None:
        self._canvas.fit(max(1, self._scroll.viewport().width()))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit()
        return super().eventFilter(watched, event)

    def sizeHint(self) -> QSize:
        return QSize(520, 560)
