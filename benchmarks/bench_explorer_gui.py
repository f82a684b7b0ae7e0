"""How long the network explorer blocks the GUI thread while the user steps through layers.

    python benchmarks/bench_explorer_gui.py [--steps 40] [--start 0]

Builds the real MainWindow offscreen (its QSettings in a temporary folder), waits until it has run
EfficientNet-Lite0 on the sample cat, then steps through the layers three ways:

- "step": one ↓ at a time, each waited for until the new layer is shown and painted;
- "back": the same layers again, stepping up (views seen a moment ago);
- "hold": ↓ held down (a step every 33 ms, like key auto-repeat) through the next layers, then the
  time until the last one is painted.

For each step, from the step call until the layer is shown and painted:

- "cpu": the GUI thread's own CPU time (``time.thread_time``): every slot, layout and paint, but not the
  worker's time nor time spent waiting for the worker to let go of Python's GIL;
- "busy": wall time spent delivering events (``QApplication.notify``: timers, queued slots such as a
  worker's result, layout and paint events) plus the step call, which does include GIL waits and the
  GUI thread being descheduled on a busy machine;
- "shown": wall time until painted, the latency the user sees (includes the worker's time).

A 5 ms QTimer heartbeat runs throughout; its longest gap is the longest stall a user would feel.

Then compare mode against single mode, interleaved over ``--rounds`` rounds: the same layers stepped
one at a time from scratch (kept views forgotten first), once with A alone and once with A | B (B: the
same architecture from the zoo, as when comparing a run with its pretrained start). Printed as the ratio
of the medians, compare / single.

Targets (the explorer issue): longest stall while holding ↓ < 50 ms; median time until a first-visit
layer is shown < 40 ms; compare-mode stepping ≤ 1.6 × single mode. The performance issue: longest stall
stepping to a layer seen before < 16 ms (one frame at 60 Hz). For the longest stall of each phase the
longest event delivery inside it is printed (``gui_probe``): the window's own work, or waiting.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

from gui_probe import ThreadClock, TimedApplication, ran_and_waited
from PySide6.QtCore import QAbstractEventDispatcher, QSettings, Qt, QTimer

from cnn_explorer.qt.app import make_app, wait_until

STALL_TARGET_MS = 50.0
SEEN_STALL_TARGET_MS = 16.0  # a layer already seen: its view is kept, only painting is left
FIRST_VISIT_TARGET_MS = 40.0
COMPARE_TARGET = 1.6
HOLD_INTERVAL_MS = 33  # key auto-repeat is ~30 per second


class LoopMonitor:
    """Counts the times the event loop ran out of work, and runs a 5 ms heartbeat."""

    def __init__(self) -> None:
        self.blocks = 0  # times the loop ran out of work (everything posted, paints included, is done)
        QAbstractEventDispatcher.instance().aboutToBlock.connect(self._about_to_block)
        self.ticks: list[float] = []
        self.clock: dict[float, tuple[int, int]] = {}  # the GUI thread's scheduler clock at each tick
        self._thread_clock = ThreadClock()
        self.heartbeat = QTimer()
        self.heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
        self.heartbeat.setInterval(5)
        self.heartbeat.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.ticks.append(now)
        reading = self._thread_clock.read()
        if reading is not None:
            self.clock[now] = reading

    def _about_to_block(self) -> None:
        self.blocks += 1

    def max_gap_ms(self, since: float, until: float) -> float:
        return self.max_gap(since, until)[0]

    def max_gap(self, since: float, until: float) -> tuple[float, float, float]:
        """The longest gap between ticks in [since, until]: (ms, from, to)."""
        ticks = [t for t in self.ticks if since <= t <= until]
        if len(ticks) < 2:
            return float("nan"), since, until
        a, b = max(itertools.pairwise(ticks), key=lambda p: p[1] - p[0])
        return 1000 * (b - a), a, b


def what_stalled(app: TimedApplication, monitor: LoopMonitor, gap: tuple[float, float, float]) -> str:
    """The longest delivery inside a gap, and (on Linux) how long the window's thread ran in it and how
    long it waited for a core; the rest of a gap is up to one heartbeat interval before its work began,
    or the thread blocked."""
    _ms, since, until = gap
    inside = app.longest_delivery(since, until)
    clock = ran_and_waited(monitor.clock, since, until)
    if inside is None:
        text = "no delivery over 2 ms in it"
    else:
        busy, receiver, kind = inside
        text = f"its longest delivery {1000 * busy:.1f} ms, {kind} to {receiver}"
    return f"{text}; {clock}" if clock else text


def wait_painted(monitor: LoopMonitor, busy: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Run the loop until the page is idle and the loop has then run out of work once (painted)."""
    if not wait_until(lambda: not busy(), timeout_s, poll_ms=1):
        raise TimeoutError("the page stayed busy")
    blocks = monitor.blocks
    wait_until(lambda: monitor.blocks > blocks + 1, timeout_s, poll_ms=1)


def summary(values: list[float]) -> str:
    v = sorted(values)
    p90 = v[min(len(v) - 1, round(0.9 * (len(v) - 1)))]
    return f"median {statistics.median(v):6.1f}  p90 {p90:6.1f}  max {v[-1]:6.1f}"


def step_one_at_a_time(app, page, monitor: LoopMonitor, busy, delta: int, steps: int) -> dict:
    call_ms, cpu_ms, busy_ms, latency_ms = [], [], [], []
    start = time.perf_counter()
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.thread_time()
        page.step_layer(delta)
        call = time.perf_counter() - t0
        b0 = app.busy
        wait_painted(monitor, busy)
        t1 = time.perf_counter()
        cpu_ms.append(1000 * (time.thread_time() - c0))
        call_ms.append(1000 * call)
        latency_ms.append(1000 * (t1 - t0))
        busy_ms.append(1000 * (call + app.busy - b0))
    return {
        "call": call_ms,
        "cpu": cpu_ms,
        "busy": busy_ms,
        "latency": latency_ms,
        "gap": monitor.max_gap_ms(start, time.perf_counter()),
        "gap_at": monitor.max_gap(start, time.perf_counter()),
    }


def hold_key(app, page, monitor: LoopMonitor, busy, steps: int) -> dict:
    call_ms: list[float] = []
    remaining = [steps]
    timer = QTimer()
    timer.setInterval(HOLD_INTERVAL_MS)

    def press() -> None:
        if remaining[0] <= 0:
            timer.stop()
            return
        remaining[0] -= 1
        t0 = time.perf_counter()
        page.step_layer(1)
        call_ms.append(1000 * (time.perf_counter() - t0))

    timer.timeout.connect(press)
    start, b0, c0 = time.perf_counter(), app.busy, time.thread_time()
    timer.start()
    wait_until(lambda: remaining[0] <= 0, 120, poll_ms=1)
    released = time.perf_counter()
    wait_painted(monitor, busy)
    end = time.perf_counter()
    cpu = time.thread_time() - c0
    return {
        "cpu_total": 1000 * cpu,
        "call": call_ms,
        "busy_total": 1000 * (app.busy - b0),
        "wall": 1000 * (end - start),
        "settle": 1000 * (end - released),
        "gap": monitor.max_gap_ms(start, end),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="layers stepped in each phase (default 40)")
    parser.add_argument("--start", type=int, default=0, help="layer to start from (default 0)")
    parser.add_argument("--rounds", type=int, default=3, help="single/compare rounds (default 3)")
    parser.add_argument("--compare-steps", type=int, default=20, help="layers per compare round")
    args = parser.parse_args()

    TimedApplication([])
    app = make_app()
    from cnn_explorer.qt.main_window import MainWindow

    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings)
        window._dialogs_enabled = False
        window.resize(1400, 900)
        window.show()
        page = next(p for p in window.pages if type(p).__name__ == "NetworkPage")
        window.show_page(window.pages.index(page))
        t0 = time.perf_counter()
        ready = wait_until(
            lambda: (
                window.current_image is not None and not window.is_busy() and page.exploration is not None
            ),
            300,
        )
        if not ready or page.loaded is None:
            raise SystemExit("the explorer did not get ready in time")
        print(
            f"{page.loaded.info.title} on {window.current_image.path.name}: ready after "
            f"{time.perf_counter() - t0:.1f} s; {len(page.rows)} layers; window "
            f"{window.width()}×{window.height()}"
        )
        monitor = LoopMonitor()
        monitor.heartbeat.start()
        busy = window.is_busy
        page.set_layer(args.start)
        wait_painted(monitor, busy)
        wait_until(lambda: False, 0.3)

        steps = min(args.steps, len(page.rows) - 1 - args.start)
        fwd = step_one_at_a_time(app, page, monitor, busy, +1, steps)
        back = step_one_at_a_time(app, page, monitor, busy, -1, steps)
        page.set_layer(args.start + steps)
        wait_painted(monitor, busy)
        hold_steps = min(steps, len(page.rows) - 1 - page.layer_index)
        hold = hold_key(app, page, monitor, busy, hold_steps)
        last = page.current_row.name if page.current_row is not None else "?"
        rounds = compare_rounds(app, page, monitor, busy, args)
        monitor.heartbeat.stop()
        window.close()
        app.processEvents()

    print(
        f"\nGUI-thread cost per step, ms (step call + until the layer is shown and painted), {steps} steps:"
    )
    for label, res in (("step ↓ (first visit)", fwd), ("step ↑ (seen before)", back)):
        print(f"  {label:<22} call   {summary(res['call'])}")
        print(f"  {'':<22} cpu    {summary(res['cpu'])}")
        print(f"  {'':<22} busy   {summary(res['busy'])}")
        print(f"  {'':<22} shown  {summary(res['latency'])}   (wall time until painted)")
        print(
            f"  {'':<22} longest stall (heartbeat gap) {res['gap']:.1f} ms; "
            f"{what_stalled(app, monitor, res['gap_at'])}"
        )
    print(
        f"  {'hold ↓ (' + str(hold_steps) + ' steps)':<22} call   {summary(hold['call'])}\n"
        f"  {'':<22} GUI cpu {hold['cpu_total']:.0f} ms, busy {hold['busy_total']:.0f} ms, of "
        f"{hold['wall']:.0f} ms; last layer ({last}) "
        f"painted {hold['settle']:.0f} ms after the key was released\n"
        f"  {'':<22} longest stall (heartbeat gap) {hold['gap']:.1f} ms"
    )
    worst = max(fwd["gap"], back["gap"], hold["gap"])
    verdict = "within" if worst < STALL_TARGET_MS else "ABOVE"
    print(f"\nLongest stall overall: {worst:.1f} ms ({verdict} the {STALL_TARGET_MS:.0f} ms target)")

    print(
        f"\nCompare mode vs single mode, {args.rounds} interleaved rounds of {args.compare_steps} "
        "first visits:"
    )
    ratios = {}
    for key, label in (("latency", "shown"), ("busy", "busy"), ("cpu", "cpu")):
        single = [statistics.median(r["single"][key]) for r in rounds]
        compare = [statistics.median(r["compare"][key]) for r in rounds]
        ratios[key] = statistics.median(c / s for c, s in zip(compare, single, strict=True))
        print(
            f"  {label:<6} single median {statistics.median(single):6.1f} ms, compare median "
            f"{statistics.median(compare):6.1f} ms, ratio {ratios[key]:.2f}"
        )
    gaps = [r["compare"]["gap"] for r in rounds]
    print(f"  longest stall in compare mode {max(gaps):.1f} ms")

    first = statistics.median(fwd["latency"])
    print("\nTargets:")
    print(f"  longest stall while holding ↓: {hold['gap']:.1f} ms (target < {STALL_TARGET_MS:.0f})")
    print(
        f"  longest stall stepping to a layer seen before: {back['gap']:.1f} ms "
        f"(target < {SEEN_STALL_TARGET_MS:.0f}: one frame at 60 Hz)"
    )
    print(f"  median first-visit layer shown: {first:.1f} ms (target < {FIRST_VISIT_TARGET_MS:.0f})")
    print(f"  compare / single stepping (shown): {ratios['latency']:.2f} (target ≤ {COMPARE_TARGET})")


def compare_rounds(app, page, monitor: LoopMonitor, busy, args) -> list[dict]:
    """Single and compare mode over the same layers, each from scratch, alternating."""
    from cnn_explorer.core.explorer.session import Side
    from cnn_explorer.core.explorer.tasks import ModelSource

    start = max(1, len(page.rows) // 3)
    steps = min(args.compare_steps, len(page.rows) - 1 - start)
    out = []
    for _ in range(args.rounds):
        result = {}
        for mode in ("single", "compare"):
            if mode == "compare":
                page.compare_with(ModelSource.zoo(page.loaded.info.name))
            else:
                page.session.close_compare()
            wait_painted(monitor, busy)
            page.set_layer(start)
            wait_painted(monitor, busy)
            for side in page.session.active_sides():
                page.sides[Side(side)].forget_views()
            result[mode] = step_one_at_a_time(app, page, monitor, busy, +1, steps)
        out.append(result)
    page.session.close_compare()
    return out


if __name__ == "__main__":
    main()
