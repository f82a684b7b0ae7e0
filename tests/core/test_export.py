"""core.export: every model kind to every format, verified by reloading the written file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.export import (
    EXPORT_FORMATS,
    SUFFIXES,
    ExportError,
    export_model,
    formats,
    pipeline,
    resolve_export_source,
)
from cnn_explorer.core.images import load_image, sample_images


@pytest.fixture(scope="module")
def tiny_run(make_feature_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch feature-extractor run of the offline Lite0 at 64×64 (a few seconds)."""
    return make_feature_run(tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="module")
def sources(tiny_run: Path) -> dict:
    return {
        "lite0": resolve_export_source(model="efficientnet_lite0"),
        "resnet18": resolve_export_source(model="resnet18"),
        "run": resolve_export_source(tiny_run),
    }


@pytest.mark.slow
@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("which", ["lite0", "resnet18", "run"])
def test_every_model_exports_to_every_format_and_verifies(sources, which, fmt, tmp_path: Path):
    src = sources[which]
    out = tmp_path / f"model{SUFFIXES[fmt]}"
    result = export_model(
        src.loaded, fmt, out, images=src.images, images_source=src.images_source, origin=src.origin
    )
    v = result.verification
    print(f"\n{which} {fmt}: max|Δ| {v.max_abs_diff:.2e}, {result.seconds:.2f} s, {result.how}")
    assert v.passed and v.max_abs_diff <= 1e-4 and v.top1_agree == v.images >= 3
    assert out.is_file() and result.size_bytes == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", out.name]  # no temp files left
    desc = json.loads((tmp_path / "model.json").read_text())
    assert desc["format"] == fmt and desc["file"] == out.name
    assert desc["class_names"] == src.loaded.categories
    assert desc["architecture"] == ("resnet18" if which == "resnet18" else "efficientnet_lite0")
    assert zoo.Preprocess.from_dict(desc["preprocessing"]) == src.loaded.preprocess
    assert desc["weights"]["detail"] == src.loaded.weights_detail and desc["weights"]["origin"] == src.origin
    assert desc["torch_version"] == torch.__version__
    assert desc["verification"]["passed"] is True and desc["verification"]["line"] == v.line()
    if fmt == "onnx":
        assert desc["how"]["opset"] == 18 and desc["how"]["dynamic_batch"] is True
    if fmt == "torchscript":
        assert desc["how"]["method"] in ("traced", "scripted")
    if which == "run":
        assert v.source == "the run's validation images"
        assert desc["class_names"] == ["bird", "elephant", "giraffe"]
        assert desc["preprocessing"]["crop"] == 64


@pytest.fixture(scope="module")
def lenet() -> zoo.LoadedModel:
    return zoo.load_model("lenet5", allow_download=False)


def test_lenet5_digit_preprocessing_is_recorded(lenet, tmp_path: Path):
    result = export_model(lenet, "safetensors", tmp_path / "lenet.safetensors")
    desc = json.loads(result.model_json.read_text())
    assert result.passed and desc["preprocessing"]["digit"] is True and desc["preprocessing"]["grayscale"]
    assert desc["input"]["shape"] == ["batch", 1, 32, 32]


def test_onnx_has_a_dynamic_batch(lenet, tmp_path: Path):
    import onnxruntime as ort

    out = tmp_path / "lenet.onnx"
    export_model(lenet, "onnx", out)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = torch.stack([lenet.preprocess(load_image(p, gray=True)) for p in sample_images()[:3]])
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    assert got.shape == (3, 10)
    with torch.inference_mode():
        np.testing.assert_allclose(got, lenet.model(batch).numpy(), atol=1e-4)


def test_a_failed_verification_is_reported_and_kept(tmp_path: Path):
    loaded = zoo.load_model("resnet18", allow_download=False)
    result = export_model(loaded, "onnx", tmp_path / "r.onnx", tolerance=0.0)  # onnxruntime differs ~1e-6
    v = result.verification
    assert 0 < v.max_abs_diff <= 1e-4 and not v.passed and "VERIFICATION FAILED" in v.line()
    assert json.loads(result.model_json.read_text())["verification"]["passed"] is False


def test_a_perturbed_reload_fails_verification(lenet, tmp_path: Path, monkeypatch):
    real = formats.torchscript_runner

    def perturbed(path):
        run, runtime = real(path)
        return (lambda batch: run(batch) + 0.01), runtime

    monkeypatch.setattr(formats, "torchscript_runner", perturbed)
    result = export_model(lenet, "torchscript", tmp_path / "l.pt")
    assert not result.passed and result.verification.max_abs_diff == pytest.approx(0.01, rel=1e-3)


def test_a_failing_export_leaves_no_file(lenet, tmp_path: Path, monkeypatch):
    def broken(path):
        raise RuntimeError("simulated reload failure")

    monkeypatch.setattr(formats, "torchscript_runner", broken)
    with pytest.raises(ExportError, match="simulated reload failure"):
        export_model(lenet, "torchscript", tmp_path / "l.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_description_write_leaves_no_file(lenet, tmp_path: Path, monkeypatch):
    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "write_json_atomic", full)
    with pytest.raises(ExportError, match="No space left"):
        export_model(lenet, "safetensors", tmp_path / "l.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_model_write_leaves_no_temp_file(lenet, tmp_path: Path, monkeypatch):
    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)  # inside runs.write_bytes_atomic, after the temp file exists
    with pytest.raises(ExportError, match="No space left"):
        export_model(lenet, "onnx", tmp_path / "l.onnx")
    assert list(tmp_path.iterdir()) == []


def test_missing_target_folder_is_refused_by_name(lenet, tmp_path: Path):
    target = tmp_path / "nope" / "m.onnx"
    with pytest.raises(ExportError, match="does not exist") as info:
        export_model(lenet, "onnx", target)
    assert str(tmp_path / "nope") in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only folders")
def test_read_only_target_folder_is_refused(lenet, tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ExportError, match="not writable"):
            export_model(lenet, "onnx", folder / "m.onnx")
    finally:
        folder.chmod(0o700)


def test_unknown_format_and_bad_sources_are_export_errors(lenet, tmp_path: Path):
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(lenet, "tflite", tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="does not exist"):
        resolve_export_source(tmp_path / "no-run")
    with pytest.raises(ExportError):
        resolve_export_source(model="no_such_model")
    with pytest.raises(ExportError, match="either"):
        resolve_export_source()


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        self.b.weight = self.a.weight  # tied: one tensor under two names


def test_shared_tensors_are_stored_once_and_restored(tmp_path: Path):
    model = _Tied()
    data, how = formats.safetensors_bytes(model, {})
    assert how["shared_tensors"] == {"b.weight": "a.weight"} and how["tensors"] == 3
    path = tmp_path / "t.safetensors"
    path.write_bytes(data)
    sd = formats.read_safetensors(path)
    fresh = _Tied()
    fresh.load_state_dict(sd, strict=True)
    assert torch.equal(fresh.b.weight, model.a.weight)


def test_int8_model_refuses_onnx_and_safetensors_but_scripts(lenet, tmp_path: Path):
    import dataclasses

    q = torch.ao.quantization.quantize_dynamic(lenet.model, {nn.Linear}, dtype=torch.qint8)
    int8 = dataclasses.replace(lenet, model=q)
    with pytest.raises(ExportError, match="quantized"):
        export_model(int8, "onnx", tmp_path / "q.onnx")
    with pytest.raises(ExportError, match="quantized"):
        export_model(int8, "safetensors", tmp_path / "q.safetensors")
    assert list(tmp_path.iterdir()) == []
    assert export_model(int8, "torchscript", tmp_path / "q.pt").passed


def test_a_compressed_variant_exports_and_verifies(tmp_path):
    """A pruned variant from the compression lab is an ordinary checkpoint: it exports like any model."""
    from cnn_explorer.core.compress import CompressSource, CompressSpec, run_compression
    from cnn_explorer.core.export import export_model, resolve_export_source

    report = run_compression(
        CompressSource(model="lenet5"), CompressSpec(prune=0.5, latency_runs=2), tmp_path / "c"
    )
    variant = tmp_path / "c" / report.variant("pruned-50").file
    source = resolve_export_source(weights=variant)
    result = export_model(
        source.loaded, "onnx", tmp_path / "pruned.onnx", images=source.images, origin=source.origin
    )
    assert result.verification.passed and result.verification.max_abs_diff <= 1e-4
    assert (tmp_path / "pruned.json").is_file()
