"""The Compress page: panels composed by :class:`CompressPage` (see ``page.py``)."""

from cnn_explorer.qt.pages.compress.form_panel import CompressForm, FormError, parse_per_layer
from cnn_explorer.qt.pages.compress.page import DEMO_TIMEOUT_MS, CompressPage
from cnn_explorer.qt.pages.compress.results_panel import CompressResults

__all__ = [
    "DEMO_TIMEOUT_MS",
    "CompressForm",
    "CompressPage",
    "CompressResults",
    "FormError",
    "parse_per_layer",
]
