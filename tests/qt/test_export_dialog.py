"""The Export… dialog: real exports of LeNet-5 (fast), what the user sees, and nothing written on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from cnn_explorer.core.export import SUFFIXES
from cnn_explorer.qt import workers
from cnn_explorer.qt.widgets.export_dialog import ExportDialog


@pytest.fixture
def open_dialog(qtbot):
    opened: list[ExportDialog] = []

    def make(**kwargs) -> ExportDialog:
        dialog = ExportDialog(**kwargs)
        qtbot.addWidget(dialog)
        dialog.show()
        opened.append(dialog)
        return dialog

    yield make
    for dialog in opened:
        dialog.shutdown()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=30_000)


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_export_writes_the_file_and_shows_the_verification(open_dialog, qtbot, tmp_path: Path, fmt):
    dialog = open_dialog(model="lenet5")
    assert "lenet5" in dialog.what_label.text()
    dialog.set_format(fmt)
    out = tmp_path / f"digits{SUFFIXES[fmt]}"
    dialog.set_output(out)
    with qtbot.waitSignal(dialog.exported, timeout=60_000) as signal:
        qtbot.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        assert dialog.is_busy() and dialog.progress.isVisible() and not dialog.export_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=60_000)
    result = dialog.result()
    assert signal.args == [result] and result.passed and result.format == fmt
    assert out.is_file() and (tmp_path / "digits.json").is_file()
    assert json.loads((tmp_path / "digits.json").read_text())["architecture"] == "lenet5"
    message = dialog.message()
    assert result.verification.line() in message and "top-1 identical" in message
    assert str(out) in message and str(tmp_path / "digits.json") in message and "KB" in message
    assert dialog.status_label.isVisible() and "VERIFICATION FAILED" not in message
    assert not dialog.progress.isVisible() and dialog.export_button.isEnabled()
    assert dialog.cancel_button.text() == "Close"


def test_a_missing_folder_is_shown_inline_and_nothing_is_written(open_dialog, qtbot, tmp_path: Path):
    dialog = open_dialog(model="lenet5")
    out = tmp_path / "no such folder" / "lenet5.onnx"
    dialog.set_output(out)
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=30_000)
    assert dialog.result() is None
    message = dialog.message()
    assert str(out) in message and "does not exist" in message
    assert dialog.status_label.isVisible()
    assert list(tmp_path.iterdir()) == []
    assert dialog.export_button.isEnabled() and dialog.cancel_button.text() == "Cancel"


def test_the_default_output_follows_the_format(open_dialog, tmp_path: Path):
    dialog = open_dialog(model="lenet5")
    assert dialog.output() == Path.home() / "lenet5.onnx"
    dialog.set_format("torchscript")
    assert dialog.output() == Path.home() / "lenet5.pt"
    dialog.set_format("safetensors")
    assert dialog.output() == Path.home() / "lenet5.safetensors"
    dialog.set_output(tmp_path / "mine.bin")  # a suffix of the user's own is kept
    dialog.set_format("onnx")
    assert dialog.output() == tmp_path / "mine.bin"


def test_a_run_folder_defaults_into_the_run_and_exports_its_model(open_dialog, qtbot, tmp_path: Path):
    from cnn_explorer.core.data import write_animal_dataset
    from cnn_explorer.core.training import TrainConfig, fit, run_to_end

    data = write_animal_dataset(tmp_path / "animals", per_class=8, classes=["bird", "elephant", "giraffe"])
    run = tmp_path / "run"
    config = TrainConfig(data=str(data), model="lenet5", strategy="scratch", epochs=1, allow_download=False)
    run_to_end(fit(config, run))

    dialog = open_dialog(run_dir=run, title="run “run”")
    assert dialog.output() == run / "lenet5.onnx"
    dialog.set_format("torchscript")
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=60_000)
    result = dialog.result()
    assert result is not None, dialog.message()
    assert (run / "lenet5.pt").is_file() and result.verification.source == "the run's validation images"
    assert "top-1 identical" in dialog.message()
    assert json.loads(result.model_json.read_text())["class_names"] == ["bird", "elephant", "giraffe"]


def test_cancel_while_idle_closes_and_closing_while_busy_waits(open_dialog, qtbot, tmp_path: Path):
    dialog = open_dialog(model="lenet5")
    dialog.set_output(tmp_path / "lenet5.onnx")
    dialog.start()
    assert dialog.is_busy()
    dialog.close()  # cancels; the dialog closes once the worker has stopped
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=30_000)
    assert not dialog.isVisible()
    assert dialog.result() is None or (tmp_path / "lenet5.onnx").is_file()  # (it may have finished first)

    idle = open_dialog(model="lenet5")
    qtbot.mouseClick(idle.cancel_button, Qt.MouseButton.LeftButton)
    assert not idle.isVisible()


def test_a_failed_verification_is_shown_in_red_and_the_file_kept(open_dialog, qtbot, tmp_path, monkeypatch):
    import dataclasses

    from cnn_explorer.core.export import pipeline
    from cnn_explorer.qt.widgets.export_dialog import FAILED_STYLE, PASSED_STYLE

    real_verify = pipeline.verify

    def off_by_much(*args, **kwargs):
        v = real_verify(*args, **kwargs)
        return dataclasses.replace(v, max_abs_diff=0.5, passed=False)

    monkeypatch.setattr(pipeline, "verify", off_by_much)
    dialog = open_dialog(model="lenet5")
    dialog.set_format("safetensors")
    dialog.set_output(tmp_path / "lenet5.safetensors")
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=30_000)
    assert not dialog.result().passed and (tmp_path / "lenet5.safetensors").is_file()
    assert dialog.message().startswith("VERIFICATION FAILED") and "over the tolerance" in dialog.message()
    assert (
        dialog.status_label.isVisible() and dialog.status_label.styleSheet() == FAILED_STYLE != PASSED_STYLE
    )
