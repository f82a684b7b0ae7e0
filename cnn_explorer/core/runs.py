"""Run directories: everything a fine-tuning run leaves behind, and the history of earlier runs.

One folder per run::

    config.json        the settings (a TrainConfig as a dict) — enough to repeat or resume the run
    dataset.json       the classes and the exact train/val split (paths relative to the dataset root)
    summary.json       status (running / finished / stopped / diverged / failed), message, final numbers
    metrics.csv        one row per epoch: losses, accuracies, learning rate, speed
    steps.csv          one row per training step: loss and learning rate
    best.pt, last.pt   checkpoints (zoo.save_checkpoint: weights + class names + architecture + preprocessing)
    confusion.csv      confusion matrix of the best epoch on the validation images (rows = true class)
    misclassified.csv  validation images the best epoch got wrong: path, true, predicted, confidence
    val_predictions.csv  the same for every readable validation image (for "show the images of a cell")

Every JSON file and checkpoint is written to a temporary name and renamed, so a crash leaves the previous
good version in place. The CSV logs are appended row by row and trimmed on resume.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"
STEPS_FILE = "steps.csv"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
CONFUSION_FILE = "confusion.csv"
MISCLASSIFIED_FILE = "misclassified.csv"
PREDICTIONS_FILE = "val_predictions.csv"

STATUSES = ("running", "finished", "stopped", "diverged", "failed")


class RunDirError(Exception):
    """A run directory cannot be created, read or resumed; ``str(err)`` says why."""


@dataclass
class EpochMetrics:
    """One row of metrics.csv."""

    epoch: int  # 1-based
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    images_per_s: float
    seconds: float


@dataclass
class ValPrediction:
    """What the best epoch predicted for one validation image."""

    path: str
    true: str
    predicted: str
    confidence: float  # softmax probability of the predicted class

    @property
    def correct(self) -> bool:
        return self.true == self.predicted


Misclassified = ValPrediction  # a ValPrediction whose prediction is wrong (misclassified.csv)


@dataclass
class RunSummary:
    """summary.json: where a run stands and its headline numbers."""

    status: str = "running"
    message: str = ""
    epochs_done: int = 0
    epochs: int = 0
    best_epoch: int = 0
    best_val_acc: float = float("nan")
    best_val_loss: float = float("nan")
    final_train_loss: float = float("nan")
    final_val_acc: float = float("nan")
    n_train: int = 0
    n_val: int = 0
    num_classes: int = 0
    bad_files: int = 0
    device: str = ""
    weights: str = ""  # where the starting weights came from (zoo's weights_detail)
    started: float = 0.0  # time.time()
    updated: float = 0.0
    seconds: float = 0.0  # training time so far, summed over resumes

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        kw = {}
        for f in fields(cls):
            if f.name in d:
                v = d[f.name]
                kw[f.name] = float("nan") if v is None and f.type == "float" else v
        return cls(**kw)


# -- writing -----------------------------------------------------------------------------------------------


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """JSON to a temporary file in the same folder, then renamed over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise RunDirError(f"{path.parent} is not a run directory ({path.name} is missing).") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"Cannot read {path}: {exc}") from exc


class RunDir:
    """The files of one run; training writes through this, viewers read through :func:`load_run`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # paths
    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: dict[str, Any], dataset: dict[str, Any]) -> RunDir:
        """Make a new run folder; refuse one that already holds a run or other files."""
        run = cls(path)
        if run.path.exists() and not run.path.is_dir():
            raise RunDirError(f"{run.path} is a file; choose a folder for the run.")
        if run.path.is_dir() and any(run.path.iterdir()):
            what = "a run" if run.exists() else "other files"
            raise RunDirError(f"{run.path} already holds {what}; choose a new folder (or resume that run).")
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"Cannot create the run folder {run.path}: {exc.strerror or exc}") from exc
        run.write_config(config)
        write_json_atomic(run.path / DATASET_FILE, dataset)
        with open(run.path / METRICS_FILE, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([f.name for f in fields(EpochMetrics)])
        with open(run.path / STEPS_FILE, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow(["epoch", "step", "global_step", "loss", "lr"])
        return run

    def write_config(self, config: dict[str, Any]) -> None:
        write_json_atomic(self.path / CONFIG_FILE, config)

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.path / CONFIG_FILE)

    def read_dataset(self) -> dict[str, Any]:
        return _read_json(self.path / DATASET_FILE)

    def write_summary(self, summary: RunSummary) -> None:
        summary.updated = time.time()
        write_json_atomic(self.path / SUMMARY_FILE, summary.to_dict())

    def read_summary(self) -> RunSummary:
        try:
            return RunSummary.from_dict(_read_json(self.path / SUMMARY_FILE))
        except RunDirError:
            return RunSummary(status="failed", message="summary.json is missing or damaged")

    def append_epoch(self, row: EpochMetrics) -> None:
        with open(self.path / METRICS_FILE, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([getattr(row, f.name) for f in fields(EpochMetrics)])

    def append_steps(self, rows: Sequence[tuple[int, int, int, float, float]]) -> None:
        """Append (epoch, step, global_step, loss, lr) rows; called in small bunches to keep I/O cheap."""
        if rows:
            with open(self.path / STEPS_FILE, "a", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(rows)

    def truncate_logs(self, epochs_done: int, global_step: int) -> None:
        """Drop log rows after the point a resumed run continues from (they were not kept in weights)."""
        epochs = [r for r in self.read_epochs() if r.epoch <= epochs_done]
        _write_text_atomic(
            self.path / METRICS_FILE,
            [[f.name for f in fields(EpochMetrics)]]
            + [[getattr(r, f.name) for f in fields(EpochMetrics)] for r in epochs],
        )
        steps = [r for r in self.read_steps() if r[2] <= global_step]
        _write_text_atomic(self.path / STEPS_FILE, [["epoch", "step", "global_step", "loss", "lr"], *steps])

    def read_epochs(self) -> list[EpochMetrics]:
        try:
            with open(self.path / METRICS_FILE, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        except FileNotFoundError:
            return []
        out = []
        for r in rows:
            try:
                out.append(
                    EpochMetrics(
                        **{
                            f.name: (int(r[f.name]) if f.name == "epoch" else float(r[f.name]))
                            for f in fields(EpochMetrics)
                        }
                    )
                )
            except (KeyError, ValueError, TypeError):
                continue  # a half-written last line after a crash
        return out

    def read_steps(self) -> list[tuple[int, int, int, float, float]]:
        try:
            with open(self.path / STEPS_FILE, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                next(reader, None)
                out = []
                for r in reader:
                    try:
                        out.append((int(r[0]), int(r[1]), int(r[2]), float(r[3]), float(r[4])))
                    except (IndexError, ValueError):
                        continue
                return out
        except FileNotFoundError:
            return []

    def write_confusion(self, matrix: np.ndarray, class_names: Sequence[str]) -> None:
        rows: list[list[Any]] = [["true \\ predicted", *class_names]]
        rows += [[name, *(int(v) for v in matrix[i])] for i, name in enumerate(class_names)]
        _write_text_atomic(self.path / CONFUSION_FILE, rows)

    def read_confusion(self) -> tuple[np.ndarray, list[str]] | None:
        try:
            with open(self.path / CONFUSION_FILE, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
        except FileNotFoundError:
            return None
        names = rows[0][1:]
        return np.array([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int64), names

    def write_misclassified(self, items: Sequence[ValPrediction]) -> None:
        self._write_predictions(self.path / MISCLASSIFIED_FILE, items)

    def read_misclassified(self) -> list[ValPrediction]:
        return self._read_predictions(self.path / MISCLASSIFIED_FILE)

    def write_predictions(self, items: Sequence[ValPrediction]) -> None:
        self._write_predictions(self.path / PREDICTIONS_FILE, items)

    def read_predictions(self) -> list[ValPrediction]:
        return self._read_predictions(self.path / PREDICTIONS_FILE)

    @staticmethod
    def _write_predictions(path: Path, items: Sequence[ValPrediction]) -> None:
        rows: list[list[Any]] = [["path", "true", "predicted", "confidence"]]
        rows += [[m.path, m.true, m.predicted, f"{m.confidence:.4f}"] for m in items]
        _write_text_atomic(path, rows)

    @staticmethod
    def _read_predictions(path: Path) -> list[ValPrediction]:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                return [
                    ValPrediction(r["path"], r["true"], r["predicted"], float(r["confidence"]))
                    for r in csv.DictReader(fh)
                ]
        except FileNotFoundError:
            return []


# -- reading for the history view ---------------------------------------------------------------------------


@dataclass
class RunRecord:
    """An earlier run as the history list shows it."""

    path: Path
    config: dict[str, Any]
    summary: RunSummary
    epochs: list[EpochMetrics] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def has_checkpoint(self) -> bool:
        return (self.path / BEST_CHECKPOINT).is_file() or (self.path / LAST_CHECKPOINT).is_file()

    def settings_text(self) -> str:
        """One line: model, strategy and the main hyper-parameters."""
        c = self.config
        parts = [str(c.get("model", "?")), str(c.get("strategy", "?"))]
        if c.get("strategy") == "fine-tune-top":
            parts[-1] += f" ({c.get('top_blocks')} blocks)"
        parts += [
            f"{self.summary.epochs_done}/{c.get('epochs', '?')} epochs",
            f"lr {c.get('lr')}" if c.get("lr") is not None else "lr auto",
            str(c.get("optimizer", "")),
            str(c.get("schedule", "")),
            f"batch {c.get('batch_size')}",
        ]
        return ", ".join(p for p in parts if p)

    def result_text(self) -> str:
        s = self.summary
        acc = (
            f"best val acc {s.best_val_acc:.1%} (epoch {s.best_epoch})"
            if np.isfinite(s.best_val_acc)
            else "no result"
        )
        return f"{s.status}: {acc}"


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """Read a run directory (config, summary, per-epoch metrics). RunDirError if it is not one."""
    run = RunDir(path)
    return RunRecord(
        path=run.path, config=run.read_config(), summary=run.read_summary(), epochs=run.read_epochs()
    )


def list_runs(parent: str | os.PathLike[str]) -> list[RunRecord]:
    """Every run directory directly inside ``parent``, newest first; unreadable folders are left out."""
    parent = Path(parent).expanduser()
    if not parent.is_dir():
        return []
    records = []
    for child in parent.iterdir():
        if child.is_dir() and (child / CONFIG_FILE).is_file():
            try:
                records.append(load_run(child))
            except RunDirError:
                continue
    records.sort(key=lambda r: (r.summary.started, r.name), reverse=True)
    return records


def new_run_dir(parent: str | os.PathLike[str], model: str, strategy: str) -> Path:
    """A fresh, not yet existing folder name inside ``parent``: ``20250101-120000_model_strategy``."""
    parent = Path(parent).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = parent / f"{stamp}_{model}_{strategy}"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}_{n}")
        n += 1
    return candidate
