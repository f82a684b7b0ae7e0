"""The Compress page's right side: the variants' table over two tabs, the charts and the fine-tune curves.

:class:`CompressResults` keeps one selected variant in step across the table, the quality-vs-size scatter
(a click there selects too), the per-layer sparsity bars and the weight histograms. "Open in explorer"
emits ``open_requested(path)`` with the selected variant's saved model file. ``plots`` (the fine-tune
page's live curves) fill the second tab while a fine-tune after pruning runs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QTabWidget, QVBoxLayout, QWidget

from cnn_explorer.core.compress.spec import CompressReport
from cnn_explorer.qt.widgets.compress_plots import (
    QualityVsSize,
    SweepChart,
)
from cnn_explorer.qt.widgets.compress_table import CompressTable
from cnn_explorer.qt.widgets.compress_weights import SparsityBars, WeightHistogramView
from cnn_explorer.qt.widgets.training_plots import TrainingPlots


class CompressResults(QWidget):
    open_requested = Signal(str)  # the variant's model file

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: CompressReport | None = None
        self.out_dir: Path | None = None

        self.table = CompressTable()
        self.quality_chart = QualityVsSize()
        self.sweep_chart = SweepChart()
        self.sparsity_bars = SparsityBars()
        self.histograms = WeightHistogramView()
        charts = QWidget()
        grid = QGridLayout(charts)
        grid.setContentsMargins(4, 6, 4, 4)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(10)
        grid.addWidget(self.quality_chart, 0, 0)
        grid.addWidget(self.sweep_chart, 0, 1)
        grid.addWidget(self.sparsity_bars, 1, 0)
        grid.addWidget(self.histograms, 1, 1)
        for i in range(2):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self.charts = charts
        self.plots = TrainingPlots()
        self.plots.empty_text.setText("A fine-tune after pruning shows its curves here.")
        self.tabs = QTabWidget()
        self.tabs.addTab(charts, "Charts")
        self.tabs.addTab(self.plots, "Fine-tune after pruning")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.tabs, 1)

        self.table.variant_selected.connect(self._show_variant)
        self.quality_chart.variant_selected.connect(self.table.select)
        self.table.open_clicked.connect(self._open)

    def set_report(self, report: CompressReport | None, out_dir: Path | None = None) -> None:
        """Show a finished run (None: the empty hints); its files are relative to ``out_dir``."""
        self.report, self.out_dir = report, out_dir
        self.quality_chart.set_report(report)
        self.sweep_chart.set_report(report)
        self.histograms.set_histograms(report.histograms if report is not None else [])
        self.sparsity_bars.set_variant(None)
        self.table.set_report(report)  # selects the original, which fills the bars and the histograms
        if report is not None:
            self.select(self._first_compressed() or self.table.selected())
            self.tabs.setCurrentWidget(self.charts)

    def select(self, name: str | None) -> None:
        self.table.select(name)

    def selected(self) -> str | None:
        return self.table.selected()

    def variant_file(self, name: str) -> Path | None:
        if self.report is None or self.out_dir is None:
            return None
        return self.out_dir / self.report.variant(name).file

    def show_training(self) -> None:
        self.tabs.setCurrentWidget(self.plots)

    # -- internals --------------------------------------------------------------------------------
    def _first_compressed(self) -> str | None:
        """The variant the charts open on: the one whose histogram tells most (pruned zeros and int8
        levels), else the first compressed one."""
        report = self.report
        if report is None:
            return None
        names = [v.name for v in report.variants if v.name != "fp32"]
        if not names:
            return None

        def telling(name: str) -> tuple[bool, bool, int]:
            h = next((h for h in report.histograms if h.variant == name), None)
            if h is None:
                return (False, False, 0)
            return (True, bool(h.levels), h.zeros_after - h.zeros_before)

        return max(names, key=telling)  # max keeps the first of equals

    def _show_variant(self, name: str) -> None:
        if self.report is None:
            return
        self.quality_chart.select(name)
        self.sparsity_bars.set_variant(self.report.variant(name))
        self.histograms.show_variant(name)

    def _open(self, name: str) -> None:
        path = self.variant_file(name)
        if path is not None:
            self.open_requested.emit(str(path))
