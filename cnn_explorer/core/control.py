"""Cooperative cancel / pause for long core work, with no Qt in sight.

A core function that may run for a while takes ``control: Control | None`` and calls
``control.checkpoint()`` between units of work (a batch, a layer, a chunk of a download).
The GUI's worker owns the Control and flips it from the GUI thread; the CLI uses one wired to Ctrl+C.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from cnn_explorer.core.allocator import keep_freed_memory

PARENT_GONE_GRACE_S = 10.0  # a worker process whose window is gone has this long to save its checkpoint
PARENT_POLL_S = 0.5


class Cancelled(Exception):
    """Raised inside core work when its Control was cancelled."""


class Control:
    """Thread-safe cancel / pause flags plus an optional progress sink."""

    def __init__(
        self,
        report: Callable[[Any], None] | None = None,
        *,
        cancel_event: Any = None,
        running_event: Any = None,
    ) -> None:
        # The events may be multiprocessing Events (same interface), so a child process sees the flags.
        self._cancel = cancel_event if cancel_event is not None else threading.Event()
        self._running = running_event if running_event is not None else threading.Event()
        if running_event is None:
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


def run_job(fn: Callable[..., Any], args: tuple, kwargs: dict, control: Control) -> Any:
    """Run ``fn(*args, **kwargs)`` under ``control`` and return its result.

    ``fn`` gets ``control=`` if it has a parameter of that name. If it returns a generator, the generator
    is drained here: a checkpoint before each item, each item sent to ``control.report``, and its
    ``return`` value returned; closing it on the way out runs its ``finally`` blocks (saving checkpoints).
    Raises :class:`Cancelled` when cancelled.
    """
    control.checkpoint()
    try:
        takes_control = "control" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_control = False
    value = fn(*args, **({**kwargs, "control": control} if takes_control else kwargs))
    if not inspect.isgenerator(value):
        return value
    gen = value
    try:
        while True:
            control.checkpoint()
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            control.report(item)
    finally:
        gen.close()


def serve_job(
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    queue: Any,
    cancel_event: Any,
    running_event: Any,
) -> None:
    """Entry point of a worker *process*: :func:`run_job`, with everything sent back through ``queue``.

    Messages: ("event", item) for each progress event, then exactly one of ("result", value),
    ("failed", exception) or ("cancelled", None). It lives here, not in the Qt layer, so the child
    process never imports Qt.

    The process is not a daemon (a daemon may not start processes, and a DataLoader's workers are
    processes), so it watches its parent itself: see :func:`watch_parent`.
    """
    keep_freed_memory()  # as in the window's process: training steps reuse memory
    control = Control(
        lambda event: queue.put(("event", event)), cancel_event=cancel_event, running_event=running_event
    )
    watch_parent(control)
    try:
        queue.put(("result", run_job(fn, args, kwargs, control)))
    except Cancelled:
        queue.put(("cancelled", None))
    except BaseException as exc:  # everything must reach the window, nothing may vanish
        if control.cancelled:
            queue.put(("cancelled", None))
            return
        text = traceback.format_exc()
        try:
            pickle.dumps(exc)
            payload: BaseException = exc
        except Exception:  # an exception that cannot cross the process boundary as itself
            payload = RuntimeError(f"{type(exc).__name__}: {exc}")
        payload.__traceback_text__ = text  # type: ignore[attr-defined]
        queue.put(("failed", payload))


def parent_alive_check() -> Callable[[float], bool]:
    """A function ``alive(timeout_s)`` that waits up to ``timeout_s`` and tells whether the process that
    started this one still runs. On POSIX an orphan is adopted by another process, so a changed parent id
    decides (multiprocessing's handle on the parent only wakes the wait at once: it also reads as ended
    when the parent merely dropped its Process object); elsewhere that handle decides."""
    parent = multiprocessing.parent_process()
    ppid = os.getppid()
    by_pid = os.name == "posix"

    def alive(timeout_s: float) -> bool:
        if parent is not None and parent.is_alive():
            parent.join(timeout_s)  # returns as soon as the parent ends
        else:
            time.sleep(timeout_s)
        if by_pid:
            return os.getppid() == ppid
        return parent is None or parent.is_alive()

    return alive


def watch_parent(
    control: Control,
    *,
    alive: Callable[[float], bool] | None = None,
    grace_s: float = PARENT_GONE_GRACE_S,
    poll_s: float = PARENT_POLL_S,
    end: Callable[[int], Any] = os._exit,
) -> threading.Thread:
    """Start a daemon thread that ends this worker process when its parent (the window) is gone: it
    cancels ``control`` first, so that a run stops at its next step and saves its checkpoint, then ends
    the process after ``grace_s`` seconds whatever it is doing (sending to a window that no longer reads
    may block for ever). This is the guarantee a daemon process had: it does not outlive the window."""
    alive = alive or parent_alive_check()

    def watch() -> None:
        while alive(poll_s):
            pass
        control.cancel()
        time.sleep(grace_s)
        end(1)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread
