"""What the explorer's workers run: module-level functions of plain inputs and a ``Control``.

Orange's ``run(data, state)`` pattern: each function takes everything it needs as arguments, reports
progress with ``report(control, …)``, stops at ``checkpoint(control)``, and returns a plain result. The
page's "latest request wins" runner calls them; tests call them directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult, grad_cam
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.features import MAX_LAYER_BYTES, Exploration, LayerStats, LayerView, explore
from cnn_explorer.core.features import prepare_layer_view as _prepare_layer_view
from cnn_explorer.core.images import LoadedImage, open_image
from cnn_explorer.core.layers import LayerTable

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


# Capture and Grad-CAM put hooks on the model's modules: two of them at once on one model (sides A and B
# showing the same model, each with its own runner) would see each other's passes. One lock per model.
_MODEL_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def model_in_use(model: nn.Module, control: Control | None = None) -> Iterator[None]:
    """Hold ``model`` for a pass that hooks it; waits (cancellably) while another thread holds it."""
    with _LOCKS_GUARD:
        lock = _MODEL_LOCKS.setdefault(model, threading.Lock())
    while not lock.acquire(timeout=0.05):
        checkpoint(control)
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a zoo entry or a file."""

    key: str  # "zoo:resnet18" or "file:/abs/path/best.pt"
    label: str  # as the picker shows it
    name: str | None = None
    path: Path | None = None
    arch_hint: str | None = None  # for a plain state_dict: try this architecture first
    trusted_sha256: str | None = None  # the (TorchScript) content whose code the user agreed to run

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
                self.path, arch=self.arch_hint, control=control, trusted_sha256=self.trusted_sha256
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
    table: LayerTable | None = None,
    control: Control | None = None,
) -> ModelRun:
    """(Open the image,) load the model unless given, run it capturing every layer.

    ``table``: the layer table of an earlier run of this very model (``loaded``), reused when the input
    size is the same: a new picture for the same model (a digit being drawn) skips measuring it again."""
    image = None
    if image_path is not None:
        report(control, Stage(f"Opening {image_path.name}…"))
        image = open_image(image_path)
        pixels = image.pixels
    given = loaded
    if loaded is None:
        report(control, Stage(f"Loading {source.label}…"))
        loaded = source.load(allow_download=allow_download, control=control)
    exploration = None
    if pixels is not None:
        checkpoint(control)
        report(control, Stage(f"Running {loaded.info.title} on the image…"))
        with model_in_use(loaded.model, control):
            exploration = explore(
                loaded,
                pixels,
                table=table if given is not None else None,
                max_layer_bytes=max_layer_bytes,
                control=control,
            )
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
    with model_in_use(loaded.model, control):
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


_FULL_HASH_BYTES = 8 << 20  # pictures up to this size are fingerprinted whole (~5 ms); larger ones sampled


def image_key(image: LoadedImage) -> tuple:
    """Identifies a picture for the caches: its file, the file's size and time, and its pixels' fingerprint.

    Every pixel counts up to 8 MB (a re-saved file with one changed line is another picture); beyond that a
    sample of rows and columns, with the file's modification time and size to tell edits apart."""
    pixels = image.pixels
    data = pixels if pixels.nbytes <= _FULL_HASH_BYTES else np.ascontiguousarray(pixels[::3, ::3])
    try:
        info = image.path.stat()
        stamp = (info.st_size, info.st_mtime_ns)
    except OSError:
        stamp = (0, 0)
    digest = hashlib.blake2b(np.ascontiguousarray(data).tobytes(), digest_size=8).hexdigest()
    return (str(image.path), *stamp, pixels.shape, digest)
