"""The Network explorer page: panels bound to a Qt-free :class:`~cnn_explorer.core.explorer.session.
ExplorerSession` (see ``page.py``)."""

from cnn_explorer.core.explorer.tasks import image_key
from cnn_explorer.qt.pages.network.page import MODEL_FILE_FILTER, NetworkPage

__all__ = ["MODEL_FILE_FILTER", "NetworkPage", "image_key"]
