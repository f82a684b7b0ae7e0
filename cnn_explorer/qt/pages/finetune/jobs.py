"""The Fine-tune page's worker bodies and plain helpers.

The worker bodies (``scan_with_thumbnails``, ``demo_scan``, ``read_run_view``, ``gallery_items``) run on
worker threads and touch no widget; the helpers format numbers and durations, pick a combo entry and
name the default runs folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QComboBox

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.data import DEFAULT_VAL_FRACTION, DatasetScan, scan_dataset, write_animal_dataset
from cnn_explorer.core.runs import RunDir, RunRecord, ValPrediction, load_run
from cnn_explorer.qt.widgets.image_gallery import GalleryItem
from cnn_explorer.qt.widgets.thumbnails import load_thumbnail

THUMBS_PER_CLASS = 6


# -- worker bodies (no widgets here: these run on worker threads) ----------------------------------
@dataclass
class ScanOutcome:
    scan: DatasetScan
    thumbnails: dict[str, list[np.ndarray]]


def scan_with_thumbnails(
    folder: str | Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    per_class: int = THUMBS_PER_CLASS,
    control: Control | None = None,
) -> ScanOutcome:
    """core.data.scan_dataset, plus a few example thumbnails per class for the summary table."""
    scan = scan_dataset(folder, val_fraction=val_fraction, seed=seed, control=control)
    thumbs: dict[str, list[np.ndarray]] = {}
    for name in scan.class_names:
        checkpoint(control)
        found = (load_thumbnail(p) for p in scan.examples(name, per_class))
        thumbs[name] = [t for t in found if t is not None]
    return ScanOutcome(scan, thumbs)


def demo_scan(root: str | Path, *, per_class: int = 30, control: Control | None = None) -> ScanOutcome:
    """Write the silhouettes to ``root`` and scan them (the screenshot's dataset)."""
    write_animal_dataset(root, per_class=per_class)
    return scan_with_thumbnails(root, control=control)


@dataclass
class RunView:
    """Everything "Show" displays of a finished or stopped run."""

    record: RunRecord
    steps: list[tuple[int, int, int, float, float]]
    confusion: tuple[np.ndarray, list[str]] | None
    predictions: list[ValPrediction] = field(default_factory=list)


def read_run_view(run_dir: str | Path) -> RunView:
    run = RunDir(run_dir)
    return RunView(load_run(run_dir), run.read_steps(), run.read_confusion(), run.read_predictions())


def gallery_items(predictions: Sequence[ValPrediction], control: Control | None = None) -> list[GalleryItem]:
    out: list[GalleryItem] = []
    for p in predictions:
        checkpoint(control)
        out.append((p.path, load_thumbnail(p.path, 72), f"{p.predicted} {p.confidence:.0%}"))
    return out


# -- small helpers -------------------------------------------------------------------------------
def format_count(n: int) -> str:
    """A parameter count: ``"1.2 M"`` from a million on, else with thousands separators."""
    return f"{n / 1e6:.1f} M" if n >= 1_000_000 else f"{n:,}"


def choose_data(combo: QComboBox, data: object) -> None:
    """Select the entry of ``combo`` whose data is ``data`` (if offered)."""
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)


def default_runs_folder() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".cnn-explorer") / "runs"
