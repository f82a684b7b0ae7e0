"""Export a model the app holds to TorchScript, ONNX or safetensors, verified against the original.

``export_model(loaded, fmt, out_path)`` writes the file and ``<stem>.json`` beside it atomically, reloads the
file (torch.jit.load, onnxruntime, or safetensors into a fresh model), compares logits on the bundled photos
(or a run's validation images) and returns an :class:`ExportResult` whose ``verification.line()`` is the
one-line summary. ``resolve_export_source`` turns a run folder or a model name + weights file into what to
export. Used by ``cnn-explorer export`` and the GUI alike; no Qt.
"""

from cnn_explorer.core.export.pipeline import check_target, describe, export_model, model_json_path, verify
from cnn_explorer.core.export.result import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    SUFFIXES,
    TOLERANCE,
    ExportError,
    ExportResult,
    Stage,
    Verification,
)
from cnn_explorer.core.export.source import ExportSource, resolve_export_source

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "SUFFIXES",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "ExportSource",
    "Stage",
    "Verification",
    "check_target",
    "describe",
    "export_model",
    "model_json_path",
    "resolve_export_source",
    "verify",
]
