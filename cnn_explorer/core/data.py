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

import os
import random
import stat
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
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


@dataclass
class DatasetScan:
    """Everything known about a dataset before training: classes, split, problems."""

    root: Path
    layout: str  # "class-folders" (split here) or "train-val" (split given by the folders)
    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    bad_files: list[BadFile] = field(default_factory=list)
    ignored_files: list[Path] = field(default_factory=list)  # not images by their extension
    warnings: list[str] = field(default_factory=list)
    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_counts(self) -> dict[str, tuple[int, int]]:
        """{class name: (train images, validation images)} over readable images."""
        train = np.bincount([y for _, y in self.train], minlength=self.num_classes)
        val = np.bincount([y for _, y in self.val], minlength=self.num_classes)
        return {name: (int(train[i]), int(val[i])) for i, name in enumerate(self.class_names)}

    def examples(self, class_name: str, k: int = 4) -> list[Path]:
        """The first ``k`` training images of a class (for thumbnails)."""
        idx = self.class_names.index(class_name)
        return [Path(p) for p, y in self.train if y == idx][:k]

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
            train=[(str(root / p), int(y)) for p, y in d["train"]],
            val=[(str(root / p), int(y)) for p, y in d["val"]],
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
        self.ignored: list[Path] = []
        self.unreadable: list[tuple[str, str]] = []  # (folder, reason) of folders that cannot be listed

    def run(
        self, root: Path, parts: Sequence[tuple[Path, dict[str, str]]], class_names: Sequence[str]
    ) -> tuple[list[list[Sample]], list[Path]]:
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
        if st is not None and stat.S_ISDIR(st.st_mode):
            if self._first_visit(st):
                pending.append(path)
        elif is_image_file(name):
            identity = (st.st_dev, st.st_ino) if st is not None else None
            self.found.append(_Found(via_link, part, label, folder, name, identity))
        elif st is not None and stat.S_ISREG(st.st_mode):
            self.ignored.append(Path(path))

    def _samples(self, n_parts: int) -> list[list[Sample]]:
        """Each file once: a real path before a link, then the first in sorted order (train before val)."""
        seen: set[_Identity] = set()
        kept: list[_Found] = []
        for f in sorted(self.found, key=lambda f: f[:5]):
            if f.identity is not None:
                if f.identity in seen:
                    continue
                seen.add(f.identity)
            kept.append(f)
        # class by class, folder by folder, name by name: the order torchvision's make_dataset gives
        kept.sort(key=lambda f: (f.part, f.label, f.folder, f.name))
        samples: list[list[Sample]] = [[] for _ in range(n_parts)]
        for f in kept:
            samples[f.part].append((os.path.join(f.folder, f.name), f.label))
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
    samples: Sequence[Sample], num_classes: int, val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Per class: shuffle with ``seed``, put ``round(n * val_fraction)`` (at least 1) into validation.

    Every class keeps at least one training image. The result depends only on the (sorted) file list and
    the seed, so a run can be reproduced from its settings.
    """
    rng = random.Random(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for c in range(num_classes):
        members = sorted(s for s in samples if s[1] == c)
        rng.shuffle(members)
        if len(members) < 2:
            train += members
            continue
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


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
    train_all, val_all = found[0], (found[1] if layout == "train-val" else [])

    candidates = [(s, "train") for s in train_all] + [(s, "val") for s in val_all]
    if not candidates:
        raise DatasetError(
            f"No images found in the class folders of {root} "
            f"(looked for {', '.join(sorted({'.png', '.jpg', '.jpeg', '.bmp', '.tif', '.webp'}))})."
        )
    bad: list[BadFile] = []
    good_train: list[Sample] = []
    good_val: list[Sample] = []
    for i, ((path, label), part) in enumerate(candidates):
        if i % 32 == 0:
            checkpoint(control)
            report(control, ScanProgress(i, len(candidates)))
        reason = check_image(path, thorough=thorough)
        if reason is not None:
            bad.append(BadFile(Path(path), reason))
        elif part == "train":
            good_train.append((path, label))
        else:
            good_val.append((path, label))
    report(control, ScanProgress(len(candidates), len(candidates)))

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
        val_counts = np.bincount([y for _, y in val], minlength=len(class_names))
        missing = [c for c, n in zip(class_names, val_counts, strict=True) if n == 0]
        if len(missing) == len(class_names):
            raise DatasetError(
                f"The validation folder {val_dir} has no readable images; put some images of each class "
                "there, or remove it to let the app split the training images."
            )
        if missing:
            warn.append(f"No validation images for {', '.join(missing)}; their accuracy cannot be measured.")
    counts = np.bincount([y for _, y in train + val], minlength=len(class_names))
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
    root: Path, class_names: list[str], good: list[Sample], bad: list[BadFile], min_per_class: int, what: str
) -> None:
    counts = np.bincount([y for _, y in good], minlength=len(class_names))
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
        self, samples: Sequence[Sample], transform: Callable[[np.ndarray], Any], *, gray: bool = False
    ):
        self.samples = list(samples)
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
