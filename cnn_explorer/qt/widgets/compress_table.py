"""The compression lab's table: one row per variant of a :class:`CompressReport`, measured the same way.

Columns: the variant's name; its file size on disk and how many times smaller than the original (fp32)
it is; its non-zero parameters and their share of the original's; its median CPU latency at batch 1 and
that latency over the original's (measured interleaved, in the same run); and its quality. The quality
column says what was measured: "accuracy" with labels, "agreement (top-1 / top-5)" with the original's
predictions otherwise — agreement is never called accuracy. A variant's notes are its row's tooltip.

Selecting a row emits ``variant_selected(name)``; the "Open in explorer" button under the table emits
``open_clicked(name)`` for the selected row. ``set_report(None)`` shows a one-line hint.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.compress.spec import CompressReport, VariantReport
from cnn_explorer.qt.style import FAINT
from cnn_explorer.qt.widgets.plots import caption_label

EMPTY_HINT = "Run a compression (or open an earlier report) to compare its variants here."
REFERENCE = "fp32"
VISIBLE_ROWS = 7  # rows shown before the table scrolls
REFERENCE_BACKGROUND = "#f3f5f8"


# -- numbers as the table writes them (the charts use the same words) ---------------------------------
def size_text(n_bytes: int) -> str:
    """A file size: "812 B", "61.3 KB", "4.21 MB" (1 KB = 1000 bytes, as file managers count)."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    if n_bytes < 1_000_000:
        return f"{n_bytes / 1000:.1f} KB"
    mb = n_bytes / 1e6
    return f"{mb:.2f} MB" if mb < 100 else f"{mb:.0f} MB"


def size_ratio_text(reference_bytes: int, n_bytes: int) -> str:
    """How much smaller a file is than the original's: "4.0× smaller", "same size", "1.2× larger"."""
    if n_bytes <= 0 or reference_bytes <= 0:
        return "—"
    ratio = reference_bytes / n_bytes
    if abs(ratio - 1) < 0.01:
        return "same size"
    return f"{ratio:.1f}× smaller" if ratio > 1 else f"{1 / ratio:.1f}× larger"


def latency_ratio_text(ratio: float) -> str:
    """A variant's latency over the original's: "0.55×" (of the original's time), with a word."""
    if ratio != ratio or ratio <= 0:  # NaN or nothing measured
        return "—"
    word = "faster" if ratio < 0.97 else "slower" if ratio > 1.03 else "same"
    return f"{ratio:.2f}× ({word})"


def pct(share: float | None) -> str:
    """A share in 0..1 as a percentage, "—" when it was not measured."""
    return "—" if share is None else f"{100 * share:.1f} %"


def quality_header(metric: str) -> str:
    return "accuracy" if metric == "accuracy" else "agreement (top-1 / top-5)"


def quality_text(variant: VariantReport, metric: str) -> str:
    if metric == "accuracy":
        return pct(variant.accuracy)
    return f"{pct(variant.agreement_top1)} / {pct(variant.agreement_top5)}"


def reference_variant(report: CompressReport) -> VariantReport | None:
    """The original model's row: the variant named fp32, else the first one."""
    return next(
        (v for v in report.variants if v.name == REFERENCE), report.variants[0] if report.variants else None
    )


class CompressTable(QWidget):
    variant_selected = Signal(str)
    open_clicked = Signal(str)

    COLUMNS = ("Variant", "Size on disk", "vs fp32", "Non-zero params", "Latency (median)", "time vs fp32")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: CompressReport | None = None
        self._names: list[str] = []

        self.table = QTableWidget(0, len(self.COLUMNS) + 1)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(60)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.table.itemSelectionChanged.connect(self._on_selection)

        self.hint_label = QLabel(EMPTY_HINT)
        self.hint_label.setWordWrap(True)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setStyleSheet(f"color: {FAINT}; padding: 16px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.hint_label)
        self.stack.addWidget(self.table)

        self.caption_label = caption_label()
        self.open_button = QPushButton("Open in explorer")
        self.open_button.setToolTip("Open the selected variant's saved model in the Network explorer")
        self.open_button.clicked.connect(self._on_open)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addWidget(self.caption_label, 1)
        bottom.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignTop)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        layout.addLayout(bottom)
        self.set_report(None)

    # -- content ----------------------------------------------------------------------------------
    def set_report(self, report: CompressReport | None) -> None:
        """Show a run's variants (None: the empty hint). The original's row is selected."""
        self.report = report
        variants = report.variants if report is not None else []
        self.table.blockSignals(True)
        self.table.clearSelection()
        self.table.setRowCount(0)
        self._names = [v.name for v in variants]
        if not variants:
            self.table.blockSignals(False)
            self.stack.setCurrentWidget(self.hint_label)
            self.caption_label.setText("")
            self.open_button.setEnabled(False)
            self._fit_height()
            return
        self.table.setHorizontalHeaderLabels([*self.COLUMNS, quality_header(report.metric)])
        reference = reference_variant(report)
        self.table.setRowCount(len(variants))
        for row, variant in enumerate(variants):
            texts = self._row_texts(variant, reference, report.metric)
            tip = "\n".join(variant.notes)
            for col, text in enumerate(texts):
                item = QTableWidgetItem(text)
                if col > 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if tip:
                    item.setToolTip(tip)
                if variant is reference:
                    item.setBackground(QColor(REFERENCE_BACKGROUND))
                    if col == 0:
                        font = QFont(item.font())
                        font.setBold(True)
                        item.setFont(font)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.stack.setCurrentWidget(self.table)
        self.caption_label.setText(self._caption(report))
        self._fit_height()
        self.select(reference.name if reference is not None else None)

    def select(self, name: str | None) -> None:
        """Select a variant's row (emits ``variant_selected`` if the selection changes)."""
        if name not in self._names:
            self.table.clearSelection()
            return
        self.table.selectRow(self._names.index(name))

    # -- reading ----------------------------------------------------------------------------------
    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._names[rows[0].row()] if rows else None

    def rows(self) -> list[list[str]]:
        """Every cell's text, row by row, with the header first (what a user reads)."""
        if not self._names:
            return []
        cols = range(self.table.columnCount())
        header = [self.table.horizontalHeaderItem(c).text() for c in cols]
        return [header] + [[self.table.item(r, c).text() for c in cols] for r in range(self.table.rowCount())]

    def tooltip(self, name: str) -> str:
        """The notes a row's tooltip shows."""
        return self.table.item(self._names.index(name), 0).toolTip()

    # -- internals --------------------------------------------------------------------------------
    @staticmethod
    def _row_texts(v: VariantReport, ref: VariantReport | None, metric: str) -> list[str]:
        is_ref = v is ref
        nonzero = f"{v.nonzero_params:,}"
        if ref is not None and ref.nonzero_params > 0:
            nonzero += f" ({100 * v.nonzero_params / ref.nonzero_params:.0f} %)"
        return [
            v.name,
            size_text(v.size_bytes),
            "original" if is_ref else size_ratio_text(ref.size_bytes if ref else 0, v.size_bytes),
            nonzero,
            f"{v.latency_ms_median:.2f} ms",
            "original" if is_ref else latency_ratio_text(v.latency_ratio),
            quality_text(v, metric),
        ]

    @staticmethod
    def _caption(report: CompressReport) -> str:
        measured = "accuracy" if report.metric == "accuracy" else "agreement with the original's predictions"
        parts = [
            f"{report.base}: {measured} on {report.images} images; latency at batch 1, median, "
            f"{report.threads} CPU thread{'s' if report.threads != 1 else ''}"
        ]
        if report.quantization_flow:
            parts.append(f"quantization: {report.quantization_flow}")
        if any(v.notes for v in report.variants):
            parts.append("hover a row for its notes")
        return " · ".join(parts)

    def _fit_height(self) -> None:
        rows = min(max(1, self.table.rowCount()), VISIBLE_ROWS)
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(rows)) if self.table.rowCount() else 30 * rows
        self.table.setFixedHeight(height)  # beyond VISIBLE_ROWS the table scrolls
        self.stack.setFixedHeight(height if self.table.rowCount() else self.hint_label.sizeHint().height())

    def _on_selection(self) -> None:
        name = self.selected()
        self.open_button.setEnabled(name is not None)
        self.open_button.setText(f"Open “{name}” in explorer" if name else "Open in explorer")
        if name is not None:
            self.variant_selected.emit(name)

    def _on_open(self) -> None:
        name = self.selected()
        if name is not None:
            self.open_clicked.emit(name)
