"""Compare mode: two models side by side on the same image, A | B (typically a pretrained model and its
fine-tuned run).

Pure functions for the GUI and the CLI alike:

* :func:`resolve_spec` turns what the user typed (a zoo name, a weights file, a run folder, or the word
  ``pretrained``) into a loaded model with a label for its side;
* :func:`can_compare` says whether two loaded models can be shown side by side, and why not;
* :func:`pair_layers` pairs the two layer tables' rows, by name where the architectures match, otherwise
  by relative depth;
* :func:`weight_changes` measures how far each layer's weights moved from A to B (exactly 0 for frozen
  layers);
* :func:`difference_map` subtracts one channel's maps, B − A.

Each side preprocesses the image for itself, so a grayscale 32×32 LeNet-5 and a 224×224 RGB network can
be compared on the same photo.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control
from cnn_explorer.core.layers import LayerTable, step_modules
from cnn_explorer.core.runs import BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, RunDir
from cnn_explorer.core.training import load_run_model

__all__ = [
    "PRETRAINED",
    "CompareError",
    "LayerPairing",
    "PairingKind",
    "ResolvedModel",
    "SpecKind",
    "WeightChange",
    "can_compare",
    "difference_map",
    "pair_layers",
    "resolve_spec",
    "weight_changes",
]

PRETRAINED = "pretrained"  # the SPEC word for "the starting model of the partner run folder"
_CHUNK = 1 << 22  # elements per float64 slice when measuring weight changes: bounds the extra memory


class CompareError(ValueError):
    """A compare SPEC cannot be used; ``str(err)`` names it and says why."""


# ---------------------------------------------------------------------------------------------------------
# Pairing layers


class PairingKind(enum.Enum):
    BY_NAME = "by-name"  # same layer names in the same order: row i of A is row i of B
    BY_DEPTH = "by-depth"  # different architectures: rows at the same relative depth
    NONE = "none"  # a side without layers (TorchScript): nothing to pair


_PAIRING_LABELS = {
    PairingKind.BY_NAME: "layers paired by name",
    PairingKind.BY_DEPTH: "different architectures: layers paired by relative depth",
    PairingKind.NONE: "no layers to pair: a model without a layer table (TorchScript) shows none",
}


def _scaled(i: int, n_from: int, n_to: int) -> int:
    """round(i · (n_to − 1) / (n_from − 1)) with halves rounded up, in integers (no float ties)."""
    if n_from <= 1:
        return 0
    num, den = i * (n_to - 1), n_from - 1
    return (2 * num + den) // (2 * den)


@dataclass(frozen=True)
class LayerPairing:
    """Which row of B's layer table stands beside each row of A's, and back."""

    kind: PairingKind
    names_a: tuple[str, ...]
    names_b: tuple[str, ...]

    @property
    def by_name(self) -> bool:
        """True when the architectures match: the same layer stands on both sides (and weights compare)."""
        return self.kind is PairingKind.BY_NAME

    @property
    def label(self) -> str:
        """One line for the UI: "layers paired by name", ..."""
        return _PAIRING_LABELS[self.kind]

    def partner_of_a(self, i: int) -> int | None:
        """B's row beside A's row ``i``; None when B has no layers. IndexError for a row A does not have."""
        _check_index(i, len(self.names_a), "A")
        if self.kind is PairingKind.BY_NAME:
            return i
        if not self.names_b:
            return None
        return _scaled(i, len(self.names_a), len(self.names_b))

    def partner_of_b(self, j: int) -> int | None:
        """A's row nearest in relative depth to B's row ``j`` (the inverse of :meth:`partner_of_a`)."""
        _check_index(j, len(self.names_b), "B")
        if self.kind is PairingKind.BY_NAME:
            return j
        if not self.names_a:
            return None
        return _scaled(j, len(self.names_b), len(self.names_a))

    def pairs(self) -> list[tuple[int, int]]:
        """(row of A, row of B) for every row of A that has a partner."""
        out = []
        for i in range(len(self.names_a)):
            j = self.partner_of_a(i)
            if j is not None:
                out.append((i, j))
        return out


def _check_index(i: int, n: int, side: str) -> None:
    if not 0 <= i < n:
        raise IndexError(f"{side} has {n} layer(s); there is no layer {i}")


def pair_layers(names_a: Sequence[str], names_b: Sequence[str]) -> LayerPairing:
    """Pair two layer tables' rows (their names, in table order).

    Where the names are the same in the same order (a fine-tuned model differs from its start only in its
    head's size, not in its names) row i pairs with row i. Otherwise row i of A pairs with row
    ``round(i · (n_b − 1) / (n_a − 1))`` of B (halves round up): first with first, last with last,
    evenly in between.
    A side with no rows (a TorchScript model) pairs nothing (:attr:`PairingKind.NONE`).
    """
    a, b = tuple(names_a), tuple(names_b)
    if not a or not b:
        kind = PairingKind.NONE
    elif a == b:
        kind = PairingKind.BY_NAME
    else:
        kind = PairingKind.BY_DEPTH
    return LayerPairing(kind, a, b)


# ---------------------------------------------------------------------------------------------------------
# Weight changes


@dataclass(frozen=True)
class WeightChange:
    """How far one layer's own parameters moved from A to B: ‖W_B − W_A‖ / ‖W_A‖."""

    layer: str  # the layer table's row name
    params: int  # the layer's parameter count in A
    relative_change: float  # 0.0 exactly for a frozen layer; NaN where it cannot be measured (see note)
    note: str = ""  # why it is NaN: "new head: 1000→3 outputs", "no layer 'x' in B", ...

    @property
    def measured(self) -> bool:
        return not math.isnan(self.relative_change)

    @property
    def unchanged(self) -> bool:
        """True for a layer whose weights are bit for bit the same in B (a frozen layer)."""
        return self.relative_change == 0.0


def _head_or_none(model: nn.Module) -> nn.Module | None:
    try:
        return zoo.classifier_head(model)
    except zoo.ModelLoadError:
        return None


def _shape_text(shape: torch.Size) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


def _squared_norms(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """(Σ (b − a)², Σ a²) over all pairs, in float64, a slice at a time (bounded extra memory)."""
    diff = ref = 0.0
    with torch.no_grad():
        for a, b in pairs:
            fa, fb = a.detach().cpu().reshape(-1), b.detach().cpu().reshape(-1)
            for start in range(0, fa.numel(), _CHUNK):
                da = fa[start : start + _CHUNK].to(torch.float64).numpy()
                d = fb[start : start + _CHUNK].to(torch.float64).numpy() - da
                diff += float(d @ d)
                ref += float(da @ da)
    return diff, ref


def _identical(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
    with torch.no_grad():
        return all(torch.equal(a, b.to(a.device)) for a, b in pairs)


def weight_changes(model_a: nn.Module, model_b: nn.Module, table: LayerTable) -> list[WeightChange]:
    """One :class:`WeightChange` per layer of ``table`` (A's layer table) that has parameters.

    Blocks are skipped (their layers have rows of their own), and so are repeated calls (``#2``) of a
    module. A layer's parameters are all those of its module (a layer's children have no rows), joined into
    one vector. A layer whose weights did not change gives exactly 0.0. Where B's layer of the same name
    has other shapes (a new classifier head) or is missing, the change is NaN and ``note`` says why.
    ValueError when the table names a module ``model_a`` does not have.
    """
    modules_a = _modules_by_name(model_a)
    modules_b = _modules_by_name(model_b)
    heads = (_head_or_none(model_a), _head_or_none(model_b))
    changes: list[WeightChange] = []
    for row in table:
        if row.kind != "layer" or row.call != 1:
            continue
        module_a = modules_a.get(row.module_name)
        if module_a is None:
            raise ValueError(
                f"the layer table does not belong to model A: it has no module '{row.module_name}'"
            )
        if next(module_a.parameters(), None) is not None:
            module_b = modules_b.get(row.module_name) or _cut_away(row.module_name, modules_b)
            changes.append(_layer_change(row.name, module_a, module_b, heads))
    return changes


def _modules_by_name(model: nn.Module) -> dict[str, nn.Module]:
    """Named modules, a linear probe's also under the architecture's own names (without ``backbone.``),
    so that its frozen layers meet their pretrained twins."""
    from cnn_explorer.core.transfer.layers import LinearProbeModel

    named = dict(model.named_modules())
    if isinstance(model, LinearProbeModel):
        named.update((name, m) for name, m in model.backbone.named_modules() if name)
    return named


def _cut_away(name: str, modules: dict[str, nn.Module]) -> nn.Module | None:
    """The ``nn.Identity`` that replaced ``name``'s block in a linear probe, if one did."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        found = modules.get(".".join(parts[:i]))
        if found is not None:
            return found if isinstance(found, nn.Identity) else None
    return None


def _layer_change(
    layer: str,
    module_a: nn.Module,
    module_b: nn.Module | None,
    heads: tuple[nn.Module | None, nn.Module | None],
) -> WeightChange:
    params_a = dict(module_a.named_parameters())
    count = sum(p.numel() for p in params_a.values())
    if module_b is None:
        return WeightChange(layer, count, math.nan, f"no layer '{layer.split('#', 1)[0]}' in B")
    params_b = dict(module_b.named_parameters())
    if isinstance(module_b, nn.Identity) and params_a:
        return WeightChange(layer, count, math.nan, "cut away in B (after a linear probe's layer)")
    if params_b.keys() != params_a.keys():
        only_a, only_b = sorted(params_a.keys() - params_b.keys()), sorted(params_b.keys() - params_a.keys())
        parts = [f"only A has {', '.join(only_a)}"] if only_a else []
        parts += [f"only B has {', '.join(only_b)}"] if only_b else []
        return WeightChange(layer, count, math.nan, f"other parameters in B: {'; '.join(parts)}")
    differing = [k for k in params_a if params_a[k].shape != params_b[k].shape]
    if differing:
        key = "weight" if "weight" in differing else differing[0]
        shape_a, shape_b = params_a[key].shape, params_b[key].shape
        is_head = module_a is heads[0] or module_b is heads[1]
        only_outputs = all(
            params_a[k].ndim == params_b[k].ndim >= 1 and params_a[k].shape[1:] == params_b[k].shape[1:]
            for k in differing
        )
        if is_head and only_outputs:
            note = f"new head: {shape_a[0]}→{shape_b[0]} outputs"
        else:
            note = f"other shape in B: {key} {_shape_text(shape_a)} → {_shape_text(shape_b)}"
        return WeightChange(layer, count, math.nan, note)
    pairs = [(params_a[k], params_b[k]) for k in params_a]
    if _identical(pairs):  # the usual case for a frozen layer, and cheaper than the norms
        return WeightChange(layer, count, 0.0)
    diff, ref = _squared_norms(pairs)
    if diff == 0.0:  # e.g. -0.0 against 0.0
        return WeightChange(layer, count, 0.0)
    if not (math.isfinite(diff) and math.isfinite(ref)):
        return WeightChange(layer, count, math.nan, "the weights are not finite (NaN or infinity)")
    if ref == 0.0:
        return WeightChange(
            layer, count, math.nan, f"A's weights are all zero (B's differ by {math.sqrt(diff):.4g})"
        )
    return WeightChange(layer, count, math.sqrt(diff) / math.sqrt(ref))


def difference_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """B − A of one channel's maps (or any two arrays of one shape), as float32.

    ValueError when the shapes differ: maps of layers at different resolutions do not subtract.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"cannot subtract maps of different shapes: A is {a.shape}, B is {b.shape}")
    return b.astype(np.float32) - a.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# What the user typed -> a model for one side


class SpecKind(enum.Enum):
    ZOO = "zoo"  # a model name with its pretrained (or, where none exist, random) weights
    FILE = "file"  # a weights file: checkpoint, state_dict, safetensors or TorchScript
    RUN = "run"  # a run folder: its best checkpoint with the run's class names
    PRETRAINED = "pretrained"  # the partner run's starting model


@dataclass(frozen=True)
class ResolvedModel:
    """A loaded model for one side of the comparison, with the words that say what it is."""

    loaded: zoo.LoadedModel
    label: str  # "EfficientNet-Lite0 (pretrained)", "run 20260101-120000_lenet5_feature-extractor"
    kind: SpecKind
    spec: str  # what the user typed
    notes: tuple[str, ...] = field(default=())  # caveats worth showing, e.g. a random "starting model"

    def titled(self, side: str) -> str:
        """The label with its side: "A: EfficientNet-Lite0 (pretrained)"."""
        return f"{side}: {self.label}"


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def _zoo_label(loaded: zoo.LoadedModel) -> str:
    return f"{loaded.info.title} ({'pretrained' if loaded.trained else 'untrained'})"


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~")) or bool(Path(spec).suffix)


def resolve_spec(
    spec: str,
    *,
    partner: str | None = None,
    allow_download: bool,
    trust_code: bool,
    control: Control | None = None,
) -> ResolvedModel:
    """Load the model a compare SPEC names.

    A SPEC is, in this order: the word ``pretrained`` (the starting model of ``partner``, which must be a
    run folder: its config.json's model with the zoo's pretrained weights); a zoo model name (write
    ``./name`` for a file or folder of that name); a run folder (its best.pt, with the run's class names);
    or a weights file (CNN Explorer checkpoint, state_dict .pth/.pt, .safetensors, or TorchScript, which
    needs ``trust_code``).

    Raises :class:`CompareError` for a SPEC that names nothing usable, ``zoo.ModelLoadError`` for a file
    that cannot be loaded (:class:`~cnn_explorer.core.zoo.UntrustedCodeError` for TorchScript without
    ``trust_code``), ``RunDirError`` for a run folder that cannot be read, and ``Cancelled`` when
    ``control`` is cancelled during a download.
    """
    text = spec.strip()
    if not text:
        raise CompareError("A model SPEC is empty: give a model name, a weights file or a run folder.")
    if text == PRETRAINED:
        return _resolve_pretrained(partner, allow_download=allow_download, control=control)
    known = {info.name for info in zoo.available_models()}
    if text in known:
        loaded = zoo.load_model(text, allow_download=allow_download, control=control)
        return ResolvedModel(loaded, _zoo_label(loaded), SpecKind.ZOO, spec)
    path = Path(text).expanduser()
    if path.is_dir():
        if not _is_run_folder(path) and not any(
            (path / f).is_file() for f in (BEST_CHECKPOINT, LAST_CHECKPOINT)
        ):
            raise CompareError(
                f"{path} is a folder but not a run folder (it has no {CONFIG_FILE} or {BEST_CHECKPOINT})."
            )
        loaded = load_run_model(path, which="best", trust_code=trust_code)
        return ResolvedModel(loaded, f"run {path.resolve().name}", SpecKind.RUN, spec, tuple(loaded.notes))
    if path.exists():
        loaded = zoo.load_model_file(path, control=control, trust_code=trust_code)
        return ResolvedModel(loaded, f"{loaded.info.title} from {path.name}", SpecKind.FILE, spec)
    if _looks_like_path(text):
        raise CompareError(f"Cannot open {path}: no such file or folder.")
    raise CompareError(
        f"'{text}' is neither a model name nor an existing file or run folder. "
        f"Models: {', '.join(sorted(known))}."
    )


def _resolve_pretrained(
    partner: str | None, *, allow_download: bool, control: Control | None
) -> ResolvedModel:
    if partner is None or partner.strip() == PRETRAINED:
        raise CompareError(
            f"'{PRETRAINED}' means the starting model of the other side's run folder, but the other side "
            "is not a run folder."
        )
    run = RunDir(Path(partner.strip()).expanduser())
    if not _is_run_folder(run.path):
        raise CompareError(
            f"'{PRETRAINED}' means the starting model of the other side's run folder, but {partner} is not "
            f"a run folder (no {CONFIG_FILE})."
        )
    config = run.read_config()
    name = config.get("model")
    if not isinstance(name, str):
        raise CompareError(f"{run.path / CONFIG_FILE} does not say which model the run started from.")
    try:
        loaded = zoo.load_model(name, allow_download=allow_download, control=control)
    except zoo.ModelLoadError as exc:
        raise CompareError(f"{run.path / CONFIG_FILE}: {exc}") from None
    notes: list[str] = []
    if config.get("strategy") == "scratch":
        notes.append(
            f"The run {run.path.name} trained from scratch: it started from random weights, not from "
            f"the pretrained {loaded.info.title}."
        )
    elif not loaded.trained:
        notes.append(
            f"{loaded.info.title} has no pretrained weights here, and the random weights the run "
            "started from were not kept: this is another random model, so every layer differs."
        )
    return ResolvedModel(loaded, _zoo_label(loaded), SpecKind.PRETRAINED, PRETRAINED, tuple(notes))


# ---------------------------------------------------------------------------------------------------------
# Can these two stand side by side?


def _shows_layers(model: nn.Module) -> bool:
    # The layer table's own test: a compiled TorchScript module has no hooks and so no rows.
    return not isinstance(model, torch.jit.ScriptModule) and bool(step_modules(model))


def can_compare(a: zoo.LoadedModel, b: zoo.LoadedModel) -> str | None:
    """None when the two models can be shown side by side on one image, else the reason why not.

    Different architectures, input sizes, input channels (grayscale or RGB) and class lists are all fine:
    each side preprocesses the image for itself, layers pair by relative depth, and each side shows its
    own class names. What cannot be compared is a side that shows no layers: a TorchScript model is one
    compiled program with no layer table, so there are no feature maps to put beside the other side's.
    """
    missing = [side for side, m in (("A", a), ("B", b)) if not _shows_layers(m.model)]
    if len(missing) == 2:
        return (
            f"Neither model shows its layers (A: {a.info.title}, B: {b.info.title} are TorchScript programs, "
            "which run as one compiled piece): there are no feature maps to put side by side."
        )
    if missing:
        side = missing[0]
        title = (a if side == "A" else b).info.title
        return (
            f"{side} ({title}) is a TorchScript program, which runs as one compiled piece and shows no "
            f"layers: there is nothing to put beside the other side's feature maps. Open {side} as a "
            "state_dict or checkpoint of a zoo model instead."
        )
    return None
