"""Grad-CAM: which parts of the image raised the score of one class, as seen from one layer.

For the chosen layer's feature maps A (C × h × w) and class score y, each channel gets the weight
α_c = mean over positions of ∂y/∂A_c; the map is ReLU(Σ_c α_c A_c), upsampled (bilinear) to the input
size and scaled to 0..1 (Selvaraju et al., 2017). Layers are named as in the layer table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.features import apply_colormap
from cnn_explorer.core.layers import LayerTable, step_modules

__all__ = ["CamResult", "default_cam_layer", "grad_cam", "overlay"]


@dataclass
class CamResult:
    heatmap: np.ndarray  # float32 (H, W) of the input, 0..1
    raw: np.ndarray  # float32 (h, w) at the layer's resolution, after ReLU, before scaling
    layer: str
    class_index: int
    score: float  # the class's logit
    channel_weights: np.ndarray  # α_c, float32 (C,)

    @property
    def empty(self) -> bool:
        """True when no position has positive evidence for the class in this layer."""
        return not np.any(self.raw > 0)


def _find_step(model: nn.Module, layer: str) -> tuple[nn.Module, int]:
    base, _, call = layer.partition("#")
    for name, module, _kind in step_modules(model):
        if name == base:
            return module, int(call) if call else 1
    raise KeyError(f"{type(model).__name__} has no layer named {layer!r}")


def default_cam_layer(table: LayerTable) -> str:
    """The last step whose output is still a spatial map larger than 1×1 (the usual Grad-CAM choice)."""
    for row in reversed(table.rows):
        if row.spatial and row.out_shape[1] * row.out_shape[2] > 1:
            return row.name
    raise ValueError("this model has no layer with a spatial map")


def grad_cam(
    model: nn.Module,
    x: Tensor,
    layer: str,
    class_index: int | None = None,
    *,
    control: Control | None = None,
) -> CamResult:
    """Grad-CAM of ``class_index`` (default: the top class) at ``layer`` for one image ``x`` ((C,H,W))."""
    if x.ndim == 3:
        x = x[None]
    module, wanted_call = _find_step(model, layer)
    seen = 0
    captured: list[Tensor] = []

    def hook(_m: nn.Module, _args: tuple, output: object) -> object:
        nonlocal seen
        if not isinstance(output, Tensor):
            return None
        seen += 1
        if seen != wanted_call:
            return None
        captured.append(output)
        # The rest of the network gets a copy, so in-place ops downstream (ReLU(inplace=True),
        # "out += identity") cannot overwrite the activations or break their gradient.
        return output.clone()

    was_training = model.training
    model.eval()
    handle = module.register_forward_hook(hook)
    try:
        checkpoint(control)
        with torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)  # a graph even if every weight is frozen
            logits = model(inp)
            if not isinstance(logits, Tensor):
                logits = logits[0]
            if not captured:
                raise KeyError(f"layer {layer!r} was not reached in the forward pass")
            acts = captured[0]
            if acts.ndim != 4:
                raise ValueError(
                    f"Grad-CAM needs a layer with a spatial map; {layer} gives {tuple(acts.shape[1:])}"
                )
            index = int(logits[0].argmax()) if class_index is None else int(class_index)
            if not 0 <= index < logits.shape[1]:
                raise IndexError(f"class {index} does not exist (the model has {logits.shape[1]} outputs)")
            checkpoint(control)
            score = logits[0, index]
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
        model.train(was_training)
    with torch.no_grad():
        weights = grads[0].mean(dim=(1, 2))
        raw = F.relu((weights[:, None, None] * acts[0]).sum(0))
        up = F.interpolate(raw[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[
            0, 0
        ]
        lo, hi = float(up.min()), float(up.max())
        heat = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)
    return CamResult(
        heat.float().cpu().numpy().copy(),  # .cpu(): the model may be on a GPU (a run's "watch it learn")
        raw.detach().float().cpu().numpy().copy(),
        layer,
        index,
        float(score.detach()),
        weights.detach().float().cpu().numpy().copy(),
    )


def overlay(
    pixels: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45, cmap: str = "inferno"
) -> np.ndarray:
    """The heatmap in colour over the picture (uint8 RGB, same size as ``heatmap``)."""
    base = np.asarray(pixels)
    if base.ndim == 2:
        base = np.repeat(base[:, :, None], 3, axis=2)
    if base.shape[:2] != heatmap.shape:
        raise ValueError(f"picture {base.shape[:2]} and heatmap {heatmap.shape} differ in size")
    colour = apply_colormap(heatmap, cmap).astype(np.float32)
    mixed = (1 - alpha) * base.astype(np.float32) + alpha * colour
    return mixed.round().clip(0, 255).astype(np.uint8)
