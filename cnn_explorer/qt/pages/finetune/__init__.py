"""The Fine-tune page: panels composed by :class:`FineTunePage` (see ``page.py``)."""

from cnn_explorer.qt.pages.finetune.banner import DONE_STYLE, IDLE_STYLE, INFO_STYLE
from cnn_explorer.qt.pages.finetune.jobs import (
    THUMBS_PER_CLASS,
    RunView,
    ScanOutcome,
    choose_data,
    demo_scan,
    gallery_items,
    read_run_view,
    scan_with_thumbnails,
)
from cnn_explorer.qt.pages.finetune.page import DEMO_TIMEOUT_MS, FineTunePage
from cnn_explorer.qt.pages.finetune.results_panel import GALLERY_LIMIT
from cnn_explorer.qt.pages.finetune.runs import SETTINGS_RUNS_FOLDER

__all__ = [
    "DEMO_TIMEOUT_MS",
    "DONE_STYLE",
    "GALLERY_LIMIT",
    "IDLE_STYLE",
    "INFO_STYLE",
    "SETTINGS_RUNS_FOLDER",
    "THUMBS_PER_CLASS",
    "FineTunePage",
    "RunView",
    "ScanOutcome",
    "choose_data",
    "demo_scan",
    "gallery_items",
    "read_run_view",
    "scan_with_thumbnails",
]
