"""One live frame through a model: a forward pass with one hook, the top-5, the layer's grid, a channel.

The explorer's still-image pass (:func:`cnn_explorer.core.features.explore`) keeps every layer's output,
which a still needs and live video cannot afford. Here one forward hook copies the chosen layer's output
and nothing else, so a frame costs a bare forward pass plus drawing one layer. The drawing is the
explorer's own (:func:`~cnn_explorer.core.features.prepare_layer_view`), so a live grid looks exactly like
the still one. With Grad-CAM on, :func:`~cnn_explorer.core.cam.grad_cam` runs the pass (forward and
backward) and the same hooks read the layer and the logits from it: still one forward pass per frame.

Settings (layer, channel, Grad-CAM, the grid's colours, order, scaling and columns) may be changed from
another thread while a frame is processed; each frame uses the settings it started with.

The layer's statistics (the histogram beside the grid) are computed a few times a second, not for every
frame: a window shows them at that pace anyway, and for an early layer they cost as much as the grid.
``LiveResult.stats_frame`` says which frame they describe.
"""

from __future__ import annotations

import difflib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam, has_spatial_map
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.explorer.tasks import model_in_use
from cnn_explorer.core.features import (
    Activation,
    Capture,
    LayerStats,
    LayerView,
    Prediction,
    prepare_layer_view,
    top_predictions,
)
from cnn_explorer.core.layers import LayerRow, LayerTable, eval_mode, layer_table, step_modules
from cnn_explorer.core.live.source import Frame

__all__ = ["CAM_AT", "LivePipeline", "LiveResult"]

CAM_AT = ("last", "current")  # Grad-CAM at the last spatial layer, or at the layer shown
STATS_INTERVAL_S = 0.2  # the layer's statistics at most this old


class _Keep:
    """``set_view``'s "leave it as it is" (None is a value there: a square grid)."""


KEEP = _Keep()


@dataclass(frozen=True)
class _ViewOptions:
    cmap: str
    sort_by: str
    normalize: str
    columns: int | None


@dataclass(frozen=True)
class LiveResult:
    frame: Frame
    done_at: float  # time.perf_counter() when the result was ready
    layer: str  # the layer-table row shown
    top: list[Prediction]  # the top-5, most probable first
    grid: np.ndarray  # (H, W, 3) uint8: the layer's channels as the explorer tiles and colours them
    channel: int | None
    channel_map: np.ndarray | None  # (h, w) float32 of the chosen channel (None: none chosen, or a vector)
    cam: np.ndarray | None  # (S, S) float32 0..1 at the network's input size (over ``seen``); None: off
    shape: tuple[int, ...]  # the layer's output without the batch: (C, H, W) or (N,)
    seconds: float  # preprocessing, the pass and drawing
    view: LayerView  # the whole view: values, Grid (channel_at for clicks), colours, statistics
    input: Tensor = field(repr=False)  # (C, S, S) float32: the frame preprocessed, as the network took it
    preprocess: zoo.Preprocess = field(repr=False)
    cam_layer: str | None = None  # where Grad-CAM was taken
    cam_class: int | None = None  # the class it explains (the top-1)
    stats_frame: int = -1  # the frame whose values ``view.stats`` summarises (this one, or a recent one)

    @functools.cached_property
    def seen(self) -> np.ndarray:
        """uint8 (S, S, 3) or (S, S): the frame as the network saw it (resized, cropped). Made when first
        asked for (the window draws every frame's; the command line only those it saves)."""
        return _seen(self.input, self.preprocess)


class _OutputHook:
    """Forward hook keeping a copy of one call's output (later in-place ops must not change it)."""

    def __init__(self, call: int) -> None:
        self.call = call
        self.seen = 0
        self.output: np.ndarray | None = None

    def __call__(self, _module: nn.Module, _args: tuple, output: object) -> None:
        if not isinstance(output, Tensor):
            return
        self.seen += 1
        if self.seen == self.call:
            self.output = output[0].detach().to("cpu", torch.float32).numpy().copy()


class _LogitsHook:
    def __init__(self) -> None:
        self.logits: np.ndarray | None = None

    def __call__(self, _module: nn.Module, _args: tuple, output: object) -> None:
        if not isinstance(output, Tensor):
            output = output[0]  # (Inception's aux logits come second)
        if self.logits is None:
            self.logits = output[0].detach().to("cpu", torch.float32).numpy().copy()


class LivePipeline:
    """What the live view computes for each frame, for one model."""

    def __init__(
        self,
        loaded: zoo.LoadedModel,
        layer: str | None = None,
        *,
        channel: int | None = None,
        gradcam: bool = False,
        cam_at: str = "last",
        cmap: str = "viridis",
        columns: int | None = None,
        normalize: str = "channel",
        sort_by: str = "index",
        table: LayerTable | None = None,
        stats_interval_s: float = STATS_INTERVAL_S,
    ) -> None:
        """``table``: the model's layer table at its input size, if the caller has it (the explorer does);
        otherwise (or if it is another input size's) it is computed here, with a pass through the model."""
        self.loaded = loaded
        self._view = _ViewOptions(cmap, sort_by, normalize, columns)
        self.stats_interval_s = stats_interval_s
        self._stats: tuple[str, float, int, LayerStats] | None = None  # layer, when, frame, statistics
        probe = loaded.preprocess(np.zeros((loaded.info.input_size,) * 2 + (3,), np.uint8))
        self.input_shape: tuple[int, ...] = tuple(int(s) for s in probe.shape)
        if table is None or tuple(table.input_shape) != self.input_shape:  # (not this input size's)
            table = layer_table(loaded.model, tuple(probe.shape[1:]), in_channels=int(probe.shape[0]))
        self.table: LayerTable = table
        self._rows = {row.name: row for row in self.table.rows}
        self._modules = {name: module for name, module, _ in step_modules(loaded.model)}
        self._all_modules = list(loaded.model.modules())
        try:
            self.last_spatial: str | None = default_cam_layer(self.table)
        except ValueError:  # no spatial map at all (an MLP): show the last layer, no Grad-CAM
            self.last_spatial = None
        self._lock = threading.Lock()
        self._layer = self._check_layer(layer)
        self._channel: int | None = None
        self._gradcam = False
        self._cam_at = "last"
        self.set_channel(channel)
        self.set_gradcam(gradcam, at=cam_at)

    # -- settings (any thread) ----------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        return self.table.names()

    @property
    def layer(self) -> str:
        return self._layer

    @property
    def row(self) -> LayerRow:
        return self._rows[self._layer]

    @property
    def channel(self) -> int | None:
        return self._channel

    @property
    def gradcam(self) -> bool:
        return self._gradcam

    @property
    def cmap(self) -> str:
        return self._view.cmap

    @property
    def sort_by(self) -> str:
        return self._view.sort_by

    @property
    def normalize(self) -> str:
        return self._view.normalize

    @property
    def columns(self) -> int | None:
        return self._view.columns

    def set_view(
        self,
        *,
        cmap: str | None = None,
        sort_by: str | None = None,
        normalize: str | None = None,
        columns: int | _Keep | None = KEEP,
    ) -> None:
        """The grid's colour map, channel order, scaling and columns (None columns: a square grid);
        what is not given stays."""
        with self._lock:
            v = self._view
            self._view = _ViewOptions(
                cmap if cmap is not None else v.cmap,
                sort_by if sort_by is not None else v.sort_by,
                normalize if normalize is not None else v.normalize,
                v.columns if isinstance(columns, _Keep) else columns,
            )

    @property
    def channels(self) -> int:
        """Channels (or values, for a vector) of the layer shown."""
        return int(self.row.out_shape[0])

    def _check_layer(self, name: str | None) -> str:
        names = self.table.names()
        if name is None:
            if self.last_spatial is not None:
                return self.last_spatial
            if not names:
                raise ValueError(f"{self.loaded.info.title} has no layers to show (a TorchScript model?)")
            return names[-1]
        if name not in self._rows:
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"{self.loaded.info.title} has no layer named {name!r}{hint}; its layers: {', '.join(names)}"
            )
        return name

    def set_layer(self, name: str | None) -> None:
        """Show layer ``name`` (a layer-table row; None: the last spatial layer). The channel stays chosen
        when the new layer has as many channels, as in the explorer; otherwise it is cleared."""
        checked = self._check_layer(name)
        with self._lock:
            before = self.channels
            self._layer = checked
            if self._channel is not None and self.channels != before:
                self._channel = None

    def set_channel(self, channel: int | None) -> None:
        """Show channel ``channel`` of the layer's output as its own map (None: none)."""
        if channel is not None:
            channel = int(channel)
            if not 0 <= channel < self.channels:
                raise ValueError(f"{self._layer} has channels 0–{self.channels - 1}, not {channel}")
        with self._lock:
            self._channel = channel

    def set_gradcam(self, on: bool, *, at: str | None = None) -> None:
        """Grad-CAM of the top class on every frame, at the last spatial layer ("last") or the layer shown
        ("current"; a layer without a spatial map falls back to the last spatial one)."""
        if at is not None and at not in CAM_AT:
            raise ValueError(f"Grad-CAM goes at {' or '.join(CAM_AT)}, not {at!r}")
        if on and self.last_spatial is None:
            raise ValueError(f"{self.loaded.info.title} has no layer with a spatial map for Grad-CAM")
        with self._lock:
            self._gradcam = bool(on)
            if at is not None:
                self._cam_at = at

    # -- one frame (the model's thread) -------------------------------------------------------------
    def process(
        self, frame: Frame, control: Control | None = None, after_pass: Callable[[], None] | None = None
    ) -> LiveResult:
        """Run the model on ``frame`` with the current settings. ``after_pass`` is called once the model's
        pass is over, before the drawing (the live loop asks for the next frame then)."""
        with self._lock:
            layer, channel, gradcam, cam_at = self._layer, self._channel, self._gradcam, self._cam_at
            options = self._view
        start = time.perf_counter()
        loaded = self.loaded
        checkpoint(control)
        x = loaded.preprocess(frame.pixels)
        cam_layer = None
        if gradcam:
            current = self._rows[layer]
            cam_layer = layer if cam_at == "current" and has_spatial_map(current) else self.last_spatial
        base, _, call = layer.partition("#")
        hook = _OutputHook(int(call) if call else 1)
        logits_hook = _LogitsHook()
        model = loaded.model
        cam = None
        with model_in_use(model, control):
            handles = [
                self._modules[base].register_forward_hook(hook),
                model.register_forward_hook(logits_hook),
            ]
            try:
                if cam_layer is not None:  # grad_cam's own pass (eval mode, gradients on) feeds the hooks
                    cam = grad_cam(model, x, cam_layer, control=control)
                else:
                    with eval_mode(model, self._all_modules), torch.inference_mode():
                        model(x[None])
            finally:
                for handle in handles:
                    handle.remove()
        if after_pass is not None:
            after_pass()
        if hook.output is None or logits_hook.logits is None:
            raise RuntimeError(f"{layer} was not reached in the forward pass")
        checkpoint(control)
        kept = self._stats
        fresh = kept is None or kept[0] != layer or start - kept[1] >= self.stats_interval_s
        view = prepare_layer_view(
            _one_step_capture(self._rows[layer], hook.output, logits_hook.logits, x),
            layer,
            sort_by=options.sort_by,
            normalize=options.normalize,
            cmap=options.cmap,
            columns=options.columns,
            stats=None if fresh else kept[3],
            control=control,
        )
        if fresh:
            self._stats = kept = (layer, start, frame.index, view.stats)
        top = top_predictions(logits_hook.logits, loaded.categories, 5)
        channel_map = None
        if channel is not None and view.spatial and channel < view.channels:
            channel_map = view.channel_map(channel)
        done = time.perf_counter()
        return LiveResult(
            frame=frame,
            done_at=done,
            layer=layer,
            top=top,
            grid=view.rgb,
            channel=channel,
            channel_map=channel_map,
            cam=cam.heatmap if cam is not None else None,
            shape=tuple(int(s) for s in hook.output.shape),
            seconds=done - start,
            view=view,
            input=x,
            preprocess=loaded.preprocess,
            cam_layer=cam_layer,
            cam_class=cam.class_index if cam is not None else None,
            stats_frame=kept[2],
        )


def _seen(x: Tensor, preprocess: zoo.Preprocess) -> np.ndarray:
    """``preprocess.crop_pixels`` of the frame, recovered from its input tensor by undoing the last two
    steps (normalisation, then the scaling to 0..1): the same uint8 values (a test checks) for a tenth of
    the cost of resizing the frame again."""
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(-1, 1, 1)
    t = (x * std + mean).mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    arr = t.permute(1, 2, 0).numpy()
    return np.ascontiguousarray(arr[:, :, 0] if preprocess.grayscale else arr)


def _one_step_capture(row: LayerRow, values: np.ndarray, logits: np.ndarray, x: Tensor) -> Capture:
    """A capture holding just the one step, for the explorer's view function."""
    act = Activation(row.name, row.type, row.kind, tuple(values.shape), stored=values)
    return Capture([act], logits, x.numpy())
