"""Activations: one forward pass that keeps every step's output, predictions, grids, statistics and the
receptive field of a clicked unit.

The steps are the rows of the layer table (:func:`cnn_explorer.core.layers.step_modules`), captured with
forward hooks under ``torch.no_grad()``. Each step is read as a float16 numpy array: float16 halves the
memory and keeps about three significant digits, plenty for pictures and histograms (a map whose values
exceed float16's ±65504, as in some untrained networks, is kept as float32 instead).

Given the layer table, the pass copies almost nothing. A step that only applies a batch norm or an
activation to the previous step's output (or a block whose output is that very tensor) is recomputed
from it when first read: that is most steps. Every other step keeps the pass's own output tensor and is
compacted to float16 when first read, unless a later operation changes that tensor in place (version
counters tell); such steps are copied during the pass. So the pass stays close to a bare forward pass
in time. Without a table every step is copied as the pass goes.

Memory stays bounded: a step whose float16 values would exceed ``max_layer_bytes``, or one that would
push the memory held (float32 while unread) past ``max_total_bytes``, keeps only its shape and is listed
in ``Capture.skipped`` so the UI can say so.

What the explorer shows for one step (values, the coloured grid of its channels, statistics) comes from
:func:`prepare_layer_view`, a pure function the GUI runs in a worker. Recomputing a step caches the
result in its :class:`Activation`; a lock makes that safe when a worker and the GUI thread read the same
capture.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.layers import LayerRow, LayerTable, eval_mode, layer_table, step_modules
from cnn_explorer.core.zoo import LoadedModel

__all__ = [
    "COLORMAPS",
    "Activation",
    "Capture",
    "Exploration",
    "Grid",
    "LayerStats",
    "LayerView",
    "Prediction",
    "Region",
    "apply_colormap",
    "capture_activations",
    "channel_order",
    "explore",
    "grid_columns",
    "layer_stats",
    "prepare_layer_view",
    "receptive_region",
    "render_grid",
    "tile_channels",
    "top_predictions",
]

MAX_LAYER_BYTES = 64 << 20
MAX_TOTAL_BYTES = 1 << 30
_F16_MAX = float(np.finfo(np.float16).max)  # 65504
# Recomputing a step stores the result in its Activation (and in the steps it comes from): one thread at
# a time, so a worker preparing a view and the GUI thread never both derive, or half-see, the same step.
# Reentrant because a step derives its source first.
_DERIVE_LOCK = threading.RLock()


@dataclass(frozen=True)
class Prediction:
    index: int
    name: str
    probability: float


@dataclass(eq=False)
class Activation:
    """One step's output: the pass's own float32 tensor, compacted to a float16 copy when first read; a
    float16 copy taken during the pass (when a later operation changes that tensor in place); or, for a
    step that only transforms the previous one element-wise (a batch norm with its running statistics,
    an activation function) or passes it on unchanged (a block ending in its last layer), recomputed
    from that step when first read."""

    name: str  # the layer table's row name
    type: str
    kind: str  # "layer" | "block"
    shape: tuple[int, ...]  # without the batch dimension: (C, H, W) or (features,)
    stored: np.ndarray | None = None  # float16 (float32 if out of range) copy, or cached recomputation
    source: Activation | None = None  # the step this one is recomputed from
    recipe: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)  # None: same values
    tensor: Tensor | None = field(default=None, repr=False)  # the pass's output, until first read

    @property
    def data(self) -> np.ndarray | None:
        """(C, H, W) or (features,) values, float16 (float32 beyond float16's range); None if too large."""
        if self.stored is None and (self.tensor is not None or self.source is not None):
            with _DERIVE_LOCK:
                if self.stored is None:  # (another thread may have done it while this one waited)
                    if self.tensor is not None:  # compact the pass's float32 output
                        self.stored = _copy(self.tensor[None])
                        self.tensor = None
                        return self.stored
                    src = self.source.data
                    if src is None:
                        return None
                    if self.recipe is None:
                        self.stored = src
                    else:  # float16 → float32 → the layer's own function → float16: ~1 ms per million values
                        with torch.inference_mode():
                            self.stored = _copy(self.recipe(torch.from_numpy(src).float())[None])
        return self.stored

    @property
    def held_bytes(self) -> int:
        """Memory this step's values take now (a step passed on unchanged shares its source's)."""
        if self.stored is not None:
            return 0 if self.source is not None and self.recipe is None else self.stored.nbytes
        if self.tensor is not None:
            return self.tensor.numel() * self.tensor.element_size()
        return 0

    @property
    def derived(self) -> bool:
        return self.source is not None

    @property
    def nbytes(self) -> int:
        """Size of the float16 values (whether or not they were kept)."""
        return 2 * math.prod(self.shape)

    @property
    def too_large(self) -> bool:
        if self.source is not None:
            return self.source.too_large
        return self.stored is None and self.tensor is None

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3


@dataclass
class Capture:
    activations: list[Activation]  # execution order; blocks come after their inner layers
    logits: np.ndarray  # float32 (num_outputs,)
    input: np.ndarray  # float32 (C, H, W), the tensor the network saw
    skipped: list[str] = field(default_factory=list)  # steps whose data was too large to keep

    def __iter__(self) -> Iterator[Activation]:
        return iter(self.activations)

    def __len__(self) -> int:
        return len(self.activations)

    def names(self) -> list[str]:
        return [a.name for a in self.activations]

    def __getitem__(self, name: str) -> Activation:
        for a in self.activations:
            if a.name == name:
                return a
        raise KeyError(name)

    @property
    def nbytes(self) -> int:
        """Memory held by the steps' values: float32 outputs not yet read, float16 copies, and the
        recomputed steps read so far."""
        return sum(a.held_bytes for a in self.activations)

    def probabilities(self) -> np.ndarray:
        return _softmax(self.logits)

    def top(self, categories: Sequence[str], k: int = 5) -> list[Prediction]:
        return top_predictions(self.logits, categories, k)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max()
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


def top_predictions(logits: np.ndarray, categories: Sequence[str], k: int = 5) -> list[Prediction]:
    """The k most probable classes, with softmax probabilities and names, most probable first."""
    probs = _softmax(np.ravel(logits))
    k = min(k, probs.size)
    best = np.argsort(-probs, kind="stable")[:k]
    return [
        Prediction(int(i), categories[i] if i < len(categories) else f"class {i}", float(probs[i]))
        for i in best
    ]


def _recipe(module: nn.Module) -> Callable[[Tensor], Tensor] | None:
    """The eval-mode function of an element-wise layer, with its parameters frozen now; None if unknown."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if not module.track_running_stats or module.running_mean is None or module.running_var is None:
            return None  # normalises with the batch's own statistics: not recomputable from one map
        return _fold_batch_norm(module)
    return _ELEMENTWISE_FUNCTIONS.get(type(module)) or _parametrised_activation(module)


def _batch_norm_tensors(module: nn.modules.batchnorm._BatchNorm) -> list[Tensor]:
    tensors = (module.running_mean, module.running_var, module.weight, module.bias)
    return [t for t in tensors if t is not None]


def _fold_batch_norm(module: nn.modules.batchnorm._BatchNorm) -> Callable[[Tensor], Tensor]:
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable in any mode later
        scale = torch.rsqrt(module.running_var.float() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.float()
        shift = -module.running_mean.float() * scale
        if module.bias is not None:
            shift = shift + module.bias.float()

    def batch_norm(x: Tensor) -> Tensor:
        view = (-1,) + (1,) * (x.ndim - 1)
        return x * scale.view(view) + shift.view(view)

    return batch_norm


_ELEMENTWISE_FUNCTIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu,
    nn.SiLU: F.silu,
    nn.Hardswish: F.hardswish,
    nn.Hardsigmoid: F.hardsigmoid,
    nn.Sigmoid: torch.sigmoid,
    nn.Tanh: torch.tanh,
}


def _parametrised_activation(module: nn.Module) -> Callable[[Tensor], Tensor] | None:
    if isinstance(module, nn.ReLU6):
        return lambda x: x.clamp(0.0, 6.0)
    if isinstance(module, nn.LeakyReLU):
        return functools.partial(F.leaky_relu, negative_slope=module.negative_slope)
    if isinstance(module, nn.ELU):
        return functools.partial(F.elu, alpha=module.alpha)
    if isinstance(module, nn.GELU):
        return functools.partial(F.gelu, approximate=module.approximate)
    return None


def capture_activations(
    model: nn.Module,
    x: Tensor,
    *,
    table: LayerTable | None = None,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    control: Control | None = None,
) -> Capture:
    """Run ``model`` once on ``x`` ((C, H, W) or (1, C, H, W)) keeping every step's output.

    With the model's ``table`` for this input size, steps the table marks as ``derived_from`` the
    previous one (a norm or activation right after it, or a block ending in it) are not copied, and
    modules whose every call is such a step are not even hooked: they are recomputed from the previous
    step when first read. Values then agree with the true outputs to float16 precision; the pass costs
    little more than a bare forward pass. Without a table every step is copied.
    """
    if x.ndim == 3:
        x = x[None]
    if x.shape[0] != 1:
        raise ValueError(f"capture one image at a time, got a batch of {x.shape[0]}")
    if x.is_inference():  # (a model may change its input in place, which inference tensors forbid)
        x = x.clone()
    plan = _plan_for(model, table, tuple(x.shape[1:]))
    if plan is not None:
        try:
            try:
                return _capture(model, x, plan, max_layer_bytes, max_total_bytes, control)
            except _ChangedInPlace:  # now in plan.copied: this pass copies those steps as it goes
                return _capture(model, x, plan, max_layer_bytes, max_total_bytes, control)
        except _PlanMismatch:  # the pass did not go as the table said (data-dependent control flow?)
            pass
    return _capture(model, x, _copy_all_plan(model), max_layer_bytes, max_total_bytes, control)


class _PlanMismatch(Exception):
    pass


class _ChangedInPlace(Exception):
    pass


@dataclass(eq=False)
class _Plan:
    """Which modules to hook during a capture, and how to rebuild the steps that are not copied."""

    hooked: list[tuple[nn.Module, str, str]]  # (module, row name, kind) of every module that gets a hook
    rows: list[LayerRow] | None = None  # the table's rows; None: copy every step, no table
    recipes: dict[str, Callable[[Tensor], Tensor] | None] = field(default_factory=dict)  # None: same tensor
    folded: list[Tensor] = field(default_factory=list)  # batch-norm tensors the recipes were folded from
    stamp: int | None = 0  # their version counters' sum when folded; None: unknown (inference tensors)
    copied: set[str] = field(default_factory=set)  # steps a later operation changes in place: copy those
    modules: list[nn.Module] = field(default_factory=list)  # the whole model, to check it is in eval mode


# One plan per model, for the table it was made from: making it walks the whole module tree and folds
# every batch norm, about 0.6 ms for EfficientNet-Lite0 (3% of its forward pass), so it is reused while
# the same table is passed and the folded tensors are unchanged. (A table describes the model as it was
# when computed: after replacing modules, compute a new one. Hooks on replaced modules would not fire,
# and the capture would fall back to copying every step.)
_PLANS: weakref.WeakKeyDictionary[nn.Module, tuple[LayerTable, tuple[int, ...], _Plan]] = (
    weakref.WeakKeyDictionary()
)


def _plan_for(model: nn.Module, table: LayerTable | None, input_shape: tuple[int, ...]) -> _Plan | None:
    if table is None or isinstance(model, torch.jit.ScriptModule):
        return None
    cached = _PLANS.get(model)
    if cached is not None and cached[0] is table and cached[1] == input_shape:
        plan = cached[2]
        if _version_sum(plan.folded) == plan.stamp:
            return plan
    plan = _derivation_plan(step_modules(model), table, input_shape)
    if plan is not None:
        plan.modules = list(model.modules())
        if plan.stamp is not None:
            _PLANS[model] = (table, input_shape, plan)
    return plan


def _version_sum(tensors: list[Tensor]) -> int | None:
    """Sum of the tensors' version counters, which every in-place change bumps (training, load_state_dict);
    None if one is an inference tensor, which has no counter."""
    try:
        return sum(t._version for t in tensors)
    except RuntimeError:
        return None


def _copy_all_plan(model: nn.Module) -> _Plan:
    steps = step_modules(model) if not isinstance(model, torch.jit.ScriptModule) else []
    return _Plan([(m, n, k) for n, m, k in steps], modules=list(model.modules()))


def _derivation_plan(
    steps: list[tuple[str, nn.Module, str]], table: LayerTable, input_shape: tuple[int, ...]
) -> _Plan | None:
    if tuple(table.input_shape) != input_shape or not table.rows:
        return None
    modules = {name: module for name, module, _ in steps}
    recipes: dict[str, Callable[[Tensor], Tensor] | None] = {}
    folded: list[Tensor] = []
    needs_hook: set[str] = set()
    for row in table.rows:
        module = modules.get(row.module_name)
        if module is None:
            return None  # the table belongs to another model
        if row.derived_from is not None:
            # a block ending in its last layer, or dropout (the identity at inference): the same values
            same = row.kind == "block" or isinstance(module, nn.modules.dropout._DropoutNd)
            recipe = None if same else _recipe(module)
            if same or recipe is not None:
                recipes[row.name] = recipe
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    folded += _batch_norm_tensors(module)
                continue
        needs_hook.add(row.module_name)
    hooked = [(m, n, k) for n, m, k in steps if n in needs_hook]
    return _Plan(hooked, table.rows, recipes, folded, _version_sum(folded))


def _capture(
    model: nn.Module,
    x: Tensor,
    plan: _Plan,
    max_layer_bytes: int,
    max_total_bytes: int,
    control: Control | None,
) -> Capture:
    """One pass with hooks. Without a table (``plan.rows`` None) every step is copied as it comes. With
    one, a step keeps the pass's own output tensor, compacted when first read: a copy during the pass
    would cost about a quarter of EfficientNet-Lite0's forward time. Version counters (bumped by every
    in-place change, hence ``no_grad`` rather than ``inference_mode``, whose tensors have none) show
    whether a later operation changed a kept tensor; if one did, the step goes into ``plan.copied`` and
    ``_ChangedInPlace`` asks for the pass again."""
    names = {id(m): (n, k) for m, n, k in plan.hooked}
    recipes, copied = plan.recipes, plan.copied
    keep = plan.rows is not None
    calls: dict[int, int] = {}
    captured: list[Activation] = []
    kept: list[tuple[str, Tensor, int]] = []  # (step, output, its version when kept)
    skipped: list[str] = []
    total = 0

    def hook(module: nn.Module, _args: tuple, output: object) -> None:
        nonlocal total
        if control is not None:
            control.checkpoint()
        out = output if isinstance(output, Tensor) else _first_tensor(output)
        if out is None:
            return
        if out.is_quantized:  # an int8 model's steps: kept as the values they stand for
            out = out.dequantize()
        key = id(module)
        n = calls[key] = calls.get(key, 0) + 1
        base, kind = names[key]
        name = base if n == 1 else f"{base}#{n}"
        if name in recipes:
            return  # recomputed from the previous step on demand
        image = out[0]
        act = Activation(name, type(module).__name__, kind, tuple(image.shape))
        captured.append(act)
        by_ref = keep and name not in copied
        size = image.numel() * (image.element_size() if by_ref else 2)  # held now
        if act.nbytes > max_layer_bytes or total + size > max_total_bytes:
            skipped.append(name)
        elif by_ref:
            act.tensor = image
            kept.append((name, out, out._version))
            total += size
        else:
            act.stored = _copy(out)
            total += act.stored.nbytes

    handles = [m.register_forward_hook(hook) for m, _, _ in plan.hooked]
    try:
        with eval_mode(model, plan.modules), torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    changed = {name for name, out, version in kept if out._version != version}
    if changed:
        copied |= changed
        raise _ChangedInPlace(", ".join(sorted(changed)))
    logits_t = logits if isinstance(logits, Tensor) else _first_tensor(logits)
    if logits_t is None:
        raise TypeError(f"{type(model).__name__} returned no tensor")
    acts = captured if plan.rows is None else _merge(plan, captured)
    skipped += [a.name for a in acts if a.source is not None and a.too_large]
    return Capture(
        acts,
        logits_t[0].detach().float().numpy().copy(),
        x[0].detach().float().numpy().copy(),
        skipped,
    )


def _copy(out: Tensor) -> np.ndarray:
    """float16 copy of image 0 of ``out``; float32 if the values do not fit float16 (beyond ±65504,
    as in some untrained networks whose activations grow layer after layer).

    Always a copy, never a view of ``out``, which later in-place ops (ReLU(inplace=True),
    "out += identity") may change. ``out`` must carry no autograd history (made under ``no_grad``).
    """
    image = out[0]
    if image.numel():
        lo, hi = torch.aminmax(image)  # one vectorised pass; float16's own isfinite is ~20x slower on CPUs
        if not (float(lo) >= -_F16_MAX and float(hi) <= _F16_MAX):  # also true for NaN
            return image.float().clone().numpy()
    return image.to(torch.float16, copy=True).numpy()


def _merge(plan: _Plan, captured: list[Activation]) -> list[Activation]:
    """Captured steps plus recipe steps, in the table's order; _PlanMismatch if they do not line up."""
    by_name = {a.name: a for a in captured}
    acts: list[Activation] = []
    for row in plan.rows:
        if row.name in plan.recipes:
            if not acts or acts[-1].name != row.derived_from:
                raise _PlanMismatch(row.name)
            acts.append(
                Activation(
                    row.name, row.type, row.kind, row.out_shape, None, acts[-1], plan.recipes[row.name]
                )
            )
        elif row.name in by_name:
            acts.append(by_name.pop(row.name))
        else:
            raise _PlanMismatch(row.name)
    if by_name:
        raise _PlanMismatch(", ".join(by_name))
    return acts


def _first_tensor(obj: object) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


# ---------------------------------------------------------------------------------------------------------
# The whole explorer pass, for the GUI and the CLI alike


@dataclass
class Exploration:
    capture: Capture
    table: LayerTable
    predictions: list[Prediction]  # top-5
    pixels: np.ndarray  # uint8, the resized and cropped picture the network saw (for overlays)

    def row(self, name: str) -> LayerRow:
        return self.table.row(name)


def explore(
    loaded: LoadedModel,
    pixels: np.ndarray,
    *,
    top_k: int = 5,
    table: LayerTable | None = None,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    control: Control | None = None,
) -> Exploration:
    """Preprocess ``pixels`` for ``loaded``, capture every step, and compute the layer table and top-k.

    The layer table depends only on the model and the input size: pass the previous result's ``table``
    when only the image changed, to skip recomputing it (one that does not fit is recomputed).
    """
    x = loaded.preprocess(pixels)
    checkpoint(control)
    steps = {name for name, _, _ in step_modules(loaded.model)}
    fits = table is not None and tuple(table.input_shape) == tuple(x.shape)
    if not fits or not {r.module_name for r in table.rows} <= steps:
        table = layer_table(loaded.model, tuple(x.shape[1:]), in_channels=int(x.shape[0]), control=control)
    capture = capture_activations(
        loaded.model,
        x,
        table=table,
        max_layer_bytes=max_layer_bytes,
        max_total_bytes=max_total_bytes,
        control=control,
    )
    return Exploration(
        capture, table, capture.top(loaded.categories, top_k), loaded.preprocess.crop_pixels(pixels)
    )


# ---------------------------------------------------------------------------------------------------------
# Grids


def channel_order(fmap: np.ndarray, by: str = "mean") -> np.ndarray:
    """Channel indices sorted by ``by`` ("mean" or "max" activation), largest first; "index" keeps order."""
    c = fmap.shape[0]
    if by == "index":
        return np.arange(c)
    flat = np.asarray(fmap, dtype=np.float32).reshape(c, -1)
    if by == "mean":
        key = flat.mean(axis=1)
    elif by == "max":
        key = flat.max(axis=1)
    else:
        raise ValueError(f"unknown channel order {by!r} (use 'mean', 'max' or 'index')")
    return np.argsort(-key, kind="stable")


@dataclass
class Grid:
    """Channels tiled into one image; gaps between cells are NaN."""

    image: np.ndarray  # float32 (rows·(h + gap) − gap, columns·(w + gap) − gap)
    columns: int
    rows: int
    cell: tuple[int, int]  # (h, w) of one channel
    gap: int
    order: np.ndarray  # channel shown in cell i
    value_range: tuple[float, float]  # what 0 and 1 mean in the original units (per-layer scaling)

    def cell_origin(self, i: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of cell i."""
        r, c = divmod(i, self.columns)
        return r * (self.cell[0] + self.gap), c * (self.cell[1] + self.gap)

    def channel_at(self, y: float, x: float) -> int | None:
        """The channel under grid pixel (y, x), None over a gap or an empty cell."""
        if y < 0 or x < 0:
            return None
        ph, pw = self.cell[0] + self.gap, self.cell[1] + self.gap
        r, c = int(y // ph), int(x // pw)
        if c >= self.columns or y - r * ph >= self.cell[0] or x - c * pw >= self.cell[1]:
            return None
        i = r * self.columns + c
        return int(self.order[i]) if i < len(self.order) else None


def tile_channels(
    fmap: np.ndarray,
    *,
    columns: int | None = None,
    order: np.ndarray | Sequence[int] | None = None,
    normalize: str = "channel",
    gap: int = 1,
) -> Grid:
    """Tile a (C, H, W) map into a near-square grid, values scaled to 0..1.

    ``normalize``: "channel" stretches each channel to its own min..max (shows every pattern), "layer"
    uses the whole layer's min..max (shows which channels are strong), "none" keeps raw values.
    """
    fmap = np.asarray(fmap)
    if fmap.ndim == 1:
        fmap = fmap[:, None, None]
    if fmap.ndim != 3:
        raise ValueError(f"expected a (C, H, W) feature map, got shape {fmap.shape}")
    c, h, w = fmap.shape
    idx = np.arange(c) if order is None else np.asarray(order, dtype=np.int64)
    n = len(idx)
    if columns is None:
        columns = max(1, math.ceil(math.sqrt(n * h / w)))
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    data = fmap[idx].astype(np.float32)
    lo_all, hi_all = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if normalize == "channel":
        lo = data.min(axis=(1, 2), keepdims=True)
        span = data.max(axis=(1, 2), keepdims=True) - lo
        data = np.divide(data - lo, span, out=np.zeros_like(data), where=span > 0)
    elif normalize == "layer":
        span = hi_all - lo_all
        data = (data - lo_all) / span if span > 0 else np.zeros_like(data)
    elif normalize != "none":
        raise ValueError(f"unknown normalisation {normalize!r} (use 'channel', 'layer' or 'none')")
    # (rows, cols, h, w) with the gap on the right/bottom of every cell, then drop the last one.
    padded = np.full((rows, columns, h + gap, w + gap), np.nan, np.float32)
    padded.reshape(rows * columns, h + gap, w + gap)[:n, :h, :w] = data
    image = padded.transpose(0, 2, 1, 3).reshape(rows * (h + gap), columns * (w + gap))
    image = image[: rows * (h + gap) - gap, : columns * (w + gap) - gap]
    return Grid(np.ascontiguousarray(image), columns, rows, (h, w), gap, idx, (lo_all, hi_all))


# Colormaps as a few anchor colours (evenly spaced samples of the well-known maps), interpolated to 256.
_ANCHORS = {
    "gray": ["#000000", "#ffffff"],
    "viridis": [
        "#440154",
        "#472d7b",
        "#3b528b",
        "#2c728e",
        "#21918c",
        "#28ae80",
        "#5ec962",
        "#addc30",
        "#fde725",
    ],
    "inferno": [
        "#000004",
        "#1f0c48",
        "#550f6d",
        "#88226a",
        "#ba3655",
        "#e35933",
        "#f98e09",
        "#f9cb35",
        "#fcffa4",
    ],
    "coolwarm": ["#3b4cc0", "#7b9ff9", "#c0d4f5", "#f2cbb7", "#ee8468", "#b40426"],
}
COLORMAPS = tuple(_ANCHORS)
_LUTS: dict[str, np.ndarray] = {}


def _lut(name: str) -> np.ndarray:
    if name not in _LUTS:
        try:
            anchors = _ANCHORS[name]
        except KeyError:
            raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}") from None
        rgb = np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in anchors], dtype=np.float64)
        pos = np.linspace(0, 1, len(anchors))
        t = np.linspace(0, 1, 256)
        _LUTS[name] = (
            np.stack([np.interp(t, pos, rgb[:, ch]) for ch in range(3)], axis=1).round().astype(np.uint8)
        )
    return _LUTS[name]


def apply_colormap(
    values: np.ndarray, cmap: str = "viridis", background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """0..1 floats → uint8 RGB through a colormap; NaN (grid gaps) becomes ``background``."""
    lut = _lut(cmap)
    scaled = np.asarray(values, dtype=np.float32) * np.float32(255)  # (a fresh array, changed in place)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)  # ±inf to the ends; NaN stays NaN
    nan = np.isnan(scaled)
    has_nan = bool(nan.any())
    if has_nan:
        scaled[nan] = 0
    rgb = np.take(lut, scaled.astype(np.uint8), axis=0)  # np.take: ~4x faster than lut[idx] here
    if has_nan:
        rgb[nan] = background
    return rgb


def render_grid(
    fmap: np.ndarray,
    *,
    cmap: str = "viridis",
    normalize: str = "channel",
    sort_by: str = "index",
    columns: int | None = None,
    gap: int = 1,
) -> np.ndarray:
    """A (C, H, W) map as one RGB uint8 picture of all channels (for PNGs and slides)."""
    order = channel_order(fmap, sort_by)
    grid = tile_channels(fmap, columns=columns, order=order, normalize=normalize, gap=gap)
    return apply_colormap(grid.image, cmap)


# ---------------------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class LayerStats:
    minimum: float
    mean: float
    maximum: float
    std: float
    zero_fraction: float  # share of exact zeros (what a ReLU switched off)
    negative_fraction: float
    hist_counts: np.ndarray  # int64 (bins,)
    hist_edges: np.ndarray  # float64 (bins + 1,)
    count: int


def layer_stats(values: np.ndarray, bins: int = 64) -> LayerStats:
    """Min/mean/max, share of zeros and a histogram of one step's activations."""
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size == 0:
        raise ValueError("no activations to summarise")
    lo, hi = float(v.min()), float(v.max())
    finite = v
    if not (math.isfinite(lo) and math.isfinite(hi)):  # (NaN anywhere makes min or max NaN)
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi if hi > lo else lo + 1e-6))
    return LayerStats(
        minimum=lo,
        mean=float(finite.mean(dtype=np.float64)) if finite.size else float("nan"),
        maximum=hi,
        std=float(finite.std(dtype=np.float64)) if finite.size else float("nan"),
        zero_fraction=float(np.count_nonzero(v == 0) / v.size),
        negative_fraction=float(np.count_nonzero(v < 0) / v.size),
        hist_counts=counts.astype(np.int64),
        hist_edges=edges,
        count=int(v.size),
    )


# ---------------------------------------------------------------------------------------------------------
# One step as the explorer shows it


def grid_columns(shape: Sequence[int], aspect: float = 1.0) -> int:
    """Columns for tiling a (C, H, W) map, or an (N,) vector (one cell per value), into a grid whose
    overall shape is near ``aspect`` (width / height of the space it is drawn in)."""
    c, h, w = _as_cells(tuple(shape))
    gap = _cell_gap(h, w)
    cols = math.sqrt(c * (h + gap) / (w + gap) * max(aspect, 1e-3))
    return max(1, min(c, math.ceil(cols)))


def _as_cells(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) == 1:
        return shape[0], 1, 1
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise ValueError(f"expected a (C, H, W) feature map or a vector, got shape {shape}")


def _cell_gap(h: int, w: int) -> int:
    return 0 if (h, w) == (1, 1) else 1  # one-pixel cells (a vector) need no gaps


@dataclass(eq=False)
class LayerView:
    """Everything the explorer draws for one step, computed in one go off the GUI thread.

    Arrays are plain numpy, not shared with torch. ``values`` is the capture's own copy, read-only.
    """

    name: str
    values: np.ndarray  # (C, H, W), float16 (float32 beyond its range); a vector as (N, 1, 1); read-only
    spatial: bool  # False for a vector (a linear layer's output)
    sort_by: str
    normalize: str  # as asked ("channel" | "layer")
    scaling: str  # as used: a vector's one-value cells always share the layer's range
    cmap: str
    grid: Grid  # tiled values in 0..1 (NaN in the gaps), the channel order, the value range
    rgb: np.ndarray  # uint8 (H, W, 3): ``grid.image`` through the colour map, gaps white
    stats: LayerStats

    @property
    def channels(self) -> int:
        return int(self.values.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory this view adds to the capture's own values."""
        return self.grid.image.nbytes + self.rgb.nbytes

    def channel_map(self, channel: int) -> np.ndarray:
        """One channel as a float32 (H, W) array (a fresh copy)."""
        return self.values[channel].astype(np.float32)


def prepare_layer_view(
    capture: Capture,
    name: str,
    *,
    sort_by: str = "index",
    normalize: str = "channel",
    cmap: str = "viridis",
    columns: int | None = None,
    stats: LayerStats | None = None,
    bins: int = 64,
    control: Control | None = None,
) -> LayerView:
    """Step ``name`` of ``capture`` ready to draw: its values (recomputed now if the step is derived),
    its channels ordered by ``sort_by``, tiled in ``columns`` (default: a square grid) and scaled by
    ``normalize``, coloured with ``cmap``, and its statistics (pass ``stats`` to reuse them).

    Costs tens of milliseconds for an early layer of a real network: the explorer calls it in a worker.
    Raises ``ValueError`` when the step's values were too large to keep.
    """
    act = capture[name]
    data = act.data
    if data is None:
        raise ValueError(f"{name}'s output was too large to keep: there is nothing to draw")
    c, h, w = _as_cells(tuple(data.shape))
    values = data.reshape(c, h, w).view()
    values.flags.writeable = False  # the capture's copy: a view must not change it
    checkpoint(control)
    scaling = "layer" if (h, w) == (1, 1) else normalize
    order = channel_order(values, sort_by)
    checkpoint(control)
    grid = tile_channels(
        values,
        columns=columns if columns is not None else grid_columns(values.shape),
        order=order,
        normalize=scaling,
        gap=_cell_gap(h, w),
    )
    checkpoint(control)
    rgb = apply_colormap(grid.image, cmap)
    checkpoint(control)
    if stats is None:
        stats = layer_stats(values, bins)
    return LayerView(name, values, len(data.shape) == 3, sort_by, normalize, scaling, cmap, grid, rgb, stats)


# ---------------------------------------------------------------------------------------------------------
# Receptive field of one unit


@dataclass(frozen=True)
class Region:
    """Input pixels [top, bottom] × [left, right] (inclusive) that can influence one unit."""

    top: int
    left: int
    bottom: int
    right: int
    full_height: int  # the theoretical field, before clipping to the image
    full_width: int
    clipped: bool  # part of the field lies in the padding outside the image

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def width(self) -> int:
        return self.right - self.left + 1


def receptive_region(row: LayerRow, y: int, x: int, input_hw: tuple[int, int]) -> Region:
    """The input region seen by unit (y, x) of ``row``'s feature map, clipped to the ``input_hw`` image.

    Uses the layer table's receptive-field size, jump and start (see ``layers.py`` for where branching
    makes them approximate). Layers after flattening see the whole input.
    """
    h, w = input_hw
    if row.rf_size is None or row.rf_jump is None or row.rf_start is None:
        return Region(0, 0, h - 1, w - 1, h, w, False)
    if len(row.out_shape) == 3 and not (0 <= y < row.out_shape[1] and 0 <= x < row.out_shape[2]):
        raise IndexError(f"unit ({y}, {x}) is outside {row.name}'s {row.out_shape[1]}×{row.out_shape[2]} map")
    bounds = []
    for pos, axis in ((y, 0), (x, 1)):
        centre = row.rf_start[axis] + pos * row.rf_jump[axis]
        half = (row.rf_size[axis] - 1) / 2
        bounds.append((math.floor(centre - half + 1e-9), math.ceil(centre + half - 1e-9)))
    (t, b), (left, r) = bounds
    clipped = t < 0 or left < 0 or b > h - 1 or r > w - 1
    return Region(max(t, 0), max(left, 0), min(b, h - 1), min(r, w - 1), b - t + 1, r - left + 1, clipped)
