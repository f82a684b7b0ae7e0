"""The one-frame slot between a capture thread and the model: the newest frame wins, nothing queues.

A camera delivers frames at its own pace; a model takes as long as it takes. The capture side
:meth:`~LatestFrame.put` s every frame, replacing one the model has not taken yet (it is counted in
``dropped``); the model side :meth:`~LatestFrame.take` s the newest whenever it is free. So the model
always works on a recent frame and the lag stays bounded by about one pass, however slow the model.
"""

from __future__ import annotations

import threading
import time

from cnn_explorer.core.live.source import Frame

__all__ = ["LatestFrame"]


class LatestFrame:
    """A thread-safe single slot. Counters: ``captured`` (frames put), ``dropped`` (replaced unseen),
    ``taken``; ``closed`` once the capture side is done (or the consumer gave up)."""

    def __init__(self, *, ask_on_take: bool = True) -> None:
        """``ask_on_take=False``: a consumer that calls :meth:`ask` itself, when the next frame should be
        read (see :meth:`wait_asked`)."""
        self._cond = threading.Condition()
        self._unseen: Frame | None = None
        self._newest: Frame | None = None
        self.captured = 0
        self.dropped = 0
        self.taken = 0
        self.asked = 0  # frames asked for: one per take, or per ask() without ask_on_take
        self.ask_on_take = ask_on_take
        self.closed = False

    def put(self, frame: Frame) -> bool:
        """Offer ``frame``, replacing an unseen one. False (and nothing kept) once closed."""
        with self._cond:
            if self.closed:
                return False
            if self._unseen is not None:
                self.dropped += 1
            self._unseen = self._newest = frame
            self.captured += 1
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None) -> Frame | None:
        """The newest unseen frame, waiting up to ``timeout`` seconds (None: until one comes or the slot
        closes). None when none came in time, or when the slot is closed and holds nothing unseen (a frame
        put just before the close is still handed out: a file's last frame gets processed)."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._unseen is None and not self.closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            frame, self._unseen = self._unseen, None
            if frame is not None:
                self.taken += 1
                if self.ask_on_take:
                    self.asked += 1
                self._cond.notify_all()  # (a capture loop that waits for the slot to empty)
            return frame

    def ask(self) -> None:
        """Ask for the next frame now. A consumer that reads every frame of a file calls this when its
        multi-threaded work is done (the model's pass), so that decoding the next frame does not compete
        with it for the cores."""
        with self._cond:
            self.asked += 1
            self._cond.notify_all()

    def wait_asked(self, count: int, timeout: float | None = None) -> bool:
        """Wait until ``count`` frames were asked for (or the slot closed); True if they were."""
        with self._cond:
            return self._cond.wait_for(lambda: self.asked >= count or self.closed, timeout) and (
                self.asked >= count
            )

    def peek(self) -> Frame | None:
        """The newest frame put, seen or not, without consuming it (what Pause freezes)."""
        with self._cond:
            return self._newest

    @property
    def has_unseen(self) -> bool:
        with self._cond:
            return self._unseen is not None

    def wait_taken(self, timeout: float | None = None) -> bool:
        """Wait until the slot holds no unseen frame (or is closed); True if it is empty now."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unseen is None or self.closed, timeout) and (
                self._unseen is None
            )

    def close(self) -> None:
        """No more frames: wakes every waiting :meth:`take`."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __repr__(self) -> str:
        return (
            f"LatestFrame(captured={self.captured}, taken={self.taken}, dropped={self.dropped}, "
            f"closed={self.closed})"
        )
