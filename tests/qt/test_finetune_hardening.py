"""The Fine-tune page and its run history when the disk fills up or a training process is killed."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt

from cnn_explorer.core import zoo
from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.runs import RunDir, list_runs
from cnn_explorer.core.training import resume, run_to_end
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages import finetune
from cnn_explorer.qt.pages.finetune import FineTunePage
from cnn_explorer.qt.widgets.run_history import RunHistoryView

IDLE_MS = 30_000
TRAIN_MS = 120_000
KILL_WAIT_S = 120
EPOCHS = 5000  # far more than it gets to do before it is killed


@pytest.fixture(scope="module")
def animals(tmp_path_factory) -> Path:
    return write_animal_dataset(
        tmp_path_factory.mktemp("data") / "animals", per_class=8, classes=["bird", "elephant", "giraffe"]
    )


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)


def test_a_disk_that_fills_up_during_training_is_named_in_the_banner(
    qtbot, open_page, animals, tmp_path, monkeypatch
):
    # The run trains in this process (a thread) instead of a child process, so that the full disk below
    # applies to it; the failure reaches the page through the same Job.failed signal.
    monkeypatch.setattr(finetune.training, "start_process_job", workers.start_job)
    real_save = torch.save
    saves = []

    def full_disk_save(obj, f, *args, **kwargs):
        if Path(f).name.startswith(".last.pt."):
            saves.append(f)
            if len(saves) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_save)
    page = open_page(FineTunePage(runs_folder=tmp_path / "runs"), IDLE_MS)
    page.set_dataset_folder(animals)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)
    choose(page.form.model_combo, "lenet5")
    choose(page.form.strategy_combo, "scratch")
    page.form.epochs_spin.setValue(3)
    page.form.batch_spin.setValue(8)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)

    summary = RunDir(page.run_path).read_summary()
    assert summary.status == "failed" and summary.failure == "disk-full"
    text = page.banner_text()
    assert "Training could not go on:" in text and "Disk full: cannot write last.pt" in text
    assert "(epoch 1)" in text and "Free some space, then resume the run." in text
    assert "Errno" not in text and "OSError" not in text  # the message, not the exception's repr
    assert "#a31515" in page.banner.styleSheet()
    assert page.history.table.item(0, 5).text() == "failed"


def kill_after_first_checkpoint(data: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "cnn_explorer", "finetune", str(data), "--out", str(out),
           "--model", "lenet5", "--strategy", "scratch", "--epochs", str(EPOCHS), "--batch-size", "8",
           "--offline", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while not (out / "last.pt").is_file():
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint in time"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_run_folder_without_a_record_is_not_compared(qtbot, tmp_path):
    """A run that ended before writing its settings is not listed; asking to tick it (as the page does
    after every run) says so instead of raising in the slot."""
    runs = tmp_path / "runs"
    (runs / "ended-early").mkdir(parents=True)
    history = RunHistoryView()
    qtbot.addWidget(history)
    history.set_runs(list_runs(runs))
    assert history.records == [] and not history.set_compared(str(runs / "ended-early"), True)


def test_history_shows_a_killed_run_as_interrupted_and_offers_to_resume_it(qtbot, animals, tmp_path):
    runs = tmp_path / "runs"
    kill_after_first_checkpoint(animals, runs / "killed")
    history = RunHistoryView()
    qtbot.addWidget(history)
    history.set_runs(list_runs(runs))
    assert history.table.item(0, 1).text() == "killed"
    assert history.table.item(0, 5).text() == "interrupted"
    assert "Resume" in history.table.item(0, 5).toolTip()
    assert history.resume_button.isEnabled() and history.resume_button.text() == "Resume"
    with qtbot.waitSignal(history.resume_requested, timeout=5_000) as asked:
        qtbot.mouseClick(history.resume_button, Qt.MouseButton.LeftButton)
    path, epochs = asked.args
    assert Path(path) == runs / "killed" and epochs == EPOCHS  # it goes on towards the run's own total
    done = zoo.read_checkpoint(Path(path) / "last.pt")["epoch"]
    _, summary = run_to_end(resume(path, epochs=done + 1))
    assert summary.status == "finished"
    history.set_runs(list_runs(runs))
    assert history.table.item(0, 5).text() == "finished"
