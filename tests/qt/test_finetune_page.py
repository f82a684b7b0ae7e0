"""The Fine-tune page, driven through its widgets with real (tiny) training runs on animal silhouettes."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from cnn_explorer.core import zoo
from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.images import open_image
from cnn_explorer.core.runs import RunDir, load_run
from cnn_explorer.core.training import TrainConfig, fit, run_to_end
from cnn_explorer.core.transfer.results import GuideCase
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.finetune import FineTunePage

IDLE_MS = 30_000
TRAIN_MS = 120_000
CLASSES = ["bird", "cat", "elephant", "giraffe", "horse"]


@pytest.fixture(scope="module")
def animals(tmp_path_factory) -> Path:
    """5 classes × 20 silhouettes as data/<class>/*.png (read-only; copy it to change it)."""
    return write_animal_dataset(tmp_path_factory.mktemp("data") / "animals", per_class=20)


@pytest.fixture
def page(open_page, tmp_path):
    return open_page(FineTunePage(runs_folder=tmp_path / "runs"), IDLE_MS)


def idle(qtbot, page: FineTunePage) -> None:
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


def scanned(qtbot, page: FineTunePage, folder: Path) -> FineTunePage:
    page.set_dataset_folder(folder)
    idle(qtbot, page)
    return page


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)


def lenet_settings(page: FineTunePage, epochs: int, lr: str = "") -> None:
    """LeNet-5 from scratch: a real run that takes milliseconds per step."""
    choose(page.form.model_combo, "lenet5")
    choose(page.form.strategy_combo, "scratch")
    page.form.epochs_spin.setValue(epochs)
    page.form.batch_spin.setValue(8)
    page.form.lr_edit.setText(lr)


def wait_until_quiet(qtbot, job: workers.Job, ms: int = 600) -> None:
    """Until ``job`` sends no events for ``ms`` (the step under way when Pause was pressed may still land)."""
    for _ in range(30):
        with qtbot.waitSignal(job.events, timeout=ms, raising=False) as blocker:
            pass
        if not blocker.signal_triggered:
            return
    raise AssertionError("the job kept reporting")


def curve_length(curve) -> int:
    """Points given to a pyqtgraph curve (getData() would return only what is in view)."""
    return 0 if curve.xData is None else len(curve.xData)


def planned_epochs(page: FineTunePage) -> float:
    """The last epoch inside the loss plot's x range (which has 2 % padding either side)."""
    low, high = page.plots.loss_plot.getViewBox().viewRange()[0]
    return round(high - (high - low) * 0.02 / 1.04, 6)


# -- dataset ---------------------------------------------------------------------------------------


def test_scan_shows_class_counts_thumbnails_bad_files_and_the_recommendation(
    qtbot, page, animals, tmp_path, monkeypatch
):
    data = Path(shutil.copytree(animals, tmp_path / "animals"))
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (data / "cat" / "notes.txt").write_text("not an image")
    assert not page.start_button.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(data))
    qtbot.mouseClick(page.choose_button, Qt.MouseButton.LeftButton)
    assert page.is_busy()
    idle(qtbot, page)
    assert page.folder_edit.text() == str(data)

    table = page.dataset_view.table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == CLASSES
    # 20 per class split 80/20; the broken file is not counted
    assert [(table.item(r, 1).text(), table.item(r, 2).text()) for r in range(5)] == [("16", "4")] * 5
    for r in range(5):
        thumbs = table.item(r, 3).data(Qt.ItemDataRole.DecorationRole)
        assert thumbs is not None and thumbs.width() > 5 * thumbs.height()  # a strip of several images
    assert page.dataset_view.bad_list.isVisible() and page.dataset_view.bad_list.count() == 1
    assert "broken.png" in page.dataset_view.bad_list.item(0).text()
    assert "notes.txt" in page.dataset_view.problems_label.text()
    assert "1 unreadable" in page.dataset_status.text()
    assert page.start_button.isEnabled()

    # the course's guide: 100 images is small; "similar to ImageNet?" is estimated from the images
    # (silhouettes are not photos) while the user goes on, so it does not hold the page busy
    grid = page.guide_panel.grid
    qtbot.waitUntil(lambda: page.session.estimate is not None, timeout=IDLE_MS)
    assert not page.session.estimate.similar
    text = page.form.recommend_label.text()
    assert "case 3" in text and "earlier layer" in text and "100 images" in text
    assert "_blocks.7" in text  # halfway up Lite0: the cut layer of case 3
    assert grid.highlighted_case() is GuideCase.SMALL_DIFFERENT
    assert "estimated" in page.form.similar_label.text()
    qtbot.mouseClick(page.form.use_recommended_button, Qt.MouseButton.LeftButton)
    assert page.form.strategy_combo.currentData() == "linear-probe"
    assert (
        page.form.cut_layer_combo.isVisibleTo(page) and page.form.cut_layer_combo.currentData() == "_blocks.7"
    )
    assert not page.form.use_recommended_button.isEnabled()
    # the user overrides the estimate: small and similar -> a linear classifier on the top features
    grid.override_combo.setCurrentIndex(grid.override_combo.findData(True))
    assert grid.highlighted_case() is GuideCase.SMALL_SIMILAR
    assert "case 1" in page.form.recommend_label.text() and "your answer" in page.form.similar_label.text()
    qtbot.mouseClick(page.form.use_recommended_button, Qt.MouseButton.LeftButton)
    assert page.form.strategy_combo.currentData() == "feature-extractor"
    assert not page.form.cut_layer_combo.isVisibleTo(page)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        ("single", "single class"),
        ("empty", "no class sub-folders"),
        ("few", "Too few"),
    ],
)
def test_a_dataset_that_cannot_be_used_says_why(qtbot, page, tmp_path, make, expected):
    root = tmp_path / make
    root.mkdir()
    if make == "single":
        write_animal_dataset(root, per_class=10, classes=["cat"])
    elif make == "few":
        write_animal_dataset(root, per_class=10, classes=["cat", "bird"])
        for p in sorted((root / "bird").iterdir())[2:]:
            p.unlink()
    scanned(qtbot, page, root)
    message = page.dataset_view.message_label
    assert message.isVisibleTo(page) and expected in message.text()
    assert page.dataset_view.table.rowCount() == 0
    assert "Not usable" in page.dataset_status.text()
    assert not page.start_button.isEnabled()
    assert "Choose a dataset" in page.form.recommend_label.text()


def test_bad_settings_are_refused_before_training(qtbot, page, animals):
    scanned(qtbot, page, animals)
    page.form.lr_edit.setText("fast")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert "not a number" in page.banner_text()
    assert not page.is_training() and not list((page.runs_folder).glob("*"))


# -- training --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_live_plots_pause_resume_stop_and_resume_from_history(qtbot, page, animals):
    scanned(qtbot, page, animals)
    lenet_settings(page, epochs=500)  # far more than it will get to: it is stopped
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.is_training() and not page.start_button.isEnabled() and page.stop_button.isEnabled()
    job = page.training_job
    # the x axis spans the whole run from the click on, before the run's first event
    assert page.session.progress.started is None
    assert planned_epochs(page) == 500 and not page.plots.empty_text.isVisible()  # (no "Start a run")

    # the plot data grow while it trains, and the progress line counts epochs and steps
    qtbot.waitUntil(lambda: curve_length(page.plots.loss_raw) > 0, timeout=TRAIN_MS)
    seen = curve_length(page.plots.loss_raw)
    qtbot.waitUntil(lambda: curve_length(page.plots.loss_raw) > seen + 10, timeout=TRAIN_MS)
    qtbot.waitUntil(lambda: curve_length(page.plots.val_acc) >= 1, timeout=TRAIN_MS)
    assert curve_length(page.plots.loss_smooth) == curve_length(page.plots.loss_raw)
    assert curve_length(page.plots.lr_curve) == curve_length(page.plots.loss_raw)
    assert "Epoch" in page.progress_bar.text() and "/500" in page.progress_bar.text()
    assert "images/s" in page.progress_label.text() and "ETA" in page.progress_label.text()

    # pause: nothing more arrives until Resume
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    assert page.pause_button.text() == "Resume" and "Paused" in page.progress_label.text()
    wait_until_quiet(qtbot, job)
    held = page.plots.step_count
    with qtbot.assertNotEmitted(job.events, wait=500):
        pass
    assert page.plots.step_count == held and page.is_training()
    qtbot.mouseClick(page.pause_button, Qt.MouseButton.LeftButton)
    assert page.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: page.plots.step_count > held + 5, timeout=TRAIN_MS)

    # stop: the run ends cleanly with last.pt kept and is listed as stopped
    qtbot.mouseClick(page.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    run_dir = page.run_path
    assert (run_dir / "last.pt").is_file() and (run_dir / "config.json").is_file()
    summary = RunDir(run_dir).read_summary()
    assert summary.status == "stopped"
    assert "Stopped" in page.banner_text() and "last.pt" in page.banner_text()
    assert page.start_button.isEnabled() and not page.stop_button.isEnabled()
    history = page.history
    assert [r.path for r in history.records] == [run_dir]
    assert history.table.item(0, 5).text() == "stopped"
    assert history.resume_button.isEnabled() and history.resume_button.text() == "Resume"

    # resume it for one more epoch than it had begun: the earlier curve is kept and continued
    stopped_steps = len(RunDir(run_dir).read_steps())
    target = summary.epochs_done + 2
    history.epochs_spin.setValue(target)
    qtbot.mouseClick(history.resume_button, Qt.MouseButton.LeftButton)
    assert page.is_training() and planned_epochs(page) == target
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    assert RunDir(run_dir).read_summary().status == "finished"
    assert page.plots.epoch_count == target
    assert page.plots.step_count > stopped_steps and page.plots.step_count == len(
        RunDir(run_dir).read_steps()
    )
    assert page.confusion_view.matrix is not None
    assert history.table.item(0, 5).text() == "finished"


@pytest.mark.slow
def test_finished_run_shows_confusion_matrix_images_and_opens_in_explorer(qtbot, page, animals, sample_cat):
    page.set_image(open_image(sample_cat))
    scanned(qtbot, page, animals)
    choose(page.form.model_combo, zoo.DEFAULT_MODEL)
    choose(page.form.strategy_combo, "feature-extractor")
    page.form.epochs_spin.setValue(2)
    page.form.batch_spin.setValue(16)
    choose(page.form.size_combo, 64)
    assert not page.open_explorer_button.isEnabled()
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    assert "Finished 2 epochs" in page.banner_text()
    assert page.progress_bar.value() == page.progress_bar.maximum()
    steps = RunDir(page.run_path).read_steps()
    assert page.plots.epoch_count == 2 and curve_length(page.plots.loss_raw) == len(steps) > 0

    # the confusion matrix of the best epoch: 4 validation images per class, per-class accuracy at the end
    cm = page.confusion_view
    assert page.tabs.currentWidget() is page.results and cm.matrix is not None
    assert cm.matrix.shape == (5, 5) and cm.matrix.sum(axis=1).tolist() == [4] * 5
    assert [cm.table.verticalHeaderItem(r).text() for r in range(5)] == CLASSES
    for r in range(5):
        assert cm.cell_text(r, 5).endswith(f"({cm.matrix[r, r]}/4)")
    assert int(np.trace(cm.matrix)) >= 8  # well above chance (4 of 20); typically 15-17
    run = load_run(page.run_path)
    assert run.summary.status == "finished"

    # clicking a cell shows exactly its images
    r, c = np.unravel_index(np.argmax(cm.matrix), cm.matrix.shape)
    rect = cm.table.visualItemRect(cm.table.item(int(r), int(c)))
    qtbot.mouseClick(cm.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    idle(qtbot, page)
    shown = page.gallery.paths()
    assert len(shown) == cm.matrix[r, c]
    assert all(p.parent.name == CLASSES[r] for p in shown)

    # "Open in explorer": the best checkpoint and the current image; a clicked validation image replaces it
    assert page.open_explorer_button.isEnabled()
    assert "chelsea.png" in page.explorer_image_label.text()
    with qtbot.waitSignal(page.open_in_explorer, timeout=5_000) as opened:
        qtbot.mouseClick(page.open_explorer_button, Qt.MouseButton.LeftButton)
    checkpoint, image = opened.args
    assert Path(checkpoint) == page.run_path / "best.pt" and Path(image) == sample_cat
    saved = zoo.read_checkpoint(checkpoint)
    assert saved["arch"] == zoo.DEFAULT_MODEL and saved["class_names"] == CLASSES
    item = page.gallery.list.item(0)
    rect = page.gallery.list.visualItemRect(item)
    qtbot.mouseClick(page.gallery.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert shown[0].name in page.explorer_image_label.text()
    with qtbot.waitSignal(page.open_in_explorer, timeout=5_000) as opened:
        qtbot.mouseClick(page.open_explorer_button, Qt.MouseButton.LeftButton)
    assert Path(opened.args[1]) == shown[0]


def test_nan_loss_is_reported_with_advice(qtbot, page, animals):
    scanned(qtbot, page, animals)
    lenet_settings(page, epochs=2, lr="1e20")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    text = page.banner_text()
    assert "the loss became" in text and "lower learning rate" in text
    assert "#a31515" in page.banner.styleSheet()  # shown as an error
    assert RunDir(page.run_path).read_summary().status == "diverged"
    assert page.history.table.item(0, 5).text() == "diverged"


def test_an_image_that_breaks_during_training_is_named(qtbot, page, animals, tmp_path):
    data = Path(shutil.copytree(animals, tmp_path / "animals"))
    # a JPEG cut short: its header passes the scan, decoding fails while training
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, format="JPEG", quality=90)
    (data / "horse" / "cut_short.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    scanned(qtbot, page, data)
    assert page.dataset_view.bad_list.count() == 0
    lenet_settings(page, epochs=1)
    page.form.val_spin.setValue(0.5)  # the split (seeded) decides where the file lands; both are read
    idle(qtbot, page)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    text = page.banner_text()
    assert "cut_short.jpg" in text and "could not be decoded" in text
    assert RunDir(page.run_path).read_summary().status == "finished"


def test_closing_while_training_asks_then_stops_and_keeps_the_checkpoint(qtbot, page, animals, monkeypatch):
    assert page.confirm_close()  # nothing running: no question
    scanned(qtbot, page, animals)
    lenet_settings(page, epochs=500)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.plots.step_count > 0, timeout=TRAIN_MS)
    asked = []

    def answer(reply):
        def question(parent, title, text, *args, **kwargs):
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not page.confirm_close()
    assert page.is_training() and "Stop training and close?" in asked[0]

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert page.confirm_close()
    # the worker has finished by the time confirm_close returns: the checkpoint is on disk
    assert (page.run_path / "last.pt").is_file()
    assert RunDir(page.run_path).read_summary().status == "stopped"
    qtbot.waitUntil(lambda: not page.is_training(), timeout=IDLE_MS)


# -- history ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_history_lists_earlier_runs_and_overlays_their_curves(qtbot, animals, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for seed, epochs in ((0, 2), (1, 3)):
        config = TrainConfig(
            data=str(animals), model="lenet5", strategy="scratch", epochs=epochs, batch_size=8, seed=seed
        )
        _, summary = run_to_end(fit(config, runs / f"run{seed}"))
        assert summary.status == "finished"
    page = FineTunePage(runs_folder=runs)
    qtbot.addWidget(page)
    page.show()
    try:
        idle(qtbot, page)
        history = page.history
        assert history.table.rowCount() == 2
        assert {history.table.item(r, 1).text() for r in range(2)} == {"run0", "run1"}
        assert {history.table.item(r, 3).text() for r in range(2)} == {"2/2", "3/3"}
        assert all("%" in history.table.item(r, 4).text() for r in range(2))
        assert (
            "lenet5" in history.table.item(0, 1).toolTip() and "batch 8" in history.table.item(0, 1).toolTip()
        )
        assert len(history.curves) == 2
        assert sorted(curve_length(c) for c in history.curves.values()) == [2, 3]
        history.table.item(0, 0).setCheckState(Qt.CheckState.Unchecked)
        assert len(history.curves) == 1
        history.metric_combo.setCurrentIndex(history.metric_combo.findData("val_loss"))
        assert len(history.curves) == 1 and "loss" in history.compare_plot.getAxis("left").labelText

        # Show puts a run's curves and confusion matrix on the page
        history.table.selectRow(1)
        shown = history.records[1]
        qtbot.mouseClick(history.show_button, Qt.MouseButton.LeftButton)
        idle(qtbot, page)
        assert page.plots.epoch_count == len(shown.epochs)
        assert page.confusion_view.matrix is not None and shown.name in page.confusion_view.title_label.text()
        assert page.open_explorer_button.isEnabled()

        # another runs folder (remembered in the settings when the page has them): an empty history
        other = tmp_path / "elsewhere"
        other.mkdir()
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(other))
        qtbot.mouseClick(page.runs_folder_button, Qt.MouseButton.LeftButton)
        idle(qtbot, page)
        assert page.runs_folder == other and page.runs_folder_edit.text() == str(other)
        assert history.table.rowCount() == 0 and not history.empty_label.isHidden()
    finally:
        page.shutdown()
        qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


@pytest.mark.slow
def test_prepare_screenshot_trains_a_short_demo_and_leaves_nothing_running(qtbot, page):
    page.prepare_screenshot()
    assert page.is_busy()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=90_000)
    assert not page.is_training() and not workers.active_jobs()
    assert page.dataset_view.table.rowCount() == 5
    assert "Recommended" in page.form.recommend_label.text()
    assert page.plots.epoch_count >= 1 and page.confusion_view.matrix is not None
    assert page.history.table.rowCount() == 1


def test_main_window_opens_a_dataset_on_this_page_and_closing_stops_training(qtbot, animals, tmp_path):
    from PySide6.QtCore import QSettings

    from cnn_explorer.qt.app import make_app
    from cnn_explorer.qt.main_window import MainWindow

    make_app()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("finetune/runs_folder", str(tmp_path / "runs"))
    window = MainWindow(settings=settings, load_sample=False)
    window._dialogs_enabled = False  # as the screenshot command and the window tests run it
    qtbot.addWidget(window)
    window.show()
    page = window.page("FineTunePage")
    assert page.runs_folder == tmp_path / "runs"
    window.open_dataset(animals)
    assert window.stack.currentWidget() is page
    qtbot.waitUntil(lambda: not window.is_busy(), timeout=IDLE_MS)
    assert page.dataset_view.table.rowCount() == 5

    lenet_settings(page, epochs=500)
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.plots.step_count > 0, timeout=TRAIN_MS)
    assert not window.is_busy()  # training does not count as busy: the screenshot command would wait
    run_dir = page.run_path
    window.close()  # without dialogs the page stops the run instead of asking
    assert not window.isVisible() and not workers.active_jobs()
    assert (run_dir / "last.pt").is_file() and RunDir(run_dir).read_summary().status == "stopped"
