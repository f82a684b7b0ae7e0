"""Depth: how many input channels the convolution sees, how many filters it has, and what they hold.

``DepthPanel(parent=None)`` is a QGroupBox. The user picks the input channels (1–3: grayscale, or an
image's red, green and blue), the number of filters (1–8) and where the filters come from:

- "kernel": the edited kernel + presets (core ``default_filters``): filter 1 is the kernel on every channel;
- "presets": one preset per filter, chosen in a combo per filter (core ``filters_from_presets``; the
  combos after the first offer only presets of the first one's size, since one layer shares a kernel size);
- "mixing": 1×1 channel mixing on RGB (core ``channel_mixing_filters``), a mix per filter; it needs 3
  channels, so choosing it sets 3 (and it is disabled while the input allows fewer).

Every filter is drawn as its C_in kernels (small matrices with numbers), and the parameter count
k·k·C_in·F + F is written out (core ``conv_param_count``).

API
- Signal ``changed(FilterBank)``: after every change the user makes (not after the ``set_*`` calls).
- ``bank() -> FilterBank`` (feed it to ``LabSettings.with_filters``), ``in_channels()``, ``filters()``,
  ``mode()`` ("kernel" | "presets" | "mixing" | "given"), ``param_text()``.
- ``set_kernel(kernel)``: follow the kernel editor (read-only here; used in "kernel" mode).
- ``set_channel_limit(n)``: at most n input channels (1 for a typed matrix or a grayscale image, 3 for RGB).
- ``set_in_channels(n)``, ``set_filters(n)``: as if chosen, without emitting.
- ``set_bias(value)``: the bias of every filter (the lab's bias setting).
- ``set_bank(bank)``: show a given bank (a course example's), mode "given", until the user changes it.
Widgets public for tests: ``channels_spin``, ``filters_spin``, ``mode_combo``, ``choice_combos``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from cnn_explorer.core.kernels import CHANNEL_MIXES, KERNEL_PRESETS, kernel_preset
from cnn_explorer.core.lab import (
    MAX_FILTERS,
    MAX_IN_CHANNELS,
    FilterBank,
    channel_mixing_filters,
    default_filters,
    filters_from_presets,
)
from cnn_explorer.core.ops import conv_param_count, format_number
from cnn_explorer.qt.pages.ops_lab.helpers import combo, form, hint, spin
from cnn_explorer.qt.style import TITLE_STYLE
from cnn_explorer.qt.widgets.number_grid import NumberGrid

MODES = (
    ("the edited kernel + presets", "kernel"),
    ("a preset per filter", "presets"),
    ("1×1 channel mixing (RGB)", "mixing"),
)
GIVEN = ("as the example sets it", "given")
# The presets a new "preset per filter" bank starts from: each map shows something different.
_START_PRESETS = (
    "vertical edge",
    "horizontal edge",
    "Sobel x",
    "Sobel y",
    "Laplacian",
    "sharpen",
    "box blur",
    "emboss",
)
_MODE_HINTS = {
    "kernel": "Filter 1 is your kernel on every channel; the others are presets of its size.",
    "presets": "Each filter is a preset kernel, the same on every input channel.",
    "mixing": "1×1 filters: each output pixel is a weighted sum of that pixel's red, green and blue — "
    "colours are mixed, neighbours are not looked at.",
    "given": "The filters the course example uses. Change the count or the source to edit them.",
}


def channel_names(n: int) -> tuple[str, ...]:
    """Labels for the input channels: one grey channel, or red, green (and blue)."""
    return ("grey",) if n == 1 else ("R", "G", "B")[:n]


class DepthPanel(QGroupBox):
    changed = Signal(object)  # FilterBank

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Depth: input channels × filters", parent)
        self._kernel = kernel_preset("vertical edge")
        self._bias = 0.0
        self._limit = MAX_IN_CHANNELS
        self._given: FilterBank | None = None
        self._bank: FilterBank = default_filters(self._kernel)
        self._updating = False

        self.channels_spin = spin(
            1, MAX_IN_CHANNELS, 1, "Input channels C_in: 1 for grayscale, 3 for an image's red, green, blue"
        )
        self.filters_spin = spin(1, MAX_FILTERS, 1, "Filters F: each gives one output channel (one map)")
        self.mode_combo = combo()
        for text, key in MODES:
            self.mode_combo.addItem(text, key)
        self.mode_hint = hint()
        self.choice_combos: list[QComboBox] = [combo() for _ in range(MAX_FILTERS)]
        self._choices = form()
        for i, box in enumerate(self.choice_combos):
            self._choices.addRow(f"filter {i + 1}", box)
            box.currentIndexChanged.connect(self._on_choice)
        self.param_label = QLabel()
        self.param_label.setStyleSheet(TITLE_STYLE)
        self.param_label.setWordWrap(True)
        self.depth_hint = hint()

        self._rows: list[tuple[QWidget, QLabel, list[NumberGrid]]] = []
        self._filters_box = QWidget()
        self._filters_layout = QVBoxLayout(self._filters_box)
        self._filters_layout.setContentsMargins(0, 0, 0, 0)
        self._filters_layout.setSpacing(6)
        self._filters_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._filters_box)
        scroll.setMinimumHeight(120)

        top = form()
        top.addRow("input channels", self.channels_spin)
        top.addRow("filters", self.filters_spin)
        top.addRow("filter bank", self.mode_combo)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.mode_hint)
        layout.addLayout(self._choices)
        layout.addWidget(self.param_label)
        layout.addWidget(self.depth_hint)
        layout.addWidget(scroll, 1)

        self.channels_spin.valueChanged.connect(self._on_user_change)
        self.filters_spin.valueChanged.connect(self._on_user_change)
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self._fill_choices()
        self._rebuild()

    # -- API --------------------------------------------------------------------------------------
    def bank(self) -> FilterBank:
        return self._bank

    def in_channels(self) -> int:
        return self.channels_spin.value()

    def filters(self) -> int:
        return self.filters_spin.value()

    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    def param_text(self) -> str:
        return self.param_label.text()

    def set_kernel(self, kernel: np.ndarray) -> None:
        self._kernel = np.array(kernel, dtype=np.float64)
        if self.mode() == "kernel":
            self._rebuild()

    def set_bias(self, value: float) -> None:
        self._bias = float(value)
        self._rebuild()

    def set_channel_limit(self, n: int) -> None:
        self._limit = max(1, min(MAX_IN_CHANNELS, int(n)))
        with self._quiet():
            self.channels_spin.setMaximum(self._limit)
            self._enable_mixing()
            if self.mode() == "mixing" and self.in_channels() != 3:
                self._set_mode("kernel")
        self._rebuild()

    def set_in_channels(self, n: int) -> None:
        with self._quiet():
            self.channels_spin.setValue(int(n))
            self._leave_incompatible_modes()
        self._rebuild()

    def set_filters(self, n: int) -> None:
        with self._quiet():
            self.filters_spin.setValue(int(n))
            self._leave_incompatible_modes()
        self._rebuild()

    def set_bank(self, bank: FilterBank) -> None:
        self._given = bank
        with self._quiet():
            self.channels_spin.setMaximum(max(self._limit, bank.in_channels))
            self.filters_spin.setMaximum(max(MAX_FILTERS, bank.filters))  # a course layer may have 16
            self.channels_spin.setValue(bank.in_channels)
            self.filters_spin.setValue(bank.filters)
            if self.mode_combo.findData(GIVEN[1]) < 0:
                self.mode_combo.addItem(*GIVEN)
            self._set_mode(GIVEN[1])
        self._rebuild()

    def shown_kernels(self) -> list[list[list[list[str]]]]:
        """The numbers drawn, filter by filter, channel by channel (for tests)."""
        return [
            [grid.texts() for grid in grids[: self._bank.in_channels]]
            for _, _, grids in self._rows[: self._bank.filters]
        ]

    # -- internals --------------------------------------------------------------------------------
    def _quiet(self) -> _Quiet:
        return _Quiet(self)

    def _set_mode(self, key: str) -> None:
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(key))

    def _enable_mixing(self) -> None:
        item = self.mode_combo.model().item(self.mode_combo.findData("mixing"))
        item.setEnabled(self._limit >= 3)

    def _leave_incompatible_modes(self) -> None:
        """A given bank stops fitting once its size changes; channel mixing needs exactly 3 channels."""
        given = self._given
        size = (self.in_channels(), self.filters())
        if self.mode() == "given" and given is not None and size != (given.in_channels, given.filters):
            self._drop_given()
            self._set_mode("kernel")
        if self.mode() == "mixing" and self.in_channels() != 3:
            self._set_mode("kernel")
        self._fill_choices()

    def _drop_given(self) -> None:
        self._given = None
        index = self.mode_combo.findData(GIVEN[1])
        if index >= 0:
            self.mode_combo.removeItem(index)
        self.channels_spin.setMaximum(self._limit)
        self.filters_spin.setMaximum(MAX_FILTERS)

    def _on_user_change(self) -> None:
        if self._updating:
            return
        with self._quiet():
            self._leave_incompatible_modes()
        self._rebuild()
        self.changed.emit(self._bank)

    def _on_mode(self) -> None:
        if self._updating:
            return
        with self._quiet():
            if self.mode() != "given":
                self._drop_given()
            if self.mode() == "mixing":
                self.channels_spin.setValue(3)
            self._fill_choices()
        self._rebuild()
        self.changed.emit(self._bank)

    def _on_choice(self) -> None:
        if self._updating:
            return
        if self.mode() == "presets":
            with self._quiet():
                self._fill_choices()  # the first filter's size decides what the others may be
        self._rebuild()
        self.changed.emit(self._bank)

    def _fill_choices(self) -> None:
        """The per-filter combos for the current mode: presets or channel mixes, one row per filter."""
        mode, n = self.mode(), self.filters()
        if mode == "presets":
            first = self.choice_combos[0].currentData() if self.choice_combos[0].count() else None
            first = first if first in KERNEL_PRESETS else _START_PRESETS[0]
            shape = KERNEL_PRESETS[first].array.shape
            same_size = [name for name, p in KERNEL_PRESETS.items() if p.array.shape == shape]
            for i, box in enumerate(self.choice_combos):
                keep = box.currentData() if box.count() else None
                names = list(KERNEL_PRESETS) if i == 0 else same_size
                start = first if i == 0 else _START_PRESETS[i % len(_START_PRESETS)]
                self._offer(box, names, keep, start, {k: p.description for k, p in KERNEL_PRESETS.items()})
        elif mode == "mixing":
            mixes = list(CHANNEL_MIXES)
            tips = {k: m.description for k, m in CHANNEL_MIXES.items()}
            for i, box in enumerate(self.choice_combos):
                keep = box.currentData() if box.count() else None
                self._offer(box, mixes, keep, mixes[i % len(mixes)], tips)
        for i in range(MAX_FILTERS):
            self._choices.setRowVisible(i, mode in ("presets", "mixing") and i < n)

    @staticmethod
    def _offer(box: QComboBox, names: list[str], keep: object, start: str, tips: dict[str, str]) -> None:
        if [box.itemData(i) for i in range(box.count())] != names:
            box.clear()
            for name in names:
                box.addItem(name, name)
                box.setItemData(box.count() - 1, tips.get(name, ""), Qt.ItemDataRole.ToolTipRole)
        chosen = keep if keep in names else (start if start in names else names[0])
        box.setCurrentIndex(names.index(chosen))

    def _make_bank(self) -> FilterBank:
        mode, c, n = self.mode(), self.in_channels(), self.filters()
        if mode == "given" and self._given is not None:
            return self._given
        if mode == "presets":
            bank = filters_from_presets([self.choice_combos[i].currentData() for i in range(n)], c)
        elif mode == "mixing":
            bank = channel_mixing_filters([self.choice_combos[i].currentData() for i in range(n)])
        else:
            bank = default_filters(self._kernel, c, n)
        return FilterBank(bank.weights, np.full(bank.filters, self._bias), bank.names)

    def _rebuild(self) -> None:
        self._bank = self._make_bank()
        bank = self._bank
        self.mode_hint.setText(_MODE_HINTS[self.mode()])
        (kh, kw), c, f = bank.kernel_size, bank.in_channels, bank.filters
        count = conv_param_count((kh, kw), c, f)
        self.param_label.setText(f"Parameters: k·k·C_in·F + F = {kh}·{kw}·{c}·{f} + {f} = {count:,}")
        self.depth_hint.setText(
            f"Each filter is {c} kernel{'s' if c > 1 else ''} of {kh}×{kw}, one per input channel: a filter "
            f"is as deep as its input. The {f} filter{'s give' if f > 1 else ' gives'} {f} output "
            f"channel{'s' if f > 1 else ''}, one map each."
        )
        self._show_filters(bank)

    def _show_filters(self, bank: FilterBank) -> None:
        names = channel_names(bank.in_channels)
        while len(self._rows) < bank.filters:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            label = QLabel()
            label.setMinimumWidth(120)
            label.setWordWrap(True)
            grids = [NumberGrid() for _ in range(MAX_IN_CHANNELS)]
            line.addWidget(label)
            for grid in grids:
                line.addWidget(grid)
            line.addStretch(1)
            self._filters_layout.insertWidget(len(self._rows), row)
            self._rows.append((row, label, grids))
        for i, (row, label, grids) in enumerate(self._rows):
            row.setVisible(i < bank.filters)
            if i >= bank.filters:
                continue
            label.setText(f"<b>filter {i + 1}</b>: {bank.names[i]}<br>bias {format_number(bank.biases[i])}")
            for ch, grid in enumerate(grids):
                grid.setVisible(ch < bank.in_channels)
                if ch < bank.in_channels:
                    grid.set_matrix(bank.weights[i, ch], title=names[ch] if ch < len(names) else f"ch {ch}")


class _Quiet:
    """Within it, the panel's own widget signals do not count as user changes."""

    def __init__(self, panel: DepthPanel) -> None:
        self.panel = panel
        self.before = False

    def __enter__(self) -> None:
        self.before = self.panel._updating
        self.panel._updating = True

    def __exit__(self, *_: object) -> None:
        self.panel._updating = self.before
