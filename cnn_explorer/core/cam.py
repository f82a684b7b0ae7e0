"""Grad-CAM: which parts of the image raised the score of one class, as seen from one layer.

For the chosen layer's feature maps A (C × h × w) and class score y, each channel gets the weight
α_c = mean over positions of ∂y/∂A_c; the map is ReLU(Σ_c α_c A_c), upsampled (bilinear) to the input
size and scaled to 0..1 (Selvaraju et al., 2017). Layers are named as in the layer table.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.features import apply_colormap
from cnn_explorer.core.layers import LayerRow, LayerTable, eval_mode, step_modules

__all__ = ["CamResult", "default_cam_layer", "grad_cam", "has_spatial_map", "overlay"]


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


# Each model's steps by name, found once per model: walking the module tree costs 0.5–1.5 ms a call.
_steps_by_name: weakref.WeakKeyDictionary[nn.Module, dict[str, nn.Module]] = weakref.WeakKeyDictionary()


def _find_step(model: nn.Module, layer: str) -> tuple[nn.Module, int]:
    base, _, call = layer.partition("#")
    steps = _steps_by_name.get(model)
    module = steps.get(base) if steps is not None else None
    # A cached module counts only while it still sits under that name (a fine-tune or a compression may
    # have swapped it); a name the cache lacks may have been added since. Either way: walk the tree again.
    if module is None or _submodule(model, base) is not module:
        steps = _steps_by_name[model] = {name: module for name, module, _kind in step_modules(model)}
        module = steps.get(base)
        if module is None:
            raise KeyError(f"{type(model).__name__} has no layer named {layer!r}")
    return module, int(call) if call else 1


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def has_spatial_map(row: LayerRow) -> bool:
    """Whether the step's output is a spatial map larger than 1×1 (a place Grad-CAM can look at)."""
    return row.spatial and row.out_shape[1] * row.out_shape[2] > 1


def default_cam_layer(table: LayerTable) -> str:
    """The last step whose output is still a spatial map larger than 1×1 (the usual Grad-CAM choice)."""
    for row in reversed(table.rows):
        if has_spatial_map(row):
            return row.name
    raise ValueError("this model has no layer with a spatial map")


# Layer calls (module → call numbers) whose output nothing downstream changes in place, as seen by the
# version counter of the copy the network got: those hand the network the activations themselves.
_copy_not_needed: weakref.WeakKeyDictionary[nn.Module, set[int]] = weakref.WeakKeyDictionary()


class _Overwritten(Exception):
    """The network changed the layer's output in place after all: run again, handing it a copy."""


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
    module, call = _find_step(model, layer)
    copy = call not in _copy_not_needed.get(module, ())
    try:
        acts, grads, score, index = _layer_gradient(model, x, layer, module, call, class_index, control, copy)
    except _Overwritten:
        _copy_not_needed.get(module, set()).discard(call)
        acts, grads, score, index = _layer_gradient(model, x, layer, module, call, class_index, control, True)
    with torch.no_grad():
        weights = grads[0].mean(dim=(1, 2))
        raw = F.relu((weights[:, None, None] * acts[0]).sum(0))
        up = F.interpolate(raw[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[
            0, 0
        ]
        lo, hi = (float(v) for v in torch.aminmax(up))
        heat = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)
    # Fresh tensors, so .numpy() shares memory with nothing else; .cpu(): the model may be on a GPU (a
    # run's "watch it learn").
    return CamResult(
        heat.float().cpu().numpy(),
        raw.float().cpu().numpy(),
        layer,
        index,
        float(score.detach()),
        weights.float().cpu().numpy(),
    )


def _layer_gradient(
    model: nn.Module,
    x: Tensor,
    layer: str,
    module: nn.Module,
    wanted_call: int,
    class_index: int | None,
    control: Control | None,
    copy: bool,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """The layer's output, the class score's gradient there, the score and the class, from one pass."""
    seen = given_version = 0
    captured: list[Tensor] = []  # the activations, then what the rest of the network got

    def hook(_m: nn.Module, _args: tuple, output: object) -> object:
        nonlocal seen, given_version
        if not isinstance(output, Tensor):
            return None
        seen += 1
        if seen != wanted_call:
            return None
        # Everything up to here ran without autograd: the score's gradient at this layer needs a graph
        # only of what comes after it. From here on grad is on (the caller's no_grad block restores it).
        acts = output.detach().requires_grad_(True)
        torch.set_grad_enabled(True)
        # Unless no op downstream was seen to change it in place (ReLU(inplace=True), "out += identity"),
        # the rest of the network gets a copy, so such ops cannot overwrite the activations or break their
        # gradient. Without a copy, an in-place op on it fails (a leaf that requires grad) or shows in its
        # version: then the pass is run again with one.
        given = acts.clone() if copy else acts
        captured.extend((acts, given))
        given_version = given._version
        return given

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.no_grad():
            checkpoint(control)
            try:
                logits = model(x.clone())  # (a model that changes its input in place leaves the caller's)
            except RuntimeError as exc:
                if captured and not copy:
                    raise _Overwritten from exc
                raise
            if not isinstance(logits, Tensor):
                logits = logits[0]
            if not captured:
                raise KeyError(f"layer {layer!r} was not reached in the forward pass")
            acts, given = captured
            if given._version == given_version:
                if copy:
                    _copy_not_needed.setdefault(module, set()).add(wanted_call)
            elif not copy:
                raise _Overwritten
            if acts.ndim != 4:
                raise ValueError(
                    f"Grad-CAM needs a layer with a spatial map; {layer} gives {tuple(acts.shape[1:])}"
                )
            index = int(logits[0].argmax()) if class_index is None else int(class_index)
            if not 0 <= index < logits.shape[1]:
                raise IndexError(f"class {index} does not exist (the model has {logits.shape[1]} outputs)")
            checkpoint(control)
            score = logits[0, index]
            grads = None
            if score.requires_grad:
                (grads,) = torch.autograd.grad(score, acts, allow_unused=True)
            if grads is None:
                raise ValueError(f"the class score does not depend on layer {layer!r}")
    finally:
        handle.remove()
    return acts, grads, score, index


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
