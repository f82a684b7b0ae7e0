"""The Operations lab page: convolution, activation and pooling arithmetic on a photo or a small matrix,
with step mode and a parameter comparison (see ``page.py``, which composes the panels)."""

from cnn_explorer.qt.pages.ops_lab.compute import LabInput, LabOutcome, compute_lab
from cnn_explorer.qt.pages.ops_lab.page import OpsLabPage

__all__ = ["LabInput", "LabOutcome", "OpsLabPage", "compute_lab"]
