"""Keep freed memory in the process, so that forward passes stop paying page faults.

glibc's malloc serves big blocks (above 128 KiB at first) with fresh ``mmap`` pages and hands them back
to the system when freed; it also trims the heap whenever its free top passes 128 KiB. A CNN's
activations are such blocks, so every forward pass on the CPU faults its working memory in again:
about 2,500 page faults per EfficientNet-Lite0 pass on 224×224 here, some 15% of its time. Raising both
thresholds keeps the freed blocks for the next pass, which is what PyTorch's CPU tuning guide gets by
swapping in jemalloc or tcmalloc. The price is that the process keeps its high-water mark of memory
(up to ``TRIM_THRESHOLD`` of it free).

Only glibc has these knobs; elsewhere :func:`keep_freed_memory` changes nothing and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap and are reused (glibc's own maximum)
TRIM_THRESHOLD = 256 << 20  # free memory the heap may keep before it gives some back
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse (once per process); False where not glibc."""
    global _applied
    if _applied:
        return True
    libc_version = ""
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not a glibc system
        libc_version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not libc_version.startswith("glibc"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _applied = ok
    return ok
