"""Output folders the user names (``--out DIR``, ``screenshot OUTDIR``): checked before any work starts.

A folder that is really a file, cannot be created, or cannot be written (read-only mount, immutable
folder, no permission) raises :class:`OutputDirError` with one message, so commands exit with code 2
instead of failing with a traceback after minutes of work. A disk that fills while writing is reported by
:func:`is_disk_full` so callers can say so (exit code 1).
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["OutputDirError", "is_disk_full", "prepare_output_dir"]


class OutputDirError(Exception):
    """An output folder cannot be used; ``str(err)`` names it and says why."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot write to {path}: {reason}")


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the folder is read-only or belongs to someone else)"
    if exc.errno == errno.ENOTDIR:
        return "a part of this path is a file, not a folder"
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if is_disk_full(exc):
        return "the disk is full"
    return exc.strerror or str(exc)


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" and "quota exceeded" errors."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_failure(exc: OSError) -> str:
    """Why a write failed, in the words the commands print: "the disk is full", or the system's reason."""
    return "the disk is full" if is_disk_full(exc) else (exc.strerror or str(exc))


def prepare_output_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and prove it is writable by creating and removing a file in it."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise OutputDirError(path, "it is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(path, f"the folder cannot be created: {_reason(exc)}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(path, f"the folder cannot be written: {_reason(exc)}") from None
    return path
