"""Dataset scans that must not be fooled: looping links, duplicates, junk entries, look-alike class names,
thin strips of images, and folders big enough that the listing itself needs progress and a cancel."""

from __future__ import annotations

import io
import os
import shutil
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError, ScanProgress, scan_dataset
from cnn_explorer.core.images import MAX_ASPECT_RATIO, check_dimensions

CAFE_NFC = unicodedata.normalize("NFC", "café")
CAFE_NFD = unicodedata.normalize("NFD", "café")


def _link(link: Path, target: str | Path) -> None:
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("this system does not let us make symbolic links")


def _used(scan) -> list[Path]:
    return [Path(p) for p, _ in scan.train + scan.val]


def _png_bytes(size: tuple[int, int] = (4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG")
    return buf.getvalue()


# -- images too thin to resize -------------------------------------------------------------------------


def test_strip_image_is_a_bad_file_with_the_loaders_reason(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    Image.new("L", (1, 40000), 200).save(root / "cat" / "strip.png")
    scan = scan_dataset(root)
    assert [(b.path.name, b.reason) for b in scan.bad_files] == [("strip.png", check_dimensions(1, 40000))]
    assert "40000:1" in scan.bad_files[0].reason and f"{MAX_ASPECT_RATIO}:1" in scan.bad_files[0].reason
    assert scan.class_counts() == {"bird": (5, 1), "cat": (5, 1)}
    assert "strip.png" in scan.summary()


# -- links and duplicates --------------------------------------------------------------------------------


def test_folders_that_loop_count_each_real_file_once(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    cat = root / "cat"
    for sub in ("x", "a", "b"):
        (cat / sub).mkdir()
        shutil.copy(next((root / "bird").glob("*.png")), cat / sub / f"{sub}_extra.png")
    _link(cat / "x" / "up", "..")  # back to the class folder
    _link(cat / "root", "..")  # the dataset root, with every class in it
    _link(cat / "a" / "to_b", "../b")  # a -> b -> a
    _link(cat / "b" / "to_a", "../a")
    _link(cat / "p", "q")  # two links pointing at each other: no file at the end
    _link(cat / "q", "p")
    _link(root / "bird" / "cats", "../cat")  # a sibling class folder
    _link(root / "p", "q")  # and a pair beside the class folders: no class, no crash
    _link(root / "q", "p")
    scan = scan_dataset(root)
    assert scan.class_names == ["bird", "cat"]
    assert scan.class_counts() == {"bird": (5, 1), "cat": (7, 2)}  # 6 + 6 + 3 real files, once each
    used = _used(scan)
    assert len({p.resolve() for p in used}) == len(used)  # no file twice under another path
    assert sorted(p.relative_to(root).parent.as_posix() for p in used if p.parent.name in "abx") == [
        "cat/a",
        "cat/b",
        "cat/x",
    ]  # each found by its real path, not through a link
    assert not scan.bad_files and not scan.ignored_files


def test_a_file_reached_by_several_paths_counts_once(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    real = sorted((root / "cat").glob("*.png"))[0]
    _link(root / "cat" / "zz_favourite.png", real.name)  # a link in the same folder
    _link(root / "bird" / "zz_looks_like_a_bird.png", f"../cat/{real.name}")  # a link from another class
    os.link(real, root / "cat" / "zz_hard_copy.png")  # a second name for the same file
    scan = scan_dataset(root)
    assert scan.class_counts() == {"bird": (5, 1), "cat": (5, 1)}
    used = [p.name for p in _used(scan)]
    assert real.name in used  # kept where it really lies, under its own name
    assert not {"zz_favourite.png", "zz_looks_like_a_bird.png", "zz_hard_copy.png"} & set(used)


def test_linked_folders_outside_the_dataset_are_followed(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    more_cats = make_image_folder(tmp_path / "more", per_class=4, classes=["cat"]) / "cat"
    dogs = make_image_folder(tmp_path / "elsewhere", per_class=5, classes=["horse"]) / "horse"
    _link(root / "cat" / "more", more_cats)
    _link(root / "cat" / "more_again", more_cats)  # a second link to the same folder adds nothing
    _link(root / "dog", dogs)  # a whole class kept elsewhere
    scan = scan_dataset(root)
    assert scan.class_names == ["bird", "cat", "dog"]
    assert {c: sum(n) for c, n in scan.class_counts().items()} == {"bird": 6, "cat": 10, "dog": 5}
    cat_folders = {Path(p).parent.name for p, y in scan.train + scan.val if y == 1}
    assert cat_folders == {"cat", "more"}  # read through the first link, by name order


def test_broken_link_to_an_image_is_reported(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    _link(root / "cat" / "moved.png", "nowhere/moved.png")
    _link(root / "cat" / "notes.txt", "nowhere/notes.txt")  # not an image: not worth a mention
    scan = scan_dataset(root)
    assert [b.path.name for b in scan.bad_files] == ["moved.png"]
    assert "link" in scan.bad_files[0].reason and "does not exist" in scan.bad_files[0].reason
    assert not scan.ignored_files


def test_hidden_and_system_entries_are_silently_ignored(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    png = next((root / "cat").glob("*.png")).read_bytes()
    cat = root / "cat"
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "._cat_000.png").write_bytes(b"\0\5\26\7AppleDouble")  # macOS resource fork, not a PNG
    (cat / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (cat / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (cat / ".thumbnails").mkdir()
    (cat / ".thumbnails" / "small.png").write_bytes(png)
    for junk in (root / "__MACOSX" / "cat", root / ".git"):
        junk.mkdir(parents=True)
        (junk / "x.png").write_bytes(png)
    (cat / "readme.txt").write_text("a note, not an image\n")  # the one that is worth a mention
    scan = scan_dataset(root)
    assert scan.class_names == ["bird", "cat"]
    assert scan.class_counts() == {"bird": (5, 1), "cat": (5, 1)}
    assert not scan.bad_files
    assert [p.name for p in scan.ignored_files] == ["readme.txt"]


# -- class names that look the same ------------------------------------------------------------------


def _make_dirs(*folders: Path) -> None:
    try:
        for f in folders:
            f.mkdir(parents=True)
    except FileExistsError:
        pytest.skip("this file system takes both spellings of a name for one")


def test_decomposed_val_folder_matches_composed_train_folder(tmp_path: Path, make_image_folder):
    root = make_image_folder(
        tmp_path / "d", per_class=6, classes=["bird", "cat"], layout="train-val", val_per_class=2
    )
    _make_dirs(root / "train" / CAFE_NFC, root / "val" / CAFE_NFD)
    for part, name, n in (("train", CAFE_NFC, 6), ("val", CAFE_NFD, 2)):
        for i in range(n):
            (root / part / name / f"cup{i}.png").write_bytes(_png_bytes())
    scan = scan_dataset(root)
    assert scan.class_names == ["bird", CAFE_NFC, "cat"]
    assert scan.class_counts()[CAFE_NFC] == (6, 2)
    val_cups = [Path(p) for p, y in scan.val if y == 1]
    assert len(val_cups) == 2 and all(p.parent.name == CAFE_NFD and p.is_file() for p in val_cups)


def test_class_names_are_stored_composed(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird"])
    _make_dirs(root / CAFE_NFD)
    for i in range(6):
        (root / CAFE_NFD / f"cup{i}.png").write_bytes(_png_bytes())
    scan = scan_dataset(root)
    assert scan.class_names == ["bird", CAFE_NFC]
    assert len(scan.examples(CAFE_NFC)) == 4 and all(p.is_file() for p in scan.examples(CAFE_NFC))


def test_two_class_folders_differing_only_in_accent_encoding_are_an_error(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird"])
    _make_dirs(root / CAFE_NFC, root / CAFE_NFD)
    with pytest.raises(DatasetError) as info:
        scan_dataset(root)
    message = str(info.value)
    assert str(root) in message and message.count(CAFE_NFC) == message.count(CAFE_NFD) == 1
    assert "composed: U+0063 U+0061 U+0066 U+00E9" in message
    assert "decomposed: U+0063 U+0061 U+0066 U+0065 U+0301" in message
    assert "merge them" in message and "rename" in message


# -- big folders: the listing reports progress and stops when asked ----------------------------------


def _many_files(root: Path, per_class: int) -> Path:
    data = _png_bytes()
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"{i:06d}.png").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes × 10,000 tiny PNGs (distinct files: hard links would rightly count once)."""
    return _many_files(tmp_path_factory.mktemp("big") / "d", 10_000)


def _cancelling_control(events: list[ScanProgress], phase: str, done: int) -> Control:
    """A Control that records the events and cancels at the first ``phase`` event with ``done`` or more."""

    def on_event(event: ScanProgress) -> None:
        events.append(event)
        if event.phase == phase and event.done >= done:
            control.cancel()

    control = Control(report=on_event)
    return control


def test_listing_a_big_folder_reports_progress(big_folder: Path):
    events: list[ScanProgress] = []
    control = _cancelling_control(events, "checking", 0)  # stop once the listing is done
    with pytest.raises(Cancelled):
        scan_dataset(big_folder, control=control)
    listing = [e for e in events if e.phase == "listing"]
    assert listing[0] == ScanProgress(0, 0, "listing")
    assert listing[-1].done == listing[-1].total >= 20_000  # the end of the listing: every entry seen
    assert all(e.total == 0 for e in listing[1:-1])  # the total is not known while walking
    dones = [e.done for e in listing]
    assert dones == sorted(dones) and len(set(dones)) >= 10  # it moves ...
    assert len(listing) <= 20_000 // 100  # ... in steps, not once per file
    checking = [e for e in events if e.phase == "checking"]
    assert checking == [ScanProgress(0, 20_000)]  # then the check starts; done/total mean what they did


def test_cancel_during_the_listing_stops_it_promptly(big_folder: Path):
    events: list[ScanProgress] = []
    control = _cancelling_control(events, "listing", 1)
    with pytest.raises(Cancelled):
        scan_dataset(big_folder, control=control)
    assert all(e.phase == "listing" for e in events)  # no image was checked
    assert len(events) == 2 and events[-1].done < 1_000  # stopped at the first report after the cancel


@pytest.mark.slow
def test_cancel_during_the_listing_of_100000_files(tmp_path: Path):
    root = _many_files(tmp_path / "d", 50_000)
    events: list[ScanProgress] = []
    control = _cancelling_control(events, "listing", 40_000)
    with pytest.raises(Cancelled):
        scan_dataset(root, control=control)
    assert all(e.phase == "listing" for e in events) and 40_000 <= events[-1].done < 41_000


def test_cancelled_before_it_starts_lists_nothing(big_folder: Path):
    events: list[ScanProgress] = []
    control = Control(report=events.append)
    control.cancel()
    with pytest.raises(Cancelled):
        scan_dataset(big_folder, control=control)
    assert events == [ScanProgress(0, 0, "listing")]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="needs POSIX permissions that bind (not root)"
)
def test_unreadable_subfolder_is_a_warning_not_a_crash(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=6, classes=["bird", "cat"])
    locked = root / "cat" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        scan = scan_dataset(root)
    finally:
        locked.chmod(0o755)
    assert scan.class_counts() == {"bird": (5, 1), "cat": (5, 1)}
    assert any(str(locked) in w and "cannot be read" in w for w in scan.warnings)
