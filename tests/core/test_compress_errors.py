"""Requests a compression run cannot serve are refused up front with a message that names the file, the
folder or the layer and says what is wrong (the CLI's exit code 2, the page's form)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnn_explorer.core.compress import (
    CompressError,
    CompressSource,
    CompressSpec,
    check_request,
    run_compression,
)

LENET = CompressSource(model="lenet5")


def _refused(source: CompressSource, spec: CompressSpec, pattern: str) -> str:
    with pytest.raises(CompressError, match=pattern) as err:
        check_request(source, spec)
    return str(err.value)


def test_both_or_neither_source():
    _refused(CompressSource(), CompressSpec(), "either a run folder or a model name.*not neither")
    _refused(CompressSource(run_dir=Path("r"), model="lenet5"), CompressSpec(), "not both")


def test_missing_run_and_data_folders(tmp_path: Path):
    missing = tmp_path / "no-such-run"
    assert str(missing) in _refused(CompressSource(run_dir=missing), CompressSpec(), "does not exist")
    (tmp_path / "plain").mkdir()
    assert "config.json" in _refused(
        CompressSource(run_dir=tmp_path / "plain"), CompressSpec(), "not a run folder"
    )
    gone = tmp_path / "no-such-images"
    assert str(gone) in _refused(CompressSource(model="lenet5", data=gone), CompressSpec(), "does not exist")
    weights = tmp_path / "w.pt"
    assert str(weights) in _refused(
        CompressSource(model="lenet5", weights=weights), CompressSpec(), "weights"
    )


def test_unknown_model():
    _refused(CompressSource(model="lenet6"), CompressSpec(), "Unknown model 'lenet6'")


def test_a_folder_without_images(tmp_path: Path):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    assert str(empty) in _refused(
        CompressSource(model="lenet5", data=empty), CompressSpec(), "holds no images"
    )


def test_fine_tune_needs_labelled_training_images(tmp_path: Path, make_image_folder):
    spec = CompressSpec(prune=0.5, finetune_epochs=1)
    _refused(LENET, spec, "labelled training images.*bundled photos have no labels")
    loose = tmp_path / "loose"
    make_image_folder(tmp_path / "animals", per_class=2, classes=["cat", "horse"])
    loose.mkdir()
    for p in (tmp_path / "animals").rglob("*.png"):
        (loose / p.name).write_bytes(p.read_bytes())
    assert str(loose) in _refused(CompressSource(model="lenet5", data=loose), spec, "no class sub-folders")
    _refused(LENET, CompressSpec(finetune_epochs=1), "follows pruning")


def test_fine_tune_on_classes_the_model_does_not_have(tmp_path: Path, make_image_folder):
    animals = make_image_folder(tmp_path / "animals", per_class=6, classes=["cat", "horse"])
    with pytest.raises(CompressError, match="labelled training images whose classes are the model's outputs"):
        run_compression(
            CompressSource(model="lenet5", data=animals),
            CompressSpec(prune=0.5, finetune_epochs=1),
            tmp_path / "o",
        )
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_sparsity_outside_zero_one(bad):
    _refused(LENET, CompressSpec(prune=bad), "between 0 and 1")
    assert "'c3'" in _refused(LENET, CompressSpec(per_layer=(("c3", bad),)), "between 0 and 1")


def test_unknown_layers_are_named():
    message = _refused(LENET, CompressSpec(per_layer=(("c4", 0.5),)), "no convolution or linear layer 'c4'")
    assert "c1, c3, c5, f6, output" in message
    _refused(LENET, CompressSpec(histogram_layer="s2"), "no convolution or linear layer 's2'")
    _refused(
        LENET, CompressSpec(per_layer=(("f6", 0.5),), structured=True), "'f6' of lenet5 is not a convolution"
    )


def test_unknown_quantize_mode_and_counts():
    assert "int8-dynamic, int8-static, fp16" in _refused(
        LENET, CompressSpec(quantize="int4"), "Unknown quantization"
    )
    _refused(LENET, CompressSpec(latency_runs=0), "latency runs must be at least 1")
    _refused(LENET, CompressSpec(structured=True), "Structured pruning needs a sparsity")
    _refused(LENET, CompressSpec(prune=0.5, per_layer=(("c1", 0.5),)), "not both")


def test_an_output_folder_that_is_a_file(tmp_path: Path):
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(CompressError, match=str(target)):
        run_compression(LENET, CompressSpec(), target)
