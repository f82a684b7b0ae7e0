"""Cooperative cancel / pause for long core work, with no Qt in sight.

A core function that may run for a while takes ``control: Control | None`` and calls
``control.checkpoint()`` between units of work (a batch, a layer, a chunk of a download).
The GUI's worker owns the Control and flips it from the GUI thread; the CLI uses one wired to Ctrl+C.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Cancelled(Exception):
    """Raised inside core work when its Control was cancelled."""


class Control:
    """Thread-safe cancel / pause flags plus an optional progress sink."""

    def __init__(self, report: Callable[[Any], None] | None = None) -> None:
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._report = report

    # -- called from the controlling side -------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused job must wake up to notice the cancel

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    # -- called from the working side -----------------------------------------------------------
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self) -> None:
        """Block while paused; raise Cancelled if cancelled. Cheap enough to call per batch."""
        while not self._running.wait(0.1):
            if self._cancel.is_set():
                break
        if self._cancel.is_set():
            raise Cancelled("cancelled")

    def report(self, event: Any) -> None:
        """Send a progress event to whoever listens (a worker batches them for the GUI)."""
        if self._report is not None:
            self._report(event)


def checkpoint(control: Control | None) -> None:
    """``control.checkpoint()`` that accepts None, for functions whose control is optional."""
    if control is not None:
        control.checkpoint()


def report(control: Control | None, event: Any) -> None:
    if control is not None:
        control.report(event)
