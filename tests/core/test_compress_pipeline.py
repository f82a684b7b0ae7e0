"""A whole compression run of the bundled LeNet-5 on real UCI digits (a labelled folder): the files it
leaves, the numbers in report.json against those files and models, the fine-tune's kept zeros and its
training events, and a Cancel that leaves the output folder as it was."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress import (
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    CompressStage,
    load_base,
    predict,
    quality,
    run_compression,
)
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.digits import write_digit_folder
from cnn_explorer.core.training import EpochEnd, RunStarted, StepEnd

# reading a quantized checkpoint with plain torch.load: torch warns about its own storage classes
pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")

SPEC = CompressSpec(prune=0.5, finetune_epochs=1, quantize="int8-static", sweep=True, latency_runs=5)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("digits") / "digits", per_class=20)


@pytest.fixture(scope="module")
def finished(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[CompressReport, Path, list]:
    out = tmp_path_factory.mktemp("out")
    (out / "notes.txt").write_text("mine")  # an existing folder is used as it is
    events: list = []
    report = run_compression(
        CompressSource(model="lenet5", data=digits), SPEC, out, control=Control(events.append)
    )
    return report, out, events


def test_the_run_writes_every_variant_plot_and_report(finished):
    report, out, _ = finished
    names = [v.name for v in report.variants]
    assert names == ["fp32", "pruned-50", "pruned-50+ft1", "int8-static", "pruned-50+ft1+int8-static"]
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report.to_dict()))
    assert report.metric == "accuracy" and report.images == 40  # the 20% validation split of 200 digits
    assert report.quantization_flow.startswith("torch.ao FX graph mode (prepare_fx/convert_fx)")
    for v in report.variants:
        assert v.file == f"compressed/{v.name}.pt"
        assert v.size_bytes == os.path.getsize(out / v.file)  # the real size on disk
        sidecar = json.loads((out / "compressed" / f"{v.name}.json").read_text())
        assert sidecar["measured"]["size_bytes"] == v.size_bytes
        assert sidecar["compression"]["variant"] == v.name
        assert v.latency_ms_median > 0 and v.latency_ratio > 0
    for png in ("quality_vs_size.png", "sweep.png", "weights_c5.png"):
        assert Image.open(out / png).format == "PNG"
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_int8_is_over_three_times_smaller(finished):
    report, _, _ = finished
    fp32, int8 = report.variant("fp32"), report.variant("int8-static")
    assert fp32.size_bytes / int8.size_bytes >= 3.0  # measured: 3.24× (251 kB -> 77 kB)
    assert int8.agreement_top1 >= 0.9


def test_pruned_variants_report_their_zeros(finished):
    report, out, _ = finished
    pruned = report.variant("pruned-50")
    assert pruned.params == report.variant("fp32").params == 61706
    assert pruned.nonzero_params == pytest.approx(61706 - 0.5 * 61470, abs=1)  # 61470 conv+linear weights
    model = zoo.load_model_file(out / pruned.file).model
    assert dict(pruned.layer_sparsity)["c5"] == pytest.approx(float((model.c5.weight == 0).float().mean()))
    hist = next(h for h in report.histograms if h.variant == "pruned-50")
    assert (
        hist.layer == "c5"
        and hist.zeros_before == 0
        and hist.zeros_after == int((model.c5.weight == 0).sum())
    )
    assert sum(hist.after) + hist.zeros_after == model.c5.weight.numel()
    int8_hist = next(h for h in report.histograms if h.variant == "int8-static")
    assert int8_hist.levels is not None and 100 < int8_hist.levels <= 256


def test_the_fine_tune_keeps_the_zeros_and_reports_its_training(finished):
    _, out, events = finished
    pruned = zoo.load_model_file(out / "compressed" / "pruned-50.pt").model
    tuned = zoo.load_model_file(out / "compressed" / "pruned-50+ft1.pt").model
    changed = 0
    for name, m in pruned.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            after = dict(tuned.named_modules())[name].weight
            assert torch.equal(after == 0, m.weight == 0), name  # zeros stay zeros, nothing else becomes 0
            changed += int((after != m.weight).sum())
    assert changed > 1000  # the surviving weights did train
    kinds = [type(e) for e in events]
    assert RunStarted in kinds and EpochEnd in kinds and kinds.count(StepEnd) >= 5
    epoch = next(e for e in events if isinstance(e, EpochEnd))
    assert epoch.epoch == 1 and epoch.epochs == 1 and np.isfinite(epoch.train_loss)
    stages = [e for e in events if isinstance(e, CompressStage)]
    assert stages[-1].done == stages[-1].total and [s.done for s in stages] == sorted(s.done for s in stages)


def test_reopened_variants_score_what_the_report_says(finished, digits):
    report, out, _ = finished
    base = load_base(CompressSource(model="lenet5", data=digits), SPEC)
    reference = predict(base.model, base.images)
    for v in report.variants:
        path = out / v.file
        raw = torch.load(path, weights_only=True)  # loads without executing anything
        assert raw["compression"]["variant"] == v.name
        loaded = zoo.load_model_file(path)
        assert loaded.categories == [str(d) for d in range(10)]
        found = predict(loaded.model, base.images, engine=raw["compression"]["engine"])
        q = quality(found, reference, base.images.labels)
        assert q.accuracy == v.accuracy and q.agreement_top1 == v.agreement_top1, v.name


def test_sweep_goes_from_the_original_to_nine_tenths(finished):
    report, _, _ = finished
    assert [p.sparsity for p in report.sweep] == [0.0, 0.3, 0.5, 0.7, 0.8, 0.9]
    assert report.sweep[0].quality == report.variant("fp32").accuracy
    nonzero = [p.nonzero_params for p in report.sweep]
    assert nonzero == sorted(nonzero, reverse=True) and nonzero[0] == 61706


def test_without_labels_the_bundled_photos_give_agreement(tmp_path: Path):
    report = run_compression(
        CompressSource(model="lenet5"), CompressSpec(quantize="int8-dynamic", latency_runs=3), tmp_path
    )
    assert report.metric == "agreement" and report.images == 4
    assert [v.name for v in report.variants] == ["fp32", "int8-dynamic"]
    for v in report.variants:
        assert v.accuracy is None and v.agreement_top1 is not None and v.agreement_top5 is not None
    assert report.variant("fp32").agreement_top1 == 1.0
    assert "dynamic" in report.quantization_flow


def _cancel_when(predicate) -> Control:
    def on_event(event: object) -> None:
        if predicate(event):
            control.cancel()

    control = Control(on_event)
    return control


def _leftovers(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".tmp", ".pt", ".partial")))


def test_cancel_after_the_first_variant_leaves_the_folder_as_it_was(digits, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"earlier": true}')
    control = _cancel_when(lambda e: isinstance(e, CompressStage) and e.text == "Pruning")
    with pytest.raises(Cancelled):
        run_compression(CompressSource(model="lenet5", data=digits), SPEC, out, control=control)
    assert _leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert json.loads((out / "report.json").read_text()) == {"earlier": True}


def test_cancel_during_the_fine_tune_leaves_no_training_files(digits, tmp_path: Path):
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("cnn-explorer-finetune-*"))
    control = _cancel_when(lambda e: isinstance(e, StepEnd))
    with pytest.raises(Cancelled):
        run_compression(CompressSource(model="lenet5", data=digits), SPEC, tmp_path / "out", control=control)
    assert set(scratch.glob("cnn-explorer-finetune-*")) == before
    assert _leftovers(tmp_path) == []
    assert list((tmp_path / "out").iterdir()) == []


@pytest.fixture(scope="module")
def lenet_run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch fine-tuning run of LeNet-5 on the digits folder."""
    from cnn_explorer.core.data import Augmentation
    from cnn_explorer.core.training import TrainConfig, fit, run_to_end

    config = TrainConfig(
        data=str(digits),
        model="lenet5",
        strategy="fine-tune-all",
        epochs=1,
        batch_size=16,
        augmentation=Augmentation.none(),
        allow_download=False,
        device="cpu",
    )
    run = tmp_path_factory.mktemp("runs") / "lenet"
    run_to_end(fit(config, run))
    return run


def test_a_run_is_judged_on_its_own_validation_split(lenet_run: Path, tmp_path: Path):
    from cnn_explorer.core.runs import RunDir

    run = RunDir(lenet_run)
    split = run.read_dataset()["val"]
    spec = CompressSpec(prune=0.3, finetune_epochs=1, quantize="fp16", latency_runs=3)
    report = run_compression(CompressSource(run_dir=lenet_run), spec, tmp_path / "a")
    assert report.base == f"run {lenet_run}" and report.metric == "accuracy"
    assert report.images == len(split) == 40
    # the fp32 copy scores exactly what the run measured on its validation images
    assert report.variant("fp32").accuracy == pytest.approx(run.read_summary().best_val_acc)
    assert [v.name for v in report.variants] == [
        "fp32",
        "pruned-30",
        "pruned-30+ft1",
        "fp16",
        "pruned-30+ft1+fp16",
    ]
    fp16 = report.variant("fp16")
    assert fp16.size_bytes < 0.6 * report.variant("fp32").size_bytes
    assert any("float32" in note for note in fp16.notes)
    # without dataset.json the same split comes back from the run's own settings
    (lenet_run / "dataset.json").rename(lenet_run / "dataset.json.bak")
    try:
        again = run_compression(
            CompressSource(run_dir=lenet_run), CompressSpec(latency_runs=3), tmp_path / "b"
        )
    finally:
        (lenet_run / "dataset.json.bak").rename(lenet_run / "dataset.json")
    assert again.images == report.images and again.variant("fp32").accuracy == report.variant("fp32").accuracy


def test_a_linear_probe_run_quantizes_and_reopens(digits: Path, tmp_path: Path):
    """A probe stops its backbone with a hook FX does not run; the static flow traces it as a graph."""
    from cnn_explorer.core.data import Augmentation
    from cnn_explorer.core.training import TrainConfig, fit, run_to_end

    config = TrainConfig(
        data=str(digits),
        model="lenet5",
        strategy="linear-probe",
        cut_layer="c3",
        epochs=1,
        batch_size=16,
        augmentation=Augmentation.none(),
        allow_download=False,
        device="cpu",
    )
    run_to_end(fit(config, tmp_path / "run"))
    source = CompressSource(run_dir=tmp_path / "run")
    report = run_compression(source, CompressSpec(quantize="int8-static", latency_runs=3), tmp_path / "out")
    base = load_base(source, CompressSpec())
    reference = predict(base.model, base.images)
    raw = torch.load(tmp_path / "out" / "compressed" / "int8-static.pt", weights_only=True)
    assert raw["probe_layer"] == "c3"
    reopened = zoo.load_model_file(tmp_path / "out" / "compressed" / "int8-static.pt").model
    found = quality(predict(reopened, base.images, engine=raw["compression"]["engine"]), reference, None)
    assert found.agreement_top1 == report.variant("int8-static").agreement_top1


def test_the_run_folder_itself_is_refused_as_the_output(lenet_run: Path):
    before = sorted(p.name for p in lenet_run.iterdir())
    with pytest.raises(CompressError, match="is the run folder"):
        run_compression(CompressSource(run_dir=lenet_run), CompressSpec(quantize="fp16"), lenet_run)
    assert sorted(p.name for p in lenet_run.iterdir()) == before


def test_a_second_run_into_the_folder_leaves_only_its_own_plots(tmp_path: Path):
    out = tmp_path / "out"
    spec = CompressSpec(prune=0.5, sweep=True, latency_runs=2)
    run_compression(CompressSource(model="lenet5"), spec, out)
    assert (out / "sweep.png").is_file()
    report = run_compression(
        CompressSource(model="lenet5"), CompressSpec(quantize="fp16", latency_runs=2), out
    )
    assert not (out / "sweep.png").exists() and not report.sweep  # the old sweep's picture is gone
    assert (out / "quality_vs_size.png").is_file()
