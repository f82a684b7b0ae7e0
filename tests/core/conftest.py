"""Datasets for the fine-tuning tests, written as real image folders from the bundled animal silhouettes.

Tests get the helpers as fixtures (``make_image_folder``, ``add_bad_files``, ``make_truncated_jpeg``) rather
than by importing this module, so they never depend on which ``conftest`` module Python imported last."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explorer.core.data import write_animal_dataset


def _add_bad_files(root: Path, class_name: str = "cat") -> dict[str, Path]:
    """Unreadable files of the kinds people really have, in one class folder. Returns them by kind."""
    folder = root / class_name
    good = next(folder.glob("*.png"))
    data = good.read_bytes()
    bad = {
        "truncated_png": folder / "zz_truncated.png",
        "text_as_jpg": folder / "zz_notes.jpg",
        "empty": folder / "zz_empty.png",
    }
    bad["truncated_png"].write_bytes(data[: len(data) // 2])
    bad["text_as_jpg"].write_text("this is not a picture, just a note someone saved with the wrong name\n")
    bad["empty"].write_bytes(b"")
    (folder / "readme.txt").write_text("not an image; ignored by extension\n")
    return bad


def _truncated_jpeg(path: Path) -> Path:
    """A JPEG cut short: its header is fine (passes the quick scan), decoding fails during training."""
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    return path


@pytest.fixture
def make_image_folder():
    """``make_image_folder(root, per_class=40, classes=None, layout="class-folders", ...)`` -> root."""
    return write_animal_dataset


@pytest.fixture
def add_bad_files():
    """``add_bad_files(root, class_name="cat")`` -> {kind: path} of unreadable files added to a class."""
    return _add_bad_files


@pytest.fixture
def make_truncated_jpeg():
    """``make_truncated_jpeg(path)`` -> path of a JPEG that passes the quick scan but cannot be decoded."""
    return _truncated_jpeg


@pytest.fixture
def animal_folder(tmp_path: Path) -> Path:
    """5 classes × 40 silhouettes in ``root/<class>/``."""
    return write_animal_dataset(tmp_path / "animals", per_class=40)


@pytest.fixture(scope="session")
def animal_folder_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only 5 × 60 silhouettes shared by the training tests (written once per session)."""
    return write_animal_dataset(tmp_path_factory.mktemp("shared") / "animals", per_class=60)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 8 silhouettes: enough for mechanics tests that do not care about accuracy."""
    return write_animal_dataset(
        tmp_path_factory.mktemp("tiny") / "animals", per_class=8, classes=["bird", "elephant", "giraffe"]
    )


@pytest.fixture(scope="session")
def make_feature_run(tiny_folder: Path):
    """``make_feature_run(run_dir) -> run_dir``: a real one-epoch feature-extractor run of the offline
    Lite0 at 64×64 on ``tiny_folder`` (a few seconds)."""
    from cnn_explorer.core.train_config import TrainConfig
    from cnn_explorer.core.training import fit, run_to_end

    def make(run: Path) -> Path:
        config = TrainConfig(
            data=str(tiny_folder),
            model="efficientnet_lite0",
            strategy="feature-extractor",
            epochs=1,
            batch_size=8,
            image_size=64,
            allow_download=False,
        )
        run_to_end(fit(config, run))
        return run

    return make
