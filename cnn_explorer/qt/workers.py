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

:class:`LatestRunner` is what pages use: "latest request wins". It runs one job at a time, cancels a
stale one, keeps only the newest waiting request and delivers only the latest request's outcome, so a
page needs no queue of its own and no ``is_current`` guards (the pattern of Orange's
``ConcurrentWidgetMixin``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import multiprocessing
import multiprocessing.util  # its exit handler (joining children) is registered before ours, so runs after
import os
import queue as queue_module
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cnn_explorer.core.control import Cancelled, Control, run_job, serve_job

EVENT_INTERVAL_MS = 50  # <= 20 UI updates per second
MIN_EVENT_GAP_S = 0.9 * EVENT_INTERVAL_MS / 1000
PROCESS_NICENESS = 10  # a worker process yields the CPU to the window (it gets ~10% of a core it shares)
THREAD_NICENESS = 5  # a worker thread of the window's process yields to the window's thread (Linux)
EXIT_GRACE_S = 5.0  # at exit, a worker process still running gets this long to save its checkpoint

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
        _lower_thread_priority()
        try:
            self.done.emit("result", run_job(fn, args, kwargs, self._control))
        except Cancelled:
            self.done.emit("cancelled", None)
        except BaseException as exc:  # everything must reach the GUI, nothing may kill it
            exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self.done.emit("cancelled" if self._control.cancelled else "failed", exc)

    def stop_now(self) -> None:
        """Last resort on quit; a thread cannot be killed safely, so there is nothing more to do."""


def _lower_thread_priority() -> None:
    """Renice this worker thread by THREAD_NICENESS (Linux schedules threads one by one): on a machine
    whose cores a training keeps busy, the window's thread then gets a core before the window's own
    workers (bench_gui_stall.py). Elsewhere threads keep their priority."""
    if sys.platform.startswith("linux"):
        _renice(threading.get_native_id(), THREAD_NICENESS)


def _lower_priority(pid: int) -> None:
    """Renice a just-started child by PROCESS_NICENESS more than this thread. Done from here, at once:
    the child's own first act is importing torch, about a second of CPU, which at the window's priority
    stalled the window (bench_gui_stall.py). Threads the child starts later inherit its niceness."""
    _renice(pid, PROCESS_NICENESS)


def _renice(target: int, by: int) -> None:
    """Give process or (Linux) thread ``target`` the calling thread's niceness plus ``by`` (at most 19);
    where priorities cannot be set, or it is not allowed, nothing changes."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, target, min(19, os.getpriority(os.PRIO_PROCESS, 0) + by))


class _ProcessRelay(QThread):
    """Runs the job in a spawned child process and relays its messages from this thread.

    The child is not a daemon: a daemon process may not start processes of its own, and a DataLoader's
    workers are processes. It does not outlive the window all the same: it ends itself when this process
    is gone (``core.control.watch_parent``), and at exit a child still running is stopped
    (:func:`_end_worker_processes`).
    """

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
            daemon=False,
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


def _end_worker_processes() -> None:
    """At exit, what a daemon child would have had: worker processes still running are asked to stop (a
    run saves its checkpoint), given EXIT_GRACE_S, then terminated; multiprocessing's own exit handler
    would otherwise wait for them for ever."""
    relays = [job._thread for job in list(_active) if isinstance(job._thread, _ProcessRelay)]
    running = [relay for relay in relays if relay.process.is_alive()]
    for relay in running:
        relay._control.cancel()
    deadline = time.monotonic() + EXIT_GRACE_S
    for relay in running:
        relay.process.join(max(0.0, deadline - time.monotonic()))
        relay.stop_now()


atexit.register(_end_worker_processes)


# -- "latest request wins" -----------------------------------------------------------------------------
_log = logging.getLogger(__name__)


@dataclass(eq=False)  # compared by identity: two requests for one key are still two requests
class _Request:
    key: Hashable
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    name: str
    on_result: Callable[[Any], None] | None
    on_failed: Callable[[BaseException], None] | None
    on_events: Callable[[list], None] | None
    on_cancelled: Callable[[], None] | None
    cancelled: bool = False  # by LatestRunner.cancel()


@dataclass(eq=False)
class _Run:
    job: Job
    request: _Request  # whose callbacks get this job's outcome: a same-key request takes a running job over


class LatestRunner(QObject):
    """Runs a page's background work one job at a time, and delivers only what the latest request asked for.

    ``request(key, fn, *args, on_result=..., **kwargs)`` runs ``fn(*args, **kwargs)`` through
    :func:`start_job` (``fn`` gets ``control=`` if it has a parameter of that name; its events are
    batched and throttled as usual). The ``key`` names what is asked for (e.g. ``(model, image, layer)``);
    requests with equal keys ask for the same thing.

    - Nothing runs: the request starts now.
    - A job with an equal key runs and was not cancelled: nothing starts. The running job now serves the
      new request: its events and outcome go to the new request's callbacks (the older callbacks get
      nothing), and any waiting request is dropped.
    - A job with another key runs (or a cancelled one with any key): it is cancelled, and the request
      waits until that job has stopped, then starts. There is one waiting place: a newer request replaces
      the waiting one, which never starts (a held arrow key does not pile up work). Only one job runs at a
      time because jobs of one runner may share state, such as a model's forward hooks.

    Callbacks run on the GUI thread, and only for the latest request made: a superseded request's events,
    result or failure are dropped. ``on_cancelled`` is called for the latest request when :meth:`cancel`
    stopped it, once its job has stopped (or, if it was still waiting, once the job before it has), and
    when its function ended itself by raising ``Cancelled``; never for a superseded request. A failure
    with no ``on_failed`` is logged. ``busy_changed(bool)`` is emitted after the callbacks, when the runner
    starts or stops having work (it stays busy across the hand-over from a cancelled job to the waiting
    one). After :meth:`shutdown` nothing is delivered and nothing starts.
    """

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._run: _Run | None = None
        self._pending: _Request | None = None
        self._latest: _Request | None = None
        self._dropped: _Request | None = None  # the latest request, cancelled before it started
        self._closed = False
        self._busy_shown = False

    # -- the page's side -------------------------------------------------------------------------
    def request(
        self,
        key: Hashable,
        fn: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
        on_events: Callable[[list], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        name: str = "",
        **kwargs: Any,
    ) -> None:
        """Ask for ``fn(*args, **kwargs)`` under ``key``; see the class docstring. Ignored after shutdown.

        ``key`` must compare with ``==`` (a tuple of names and numbers). ``name`` (the job's, for
        messages about it) and the ``on_*`` callbacks are the runner's; they are not passed to ``fn``.
        """
        if self._closed:
            return
        request = _Request(key, fn, args, kwargs, name, on_result, on_failed, on_events, on_cancelled)
        self._latest = request
        self._dropped = None
        run = self._run
        if run is not None and not run.job.is_running:  # its outcome is being delivered: it has stopped
            run = None
        if run is None:
            self._pending = None
            self._start(request)
        elif run.request.key == key and run.job.is_running and not run.job.is_cancelled:
            self._pending = None  # what is under way is what is wanted
            run.request = request
        else:
            run.job.cancel()  # it may share hooks with the next one: that waits until this has stopped
            self._pending = request
        self._update_busy()

    def cancel(self) -> None:
        """Stop the running job and drop the waiting request (the user's Cancel)."""
        latest = self._latest
        running = self._run.request if self._run is not None else None
        if latest is not None and latest in (self._pending, running):
            latest.cancelled = True
        if self._pending is not None:
            if self._pending is latest:
                self._dropped = latest  # told it was cancelled when the job before it has stopped
            self._pending = None
        if self._run is not None:
            self._run.job.cancel()
        self._update_busy()

    def shutdown(self) -> None:
        """Cancel everything, deliver nothing more, and never start again (the page is closing)."""
        self._closed = True
        self.cancel()
        self._latest = None
        self._dropped = None

    @property
    def busy(self) -> bool:
        """A job runs (perhaps stopping) or a request waits."""
        return self._run is not None or self._pending is not None

    @property
    def latest_key(self) -> Hashable | None:
        """The key of the latest request, or None if there was none or it was cancelled."""
        latest = self._latest
        return None if latest is None or latest.cancelled else latest.key

    # -- internals --------------------------------------------------------------------------------
    def _start(self, request: _Request) -> None:
        job = start_job(request.fn, *request.args, name=request.name, **request.kwargs)
        run = _Run(job, request)
        # Connected before the event loop runs again, so before the job can emit anything.
        job.events.connect(functools.partial(self._on_events, run))
        job.result.connect(functools.partial(self._on_result, run))
        job.failed.connect(functools.partial(self._on_failed, run))
        job.cancelled.connect(functools.partial(self._on_cancelled, run))
        job.finished.connect(functools.partial(self._on_finished, run))
        self._run = run

    def _wanted(self, run: _Run) -> _Request | None:
        """The request this job's outcome is for, if it is still the latest and not cancelled."""
        request = run.request
        return request if request is self._latest and not request.cancelled else None

    def _on_events(self, run: _Run, events: list) -> None:
        request = self._wanted(run)
        if request is not None and request.on_events is not None:
            request.on_events(events)

    def _on_result(self, run: _Run, value: object) -> None:
        request = self._wanted(run)
        if request is not None and request.on_result is not None:
            request.on_result(value)

    def _on_failed(self, run: _Run, exc: BaseException) -> None:
        request = self._wanted(run)
        if request is None:
            return
        if request.on_failed is not None:
            request.on_failed(exc)
        else:  # nobody listens, but a failure must not vanish
            _log.error("%s failed: %s", run.job.name, getattr(exc, "__traceback_text__", repr(exc)))

    def _on_cancelled(self, run: _Run) -> None:
        request = run.request
        if request is self._latest and request.on_cancelled is not None:
            request.on_cancelled()

    def _on_finished(self, run: _Run) -> None:
        if self._run is run:
            self._run = None
        dropped, self._dropped = self._dropped, None
        if dropped is not None and dropped is self._latest and dropped.on_cancelled is not None:
            dropped.on_cancelled()
        if self._run is None and self._pending is not None and not self._closed:
            request, self._pending = self._pending, None  # (a callback above may have started one)
            self._start(request)
        self._update_busy()

    def _update_busy(self) -> None:
        # Compared with what was last emitted, so that callbacks calling request() or cancel() from inside
        # a delivery neither repeat nor miss a change.
        busy = self.busy
        if busy != self._busy_shown:
            self._busy_shown = busy
            if shiboken6.isValid(self):  # (the page that owned it may be gone while its last job ends)
                self.busy_changed.emit(busy)
