"""Dataset scanning, splitting, bad-file reporting and transforms, on real image folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import (
    Augmentation,
    DatasetError,
    DatasetScan,
    ImageSamples,
    ScanProgress,
    check_image,
    collate_skipping_bad,
    make_transform,
    scan_dataset,
    stratified_split,
)


class _Pre:
    """Stands in for zoo.Preprocess in transform tests: the same fields, a deliberately simple __call__."""

    resize, crop, grayscale = 40, 32, False
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __call__(self, pixels: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.array(pixels)).float() / 255
        t = t.permute(2, 0, 1) if t.ndim == 3 else t[None]
        return t


def test_class_folders_split_is_stratified_and_seeded(animal_folder: Path):
    scan = scan_dataset(animal_folder, val_fraction=0.25, seed=3)
    assert scan.layout == "class-folders"
    assert scan.class_names == ["bird", "cat", "elephant", "giraffe", "horse"]
    assert scan.class_counts() == {c: (30, 10) for c in scan.class_names}
    assert not scan.bad_files and not scan.warnings
    # no image in both parts; the same seed gives the same split, another seed a different one
    assert not {p for p, _ in scan.train} & {p for p, _ in scan.val}
    again = scan_dataset(animal_folder, val_fraction=0.25, seed=3)
    assert again.val == scan.val
    assert scan_dataset(animal_folder, val_fraction=0.25, seed=4).val != scan.val
    # labels follow the folders
    assert all(Path(p).parent.name == scan.class_names[y] for p, y in scan.train + scan.val)


def test_train_val_layout_is_used_as_given(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=12, layout="train-val", val_per_class=4)
    scan = scan_dataset(root)
    assert scan.layout == "train-val"
    assert scan.class_counts() == {c: (12, 4) for c in scan.class_names}
    assert all("/val/" in Path(p).as_posix() for p, _ in scan.val)


def test_split_round_trips_through_json(animal_folder: Path):
    scan = scan_dataset(animal_folder)
    back = DatasetScan.from_dict(scan.to_dict())
    assert back.train == scan.train and back.val == scan.val and back.class_names == scan.class_names


def test_stratified_split_keeps_a_training_image_per_class():
    samples = [(f"a{i}", 0) for i in range(2)] + [(f"b{i}", 1) for i in range(10)]
    train, val = stratified_split(samples, 2, 0.5, seed=0)
    assert sorted(y for _, y in val) == [0, 1, 1, 1, 1, 1]
    assert sorted(y for _, y in train) == [0, 1, 1, 1, 1, 1]


def test_bad_files_are_named_counted_and_skipped(animal_folder: Path, add_bad_files):
    bad = add_bad_files(animal_folder)
    scan = scan_dataset(animal_folder)
    reported = {b.path.name: b.reason for b in scan.bad_files}
    assert set(reported) == {p.name for p in bad.values()}
    assert "empty" in reported["zz_empty.png"]
    assert "text" in reported["zz_notes.jpg"]
    assert "truncated" in reported["zz_truncated.png"] or "damaged" in reported["zz_truncated.png"]
    assert [p.name for p in scan.ignored_files] == ["readme.txt"]
    used = {Path(p).name for p, _ in scan.train + scan.val}
    assert not used & set(reported)
    assert scan.class_counts()["cat"] == (32, 8)  # the 40 good ones, split as usual
    text = scan.summary()
    assert "3 unreadable file(s) skipped" in text and "zz_empty.png" in text and "readme.txt" in text


def test_quick_scan_misses_truncated_jpeg_but_thorough_finds_it(animal_folder: Path, make_truncated_jpeg):
    path = make_truncated_jpeg(animal_folder / "horse" / "zz_cut.jpg")
    assert check_image(path) is None  # header and structure look fine
    assert "truncated" in check_image(path, thorough=True)
    scan = scan_dataset(animal_folder, thorough=True)
    assert [b.path.name for b in scan.bad_files] == ["zz_cut.jpg"]


def test_decoding_failure_during_loading_is_skipped_and_reported(animal_folder: Path, make_truncated_jpeg):
    path = make_truncated_jpeg(animal_folder / "horse" / "zz_cut.jpg")
    scan = scan_dataset(animal_folder)  # quick: lets it through
    assert str(path) in {p for p, _ in scan.train + scan.val}
    samples = [(str(path), 4), *scan.train[:5]]
    loader = DataLoader(
        ImageSamples(samples, make_transform(_Pre())), batch_size=6, collate_fn=collate_skipping_bad
    )
    batch = next(iter(loader))
    assert batch.images.shape == (5, 3, 28, 28)  # gray silhouettes became 3-channel
    assert batch.indices.tolist() == [1, 2, 3, 4, 5]
    assert batch.failures == [(0, "the file is truncated or damaged (it ends before the image data does)")]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda root, make: root / "missing", "does not exist"),
        (lambda root, make: (root / "f.txt").write_text("x") and root / "f.txt", "is a file"),
        (lambda root, make: (root / "empty").mkdir() or root / "empty", "no class sub-folders"),
        (lambda root, make: make(root / "one", classes=["cat"], per_class=10), "single class"),
        (
            lambda root, make: make(root / "few", per_class=10, counts={"bird": 3}),
            "'bird' has 3",
        ),
    ],
)
def test_unusable_datasets_get_a_clear_message(tmp_path: Path, make_image_folder, make, needle: str):
    with pytest.raises(DatasetError, match=needle):
        scan_dataset(make(tmp_path, make_image_folder))


def test_loose_images_without_class_folders_are_explained(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=3, classes=["cat"])
    for p in (root / "cat").iterdir():
        shutil.move(p, root / p.name)
    (root / "cat").rmdir()
    with pytest.raises(DatasetError, match="holds 3 image"):
        scan_dataset(root)


def test_class_folders_without_any_images(tmp_path: Path):
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="No images found"):
        scan_dataset(tmp_path)


def test_class_of_only_bad_files_says_so(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=10, classes=["bird", "cat"])
    for p in (root / "cat").iterdir():
        p.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"'cat' has 0 \(10 unreadable"):
        scan_dataset(root)


def test_lopsided_classes_warn_but_scan(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=60, classes=["bird", "cat"], counts={"cat": 6})
    scan = scan_dataset(root)
    assert len(scan.warnings) == 1 and "lopsided" in scan.warnings[0] and "'cat' only 6" in scan.warnings[0]


def test_val_classes_unknown_to_training_are_an_error(tmp_path: Path, make_image_folder):
    root = make_image_folder(tmp_path / "d", per_class=8, layout="train-val", val_per_class=2)
    shutil.copytree(root / "val" / "cat", root / "val" / "zebra")
    with pytest.raises(DatasetError, match="zebra"):
        scan_dataset(root)


def test_scan_reports_progress_and_can_be_cancelled(animal_folder: Path):
    seen: list[ScanProgress] = []
    scan_dataset(animal_folder, control=Control(report=seen.append))
    assert seen[-1] == ScanProgress(200, 200) and seen[0].done == 0
    control = Control()
    control.cancel()
    with pytest.raises(Cancelled):
        scan_dataset(animal_folder, control=control)


def test_transform_without_augmentation_is_the_models_preprocess():
    pre = _Pre()
    assert make_transform(pre, None) is pre
    assert make_transform(pre, Augmentation.none()) is pre


def test_augmentation_gives_model_sized_normalised_varying_tensors():
    pre = _Pre()
    aug = make_transform(pre, Augmentation(rotation=15, color_jitter=0.3))
    pixels = np.random.default_rng(0).integers(0, 255, (50, 70), dtype=np.uint8)  # grayscale input
    rgb = np.repeat(pixels[..., None], 3, axis=2)
    torch.manual_seed(0)
    a, b = aug(rgb), aug(rgb)
    assert a.shape == b.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.equal(a, b)  # random each time
    # normalised with the model's mean/std: uint8 0..255 -> (0..1 - 0.5) / 0.25 = -2..2
    assert a.min() >= -2.0001 and a.max() <= 2.0001
