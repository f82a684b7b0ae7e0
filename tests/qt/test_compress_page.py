"""The Compress page, driven like a user: a request the core refuses shows its message under the form;
an earlier report opens; a real compression of LeNet-5 on the bundled photos fills the table and the
charts with the sizes of the files it saved; a fine-tune after pruning draws its live curves; Cancel
stops a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_explorer.core.compress.spec import CompressReport, VariantReport
from cnn_explorer.qt.pages.compress import CompressPage
from cnn_explorer.qt.widgets.compress_table import size_text

STOP_MS = 60_000
RUN_MS = 180_000  # a spawned worker imports torch, then LeNet-5 is pruned, quantized and timed


def page_with(open_page) -> CompressPage:
    return open_page(CompressPage(), STOP_MS)


def click_run(qtbot, page: CompressPage) -> None:
    qtbot.mouseClick(page.form.run_button, Qt.MouseButton.LeftButton)


def choose(combo, data) -> None:
    combo.setCurrentIndex(combo.findData(data))


# -- what the form refuses ------------------------------------------------------------------------------
def test_a_missing_run_folder_is_named_under_the_form(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    assert page.title == "Compress"
    missing = tmp_path / "no-such-run"
    page.form.set_run(missing)
    assert "accuracy" in page.form.quality_label.text()
    click_run(qtbot, page)
    qtbot.waitUntil(lambda: page.form.error() != "", timeout=10_000)
    assert str(missing) in page.form.error() and "does not exist" in page.form.error()
    qtbot.waitUntil(lambda: not page.is_busy())
    assert page.form.run_button.isEnabled() and not page.form.cancel_button.isEnabled()
    assert page.results.table.rows() == []  # nothing ran


def test_a_fine_tune_on_the_unlabelled_photos_is_refused(qtbot, open_page):
    page = page_with(open_page)
    page.form.set_model("lenet5")
    assert "agreement" in page.form.quality_label.text()
    page.form.finetune_spin.setValue(1)
    click_run(qtbot, page)
    qtbot.waitUntil(lambda: page.form.error() != "", timeout=10_000)
    assert "labelled" in page.form.error()
    page.form.finetune_spin.setValue(0)  # fixing the form clears the message
    assert page.form.error() == ""


def test_a_per_layer_line_the_form_cannot_read_says_so_at_once(qtbot, open_page):
    page = page_with(open_page)
    choose(page.form.prune_combo, "per-layer")
    assert page.form.per_layer_edit.isVisibleTo(page)
    page.form.per_layer_edit.setText("c1=thirty")
    click_run(qtbot, page)
    assert "c1=thirty" in page.form.error()
    assert not page.is_busy()


def test_a_per_layer_name_the_model_lacks_is_refused_with_its_layers(qtbot, open_page):
    page = page_with(open_page)
    page.form.set_model("lenet5")
    choose(page.form.prune_combo, "per-layer")
    page.form.per_layer_edit.setText("c1=30, conv9=50")
    click_run(qtbot, page)
    qtbot.waitUntil(lambda: page.form.error() != "", timeout=10_000)
    assert "'conv9'" in page.form.error() and "c1" in page.form.error()  # the model's layers are listed
    qtbot.waitUntil(lambda: not page.is_busy())


# -- an earlier report ---------------------------------------------------------------------------------
def test_an_earlier_report_opens_and_its_variant_opens_in_the_explorer(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    (tmp_path / "compressed").mkdir()
    for name, size in (("fp32", 4000), ("int8-static", 1000)):
        (tmp_path / "compressed" / f"{name}.pt").write_bytes(b"x" * size)
    variants = [
        VariantReport("fp32", "compressed/fp32.pt", 4000, 100, 100, 1.0, 1.0, accuracy=0.9),
        VariantReport("int8-static", "compressed/int8-static.pt", 1000, 100, 100, 0.5, 0.5, accuracy=0.88),
    ]
    report = CompressReport("run runs/first", "accuracy", 40, 4, "torch.ao FX graph mode", variants)
    (tmp_path / "report.json").write_text(json.dumps(report.to_dict()), encoding="utf-8")

    page.open_report(tmp_path)
    qtbot.waitUntil(lambda: len(page.results.table.rows()) == 3)
    header, fp32, int8 = page.results.table.rows()
    assert fp32[2] == "original"
    assert header[-1] == "accuracy" and int8[2] == "4.0× smaller" and int8[-1] == "88.0 %"
    assert page.results.selected() == "int8-static"
    with qtbot.waitSignal(page.open_in_explorer) as opened:
        qtbot.mouseClick(page.results.table.open_button, Qt.MouseButton.LeftButton)
    assert opened.args == [str(tmp_path / "compressed" / "int8-static.pt"), ""]


def test_a_folder_without_a_report_is_named(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    page.open_report(tmp_path)
    qtbot.waitUntil(lambda: page.form.error() != "")
    assert str(tmp_path / "report.json") in page.form.error()


# -- real runs -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_real_compression_fills_the_table_and_the_charts(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    form = page.form
    form.set_model("lenet5")
    choose(form.prune_combo, "global")
    form.prune_spin.setValue(50)
    choose(form.quantize_combo, "int8-static")
    form.sweep_check.setChecked(True)
    out = tmp_path / "out"
    form.out_edit.setText(str(out))
    click_run(qtbot, page)
    assert page.is_busy() and form.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=RUN_MS)
    assert form.error() == "", form.error()

    rows = page.results.table.rows()
    header, *body = rows
    assert header[-1] == "agreement (top-1 / top-5)"
    names = [r[0] for r in body]
    assert names[0] == "fp32" and "int8-static" in names and any(n.startswith("pruned-50") for n in names)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for row, v in zip(body, report["variants"], strict=True):
        assert row[1] == size_text((out / v["file"]).stat().st_size)  # the real file's size
    assert page.results.sweep_chart.hint() == "" and len(page.results.sweep_chart.value_labels()) == 6
    assert page.results.quality_chart.hint() == ""
    selected = page.results.selected()
    assert selected != "fp32"
    assert page.results.histograms.hint() == ""
    assert form.progress_bar.format() == "Finished"
    with qtbot.waitSignal(page.open_in_explorer) as opened:
        qtbot.mouseClick(page.results.table.open_button, Qt.MouseButton.LeftButton)
    assert Path(opened.args[0]).is_file() and opened.args[0].startswith(str(out))


@pytest.fixture
def lenet_run(tmp_path) -> Path:
    """A real, tiny fine-tuned run: LeNet-5 trained for one epoch on the bundled silhouettes."""
    from cnn_explorer.core.data import write_animal_dataset
    from cnn_explorer.core.train_config import TrainConfig
    from cnn_explorer.core.training import fit, run_to_end

    data = write_animal_dataset(tmp_path / "shapes", per_class=12)
    config = TrainConfig(data=str(data), model="lenet5", strategy="scratch", epochs=1, batch_size=8)
    run = tmp_path / "run"
    run_to_end(fit(config, run))
    return run


@pytest.mark.slow
def test_a_fine_tune_after_pruning_draws_its_live_curves(qtbot, open_page, lenet_run, tmp_path):
    page = page_with(open_page)
    form = page.form
    form.set_run(lenet_run)
    assert "accuracy" in form.quality_label.text()
    choose(form.prune_combo, "global")
    form.prune_spin.setValue(50)
    form.finetune_spin.setValue(1)
    form.out_edit.setText(str(tmp_path / "out"))
    click_run(qtbot, page)
    qtbot.waitUntil(lambda: page.results.plots.step_count > 0, timeout=RUN_MS)
    assert page.results.tabs.currentWidget() is page.results.plots  # the curves show while it trains
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=RUN_MS)
    assert form.error() == "", form.error()
    header, *body = page.results.table.rows()
    assert header[-1] == "accuracy"
    assert any("+ft1" in r[0] for r in body)
    assert page.results.plots.epoch_count == 1


def test_cancel_before_the_worker_starts(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    page.form.set_model("lenet5")
    page.form.out_edit.setText(str(tmp_path / "out"))
    click_run(qtbot, page)
    assert page.form.cancel_button.isEnabled()
    qtbot.mouseClick(page.form.cancel_button, Qt.MouseButton.LeftButton)  # while the request is checked
    qtbot.waitUntil(lambda: not page.is_busy())
    assert page.form.progress_bar.format() == "Cancelled"
    assert page.form.stage_label.text() == "Cancelled before it started."
    assert page.form.run_button.isEnabled() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cancel_stops_a_running_compression_and_keeps_no_file(qtbot, open_page, tmp_path):
    page = page_with(open_page)
    form = page.form
    form.set_model("lenet5")
    choose(form.quantize_combo, "int8-static")
    form.sweep_check.setChecked(True)
    out = tmp_path / "out"
    form.out_edit.setText(str(out))
    click_run(qtbot, page)
    # The worker process has started: its first stage ("Loading the model…") gives the bar its length.
    qtbot.waitUntil(lambda: form.progress_bar.maximum() > 1, timeout=RUN_MS)
    qtbot.mouseClick(form.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=RUN_MS)
    assert form.progress_bar.format() == "Cancelled"
    assert "no half-written file" in form.stage_label.text()
    assert form.run_button.isEnabled() and page.results.table.rows() == []
    assert not [p.name for p in out.rglob("*")]  # the folder is as it was: empty
