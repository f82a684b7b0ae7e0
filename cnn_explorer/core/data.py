"""Labelled image folders for fine-tuning: scan, bad-file report, train/val split, transforms.

Two layouts are understood, both in torchvision's ``ImageFolder`` style:

- ``root/<class>/*.jpg`` — one folder per class, split into train/val here (seeded, stratified);
- ``root/train/<class>/…`` + ``root/val/<class>/…`` — the split is taken as it is.

:func:`scan_dataset` checks every image before any training starts and returns a :class:`DatasetScan`
with the class counts, the split and every unreadable file (named, with the reason). Problems a user must
fix (no folder, no classes, a single class, a class with too few images) raise :class:`DatasetError` with a
message that says what to do. Images that only fail later, while decoding during training, are skipped by
:class:`ImageSamples` + :func:`collate_skipping_bad` and reported, never fatal.
"""

from __future__ import annotations

import array
import itertools
import operator
import os
import random
import signal
import stat
import sys
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, overload

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.images import ImageLoadError, assets_dir, check_dimensions, is_image_file, open_image

MIN_IMAGES_PER_CLASS = 5  # below this a class cannot give both a training and a validation image sensibly
LOPSIDED_RATIO = 5.0  # biggest class / smallest class above this gets a warning
DEFAULT_VAL_FRACTION = 0.2
# Files the operating system or other tools leave in folders; never worth a mention.
_SILENT_NAMES = {"thumbs.db", "desktop.ini", "$recycle.bin", "system volume information"}
# Folder entries between listing progress reports and cancel checks: often enough for a prompt cancel,
# rarely enough to cost nothing next to the walk.
_LIST_REPORT_EVERY = 500
_TRAIN_NAMES = ("train", "training")
_VAL_NAMES = ("val", "valid", "validation")


class DatasetError(Exception):
    """The dataset cannot be used for training; ``str(err)`` says why and what to do."""


@dataclass(frozen=True)
class BadFile:
    """An image that cannot be decoded; it is skipped and reported."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


ScanPhase = Literal["listing", "checking"]


@dataclass(frozen=True)
class ScanProgress:
    """Reported through ``control.report`` by :func:`scan_dataset`, in two phases.

    ``"listing"``: the folders are walked; ``done`` counts the folder entries looked at so far and
    ``total`` is 0 while unknown (the last listing report has ``total == done``).
    ``"checking"``: ``done`` of ``total`` image files have been checked.
    """

    done: int
    total: int
    phase: ScanPhase = "checking"


Sample = tuple[str, int]  # (path, class index), as torchvision's ImageFolder stores them


# -- compact sample lists --------------------------------------------------------------------------------

# Paths are stored as UTF-8 with "surrogatepass": every Python str round-trips, including the lone
# surrogates of POSIX names that are not valid UTF-8 (os.fsdecode's "surrogateescape" form, \udc80-\udcff)
# and of Windows names with unpaired UTF-16 halves (which "surrogateescape" could not encode at all).
_CODEC = ("utf-8", "surrogatepass")
# Samples decoded at a time when iterating, and taken from the input at a time when building: few
# temporary Python objects, yet per-chunk (C-speed) encoding and decoding.
_CHUNK = 4096
_BUILD_CHUNK = 256
_MAX_UINT32 = 2**32 - 1


def _offset_array(offsets: np.ndarray) -> np.ndarray:
    """Byte offsets as uint32 while the names fit in 4 GiB (short of ~200 million files), else int64."""
    if len(offsets) and int(offsets[-1]) > _MAX_UINT32:
        return offsets.astype(np.int64, copy=False)
    return offsets.astype(np.uint32, copy=False)


def _encode(names: list[str]) -> tuple[bytes, list[int]]:
    """Names -> their NUL-terminated UTF-8 bytes, joined, and the bytes each takes (NUL included)."""
    joined = "\0".join(names)
    if joined.count("\0") != len(names) - 1:
        raise ValueError("a path cannot contain a NUL character")
    data = (joined + "\0").encode(*_CODEC)
    if len(data) == len(joined) + 1:  # all ASCII (the usual case): one byte per character
        return data, [len(n) + 1 for n in names]
    return data, [len(n.encode(*_CODEC)) + 1 for n in names]


class SampleList(Sequence[Sample]):
    """An immutable, compact list of ``(path, label)`` samples: a dataset's file list.

    A Python list of tuples costs ~150 bytes a sample, and DataLoader worker processes forked from the
    trainer copy its pages as soon as they read it (every read touches each object's reference count: the
    "memory grows with num_workers" problem of PyTorch datasets). Here the samples live in a few numpy arrays
    whose pages reading never writes: each folder once (``_dirs``), then per sample the index of its folder,
    its file name (NUL-terminated UTF-8 in one byte buffer, at ``_offsets``) and its label: ~30 bytes a
    sample. It reads like the list it replaces (indexing, slices, iteration, ``==`` with a list of pairs,
    ``+``) and pickles as its arrays (DataLoader workers on spawn platforms receive the dataset pickled).
    """

    __slots__ = ("_dir_index", "_dirs", "_labels", "_names", "_offsets")

    def __init__(self, samples: Iterable[tuple[str, int]] = ()) -> None:
        if isinstance(samples, SampleList):
            self._set(samples._dirs, samples._dir_index, samples._names, samples._offsets, samples._labels)
            return
        dir_ids: dict[str, int] = {}
        dir_index = array.array("i")
        labels = array.array("i")
        offsets = array.array("I", [0])  # 4 bytes an item (C unsigned int); widened past 4 GiB of names
        names = bytearray()
        it = iter(samples)
        while chunk := list(itertools.islice(it, _BUILD_CHUNK)):
            chunk_names: list[str] = []
            for path, label in chunk:
                path = os.fspath(path)
                if not isinstance(path, str):
                    raise TypeError(f"a sample's path must be a str, not {type(path).__name__}")
                cut = max(path.rfind("/"), path.rfind("\\")) + 1  # any split point round-trips exactly
                folder = path[:cut]
                index = dir_ids.get(folder)
                if index is None:
                    index = dir_ids[folder] = len(dir_ids)
                dir_index.append(index)
                labels.append(operator.index(label))
                chunk_names.append(path[cut:])
            data, sizes = _encode(chunk_names)
            names += data
            if offsets.typecode == "I" and len(names) > _MAX_UINT32:
                offsets = array.array("q", offsets)
            offsets.extend(itertools.islice(itertools.accumulate(sizes, initial=offsets[-1]), 1, None))
        self._set(
            tuple(dir_ids),
            np.frombuffer(dir_index, dtype=np.int32) if dir_index else np.empty(0, np.int32),
            np.frombuffer(names, dtype=np.uint8) if names else np.empty(0, np.uint8),
            np.frombuffer(offsets, dtype=np.uint32 if offsets.typecode == "I" else np.int64),
            np.frombuffer(labels, dtype=np.int32) if labels else np.empty(0, np.int32),
        )

    def _set(
        self,
        dirs: tuple[str, ...],
        dir_index: np.ndarray,
        names: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        arrays = {"_dir_index": dir_index, "_names": names, "_offsets": offsets, "_labels": labels}
        for name, a in arrays.items():
            if a.flags.writeable:
                a = a.view()
                a.flags.writeable = False
            object.__setattr__(self, name, a)
        object.__setattr__(self, "_dirs", dirs)

    @classmethod
    def _from_arrays(
        cls,
        dirs: tuple[str, ...],
        dir_index: np.ndarray,
        names: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
    ) -> SampleList:
        new = cls.__new__(cls)
        new._set(dirs, dir_index, names, offsets, labels)
        return new

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a SampleList cannot be changed; build a new one")

    def __reduce__(self) -> tuple[Any, ...]:
        return SampleList._from_arrays, (
            self._dirs,
            self._dir_index,
            self._names,
            self._offsets,
            self._labels,
        )

    # -- reading --

    def __len__(self) -> int:
        return len(self._labels)

    def _index(self, i: Any) -> int:
        i = operator.index(i)
        n = len(self._labels)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("SampleList index out of range")
        return i

    def path(self, i: int) -> str:
        """The path of sample ``i`` (negative counts from the end), without building its tuple."""
        i = self._index(i)
        start, end = self._offsets[i : i + 2].tolist()
        name = self._names[start : end - 1].tobytes().decode(*_CODEC)
        return self._dirs[self._dir_index[i]] + name

    @overload
    def __getitem__(self, i: int) -> Sample: ...

    @overload
    def __getitem__(self, i: slice) -> SampleList: ...

    def __getitem__(self, i: int | slice) -> Sample | SampleList:
        if isinstance(i, slice):
            return self.take(np.arange(*i.indices(len(self))))
        i = self._index(i)
        return self.path(i), int(self._labels[i])

    def _decoded(self, start: int, stop: int) -> list[str]:
        """The paths of samples ``start:stop``, decoded in one go."""
        if start >= stop:
            return []
        lo, hi = int(self._offsets[start]), int(self._offsets[stop])
        names = self._names[lo : hi - 1].tobytes().decode(*_CODEC).split("\0")
        dirs = self._dirs
        return [dirs[d] + name for d, name in zip(self._dir_index[start:stop].tolist(), names, strict=True)]

    def __iter__(self) -> Iterator[Sample]:
        for start in range(0, len(self), _CHUNK):
            stop = min(start + _CHUNK, len(self))
            yield from zip(self._decoded(start, stop), self._labels[start:stop].tolist(), strict=True)

    def paths(self) -> Iterator[str]:
        """Every path, in order (decoded a chunk at a time)."""
        for start in range(0, len(self), _CHUNK):
            yield from self._decoded(start, min(start + _CHUNK, len(self)))

    @property
    def labels(self) -> np.ndarray:
        """The labels (int32), read-only; ``torch.tensor(samples.labels, dtype=torch.long)`` for a tensor."""
        return self._labels

    @property
    def nbytes(self) -> int:
        """The memory the samples take: the arrays plus the folder names."""
        arrays = (self._dir_index, self._names, self._offsets, self._labels)
        return sum(a.nbytes for a in arrays) + sum(sys.getsizeof(d) for d in self._dirs) + 8 * len(self._dirs)

    def __repr__(self) -> str:
        n = len(self)
        if n == 0:
            return "SampleList([])"
        head = ", ".join(repr(self[i]) for i in range(min(n, 2)))
        more = f", ... ({n} samples)" if n > 2 else ""
        return f"SampleList([{head}{more}])"

    # -- comparing and combining --

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SampleList):
            if len(self) != len(other) or not np.array_equal(self._labels, other._labels):
                return False
            if self._dirs == other._dirs and np.array_equal(self._dir_index, other._dir_index):
                return np.array_equal(self._offsets, other._offsets) and np.array_equal(
                    self._names, other._names
                )
            return all(a == b for a, b in zip(self.paths(), other.paths(), strict=True))
        if isinstance(other, (str, bytes)) or not isinstance(other, Sequence):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(
            isinstance(o, (tuple, list)) and len(o) == 2 and s[0] == o[0] and s[1] == o[1]
            for s, o in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]  # equal to lists, like them unhashable

    def __add__(self, other: Iterable[tuple[str, int]]) -> SampleList:
        if not isinstance(other, SampleList):
            if isinstance(other, (str, bytes)) or not isinstance(other, Iterable):
                return NotImplemented
            other = SampleList(other)
        return SampleList._concat(self, other)

    def __radd__(self, other: Iterable[tuple[str, int]]) -> SampleList:
        if isinstance(other, (str, bytes)) or not isinstance(other, Iterable):
            return NotImplemented
        return SampleList._concat(SampleList(other), self)

    @staticmethod
    def _concat(a: SampleList, b: SampleList) -> SampleList:
        if not len(b):
            return a
        if not len(a):
            return b
        ids = {d: i for i, d in enumerate(a._dirs)}
        remap = np.array([ids.setdefault(d, len(ids)) for d in b._dirs], dtype=np.int32)
        return SampleList._from_arrays(
            tuple(ids),
            np.concatenate([a._dir_index, remap[b._dir_index]]),
            np.concatenate([a._names, b._names]),
            _offset_array(
                np.concatenate([a._offsets, b._offsets[1:].astype(np.int64) + int(a._offsets[-1])])
            ),
            np.concatenate([a._labels, b._labels]),
        )

    def take(self, indices: Sequence[int] | np.ndarray) -> SampleList:
        """The samples at ``indices`` (an int array or sequence; negative counts from the end), compactly."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError("SampleList index out of range")
        idx = np.where(idx < 0, idx + n, idx)
        starts = self._offsets[idx].astype(np.int64)
        sizes = self._offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        names = np.empty(int(offsets[-1]), dtype=np.uint8)
        step = 1 << 13  # gathered a block of samples at a time: the byte positions stay small
        for lo in range(0, len(idx), step):
            hi = min(lo + step, len(idx))
            first, last = int(offsets[lo]), int(offsets[hi])
            shift = np.repeat(starts[lo:hi] - offsets[lo:hi], sizes[lo:hi])
            names[first:last] = self._names[shift + np.arange(first, last)]
        return SampleList._from_arrays(
            self._dirs, self._dir_index[idx], names, _offset_array(offsets), self._labels[idx]
        )

    def sort_order(self) -> np.ndarray:
        """The indices that sort the samples as ``sorted()`` sorts a list of ``(path, label)`` tuples."""
        by_label = np.argsort(self._labels, kind="stable")
        paths = list(self.paths())
        order = sorted(by_label.tolist(), key=paths.__getitem__)  # stable: equal paths stay by label
        return np.asarray(order, dtype=np.int64)

    def sorted(self) -> SampleList:
        """A copy in the order ``sorted()`` gives a list of ``(path, label)`` tuples (path, then label)."""
        return self.take(self.sort_order())


@dataclass
class DatasetScan:
    """Everything known about a dataset before training: classes, split, problems."""

    root: Path
    layout: str  # "class-folders" (split here) or "train-val" (split given by the folders)
    class_names: list[str]
    train: SampleList  # any iterable of (path, label) pairs is turned into a SampleList
    val: SampleList
    bad_files: list[BadFile] = field(default_factory=list)
    ignored_files: list[Path] = field(default_factory=list)  # not images by their extension
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("train", "val") and not isinstance(value, SampleList):
            value = SampleList(value)  # on construction and on any later assignment alike
        super().__setattr__(name, value)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, tuple[int, int]]:
        """{class name: (train images, validation images)} over readable images."""
        train = np.bincount(self.train.labels, minlength=self.num_classes)
        val = np.bincount(self.val.labels, minlength=self.num_classes)
        return {name: (int(train[i]), int(val[i])) for i, name in enumerate(self.class_names)}

    def examples(self, class_name: str, k: int = 4) -> list[Path]:
        """The first ``k`` training images of a class (for thumbnails)."""
        idx = self.class_names.index(class_name)
        return [Path(self.train.path(i)) for i in np.flatnonzero(self.train.labels == idx)[:k]]

    def summary(self) -> str:
        """A short report for a terminal or a label: counts, bad files, warnings."""
        counts = self.class_counts()
        width = max(len(n) for n in counts)
        how = (
            "train/ and val/ folders"
            if self.layout == "train-val"
            else f"split {1 - self.val_fraction:.0%}/{self.val_fraction:.0%} with seed {self.seed}"
        )
        lines = [
            f"{self.root}: {len(self.train)} training and {len(self.val)} validation images in "
            f"{self.num_classes} classes ({how})",
        ]
        lines += [f"  {name:<{width}}  {tr:6d} train  {va:5d} val" for name, (tr, va) in counts.items()]
        if self.bad_files:
            lines.append(f"{len(self.bad_files)} unreadable file(s) skipped:")
            lines += [f"  {b.path}: {b.reason}" for b in self.bad_files]
        if self.ignored_files:
            shown = ", ".join(p.name for p in self.ignored_files[:5])
            more = f" and {len(self.ignored_files) - 5} more" if len(self.ignored_files) > 5 else ""
            lines.append(f"{len(self.ignored_files)} non-image file(s) ignored: {shown}{more}")
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with paths relative to the root (a run directory stores its split this way)."""

        def rel(p: str | Path) -> str:
            try:
                return Path(p).relative_to(self.root).as_posix()
            except ValueError:
                return str(p)

        return {
            "root": str(self.root),
            "layout": self.layout,
            "class_names": list(self.class_names),
            "train": [[rel(p), y] for p, y in self.train],
            "val": [[rel(p), y] for p, y in self.val],
            "bad_files": [{"path": str(b.path), "reason": b.reason} for b in self.bad_files],
            "ignored_files": [str(p) for p in self.ignored_files],
            "warnings": list(self.warnings),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetScan:
        root = Path(d["root"])
        return cls(
            root=root,
            layout=d["layout"],
            class_names=list(d["class_names"]),
            train=SampleList((str(root / p), int(y)) for p, y in d["train"]),
            val=SampleList((str(root / p), int(y)) for p, y in d["val"]),
            bad_files=[BadFile(Path(b["path"]), b["reason"]) for b in d.get("bad_files", [])],
            ignored_files=[Path(p) for p in d.get("ignored_files", [])],
            warnings=list(d.get("warnings", [])),
            seed=int(d.get("seed", 0)),
            val_fraction=float(d.get("val_fraction", DEFAULT_VAL_FRACTION)),
        )


# -- checking single files ---------------------------------------------------------------------------


def check_image(path: str | os.PathLike[str], *, thorough: bool = False) -> str | None:
    """None when ``path`` looks like a usable image, else the reason it is not.

    The quick check reads the header, applies :func:`~cnn_explorer.core.images.check_dimensions` (the
    loader's own size rule) and lets Pillow verify the file's structure (PNG checksums, ...) without
    decoding the pixels; ``thorough`` decodes fully with :func:`open_image`. The reason text is always
    the loader's, so the scan and the explorer describe a broken file the same way.
    """
    path = Path(path)
    # Not a regular file (a broken link, a pipe that would block a read): open_image says what it is.
    if thorough or not os.path.isfile(path):
        return _load_failure(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's bomb warning: the size is judged just below
            with Image.open(path) as im:
                reason = check_dimensions(*im.size)
                if reason is not None:
                    return reason
                im.verify()
    except Exception:
        return _load_failure(path)  # whatever Pillow raised, the loader words the reason
    return None


def _load_failure(path: Path) -> str | None:
    try:
        open_image(path)
    except ImageLoadError as exc:
        return exc.reason
    return None


# -- finding the files ----------------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__") or name.lower() in _SILENT_NAMES


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a loop of links
        return False


def _class_folders(directory: Path) -> dict[str, str]:
    """{class name: its folder's name on disk}, sorted by class name.

    Class names are Unicode NFC: macOS may write "café" decomposed (e + U+0301) and other systems
    composed (U+00E9), and a dataset copied between them must still match its train/ and val/ folders.
    """
    folders: dict[str, str] = {}
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if not _is_hidden(e.name) and _is_dir(e))
    for name in names:
        key = unicodedata.normalize("NFC", name)
        if key in folders:
            first = folders[key]
            raise DatasetError(
                f"The folder {directory} has two class folders whose names differ only in how their "
                f"accents are encoded: '{first}' ({_spelling(first)}) and '{name}' ({_spelling(name)}). "
                "They look the same but are different folders; merge them into one or rename one."
            )
        folders[key] = name
    return dict(sorted(folders.items()))


def _spelling(name: str) -> str:
    """How a name's accents are stored, with its code points: what tells two look-alike names apart."""
    if name == unicodedata.normalize("NFC", name):
        form = "composed"
    elif name == unicodedata.normalize("NFD", name):
        form = "decomposed"
    else:
        form = "partly composed"
    return f"{form}: {' '.join(f'U+{ord(c):04X}' for c in name)}"


_Identity = tuple[int, int]  # (st_dev, st_ino): one file or folder, by whatever path it is reached


class _Found(NamedTuple):
    via_link: bool
    part: int  # which searched folder: 0 = root or train/, 1 = val/
    label: int
    folder: str
    name: str
    identity: _Identity | None  # None for a broken link: nothing to compare


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:  # a broken link, a loop of links, no permission
        return None


class _FolderWalk:
    """Lists the image files under the class folders, following links but never entering a folder twice.

    The app's own walk rather than torchvision's ``make_dataset``: its ``os.walk(followlinks=True)`` goes
    round a link like ``up -> ..`` until the path is too long, counting the same files thousands of times.
    The real folders of every class are walked first and links after, so a link into a folder that is
    already part of the dataset (a sibling class, the root) adds nothing, and a file reached by several
    paths counts once, under the class where it really lies. Broken links with an image extension are
    listed, so the check reports them as bad files; other broken links are not worth a mention.
    """

    def __init__(self, control: Control | None) -> None:
        self.control = control
        self.entries = 0
        self.visited: set[_Identity] = set()
        self.links: list[tuple[int, int, str]] = []  # (part, label, path) of links met in real folders
        self.found: list[_Found] = []
        self.folders: dict[str, str] = {}  # one str per folder, shared by the files found in it
        self.ignored: list[Path] = []
        self.unreadable: list[tuple[str, str]] = []  # (folder, reason) of folders that cannot be listed

    def run(
        self, root: Path, parts: Sequence[tuple[Path, dict[str, str]]], class_names: Sequence[str]
    ) -> tuple[list[SampleList], list[Path]]:
        """Samples per searched folder in sorted order, and the non-image files passed over."""
        report(self.control, ScanProgress(0, 0, "listing"))
        checkpoint(self.control)
        for top in (root, *(top for top, _ in parts)):
            self._first_visit(_stat(str(top)))  # never walked as part of a class, even through a link
        for part, (top, folders) in enumerate(parts):
            for label, name in enumerate(class_names):
                if name not in folders:
                    continue
                path = str(top / folders[name])
                if os.path.islink(path):  # a class folder kept elsewhere: a link like any other
                    self.links.append((part, label, path))
                elif self._first_visit(_stat(path)):
                    self._walk([path], part, label, via_link=False)
        for part, label, path in sorted(self.links):
            pending: list[str] = []
            self._add(path, part, label, True, pending)
            self._walk(pending, part, label, via_link=True)
        report(self.control, ScanProgress(self.entries, self.entries, "listing"))
        return self._samples(len(parts)), sorted(self.ignored)

    def _first_visit(self, st: os.stat_result | None) -> bool:
        if st is None or (st.st_dev, st.st_ino) in self.visited:
            return False
        self.visited.add((st.st_dev, st.st_ino))
        return True

    def _walk(self, pending: list[str], part: int, label: int, *, via_link: bool) -> None:
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                self.unreadable.append((folder, exc.strerror or str(exc)))
                continue
            subfolders: list[str] = []
            for entry in entries:
                self.entries += 1
                if self.entries % _LIST_REPORT_EVERY == 0:
                    report(self.control, ScanProgress(self.entries, 0, "listing"))
                    checkpoint(self.control)  # after the report, so a cancel sent from it acts at once
                if _is_hidden(entry.name):
                    continue
                if not via_link and entry.is_symlink():
                    self.links.append((part, label, entry.path))  # followed once every real folder is known
                    continue
                self._add(entry.path, part, label, via_link, subfolders)
            pending.extend(reversed(subfolders))  # depth first, in name order

    def _add(self, path: str, part: int, label: int, via_link: bool, pending: list[str]) -> None:
        st = _stat(path)
        folder, name = os.path.split(path)
        folder = self.folders.setdefault(folder, folder)
        if st is not None and stat.S_ISDIR(st.st_mode):
            if self._first_visit(st):
                pending.append(path)
        elif is_image_file(name):
            identity = (st.st_dev, st.st_ino) if st is not None else None
            self.found.append(_Found(via_link, part, label, folder, name, identity))
        elif st is not None and stat.S_ISREG(st.st_mode):
            self.ignored.append(Path(path))

    def _samples(self, n_parts: int) -> list[SampleList]:
        """Each file once: a real path before a link, then the first in sorted order (train before val).

        The walk's records are dropped as they are used: a big folder's file list is never held as
        Python objects more than once, and what is returned is compact.
        """
        seen: set[_Identity] = set()
        kept: list[_Found] = []
        self.found.sort(key=lambda f: f[:5])
        for f in self.found:
            if f.identity is not None:
                if f.identity in seen:
                    continue
                seen.add(f.identity)
            kept.append(f)
        self.found, self.folders = [], {}
        del seen
        # class by class, folder by folder, name by name: the order torchvision's make_dataset gives
        kept.sort(key=lambda f: (f.part, f.label, f.folder, f.name))
        samples = [
            SampleList((os.path.join(f.folder, f.name), f.label) for f in kept if f.part == part)
            for part in range(n_parts)
        ]
        kept.clear()
        return samples


def _split_dirs(root: Path) -> tuple[Path, Path] | None:
    with os.scandir(root) as entries:
        subdirs = {e.name.lower(): Path(e.path) for e in entries if _is_dir(e)}
    train = next((subdirs[n] for n in _TRAIN_NAMES if n in subdirs), None)
    val = next((subdirs[n] for n in _VAL_NAMES if n in subdirs), None)
    if train is not None and val is not None:
        return train, val
    return None


def stratified_split(
    samples: Iterable[Sample], num_classes: int, val_fraction: float, seed: int
) -> tuple[SampleList, SampleList]:
    """Per class: shuffle with ``seed``, put ``round(n * val_fraction)`` (at least 1) into validation.

    Every class keeps at least one training image. The result depends only on the (sorted) file list and
    the seed, so a run can be reproduced from its settings. Both parts come sorted by (path, label).

    The split is exactly the one of the app's first, list-based version (runs stay reproducible across
    versions): there each class's ``(path, label)`` tuples were sorted, shuffled with one
    ``random.Random(seed)`` class after class, cut, and both parts sorted. ``random.shuffle``'s draws depend
    only on the length shuffled, so shuffling the sorted positions instead of the tuples moves the same
    samples to the same places.
    """
    samples = samples if isinstance(samples, SampleList) else SampleList(samples)
    order = samples.sort_order()  # positions in (path, label) order
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ordered_labels = samples.labels[order]
    rng = random.Random(seed)
    train: list[list[int]] = []
    val: list[list[int]] = []
    for c in range(num_classes):
        members = order[ordered_labels == c].tolist()
        rng.shuffle(members)
        if len(members) < 2:
            train.append(members)
            continue
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val.append(members[:n_val])
        train.append(members[n_val:])

    def in_order(parts: list[list[int]]) -> SampleList:
        chosen = np.fromiter(itertools.chain.from_iterable(parts), dtype=np.int64)
        return samples.take(chosen[np.argsort(rank[chosen], kind="stable")])

    return in_order(train), in_order(val)


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    min_per_class: int = MIN_IMAGES_PER_CLASS,
    thorough: bool = False,
    control: Control | None = None,
) -> DatasetScan:
    """Find the classes and images under ``root``, check each image, and split train/val.

    Raises :class:`DatasetError` for a dataset that cannot be trained on. Unreadable images are listed in
    ``bad_files`` and left out; lopsided class sizes produce a warning, not an error.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"The dataset folder {root} does not exist.")
    if not root.is_dir():
        raise DatasetError(
            f"{root} is a file, not a folder. Choose a folder with one sub-folder of images per class "
            "(for example data/cat/*.jpg, data/dog/*.jpg)."
        )
    if not (0.0 < val_fraction < 1.0):
        raise DatasetError(f"The validation fraction must be between 0 and 1, not {val_fraction}.")

    try:
        split = _split_dirs(root)
        if split is not None:
            train_dir, val_dir = split
            parts = [(train_dir, _class_folders(train_dir)), (val_dir, _class_folders(val_dir))]
            class_names = list(parts[0][1])
            val_only = [c for c in parts[1][1] if c not in parts[0][1]]
            if val_only:
                raise DatasetError(
                    f"The validation folder has classes that the training folder {train_dir} lacks: "
                    f"{', '.join(val_only)}. A model cannot learn a class it never sees in training."
                )
            layout = "train-val"
        else:
            parts = [(root, _class_folders(root))]
            class_names = list(parts[0][1])
            layout = "class-folders"
    except OSError as exc:
        raise DatasetError(f"The folder {root} cannot be read ({exc.strerror or exc}).") from exc
    _check_classes(root, class_names)

    walk = _FolderWalk(control)
    found, ignored = walk.run(root, parts, class_names)
    candidates = (found[0], found[1] if layout == "train-val" else SampleList())
    del found
    total = sum(len(c) for c in candidates)
    if not total:
        raise DatasetError(
            f"No images found in the class folders of {root} "
            f"(looked for {', '.join(sorted({'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.webp'}))})."
        )
    bad: list[BadFile] = []
    readable = (array.array("q"), array.array("q"))  # positions of the good images in each part
    i = 0
    for samples, keep in zip(candidates, readable, strict=True):
        for j, path in enumerate(samples.paths()):
            if i % 32 == 0:
                checkpoint(control)
                report(control, ScanProgress(i, total))
            reason = check_image(path, thorough=thorough)
            if reason is not None:
                bad.append(BadFile(Path(path), reason))
            else:
                keep.append(j)
            i += 1
    report(control, ScanProgress(total, total))
    good_train, good_val = (
        c.take(np.array(k, dtype=np.int64)) for c, k in zip(candidates, readable, strict=True)
    )
    del candidates, readable

    warn = [
        f"The folder {folder} cannot be read ({why}); its images were not counted."
        for folder, why in walk.unreadable
    ]
    if layout == "class-folders":
        _check_counts(root, class_names, good_train, bad, min_per_class, "")
        train, val = stratified_split(good_train, len(class_names), val_fraction, seed)
    else:
        _check_counts(train_dir, class_names, good_train, bad, min_per_class, "training ")
        train, val = good_train, good_val
        val_counts = np.bincount(val.labels, minlength=len(class_names))
        missing = [c for c, n in zip(class_names, val_counts, strict=True) if n == 0]
        if len(missing) == len(class_names):
            raise DatasetError(
                f"The validation folder {val_dir} has no readable images; put some images of each class "
                "there, or remove it to let the app split the training images."
            )
        if missing:
            warn.append(f"No validation images for {', '.join(missing)}; their accuracy cannot be measured.")
    counts = np.bincount(np.concatenate([train.labels, val.labels]), minlength=len(class_names))
    big, small = int(counts.argmax()), int(counts.argmin())
    if counts[small] > 0 and counts[big] / counts[small] > LOPSIDED_RATIO:
        warn.append(
            f"The classes are lopsided: '{class_names[big]}' has {counts[big]} images but "
            f"'{class_names[small]}' only {counts[small]} ({counts[big] / counts[small]:.0f}×). "
            "Accuracy will favour the big classes; consider collecting more of the small ones."
        )
    if bad:
        warn.append(f"{len(bad)} unreadable image(s) will be skipped.")
    return DatasetScan(
        root=root,
        layout=layout,
        class_names=class_names,
        train=train,
        val=val,
        bad_files=bad,
        ignored_files=ignored,
        warnings=warn,
        seed=seed,
        val_fraction=val_fraction,
    )


def _check_classes(root: Path, class_names: list[str]) -> None:
    if not class_names:
        loose = [p.name for p in root.iterdir() if p.is_file() and is_image_file(p)]
        hint = (
            f" It holds {len(loose)} image(s) directly; move them into one sub-folder per class."
            if loose
            else ""
        )
        raise DatasetError(
            f"The folder {root} has no class sub-folders.{hint} Expected one folder per class, for "
            "example data/cat/*.jpg and data/dog/*.jpg (or data/train/<class> and data/val/<class>)."
        )
    if len(class_names) == 1:
        raise DatasetError(
            f"The folder {root} has a single class ('{class_names[0]}'); a classifier needs at least two. "
            "Add a folder of images for each other class."
        )


def _check_counts(
    root: Path, class_names: list[str], good: SampleList, bad: list[BadFile], min_per_class: int, what: str
) -> None:
    counts = np.bincount(good.labels, minlength=len(class_names))
    few = [(c, int(n)) for c, n in zip(class_names, counts, strict=True) if n < min_per_class]
    if not few:
        return
    detail = ", ".join(f"'{c}' has {n}" for c, n in few)
    unreadable = f" ({len(bad)} unreadable file(s) were not counted)" if bad else ""
    if all(n == 0 for _, n in few) and len(few) == len(class_names):
        raise DatasetError(f"No readable images in the class folders of {root}{unreadable}.")
    raise DatasetError(
        f"Too few {what}images: {detail}{unreadable}. Each class needs at least {min_per_class} readable "
        "images to be split into training and validation; add images or remove the class folder."
    )


# -- transforms ------------------------------------------------------------------------------------------


@dataclass
class Augmentation:
    """Random changes applied to training images only (validation uses the model's plain preprocessing)."""

    random_resized_crop: bool = True
    crop_scale_min: float = 0.6  # smallest area fraction kept by the random crop
    flip: bool = True
    rotation: float = 0.0  # degrees, ±
    color_jitter: float = 0.0  # brightness/contrast/saturation strength, 0 = off

    @property
    def enabled(self) -> bool:
        return self.random_resized_crop or self.flip or self.rotation > 0 or self.color_jitter > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augmentation:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @classmethod
    def none(cls) -> Augmentation:
        return cls(random_resized_crop=False, flip=False, rotation=0.0, color_jitter=0.0)


def make_transform(preprocess: Any, augmentation: Augmentation | None = None) -> Callable[[np.ndarray], Any]:
    """Pixels (uint8 HxWx3 or HxW) -> normalised tensor for a model with ``preprocess`` (a zoo.Preprocess).

    Without augmentation this is the model's own ``preprocess``, the single source of truth for its
    input. With augmentation the same size and normalisation are built with torchvision.transforms.v2.
    """
    if augmentation is None or not augmentation.enabled:
        return preprocess
    steps: list[Any] = [v2.ToImage()]
    interpolation = v2.InterpolationMode(getattr(preprocess, "interpolation", "bilinear"))
    if augmentation.random_resized_crop:
        scale = (min(max(augmentation.crop_scale_min, 0.05), 1.0), 1.0)
        steps.append(
            v2.RandomResizedCrop(preprocess.crop, scale=scale, interpolation=interpolation, antialias=True)
        )
    else:
        steps += [
            v2.Resize(preprocess.resize, interpolation=interpolation, antialias=True),
            v2.CenterCrop(preprocess.crop),
        ]
    if augmentation.flip:
        steps.append(v2.RandomHorizontalFlip())
    if augmentation.rotation > 0:
        steps.append(v2.RandomRotation(augmentation.rotation))
    if augmentation.color_jitter > 0:
        j = augmentation.color_jitter
        steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=0.0 if preprocess.grayscale else j))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(preprocess.mean), list(preprocess.std)),
    ]
    digit = bool(getattr(preprocess, "digit", False))
    return _AugmentedTransform(v2.Compose(steps), bool(preprocess.grayscale), digit)


class _AugmentedTransform:
    """A class rather than a closure so DataLoader worker processes can pickle it (spawn on macOS/Windows).

    ``digit``: the picture is first centred and scaled as the digits model was trained
    (``core.digits.digit_to_input``), then augmented."""

    def __init__(self, pipeline: v2.Compose, grayscale: bool, digit: bool = False) -> None:
        self.pipeline = pipeline
        self.grayscale = grayscale
        self.digit = digit

    def __call__(self, pixels: np.ndarray) -> torch.Tensor:
        if self.digit:
            from cnn_explorer.core.digits import digit_to_input

            pixels = (digit_to_input(pixels) * 255).round().astype(np.uint8)
        if self.grayscale and pixels.ndim == 3:
            pixels = np.asarray(Image.fromarray(pixels).convert("L"))
        # writable: torch refuses to wrap Pillow's read-only buffers without a warning
        return self.pipeline(np.require(pixels, requirements=["C", "W"])).as_subclass(torch.Tensor)


# -- dataset and batching --------------------------------------------------------------------------------


class ImageSamples(Dataset):
    """(path, label) samples -> ``(tensor | None, label, index, reason | None)``; never raises on a bad file.

    Grayscale files become 3-channel RGB for RGB models (and RGB becomes L for a grayscale model), via
    :func:`open_image`, the app's one image loader.
    """

    def __init__(
        self, samples: Iterable[Sample], transform: Callable[[np.ndarray], Any], *, gray: bool = False
    ):
        # kept compact, never copied: worker processes read it without copying its memory pages
        self.samples = samples if isinstance(samples, SampleList) else SampleList(samples)
        self.transform = transform
        self.gray = gray

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int, str | None]:
        path, label = self.samples[index]
        try:
            pixels = open_image(path, gray=self.gray).pixels
        except ImageLoadError as exc:
            return None, label, index, exc.reason
        return self.transform(pixels), label, index, None


@dataclass
class Batch:
    images: torch.Tensor  # (B, C, H, W); B may be 0 if every image of the batch was unreadable
    labels: torch.Tensor  # (B,) int64
    indices: torch.Tensor  # (B,) positions in the dataset
    failures: list[tuple[int, str]]  # (dataset index, reason) of skipped images

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (a DataLoader with ``pin_memory=True`` calls this), so the copy
        to the GPU can overlap the computation."""
        return Batch(self.images.pin_memory(), self.labels.pin_memory(), self.indices, self.failures)


def collate_skipping_bad(items: list[tuple[torch.Tensor | None, int, int, str | None]]) -> Batch:
    """DataLoader collate that drops unreadable images and says which they were."""
    good = [it for it in items if it[0] is not None]
    failures = [(it[2], it[3] or "unreadable") for it in items if it[0] is None]
    if not good:
        return Batch(
            torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), failures
        )
    return Batch(
        images=torch.stack([it[0] for it in good]),
        labels=torch.tensor([it[1] for it in good], dtype=torch.long),
        indices=torch.tensor([it[2] for it in good], dtype=torch.long),
        failures=failures,
    )


# -- loading in worker processes ------------------------------------------------------------------------

# Below this many images, starting worker processes (each imports torch and the transforms: about a second)
# costs more than decoding in the training process saves.
WORKERS_FROM_IMAGES = 512
# Beyond this many workers decoding stops being the bottleneck (the model's steps are), and each worker is
# one more process holding its own prefetched batches.
MAX_AUTO_WORKERS = 8
# With fewer cores than this per training process, there is no core to spare: a worker decoding takes one
# the forward pass wants. Measured on 2 cores (benchmarks/bench_scale.py): one worker gave 0.81-0.88x the
# speed of none at 64 px inputs, and 0.98x at 224 px.
WORKERS_FROM_CORES = 4


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one), at least 1."""
    try:
        n = len(os.sched_getaffinity(0))  # Linux: a container or taskset may allow fewer than exist
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


def resolve_num_workers(setting: int | None, n_images: int, *, processes: int = 1) -> int:
    """DataLoader worker processes for a setting: a number is used as given; None chooses.

    Automatic: none for a dataset under :data:`WORKERS_FROM_IMAGES` images (the start-up would cost more
    than it saves), else one per usable core but one (the training process itself needs a core for the
    forward and backward passes), at most :data:`MAX_AUTO_WORKERS`; none where a process has fewer than
    :data:`WORKERS_FROM_CORES` cores. ``processes`` training processes on this machine (torchrun's local
    world) share its cores: each gets its part.
    """
    if setting is not None:
        return operator.index(setting)
    cores = usable_cpus() // max(1, processes)
    if n_images < WORKERS_FROM_IMAGES or cores < WORKERS_FROM_CORES:
        return 0
    return min(MAX_AUTO_WORKERS, cores - 1)


class EpochBatches(Sampler[list[int]]):
    """A batch sampler whose ``plan`` (the batches of dataset indices) is replaced between epochs.

    One DataLoader with persistent workers can so serve every epoch: the sampler runs in the main process,
    and ``iter(loader)`` reads the plan afresh, so a new plan takes effect at the next ``iter(loader)``
    (not in an epoch already started: its first batches are already being prefetched).
    """

    def __init__(self, plan: Iterable[Sequence[int]] = ()) -> None:
        self.plan: list[list[int]] = [list(b) for b in plan]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.plan)

    def __len__(self) -> int:
        return len(self.plan)


def _ignore_interrupts(worker_id: int) -> None:
    """A worker's start: Ctrl+C in a terminal is sent to the whole process group, workers included. The
    training process stops the run cleanly and shuts its workers down; a worker that died of the
    KeyboardInterrupt would instead make the next batch fetch fail ("worker exited unexpectedly").
    (Workers already end with their parent: torch watches for that.) Module-level so spawn can pickle it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_loader(
    dataset: Dataset, batches: EpochBatches, *, num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over ``dataset`` in ``batches`` (replace ``batches.plan`` between epochs), giving
    :class:`Batch` es; with workers, they persist across epochs. End it with :func:`close_loader`."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate_skipping_bad,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=_ignore_interrupts if num_workers > 0 else None,
    )


def close_loader(loader: DataLoader | None) -> None:
    """Shut a loader's persistent worker processes down now, not whenever it is garbage collected, so no
    child process outlives a run. Safe to call again, or on a loader without workers; a later
    ``iter(loader)`` would start fresh workers."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is None:
        return
    shutdown = getattr(iterator, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()  # joins the workers (and the pin-memory thread); does nothing the second time
    loader._iterator = None


def write_animal_dataset(
    root: str | os.PathLike[str],
    *,
    per_class: int = 40,
    classes: Sequence[str] | None = None,
    layout: str = "class-folders",
    val_per_class: int = 10,
    counts: dict[str, int] | None = None,
) -> Path:
    """The bundled animal silhouettes (assets/animal_shapes.npz, 28×28 grey PNG) written as a dataset:
    ``root/<class>/*.png``, or ``root/{train,val}/<class>/`` with ``layout="train-val"``.

    A small real dataset for trying the Fine-tune page, its screenshot, the tests and the benchmarks.
    ``counts`` overrides ``per_class`` for single classes (to make lopsided or too-small classes).
    """
    root = Path(root)
    with np.load(assets_dir() / "animal_shapes.npz") as data:
        images, labels = data["images"], data["labels"]
        names = [str(c) for c in data["class_names"]]
    for name in classes or names:
        idx = np.flatnonzero(labels == names.index(name))
        n = (counts or {}).get(name, per_class)
        if layout == "train-val":
            parts = {"train": idx[:n], "val": idx[n : n + val_per_class]}
        else:
            parts = {"": idx[:n]}
        for part, chosen in parts.items():
            folder = root / part / name if part else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                Image.fromarray(images[i], mode="L").save(folder / f"{name}_{i:03d}.png")
    return root
