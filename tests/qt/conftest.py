"""Fixtures shared by the page tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from cnn_explorer.qt import workers

ASSETS = Path(__file__).resolve().parents[2] / "assets"
PAGE_IDLE_MS = 60_000


@pytest.fixture
def open_page(qtbot) -> Callable[..., QWidget]:
    """Show a page at a typical size; at the end, shut it down and wait until its jobs have stopped."""
    opened: list[tuple[QWidget, int]] = []

    def show(page: QWidget, stop_timeout_ms: int) -> QWidget:
        qtbot.addWidget(page)
        page.resize(1230, 850)
        page.show()
        opened.append((page, stop_timeout_ms))
        return page

    yield show
    for page, stop_timeout_ms in opened:
        page.shutdown()
        qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=stop_timeout_ms)


@pytest.fixture(scope="module")
def cat():
    """The sample photo, as the explorer opens it."""
    from cnn_explorer.core.images import open_image

    return open_image(ASSETS / "chelsea.png")


@pytest.fixture
def lenet_page(open_page, qtbot, cat):
    """The Network explorer with LeNet-5 on the cat, idle: its pass done and its layer shown."""
    from cnn_explorer.qt.pages.network import NetworkPage

    page = open_page(NetworkPage(), PAGE_IDLE_MS)
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:lenet5"))
    page.set_image(cat)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=PAGE_IDLE_MS)
    assert page.loaded.info.name == "lenet5" and page.view is not None
    return page
