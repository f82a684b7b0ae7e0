"""The Results tab's "why": a clicked validation image's Grad-CAM for the predicted and the true class."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.runs import RunDir
from cnn_explorer.core.training import TrainConfig, fit, run_to_end
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.finetune.results_panel import ResultsPanel

IDLE_MS = 60_000
CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results-why")
    data = write_animal_dataset(root / "shapes", per_class=8, classes=CLASSES)
    config = TrainConfig(data=str(data), epochs=1, batch_size=8, image_size=32, allow_download=False)
    _, summary = run_to_end(fit(config, root / "run"))
    assert summary.status == "finished"
    return root / "run"


@pytest.fixture
def panel(qtbot, run):
    """The panel showing the run's results, its preselected cell's images loaded."""
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 620)
    panel.show()
    panel.set_run(run)
    panel.predictions = RunDir(run).read_predictions()
    matrix, names = RunDir(run).read_confusion()
    panel.class_names = names
    panel.show_matrix(matrix, "Confusion matrix")
    qtbot.waitUntil(lambda: not panel.busy and bool(panel.gallery.paths()), timeout=IDLE_MS)
    yield panel
    qtbot.waitUntil(lambda: not panel.busy, timeout=IDLE_MS)
    panel.shutdown()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def click_image(qtbot, panel: ResultsPanel, index: int) -> Path:
    lst = panel.gallery.list
    rect = lst.visualItemRect(lst.item(index))
    qtbot.mouseClick(lst.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    return panel.gallery.paths()[index]


def test_a_clicked_image_shows_where_the_model_looked_for_both_classes(qtbot, panel, run):
    assert panel.run_path == run
    view = panel.cam_view
    table = panel.confusion_view.table
    if table.currentRow() != table.currentColumn():
        # the panel opens on the most frequent mistake, and explains its first image unasked
        qtbot.waitUntil(lambda: view.captions()[0] != "", timeout=IDLE_MS)
        first = next(p for p in panel.predictions if Path(p.path) == panel.gallery.paths()[0])
        assert view.captions()[0].startswith(f"predicted: {first.predicted} ")
        assert first.predicted != first.true
    else:
        assert view.captions() == ("", "") and "Click a validation image" in view.message()
    path = click_image(qtbot, panel, 0)
    assert path.name in panel.explorer_image_label.text()  # still chosen for "Open in explorer"
    assert view.message().startswith("Grad-CAM of " + path.name) or view.captions()[0]
    qtbot.waitUntil(lambda: view.captions()[0] != "", timeout=IDLE_MS)
    shown = next(p for p in panel.predictions if Path(p.path) == path)
    predicted, true = view.captions()
    assert predicted.startswith(f"predicted: {shown.predicted} ") and predicted.endswith("%")
    assert true.startswith(f"true: {shown.true} ") and true.endswith("%")
    assert not view.predicted_image.pixmap().isNull() and not view.true_image.pixmap().isNull()

    # another cell: the pair of an image no longer listed goes away
    panel.show_cell_images(0, 1)
    assert view.captions() == ("", "")


def test_without_a_usable_run_the_reason_is_shown(qtbot, panel, tmp_path):
    view = panel.cam_view
    panel.set_run(None)
    path = click_image(qtbot, panel, 0)
    assert view.message() == f"Cannot explain {path.name}: no run is shown."
    panel.set_run(tmp_path / "gone")
    click_image(qtbot, panel, 0)
    qtbot.waitUntil(lambda: not panel.busy, timeout=IDLE_MS)
    assert "gone" in view.message() and "does not exist" in view.message()
    assert view.captions() == ("", "")
