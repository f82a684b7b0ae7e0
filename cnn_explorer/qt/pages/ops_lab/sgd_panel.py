"""SGD with momentum, one step at a time, on the kernel being edited (the notes' AlexNet update).

``SgdPanel(parent=None)`` is a QGroupBox showing

    v ← 0.9·v − 0.0005·w − α·∂L/∂w
    w ← w + v

with the learning rate α editable, and the kernel w, the gradient ∂L/∂w, the velocity v and the next w
(what a step would give now) as small matrices. "Step" applies one update with core ``sgd_momentum_step``
(a few dozen numbers: cheap enough for the GUI thread), writes one cell's arithmetic out, and emits
``kernel_stepped`` with the new kernel so the page can put it into the editor. v is kept between steps,
so repeated steps build up momentum; "Reset v" sets it back to 0. A w of another shape starts v from 0.

API
- Signal ``kernel_stepped(np.ndarray)``: the new kernel (w + v), after each "Step".
- ``set_state(w, grad)``: the kernel being edited and dL/dw for it, same 2-D shape (for a kernel used on
  every input channel, the sum of its per-channel gradients); ``grad=None`` when there is no gradient yet
  (the backward view is off): "Step" is then disabled. Emits nothing.
- ``step()`` (as the button), ``reset_velocity()`` (as "Reset v"), ``weights()``, ``gradient()``,
  ``velocity()``, ``steps()`` (taken since the last reset), ``learning_rate()``.
Widgets public for tests: ``lr_spin``, ``step_button``, ``reset_button``, ``w_grid``, ``grad_grid``,
``v_grid``, ``new_grid``, ``arithmetic_label``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.lab import sgd_momentum_step
from cnn_explorer.core.ops import format_number
from cnn_explorer.qt.pages.ops_lab.helpers import hint
from cnn_explorer.qt.style import TITLE_STYLE
from cnn_explorer.qt.widgets.number_grid import NumberGrid

MOMENTUM = 0.9
WEIGHT_DECAY = 0.0005


def _term(v: float) -> str:
    """A number as a factor after an operator: negatives in parentheses."""
    text = format_number(v, 4)
    return f"({text})" if v < 0 else text


class SgdPanel(QGroupBox):
    kernel_stepped = Signal(object)  # np.ndarray, the new kernel

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("SGD with momentum, one step at a time", parent)
        self._w: np.ndarray | None = None
        self._grad: np.ndarray | None = None
        self._v: np.ndarray | None = None
        self._steps = 0

        formula = QLabel(f"v ← {MOMENTUM}·v − {WEIGHT_DECAY}·w − α·∂L/∂w<br>w ← w + v")
        formula.setStyleSheet(TITLE_STYLE)
        terms = hint()
        terms.setText(
            f"Momentum {MOMENTUM} keeps most of the last step; weight decay {WEIGHT_DECAY} pulls every "
            "weight a little towards 0; α·∂L/∂w steps down the gradient."
        )
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 10.0)
        self.lr_spin.setSingleStep(0.001)
        self.lr_spin.setValue(0.01)
        self.lr_spin.setKeyboardTracking(False)
        self.lr_spin.setToolTip("α, the learning rate: how far one step goes against the gradient")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("One update of v and w; the new kernel goes into the editor")
        self.reset_button = QPushButton("Reset v")
        self.reset_button.setToolTip("Forget the momentum: v = 0")
        self.status_label = hint()

        self.w_grid = NumberGrid("w (kernel)", digits=4)
        self.grad_grid = NumberGrid("∂L/∂w", digits=4)
        self.v_grid = NumberGrid("v (velocity)", digits=4)
        self.new_grid = NumberGrid("next w", digits=4)
        self.arithmetic_label = QLabel()
        self.arithmetic_label.setWordWrap(True)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("α"))
        controls.addWidget(self.lr_spin)
        controls.addWidget(self.step_button)
        controls.addWidget(self.reset_button)
        controls.addStretch(1)
        grids = QGridLayout()
        grids.setHorizontalSpacing(14)
        for col, grid in enumerate((self.w_grid, self.grad_grid, self.v_grid, self.new_grid)):
            grids.addWidget(grid, 0, col)
        grids.setColumnStretch(4, 1)
        layout = QVBoxLayout(self)
        layout.setSpacing(4)
        layout.addWidget(formula)
        layout.addWidget(terms)
        layout.addLayout(controls)
        layout.addWidget(self.status_label)
        layout.addLayout(grids)
        layout.addWidget(self.arithmetic_label)

        self.step_button.clicked.connect(self.step)
        self.reset_button.clicked.connect(self.reset_velocity)
        self._show()

    # -- API --------------------------------------------------------------------------------------
    def set_state(self, w: np.ndarray, grad: np.ndarray | None) -> None:
        w = np.array(w, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"the kernel must be 2-D, got shape {w.shape}")
        g = None if grad is None else np.array(grad, dtype=np.float64)
        if g is not None and g.shape != w.shape:
            raise ValueError(f"the gradient has shape {g.shape}, the kernel {w.shape}")
        if self._v is None or self._v.shape != w.shape:
            self._v = np.zeros_like(w)
            self._steps = 0
        self._w, self._grad = w, g
        self._show()

    def step(self) -> None:
        if self._w is None or self._grad is None or self._v is None:
            return
        w, v, g, lr = self._w, self._v, self._grad, self.learning_rate()
        w_new, v_new = sgd_momentum_step(w, v, g, lr, MOMENTUM, WEIGHT_DECAY)
        self._write_arithmetic(w, v, g, lr, w_new, v_new)
        self._w, self._v = w_new, v_new
        self._steps += 1
        self._show()
        self.kernel_stepped.emit(w_new.copy())

    def reset_velocity(self) -> None:
        if self._v is not None:
            self._v = np.zeros_like(self._v)
        self._steps = 0
        self.arithmetic_label.clear()
        self._show()

    def weights(self) -> np.ndarray | None:
        return None if self._w is None else self._w.copy()

    def gradient(self) -> np.ndarray | None:
        return None if self._grad is None else self._grad.copy()

    def velocity(self) -> np.ndarray | None:
        return None if self._v is None else self._v.copy()

    def steps(self) -> int:
        return self._steps

    def learning_rate(self) -> float:
        return float(self.lr_spin.value())

    # -- internals --------------------------------------------------------------------------------
    def _show(self) -> None:
        ready = self._w is not None and self._grad is not None
        self.step_button.setEnabled(ready)
        self.reset_button.setEnabled(self._v is not None)
        if self._w is None or self._v is None:
            for grid in (self.w_grid, self.grad_grid, self.v_grid, self.new_grid):
                grid.clear("—")
            self.status_label.setText("No kernel yet.")
            return
        self.w_grid.set_matrix(self._w, "w (the kernel now)")
        self.v_grid.set_matrix(self._v, "v (velocity)")
        if self._grad is None:
            self.grad_grid.clear("turn on the backward view")
            self.new_grid.clear("—")
            self.status_label.setText(
                "∂L/∂w comes from the backward view: switch it on to take a step down the gradient."
            )
            return
        self.grad_grid.set_matrix(self._grad, "∂L/∂w")
        w_next, _ = sgd_momentum_step(
            self._w, self._v, self._grad, self.learning_rate(), MOMENTUM, WEIGHT_DECAY
        )
        self.new_grid.set_matrix(w_next, "next w, if you step now")
        plural = "" if self._steps == 1 else "s"
        self.status_label.setText(
            f"{self._steps} step{plural} since v was 0. v remembers the earlier steps: with the same "
            "gradient each step goes further, up to 10× the first (1/(1 − 0.9))."
        )

    def _write_arithmetic(
        self, w: np.ndarray, v: np.ndarray, g: np.ndarray, lr: float, w_new: np.ndarray, v_new: np.ndarray
    ) -> None:
        """The update of the cell with the largest gradient, written out."""
        r, c = np.unravel_index(int(np.argmax(np.abs(g))), g.shape)
        f = format_number
        self.arithmetic_label.setText(
            f"At row {r}, col {c} (the largest |∂L/∂w|): v = {MOMENTUM}·{_term(v[r, c])} − "
            f"{WEIGHT_DECAY}·{_term(w[r, c])} − {f(lr, 5)}·{_term(g[r, c])} = {f(v_new[r, c], 4)}; "
            f"w = {f(w[r, c], 4)} + {_term(v_new[r, c])} = {f(w_new[r, c], 4)}"
        )
