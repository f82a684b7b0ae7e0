"""An on-disk cache of a frozen backbone's embeddings, so a fine-tuning run on 100,000+ images only trains
its head after the first epoch, and the next run on the same data skips even that first pass.

Each entry is a folder ``root/<key>`` with a memory-mapped float16 array of features, a flag per row
(written, or its image unreadable) and a ``meta.json``. The key (:func:`cache_key`) covers everything that
changes the embeddings: the backbone's structure and weights, the preprocessing, and each image's path,
label, size and modification time; so an entry is reused across runs on the same data and a stale one is
never found. Several processes (DistributedDataParallel ranks on one machine) may open one entry at once
and write disjoint rows: the mappings are shared, so each sees the others' rows. Features are written
before their flags, so a row flagged done always has its features (after a power cut, only as of the last
:meth:`EmbeddingStore.flush`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnn_explorer.core.appdirs import user_cache_dir

__all__ = [
    "CACHE_FOLDER",
    "DEFAULT_MAX_BYTES",
    "EmbeddingCacheError",
    "EmbeddingStore",
    "cache_key",
    "cache_root",
    "prune",
]

CACHE_FOLDER = "embeddings"
DEFAULT_MAX_BYTES = 20 * 1024**3
FORMAT = "cnn-explorer-embeddings/1"  # part of every key and every meta.json; bump when the layout changes
FEATURES, DONE, META = "features.f16", "done.u8", "meta.json"
LOCK = ".lock"
TMP_PREFIX = ".tmp-"
WRITTEN, UNREADABLE = 1, 2  # the values of done.u8; 0 is "not yet"
STALE_TMP_S = 3600.0  # a temporary folder this old belongs to a process that died
F16_MAX = float(np.finfo(np.float16).max)  # 65504


class EmbeddingCacheError(Exception):
    """The embedding cache cannot be used; ``str(err)`` names the folder and says why."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot use the embedding cache in {path}: {reason}")


def _reason(exc: OSError, need: int = 0) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        size = f" ({need / 1024**2:.0f} MB needed)" if need else ""
        return f"the disk is full{size}"
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the folder is read-only or belongs to someone else)"
    if exc.errno == errno.ENOTDIR:
        return "a part of this path is a file, not a folder"
    return exc.strerror or str(exc)


def cache_root(cache_dir: str = "") -> Path:
    """``cache_dir`` if given (a run's setting), else the ``embeddings`` folder of the user's cache."""
    return Path(cache_dir).expanduser() if cache_dir else user_cache_dir() / CACHE_FOLDER


# ---------------------------------------------------------------------------------------------------------
# The key


def _field(h: Any, value: bytes) -> None:
    """Length-prefixed, so no two different sequences of fields hash alike."""
    h.update(len(value).to_bytes(8, "little"))
    h.update(value)


def _tensor_bytes(t: torch.Tensor) -> bytes | memoryview:
    t = t.detach()
    if t.device.type == "meta":
        return b""
    t = t.cpu().contiguous()
    try:
        return memoryview(t.reshape(-1).view(torch.uint8).numpy())
    except (RuntimeError, TypeError):  # quantized or sparse: rarer layouts, hashed by value
        return repr(t.tolist()).encode()


def cache_key(
    *,
    model: str,
    embed: nn.Module,
    preprocess: dict,
    samples: Sequence[tuple[str, int]],
    part: str,
    head: nn.Module | None = None,
) -> str:
    """The name of the cache entry for ``part`` ("train" or "val") of a dataset embedded by ``embed``.

    It changes with anything that changes the embeddings or which image a row holds: the model's name, the
    module's structure (``str``) and every weight and buffer, the preprocessing, and each sample's path,
    label, file size and modification time (a file that cannot be stat'ed counts as size and time -1).
    Files are stat'ed, never read, so 100,000 samples take a fraction of a second.

    ``head`` is a submodule of ``embed`` whose weights are left out: the classifier a run trains on top of
    the embeddings (pass ``embed=model, head=head``), so a fresh head or a resumed one finds the same entry.
    """
    h = hashlib.sha256()
    for text in (FORMAT, model, part, str(embed), json.dumps(preprocess, sort_keys=True)):
        _field(h, text.encode("utf-8", "surrogatepass"))
    skip = [name + "." for name, m in embed.named_modules() if head is not None and m is head]
    if head is embed:
        skip = [""]
    for name, tensor in embed.state_dict().items():
        if any(name.startswith(prefix) for prefix in skip):
            continue
        _field(h, f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        _field(h, _tensor_bytes(tensor))
    _field(h, str(len(samples)).encode())
    lines = []
    for path, label in samples:
        try:
            info = os.stat(path)
            size, mtime = info.st_size, info.st_mtime_ns
        except (OSError, ValueError):  # missing, unreadable, or a name the system refuses
            size = mtime = -1
        raw = os.fsencode(path)
        lines.append(b"%d:%s|%d|%d|%d\n" % (len(raw), raw, int(label), size, mtime))
    h.update(b"".join(lines))
    return h.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------
# The store


def _rows(rows: Any, n: int) -> np.ndarray:
    """``rows`` as a 1-D int64 array, checked against ``n`` (negative indices would silently wrap)."""
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    idx = np.asarray(rows, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"rows must be in 0..{n - 1}; got {int(idx.min())}..{int(idx.max())}")
    return idx


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".meta-{os.getpid()}-{uuid.uuid4().hex[:8]}.json")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _reserve(path: Path, size: int) -> None:
    """A file of ``size`` zero bytes whose blocks are allocated now: writes through a mapping of a sparse
    file that the disk cannot hold kill the process with SIGBUS; allocation fails here instead."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
    try:
        if size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
                return
            except OSError as exc:  # some file systems (ZFS, some network mounts) do not support it
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", -1)):
                    raise
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def _remove(folder: Path) -> bool:
    """Delete an entry: first renamed away, so no other process opens it half deleted. False if it could
    not be (in use on Windows, or gone already)."""
    trash = folder.with_name(f"{TMP_PREFIX}gone-{uuid.uuid4().hex[:12]}")
    try:
        os.rename(folder, trash)
    except OSError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold ``root/.lock`` (POSIX advisory, released if the process dies) while an entry is checked and made.

    The rename alone keeps entries whole; the lock also keeps processes opening one key from each
    reserving the space, and one from removing a broken entry another has just replaced. Where locking is
    unavailable (Windows, some network mounts), the rename alone decides.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):  # no locks here (ENOLCK): the rename alone decides
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class EmbeddingStore:
    """``n`` rows of features of shape ``feature_shape`` and a flag per row, on disk or in memory.

    :meth:`open` maps an entry of the on-disk cache; :meth:`in_memory` gives the same API on plain arrays
    (no cache folder, or a cache that cannot be used). Rows are stored as float16, read as float32.
    """

    def __init__(
        self,
        path: Path | None,
        features: np.ndarray,
        done: np.ndarray,
        feature_shape: tuple[int, ...],
    ) -> None:
        self.path = path
        self.n = int(done.shape[0])
        self.feature_shape = tuple(int(s) for s in feature_shape)
        self._features: np.ndarray | None = features
        self._done: np.ndarray | None = done

    # -- making one -------------------------------------------------------------------------------
    @classmethod
    def in_memory(cls, n: int, feature_shape: tuple[int, ...]) -> EmbeddingStore:
        shape = tuple(int(s) for s in feature_shape)
        return cls(None, np.zeros((n, *shape), np.float16), np.zeros(n, np.uint8), shape)

    @classmethod
    def open(
        cls,
        root: Path,
        key: str,
        n: int,
        feature_shape: tuple[int, ...],
        meta: dict | None = None,
    ) -> EmbeddingStore:
        """The entry ``root/key``, created if missing, recreated if broken; its disk space is reserved.

        It is built in a temporary folder and renamed into place, so an entry that exists is whole. When
        several processes open one key at once, one rename wins and the others open the winner's entry.
        Raises :class:`EmbeddingCacheError` for any failure of the file system (read-only, disk full).
        """
        if not key or key.startswith(".") or os.sep in key or "/" in key or key != key.strip():
            raise ValueError(f"not a cache key: {key!r}")
        shape = tuple(int(s) for s in feature_shape)
        root = Path(root)
        entry = root / key
        nbytes = n * math.prod(shape) * 2
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddingCacheError(root, f"the folder cannot be created: {_reason(exc)}") from None
        try:
            with _locked(root):
                for _ in range(3):  # found broken, or removed by another process's prune, in between
                    if entry.exists():
                        store = cls._load(entry, n, shape)
                        if store is not None:
                            return store
                        if not _remove(entry) and entry.exists():
                            continue  # replaced meanwhile by another process, or held open (Windows)
                    if cls._create(root, entry, n, shape, nbytes, meta or {}):
                        store = cls._load(entry, n, shape)
                        if store is not None:
                            return store
        except OSError as exc:
            raise EmbeddingCacheError(root, _reason(exc, nbytes)) from None
        raise EmbeddingCacheError(root, f"entry {key} is broken and cannot be replaced (is it in use?)")

    @classmethod
    def _create(
        cls, root: Path, entry: Path, n: int, shape: tuple[int, ...], nbytes: int, meta: dict
    ) -> bool:
        """Build the entry in a temporary folder and rename it into place. True if there is an entry now
        (ours or another process's), False if it vanished again."""
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{entry.name[:16]}-", dir=root))
        try:
            try:
                _reserve(tmp / FEATURES, nbytes)
                _reserve(tmp / DONE, n)
            except OSError:
                if entry.exists():  # another process won, and its entry took the space ours needed
                    return True
                raise
            now = time.time()
            info = {**meta, "format": FORMAT, "n": n, "feature_shape": list(shape), "dtype": "float16"}
            _write_json(tmp / META, {**info, "created": now, "last_used": now})
            try:
                os.rename(tmp, entry)
                return True
            except OSError:
                if entry.exists():  # another process created it first: use theirs
                    return True
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @classmethod
    def _load(cls, entry: Path, n: int, shape: tuple[int, ...]) -> EmbeddingStore | None:
        """The entry mapped, its last_used updated; None if it is broken (other size, missing or short
        files, unreadable meta) or gone. Other OSErrors (permissions) propagate."""
        try:
            meta = json.loads((entry / META).read_text())
            fits = (
                isinstance(meta, dict)
                and meta.get("format") == FORMAT
                and meta.get("n") == n
                and meta.get("feature_shape") == list(shape)
                and meta.get("dtype") == "float16"
                and (entry / FEATURES).stat().st_size == n * math.prod(shape) * 2
                and (entry / DONE).stat().st_size == n
            )
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        if not fits:
            return None
        meta["last_used"] = time.time()
        try:
            _write_json(entry / META, meta)
        except FileNotFoundError:  # removed in between
            return None
        features = _map(entry / FEATURES, np.float16, (n, *shape))
        done = _map(entry / DONE, np.uint8, (n,))
        return cls(entry, features, done, shape)

    # -- facts ------------------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        return self.n * math.prod(self.feature_shape) * 2

    @property
    def done(self) -> np.ndarray:
        """Which rows are written (a bool array, as of now: for an on-disk entry, other processes' too)."""
        return self._arrays()[1] == WRITTEN

    @property
    def unreadable(self) -> np.ndarray:
        """Which rows :meth:`mark_unreadable` marked (a bool array, as of now)."""
        return self._arrays()[1] == UNREADABLE

    def complete(self, rows: np.ndarray | Sequence[int] | None = None) -> bool:
        """Whether every row (or every one of ``rows``) is written."""
        flags = self._arrays()[1]
        if rows is not None:
            flags = flags[_rows(rows, self.n)]
        return bool((flags == WRITTEN).all())

    def mark_unreadable(self, rows: Any) -> None:
        """Remember that the images of ``rows`` cannot be decoded, so the next run need not load every
        image again to find out (the key covers each file's size and time, so the mark stays true).
        Rows already written keep their features."""
        flags = self._arrays()[1]
        idx = _rows(rows, self.n)
        flags[idx[flags[idx] != WRITTEN]] = UNREADABLE

    # -- rows -------------------------------------------------------------------------------------
    def write(self, rows: Any, features: torch.Tensor) -> None:
        """Store ``features`` (``len(rows), *feature_shape``; any device and dtype) and mark the rows done.

        Values beyond float16's range are clipped to ±65504 rather than becoming inf, which would turn the
        head's loss into NaN. The features go in before the flags, so a flagged row always has its own.
        """
        store, done = self._arrays()
        idx = _rows(rows, self.n)
        expected = (idx.size, *self.feature_shape)
        if tuple(features.shape) != expected:
            raise ValueError(f"features of shape {tuple(features.shape)} for rows needing {expected}")
        values = features.detach().float().clamp(-F16_MAX, F16_MAX).half().cpu().numpy()
        store[idx] = values
        done[idx] = WRITTEN

    def read(self, rows: Any) -> torch.Tensor:
        """The features of ``rows`` as a float32 CPU tensor. Raises ValueError for rows not yet written,
        whose zeros would otherwise train the head on nothing."""
        store, done = self._arrays()
        idx = _rows(rows, self.n)
        if not (done[idx] == WRITTEN).all():
            missing = idx[done[idx] != WRITTEN]
            raise ValueError(
                f"{missing.size} of the rows are not cached yet (the first is {int(missing[0])})"
            )
        return torch.from_numpy(np.asarray(store[idx], dtype=np.float32))

    # -- the files --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the mapped pages to disk (features first); a no-op in memory."""
        for array in (self._features, self._done):
            if isinstance(array, np.memmap):
                array.flush()

    def close(self) -> None:
        """Flush and let go of the mappings; later reads and writes raise ValueError. Idempotent."""
        if self._features is None:
            return
        self.flush()
        self._features = self._done = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._features is None or self._done is None:
            raise ValueError("the embedding store is closed")
        return self._features, self._done

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "memory"
        state = "closed" if self._done is None else f"{int((self._done == WRITTEN).sum())}/{self.n} done"
        return f"EmbeddingStore({where}, {self.n}×{self.feature_shape}, {state})"


def _map(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A shared read-write mapping of ``path``; plain zeros for an empty one, which cannot be mapped."""
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r+", shape=shape)


# ---------------------------------------------------------------------------------------------------------
# Keeping the cache within bounds


_OUR_FILES = {FEATURES, DONE, META}


def _ours(folder: Path) -> bool:
    """Whether ``folder`` holds only files this module writes, so a cache folder the user pointed at a
    folder of their own never loses anything else."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    return all(name in _OUR_FILES or name.startswith(".meta-") for name in names)


def _last_used(folder: Path) -> float:
    try:
        value = json.loads((folder / META).read_text())["last_used"]
        return float(value)
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0


def _size(folder: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for p in folder.iterdir():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
    return total


def prune(root: Path, max_bytes: int, *, keep: Collection[str] = ()) -> list[Path]:
    """Delete the least recently used entries of ``root`` until the rest take at most ``max_bytes``.

    Entries named in ``keep`` (the ones this run uses) are never deleted, nor anything that is not an
    entry. Temporary folders older than an hour (left by a process that died) go too. An entry that cannot
    be deleted is skipped: another process may be using it. Returns the folders removed.
    """
    root = Path(root)
    removed: list[Path] = []
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return removed
    now = time.time()
    entries = []
    for folder in folders:
        if not _ours(folder):
            continue
        if folder.name.startswith(TMP_PREFIX):
            try:
                stale = now - folder.stat().st_mtime > STALE_TMP_S
            except OSError:
                continue
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                if not folder.exists():
                    removed.append(folder)
        elif not folder.name.startswith(".") and ((folder / META).exists() or (folder / FEATURES).exists()):
            entries.append((_last_used(folder), folder.name, folder, _size(folder)))
    total = sum(size for *_, size in entries)
    for _, name, folder, size in sorted(entries):
        if total <= max_bytes:
            break
        if name in keep:
            continue
        if _remove(folder):
            removed.append(folder)
            total -= size
    return removed
