"""Fixtures shared by the page tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtWidgets import QWidget

from cnn_explorer.qt import workers


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
