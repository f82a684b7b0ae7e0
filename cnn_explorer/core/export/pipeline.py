"""Export a loaded model to a file, verify the file against the model, describe it in model.json.

``export_model`` writes ``out_path`` atomically (temporary name in the target folder, then a rename),
reloads it with the runtime a user would use (torch.jit.load, onnxruntime, safetensors into a fresh model),
runs the same images through the original and the reloaded model and writes ``<stem>.json`` beside it with
the class names, the preprocessing, the architecture, the weights' origin, how it was made and the
verification. A failed verification is recorded there and in the result, never hidden; any exception leaves
neither file behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.export import formats
from cnn_explorer.core.export.result import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    TOLERANCE,
    ExportError,
    ExportResult,
    Stage,
    Verification,
)
from cnn_explorer.core.images import ImageLoadError, load_image, sample_images
from cnn_explorer.core.runs import write_bytes_atomic, write_json_atomic

MAX_VERIFY_IMAGES = 16
MODEL_JSON_FORMAT = "cnn-explorer-export/1"


def model_json_path(out_path: str | os.PathLike[str]) -> Path:
    """model.onnx -> model.json, beside it."""
    return Path(out_path).with_suffix(".json")


def check_target(out_path: str | os.PathLike[str]) -> Path:
    """The export's path, refused early (ExportError naming it) when its folder is missing or read-only."""
    path = Path(out_path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise ExportError(f"Cannot write {path}: it is a folder; give a file name such as {path / 'model'}")
    if not folder.is_dir():
        raise ExportError(f"Cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot write {path}: the folder {folder} is not writable")
    if path.suffix.lower() == ".json":
        raise ExportError(f"Cannot write {path}: .json is the name of the description written beside it")
    return path


def preprocess_images(paths: list[Path], preprocess: zoo.Preprocess) -> tuple[Tensor, list[str]]:
    """The images as the model reads them (its own preprocessing), a batch; unreadable ones skipped."""
    tensors, notes = [], []
    for p in paths[:MAX_VERIFY_IMAGES]:
        try:
            tensors.append(preprocess(load_image(p, gray=preprocess.grayscale)))
        except (ImageLoadError, OSError, ValueError) as exc:
            notes.append(f"skipped {Path(p).name}: {exc}")
    if not tensors:
        raise ExportError("no readable image to verify the export with")
    return torch.stack(tensors), notes


def verify(
    original: zoo.LoadedModel,
    fmt: str,
    path: Path,
    batch: Tensor,
    *,
    tolerance: float = TOLERANCE,
    source: str = "",
) -> Verification:
    """Reload ``path`` and compare its logits on ``batch`` with the original model's."""
    if fmt == "torchscript":
        runner, runtime = formats.torchscript_runner(path)
    elif fmt == "onnx":
        runner, runtime = formats.onnx_runner(path)
    else:
        runner, runtime = formats.safetensors_runner(path, original)
    with torch.inference_mode():
        expected = original.model(batch).float().numpy()
    got = runner(batch)
    if got.shape != expected.shape:
        raise ExportError(
            f"the exported model gives logits of shape {got.shape}, the original {expected.shape}"
        )
    diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if expected.size else 0.0
    if not np.isfinite(diff):
        diff = float("inf")
    agree = int(np.sum(got.argmax(1) == expected.argmax(1)))
    n = int(batch.shape[0])
    passed = diff <= tolerance and agree == n
    return Verification(n, diff, agree, passed, runtime, tolerance, source)


def export_model(
    loaded: zoo.LoadedModel,
    fmt: str,
    out_path: str | os.PathLike[str],
    *,
    images: list[Path] | None = None,
    images_source: str = "",
    origin: str = "",
    opset: int = ONNX_OPSET,
    tolerance: float | None = None,
    control: Control | None = None,
) -> ExportResult:
    """Write ``loaded`` as ``fmt`` to ``out_path`` with model.json beside it, verified (see module doc).

    ``images`` default to the bundled sample photos. Raises ExportError when the model cannot be written in
    this format or the target cannot be written; ``Cancelled`` between steps. A failed *verification* is not
    an exception: ``result.verification.passed`` is False (and model.json says so).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if loaded.kind is zoo.ModelKind.TORCHSCRIPT and fmt == "safetensors":
        raise ExportError(
            "a TorchScript program has no zoo architecture to rebuild: safetensors makes no sense"
        )
    path = check_target(out_path)
    json_path = model_json_path(path)
    start = time.perf_counter()
    report(control, Stage("preparing", "preprocessing the verification images"))
    if images is None:
        images, images_source = sample_images(), images_source or "the bundled sample photos"
    batch, notes = preprocess_images(list(images), loaded.preprocess)
    example = batch[:2] if batch.shape[0] >= 2 else torch.cat([batch, batch])  # batch 2: not specialised to 1
    model = loaded.model.eval()
    checkpoint(control)
    report(control, Stage("writing", f"{fmt} to {path.name}"))
    data, how = _serialise(loaded, fmt, example, opset, origin)
    checkpoint(control)
    wrote = False
    try:
        try:
            write_bytes_atomic(path, data)
        except OSError as exc:
            raise ExportError(f"Cannot write {path}: {exc.strerror or exc}") from None
        wrote = True
        report(control, Stage("verifying", path.name))
        try:
            tol = TOLERANCE if tolerance is None else tolerance
            verification = verify(loaded, fmt, path, batch, tolerance=tol, source=images_source)
        except ExportError:
            raise
        except Exception as exc:  # the written file does not load or run: the export is unusable
            raise ExportError(f"the exported {fmt} file does not run: {formats._why(exc)}") from None
        checkpoint(control)
        report(control, Stage("describing", json_path.name))
        description = describe(loaded, fmt, path, how, verification, origin=origin, notes=notes)
        try:
            write_json_atomic(json_path, description)
        except OSError as exc:
            raise ExportError(f"Cannot write {json_path}: {exc.strerror or exc}") from None
    except BaseException:
        if wrote:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    del model
    return ExportResult(
        path, fmt, how, json_path, path.stat().st_size, verification, time.perf_counter() - start, notes
    )


def _serialise(
    loaded: zoo.LoadedModel, fmt: str, example: Tensor, opset: int, origin: str
) -> tuple[bytes, dict[str, Any]]:
    if fmt == "torchscript":
        return formats.torchscript_bytes(loaded.model, example)
    if fmt == "onnx":
        return formats.onnx_bytes(loaded.model, example, opset)
    meta = {"architecture": loaded.info.name, "origin": origin or loaded.weights_detail}
    return formats.safetensors_bytes(loaded.model, meta)


def describe(
    loaded: zoo.LoadedModel,
    fmt: str,
    path: Path,
    how: dict[str, Any],
    verification: Verification,
    *,
    origin: str = "",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The content of model.json."""
    pre = loaded.preprocess
    return {
        "format_version": MODEL_JSON_FORMAT,
        "file": path.name,
        "format": fmt,
        "how": how,
        "architecture": loaded.info.name,
        "model_kind": loaded.kind.value,
        "class_names": list(loaded.categories),
        "num_classes": loaded.num_classes,
        "input": {"shape": ["batch", pre.channels, pre.crop, pre.crop], "dtype": "float32", "layout": "NCHW"},
        "preprocessing": pre.to_dict(),
        "weights": {"source": str(loaded.weights), "detail": loaded.weights_detail, "origin": origin},
        "torch_version": torch.__version__,
        "verification": verification.to_dict(),
        "notes": [*loaded.notes, *(notes or [])],
    }
