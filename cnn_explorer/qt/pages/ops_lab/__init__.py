"""The Operations lab page: convolution, activation and pooling on a photo, a small matrix or a course
example — each stage on or off, one map per channel, forward and backward — with step mode (convolution,
pooling, backward), depth (input channels × filters) and a parameter comparison (see ``page.py``, which
composes the panels)."""

from cnn_explorer.qt.pages.ops_lab.compute import BackwardRequest, LabInput, LabOutcome, compute_lab
from cnn_explorer.qt.pages.ops_lab.page import OpsLabPage

__all__ = ["BackwardRequest", "LabInput", "LabOutcome", "OpsLabPage", "compute_lab"]
