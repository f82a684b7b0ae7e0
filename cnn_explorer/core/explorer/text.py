"""The explorer's words: captions, status lines and messages, made from typed values in one place.

The page shows these strings as they are; no module reads another's message text to decide anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult
from cnn_explorer.core.features import Activation, Exploration, LayerView, Region
from cnn_explorer.core.layers import LayerRow, LayerTable

__all__ = [
    "Badge",
    "BadgeKind",
    "PickerStatus",
    "cam_caption",
    "cam_summary",
    "file_label",
    "grid_caption",
    "layer_summary",
    "loaded_message",
    "not_captured_text",
    "percent_text",
    "picker_status",
    "receptive_field_caption",
    "shape_text",
    "short_number",
    "weights_badge",
]


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(v) for v in shape) if shape else "?"


def short_number(n: float) -> str:
    """12,345,678 → "12.3 M": the size at a glance next to the exact number."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}\u00a0{unit}"  # no line break inside "1.81 G"
    return f"{n:g}"


def percent_text(p: float) -> str:
    """Probabilities as people read them: 38.7 %, 0.42 %, < 0.01 %."""
    pct = 100.0 * p
    if pct >= 9.95:
        return f"{pct:.1f} %"
    if pct >= 0.01:
        return f"{pct:.2f} %"
    return "< 0.01 %"


class BadgeKind(Enum):
    UNTRAINED = "untrained"
    YOURS = "yours"
    PRETRAINED = "pretrained"


@dataclass(frozen=True)
class Badge:
    kind: BadgeKind
    text: str  # "UNTRAINED", "your weights", "ImageNet weights"
    detail: str  # the line beside it


def weights_badge(loaded: zoo.LoadedModel) -> Badge:
    detail = loaded.weights_detail
    if loaded.weights is zoo.WeightsSource.UNTRAINED:
        if loaded.download_failed:
            detail = (
                f"Offline or unreachable: the ImageNet weights could not be downloaded, so this is {detail}"
            )
        return Badge(BadgeKind.UNTRAINED, "UNTRAINED", detail)
    if loaded.weights is zoo.WeightsSource.FILE:
        return Badge(BadgeKind.YOURS, "your weights", detail)
    text = "ImageNet weights" if loaded.num_classes == 1000 else "trained weights"  # LeNet-5: digits
    return Badge(BadgeKind.PRETRAINED, text, detail)


class PickerStatus(Enum):
    """What the model picker says of a zoo entry before it is opened (from ``zoo.weights_status``)."""

    PRETRAINED = "ImageNet weights"
    TRAINED = "trained weights"  # pretrained, on something other than ImageNet (LeNet-5 on digits)
    DOWNLOADS = "downloads weights"
    UNTRAINED = "untrained"


def picker_status(kind: str, imagenet: bool = True) -> PickerStatus:
    """``kind`` from ``zoo.weights_status``; ``imagenet``: the weights are ImageNet's
    (``zoo.imagenet_classes``)."""
    trained = PickerStatus.PRETRAINED if imagenet else PickerStatus.TRAINED
    return {"cache": trained, "package": trained, "download": PickerStatus.DOWNLOADS}.get(
        kind, PickerStatus.UNTRAINED
    )


def loaded_message(loaded: zoo.LoadedModel, exploration: Exploration | None) -> str:
    top = exploration.predictions[0] if exploration is not None and exploration.predictions else None
    guess = f" Top prediction: {top.name} ({percent_text(top.probability)})." if top else ""
    if loaded.weights is zoo.WeightsSource.UNTRAINED:
        why = "; ".join(loaded.notes) if loaded.notes else "no pretrained weights"
        return f"{loaded.info.title} is UNTRAINED (random weights: {why}).{guess}"
    return f"{loaded.info.title} ready ({loaded.weights_detail}).{guess}"


def file_label(path: Path, loaded: zoo.LoadedModel | None = None) -> str:
    """How the picker names a model file: a fine-tuning run by its folder, anything else by its name."""
    run_dir = path.parent
    if path.name in ("best.pt", "last.pt") or (run_dir / "config.json").is_file():
        which = "" if path.name == "best.pt" else f" ({path.stem})"
        return f"Fine-tuned: {run_dir.name}{which}"
    if loaded is not None and loaded.kind is zoo.ModelKind.FINE_TUNED:
        return f"Fine-tuned: {path.stem}"
    return f"File: {path.name}"


def layer_summary(table: LayerTable, too_large: int) -> str:
    text = (
        f"{len(table.rows)} steps · {table.total_params:,}\u00a0parameters · "
        f"{short_number(table.total_macs)}\u00a0multiply-adds per image · input "
        f"{shape_text(table.input_shape)}"
    )
    return text + (f" · {too_large} large layers not kept" if too_large else "")


NO_LAYERS_TEXT = (
    "This model is compiled TorchScript: its layers cannot be opened, so only its predictions are shown."
)
NO_LAYERS_CAM_TEXT = "Grad-CAM needs the model's layers; a TorchScript model hides them."


def not_captured_text(row: LayerRow, act: Activation | None, max_layer_bytes: int) -> str:
    """Why a step has no grid."""
    if act is None:
        return "Nothing was captured for this step."
    if not act.too_large:
        return f"A {shape_text(act.shape)} output has no grid picture."
    mb = 2 * int(np.prod(row.out_shape)) / 2**20
    return (
        f"This layer's output ({shape_text(row.out_shape)}, {mb:.0f} MB as float16) is larger than the "
        f"{max_layer_bytes / 2**20:.0f} MB kept per layer, so it was not captured. Its shape, parameters "
        "and cost are on the right."
    )


def grid_caption(view: LayerView) -> str:
    if view.spatial:
        return f"{view.channels} channels of {view.values.shape[1]}×{view.values.shape[2]}"
    return f"a vector of {view.channels} values (one cell each)"


def receptive_field_caption(region: Region, unit: tuple[int, int], colour: str) -> str:
    text = (
        f"<span style='color:{colour}'>■</span> Receptive field of unit {unit}: rows "
        f"{region.top}–{region.bottom}, cols {region.left}–{region.right} ({region.height}×{region.width} px)"
    )
    if region.clipped:
        text += f"; its full {region.full_height}×{region.full_width} field reaches into the padding"
    return text


def cam_caption(cam: CamResult, class_name: str) -> str:
    """The line under the picture while the overlay is shown."""
    return f"Grad-CAM: bright = regions that raised “{class_name}” at {cam.layer}"


def cam_summary(cam: CamResult, class_name: str) -> str:
    h, w = cam.raw.shape
    note = " (no evidence for this class at this layer)" if cam.empty else ""
    score = f"{cam.score:.2f}" if math.isfinite(cam.score) else "n/a"
    return (
        f"Evidence for “{class_name}” (score {score}) from {cam.layer}, a {h}×{w} map scaled up to the "
        f"picture{note}."
    )


def cam_no_map_text(layer: str, row: LayerRow) -> str:
    return (
        f"{layer} has no spatial map ({shape_text(row.out_shape)}): Grad-CAM needs one. Step to an earlier "
        "layer or choose “Last spatial layer”."
    )
