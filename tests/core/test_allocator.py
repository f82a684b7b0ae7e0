"""keep_freed_memory: big blocks freed by one pass are reused by the next, without page faults."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

# Eight arrays of 0.4–3.8 MB (13 MB, about 3,300 pages) made and freed 20 times: the minor page faults
# per round, in a fresh interpreter.
_ROUNDS = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    if sys.argv[1] == "keep":
        from cnn_explorer.core.allocator import keep_freed_memory
        assert keep_freed_memory() and keep_freed_memory()  # (a second call is harmless)
    sizes = [(1 << 20) * k // 8 for k in (3, 17, 9, 30, 5, 12, 22, 7)]
    def once():
        held = [np.ones(n, dtype=np.uint8) for n in sizes]
        del held
    once()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        once()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
    """
)


def faults_per_round(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return float(out.stdout)


def glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


@pytest.mark.skipif(not glibc(), reason="the setting exists only in glibc's malloc")
def test_freed_blocks_are_reused_without_page_faults():
    default = faults_per_round("default")
    kept = faults_per_round("keep")
    assert default > 1000, f"glibc as it comes should fault the blocks in every round, got {default}"
    assert kept <= 20, f"with keep_freed_memory the blocks should be reused, got {kept} faults a round"


def test_without_glibc_nothing_changes(monkeypatch):
    from cnn_explorer.core import allocator

    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setattr(allocator.os, "confstr", lambda name: "musl")
    assert allocator.keep_freed_memory() is False
