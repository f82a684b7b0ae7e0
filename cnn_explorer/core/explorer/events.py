"""A tiny observer: plain-Python change events that views subscribe to (napari's evented models, small)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Event"]


class Event:
    """``connect(callback)``; ``emit(*args)`` calls every callback in the order they connected."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for callback in list(self._callbacks):
            callback(*args)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} listeners)"
