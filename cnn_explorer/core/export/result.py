"""The values an export hands back: formats, the verification of a written file, the result, progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "Stage",
    "Verification",
]

EXPORT_FORMATS = ("torchscript", "onnx", "safetensors")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx", "safetensors": ".safetensors"}
ONNX_OPSET = 18
TOLERANCE = 1e-4  # the largest |logit difference| between original and export that still counts as verified


class ExportError(ValueError):
    """The model cannot be exported as asked (format, model, target); ``str(err)`` says why."""


@dataclass(frozen=True)
class Stage:
    """Reported through ``control.report`` between the steps of an export."""

    step: str  # "preparing", "writing", "verifying", "describing"
    detail: str = ""


@dataclass(frozen=True)
class Verification:
    """The written file reloaded and run on ``images`` beside the original model."""

    images: int
    max_abs_diff: float
    top1_agree: int
    passed: bool
    runtime: str  # what ran the exported file, e.g. "onnxruntime 1.32.0 (CPU)"
    tolerance: float = TOLERANCE
    source: str = ""  # which images: "the bundled sample photos", "the run's validation images"

    def line(self) -> str:
        """'verified on 4 images with onnxruntime 1.32.0: max |Δlogit| 3.1e-06, top-1 identical (4/4)'."""
        top1 = (
            f"top-1 identical ({self.top1_agree}/{self.images})"
            if self.top1_agree == self.images
            else f"top-1 differs on {self.images - self.top1_agree} of {self.images} images"
        )
        head = "verified" if self.passed else "VERIFICATION FAILED"
        within = "" if self.max_abs_diff <= self.tolerance else f" (over the tolerance {self.tolerance:g})"
        return (
            f"{head} on {self.images} images with {self.runtime}: "
            f"max |Δlogit| {self.max_abs_diff:.1e}{within}, {top1}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "line": self.line()}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    how: dict[
        str, Any
    ]  # e.g. {"method": "traced"} or {"exporter": "dynamo", "opset": 18, "dynamic_batch": True}
    model_json: Path
    size_bytes: int
    verification: Verification
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verification.passed
