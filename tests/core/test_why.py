"""Confusion matrix → images → why: one validation image's Grad-CAM for the predicted and the true class."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.runs import RunDir, RunDirError
from cnn_explorer.core.training import TrainConfig, fit, run_to_end
from cnn_explorer.core.transfer.why import RunModels, cam_pair

CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("why")
    data = write_animal_dataset(root / "shapes", per_class=8, classes=CLASSES)
    config = TrainConfig(data=str(data), epochs=1, batch_size=8, image_size=32, allow_download=False)
    _, summary = run_to_end(fit(config, root / "run"))
    assert summary.status == "finished"
    return root / "run"


def softmax(loaded, path: str) -> np.ndarray:
    x = loaded.preprocess(open_image(path, gray=loaded.preprocess.grayscale).pixels)
    with torch.no_grad():
        return loaded.model(x[None]).softmax(1)[0].numpy()


def test_the_pair_shows_both_classes_maps_and_probabilities(run):
    models = RunModels()
    loaded = models.get(run)
    assert loaded.categories == CLASSES
    val = RunDir(run).read_predictions()[0]
    probs = softmax(loaded, val.path)
    predicted = CLASSES[int(probs.argmax())]
    other = next(c for c in CLASSES if c != predicted)

    pair = cam_pair(loaded, val.path, other)
    assert pair.path == Path(val.path)
    assert pair.predicted == predicted and pair.true == other and not pair.correct
    assert pair.p_pred == pytest.approx(float(probs.max()), abs=1e-5)
    assert pair.p_true == pytest.approx(float(probs[CLASSES.index(other)]), abs=1e-5)
    assert pair.pixels.dtype == np.uint8 and pair.pixels.shape == (32, 32, 3)
    for cam in (pair.cam_predicted, pair.cam_true):
        assert cam.dtype == np.float32 and cam.shape == (32, 32)
        assert cam.min() >= 0 and cam.max() <= 1
    assert not np.allclose(pair.cam_predicted, pair.cam_true)  # two classes, two places to look
    assert pair.layer  # a layer table name

    # the true class the run recorded: the predicted class is the recorded prediction
    recorded = models.cam_pair(run, val.path, val.true)
    assert recorded.predicted == val.predicted and recorded.p_pred == pytest.approx(val.confidence, abs=1e-3)
    if recorded.correct:
        np.testing.assert_array_equal(recorded.cam_predicted, recorded.cam_true)


def test_bad_input_is_named(run, tmp_path):
    loaded = RunModels().get(run)
    val = RunDir(run).read_predictions()[0]
    with pytest.raises(ValueError, match=r"bird_or_not\.png") as err:
        cam_pair(loaded, tmp_path / "bird_or_not.png", "zebra")
    assert "'zebra'" in str(err.value) and "bird, elephant, giraffe" in str(err.value)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match=r"broken\.png"):
        cam_pair(loaded, broken, "bird")
    with pytest.raises(ImageLoadError, match=r"missing\.png"):
        cam_pair(loaded, tmp_path / "missing.png", "bird")
    assert cam_pair(loaded, val.path, val.true).true == val.true  # and it goes on
    with pytest.raises(RunDirError):
        RunModels().get(tmp_path / "no-run")


def test_run_models_reloads_when_the_checkpoint_changes(run):
    models = RunModels()
    first = models.get(run)
    assert models.get(run) is first  # kept while nothing changed
    best = RunDir(run).best_checkpoint
    stat = best.stat()
    os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    try:
        second = models.get(run)
        assert second is not first and second.categories == CLASSES
    finally:
        os.utime(best, ns=(stat.st_atime_ns, stat.st_mtime_ns))
