"""The Operations lab's course examples and its depth (mixins of OpsLabPage).

A course example (core's ``COURSE_EXAMPLES``) sets every control in one go — the input, which stages are
on, the kernel or the filter bank, stride, padding, activation and pooling — and is remembered until the
user changes something, so the parameter box can compare with the fully-connected layer the notes name.

Depth: the input's channels and the depth panel's C_in follow each other. Choosing RGB offers 3 channels;
asking the depth panel for 1 channel of an image picks its grayscale, 2 or 3 its RGB (the first C_in
channels are used)."""

from __future__ import annotations

import numpy as np

from cnn_explorer.core.lab import CourseExample, FilterBank, course_example
from cnn_explorer.core.ops import ACTIVATIONS

IMAGE_SOURCES = ("gray", "red", "green", "blue", "rgb")


class CourseExamples:
    # -- course examples --------------------------------------------------------------------------
    def current_example(self) -> CourseExample | None:
        """The example the page shows, until the user changes a setting."""
        return self._example

    def apply_example(self, key: str) -> None:
        """Set up course example ``key`` (see core's ``COURSE_EXAMPLES``); recomputes a moment later."""
        example = course_example(key)
        s = example.settings
        self._applying = True
        try:
            self._stop_playing()
            x = example.input
            if x.ndim == 2:
                self.input_panel.set_matrix(x)
            else:
                self.input_panel.set_array(x, example.title)
            self._follow_source()
            self.conv_panel.setChecked(s.conv)
            bank = None
            if s.weights is not None:
                weights = np.asarray(s.weights, dtype=np.float64)
                n = weights.shape[0]
                biases = (
                    np.full(n, float(s.bias)) if s.biases is None else np.asarray(s.biases, dtype=np.float64)
                )
                names = (
                    tuple(example.names)
                    if len(example.names) == n
                    else tuple(f"filter {i + 1}" for i in range(n))
                )
                bank = FilterBank(weights, biases, names)
                self.conv_panel.set_kernel(weights[0, 0], names[0])
            elif s.conv:
                self.conv_panel.set_kernel(np.asarray(s.kernel), "")
            self.stride_spin.setValue(s.stride)
            self.padding_spin.setValue(s.padding)
            self.dilation_spin.setValue(s.dilation)
            self.bias_spin.setValue(s.bias)
            self.act_combo.setCurrentIndex(list(ACTIVATIONS).index(s.activation))
            if s.activation_param is not None:
                self.act_param_spin.setValue(s.activation_param)
            self.pool_panel.setChecked(s.pool_mode != "none")
            if s.pool_mode != "none":
                self.pool_mode_combo.setCurrentIndex(self.pool_mode_combo.findData(s.pool_mode))
                self.pool_size_spin.setValue(s.pool_size)
                self.pool_stride_spin.setValue(s.pool_stride or 0)
                self.pool_padding_spin.setValue(s.pool_padding)
            depth = self.depth_panel
            if bank is not None:
                depth.set_bank(bank)
            else:
                depth.mode_combo.setCurrentIndex(depth.mode_combo.findData("kernel"))
                depth.set_filters(1)
                depth.set_in_channels(self.input_panel.channels())
        finally:
            self._applying = False
        self._example = example
        self.bar.set_example(key, example.caption)
        self._step_index = 0
        self._schedule()

    def _forget_example(self) -> None:
        if self._example is not None:
            self._example = None
            self.bar.set_example("")

    def _on_example_chosen(self, key: str) -> None:
        self.apply_example(key)

    def _on_setting_changed(self, *_args: object) -> None:
        """A control changed: the example (if any) is left behind, unless it is the example's own doing."""
        if not self._applying:
            self._forget_example()
        self._schedule()

    # -- depth ------------------------------------------------------------------------------------
    def _follow_source(self) -> None:
        """A new source: the depth panel offers its channels (3 for an image: it has them) and uses them."""
        key = self.input_panel.source_key()
        if key == self._source_seen:
            return
        self._source_seen = key
        natural = self.input_panel.channels()
        self.depth_panel.set_channel_limit(3 if key in IMAGE_SOURCES else natural)
        self.depth_panel.set_in_channels(natural)

    def _on_input_changed(self) -> None:
        self._follow_source()
        self._on_setting_changed()

    def _on_depth_changed(self, bank: FilterBank) -> None:
        """The user changed the depth: an image's source follows the channel count."""
        key = self.input_panel.source_key()
        if key in IMAGE_SOURCES:
            want = "gray" if bank.in_channels == 1 and key == "rgb" else key
            want = "rgb" if bank.in_channels > 1 else want
            if want != key:
                self._source_seen = want  # the depth stays as chosen
                self.input_panel.set_source(want)
        self._on_setting_changed()

    def _on_conv_changed(self) -> None:
        """The kernel or bias changed: the depth panel's filters follow (filter 1 is the kernel)."""
        depth = self.depth_panel
        depth.set_bias(float(self.bias_spin.value()))
        kernel = self.kernel_editor.kernel()
        if (
            not self._applying
            and depth.mode() == "given"
            and not np.array_equal(depth.bank().weights[0, 0], kernel)
        ):
            depth.mode_combo.setCurrentIndex(
                depth.mode_combo.findData("kernel")
            )  # your kernel is filter 1 now
        depth.set_kernel(kernel)
        self._on_setting_changed()

    def _filter_bank(self) -> FilterBank:
        return self.depth_panel.bank()

    def _input_channels_used(self) -> int:
        return self.depth_panel.in_channels()
