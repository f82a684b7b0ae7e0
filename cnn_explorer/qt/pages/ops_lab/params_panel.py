"""The Operations lab's parameter box: this convolution's parameter count against a fully-connected
layer from the same inputs to the same outputs (core's :func:`compare_params`), and the course example."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGroupBox, QLabel, QSizePolicy, QVBoxLayout, QWidget

from cnn_explorer.core.ops import LabResult, compare_params, conv_param_count, dense_param_count
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

    def show_result(self, res: LabResult | None) -> None:
        """Compare the layer that made ``res`` (None: nothing to compare)."""
        if res is None:
            self.params_label.setText("<i>No convolution output to compare.</i>")
            return
        x = res.input
        c = x.shape[0] if x.ndim == 3 else 1
        h, w = x.shape[-2:]
        kh, kw = res.weight.shape[-2:]
        s = res.settings
        cmp = compare_params((c, h, w), (kh, kw), 1, s.stride, s.padding, s.dilation)
        oh, ow = res.conv.shape
        self.params_label.setText(
            f"<b>This convolution</b> &nbsp;<span style='color:#666'>kH·kW·C<sub>in</sub>·F + F</span><br>"
            f"&nbsp;&nbsp;{cmp.conv_formula}"
            f"<p style='margin:6px 0 0 0'><b>Fully connected</b>, from the same {cmp.in_features:,} inputs "
            f"({c}×{h}×{w}) to the same {cmp.out_features:,} outputs ({oh}×{ow}):<br>"
            f"&nbsp;&nbsp;{cmp.dense_formula}</p>"
            f"<p style='margin:6px 0 0 0'><b style='color:#c40'>{cmp.ratio:,.0f}×</b> as many parameters: "
            f"the convolution reuses its {cmp.conv:,} numbers at all {cmp.out_features:,} positions.</p>"
        )
