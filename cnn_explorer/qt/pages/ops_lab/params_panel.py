"""The Operations lab's parameter box: this convolution's parameter count k·k·C_in·F + F against a
fully-connected layer from the same inputs to the same outputs — or to the layer a course example
compares with — (core's ``LabResult.param_comparison``), and the course's example numbers."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGroupBox, QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_explorer.core.lab import LabResult
from cnn_explorer.core.ops import conv_param_count, dense_param_count
from cnn_explorer.qt.pages.ops_lab.helpers import hint


class ParamsPanel(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Parameters: convolution vs fully connected", parent)
        self.params_label = QLabel()
        self.params_label.setWordWrap(True)
        self.params_label.setTextFormat(Qt.TextFormat.RichText)
        self.params_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.params_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #ddd;")
        self.course_params_label = course = hint()
        conv = conv_param_count(5, 3, 16)
        dense = dense_param_count(32 * 32 * 3, 500, bias=False)
        course.setText(
            f"Course example: a 5×5 convolution on 3 channels with 16 filters has 5·5·3·16 + 16 = {conv:,} "
            f"parameters; a fully-connected layer 32×32×3 → 500 has 3,072·500 = {dense:,} (without bias)."
        )
        layout = QVBoxLayout(self)
        layout.addWidget(self.params_label, 1)
        layout.addWidget(line)
        layout.addWidget(course)

    def show_result(
        self, res: LabResult | None, dense_outputs: int | None = None, dense_bias: bool | None = None
    ) -> None:
        """Compare the layer that made ``res`` (None: nothing to compare) with a fully-connected one: to
        the same outputs, or to ``dense_outputs`` units (a course example's)."""
        if res is None:
            self.params_label.setText("<i>No convolution output to compare.</i>")
            return
        cmp = res.param_comparison(dense_outputs, dense_bias)
        if cmp is None:
            self.params_label.setText(
                "<i>The convolution is off: no weights at all. Pooling and activations have no parameters "
                "to learn.</i>"
            )
            return
        c, h, w = res.maps("input").shape
        f, oh, ow = res.maps("conv").shape
        out_shape = f"{f}×{oh}×{ow}" if f > 1 else f"{oh}×{ow}"
        target = (
            f"to {cmp.out_features:,} units, as in the notes"
            if dense_outputs is not None
            else f"to the same {cmp.out_features:,} outputs ({out_shape})"
        )
        self.params_label.setText(
            f"<b>This convolution</b> &nbsp;<span style='color:#666'>kH·kW·C<sub>in</sub>·F + F</span><br>"
            f"&nbsp;&nbsp;{cmp.conv_formula}"
            f"<p style='margin:6px 0 0 0'><b>Fully connected</b>, from the same {cmp.in_features:,} inputs "
            f"({c}×{h}×{w}) {target}:<br>"
            f"&nbsp;&nbsp;{cmp.dense_formula}</p>"
            f"<p style='margin:6px 0 0 0'><b style='color:#c40'>{cmp.ratio:,.0f}×</b> as many parameters: "
            f"the convolution reuses its {cmp.conv:,} numbers at all {oh * ow:,} positions.</p>"
        )
