"""The only module that starts threads.

``start_job(fn, *args, **kwargs)`` runs a core function (or iterates a core generator) on a QThread and
reports back on the GUI thread through the returned :class:`Job`'s signals:

- ``events(list)``: progress events, batched and delivered at most ~20 times a second (plus one last
  batch on completion). A generator's yielded items and anything the function passes to
  ``control.report(...)`` arrive here, all of them, in order.
- ``result(object)``: the function's return value (a generator's ``return`` value).
- ``failed(object)``: the exception that ended it (``str(exc)`` is meant for the user).
- ``cancelled()``: the job stopped because it was cancelled.
- ``finished()``: always, last.

If ``fn`` has a parameter named ``control`` it receives the job's :class:`Control`, and should call
``control.checkpoint()`` between units of work so Cancel and Pause act promptly. A generator is checked
between items automatically. After ``cancel()`` a job emits nothing but ``cancelled``/``failed`` and
``finished``: a stale job cannot overwrite newer results.
"""

from __future__ import annotations

import inspect
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cnn_explorer.core.control import Cancelled, Control

EVENT_INTERVAL_MS = 50  # <= 20 UI updates per second

_active: set[Job] = set()


class _Thread(QThread):
    done = Signal(str, object)  # ("result" | "failed" | "cancelled", payload)

    def __init__(self, call: Callable[[], Any], control: Control, report: Callable[[Any], None]) -> None:
        super().__init__()
        self._call = call
        self._control = control
        self._report = report

    def run(self) -> None:
        try:
            self._control.checkpoint()
            value = self._call()
            if isinstance(value, Iterator) and inspect.isgenerator(value):
                value = self._drain(value)
            self.done.emit("result", value)
        except Cancelled:
            self.done.emit("cancelled", None)
        except BaseException as exc:
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            if self._control.cancelled:
                self.done.emit("cancelled", None)
            else:
                self.done.emit("failed", exc)

    def _drain(self, gen: Iterator[Any]) -> Any:
        try:
            while True:
                self._control.checkpoint()
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                self._report(item)
        finally:
            gen.close()  # runs the generator's finally blocks (closing files, saving checkpoints)


class Job(QObject):
    events = Signal(list)
    result = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, name: str = "") -> None:
        super().__init__()
        self.name = name or getattr(fn, "__name__", "job")
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        self.control = Control(report=self._enqueue)
        if _accepts_control(fn):
            kwargs = {**kwargs, "control": self.control}
        self._thread = _Thread(lambda: fn(*args, **kwargs), self.control, self._enqueue)
        self._thread.done.connect(self._on_done)
        self._timer = QTimer(self)
        self._timer.setInterval(EVENT_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        self._finished = False
        self.outcome: str | None = None  # "result" | "failed" | "cancelled" once finished

    # -- control, from the GUI thread -----------------------------------------------------------
    def start(self) -> Job:
        _active.add(self)
        self._timer.start()
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.control.cancel()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    @property
    def is_running(self) -> bool:
        return not self._finished

    @property
    def is_cancelled(self) -> bool:
        return self.control.cancelled

    def wait(self, msecs: int = 10_000) -> bool:
        """Block until the thread ends (used on quit); returns False on timeout."""
        return self._thread.wait(msecs)

    # -- internals --------------------------------------------------------------------------------
    def _enqueue(self, event: Any) -> None:
        with self._lock:
            self._queue.append(event)

    @Slot()
    def _flush(self) -> None:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        if batch and not self.control.cancelled:
            self.events.emit(batch)

    @Slot(str, object)
    def _on_done(self, kind: str, payload: object) -> None:
        self._thread.wait()
        self._timer.stop()
        self._flush()
        self._finished = True
        self.outcome = kind
        _active.discard(self)
        if kind == "result" and self.control.cancelled:
            kind = "cancelled"  # finished just as it was cancelled: the caller no longer wants it
            self.outcome = kind
        if kind == "result":
            self.result.emit(payload)
        elif kind == "failed":
            self.failed.emit(payload)
        else:
            self.cancelled.emit()
        self.finished.emit()


def _accepts_control(fn: Callable[..., Any]) -> bool:
    try:
        return "control" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def start_job(fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` on a worker thread; see the module docstring."""
    return Job(fn, args, kwargs, name=name).start()


class JobSlot:
    """At most one current job of a kind: starting a new one cancels the stale one."""

    def __init__(self) -> None:
        self.current: Job | None = None

    def start(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> Job:
        self.cancel()
        self.current = start_job(fn, *args, name=name, **kwargs)
        return self.current

    def cancel(self) -> None:
        if self.current is not None and self.current.is_running:
            self.current.cancel()

    def is_current(self, job: Job | None) -> bool:
        return job is not None and job is self.current

    @property
    def busy(self) -> bool:
        return self.current is not None and self.current.is_running


def active_jobs() -> list[Job]:
    return list(_active)


def shutdown(timeout_ms: int = 15_000) -> list[str]:
    """Cancel every running job and join its thread. Returns the names of jobs that did not stop."""
    jobs = list(_active)
    for job in jobs:
        job.cancel()
    stuck = []
    for job in jobs:
        if not job._thread.wait(timeout_ms):
            stuck.append(job.name)
        else:
            job._timer.stop()
            job._finished = True
            _active.discard(job)
    return stuck
