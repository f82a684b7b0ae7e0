"""One bounded least-recently-used cache for what the explorer keeps: models, captures, CAMs, views.

Bounded by a number of items and, optionally, by bytes. Captured activations of a big network can take
hundreds of megabytes each, so a count alone would not keep memory in check; a model's size may be
unknown, so bytes alone would not either. Used from one thread (the GUI's session); not thread-safe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def nbytes_of(value: object) -> int:
    """The default size: a value's ``nbytes`` (numpy arrays, torch tensors, views adding theirs up), or 0."""
    return int(getattr(value, "nbytes", 0) or 0)


class BoundedCache(Generic[K, V]):
    """A mapping that forgets its least recently used items when it holds more than it may.

    ``put`` evicts from the least recent end until at most ``max_items`` remain and their sizes add up to
    at most ``max_bytes``, but it never evicts the item just put: a value bigger than the whole budget is
    still kept, alone, so the one being shown is at hand. ``sizeof`` is called once per ``put``; the size
    is remembered, so values are not re-measured and an update replaces the old size.

    ``on_evict(key, value)`` is called for each value the cache lets go of without handing it back:
    evicted by the limits, replaced by a ``put`` of another object under its key, or removed by
    ``discard`` or ``clear`` (for instance to remove a model's hooks). Not for ``pop``, which returns
    the value to the caller. It is called once the cache is consistent again, so it may use the cache.
    """

    def __init__(
        self,
        max_items: int,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, not {max_items}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._sizeof: Callable[[V], int] = sizeof if sizeof is not None else nbytes_of
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()  # least recent first
        self._nbytes = 0

    # -- reading -------------------------------------------------------------------------------
    def get(self, key: K, default: V | None = None) -> V | None:
        """The value under ``key`` (now the most recent), or ``default``."""
        entry = self._items.get(key)
        if entry is None:
            return default
        self._items.move_to_end(key)
        return entry[0]

    def __contains__(self, key: object) -> bool:
        return key in self._items  # a look, not a use: the order stays

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        """The keys, least recently used first."""
        return list(self._items)

    @property
    def nbytes(self) -> int:
        """The sizes of the values held, added up (as ``sizeof`` measured them when they were put)."""
        return self._nbytes

    # -- writing -------------------------------------------------------------------------------
    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key`` as the most recent item; evict the least recent over the limits."""
        size = int(self._sizeof(value))
        if size < 0:
            raise ValueError(f"sizeof gave a negative size ({size}) for {key!r}")
        let_go: list[tuple[K, V]] = []
        old = self._items.pop(key, None)
        if old is not None:
            self._nbytes -= old[1]
            if old[0] is not value:
                let_go.append((key, old[0]))
        self._items[key] = (value, size)
        self._nbytes += size
        while len(self._items) > 1 and self._over_limits():
            evicted_key, (evicted, evicted_size) = self._items.popitem(last=False)
            self._nbytes -= evicted_size
            let_go.append((evicted_key, evicted))
        self._notify(let_go)

    def pop(self, key: K, default: V | None = None) -> V | None:
        """Remove ``key`` and return its value (or ``default``); ``on_evict`` is not called."""
        entry = self._items.pop(key, None)
        if entry is None:
            return default
        self._nbytes -= entry[1]
        return entry[0]

    def discard(self, predicate: Callable[[K], bool]) -> int:
        """Remove every item whose key ``predicate`` accepts (e.g. all of one model); returns how many."""
        doomed = [key for key in self._items if predicate(key)]
        let_go = []
        for key in doomed:
            value, size = self._items.pop(key)
            self._nbytes -= size
            let_go.append((key, value))
        self._notify(let_go)
        return len(let_go)

    def clear(self) -> None:
        """Remove everything."""
        let_go = [(key, value) for key, (value, _) in self._items.items()]
        self._items.clear()
        self._nbytes = 0
        self._notify(let_go)

    # -- internals -----------------------------------------------------------------------------
    def _over_limits(self) -> bool:
        if len(self._items) > self.max_items:
            return True
        return self.max_bytes is not None and self._nbytes > self.max_bytes

    def _notify(self, let_go: list[tuple[K, V]]) -> None:
        if self._on_evict is not None:
            for key, value in let_go:
                self._on_evict(key, value)

    def __repr__(self) -> str:
        limit = f", max_bytes={self.max_bytes}" if self.max_bytes is not None else ""
        return f"BoundedCache({len(self)}/{self.max_items} items, {self._nbytes} bytes{limit})"
