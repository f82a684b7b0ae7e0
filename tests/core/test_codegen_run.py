"""A run's generated train.py and predict.py, executed on a tiny real run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_explorer.core.codegen import run_code
from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.runs import RunDir
from cnn_explorer.core.training import TrainConfig, fit, run_to_end

CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("codegen_run")
    data = write_animal_dataset(root / "shapes", per_class=6, classes=CLASSES)
    config = TrainConfig(
        data=str(data), epochs=1, batch_size=8, image_size=32, allow_download=False, device="cpu", seed=0
    )
    _, summary = run_to_end(fit(config, root / "run"))
    assert summary.status == "finished"
    return root / "run"


def execute(folder: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_py_repeats_the_run_and_predict_py_reads_its_checkpoint(run, tmp_path):
    files = run_code(run)
    assert set(files) == {"train.py", "predict.py"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = execute(tmp_path, "train.py", "--epochs", "1", "--device", "cpu")
    accuracy = float(re.search(r"epoch 1: .*validation accuracy ([\d.]+)", out).group(1))
    assert (tmp_path / "checkpoint.pt").is_file()
    app_accuracy = RunDir(run).read_summary().final_val_acc
    # The same split, batches, seed, head init and frozen backbone: the same first epoch, within a few points
    assert abs(accuracy - app_accuracy) <= 0.05, (accuracy, app_accuracy)

    val = RunDir(run).read_dataset()
    images = [str(Path(val["root"]) / p) for p, _ in val["val"][:2]]
    predicted = execute(tmp_path, "predict.py", *images, "--top-k", "2")
    lines = predicted.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.search(rf": ({'|'.join(CLASSES)}) [\d.]+%, ({'|'.join(CLASSES)}) [\d.]+%$", line), line


def test_the_split_and_settings_are_the_runs(run):
    train = run_code(run)["train.py"]
    dataset = RunDir(run).read_dataset()
    for path, _ in dataset["train"] + dataset["val"]:
        assert repr(path) in train
    assert "label_smoothing=0.0" in train
    assert "torch.optim.SGD(param_groups, lr=0.01, momentum=0.9, weight_decay=0.0005)" in train
    assert "'_fc.weight': 1.0" in train  # a feature extractor trains only the head


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a readable run"):
        run_code(tmp_path)
