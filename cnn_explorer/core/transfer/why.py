"""Why did the fine-tuned model answer that? One validation image's Grad-CAM for the predicted class and
for the true class, side by side (the Results tab's confusion matrix → images → why).

``cam_pair(loaded, image, true_class)`` runs one forward pass for the probabilities and Grad-CAM at the
model's default layer for both classes. :class:`RunModels` keeps the last run model loaded, so clicking
through a cell's images does not reload the checkpoint each time.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.explorer.tasks import model_in_use
from cnn_explorer.core.images import open_image
from cnn_explorer.core.layers import layer_table
from cnn_explorer.core.runs import RunDir

__all__ = ["CamPair", "RunModels", "cam_pair"]


@dataclass(frozen=True)
class CamPair:
    path: Path
    pixels: np.ndarray  # uint8 (H, W, 3): the picture as the network sees it (its input crop)
    cam_predicted: np.ndarray  # float32 (H, W) 0..1: Grad-CAM of the predicted class
    cam_true: np.ndarray  # float32 (H, W) 0..1: Grad-CAM of the true class
    predicted: str
    p_pred: float  # softmax probability of the predicted class
    true: str
    p_true: float  # softmax probability of the true class
    layer: str  # where Grad-CAM looked (a layer table name)

    @property
    def correct(self) -> bool:
        return self.predicted == self.true


# The default Grad-CAM layer per model and input size: finding it runs the model once (layer_table).
_LAYERS: weakref.WeakKeyDictionary[nn.Module, dict[int, str]] = weakref.WeakKeyDictionary()


def _default_layer(model: nn.Module, crop: int, control: Control | None) -> str:
    known = _LAYERS.setdefault(model, {})
    if crop not in known:
        known[crop] = default_cam_layer(layer_table(model, crop, control=control))
    return known[crop]


def cam_pair(
    loaded: zoo.LoadedModel,
    image: str | Path,
    true_class: str,
    *,
    layer: str | None = None,
    control: Control | None = None,
) -> CamPair:
    """Grad-CAM of ``image`` for the class ``loaded`` predicts and for ``true_class``, with both classes'
    probabilities. ImageLoadError for an unreadable image; ValueError naming the file for a true class the
    model does not know."""
    path = Path(image)
    names = list(loaded.categories)
    if true_class not in names:
        raise ValueError(
            f"Cannot explain {path.name}: the model does not know the class '{true_class}' "
            f"(it knows {', '.join(names) or 'no classes'})."
        )
    preprocess = loaded.preprocess
    pixels = open_image(path, gray=preprocess.grayscale).pixels
    x = preprocess(pixels)
    model = loaded.model
    checkpoint(control)
    with model_in_use(model, control):  # hooks: no other pass may run on this model meanwhile
        if layer is None:
            layer = _default_layer(model, preprocess.crop, control)
        with torch.no_grad():
            logits = model(x[None])
            if not isinstance(logits, torch.Tensor):
                logits = logits[0]
            probs = logits.float().softmax(1)[0]
        if probs.numel() != len(names):
            raise ValueError(
                f"Cannot explain {path.name}: the model has {probs.numel()} outputs "
                f"but {len(names)} class names."
            )
        pred_index, true_index = int(probs.argmax()), names.index(true_class)
        cam_pred = grad_cam(model, x, layer, pred_index, control=control).heatmap
        if true_index == pred_index:
            cam_true = cam_pred
        else:
            checkpoint(control)
            cam_true = grad_cam(model, x, layer, true_index, control=control).heatmap
    seen = preprocess.crop_pixels(pixels)
    if seen.ndim == 2:
        seen = np.repeat(seen[:, :, None], 3, axis=2)
    return CamPair(
        path=path,
        pixels=np.ascontiguousarray(seen),
        cam_predicted=cam_pred.astype(np.float32, copy=False),
        cam_true=cam_true.astype(np.float32, copy=False),
        predicted=names[pred_index],
        p_pred=float(probs[pred_index]),
        true=true_class,
        p_true=float(probs[true_index]),
        layer=layer,
    )


class RunModels:
    """The last run model loaded, reloaded when its checkpoint file changes (path or modification time).

    ``get(run_dir)`` loads through :func:`training.load_run_model` (best.pt, else last.pt). Safe to call
    from a worker thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, int] | None = None
        self._loaded: zoo.LoadedModel | None = None

    def get(self, run_dir: str | os.PathLike[str]) -> zoo.LoadedModel:
        from cnn_explorer.core.training import load_run_model  # (training imports much; only when used)

        key = _checkpoint_key(RunDir(run_dir))
        with self._lock:
            if self._loaded is None or key is None or key != self._key:
                self._loaded = None  # a failed load must not leave the old run's model behind
                self._loaded = load_run_model(run_dir, which="best")
                self._key = _checkpoint_key(RunDir(run_dir))
            return self._loaded

    def cam_pair(
        self,
        run_dir: str | os.PathLike[str],
        image: str | Path,
        true_class: str,
        *,
        control: Control | None = None,
    ) -> CamPair:
        """:func:`cam_pair` with the run's model (what the Results tab's worker runs)."""
        loaded = self.get(run_dir)
        checkpoint(control)
        return cam_pair(loaded, image, true_class, control=control)

    def clear(self) -> None:
        with self._lock:
            self._key, self._loaded = None, None


def _checkpoint_key(run: RunDir) -> tuple[str, int] | None:
    """(path, mtime) of the checkpoint load_run_model("best") would read; None when there is none."""
    for path in (run.best_checkpoint, run.last_checkpoint):
        try:
            return str(path.resolve()), path.stat().st_mtime_ns
        except OSError:
            continue
    return None
