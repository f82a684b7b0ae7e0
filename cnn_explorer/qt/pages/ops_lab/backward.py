"""The Operations lab's backward view (a mixin of OpsLabPage): the switch, the upstream gradient (all ones,
random, or the cell the user clicked on the last map), and showing what the worker computed — the gradient
row under the maps, the kernel gradient, and the SGD step that uses it. The gradients themselves are
computed in the worker with the forward pass (``compute.BackwardRequest``), never here."""

from __future__ import annotations

import numpy as np

from cnn_explorer.qt.pages.ops_lab.compute import BackwardRequest
from cnn_explorer.qt.pages.ops_lab.gradients import show_gradients
from cnn_explorer.qt.pages.ops_lab.marks import show_upstream_cell, show_winners
from cnn_explorer.qt.pages.ops_lab.stages import input_names


class BackwardView:
    def backward_request(self) -> BackwardRequest | None:
        """What the next computation sends back, or None with the backward view off."""
        if not self.bar.backward():
            return None
        kind = self.bar.upstream_kind()
        return BackwardRequest(kind, self._upstream_cell if kind == "cell" else None, self.bar.seed())

    def gradients(self):
        """The gradients shown now (core's ``LabGradients``), or None."""
        return None if self._outcome is None else self._outcome.gradients

    def choose_upstream_cell(self, channel: int, row: int, col: int) -> None:
        """L = that output cell: the backward pass starts from 1 there (recomputed in the worker)."""
        res = self._lab_result()
        several = res is not None and res.output.ndim == 3
        self._upstream_cell = (channel, row, col) if several else (row, col)
        if self.bar.upstream_kind() != "cell":
            self.bar.set_upstream_kind("cell")  # (schedules)
        self._schedule()

    def _on_backward_toggled(self, on: bool) -> None:
        self.stages.set_backward(on)
        if not on:
            self.stages.clear_marks(("upstream",))
        self._schedule()

    def _show_backward(self) -> None:
        """The gradient row and the marks that go with it, for the outcome just shown."""
        outcome = self._outcome
        res = None if outcome is None else outcome.result
        grads = None if outcome is None else outcome.gradients
        shown = res is not None and grads is not None and self.bar.backward()
        self.stages.set_backward(shown)
        if shown:
            names = self.stages.output_names(res, self._filter_names)
            kind = self.bar.upstream_kind()
            show_gradients(self.stages, res, grads, kind, outcome.upstream_cell, names)
            show_upstream_cell(self.stages, outcome.upstream_cell if kind == "cell" else None)
        if res is not None:
            show_winners(self.stages, res)
        self._show_kernel_gradient()

    def _show_kernel_gradient(self) -> None:
        """∂L/∂W and ∂L/∂b of the filter stepped through last; the SGD step gets filter 1's."""
        grads = self.gradients()
        res = self._lab_result()
        kernel = self.kernel_editor.kernel()
        shown = self.bar.backward() and self.conv_panel.isChecked()
        if shown != self.kernel_panel.isVisibleTo(self):
            self.kernel_panel.setVisible(shown)
            self.course_params_label.setVisible(not shown)  # (room for the kernel gradient)
            self.kernel_panel.parentWidget().updateGeometry()
        if grads is None or res is None or grads.d_weight is None:
            self.kernel_panel.clear("Switch on the backward view to see the kernel's gradient.")
            self.sgd_panel.set_state(kernel, None)
            return
        names = self.stages.output_names(res, self._filter_names)
        f = min(self._kernel_filter, len(names) - 1)
        label = f"filter {f + 1}" if len(names) > 1 else "kernel"
        self.kernel_panel.show(grads, f, label, input_names(res.input))
        # The edited kernel is filter 1 on every channel (depth "kernel" mode): its gradient is the sum of
        # that filter's per-channel gradients. Other banks are not the edited kernel.
        dw = np.asarray(grads.d_weight)[0]
        if self.depth_panel.mode() == "kernel" and dw.shape[-2:] == kernel.shape:
            self.sgd_panel.set_state(kernel, dw.sum(axis=0))
        else:
            self.sgd_panel.set_state(kernel, None)

    def _on_kernel_stepped(self, kernel: np.ndarray) -> None:
        """The SGD panel took a step: the new kernel goes into the editor (and everything recomputes)."""
        self.conv_panel.set_kernel(kernel)
