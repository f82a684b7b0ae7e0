"""The GUI benchmarks' probe on the window's thread: a QApplication whose ``notify`` is timed.

Every event delivered at the top level (timers, queued slots such as a worker's result, layout, paint) is
timed; nested deliveries are inside their parent's time. The probe keeps the total (``busy``), the
deliveries longer than ``slow_s`` with when they ran (to attribute a stall), and per (phase, receiver
class, event type) the durations (where the time went). Used by bench_gui_stall.py and
bench_explorer_gui.py; create it before anything else makes a QApplication.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication


class ThreadClock:
    """The calling thread's scheduler clock on Linux (``/proc/thread-self/schedstat``): nanoseconds it
    has run on a core and nanoseconds it was ready but waited for one. Read it on the thread it is for
    (the first read opens the file); elsewhere ``read`` returns None."""

    def __init__(self) -> None:
        self._file = None
        self._available = os.path.exists("/proc/thread-self/schedstat")

    def read(self) -> tuple[int, int] | None:
        if not self._available:
            return None
        if self._file is None:
            self._file = open("/proc/thread-self/schedstat")  # noqa: SIM115 (read at every tick)
        self._file.seek(0)
        ran, waited, _ = self._file.read().split()
        return int(ran), int(waited)


def ran_and_waited(clock: dict[float, tuple[int, int]], since: float, until: float) -> str:
    """ "the window's thread ran X ms, waited Y ms for a core" between two ticks of a clock record."""
    if since not in clock or until not in clock:
        return ""
    ran = (clock[until][0] - clock[since][0]) / 1e6
    waited = (clock[until][1] - clock[since][1]) / 1e6
    return f"the window's thread ran {ran:.1f} ms, waited {waited:.1f} ms for a core"


class GcProbe:
    """Python's garbage collections in this process (any thread; the GIL is held throughout one):
    (start, end, generation) in perf_counter seconds."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((self._start, time.perf_counter(), int(info["generation"])))

    def inside(self, since: float, until: float) -> tuple[float, int] | None:
        """The longest collection overlapping [since, until]: (seconds inside, generation)."""
        hits = [(min(e, until) - max(b, since), g) for b, e, g in self.pauses if e > since and b < until]
        return max(hits) if hits else None


class TimedApplication(QApplication):
    def __init__(self, argv: list[str], slow_s: float = 0.002) -> None:
        super().__init__(argv)
        self.busy = 0.0  # seconds spent delivering events, in total
        self.slow_s = slow_s
        self.slow: list[tuple[float, float, str, str]] = []  # (start, end, receiver, event) perf_counter s
        self.totals: dict[tuple[str, str, str], list[float]] = {}  # (phase, receiver, event): durations
        self.phase = ""  # what the benchmark is measuring now (the key of ``totals``)
        self.gc = GcProbe()
        self._depth = 0

    def notify(self, receiver: QObject, event: QEvent) -> bool:
        if self._depth:
            return super().notify(receiver, event)
        self._depth += 1
        start = time.perf_counter()
        try:
            return super().notify(receiver, event)
        finally:
            end = time.perf_counter()
            self._depth -= 1
            self.busy += end - start
            key = (self.phase, type(receiver).__name__, event.type().name)
            self.totals.setdefault(key, []).append(end - start)
            if end - start >= self.slow_s:
                self.slow.append((start, end, key[1], key[2]))

    def longest_delivery(self, since: float, until: float) -> tuple[float, str, str] | None:
        """The longest delivery overlapping [since, until] (its seconds inside), receiver and event."""
        inside = [
            (min(e, until) - max(b, since), r, k) for b, e, r, k in self.slow if e > since and b < until
        ]
        return max(inside) if inside else None

    def consumers(self, phase_suffix: str, n: int = 8) -> list[str]:
        """The event kinds that took the thread's time in the phases ending with ``phase_suffix``."""
        merged: dict[tuple[str, str], list[float]] = {}
        for (phase, receiver, kind), times in self.totals.items():
            if phase.endswith(phase_suffix):
                merged.setdefault((receiver, kind), []).extend(times)
        rows = sorted(merged.items(), key=lambda kv: -sum(kv[1]))[:n]
        return [
            f"  {kind + ' to ' + receiver:<44} {len(t):>6} times, {1000 * sum(t):7.0f} ms in all, "
            f"median {1000 * statistics.median(t):5.2f} ms, max {1000 * max(t):5.1f} ms"
            for (receiver, kind), t in rows
        ]
