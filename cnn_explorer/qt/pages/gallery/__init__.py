"""The architecture gallery page."""

from cnn_explorer.qt.pages.gallery.page import GalleryPage

__all__ = ["GalleryPage"]
