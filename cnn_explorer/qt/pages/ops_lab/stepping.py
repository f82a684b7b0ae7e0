"""The Operations lab's step mode (a mixin of OpsLabPage): what is stepped through (the convolution, the
pooling, or the backward pass into the convolution's input), which map (filter or channel), which position
is shown, moving it (Back, Step, Play, a click on a map), and showing it — the sheet in the step panel and
the window, cell and pooling window on the maps. One step's arithmetic is core's (``conv_step``,
``pool_step``, ``backward_step``): a single window, cheap enough for the GUI thread."""

from __future__ import annotations

from cnn_explorer.core.lab import LabResult, backward_step, pool_step
from cnn_explorer.core.ops import ACTIVATIONS, conv_step
from cnn_explorer.qt.pages.ops_lab.marks import show_backward_window, show_conv_window, show_pool_window
from cnn_explorer.qt.pages.ops_lab.stages import input_names

STEP_MARKS = ("window", "cell", "pool", "winner")


class StepMode:
    # -- what is stepped through ------------------------------------------------------------------
    def _lab_result(self) -> LabResult | None:
        return None if self._outcome is None else self._outcome.result

    def _gradients(self):
        return None if self._outcome is None else self._outcome.gradients

    def step_mode(self) -> str:
        """ "conv", "pool" or "backward"."""
        return self._step_mode

    def set_step_mode(self, mode: str) -> None:
        self.step_panel.set_mode(mode)

    def _on_step_mode(self, mode: str) -> None:
        self._wanted_mode = mode  # kept while the stage it needs is off, and back when it is on again
        if mode != self._step_mode:
            self._step_mode = mode
            self._step_index = 0
        self._update_step()

    def step_channel(self) -> int:
        return self._step_channel

    def set_step_channel(self, channel: int) -> None:
        self._step_channel = max(0, channel)
        self._update_step()

    def _step_maps(self, res: LabResult) -> list[str]:
        """The maps the current mode can step through, by name."""
        if self._step_mode == "backward":
            return input_names(res.input)
        return self.stages.output_names(res, self._filter_names)

    # -- the position -----------------------------------------------------------------------------
    def step_count(self) -> int:
        res = self._lab_result()
        if res is None:
            return 0
        if self._step_mode == "pool":
            return 0 if res.pooled is None else int(res.pooled.shape[-2] * res.pooled.shape[-1])
        if self._step_mode == "backward":
            ok = res.filters is not None and self._gradients() is not None
            return int(res.input.shape[-2] * res.input.shape[-1]) if ok else 0
        return 0 if res.filters is None else int(res.conv.shape[-2] * res.conv.shape[-1])

    @property
    def step_index(self) -> int:
        return self._step_index

    def set_step_index(self, index: int) -> None:
        count = self.step_count()
        self._step_index = max(0, min(index, count - 1)) if count else 0
        self._update_step()

    def step_forward(self) -> None:
        self.set_step_index(self._step_index + 1)

    def step_back(self) -> None:
        self.set_step_index(self._step_index - 1)

    def _on_step_requested(self, delta: int) -> None:
        self.set_step_index(self._step_index + delta)

    def _step_to(self, mode: str, channel: int, row: int, col: int, width: int) -> None:
        self._step_channel = channel
        if mode != self._step_mode:
            self._step_mode = self._wanted_mode = mode
            self.step_panel.set_mode(mode)  # (updates the step once more, at the old index)
        self.set_step_index(row * width + col)

    def _jump_to_cell(self, stage: str, channel: int, row: int, col: int) -> None:
        """A click on a forward map: the upstream cell (backward, "one cell"), else the step there."""
        res = self._lab_result()
        if res is None:
            return
        if self.bar.backward() and self.bar.upstream_kind() == "cell" and stage == self.stages.last_column():
            self.choose_upstream_cell(channel, row, col)
            return
        if stage in ("conv", "activation") and res.filters is not None:
            self._step_to("conv", channel, row, col, res.conv.shape[-1])
        elif stage == "pool" and res.pooled is not None:
            self._step_to("pool", channel, row, col, res.pooled.shape[-1])

    def _jump_to_gradient(self, stage: str, channel: int, row: int, col: int) -> None:
        """A click on a gradient map: the upstream cell on the last one, the backward step on ∂L/∂x."""
        res = self._lab_result()
        if res is None:
            return
        if stage == self.stages.last_column() and self.bar.upstream_kind() == "cell":
            self.choose_upstream_cell(channel, row, col)
        elif stage == "input" and res.filters is not None and self._gradients() is not None:
            self._step_to("backward", channel, row, col, res.input.shape[-1])

    # -- playing ----------------------------------------------------------------------------------
    def _on_play_started(self) -> None:
        if self._step_index >= self.step_count() - 1:
            self.set_step_index(0)  # play from the start once the end is reached

    def _stop_playing(self) -> None:
        self.step_panel.stop_playing()

    def _play_tick(self) -> None:
        if self._step_index >= self.step_count() - 1:
            self._stop_playing()
            return
        self.step_forward()

    # -- showing it -------------------------------------------------------------------------------
    def _update_step(self, *_args: object) -> None:
        res = self._lab_result()
        self.stages.clear_marks(STEP_MARKS)
        if res is None:
            self.step_panel.show_nothing()
            self._show_kernel_gradient()
            self._show_softmax()
            return
        grads = self._gradients()
        conv_on = res.filters is not None
        mode = self.step_panel.set_available(
            conv_on, res.pooled is not None, conv_on and grads is not None, prefer=self._wanted_mode
        )
        self._step_mode = mode
        count = self.step_count()
        if count == 0:
            self.step_panel.show_nothing()
            self._show_kernel_gradient()
            self._show_softmax()
            return
        names = self._step_maps(res)
        self._step_channel = min(self._step_channel, len(names) - 1)
        self.step_panel.set_maps(names, self._step_channel)
        self._step_index = max(0, min(self._step_index, count - 1))
        shown = self.bar.window_shown()
        k = self._step_channel
        if self._step_mode == "pool":
            width = res.pooled.shape[-1]
            step = pool_step(res.activated, res.settings, *divmod(self._step_index, width), channel=k)
            up = (
                None
                if grads is None
                else float(grads.upstream.reshape(res.maps("pool").shape)[k].flat[self._step_index])
            )
            self.step_panel.show_pool_step(
                step, self._step_index, count, names[k] if len(names) > 1 else "", gradient=up
            )
            if shown:
                show_pool_window(self.stages, res, step)
        elif self._step_mode == "backward":
            bstep = backward_step(res, grads, self._step_index, channel=k)
            filters = res.filters.shape[0]
            rows = [f"f{f + 1}" for f in range(filters)] if filters > 1 else None
            channel = names[k] if len(names) > 1 else ""
            self.step_panel.show_backward_step(bstep.as_conv_step(), self._step_index, count, rows, channel)
            if shown:
                show_backward_window(self.stages, res, bstep)
        else:
            self._show_conv_step(res, count, shown)
        self._show_kernel_gradient()
        self._show_softmax()

    def _show_conv_step(self, res: LabResult, count: int, shown: bool) -> None:
        s = res.settings
        f = self._step_channel
        weights = res.filters[f] if res.input.ndim == 3 else res.filters[f, 0]
        bias = float(res.biases[f])
        step = conv_step(res.input, weights, self._step_index, bias, s.stride, s.padding, s.dilation)
        act = ACTIVATIONS[s.activation]
        names = input_names(res.input) if res.input.ndim == 3 else None
        self.step_panel.show_step(
            step,
            self._step_index,
            count,
            channel_names=names,
            activation=None if s.activation == "none" else act.label,
            activated=float(res.maps("activation")[f, step.out_row, step.out_col]),
        )
        self._kernel_filter = f
        if shown:
            show_conv_window(self.stages, res, step, f)
