"""Run directories: everything a fine-tuning run leaves behind, and the history of earlier runs.

One folder per run::

    config.json        the settings (a TrainConfig as a dict) — enough to repeat or resume the run
    dataset.json       the classes and the exact train/val split (paths relative to the dataset root)
    summary.json       status (running / finished / stopped / diverged / failed), message, final numbers
    run.lock           while a process trains the run: its PID, host and start time (removed at the end)
    metrics.csv        one row per epoch: losses, accuracies, learning rate, speed
    steps.csv          one row per training step: loss and learning rate
    best.pt, last.pt   checkpoints (zoo.save_checkpoint: weights + class names + architecture + preprocessing)
    confusion.csv      confusion matrix of the best epoch on the validation images (rows = true class)
    misclassified.csv  validation images the best epoch got wrong: path, true, predicted, confidence
    val_predictions.csv  the same for every readable validation image (for "show the images of a cell")

Every JSON file and checkpoint is written to a temporary name (``.<name>.<pid>....tmp``) and renamed, so a
crash leaves the previous good version in place. The CSV logs are appended row by row and trimmed on resume.
Every file is created like ``open()`` creates one, so all of them get the same permissions (the umask's).

A summary that says "running" while no live process holds run.lock belongs to a run that was killed: it is
read as "interrupted" (resumable from last.pt). A failed write raises :class:`RunWriteError` whose
``problem`` says whether the disk is full or the folder not writable.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import errno
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
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
LOCK_FILE = "run.lock"

# "interrupted" is never written: it is how a "running" summary reads once its process is gone.
STATUSES = ("running", "finished", "stopped", "diverged", "failed", "interrupted")

# A temporary file of a write in progress: .<name>.<pid>[.<random>].tmp (zoo.save_checkpoint's has no random
# part). The PID tells whether its writer is still alive.
_TEMP_NAME = re.compile(r"^\..+?\.(\d+)(?:\.[0-9a-f]{8})?\.tmp$")  # lazy name: "1234.12345678" is pid.random


class WriteProblem(enum.Enum):
    """Why a run file could not be written."""

    DISK_FULL = "disk-full"
    NOT_WRITABLE = "not-writable"  # permissions or a read-only file system
    OTHER = "write-failed"

    @classmethod
    def of(cls, exc: OSError) -> WriteProblem:
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return cls.DISK_FULL
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return cls.NOT_WRITABLE
        return cls.OTHER


class RunDirError(Exception):
    """A run directory cannot be created, read or resumed; ``str(err)`` says why.

    ``problem`` is set when the folder cannot be written (the same message otherwise names the problem).
    """

    def __init__(self, message: str, problem: WriteProblem | None = None) -> None:
        super().__init__(message)
        self.problem = problem  # kept in __dict__, so it survives pickling to the window's process


class RunWriteError(RunDirError):
    """Writing a file of a live run failed (disk full, folder made read-only): the run failed, its input
    was fine. Raised by RunDir's writers and by training; ``problem`` is always set."""

    def __init__(self, message: str, problem: WriteProblem = WriteProblem.OTHER) -> None:
        super().__init__(message, problem)


def write_error(exc: OSError, path: Path) -> RunWriteError:
    """The RunWriteError for an OSError met while writing ``path``."""
    problem = WriteProblem.of(exc)
    reason = exc.strerror or str(exc)
    if problem is WriteProblem.DISK_FULL:
        return RunWriteError(f"Disk full: cannot write {path.name} in {path.parent} ({reason}).", problem)
    return RunWriteError(f"Cannot write {path.name} in {path.parent}: {reason}.", problem)


def _folder_error(exc: OSError, folder: Path) -> RunDirError:
    problem = WriteProblem.of(exc)
    reason = exc.strerror or str(exc)
    if problem is WriteProblem.DISK_FULL:
        text = f"The disk holding the run folder {folder} is full ({reason}); free some space or choose "
        return RunDirError(text + "another folder.", problem)
    return RunDirError(
        f"Cannot write in the run folder {folder} ({reason}); choose a folder you can write to.",
        problem if problem is not WriteProblem.OTHER else WriteProblem.NOT_WRITABLE,
    )


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """OSErrors of a write become RunWriteError naming the file."""
    try:
        yield
    except OSError as exc:
        raise write_error(exc, path) from exc


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
    precision: str = ""  # what the forward pass computed in: "fp32", "bf16" or "fp16" (mixed precision)
    processes: int = 1  # training processes (torchrun's world size)
    weights: str = ""  # where the starting weights came from (zoo's weights_detail)
    started: float = 0.0  # time.time()
    updated: float = 0.0
    seconds: float = 0.0  # training time so far, summed over resumes
    failure: str = ""  # for status "failed" by a write: a WriteProblem value ("disk-full", ...)
    notices: list[str] = field(default_factory=list)  # what the run told the user when it started

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


def _new_temp(path: Path) -> tuple[int, Path]:
    """Create ``.<name>.<pid>.<random>.tmp`` next to ``path``, as open() would: mode 0o666 less the umask
    (tempfile.mkstemp makes 0o600, which left the JSON files of a run unlike its checkpoints)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` to a temporary file beside ``path`` (usual permissions), synced, then renamed over it."""
    fd, tmp = _new_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """JSON to a temporary file in the same folder, then renamed over ``path``."""
    write_bytes_atomic(Path(path), json.dumps(data, indent=2, allow_nan=False).encode("utf-8"))


def _write_text_atomic(path: Path, rows: Sequence[Sequence[Any]]) -> None:
    fd, tmp = _new_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _overwrite_in_place(path: Path, data: bytes) -> None:
    """Last resort on a full disk: rewrite an existing small file in the blocks it already has."""
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate()
        fh.flush()
        with contextlib.suppress(OSError):
            os.fsync(fh.fileno())


# -- which process trains a run --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunLock:
    """run.lock: the process training a run."""

    pid: int
    host: str
    started: float
    proc_start: int | None = None  # the process's start time in clock ticks (Linux), to tell a reused PID


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) from /proc, or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it exists  # type: ignore[attr-defined]
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this computer (a zombie counts as ended)."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_pid_alive(pid)  # os.kill(pid, 0) would terminate it there
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    stat = _proc_stat(pid)
    return stat is None or stat[0] not in ("Z", "X")


def _lock_alive(lock: RunLock) -> bool:
    if lock.host != socket.gethostname():
        return True  # another computer's process (a shared folder): it cannot be checked from here
    if not pid_alive(lock.pid):
        return False
    stat = _proc_stat(lock.pid)
    return lock.proc_start is None or stat is None or stat[1] == lock.proc_start


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

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def exists(self) -> bool:
        return (self.path / CONFIG_FILE).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: dict[str, Any], dataset: dict[str, Any]) -> RunDir:
        """Make a new run folder; refuse one that already holds a run or other files, or cannot be written."""
        run = cls(check_new_run_folder(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"Cannot create the run folder {run.path}: {exc.strerror or exc}") from exc
        run.check_writable()
        try:
            run.write_config(config)
            with _writing(run.path / DATASET_FILE):
                write_json_atomic(run.path / DATASET_FILE, dataset)
            with _writing(run.path / METRICS_FILE), open(run.path / METRICS_FILE, "w", newline="") as fh:
                csv.writer(fh).writerow([f.name for f in fields(EpochMetrics)])
            with _writing(run.path / STEPS_FILE), open(run.path / STEPS_FILE, "w", newline="") as fh:
                csv.writer(fh).writerow(["epoch", "step", "global_step", "loss", "lr"])
        except RunWriteError as exc:
            raise RunDirError(str(exc), exc.problem) from exc  # nothing has run: the folder is unusable
        return run

    def check_writable(self) -> None:
        """RunDirError (with ``problem``) unless a file can be created and written in the folder: checked
        when a run is created or resumed, not after its first epoch."""
        try:
            fd, tmp = _new_temp(self.path / ".write-test")
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise _folder_error(exc, self.path) from exc

    # -- the process training the run ------------------------------------------------------------------
    def lock_holder(self) -> RunLock | None:
        """Who holds run.lock (alive or not); None without one or for an unreadable one."""
        try:
            d = json.loads(self.lock_file.read_text(encoding="utf-8"))
            return RunLock(int(d["pid"]), str(d["host"]), float(d["started"]), d.get("proc_start"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def is_live(self) -> bool:
        """Whether a running process holds this run's lock."""
        holder = self.lock_holder()
        return holder is not None and _lock_alive(holder)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold run.lock while training: RunDirError if another live process holds it; a stale lock (its
        process was killed) is taken over. Removed on leaving, however the run ends."""
        pid = os.getpid()
        stat = _proc_stat(pid)
        mine = {"pid": pid, "host": socket.gethostname(), "started": time.time()}
        data = json.dumps({**mine, "proc_start": stat[1] if stat else None}).encode("utf-8")
        for _ in range(3):
            try:
                self._create_lock(data)
                break
            except FileExistsError:
                holder = self.lock_holder()
                if holder is not None and _lock_alive(holder):
                    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(holder.started))
                    raise RunDirError(
                        f"{self.path} is in use: process {holder.pid} on {holder.host} has been training it "
                        f"since {since}. Wait for it to end or stop it first."
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.lock_file.unlink()  # left by a process that was killed
            except OSError as exc:
                raise _folder_error(exc, self.path) from exc
        else:
            raise RunDirError(f"Cannot take {self.lock_file}: other processes keep replacing it.")
        try:
            yield
        finally:
            holder = self.lock_holder()
            if holder is not None and holder.pid == pid:
                with contextlib.suppress(OSError):
                    self.lock_file.unlink()

    def _create_lock(self, data: bytes) -> None:
        """run.lock with its content, or FileExistsError: linked from a complete temporary file, so a reader
        never sees it half written."""
        fd, tmp = _new_temp(self.lock_file)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, self.lock_file)
                return
            except FileExistsError:
                raise
            except OSError:
                pass  # a file system without hard links: create it exclusively instead
            fd = os.open(self.lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        finally:
            tmp.unlink(missing_ok=True)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the temporary files of writes whose process has ended (a killed checkpoint write)."""
        removed: list[Path] = []
        own = os.getpid()
        try:
            entries = list(self.path.iterdir())
        except OSError:
            return removed  # housekeeping only: an unreadable folder fails later, with a clear message
        for entry in entries:
            m = _TEMP_NAME.match(entry.name)
            if m is None or not entry.is_file():
                continue
            pid = int(m.group(1))
            if pid != own and not pid_alive(pid):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
        return removed

    # -- files -------------------------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        with _writing(self.path / CONFIG_FILE):
            write_json_atomic(self.path / CONFIG_FILE, config)

    def read_config(self) -> dict[str, Any]:
        return _read_json(self.path / CONFIG_FILE)

    def read_dataset(self) -> dict[str, Any]:
        return _read_json(self.path / DATASET_FILE)

    def write_summary(self, summary: RunSummary) -> None:
        summary.updated = time.time()
        with _writing(self.path / SUMMARY_FILE):
            write_json_atomic(self.path / SUMMARY_FILE, summary.to_dict())

    def record_summary(self, summary: RunSummary) -> bool:
        """write_summary for a run that is ending, whatever the disk says: on a full disk the old file is
        overwritten in place (it needs no new blocks). False if even that failed."""
        try:
            self.write_summary(summary)
            return True
        except RunWriteError:
            pass
        try:
            data = json.dumps(summary.to_dict(), indent=2, allow_nan=False).encode("utf-8")
            _overwrite_in_place(self.path / SUMMARY_FILE, data)
            return True
        except OSError:
            return False  # a reader then sees "running" without a live process: "interrupted"

    def read_summary(self) -> RunSummary:
        """summary.json; "running" without a live process holding run.lock reads as "interrupted"."""
        try:
            summary = RunSummary.from_dict(_read_json(self.path / SUMMARY_FILE))
        except RunDirError:
            if self.is_live():
                return RunSummary(status="running", message="Starting…")
            return RunSummary(status="failed", message="summary.json is missing or damaged")
        if summary.status != "running" or self.is_live():
            return summary
        # read again: the run may have ended between reading its summary and looking at its lock
        with contextlib.suppress(RunDirError):
            summary = RunSummary.from_dict(_read_json(self.path / SUMMARY_FILE))
        if summary.status == "running":
            summary.status = "interrupted"
            summary.message = (
                "The training process ended without saving its status (killed, or the computer stopped). "
                + (
                    "Resume the run to continue from last.pt."
                    if self.last_checkpoint.is_file()
                    else "Nothing was saved; start it again."
                )
            )
        return summary

    def append_epoch(self, row: EpochMetrics) -> None:
        path = self.path / METRICS_FILE
        with _writing(path), open(path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([getattr(row, f.name) for f in fields(EpochMetrics)])

    def append_steps(self, rows: Sequence[tuple[int, int, int, float, float]]) -> None:
        """Append (epoch, step, global_step, loss, lr) rows; called in small bunches to keep I/O cheap."""
        if rows:
            path = self.path / STEPS_FILE
            with _writing(path), open(path, "a", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(rows)

    def truncate_logs(self, epochs_done: int, global_step: int) -> None:
        """Drop log rows after the point a resumed run continues from (they were not kept in weights)."""
        epochs = [r for r in self.read_epochs() if r.epoch <= epochs_done]
        with _writing(self.path / METRICS_FILE):
            _write_text_atomic(
                self.path / METRICS_FILE,
                [[f.name for f in fields(EpochMetrics)]]
                + [[getattr(r, f.name) for f in fields(EpochMetrics)] for r in epochs],
            )
        steps = [r for r in self.read_steps() if r[2] <= global_step]
        with _writing(self.path / STEPS_FILE):
            header = ["epoch", "step", "global_step", "loss", "lr"]
            _write_text_atomic(self.path / STEPS_FILE, [header, *steps])

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
        with _writing(self.path / CONFUSION_FILE):
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
        with _writing(path):
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


class SilentRunDir(RunDir):
    """The run folder as seen by the torchrun processes other than rank 0: only rank 0 writes the run
    folder, so every write here does nothing and every read finds nothing. Those processes still train
    and take part in every step; what they would write, rank 0 writes once."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def check_writable(self) -> None:
        pass

    def remove_stale_temp_files(self) -> list[Path]:
        return []

    def write_config(self, config: dict[str, Any]) -> None:
        pass

    def write_summary(self, summary: RunSummary) -> None:
        pass

    def record_summary(self, summary: RunSummary) -> bool:
        return True

    def read_summary(self) -> RunSummary:
        return RunSummary()

    def append_epoch(self, row: EpochMetrics) -> None:
        pass

    def append_steps(self, rows: Sequence[tuple[int, int, int, float, float]]) -> None:
        pass

    def truncate_logs(self, epochs_done: int, global_step: int) -> None:
        pass

    def read_epochs(self) -> list[EpochMetrics]:
        return []

    def read_steps(self) -> list[tuple[int, int, int, float, float]]:
        return []

    def write_confusion(self, matrix: np.ndarray, class_names: Sequence[str]) -> None:
        pass

    def read_confusion(self) -> tuple[np.ndarray, list[str]] | None:
        return None

    def write_misclassified(self, items: Sequence[ValPrediction]) -> None:
        pass

    def read_misclassified(self) -> list[ValPrediction]:
        return []

    def write_predictions(self, items: Sequence[ValPrediction]) -> None:
        pass

    def read_predictions(self) -> list[ValPrediction]:
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


def check_new_run_folder(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work is done, a folder that cannot receive a new run (RunDirError): a file, a
    folder with files in it, or one that cannot be written. Creates nothing."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} is a file; choose a folder for the run.")
    if path.is_dir():
        try:
            used = any(path.iterdir())
        except OSError as exc:
            raise _folder_error(exc, path) from exc
        if used:
            what = "a run" if RunDir(path).exists() else "other files"
            raise RunDirError(f"{path} already holds {what}; choose a new folder (or resume that run).")
        RunDir(path).check_writable()
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunDirError(f"Cannot create the run folder {path}: {ancestor} is a file.")
    if not os.access(ancestor, os.W_OK | os.X_OK):  # also False on a read-only file system
        raise RunDirError(
            f"Cannot create the run folder {path}: {ancestor} is not writable; choose a folder you can "
            "write to.",
            WriteProblem.NOT_WRITABLE,
        )
    return path


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
