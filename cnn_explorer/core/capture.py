"""Activations: one forward pass that keeps every step's output, and the predictions from its logits.

The steps are the rows of the layer table (:func:`cnn_explorer.core.layers.step_modules`), captured under
``torch.no_grad()`` by a wrapper around each step module's forward (with the table; cheaper than a forward
hook, see ``_wrap_forwards``) or by forward hooks (without it). Each step is read as a float16 numpy
array: float16 halves the memory and keeps about three significant digits, plenty for pictures and
histograms (a map whose values exceed float16's ±65504, as in some untrained networks, is kept as float32
instead).

Given the layer table, the pass copies almost nothing. A step that only applies a batch norm or an
activation to the previous step's output (or a block whose output is that very tensor) is recomputed
from it when first read: that is most steps. A batch norm or a smooth activation is recomputed from the
previous step's float32 values with the module's own kernel, an exact one (ReLU, ReLU6) from its float16
copy, so each value read is the float16 rounding of the true activation, as a copy would be
(``tests/core/test_capture_accuracy.py``); reading one step of a chain computes the chain. Every other
step keeps the pass's own output tensor and is compacted to float16 when first read, unless a later
operation changes that tensor in place (version counters tell); such steps are copied during the pass.
So the pass stays close to a bare forward pass in time. Without a table every step is copied as the
pass goes.

Memory stays bounded: a step whose float16 values would exceed ``max_layer_bytes``, or one that would
push the memory held (float32 while unread) past ``max_total_bytes``, keeps only its shape and is listed
in ``Capture.skipped`` so the UI can say so.

Recomputing a step caches the result in its :class:`Activation`; a lock makes that safe when a worker
and the GUI thread read the same capture. What the explorer draws from a step is in
:mod:`cnn_explorer.core.features`.
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

from cnn_explorer.core.control import Control
from cnn_explorer.core.layers import LayerTable, eval_mode, step_modules

__all__ = [
    "MAX_LAYER_BYTES",
    "MAX_TOTAL_BYTES",
    "Activation",
    "Capture",
    "Prediction",
    "capture_activations",
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


# How a step that is not copied gets its values (Activation.how).
_SAME = 1  # the very tensor of the step before (a block ending in its last layer, dropout at inference)
_EXACT = 2  # a function exact on float16 values (ReLU, ReLU6, a clamp): computed from the step before's copy
_FLOAT = 3  # any other element-wise function (a batch norm, a smooth activation): computed from the float32
# values of its chain (the kept step it comes from) when that is compacted, because recomputing it from the
# rounded float16 copy amplifies the rounding (a batch norm scales it by up to 1/std). The chain's _EXACT
# steps are computed then too, from float16 copies just made (still in the cache: cheaper than later).


@dataclass(eq=False)
class Activation:
    """One step's output: the pass's own float32 tensor, compacted to a float16 copy when first read; a
    copy taken during the pass (when a later operation changes that tensor in place); or, for a step
    that only transforms the previous one element-wise (a batch norm with its running statistics, an
    activation function) or passes it on unchanged (a block ending in its last layer), recomputed when
    first read: from the previous step's float16 copy where that gives the same float16 values (ReLU, a
    block), otherwise from the float32 values of the kept step it comes from. A kept step and the steps
    computed from it (its chain: conv → batch norm → ReLU) get their values together, when one is read."""

    name: str  # the layer table's row name
    type: str
    kind: str  # "layer" | "block"
    shape: tuple[int, ...]  # without the batch dimension: (C, H, W) or (features,)
    stored: np.ndarray | None = None  # float16 (float32 if out of range) copy, or cached recomputation
    source: Activation | None = None  # the step this one is recomputed from
    recipe: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)  # None: same values
    tensor: Tensor | None = field(default=None, repr=False)  # the pass's output (float32), until first read
    how: int = field(default=0, repr=False)  # for a recomputed step: _SAME, _EXACT or _FLOAT
    bound: Callable[[float], float] | None = field(default=None, repr=False)  # max |out| from max |in|
    head: Activation | None = field(default=None, repr=False)  # a recomputed step's kept step
    # A kept step's recomputed followers, weakly: they link back to it (``source``, ``head``), and strong
    # links both ways would make every capture a reference cycle, freed only by a garbage collection
    # (unread float32 outputs included).
    chain: tuple[weakref.ref[Activation], ...] = field(default=(), repr=False)

    @property
    def data(self) -> np.ndarray | None:
        """(C, H, W) or (features,) values, float16 (float32 beyond float16's range); None if too large."""
        stored = self.stored
        if stored is None and (self.tensor is not None or self.source is not None):
            with _DERIVE_LOCK:
                if self.stored is None:  # (another thread may have done it while this one waited)
                    self._materialise()
            stored = self.stored
        return stored

    def _materialise(self) -> None:
        if self.tensor is not None:  # a kept step: compact it, and compute its chain
            _compact_chain(self)
            return
        if self.head is not None and self.head.tensor is not None:
            _compact_chain(self.head)
        if self.stored is None and self.source is not None:  # (a block, or a head copied during the pass)
            src = self.source.data
            if src is None:
                return
            if self.recipe is None:
                self.stored = src
            else:
                with torch.inference_mode():
                    self.stored = _apply(self, torch.from_numpy(src)).numpy()

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


def _apply(act: Activation, src: Tensor) -> Tensor:
    """An _EXACT step's values from its source's float16 (or float32) copy."""
    if act.how == _EXACT and src.dtype == torch.float16:
        out = act.recipe(src)  # float16 in, float16 out: ~0.2 ms per million values
        if out.dtype == torch.float16:
            return out
    else:
        out = act.recipe(src.float())
    return torch.from_numpy(_compact(out)[0])


def _compact_chain(head: Activation) -> None:
    """Compact a kept step's float32 values to float16 and compute its chain: each _FLOAT step from the
    float32 values (rounded once, as a copy of its true values would be), each _EXACT step from the float16
    copy of the step before."""
    t = head.tensor
    chain = [f() for f in head.chain]
    if any(f is None for f in chain):  # a follower is gone (its capture was dropped): each reads on its own
        chain = []
    with torch.inference_mode():
        stored, largest = _compact(t)
        cur, prev = t, torch.from_numpy(stored)  # the last step's float32 and float16 values
        last_float = max((i for i, f in enumerate(chain) if f.how == _FLOAT), default=-1)
        for i, f in enumerate(chain):
            if f.how == _SAME:
                continue
            if f.how == _FLOAT:
                cur = f.recipe(cur)
                largest = f.bound(largest) if f.bound is not None else math.inf
                if largest <= _F16_MAX:  # (NaN is not): fits float16 for sure, no need to look
                    prev = cur.to(torch.float16, copy=True)
                else:
                    half, largest = _compact(cur)
                    prev = torch.from_numpy(half)
            else:
                prev = _apply(f, prev)
                if i < last_float:  # a later step needs these values in float32
                    cur = f.recipe(cur)
                    largest = f.bound(largest) if f.bound is not None else math.inf
            f.stored = prev.numpy()
    head.stored = stored
    head.tensor = None


def _compact(t: Tensor) -> tuple[np.ndarray, float]:
    """A float16 copy of ``t`` (float32 if a value does not fit float16, beyond ±65504 as in some untrained
    networks, or is NaN) and its largest magnitude.

    Always a copy, never a view of ``t``, which later in-place ops (ReLU(inplace=True), "out += identity")
    may change. Converting first and looking at the float16 values is cheaper than the reverse: a value
    out of range becomes ±inf, which aminmax sees, and float16's aminmax reads half the bytes."""
    half = t.to(torch.float16, copy=True)
    if not half.numel():
        return half.numpy(), 0.0
    lo, hi = torch.aminmax(half)
    lo, hi = float(lo), float(hi)
    if lo >= -_F16_MAX and hi <= _F16_MAX:
        return half.numpy(), max(-lo, hi)
    return t.float().clone().numpy(), math.inf if math.isnan(lo + hi) else max(-lo, hi)


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


@dataclass(frozen=True)
class _Recipe:
    """The eval-mode function of an element-wise layer, with its parameters frozen."""

    fn: Callable[[Tensor], Tensor]
    # The function of a float16 input, rounded to float16, equals the float16 rounding of the true result
    # (true of a clamp, whose bounds are float16 values: it only picks values): computed from float16.
    exact: bool
    bound: Callable[[float], float] | None  # the largest |output| given the largest |input|; None: unknown


def _recipe(module: nn.Module) -> _Recipe | None:
    """How to recompute an element-wise layer's output from its input; None if unknown."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if not module.track_running_stats or module.running_mean is None or module.running_var is None:
            return None  # normalises with the batch's own statistics: not recomputable from one map
        return _batch_norm_recipe(module)
    if isinstance(module, nn.Hardtanh):  # (ReLU6 too)
        lo, hi = float(module.min_val), float(module.max_val)
        exact = float(np.float16(lo)) == lo and float(np.float16(hi)) == hi
        return _Recipe(functools.partial(torch.clamp, min=lo, max=hi), exact, lambda m: max(-lo, hi, 0.0))
    if isinstance(module, nn.LeakyReLU):
        slope = float(module.negative_slope)
        return _Recipe(
            functools.partial(F.leaky_relu, negative_slope=slope), False, lambda m: m * max(1.0, abs(slope))
        )
    if isinstance(module, nn.ELU):
        alpha = float(module.alpha)
        return _Recipe(functools.partial(F.elu, alpha=alpha), False, lambda m: max(m, abs(alpha)))
    if isinstance(module, nn.GELU):
        return _Recipe(functools.partial(F.gelu, approximate=module.approximate), False, _at_least(0.2))
    return _ELEMENTWISE_FUNCTIONS.get(type(module))


def _at_least(floor: float) -> Callable[[float], float]:
    return lambda m: max(m, floor)


def _one(_m: float) -> float:
    return 1.0


_ELEMENTWISE_FUNCTIONS: dict[type[nn.Module], _Recipe] = {
    nn.ReLU: _Recipe(torch.relu, True, _at_least(0.0)),
    nn.SiLU: _Recipe(F.silu, False, _at_least(0.28)),  # (silu's minimum is −0.278)
    nn.Hardswish: _Recipe(F.hardswish, False, _at_least(0.375)),
    nn.Hardsigmoid: _Recipe(F.hardsigmoid, False, _one),
    nn.Sigmoid: _Recipe(torch.sigmoid, False, _one),
    nn.Tanh: _Recipe(torch.tanh, False, _one),
}


def _batch_norm_tensors(module: nn.modules.batchnorm._BatchNorm) -> list[Tensor]:
    tensors = (module.running_mean, module.running_var, module.weight, module.bias)
    return [t for t in tensors if t is not None]


def _batch_norm_recipe(module: nn.modules.batchnorm._BatchNorm) -> _Recipe:
    """The module's own batch norm on frozen copies of its statistics and parameters: the very kernel of
    the pass, so from float32 input it gives the pass's values."""
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable in any mode later
        mean, var = module.running_mean.detach().clone(), module.running_var.detach().clone()
        weight = module.weight.detach().clone() if module.weight is not None else None
        bias = module.bias.detach().clone() if module.bias is not None else None
        scale = torch.rsqrt(var.double() + module.eps)
        if weight is not None:
            scale = scale * weight.double()
        shift = -mean.double() * scale
        if bias is not None:
            shift = shift + bias.double()
        # |x·scale + shift| ≤ max|scale|·max|x| + max|shift|, with room for float32 rounding
        most_scale = float(scale.abs().max()) * 1.001 if scale.numel() else 0.0
        most_shift = float(shift.abs().max()) * 1.001 + 1e-30 if shift.numel() else 0.0
    eps = float(module.eps)

    def batch_norm(x: Tensor) -> Tensor:
        return F.batch_norm(x[None], mean, var, weight, bias, False, 0.0, eps)[0]

    return _Recipe(batch_norm, False, lambda m: most_scale * m + most_shift)


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
    modules whose every call is such a step are not even hooked: they are recomputed when first read.
    Every step's values are then the float16 rounding of its true output (a batch norm or smooth
    activation is recomputed from the float32 values it came from, so within float32 rounding of that);
    the pass costs little more than a bare forward pass. Without a table every step is copied.
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
                return _capture_planned(model, x, plan, max_layer_bytes, max_total_bytes, control)
            except _ChangedInPlace:  # now in plan.copied: this pass copies those steps as it goes
                return _capture_planned(model, x, plan, max_layer_bytes, max_total_bytes, control)
        except _PlanMismatch:  # the pass did not go as the table said (data-dependent control flow?)
            pass
    return _capture_all(model, x, max_layer_bytes, max_total_bytes, control)


class _PlanMismatch(Exception):
    pass


class _ChangedInPlace(Exception):
    pass


# What the hook does with one call of a hooked module.
_RECIPE, _KEEP, _COPY16, _COPY32, _SKIP = range(5)


@dataclass(eq=False)
class _Row:
    """One row of the table as the capture treats it."""

    name: str
    type: str
    kind: str
    shape: tuple[int, ...]
    module: nn.Module
    how: int = 0  # 0: captured by the hook; _SAME, _EXACT or _FLOAT: recomputed
    recipe: Callable[[Tensor], Tensor] | None = None
    bound: Callable[[float], float] | None = None
    chain: int = 0  # a captured row: how many rows after it are recomputed from it
    floats: bool = False  # a captured row: one of those needs its float32 values

    @property
    def captured(self) -> bool:
        return self.how == 0


@dataclass(eq=False)
class _Plan:
    """Which modules to hook during a capture, what to do with each of their calls, and how to rebuild
    the steps that are not copied."""

    rows: list[_Row]  # the table's rows, in order
    hooked: list[nn.Module]  # every module with a captured call (in the order of the table)
    folded: list[Tensor] = field(default_factory=list)  # batch-norm tensors the recipes were copied from
    stamp: int | None = 0  # their version counters' sum when copied; None: unknown (inference tensors)
    copied: set[str] = field(default_factory=set)  # steps a later operation changes in place: copy those
    modules: list[nn.Module] = field(default_factory=list)  # the whole model, to check it is in eval mode
    # per (limits, copied): each hooked module's actions, call by call, and each captured row's action
    _actions: dict[tuple, tuple[list[tuple[nn.Module, list[int]]], list[int]]] = field(default_factory=dict)

    def actions(
        self, max_layer_bytes: int, max_total_bytes: int
    ) -> tuple[list[tuple[nn.Module, list[int]]], list[int]]:
        """Keep each captured step's tensor, copy it (float16, or float32 when steps recomputed from it
        need float32 values) if a later operation changes it in place, or skip it if it would break the
        memory limits; the float16 size is what ``max_layer_bytes`` limits, what is held now what
        ``max_total_bytes`` does."""
        key = (max_layer_bytes, max_total_bytes, tuple(sorted(self.copied)))
        done = self._actions.get(key)
        if done is not None:
            return done
        per_module: dict[int, tuple[nn.Module, list[int]]] = {id(m): (m, []) for m in self.hooked}
        captured: list[int] = []
        total = 0
        for row in self.rows:
            calls = per_module.get(id(row.module))
            if not row.captured:
                if calls is not None:
                    calls[1].append(_RECIPE)
                continue
            numel = math.prod(row.shape)
            if row.name not in self.copied:
                action, size = _KEEP, 4 * numel
            elif row.floats:
                action, size = _COPY32, 4 * numel
            else:
                action, size = _COPY16, 2 * numel
            if 2 * numel > max_layer_bytes or total + size > max_total_bytes:
                action = _SKIP
            else:
                total += size
            calls[1].append(action)
            captured.append(action)
        done = list(per_module.values()), captured
        if len(self._actions) > 8:
            self._actions.clear()
        self._actions[key] = done
        return done


# One plan per model, for the table it was made from: making it walks the whole module tree and copies
# every batch norm's statistics, about 1 ms for EfficientNet-Lite0 (3% of its forward pass), so it is
# reused while the same table is passed and those tensors are unchanged. (A table describes the model as
# it was when computed: after replacing modules, compute a new one. Hooks on replaced modules would not
# fire, and the capture would fall back to copying every step.)
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


def _derivation_plan(
    steps: list[tuple[str, nn.Module, str]], table: LayerTable, input_shape: tuple[int, ...]
) -> _Plan | None:
    if tuple(table.input_shape) != input_shape or not table.rows:
        return None
    modules = {name: module for name, module, _ in steps}
    rows: list[_Row] = []
    folded: list[Tensor] = []
    for row in table.rows:
        module = modules.get(row.module_name)
        if module is None:
            return None  # the table belongs to another model
        r = _Row(row.name, row.type, row.kind, tuple(row.out_shape), module)
        if row.derived_from is not None and rows and rows[-1].name == row.derived_from:
            # a block ending in its last layer, or dropout (the identity at inference): the same values
            if row.kind == "block" or isinstance(module, nn.modules.dropout._DropoutNd):
                r.how = _SAME
            elif (recipe := _recipe(module)) is not None:
                r.how, r.recipe, r.bound = (_EXACT if recipe.exact else _FLOAT), recipe.fn, recipe.bound
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    folded += _batch_norm_tensors(module)
        rows.append(r)
    head = 0
    for i, r in enumerate(rows):  # each captured row's chain: the rows recomputed from it
        if r.captured:
            head = i
        elif r.how != _SAME:
            rows[head].chain = i - head
            rows[head].floats |= r.how == _FLOAT
    hooked = list({id(r.module): r.module for r in rows if r.captured}.values())
    return _Plan(rows, hooked, folded, _version_sum(folded))


def _capture_planned(
    model: nn.Module,
    x: Tensor,
    plan: _Plan,
    max_layer_bytes: int,
    max_total_bytes: int,
    control: Control | None,
) -> Capture:
    """One pass with the plan's modules' forward wrapped (``_wrap_forwards``). A captured step keeps the
    pass's own output tensor, compacted when first read: a copy during the pass would cost about a quarter
    of EfficientNet-Lite0's forward time. Version counters (bumped by every in-place change, hence
    ``no_grad`` rather than ``inference_mode``, whose tensors have none) show whether a later operation
    changed a kept tensor; if one did, the step goes into ``plan.copied`` and ``_ChangedInPlace`` asks for
    the pass again.

    The note (``hook``) only records what it is given (about 1 µs a call); the steps are named, checked
    against the table and built after the pass."""
    per_module, captured = plan.actions(max_layer_bytes, max_total_bytes)
    todo = {id(m): iter(actions) for m, actions in per_module}
    records: list[tuple[nn.Module, object, object]] = []
    record = records.append

    def hook(module: nn.Module, _args: tuple, output: object) -> None:
        if control is not None:
            control.checkpoint()
        if not isinstance(output, Tensor) and _first_tensor(output) is None:
            return  # (a call without a tensor is no row of the table: it takes no action)
        action = next(todo[id(module)], None)
        if action == _RECIPE:
            return
        if action == _KEEP:
            try:
                record((module, output, output._version))
                return
            except (AttributeError, RuntimeError):  # not a tensor (a tuple ...), or an inference tensor
                out = _first_tensor(output)
                record((module, out, out._version if out is not None and not out.is_inference() else None))
                return
        out = output if isinstance(output, Tensor) else _first_tensor(output)
        if action is None or out is None:  # a call the table does not have: no use going on
            record((module, None, None))
        elif action == _SKIP:
            record((module, out.shape, None))
        else:
            image = out[0].dequantize() if out.is_quantized else out[0]
            record((module, out.shape, _compact(image)[0] if action == _COPY16 else image.float().clone()))

    wrapped = _wrap_forwards(plan.hooked, hook)
    try:
        with eval_mode(model, plan.modules), torch.no_grad():
            logits = model(x)
    finally:
        _unwrap_forwards(wrapped)
    if len(records) != len(captured):
        raise _PlanMismatch(f"{len(records)} calls, the table has {len(captured)}")
    acts: list[Activation] = []
    skipped: list[str] = []
    changed: list[str] = []
    records_iter = iter(zip(records, captured, strict=True))
    head: Activation | None = None
    for row in plan.rows:
        if not row.captured:
            how = row.how
            acts.append(
                Activation(
                    row.name, row.type, row.kind, row.shape, None, acts[-1], row.recipe, None, how, row.bound,
                    None if how == _SAME else head,
                )
            )  # fmt: skip
            continue
        (module, out, payload), action = next(records_iter)
        if module is not row.module or out is None:
            raise _PlanMismatch(row.name)
        act = Activation(row.name, row.type, row.kind, row.shape)
        if action == _KEEP:
            if out.shape[1:] != row.shape:
                raise _PlanMismatch(row.name)
            if payload is None or out._version != payload:
                changed.append(row.name)
            image = out[0]
            act.tensor = image.dequantize() if image.is_quantized else image
        else:
            if out[1:] != row.shape:
                raise _PlanMismatch(row.name)
            if action == _SKIP:
                skipped.append(row.name)
            elif action == _COPY16:
                act.stored = payload
            else:
                act.tensor = payload
        if row.chain:
            head = act
        acts.append(act)
    if changed:
        plan.copied.update(changed)
        raise _ChangedInPlace(", ".join(changed))
    for i, row in enumerate(plan.rows):
        if row.chain:
            acts[i].chain = tuple(weakref.ref(a) for a in acts[i + 1 : i + 1 + row.chain])
    skipped += [a.name for a in acts if a.source is not None and a.too_large]
    return _finish(acts, logits, x, skipped, model)


_NO_OWN_FORWARD = object()


def _wrap_forwards(
    modules: Sequence[nn.Module], note: Callable[[nn.Module, tuple, object], None]
) -> list[tuple[nn.Module, object, Callable]]:
    """Call ``note(module, args, output)`` after each call of these modules, as a forward hook would, by
    giving each module a ``forward`` of its own that wraps its own. A module with a forward hook leaves
    ``Module.__call__``'s fast path for one that walks every kind of hook, about 4 µs a call: 0.5 ms, 3% of
    EfficientNet-Lite0's pass (bench_explorer.py), where the wrapper costs one Python call."""
    wrapped = []
    for module in modules:
        own = module.__dict__.get("forward", _NO_OWN_FORWARD)  # (someone else's wrapper: kept inside)
        inner = module.forward

        def forward(*args: object, _inner: Callable = inner, _module: nn.Module = module, **kwargs: object):
            output = _inner(*args, **kwargs)
            note(_module, args, output)
            return output

        module.__dict__["forward"] = forward
        wrapped.append((module, own, forward))
    return wrapped


def _unwrap_forwards(wrapped: list[tuple[nn.Module, object, Callable]]) -> None:
    for module, own, forward in reversed(wrapped):
        if module.__dict__.get("forward") is not forward:
            continue  # (replaced since: not ours to undo)
        if own is _NO_OWN_FORWARD:
            del module.__dict__["forward"]
        else:
            module.__dict__["forward"] = own


def _finish(
    acts: list[Activation], logits: object, x: Tensor, skipped: list[str], model: nn.Module
) -> Capture:
    logits_t = logits if isinstance(logits, Tensor) else _first_tensor(logits)
    if logits_t is None:
        raise TypeError(f"{type(model).__name__} returned no tensor")
    return Capture(
        acts,
        logits_t[0].detach().float().numpy().copy(),
        x[0].detach().float().numpy().copy(),
        skipped,
    )


def _capture_all(
    model: nn.Module,
    x: Tensor,
    max_layer_bytes: int,
    max_total_bytes: int,
    control: Control | None,
) -> Capture:
    """One pass copying every step as it comes (no table to say which steps can be recomputed)."""
    steps = step_modules(model) if not isinstance(model, torch.jit.ScriptModule) else []
    names = {id(m): (n, k) for n, m, k in steps}
    calls: dict[int, int] = {}
    acts: list[Activation] = []
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
        image = out[0]
        act = Activation(base if n == 1 else f"{base}#{n}", type(module).__name__, kind, tuple(image.shape))
        acts.append(act)
        if act.nbytes > max_layer_bytes or total + act.nbytes > max_total_bytes:
            skipped.append(act.name)
        else:
            act.stored = _compact(image)[0]
            total += act.stored.nbytes

    handles = [m.register_forward_hook(hook) for _, m, _ in steps]
    try:
        with eval_mode(model, list(model.modules())), torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return _finish(acts, logits, x, skipped, model)


def _first_tensor(obj: object) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None
