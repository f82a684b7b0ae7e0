"""Run directories: files written safely, read back for the history view."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cnn_explorer.core.runs import (
    EpochMetrics,
    Misclassified,
    RunDir,
    RunDirError,
    RunSummary,
    list_runs,
    load_run,
    new_run_dir,
    write_json_atomic,
)

CONFIG = {"model": "efficientnet_lite0", "strategy": "feature-extractor", "epochs": 3, "lr": None,
          "optimizer": "sgd", "schedule": "cosine", "batch_size": 32}  # fmt: skip
DATASET = {"root": "/data", "class_names": ["a", "b"], "train": [], "val": []}


def row(epoch: int, acc: float) -> EpochMetrics:
    return EpochMetrics(epoch, 1.0 / epoch, acc, 1.1 / epoch, acc - 0.05, 0.01, 100.0, 2.0)


def test_create_writes_config_and_refuses_used_folders(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", CONFIG, DATASET)
    assert run.read_config() == CONFIG and run.read_dataset() == DATASET
    assert run.exists() and run.read_epochs() == [] and run.read_steps() == []
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir.create(tmp_path / "r", CONFIG, DATASET)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="other files"):
        RunDir.create(tmp_path / "other", CONFIG, DATASET)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file"):
        RunDir.create(tmp_path / "file", CONFIG, DATASET)


def test_metrics_steps_and_truncation_for_resume(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", CONFIG, DATASET)
    for e in (1, 2, 3):
        run.append_epoch(row(e, 0.5 + e / 10))
    run.append_steps([(e, s, (e - 1) * 4 + s, 1.0 / s, 0.01) for e in (1, 2, 3) for s in (1, 2, 3, 4)])
    assert [r.epoch for r in run.read_epochs()] == [1, 2, 3]
    assert run.read_epochs()[1] == row(2, 0.7)
    run.truncate_logs(epochs_done=1, global_step=6)  # resuming in epoch 2 after step 2
    assert [r.epoch for r in run.read_epochs()] == [1]
    assert [s[2] for s in run.read_steps()] == [1, 2, 3, 4, 5, 6]


def test_half_written_metrics_line_is_ignored(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", CONFIG, DATASET)
    run.append_epoch(row(1, 0.6))
    with open(run.path / "metrics.csv", "a") as fh:
        fh.write("2,0.4,0.7")  # a crash mid-write
    assert [r.epoch for r in run.read_epochs()] == [1]


def test_summary_round_trip_with_missing_numbers(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", CONFIG, DATASET)
    assert run.read_summary().status == "failed"  # no summary yet: reads as not a good run
    with run.locked():  # "running" is believed only while a live process holds the run's lock
        run.write_summary(RunSummary(status="running", epochs=3))
        text = (run.path / "summary.json").read_text()
        assert "NaN" not in text  # valid JSON for any reader
        back = run.read_summary()
        assert back.status == "running" and math.isnan(back.best_val_acc) and back.updated > 0
    assert run.read_summary().status == "interrupted"


def test_confusion_and_misclassified_round_trip(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", CONFIG, DATASET)
    matrix = np.array([[5, 1], [2, 7]])
    run.write_confusion(matrix, ["cat", "dog"])
    got, names = run.read_confusion()
    assert names == ["cat", "dog"] and np.array_equal(got, matrix)
    wrong = [
        Misclassified("/d/cat/1.png", "cat", "dog", 0.75),
        Misclassified("/d/dog/x,y.png", "dog", "cat", 0.5),
    ]
    run.write_misclassified(wrong)
    assert run.read_misclassified() == wrong  # a comma in a file name survives
    every = [*wrong, Misclassified("/d/cat/2.png", "cat", "cat", 0.9)]
    run.write_predictions(every)
    assert run.read_predictions() == every and [p.correct for p in every] == [False, False, True]


def test_atomic_json_keeps_the_old_file_when_writing_fails(tmp_path: Path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "finished"})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"status": float("nan")})  # not valid JSON: refused midway
    assert json.loads(path.read_text()) == {"status": "finished"}
    assert os.listdir(tmp_path) == ["summary.json"]  # no temporary file left behind


def test_history_lists_runs_newest_first_with_settings_and_results(tmp_path: Path):
    for i, name in enumerate(["old", "new"]):
        run = RunDir.create(tmp_path / name, {**CONFIG, "lr": 0.01 * (i + 1)}, DATASET)
        run.append_epoch(row(1, 0.6 + i / 10))
        acc = 0.6 + i / 10
        run.write_summary(
            RunSummary(
                status="finished", epochs_done=1, best_epoch=1, best_val_acc=acc, started=time.time() + i
            )
        )
    (tmp_path / "not-a-run").mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ half")
    records = list_runs(tmp_path)
    assert [r.name for r in records] == ["new", "old"]
    newest = records[0]
    assert (
        newest.settings_text()
        == "efficientnet_lite0, feature-extractor, 1/3 epochs, lr 0.02, sgd, cosine, batch 32"
    )
    assert newest.result_text() == "finished: best val acc 70.0% (epoch 1)"
    assert [e.val_acc for e in newest.epochs] == pytest.approx([0.65])
    assert not newest.has_checkpoint
    assert list_runs(tmp_path / "missing") == []
    with pytest.raises(RunDirError, match="not a run directory"):
        load_run(tmp_path / "not-a-run")


def test_new_run_dir_is_unique(tmp_path: Path):
    first = new_run_dir(tmp_path, "resnet18", "scratch")
    first.mkdir()
    second = new_run_dir(tmp_path, "resnet18", "scratch")
    assert second != first and not second.exists() and "resnet18_scratch" in second.name
