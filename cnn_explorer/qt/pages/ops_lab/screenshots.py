"""The states the ``screenshot`` command photographs the Operations lab in (a mixin of OpsLabPage): the
cat through Sobel x mid-way (``ops.png``), the course's max-pooling example with its gradient routed back
to the winners (``lab-backward.png``), and an RGB input with four filters (``lab-depth.png``)."""

from __future__ import annotations

from cnn_explorer.core.ops import ACTIVATIONS
from cnn_explorer.qt.pages.ops_lab.helpers import SOURCES


class Screenshots:
    def _reset_for_picture(self) -> None:
        self._stop_playing()
        if self.bar.backward():
            self.backward_check.setChecked(False)
        self.conv_panel.setChecked(True)
        self.pool_panel.setChecked(True)
        self.highlight_check.setChecked(True)
        self.set_step_mode("conv")
        self.show_tab("step")

    def _photo_settings(self, source: str, size: int, kernel: str, padding: int) -> None:
        self.source_combo.setCurrentIndex([k for _, k in SOURCES].index(source))
        self.size_spin.setValue(size)
        self.scale_combo.setCurrentIndex(0)
        self.kernel_combo.setCurrentText(kernel)
        self.stride_spin.setValue(1)
        self.padding_spin.setValue(padding)
        self.dilation_spin.setValue(1)
        self.bias_spin.setValue(0)
        self.act_combo.setCurrentIndex(list(ACTIVATIONS).index("relu"))
        self.pool_mode_combo.setCurrentIndex(0)
        self.pool_size_spin.setValue(2)
        self.pool_stride_spin.setValue(0)

    def prepare_screenshot(self) -> None:
        """Mid-way through a Sobel convolution of the sample photo, window visible, numbers readable."""
        self._reset_for_picture()
        self._photo_settings("gray", 40, "Sobel x", 1)
        depth = self.depth_panel
        depth.mode_combo.setCurrentIndex(depth.mode_combo.findData("kernel"))
        depth.set_filters(1)
        self._pending_step_fraction = 0.42
        self._schedule()

    def prepare_backward_screenshot(self) -> None:
        """The notes' max-pooling example, backward: random upstream numbers, each routed to its window's
        winner; step mode on the second pooling window."""
        self._reset_for_picture()
        self.apply_example("max-pool-4x4")
        self.bar.set_upstream_kind("random")
        self.backward_check.setChecked(True)
        self.set_step_mode("pool")
        self._step_index = 1
        self._schedule()

    def prepare_depth_screenshot(self) -> None:
        """The sample photo in RGB through four 3×3 filters, each shown as its three kernels."""
        self._reset_for_picture()
        self._photo_settings("rgb", 32, "Sobel x", 0)  # (no padding: no false edge at the border)
        depth = self.depth_panel
        depth.mode_combo.setCurrentIndex(depth.mode_combo.findData("kernel"))
        depth.filters_spin.setValue(4)  # as the user would: the bank is remade and the page recomputes
        self.show_tab("depth")
        self._pending_step_fraction = (0.45, 0.4)  # the middle of the cat's face
        self._schedule()
