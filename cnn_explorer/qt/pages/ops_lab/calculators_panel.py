"""Design calculators: what the classic tricks of CNN architecture save, live for the user's own numbers.

``CalculatorsPanel(parent=None)`` is a QGroupBox with spin boxes for C_in, C_out, the kernel size k and
the output's H×W (for multiply-adds; "same" padding, stride 1), and one block per comparison from
:mod:`cnn_explorer.core.design`:

- "stacked": one k×k against stacked 3×3 layers (``stacked_vs_single``; needs an odd k ≥ 5);
- "asymmetric": k×k against k×1 then 1×k (``asymmetric_vs_square``);
- "depthwise": standard k×k against depthwise k×k + pointwise 1×1 (``depthwise_separable``);
- "bottleneck": k×k directly against a 1×1 bottleneck first (``bottleneck``; its width is a spin box,
  "auto" = C_in/4);

each showing both designs' parameters and multiply-adds, the parameters written out (core's formula
text), the ratios and what stays the same. Then "receptive": the receptive field of n stacked layers with
the kernel k, a stride and a dilation (``receptive_field``), layer by layer. Where core rejects the
numbers (k = 3 for the stacked comparison), the block says why.

API: ``set_channels(c_in, c_out, k)`` (follow the lab's settings; emits nothing); ``comparisons()`` →
``{key: DesignComparison | str}`` (the error text where core refused); ``receptive()`` →
``ReceptiveField | str``; ``shown_text(key) -> str`` (everything the block shows, for tests). No signals.
Spin boxes public: ``c_in_spin``, ``c_out_spin``, ``kernel_spin``, ``height_spin``, ``width_spin``,
``mid_spin``, ``layers_spin``, ``stride_spin``, ``dilation_spin``.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cnn_explorer.core.design import (
    DesignComparison,
    LayerCost,
    ReceptiveField,
    asymmetric_vs_square,
    bottleneck,
    depthwise_separable,
    receptive_field,
    stacked_vs_single,
)
from cnn_explorer.qt.pages.ops_lab.helpers import hint, spin
from cnn_explorer.qt.style import FAINT

MAX_CHANNELS = 4096
COMPARISONS = ("stacked", "asymmetric", "depthwise", "bottleneck")
_TITLES = {
    "stacked": "One k×k against stacked 3×3 layers (VGG, Inception v3)",
    "asymmetric": "k×k against k×1 then 1×k (Inception v3)",
    "depthwise": "Standard against depthwise + 1×1 pointwise (MobileNet)",
    "bottleneck": "A 1×1 bottleneck before the k×k (GoogLeNet, ResNet)",
    "receptive": "Receptive field of n stacked layers (local connectivity)",
}
_HEADERS = ("design", "parameters", "multiply-adds", "parameters written out")


def _ratio_text(c: DesignComparison) -> str:
    change = f"{c.params_saved:.0%} fewer" if c.params_saved >= 0 else f"{-c.params_saved:.0%} more"
    return (
        f"Ratio: ×{c.params_ratio:.3f} the parameters ({change}), ×{c.macs_ratio:.3f} the multiply-adds. "
        f"{c.note[:1].upper()}{c.note[1:]}."
    )


def _row(*pairs: tuple[str, QWidget]) -> QHBoxLayout:
    """Labelled controls side by side, packed to the left."""
    line = QHBoxLayout()
    for text, box in pairs:
        line.addWidget(QLabel(text))
        line.addWidget(box)
    line.addStretch(1)
    return line


class _Block:
    """The labels of one comparison in the panel's grid: a title, two designs, a ratio line."""

    def __init__(self, grid: QGridLayout, row: int, key: str) -> None:
        self.title = QLabel(f"<b>{_TITLES[key]}</b>")
        grid.addWidget(self.title, row, 0, 1, len(_HEADERS))
        self.cells: list[list[QLabel]] = []
        for r in (row + 1, row + 2):
            labels = [QLabel() for _ in _HEADERS]
            for col, label in enumerate(labels):
                if col in (1, 2):
                    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
                grid.addWidget(label, r, col)
            self.cells.append(labels)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet(f"color: {FAINT};")
        grid.addWidget(self.summary, row + 3, 0, 1, len(_HEADERS))

    def show(self, result: DesignComparison | str) -> None:
        if isinstance(result, str):
            for labels in self.cells:
                for label in labels:
                    label.clear()
            self.summary.setText(result)
            return
        for labels, cost in zip(self.cells, (result.baseline, result.alternative), strict=True):
            self._show_cost(labels, cost)
        self.summary.setText(_ratio_text(result))

    @staticmethod
    def _show_cost(labels: list[QLabel], cost: LayerCost) -> None:
        texts = (cost.name, f"{cost.params:,}", f"{cost.macs:,}", cost.formula)
        for label, text in zip(labels, texts, strict=True):
            label.setText(text)

    def text(self) -> str:
        parts = [self.title.text()] + [label.text() for labels in self.cells for label in labels]
        return "\n".join([*parts, self.summary.text()])


class CalculatorsPanel(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Design calculators", parent)
        self.c_in_spin = spin(1, MAX_CHANNELS, 64, "C_in: channels into the layer")
        self.c_out_spin = spin(1, MAX_CHANNELS, 64, "C_out: channels out of the layer (filters)")
        self.kernel_spin = spin(1, 11, 5, "k: the kernel size k×k")
        self.height_spin = spin(1, 1024, 32, "H: output rows, for multiply-adds")
        self.width_spin = spin(1, 1024, 32, "W: output columns, for multiply-adds")
        self.mid_spin = spin(0, MAX_CHANNELS, 0, "Channels the 1×1 bottleneck reduces to; auto = C_in/4")
        self.mid_spin.setSpecialValueText("auto (C_in/4)")
        self.layers_spin = spin(1, 50, 3, "n: how many layers are stacked")
        self.stride_spin = spin(1, 4, 1, "Stride of every stacked layer")
        self.dilation_spin = spin(1, 4, 1, "Dilation of every stacked layer")
        self._results: dict[str, DesignComparison | str] = {}
        self._receptive: ReceptiveField | str = ""

        sizes = _row(
            ("C_in", self.c_in_spin),
            ("C_out", self.c_out_spin),
            ("k", self.kernel_spin),
            ("output H", self.height_spin),
            ("W", self.width_spin),
        )
        explain = hint()
        explain.setText(
            "Weights only, as the papers count them; multiply-adds for one H×W output map with 'same' "
            "padding and stride 1."
        )

        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(2)
        for col, text in enumerate(_HEADERS):
            header = QLabel(f"<i>{text}</i>")
            grid.addWidget(header, 0, col)
        grid.setColumnStretch(3, 1)
        self._blocks: dict[str, _Block] = {}
        row = 1
        for key in COMPARISONS:
            self._blocks[key] = _Block(grid, row, key)
            row += 4
        extra = _row(("bottleneck channels", self.mid_spin))
        rf = _row(
            ("layers n", self.layers_spin), ("stride", self.stride_spin), ("dilation", self.dilation_spin)
        )
        self.rf_title = QLabel(f"<b>{_TITLES['receptive']}</b>")
        self.rf_label = QLabel()
        self.rf_label.setWordWrap(True)
        self.rf_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addLayout(sizes)
        layout.addWidget(explain)
        layout.addLayout(extra)
        layout.addLayout(grid)
        layout.addSpacing(6)
        layout.addWidget(self.rf_title)
        layout.addLayout(rf)
        layout.addWidget(self.rf_label)
        layout.addStretch(1)

        for box in (
            self.c_in_spin,
            self.c_out_spin,
            self.kernel_spin,
            self.height_spin,
            self.width_spin,
            self.mid_spin,
            self.layers_spin,
            self.stride_spin,
            self.dilation_spin,
        ):
            box.valueChanged.connect(self._refresh)
        self._refresh()

    # -- API --------------------------------------------------------------------------------------
    def set_channels(self, c_in: int, c_out: int, k: int) -> None:
        boxes = (self.c_in_spin, self.c_out_spin, self.kernel_spin)
        for box, value in zip(boxes, (c_in, c_out, k), strict=True):
            box.blockSignals(True)
            box.setValue(int(value))
            box.blockSignals(False)
        self._refresh()

    def comparisons(self) -> dict[str, DesignComparison | str]:
        return dict(self._results)

    def receptive(self) -> ReceptiveField | str:
        return self._receptive

    def shown_text(self, key: str) -> str:
        if key == "receptive":
            return f"{self.rf_title.text()}\n{self.rf_label.text()}"
        return self._blocks[key].text()

    # -- internals --------------------------------------------------------------------------------
    def _refresh(self) -> None:
        c_in, c_out, k = self.c_in_spin.value(), self.c_out_spin.value(), self.kernel_spin.value()
        hw = {"height": self.height_spin.value(), "width": self.width_spin.value()}
        mid = self.mid_spin.value() or None
        calculators: dict[str, Callable[[], DesignComparison]] = {
            "stacked": lambda: stacked_vs_single(c_in, c_out, k, **hw),
            "asymmetric": lambda: asymmetric_vs_square(c_in, c_out, k, **hw),
            "depthwise": lambda: depthwise_separable(c_in, c_out, k, **hw),
            "bottleneck": lambda: bottleneck(c_in, c_out, k, mid, **hw),
        }
        for key, calculate in calculators.items():
            try:
                result: DesignComparison | str = calculate()
            except ValueError as exc:
                result = f"Not for these numbers: {exc}."
                if key == "stacked":
                    result += " Stacked 3×3 layers stand in for an odd k of 5 or more."
            self._results[key] = result
            self._blocks[key].show(result)
        n, s, d = self.layers_spin.value(), self.stride_spin.value(), self.dilation_spin.value()
        try:
            rf = receptive_field(n, k, s, d)
        except ValueError as exc:
            self._receptive = f"Not for these numbers: {exc}."
            self.rf_label.setText(self._receptive)
            return
        self._receptive = rf
        layers = ", ".join(f"{i + 1}: {r}×{r}" for i, r in enumerate(rf.sizes))
        self.rf_label.setText(
            f"{n} stacked {k}×{k} layer{'s' if n > 1 else ''}, stride {s}"
            + (f", dilation {d}" if d > 1 else "")
            + f": {rf.formula}, so one output sees a {rf.size}×{rf.size} window of the input. "
            f"After each layer: {layers}. Neighbouring outputs are {rf.jumps[-1]} input pixel"
            f"{'s' if rf.jumps[-1] > 1 else ''} apart."
        )
