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

``start_process_job`` has the same interface but runs ``fn`` in a child process (spawned, niced): for
long Python-heavy work such as training, whose interpreter lock and CPU use would otherwise make the
window stutter. Its arguments, events and result must be picklable and ``fn`` must be importable
(a module-level function of ``core``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cnn_explorer.core.control import Cancelled, Control, run_job, serve_job

EVENT_INTERVAL_MS = 50  # <= 20 UI updates per second
MIN_EVENT_GAP_S = 0.9 * EVENT_INTERVAL_MS / 1000
PROCESS_NICENESS = 10  # a worker process yields the CPU to the window (it gets ~10% of a core it shares)

_active: set[Job] = set()


class _Thread(QThread):
    """Runs the job in this process, on its own thread."""

    done = Signal(str, object)  # ("result" | "failed" | "cancelled", payload)

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, control: Control) -> None:
        super().__init__()
        self._job = (fn, args, kwargs)
        self._control = control

    def run(self) -> None:
        fn, args, kwargs = self._job
        try:
            self.done.emit("result", run_job(fn, args, kwargs, self._control))
        except Cancelled:
            self.done.emit("cancelled", None)
        except BaseException as exc:  # everything must reach the GUI, nothing may kill it
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.done.emit("cancelled" if self._control.cancelled else "failed", exc)

    def stop_now(self) -> None:
        """Last resort on quit; a thread cannot be killed safely, so there is nothing more to do."""


def _lower_priority(pid: int) -> None:
    """Renice a just-started child by PROCESS_NICENESS more than this thread. Done from here, at once:
    the child's own first act is importing torch, about a second of CPU, which at the window's priority
    stalled the window (bench_gui_stall.py). Threads the child starts later inherit its niceness."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + PROCESS_NICENESS)
            os.setpriority(os.PRIO_PROCESS, pid, niceness)


class _ProcessRelay(QThread):
    """Runs the job in a spawned child process and relays its messages from this thread."""

    done = Signal(str, object)

    def __init__(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict, control: Control, context: Any, channel: Any
    ) -> None:
        super().__init__()
        self._control = control
        self._channel = channel
        self.process = context.Process(
            target=serve_job,
            args=(fn, args, kwargs, channel, control._cancel, control._running),
            daemon=True,
        )

    def run(self) -> None:
        try:
            self.process.start()
        except Exception as exc:  # e.g. an argument that cannot be pickled for the child
            self.done.emit("failed", RuntimeError(f"could not start the worker process: {exc}"))
            return
        _lower_priority(self.process.pid)
        outcome: tuple[str, object] | None = None
        while outcome is None:
            try:
                kind, payload = self._channel.get(timeout=0.1)
            except queue_module.Empty:
                if not self.process.is_alive():
                    outcome = self._vanished()
                continue
            except (EOFError, OSError):
                outcome = self._vanished()
                continue
            if kind == "event":
                self._control.report(payload)
            else:
                outcome = (kind, payload)
        self.process.join(10)
        self.done.emit(*outcome)

    def _vanished(self) -> tuple[str, object]:
        self.process.join(1)
        if self._control.cancelled:
            return ("cancelled", None)
        code = self.process.exitcode
        return ("failed", RuntimeError(f"the worker process ended unexpectedly (exit code {code})"))

    def stop_now(self) -> None:
        if self.process.is_alive():
            self.process.terminate()


class Job(QObject):
    events = Signal(list)
    result = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict, name: str = "", in_process: bool = False
    ) -> None:
        super().__init__()
        self.name = name or getattr(fn, "__name__", "job")
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        if in_process:
            context = multiprocessing.get_context("spawn")  # fork is unsafe with Qt and threads
            self.control = Control(
                report=self._enqueue, cancel_event=context.Event(), running_event=context.Event()
            )
            self.control.resume()
            self._thread: _Thread | _ProcessRelay = _ProcessRelay(
                fn, args, kwargs, self.control, context, context.Queue()
            )
        else:
            self.control = Control(report=self._enqueue)
            self._thread = _Thread(fn, args, kwargs, self.control)
        self._thread.done.connect(self._on_done)
        self._timer = QTimer(self)
        self._timer.setInterval(EVENT_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        self._finished = False
        self._last_emit = 0.0
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
    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        # A late timer tick is followed by an early one; the bound must hold whatever the timer does.
        if not force and now - self._last_emit < MIN_EVENT_GAP_S:
            return
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        if batch and not self.control.cancelled:
            self._last_emit = now
            self.events.emit(batch)

    @Slot(str, object)
    def _on_done(self, kind: str, payload: object) -> None:
        self._thread.wait()
        self._timer.stop()
        self._flush(force=True)
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


def start_job(fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` on a worker thread; see the module docstring."""
    return Job(fn, args, kwargs, name=name).start()


def start_process_job(fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` in a child process; same signals and controls as :func:`start_job`."""
    return Job(fn, args, kwargs, name=name, in_process=True).start()


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
            job._thread.stop_now()
            if not job._thread.wait(2000):
                stuck.append(job.name)
                continue
        else:
            job._timer.stop()
            job._finished = True
            _active.discard(job)
    return stuck
