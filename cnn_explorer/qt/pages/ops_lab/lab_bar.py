"""The Operations lab's top line: the course examples (one click sets up a worked example of the notes;
the chosen one's caption is ``example_caption``, which the page puts over the maps), how the maps are
drawn (step window, numbers in small maps, colours), and the backward view's switch with its upstream
gradient (all ones, random numbers, or one output cell the user clicks)."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from cnn_explorer.core.lab import COURSE_EXAMPLES
from cnn_explorer.qt.pages.ops_lab.helpers import COLOUR_CHOICES, combo

CHOOSE = "Course examples…"
UPSTREAM_CHOICES = (("all ones", "ones"), ("random", "random"), ("one cell you click", "cell"))


class LabBar(QWidget):
    example_chosen = Signal(str)  # a key of core's COURSE_EXAMPLES
    backward_toggled = Signal(bool)
    upstream_changed = Signal()  # the kind of upstream gradient, or the random numbers, changed
    window_toggled = Signal(bool)  # "Window on maps"
    numbers_toggled = Signal(bool)  # "Numbers"
    colours_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.example_combo = combo()
        self.example_combo.addItem(CHOOSE, "")
        for example in COURSE_EXAMPLES:
            self.example_combo.addItem(example.title, example.key)
        self.example_combo.setMinimumContentsLength(24)
        self.example_combo.setToolTip("Set up one of the notes' worked examples: input, stages and filters")
        self.example_caption = QLabel()
        self.example_caption.setWordWrap(True)
        self.example_caption.setStyleSheet("color: #333; background: #fff7e0; padding: 3px 6px;")
        self.example_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.example_caption.setVisible(False)
        self.highlight_check = QCheckBox("Window on maps")
        self.highlight_check.setChecked(True)
        self.highlight_check.setToolTip("Draw the step's window and cells on the maps")
        self.numbers_check = QCheckBox("Numbers")
        self.numbers_check.setChecked(True)
        self.numbers_check.setToolTip("Write each value in its cell when the map is small enough")
        self.colour_combo = combo()
        self.colour_combo.addItems(COLOUR_CHOICES)
        self.colour_combo.setMinimumContentsLength(8)
        self.colour_combo.setToolTip(
            "Colour map for the maps (auto: blue–white–red when values can be negative)"
        )
        self.backward_check = QCheckBox("Show the gradient (backward)")
        self.backward_check.setToolTip(
            "Under every map, the gradient of a loss L with respect to it, flowing back from the output"
        )
        self.upstream_label = QLabel("∂L/∂output:")
        self.upstream_combo = combo()
        for text, key in UPSTREAM_CHOICES:
            self.upstream_combo.addItem(text, key)
        self.upstream_combo.setMinimumContentsLength(12)
        self.upstream_combo.setToolTip(
            "The gradient the backward pass starts from: L = Σ outputs (all ones), random numbers, or "
            "L = one output cell (click it on the last map)"
        )
        self.reseed_button = QPushButton("↻")
        self.reseed_button.setToolTip("Draw other random numbers")
        self._seed = 0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.example_combo)
        layout.addStretch(1)
        for w in (self.highlight_check, self.numbers_check, QLabel("Colours"), self.colour_combo):
            layout.addWidget(w)
        layout.addSpacing(14)
        for w in (self.backward_check, self.upstream_label, self.upstream_combo, self.reseed_button):
            layout.addWidget(w)
        self.example_combo.currentIndexChanged.connect(self._on_example)
        self.backward_check.toggled.connect(self._on_backward)
        self.upstream_combo.currentIndexChanged.connect(self._on_upstream)
        self.reseed_button.clicked.connect(self._on_reseed)
        self.highlight_check.toggled.connect(self.window_toggled)
        self.numbers_check.toggled.connect(self.numbers_toggled)
        self.colour_combo.currentIndexChanged.connect(lambda _i: self.colours_changed.emit())
        self._on_backward(False)

    # -- what the page reads and sets -------------------------------------------------------------
    def example_key(self) -> str:
        return str(self.example_combo.currentData())

    def set_example(self, key: str, caption: str = "") -> None:
        """Show ``key`` as chosen ("" for none) without emitting; ``caption`` under it."""
        self.example_combo.blockSignals(True)
        self.example_combo.setCurrentIndex(max(0, self.example_combo.findData(key)))
        self.example_combo.blockSignals(False)
        self.example_caption.setText(caption)
        self.example_caption.setVisible(bool(caption))

    def window_shown(self) -> bool:
        return self.highlight_check.isChecked()

    def colour_choice(self) -> str:
        return self.colour_combo.currentText()

    def backward(self) -> bool:
        return self.backward_check.isChecked()

    def upstream_kind(self) -> str:
        return str(self.upstream_combo.currentData())

    def set_upstream_kind(self, kind: str) -> None:
        self.upstream_combo.setCurrentIndex(self.upstream_combo.findData(kind))

    def seed(self) -> int:
        return self._seed

    # -- reacting ---------------------------------------------------------------------------------
    @Slot(int)
    def _on_example(self, _index: int) -> None:
        key = self.example_key()
        if key:
            self.example_chosen.emit(key)
        else:
            self.set_example("")

    @Slot(bool)
    def _on_backward(self, on: bool) -> None:
        for w in (self.upstream_label, self.upstream_combo):
            w.setEnabled(on)
        self.reseed_button.setVisible(on and self.upstream_kind() == "random")
        self.backward_toggled.emit(on)

    @Slot(int)
    def _on_upstream(self, _index: int) -> None:
        self.reseed_button.setVisible(self.backward() and self.upstream_kind() == "random")
        self.upstream_changed.emit()

    @Slot()
    def _on_reseed(self) -> None:
        self._seed += 1
        self.upstream_changed.emit()
