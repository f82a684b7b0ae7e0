"""The Operations lab's step mode (a mixin of OpsLabPage): which output position is shown, moving it
(Back, Step, Play, a click on a conv or activation cell), and showing it — the sheet in the step panel
and the window, cell and pooling window on the maps."""

from __future__ import annotations

from cnn_explorer.core.ops import ACTIVATIONS, conv_step


class StepMode:
    # -- the position -----------------------------------------------------------------------------
    def step_count(self) -> int:
        res = None if self._outcome is None else self._outcome.result
        return 0 if res is None else int(res.conv.size)

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

    def _jump_to_cell(self, row: int, col: int) -> None:
        res = None if self._outcome is None else self._outcome.result
        if res is not None:
            self.set_step_index(row * res.conv.shape[1] + col)

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
        res = None if self._outcome is None else self._outcome.result
        self.stages.clear_window()
        if res is None:
            self.step_panel.show_nothing()
            return
        count = self.step_count()
        self._step_index = max(0, min(self._step_index, count - 1))
        s = res.settings
        step = conv_step(res.input, res.weight, self._step_index, s.bias, s.stride, s.padding, s.dilation)
        act = ACTIVATIONS[s.activation]
        names = ["R", "G", "B"] if res.input.ndim == 3 and res.input.shape[0] == 3 else None
        self.step_panel.show_step(
            step,
            self._step_index,
            count,
            channel_names=names,
            activation=None if s.activation == "none" else act.label,
            activated=float(res.activated[step.out_row, step.out_col]),
        )
        if self.step_panel.window_shown():
            self.stages.show_window(res, step)
