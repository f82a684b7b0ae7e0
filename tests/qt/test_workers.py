"""The worker layer: runs off the GUI thread, reports progress in order and throttled, cancels, joins."""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time

import pytest
from PySide6.QtCore import QThread

from cnn_explorer.core.control import Control
from cnn_explorer.qt import workers


def _count_to(n: int, delay: float = 0.0):
    for i in range(n):
        if delay:
            time.sleep(delay)
        yield i
    return "counted"


def test_generator_job_reports_every_event_in_order_and_returns(qtbot):
    job = workers.start_job(_count_to, 2000)
    batches: list[list] = []
    job.events.connect(batches.append)
    with qtbot.waitSignal(job.result, timeout=10_000) as result:
        pass
    assert result.args == ["counted"]
    assert [e for b in batches for e in b] == list(range(2000))
    assert len(batches) < 2000  # batched, not one signal per event
    qtbot.waitUntil(lambda: not job.is_running)
    assert workers.active_jobs() == []


def test_events_arrive_at_most_about_20_times_a_second(qtbot):
    job = workers.start_job(_count_to, 300, 0.002)  # ~0.6 s of steady events
    stamps: list[float] = []
    job.events.connect(lambda _b: stamps.append(time.monotonic()))
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # The last batch is flushed at completion without waiting for the timer; every other gap is throttled.
    assert len(gaps) > 5 and min(gaps[:-1]) >= workers.MIN_EVENT_GAP_S - 0.001


def test_function_runs_off_the_gui_thread_and_reports_through_control(qtbot):
    main = threading.get_ident()

    def work(x: int, control: Control) -> tuple[int, bool]:
        control.report("halfway")
        return x * 2, threading.get_ident() != main

    job = workers.start_job(work, 21)
    seen: list = []
    job.events.connect(seen.extend)
    with qtbot.waitSignal(job.result, timeout=5000) as result:
        pass
    assert result.args == [(42, True)]
    assert seen == ["halfway"]


def test_cancel_stops_a_long_job_and_emits_cancelled_not_result(qtbot):
    job = workers.start_job(_count_to, 10_000_000, 0.001)
    got_result = []
    job.result.connect(got_result.append)
    qtbot.waitUntil(lambda: job.is_running)
    with qtbot.waitSignals([job.cancelled, job.finished], timeout=5000, order="strict"):
        job.cancel()
    assert got_result == []
    assert job.outcome == "cancelled"
    assert not job._thread.isRunning()


def test_failure_reaches_the_gui_with_its_message(qtbot):
    def broken() -> None:
        raise ValueError("the kernel is larger than the image")

    job = workers.start_job(broken)
    with qtbot.waitSignal(job.failed, timeout=5000) as failed:
        pass
    assert isinstance(failed.args[0], ValueError)
    assert "larger than the image" in str(failed.args[0])


def test_pause_holds_and_resume_continues(qtbot):
    job = workers.start_job(_count_to, 400, 0.002)
    seen: list = []
    job.events.connect(seen.extend)
    qtbot.waitUntil(lambda: len(seen) > 5, timeout=5000)
    job.pause()
    qtbot.wait(150)  # let any in-flight batch land
    held = len(seen)
    qtbot.wait(300)
    assert len(seen) <= held + 1
    job.resume()
    with qtbot.waitSignal(job.finished, timeout=10_000):
        pass
    assert seen == list(range(400))


def test_job_slot_cancels_the_stale_job(qtbot):
    slot = workers.JobSlot()
    first = slot.start(_count_to, 10_000_000, 0.001)
    second = slot.start(_count_to, 3)
    assert slot.is_current(second) and not slot.is_current(first)
    with qtbot.waitSignals([first.finished, second.finished], timeout=5000):
        pass
    assert first.outcome == "cancelled" and second.outcome == "result"


def test_shutdown_joins_everything(qtbot):
    jobs = [workers.start_job(_count_to, 10_000_000, 0.001) for _ in range(3)]
    qtbot.waitUntil(lambda: all(j._thread.isRunning() for j in jobs))
    assert workers.shutdown(timeout_ms=5000) == []
    assert all(not j._thread.isRunning() for j in jobs)
    assert workers.active_jobs() == []


@pytest.mark.parametrize("n", [1])
def test_no_thread_is_left_running(qtbot, n):
    job = workers.start_job(_count_to, n)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert not job._thread.isRunning()
    assert isinstance(job._thread, QThread)


# -- jobs in a child process (training runs there so the window never waits for the GIL) -----------
def _pid_and_count(n: int, delay: float = 0.0):
    import os

    for i in range(n):
        if delay:
            time.sleep(delay)
        yield (os.getpid(), i)
    return os.getpid()


def _fails_in_child() -> None:
    raise ValueError("the dataset folder is empty")


def test_process_job_runs_in_another_process_and_relays_events_in_order(qtbot):
    import os

    job = workers.start_process_job(_pid_and_count, 500)
    seen: list = []
    job.events.connect(seen.extend)
    with qtbot.waitSignal(job.result, timeout=60_000) as result:
        pass
    child = result.args[0]
    assert child != os.getpid()
    assert [i for _, i in seen] == list(range(500))
    assert {pid for pid, _ in seen} == {child}
    qtbot.waitUntil(lambda: not job._thread.process.is_alive(), timeout=10_000)


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities here")
def test_process_job_runs_at_a_lower_priority_than_the_window(qtbot):
    job = workers.start_process_job(_niceness)
    with qtbot.waitSignal(job.result, timeout=60_000) as result:
        pass
    assert result.args[0] == min(19, _niceness() + workers.PROCESS_NICENESS)


def test_process_job_pause_resume_and_cancel(qtbot):
    job = workers.start_process_job(_pid_and_count, 100_000, 0.002)
    seen: list = []
    job.events.connect(seen.extend)
    qtbot.waitUntil(lambda: len(seen) > 5, timeout=60_000)
    job.pause()
    qtbot.wait(300)
    held = len(seen)
    qtbot.wait(400)
    assert len(seen) <= held + 2
    job.resume()
    qtbot.waitUntil(lambda: len(seen) > held + 20, timeout=10_000)
    with qtbot.waitSignals([job.cancelled, job.finished], timeout=10_000, order="strict"):
        job.cancel()
    assert job.outcome == "cancelled"
    assert not job._thread.process.is_alive()


def test_process_job_failure_arrives_as_the_original_exception(qtbot):
    job = workers.start_process_job(_fails_in_child)
    with qtbot.waitSignal(job.failed, timeout=60_000) as failed:
        pass
    assert isinstance(failed.args[0], ValueError)
    assert "dataset folder is empty" in str(failed.args[0])


def test_process_job_that_cannot_start_fails_cleanly(qtbot):
    job = workers.start_process_job(_pid_and_count, threading.Lock())  # a lock cannot be pickled
    with qtbot.waitSignal(job.failed, timeout=60_000) as failed:
        pass
    assert "could not start the worker process" in str(failed.args[0])


def test_shutdown_stops_worker_processes(qtbot):
    job = workers.start_process_job(_pid_and_count, 10_000_000, 0.001)
    qtbot.waitUntil(lambda: job._thread.process.is_alive(), timeout=30_000)
    assert workers.shutdown(timeout_ms=30_000) == []
    assert not job._thread.process.is_alive()


def _thread_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own priority on Linux")
def test_a_worker_thread_runs_below_the_window_thread_s_priority(qtbot):
    """With every core busy (a training), the window's thread gets a core before its own workers."""
    job = workers.start_job(_thread_niceness)
    with qtbot.waitSignal(job.result, timeout=60_000) as result:
        pass
    window = _thread_niceness()
    assert result.args[0] == min(19, window + workers.THREAD_NICENESS)
    assert _thread_niceness() == window  # (the window's thread itself is left as it was)


def test_the_app_hands_the_gil_back_quickly_and_freezes_its_start_up_objects():
    import gc

    from cnn_explorer.qt.app import GIL_SWITCH_INTERVAL_S, freeze_startup_objects, make_app

    make_app()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    try:
        assert freeze_startup_objects() > 10_000  # (torch and Qt alone hold many more)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()  # (the test process goes on creating and dropping windows)
