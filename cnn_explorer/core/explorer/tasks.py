"""What the explorer's workers run: module-level functions of plain inputs and a ``Control``.

Orange's ``run(data, state)`` pattern: each function takes everything it needs as arguments, reports
progress with ``report(control, …)``, stops at ``checkpoint(control)``, and returns a plain result. The
page's "latest request wins" runner calls them; tests call them directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult, grad_cam
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.features import MAX_LAYER_BYTES, Exploration, LayerStats, LayerView, explore
from cnn_explorer.core.features import prepare_layer_view as _prepare_layer_view
from cnn_explorer.core.images import LoadedImage, open_image

__all__ = [
    "ModelRun",
    "ModelSource",
    "Stage",
    "ViewRequest",
    "compute_cam",
    "image_key",
    "prepare_view",
    "run_model",
]


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a zoo entry or a file."""

    key: str  # "zoo:resnet18" or "file:/abs/path/best.pt"
    label: str  # as the picker shows it
    name: str | None = None
    path: Path | None = None
    arch_hint: str | None = None  # for a plain state_dict: try this architecture first
    trust_code: bool = False  # the user agreed to run this (TorchScript) file's code

    @classmethod
    def zoo(cls, name: str) -> ModelSource:
        return cls(f"zoo:{name}", zoo.get_info(name).title, name=name)

    @classmethod
    def file(cls, path: Path, arch_hint: str | None = None) -> ModelSource:
        from cnn_explorer.core.explorer.text import file_label

        path = Path(path).expanduser().absolute()
        return cls(f"file:{path}", file_label(path), path=path, arch_hint=arch_hint)

    def load(self, *, allow_download: bool, control: Control | None) -> zoo.LoadedModel:
        if self.path is not None:
            return zoo.load_model_file(
                self.path, arch=self.arch_hint, control=control, trust_code=self.trust_code
            )
        assert self.name is not None
        return zoo.load_model(self.name, allow_download=allow_download, control=control)


@dataclass(frozen=True)
class Stage:
    """Progress event: what the worker is doing now."""

    text: str


@dataclass
class ModelRun:
    source: ModelSource
    loaded: zoo.LoadedModel
    exploration: Exploration | None
    image: LoadedImage | None  # an image this job opened itself (open_model_file with an image)


def run_model(
    source: ModelSource,
    loaded: zoo.LoadedModel | None,
    pixels: np.ndarray | None,
    image_path: Path | None = None,
    *,
    allow_download: bool = True,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    control: Control | None = None,
) -> ModelRun:
    """(Open the image,) load the model unless given, run it capturing every layer."""
    image = None
    if image_path is not None:
        report(control, Stage(f"Opening {image_path.name}…"))
        image = open_image(image_path)
        pixels = image.pixels
    if loaded is None:
        report(control, Stage(f"Loading {source.label}…"))
        loaded = source.load(allow_download=allow_download, control=control)
    exploration = None
    if pixels is not None:
        checkpoint(control)
        report(control, Stage(f"Running {loaded.info.title} on the image…"))
        exploration = explore(loaded, pixels, max_layer_bytes=max_layer_bytes, control=control)
    return ModelRun(source, loaded, exploration, image)


def compute_cam(
    loaded: zoo.LoadedModel,
    pixels: np.ndarray,
    layer: str,
    class_index: int,
    control: Control | None = None,
) -> CamResult:
    """Grad-CAM of one class at one layer for the picture."""
    report(control, Stage(f"Grad-CAM at {layer}…"))
    return grad_cam(loaded.model, loaded.preprocess(pixels), layer, class_index, control=control)


@dataclass(frozen=True)
class ViewRequest:
    """One layer drawn one way: the key of a prepared view."""

    layer: str
    sort_by: str
    normalize: str
    cmap: str
    columns: int


def prepare_view(
    exploration: Exploration,
    request: ViewRequest,
    stats: LayerStats | None = None,
    control: Control | None = None,
) -> LayerView:
    """A layer's grid, statistics and channel maps, ready for the widgets (numpy only)."""
    return _prepare_layer_view(
        exploration.capture,
        request.layer,
        sort_by=request.sort_by,
        normalize=request.normalize,
        cmap=request.cmap,
        columns=request.columns,
        stats=stats,
        control=control,
    )


def image_key(image: LoadedImage) -> tuple:
    """Identifies a picture for the caches: its file and a fingerprint of its pixels."""
    sample = np.ascontiguousarray(image.pixels[::7, ::7])
    return (str(image.path), image.pixels.shape, hashlib.blake2b(sample.tobytes(), digest_size=8).hexdigest())
