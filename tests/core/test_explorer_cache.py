"""The explorer's bounded cache: item and byte limits, least-recently-used order, eviction callbacks."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_explorer.core.explorer.cache import BoundedCache


def test_item_limit_evicts_the_least_recently_used():
    cache: BoundedCache[str, int] = BoundedCache(max_items=3)
    for key in "abc":
        cache.put(key, ord(key))
    assert cache.get("a") == ord("a")  # a is now the most recent; b the least
    cache.put("d", 4)
    assert cache.keys() == ["c", "a", "d"]
    assert "b" not in cache and len(cache) == 3
    assert cache.get("b", -1) == -1


def test_contains_does_not_count_as_a_use():
    cache: BoundedCache[str, int] = BoundedCache(max_items=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert "a" in cache
    cache.put("c", 3)
    assert cache.keys() == ["b", "c"]


def test_byte_limit_is_respected_with_the_default_size_of_arrays():
    cache: BoundedCache[str, np.ndarray] = BoundedCache(max_items=10, max_bytes=2500)
    for key in "abc":
        cache.put(key, np.zeros(1000, dtype=np.uint8))
    assert cache.keys() == ["b", "c"]
    assert cache.nbytes == 2000


def test_the_newest_item_is_kept_even_if_it_alone_exceeds_the_byte_limit():
    cache: BoundedCache[str, bytes] = BoundedCache(max_items=10, max_bytes=100, sizeof=len)
    cache.put("small", b"x" * 10)
    cache.put("huge", b"x" * 1000)
    assert cache.keys() == ["huge"]
    assert cache.nbytes == 1000
    cache.put("small", b"x" * 10)  # the next put makes room again
    assert cache.keys() == ["small"]
    assert cache.nbytes == 10


def test_sizeof_is_called_once_per_put_and_an_update_replaces_the_old_size():
    measured: list[str] = []

    def sizeof(value: str) -> int:
        measured.append(value)
        return len(value)

    cache: BoundedCache[str, str] = BoundedCache(max_items=5, max_bytes=100, sizeof=sizeof)
    cache.put("a", "xxxx")
    cache.put("b", "yy")
    cache.get("a")
    cache.put("a", "z")  # an update: 4 bytes out, 1 in
    assert measured == ["xxxx", "yy", "z"]
    assert cache.nbytes == 3
    assert len(cache) == 2 and cache.keys() == ["b", "a"]
    assert cache.get("a") == "z"


def test_pop_returns_the_value_and_frees_its_bytes():
    cache: BoundedCache[str, bytes] = BoundedCache(max_items=5, sizeof=len)
    cache.put("a", b"abc")
    assert cache.pop("a") == b"abc"
    assert cache.pop("a", b"gone") == b"gone"
    assert len(cache) == 0 and cache.nbytes == 0


def test_discard_forgets_everything_of_one_model():
    cache: BoundedCache[tuple[str, str], bytes] = BoundedCache(max_items=10, sizeof=len)
    cache.put(("resnet18", "cat"), b"12")
    cache.put(("alexnet", "cat"), b"345")
    cache.put(("resnet18", "dog"), b"6789")
    assert cache.discard(lambda key: key[0] == "resnet18") == 2
    assert cache.keys() == [("alexnet", "cat")]
    assert cache.nbytes == 3
    assert cache.discard(lambda key: False) == 0


def test_clear_empties_it():
    cache: BoundedCache[str, bytes] = BoundedCache(max_items=5, sizeof=len)
    cache.put("a", b"abc")
    cache.put("b", b"de")
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0 and cache.keys() == []


def test_on_evict_hears_of_every_value_let_go_but_not_of_pop():
    gone: list[tuple[str, str]] = []
    cache: BoundedCache[str, str] = BoundedCache(max_items=2, on_evict=lambda k, v: gone.append((k, v)))
    cache.put("a", "A")
    cache.put("b", "B")
    cache.put("c", "C")  # evicts a
    cache.put("b", "B2")  # replaces B
    same = cache.get("c")
    cache.put("c", same)  # the same object again: nothing let go
    assert cache.pop("b") == "B2"
    cache.put("d", "D")
    cache.discard(lambda key: key == "d")
    cache.clear()
    assert gone == [("a", "A"), ("b", "B"), ("d", "D"), ("c", "C")]


def test_on_evict_may_use_the_cache():
    seen: list[tuple[list[str], int]] = []

    def on_evict(key: str, value: int) -> None:
        seen.append((cache.keys(), cache.nbytes))

    cache: BoundedCache[str, int] = BoundedCache(max_items=1, sizeof=lambda v: v, on_evict=on_evict)
    cache.put("a", 1)
    cache.put("b", 2)
    assert seen == [(["b"], 2)]


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_items"):
        BoundedCache(max_items=0)
    with pytest.raises(ValueError, match="max_bytes"):
        BoundedCache(max_items=1, max_bytes=-1)
    cache: BoundedCache[str, int] = BoundedCache(max_items=1, sizeof=lambda v: -v)
    with pytest.raises(ValueError, match="negative"):
        cache.put("a", 5)
