"""The "latest request wins" runner: one job at a time, one waiting request, only the latest is delivered."""

from __future__ import annotations

import threading

import pytest

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.qt import workers
from cnn_explorer.qt.workers import LatestRunner


class Log:
    """What the worker functions did (appended from worker threads) and what the callbacks received."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.got: list[tuple[str, object]] = []

    def callbacks(self, tag: str) -> dict:
        return {
            "on_result": lambda value: self.got.append((f"{tag} result", value)),
            "on_failed": lambda exc: self.got.append((f"{tag} failed", str(exc))),
            "on_events": lambda events: self.got.append((f"{tag} events", list(events))),
            "on_cancelled": lambda: self.got.append((f"{tag} cancelled", None)),
        }


def held(tag: str, gate: threading.Event, log: Log, control: Control) -> str:
    """Runs until the test opens the gate, stopping promptly when cancelled."""
    log.started.append(tag)
    while not gate.wait(0.005):
        checkpoint(control)
    return tag


def deaf(tag: str, gate: threading.Event, log: Log) -> str:
    """Like ``held``, but never looks at its control: a cancelled one still runs to its end."""
    log.started.append(tag)
    gate.wait(10)
    return tag


def quick(tag: str, log: Log) -> str:
    log.started.append(tag)
    return tag


def reports(tag: str, gate: threading.Event, log: Log, control: Control) -> str:
    log.started.append(tag)
    control.report(f"{tag} begins")
    while not gate.wait(0.005):
        checkpoint(control)
    control.report(f"{tag} ends")
    return tag


def broken(tag: str, log: Log) -> None:
    log.started.append(tag)
    raise ValueError(f"{tag}: the kernel is larger than the image")


@pytest.fixture
def runner(qtbot):
    runner = LatestRunner()
    yield runner
    runner.shutdown()
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)


def watch_busy(runner: LatestRunner) -> list[bool]:
    busy: list[bool] = []
    runner.busy_changed.connect(busy.append)
    return busy


def idle(qtbot, runner: LatestRunner) -> None:
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)


def test_a_request_runs_off_the_gui_thread_and_delivers_its_result(qtbot, runner):
    log = Log()
    busy = watch_busy(runner)
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda now: not now, timeout=5000):
        runner.request("a", quick, "a", log, **log.callbacks("a"))
        assert runner.busy and runner.latest_key == "a"
    assert log.got == [("a result", "a")]
    assert busy == [True, False]
    assert runner.latest_key == "a"


def test_a_stale_result_is_dropped(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", deaf, "a", gate, log, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.request("b", quick, "b", log, **log.callbacks("b"))
    assert log.started == ["a"]  # b waits: a job that ignores its control still holds the runner
    gate.set()
    idle(qtbot, runner)
    assert log.started == ["a", "b"]
    assert log.got == [("b result", "b")]  # a finished, but nobody wants its result any more


def test_rapid_requests_run_only_the_running_one_and_the_last(qtbot, runner):
    log = Log()
    busy = watch_busy(runner)
    gate = threading.Event()
    runner.request("k0", held, "k0", gate, log, **log.callbacks("k0"))
    qtbot.waitUntil(lambda: log.started == ["k0"])
    for i in range(1, 10):  # a held arrow key
        runner.request(f"k{i}", quick, f"k{i}", log, **log.callbacks(f"k{i}"))
    assert runner.latest_key == "k9"
    idle(qtbot, runner)
    assert log.started == ["k0", "k9"]
    assert log.got == [("k9 result", "k9")]
    assert busy == [True, False]  # busy throughout the hand-over


def test_the_same_key_while_it_runs_is_not_restarted_and_gets_the_result(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", reports, "first", gate, log, **log.callbacks("first"))
    qtbot.waitUntil(lambda: ("first events", ["first begins"]) in log.got)
    runner.request("a", reports, "second", gate, log, **log.callbacks("second"))
    gate.set()
    idle(qtbot, runner)
    assert log.started == ["first"]
    # The running job now serves the newer request: its later events and its result go there.
    assert log.got == [
        ("first events", ["first begins"]),
        ("second events", ["first ends"]),
        ("second result", "first"),
    ]


def test_the_same_key_after_a_switch_away_runs_again(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", held, "a1", gate, log, **log.callbacks("a1"))
    qtbot.waitUntil(lambda: log.started == ["a1"])
    runner.request("b", quick, "b", log, **log.callbacks("b"))  # a1 is cancelled now
    runner.request("a", quick, "a2", log, **log.callbacks("a2"))  # so a cancelled a1 cannot serve it
    idle(qtbot, runner)
    assert log.started == ["a1", "a2"]
    assert log.got == [("a2 result", "a2")]


def test_a_request_made_from_a_result_callback_runs(qtbot, runner):
    log = Log()
    runs = iter(["again", None])

    def on_result(value: str) -> None:
        log.got.append(("result", value))
        tag = next(runs)
        if tag is not None:
            runner.request("a", quick, tag, log, on_result=on_result)  # same key: the job is done

    runner.request("a", quick, "first", log, on_result=on_result)
    qtbot.waitUntil(lambda: len(log.got) == 2, timeout=5000)
    idle(qtbot, runner)
    assert log.started == ["first", "again"]
    assert log.got == [("result", "first"), ("result", "again")]


def test_a_request_from_a_result_callback_starts_before_the_callback_returns(qtbot, runner):
    """A live frame's job starts while the frame before is painted, not after."""
    log = Log()
    started_while_painting: list[bool] = []

    def on_result(value: str) -> None:
        log.got.append(("result", value))
        if value == "first":
            runner.request("b", quick, "second", log, on_result=on_result)
            assert "second" in log.started or runner.busy  # started (or starting) at once, not queued
            qtbot.waitUntil(lambda: "second" in log.started, timeout=5000)  # ("painting" meanwhile)
            started_while_painting.append(True)

    runner.request("a", quick, "first", log, on_result=on_result)
    qtbot.waitUntil(lambda: len(log.got) == 2, timeout=10_000)
    idle(qtbot, runner)
    assert started_while_painting == [True]
    assert log.got == [("result", "first"), ("result", "second")]


def test_a_failure_reaches_on_failed_of_the_latest_request(qtbot, runner):
    log = Log()
    busy = watch_busy(runner)
    runner.request("a", broken, "a", log, **log.callbacks("a"))
    idle(qtbot, runner)
    assert log.got == [("a failed", "a: the kernel is larger than the image")]
    assert busy == [True, False]


def test_a_superseded_failure_is_dropped(qtbot, runner):
    log = Log()
    gate = threading.Event()

    def fails_later(control: Control) -> None:
        log.started.append("a")
        while not gate.wait(0.005):
            checkpoint(control)

    runner.request("a", fails_later, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.request("b", broken, "b", log, **log.callbacks("b"))
    idle(qtbot, runner)
    assert log.got == [("b failed", "b: the kernel is larger than the image")]


def test_cancel_tells_the_running_latest_request_and_nobody_else(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", held, "a", gate, log, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.cancel()
    assert runner.latest_key is None
    idle(qtbot, runner)
    assert log.got == [("a cancelled", None)]


def test_cancel_drops_the_waiting_request(qtbot, runner):
    log = Log()
    busy = watch_busy(runner)
    gate = threading.Event()
    runner.request("a", held, "a", gate, log, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.request("b", quick, "b", log, **log.callbacks("b"))
    runner.cancel()
    idle(qtbot, runner)
    assert log.started == ["a"]  # b never started
    assert log.got == [("b cancelled", None)]  # the latest request hears; the superseded a does not
    assert busy == [True, False]


def test_a_request_after_cancel_runs_once_the_cancelled_job_has_stopped(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", held, "a", gate, log, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.cancel()
    runner.request("a", quick, "a again", log, **log.callbacks("a again"))
    idle(qtbot, runner)
    assert log.started == ["a", "a again"]
    assert log.got == [("a again result", "a again")]


def test_shutdown_leaves_nothing_running_and_starts_nothing_more(qtbot, runner):
    log = Log()
    gate = threading.Event()
    runner.request("a", held, "a", gate, log, **log.callbacks("a"))
    qtbot.waitUntil(lambda: log.started == ["a"])
    runner.request("b", quick, "b", log, **log.callbacks("b"))
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda now: not now, timeout=5000):
        runner.shutdown()
    assert workers.active_jobs() == []
    runner.request("c", quick, "c", log, **log.callbacks("c"))
    assert not runner.busy
    assert log.started == ["a"]
    assert log.got == []  # a page that is closing gets no callbacks
