"""The fine-tune page beyond a laptop: precision, data workers and channels-last in the form, how a run
computes in its banner, the torchrun commands for the form's settings, and worker processes that may start
DataLoader workers of their own."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from cnn_explorer import cli, cli_train
from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.training import RunStarted, TrainConfig
from cnn_explorer.core.transfer.progress import hardware_text
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.finetune import FineTunePage
from cnn_explorer.qt.pages.finetune.training_panel import LaunchPanel
from cnn_explorer.qt.widgets.training_settings import TrainingSettingsForm

IDLE_MS = 30_000
TRAIN_MS = 120_000


@pytest.fixture(scope="module")
def animals(tmp_path_factory) -> Path:
    return write_animal_dataset(tmp_path_factory.mktemp("data") / "animals", per_class=20)


@pytest.fixture
def page(open_page, tmp_path):
    return open_page(FineTunePage(runs_folder=tmp_path / "runs"), IDLE_MS)


@pytest.fixture
def form(qtbot) -> TrainingSettingsForm:
    form = TrainingSettingsForm()
    qtbot.addWidget(form)
    return form


def choose(combo, data) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data!r} not offered"
    combo.setCurrentIndex(index)


def enabled(combo, data) -> bool:
    return combo.model().item(combo.findData(data)).isEnabled()


def tooltip(combo, data) -> str:
    return combo.itemData(combo.findData(data), Qt.ItemDataRole.ToolTipRole)


# -- a worker process may have processes of its own ------------------------------------------------
def _sum_through_a_dataloader_worker() -> float:
    data = torch.utils.data.TensorDataset(torch.arange(16.0))
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=1)
    return float(sum(batch.sum() for (batch,) in loader))


def test_a_process_job_can_start_dataloader_workers(qtbot):
    # a daemonic child failed here: "daemonic processes are not allowed to have children"
    job = workers.start_process_job(_sum_through_a_dataloader_worker)
    failed: list = []
    job.failed.connect(failed.append)
    with qtbot.waitSignal(job.finished, timeout=60_000):
        pass
    assert not failed, getattr(failed[0], "__traceback_text__", failed[0])
    assert job.outcome == "result"
    qtbot.waitUntil(lambda: not job._thread.process.is_alive(), timeout=10_000)


# -- the form -----------------------------------------------------------------------------------------
def test_the_form_sets_workers_precision_and_layout(form):
    p = form.params
    config = form.config("/data")
    assert (config.num_workers, config.precision, config.channels_last) == (None, "auto", True)
    assert p.workers_spin.text() == "automatic"
    p.workers_spin.setValue(4)
    choose(p.precision_combo, "fp32")
    p.channels_last_check.setChecked(False)
    config = form.config("/data")
    assert (config.num_workers, config.precision, config.channels_last) == (4, "fp32", False)
    p.workers_spin.setValue(0)
    assert form.config("/data").num_workers == 0  # no worker processes, not "automatic"
    assert "decode" in p.workers_spin.toolTip() and "help" in p.workers_spin.toolTip()

    p.set_hardware(TrainConfig(num_workers=None, precision="auto", channels_last=True))
    config = form.config("/data")
    assert (config.num_workers, config.precision, config.channels_last) == (None, "auto", True)


def test_on_a_cpu_automatic_means_fp32_and_cuda_only_choices_are_greyed_out(form):
    p = form.params
    choose(p.device_combo, "cpu")
    assert p.precision_combo.itemText(0) == "automatic (fp32 on this CPU)"
    assert not enabled(p.precision_combo, "fp16") and "CUDA" in tooltip(p.precision_combo, "fp16")
    assert enabled(p.precision_combo, "bf16") and enabled(p.precision_combo, "fp32")
    assert not p.channels_last_check.isEnabled() and "CUDA only" in p.channels_last_check.toolTip()


def test_on_cuda_automatic_means_bf16_and_everything_is_offered(form, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    p = form.params
    choose(p.precision_combo, "fp16")
    choose(p.device_combo, "cuda")
    assert p.precision_combo.itemText(0) == "automatic (bf16 on CUDA)"
    assert all(enabled(p.precision_combo, k) for k in ("auto", "fp32", "bf16", "fp16"))
    assert p.channels_last_check.isEnabled()
    assert form.config("/data").precision == "fp16"
    choose(p.device_combo, "cpu")  # fp16 cannot run there: back to automatic rather than a failing run
    assert form.config("/data").precision == "auto"


# -- the banner of a run --------------------------------------------------------------------------
def _started(**kw) -> RunStarted:
    base = dict(
        run_dir=Path("run"), config=TrainConfig(), class_names=["a", "b"], n_train=8, n_val=2, device="cpu",
        weights="random", steps_per_epoch=1, total_steps=1, start_epoch=0, start_step=0, trainable_params=1,
        total_params=1, cached=False,
    )  # fmt: skip
    return RunStarted(**{**base, **kw})


def test_hardware_text_says_only_what_applies():
    assert hardware_text(_started()) == "on cpu · fp32 · no data workers"
    assert hardware_text(_started(num_workers=1)) == "on cpu · fp32 · 1 data worker"
    gpu = _started(device="cuda:0", precision="bf16", channels_last=True, num_workers=4, world_size=2)
    assert (
        hardware_text(gpu)
        == "on cuda:0 · bf16 mixed precision · channels-last · 4 data workers · 2 processes"
    )


def test_a_run_with_a_data_worker_says_how_it_computes(qtbot, page, animals):
    page.set_dataset_folder(animals)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)
    choose(page.form.model_combo, "lenet5")
    choose(page.form.strategy_combo, "scratch")
    page.form.epochs_spin.setValue(200)  # stopped as soon as it has said how it runs
    page.form.batch_spin.setValue(8)
    page.form.params.workers_spin.setValue(1)  # a DataLoader worker inside the run's worker process
    choose(page.form.params.device_combo, "cpu")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "data worker" in page.banner_text() or not page.is_training(), timeout=TRAIN_MS)
    assert "on cpu · fp32 · 1 data worker" in page.banner_text()
    page.stop_training()
    qtbot.waitUntil(lambda: not page.is_training(), timeout=TRAIN_MS)
    assert "Stopped" in page.banner_text()


# -- the commands for several GPUs ----------------------------------------------------------------
def test_the_commands_train_what_the_form_shows(qtbot, page, animals, monkeypatch):
    launch = page.training_panel.launch
    assert not launch.body.isVisibleTo(page)  # closed until asked for
    page.set_dataset_folder(animals)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)
    choose(page.form.strategy_combo, "fine-tune-top")
    page.form.epochs_spin.setValue(3)
    page.form.params.workers_spin.setValue(2)
    choose(page.form.params.precision_combo, "fp32")
    qtbot.mouseClick(launch.toggle, Qt.MouseButton.LeftButton)
    assert launch.body.isVisibleTo(page)
    assert "no CUDA GPU" in launch.machine_label.text() or "GPUs" in launch.machine_label.text()
    expected = page.form.config(str(animals.resolve()))
    for kind in ("local", "multi_node", "single"):
        words = shlex.split(launch.command(kind))
        tail = words[words.index("finetune") :]
        args = cli.build_parser(tail).parse_args(tail)
        assert cli_train._config_from_args(args) == expected, kind
        assert args.out.parent == page.runs_folder
    assert "--nnodes=2" in launch.command("multi_node") and "HOST" in launch.multi_node_note.text()

    page.form.epochs_spin.setValue(4)  # the commands follow the form
    assert "--epochs 4" in launch.command("local")
    page.form.lr_edit.setText("fast")
    assert "not a number" in launch.error_label.text() and not launch.copy_buttons["local"].isEnabled()
    page.form.lr_edit.setText("")
    qtbot.mouseClick(launch.copy_buttons["local"], Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == launch.command("local")


def test_a_machine_with_several_gpus_is_told_to_use_them(qtbot):
    panel = LaunchPanel(gpus=4)
    qtbot.addWidget(panel)
    assert panel.machine_label.text() == (
        "This machine has 4 GPUs: launch the command below to train on all of them."
    )
    alone = LaunchPanel(gpus=1)
    qtbot.addWidget(alone)
    assert "for a machine with several GPUs" in alone.machine_label.text()
