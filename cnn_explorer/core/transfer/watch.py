""" "Watch it learn": one image's Grad-CAM and top prediction under the current weights, after every epoch.

The training process computes the frames (:class:`Watcher`) and sends them as
:class:`~cnn_explorer.core.transfer.results.WatchFrame` events, so the page only draws them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.layers import layer_table
from cnn_explorer.core.transfer.results import WatchFrame

FRAME_SIDE = 64  # heat maps are sent at most this many pixels a side (the page's tiles are small)
TOP_K = 3


class Watcher:
    """Computes the frames for one image; :meth:`create` checks the image and finds the layer once."""

    def __init__(self, path: Path, x: torch.Tensor, layer: str, true_class: str | None) -> None:
        self.path = path
        self.x = x
        self.layer = layer
        self.true_class = true_class

    @classmethod
    def create(
        cls,
        path: str | Path,
        model: nn.Module,
        preprocess: zoo.Preprocess,
        samples: list[tuple[str, int]],
        class_names: list[str],
    ) -> tuple[Watcher | None, str]:
        """(watcher, "") or (None, why the image cannot be watched)."""
        path = Path(path)
        try:
            pixels = open_image(path, gray=preprocess.grayscale).pixels
        except ImageLoadError as exc:
            return None, exc.reason
        try:
            layer = default_cam_layer(layer_table(model, preprocess.crop))
        except ValueError as exc:
            return None, str(exc)
        labels = {str(Path(p)): y for p, y in samples}
        label = labels.get(str(path))
        true_class = class_names[label] if label is not None else None
        return cls(path, preprocess(pixels), layer, true_class), ""

    def frame(self, model: nn.Module, class_names: list[str], epoch: int) -> WatchFrame:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        cam = grad_cam(model, self.x.to(device), self.layer)
        with torch.no_grad():
            probs = model(self.x[None].to(device)).float().softmax(1)[0].cpu()
        top_p, top_i = probs.topk(min(TOP_K, probs.numel()))
        top = [(class_names[int(i)], float(p)) for p, i in zip(top_p, top_i, strict=True)]
        return WatchFrame(
            epoch=epoch,
            image=str(self.path),
            heatmap=_small(cam.heatmap),
            predicted=class_names[cam.class_index],
            probability=float(probs[cam.class_index]),
            true_class=self.true_class,
            layer=self.layer,
            top=top,
        )


def _small(heat: np.ndarray) -> np.ndarray:
    h, w = heat.shape
    scale = FRAME_SIDE / max(h, w)
    if scale >= 1:
        return heat.astype(np.float32)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(size, Image.BILINEAR))
