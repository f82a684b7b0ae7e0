"""Earlier fine-tuning runs: a table of their settings and results, and their curves overlaid to compare.

``RunHistoryView.set_runs(records)`` shows :class:`~cnn_explorer.core.runs.RunRecord` s (read by the
page in a worker with ``core.runs.list_runs``): one row per run with a "compare" check box, its name,
model and strategy, epochs, best validation accuracy and status (as ``core.runs`` reads it: a run whose
process was killed shows "interrupted", not "running"); the tooltip has every setting and the run's last
message. Checked runs are drawn together in ``compare_plot`` (the metric is chosen in
``metric_combo``), each in the colour of its check box. The newest runs start checked.

Signals: ``show_requested(path)`` (Show button or double click), ``resume_requested(path, epochs)``
(Resume button, with the total number of epochs from ``epochs_spin``), ``selection_changed(path)``.
``set_locked(True)`` turns Show and Resume off while a run trains.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.runs import LAST_CHECKPOINT, RunRecord

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
COMPARE_BY_DEFAULT = 3
METRICS = (
    ("Validation accuracy (%)", "val_acc"),
    ("Validation loss", "val_loss"),
    ("Training loss", "train_loss"),
    ("Training accuracy (%)", "train_acc"),
)
COLUMNS = ("Compare", "Run", "Model · strategy", "Epochs", "Best val acc", "Status")
# "interrupted": core.runs reads a run whose process was killed so; like "stopped", it can be resumed
STATUS_COLOURS = {
    "finished": "#1b7f3a",
    "stopped": "#7a4b00",
    "interrupted": "#7a4b00",
    "diverged": "#a31515",
    "failed": "#a31515",
}


class RunHistoryView(QWidget):
    show_requested = Signal(str)
    resume_requested = Signal(str, int)
    selection_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records: list[RunRecord] = []
        self._locked = False  # a run is training: nothing can be shown or resumed meanwhile

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.cellDoubleClicked.connect(lambda row, _c: self._emit_show(row))

        self.empty_label = QLabel("No runs in this folder yet.")
        self.empty_label.setStyleSheet("color: #777;")
        self.show_button = QPushButton("Show")
        self.show_button.setToolTip("Show this run's curves and confusion matrix above")
        self.show_button.clicked.connect(lambda: self._emit_show(self.table.currentRow()))
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10_000)
        self.epochs_spin.setPrefix("to ")
        self.epochs_spin.setSuffix(" epochs")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue this run from its last checkpoint (last.pt)")
        self.resume_button.clicked.connect(self._emit_resume)
        buttons = QHBoxLayout()
        buttons.addWidget(self.show_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.epochs_spin)
        buttons.addStretch(1)
        buttons.addWidget(self.empty_label)

        self.metric_combo = QComboBox()
        for text, key in METRICS:
            self.metric_combo.addItem(text, key)
        self.metric_combo.currentIndexChanged.connect(self.redraw)
        self.compare_plot = pg.PlotWidget()
        self.compare_plot.setMinimumHeight(120)
        self.compare_plot.setMenuEnabled(False)
        self.compare_plot.showGrid(x=True, y=True, alpha=0.25)
        self.compare_plot.setLabel("bottom", "epoch")
        self.legend = self.compare_plot.addLegend(offset=(-10, 10))
        self.curves: dict[str, pg.PlotDataItem] = {}
        metric_row = QHBoxLayout()
        metric_row.addWidget(QLabel("Compare the checked runs by"))
        metric_row.addWidget(self.metric_combo)
        metric_row.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 3)
        layout.addLayout(buttons)
        layout.addLayout(metric_row)
        layout.addWidget(self.compare_plot, 4)
        self._update_buttons()

    # -- content ------------------------------------------------------------------------------------
    def set_runs(self, records: list[RunRecord], select: str | None = None) -> None:
        """Show ``records`` (newest first); keep the checked runs and the selection when still there."""
        checked = {_key(r.path) for r in self.compared()}
        first_time = not self.records
        current = select or self.selected_path()
        self.records = list(records)
        self.table.blockSignals(True)
        self.table.setRowCount(len(records))
        for row, rec in enumerate(records):
            key = _key(rec.path)
            compare = QTableWidgetItem()
            compare.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            on = key in checked or (first_time and row < COMPARE_BY_DEFAULT) or key == select
            compare.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            compare.setBackground(QBrush(QColor(PALETTE[row % len(PALETTE)])))
            self.table.setItem(row, 0, compare)
            s = rec.summary
            best = f"{s.best_val_acc:.1%} (epoch {s.best_epoch})" if math.isfinite(s.best_val_acc) else "—"
            epochs = f"{s.epochs_done}/{rec.config.get('epochs', '?')}"
            model = f"{rec.config.get('model', '?')} · {rec.config.get('strategy', '?')}"
            for col, text in enumerate((rec.name, model, epochs, best, s.status), start=1):
                item = QTableWidgetItem(text)
                item.setToolTip(
                    f"{rec.path}\n{rec.settings_text()}\n{rec.result_text()}\n{s.message}".strip()
                )
                if col == 5 and s.status in STATUS_COLOURS:
                    item.setForeground(QBrush(QColor(STATUS_COLOURS[s.status])))
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.empty_label.setVisible(not records)
        keys = [_key(r.path) for r in records]
        if current is not None and _key(current) in keys:
            self.table.selectRow(keys.index(_key(current)))
        elif records:
            self.table.selectRow(0)
        self.redraw()
        self._on_selection()  # the row may hold another run than before without a selection change

    def set_locked(self, locked: bool) -> None:
        """While a run trains, Show and Resume are off (the page's curves belong to that run)."""
        self._locked = locked
        self._update_buttons()

    def selected_record(self) -> RunRecord | None:
        row = self.table.currentRow()
        return self.records[row] if 0 <= row < len(self.records) else None

    def selected_path(self) -> str | None:
        rec = self.selected_record()
        return str(rec.path) if rec is not None else None

    def compared(self) -> list[RunRecord]:
        out = []
        for row, rec in enumerate(self.records):
            item = self.table.item(row, 0)
            if item is not None and item.checkState() == Qt.CheckState.Checked:
                out.append(rec)
        return out

    def set_compared(self, path: str, on: bool) -> bool:
        """Tick (or untick) a run's curves in the comparison; False when the run is not listed (a run
        that ended before it wrote its settings has no record)."""
        keys = [_key(r.path) for r in self.records]
        if _key(path) not in keys:
            return False
        row = keys.index(_key(path))
        self.table.item(row, 0).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        return True

    # -- drawing --------------------------------------------------------------------------------------
    def redraw(self) -> None:
        for curve in self.curves.values():
            self.compare_plot.removeItem(curve)
        self.curves = {}
        self.legend.clear()
        key = str(self.metric_combo.currentData())
        percent = key.endswith("acc")
        self.compare_plot.setLabel("left", "%" if percent else "loss")
        compared = {_key(r.path) for r in self.compared()}
        for row, rec in enumerate(self.records):
            if _key(rec.path) not in compared or not rec.epochs:
                continue
            x = np.array([m.epoch for m in rec.epochs], dtype=np.float64)
            y = np.array([getattr(m, key) for m in rec.epochs], dtype=np.float64) * (100 if percent else 1)
            colour = PALETTE[row % len(PALETTE)]
            curve = self.compare_plot.plot(
                x, y, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5, symbolBrush=colour,
                symbolPen=None, name=f"{rec.name} ({rec.config.get('strategy', '')})",
            )  # fmt: skip
            self.curves[_key(rec.path)] = curve

    # -- reacting ---------------------------------------------------------------------------------------
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0:
            self.redraw()

    def _on_selection(self) -> None:
        rec = self.selected_record()
        if rec is not None:
            total = int(rec.config.get("epochs", 1) or 1)
            if rec.summary.status == "finished" or rec.summary.epochs_done >= total:
                total = rec.summary.epochs_done + max(1, total // 2)  # a finished run continues further
            self.epochs_spin.setValue(total)
        self._update_buttons()
        self.selection_changed.emit(str(rec.path) if rec is not None else "")

    def _update_buttons(self) -> None:
        rec = self.selected_record()
        self.show_button.setEnabled(rec is not None and not self._locked)
        can_resume = rec is not None and not self._locked and (rec.path / LAST_CHECKPOINT).is_file()
        self.resume_button.setEnabled(can_resume)
        self.epochs_spin.setEnabled(can_resume)
        if rec is not None:
            self.resume_button.setText("Continue" if rec.summary.status == "finished" else "Resume")

    def _emit_show(self, row: int) -> None:
        if 0 <= row < len(self.records) and not self._locked:
            self.show_requested.emit(str(self.records[row].path))

    def _emit_resume(self) -> None:
        rec = self.selected_record()
        if rec is not None and not self._locked:
            self.resume_requested.emit(str(rec.path), self.epochs_spin.value())


def _key(path: str | Path) -> str:
    """One spelling per folder, so paths from settings, signals and records compare equal."""
    return Path(path).as_posix()
