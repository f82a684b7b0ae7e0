"""A worker process ends itself when the process that started it is gone (core.control.watch_parent):
it is not a daemon, so that it may start DataLoader workers, and must still not outlive the window."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

from cnn_explorer.core.control import Cancelled, Control, serve_job, watch_parent


def test_a_gone_parent_cancels_first_then_ends_the_process_after_the_grace():
    control, seen, ended = Control(), [], threading.Event()
    answers = iter([True, True, False])

    def end(code: int) -> None:
        seen.append(("end", code, control.cancelled))
        ended.set()

    start = time.monotonic()
    thread = watch_parent(control, alive=lambda _t: next(answers), grace_s=0.2, end=end)
    assert ended.wait(5)
    thread.join(5)
    assert seen == [("end", 1, True)]  # cancelled before it ended: a run saves its checkpoint
    assert time.monotonic() - start >= 0.2


def test_a_living_parent_is_left_alone():
    control, ended = Control(), threading.Event()
    watch_parent(control, grace_s=0.0, poll_s=0.05, end=lambda _code: ended.set())  # the real check
    assert not ended.wait(0.3)
    assert not control.cancelled


# -- a real orphan: the process between the test and the worker dies without a word -----------------
def _wait_for_cancel(marker: str, control: Control) -> None:
    Path(marker).write_text("started")
    try:
        while True:
            control.checkpoint()
            time.sleep(0.02)
    except Cancelled:
        Path(marker).write_text("cancelled")  # where a run would save last.pt
        raise


def _start_worker_then_die(pid_file: str, marker: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    # kept in locals: Process.start() drops its arguments, and a lost queue unlinks its semaphores
    queue, cancel, running = ctx.Queue(), ctx.Event(), ctx.Event()
    running.set()
    worker = ctx.Process(
        target=serve_job, args=(_wait_for_cancel, (marker,), {}, queue, cancel, running), daemon=False
    )
    worker.start()
    Path(pid_file).write_text(str(worker.pid))
    deadline = time.monotonic() + 60
    while not Path(marker).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os._exit(0)  # as a window that crashed or was killed: no clean-up, no join


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in state  # exited (a zombie, until whoever adopted it reaps it)


def test_an_orphaned_worker_saves_and_ends(tmp_path: Path):
    pid_file, marker = tmp_path / "pid", tmp_path / "marker"
    middle = multiprocessing.get_context("spawn").Process(
        target=_start_worker_then_die, args=(str(pid_file), str(marker))
    )
    middle.start()
    middle.join(90)
    assert middle.exitcode == 0
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while not (_gone(pid) and marker.read_text() == "cancelled") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "cancelled"
    assert _gone(pid), "the worker outlived its parent"
