"""The Fine-tune page's transfer-learning tools, through the widgets: the sample dataset from the File
menu, watch it learn, probe every block, the LR finder, the cache / augmentation conflict, notices that
stay, and the confusion gallery's Grad-CAM pair."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.finetune import FineTunePage

IDLE_MS = 60_000
TRAIN_MS = 180_000


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_animal_dataset(tmp_path_factory.mktemp("shapes") / "animals", per_class=12)


@pytest.fixture
def page(open_page, tmp_path):
    return open_page(FineTunePage(runs_folder=tmp_path / "runs"), IDLE_MS)


def idle(qtbot, page) -> None:
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


@pytest.mark.slow
def test_sample_dataset_start_watch_it_learn_finish_and_ask_why(qtbot, tmp_path):
    from cnn_explorer.qt.app import make_app
    from cnn_explorer.qt.main_window import MainWindow

    make_app()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("finetune/runs_folder", str(tmp_path / "runs"))
    window = MainWindow(settings=settings, load_sample=False)
    window._dialogs_enabled = False
    qtbot.addWidget(window)
    window.show()
    page = window.page("FineTunePage")
    try:
        window.action_sample_dataset.trigger()  # File ▸ Try the bundled animal silhouettes
        assert window.stack.currentWidget() is page
        qtbot.waitUntil(lambda: page.start_button.isEnabled(), timeout=IDLE_MS)
        assert page.dataset_view.table.rowCount() == 5 and page.form.size_combo.currentData() == 64
        click(qtbot, page.watch_panel.dataset_button)  # watch a validation image (its class is known)
        qtbot.waitUntil(lambda: page.watch_panel.strip.pixels is not None, timeout=IDLE_MS)
        page.form.epochs_spin.setValue(3)
        page.form.batch_spin.setValue(16)
        click(qtbot, page.start_button)
        strip = page.watch_panel.strip
        counts = []
        qtbot.waitUntil(
            lambda: counts.append(strip.frame_count()) or not page.is_training(), timeout=TRAIN_MS
        )
        assert strip.frame_count() == 3  # one map per epoch
        assert [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]][-3:] == [1, 2, 3]
        assert all(text.startswith(f"epoch {i}") for i, (text, _) in enumerate(strip.captions(), 1))
        assert "Finished 3 epochs" in page.banner_text()

        # confusion matrix -> a cell's images -> why: Grad-CAM for the predicted and for the true class
        qtbot.waitUntil(lambda: page.gallery.list.count() > 0, timeout=IDLE_MS)
        item = page.gallery.list.item(0)
        rect = page.gallery.list.visualItemRect(item)
        qtbot.mouseClick(page.gallery.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        pair = page.results.cam_view
        qtbot.waitUntil(lambda: pair.captions()[0].startswith("predicted"), timeout=IDLE_MS)
        predicted, true = pair.captions()
        assert predicted.startswith("predicted: ") and true.startswith("true: ")
    finally:
        window.close()
        qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_probe_every_block_then_click_a_point_to_cut_there(qtbot, page, shapes):
    page.set_dataset_folder(shapes)
    idle(qtbot, page)
    page.form.choose_size(32)
    page.tabs.setCurrentWidget(page.guide_panel)
    click(qtbot, page.guide_panel.probe_button)
    idle(qtbot, page)
    chart = page.guide_panel.chart
    report = page.session.probe
    assert report is not None and len(report.rows) == 18 and report.image_size == 32
    assert chart.row("_blocks.3") is not None
    pos = chart.point_position("_blocks.3").toPoint()
    qtbot.mouseClick(chart.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert page.form.strategy_combo.currentData() == "linear-probe"
    assert page.form.cut_layer_combo.currentData() == "_blocks.3" and page.session.cut_layer == "_blocks.3"
    assert page.form.config(str(shapes)).cut_layer == "_blocks.3"


def test_lr_finder_fills_in_the_learning_rate(qtbot, page, shapes):
    page.set_dataset_folder(shapes)
    idle(qtbot, page)
    page.form.choose_size(32)
    page.lr_panel.steps_spin.setValue(30)
    click(qtbot, page.lr_panel.find_button)
    idle(qtbot, page)
    result = page.session.lr_result
    assert result is not None and len(result.lrs) >= 10
    assert page.lr_panel.plot.point_count() == len(result.lrs)
    click(qtbot, page.lr_panel.use_button)
    assert float(page.form.lr_edit.text()) == pytest.approx(result.suggestion, rel=1e-2)
    page.lr_panel.plot.lr_chosen.emit(0.0123)  # what a click on the curve sends
    assert page.form.lr_edit.text() == "0.0123"


def test_the_cache_greys_out_augmentation_and_says_why(qtbot, page):
    form, params = page.form, page.form.params
    choose(form.strategy_combo, "feature-extractor")
    assert params.cache_check.isChecked()
    assert not params.augment_box.isEnabled() and params.augment_note.isVisibleTo(page)
    assert "cache" in params.augment_note.text()
    assert not form.config().augmentation.enabled  # what is shown is what trains
    params.cache_check.setChecked(False)
    assert params.augment_box.isEnabled() and not params.augment_note.isVisibleTo(page)
    assert form.config().augmentation.enabled
    params.cache_check.setChecked(True)
    choose(form.strategy_combo, "fine-tune-all")  # no cache for it: augmentation is back
    assert params.augment_box.isEnabled() and form.config().augmentation.enabled


def test_every_setting_of_the_notes_reaches_the_config(qtbot, page):
    form, params = page.form, page.form.params
    config = form.config()
    assert (config.optimizer, config.momentum, config.weight_decay) == ("sgd", 0.9, 5e-4)
    choose(form.strategy_combo, "fine-tune-top")
    assert params.lr_mult_spin.isVisibleTo(page)
    params.momentum_spin.setValue(0.8)
    params.weight_decay_spin.setValue(0.001)
    params.dropout_spin.setValue(0.3)
    params.lr_mult_spin.setValue(0.1)
    params.smoothing_spin.setValue(0.1)
    config = form.config()
    assert (config.momentum, config.weight_decay, config.dropout, config.lr_mult) == (0.8, 0.001, 0.3, 0.1)
    assert config.label_smoothing == 0.1
    choose(form.optimizer_combo, "adamw")
    assert not params.momentum_spin.isVisibleTo(page)


def test_notices_stay_after_the_run(qtbot, page, shapes):
    page.set_dataset_folder(shapes)
    idle(qtbot, page)
    choose(page.form.model_combo, "lenet5")
    choose(page.form.strategy_combo, "fine-tune-top")
    page.form.top_blocks_spin.setValue(50)  # more than LeNet has: the run says so, and goes on
    page.form.epochs_spin.setValue(1)
    click(qtbot, page.start_button)
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    idle(qtbot, page)
    text = page.banner_text()
    assert "Finished 1 epoch" in text and "only 4 backbone blocks" in text


def test_a_probe_of_the_previous_dataset_never_lands_on_the_next(qtbot, page, shapes, tmp_path, monkeypatch):
    from cnn_explorer.core.control import checkpoint
    from cnn_explorer.qt.pages.finetune import transfer

    other = write_animal_dataset(tmp_path / "other", per_class=8, classes=["cat", "horse"])
    started = []

    def slow_probe(scan, model, *, control=None, **kwargs):
        started.append(scan.root)
        while True:  # until cancelled: the user opens another folder meanwhile
            checkpoint(control)
            time.sleep(0.01)

    monkeypatch.setattr(transfer, "probe_every_block", slow_probe)
    page.set_dataset_folder(shapes)
    idle(qtbot, page)
    click(qtbot, page.guide_panel.probe_button)
    qtbot.waitUntil(lambda: bool(started), timeout=IDLE_MS)
    page.set_dataset_folder(other)
    idle(qtbot, page)
    assert page.session.scan.root == other and page.session.probe is None
    assert page.guide_panel.probe_button.isEnabled()
