"""Compressed models as CNN Explorer checkpoints, and how they are opened again.

A variant is saved like ``zoo.save_checkpoint`` saves a fine-tuned model (``format``, ``arch``,
``class_names``, ``preprocess``, ``state_dict``; ``probe_layer`` for a linear probe) plus ``compression``,
the recipe that made it. Everything in it loads with ``torch.load(weights_only=True)``: a quantized model's
state_dict holds quantized tensors, scales and packed (weight, bias) tuples, not modules. Opening one
never unpickles a module: the structure is built again from the recipe — the zoo skeleton with its head
sized by the class names, the same-padding convolutions standardised, then ``prepare_fx``/``convert_fx``
(or ``quantize_dynamic``) with the recorded engine — and the state_dict loaded into it.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress import quantize as q
from cnn_explorer.core.compress.padding import standardise_same_padding
from cnn_explorer.core.transfer.layers import LinearProbeModel

__all__ = ["describe", "load_compressed", "open_compressed", "save_variant"]


def save_variant(
    path: Path,
    model: nn.Module,
    *,
    arch: str,
    class_names: list[str],
    preprocess: zoo.Preprocess,
    recipe: dict[str, Any],
    probe_layer: str | None = None,
) -> int:
    """Write the variant to ``path`` (a temporary name, then renamed); returns its size on disk."""
    raw = model.state_dict()
    state = OrderedDict((k, v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in raw.items())
    if hasattr(raw, "_metadata"):  # module versions: quantized modules read their entries by version
        state._metadata = raw._metadata  # type: ignore[attr-defined]
    payload: dict[str, Any] = {
        "format": zoo.CHECKPOINT_FORMAT,
        "arch": arch,
        "class_names": list(class_names),
        "preprocess": preprocess.to_dict(),
        "state_dict": state,
        "compression": dict(recipe),
    }
    if probe_layer:
        payload["probe_layer"] = probe_layer
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return os.stat(path).st_size


def _skeleton(ckpt: dict, recipe: dict) -> nn.Module:
    """The architecture, weightless (meta device), with the checkpoint's number of outputs."""
    n = len(ckpt["class_names"])
    model = zoo.skeleton(str(ckpt["arch"]))
    if isinstance(ckpt.get("probe_layer"), str):
        return LinearProbeModel(model, ckpt["probe_layer"], n, int(recipe["probe_in_features"])).to("meta")
    if int(zoo.classifier_head(model).weight.shape[0]) != n:
        zoo.replace_head(model, n)
    return model


def _materialised(model: nn.Module) -> nn.Module:
    """Real, deterministic storage for a skeleton (zeros; BatchNorm variance 1) that a quantization flow
    can run on; the checkpoint's values replace them."""
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.running_var.fill_(1.0)
    return model.eval()


def _structure(ckpt: dict, recipe: dict) -> nn.Module:
    """The module the recorded state_dict belongs to, before loading it."""
    mode = recipe.get("quantize")
    skeleton = _skeleton(ckpt, recipe)
    if mode not in ("int8-static", "int8-dynamic"):
        return skeleton
    model = _materialised(skeleton)
    engine = str(recipe.get("engine") or "")
    if engine not in torch.backends.quantized.supported_engines:
        engine = q.choose_engine()
    if recipe.get("standardised_same_padding"):
        standardise_same_padding(model)
    if mode == "int8-dynamic":
        return q.quantize_dynamic_int8(model, engine)
    shape = [int(v) for v in recipe["input_shape"]]
    float_layers = [str(n) for n in recipe.get("float_layers", [])]
    prepared = q.prepare_static(model, engine, torch.zeros(shape), float_layers)
    return q.convert_static(prepared, engine)


def load_compressed(source: str | os.PathLike[str] | dict, *, name: str = "the checkpoint") -> nn.Module:
    """The model of a compressed checkpoint (a path, or the checkpoint as read with weights_only=True, then
    ``name`` is its file's name for messages), in eval mode on the CPU; fp16 weights come back as float32.
    zoo.ModelLoadError for a damaged one."""
    if isinstance(source, dict):
        ckpt = source
    else:
        path = Path(source)
        ckpt, name = zoo.read_checkpoint(path), path.name
    recipe = ckpt.get("compression")
    if not isinstance(recipe, dict):
        raise zoo.ModelLoadError(f"{name} is not a compressed model (it has no 'compression' record)")
    state = ckpt["state_dict"]
    try:
        model = _structure(ckpt, recipe)
        engine = recipe.get("engine") if recipe.get("quantize") in ("int8-static", "int8-dynamic") else None
        with q.engine(engine):
            if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
                model.load_state_dict(state, strict=True, assign=True)
            else:
                model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, zoo.ModelLoadError) as exc:
        text = str(exc).strip().splitlines()
        raise zoo.ModelLoadError(
            f"Cannot open {name}: its compressed weights do not fit the recorded recipe "
            f"({type(exc).__name__}: {text[0][:300] if text else ''})"
        ) from None
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        raise zoo.ModelLoadError(f"Cannot open {name}: some of its weights are missing")
    return (
        model.float().eval()
        if recipe.get("quantize") not in ("int8-static", "int8-dynamic")
        else model.eval()
    )


def describe(recipe: dict, file_name: str) -> str:
    """The status-line text for an opened variant."""
    mode, engine = recipe.get("quantize"), recipe.get("engine")
    sparsity = recipe.get("sparsity")
    pruned = (
        f", {sparsity:.0%} of its weights pruned" if isinstance(sparsity, (int, float)) and sparsity else ""
    )
    if mode == "int8-static":
        return f"int8 (static, {engine}) from {file_name}{pruned} — weights shown dequantized"
    if mode == "int8-dynamic":
        return f"int8 linear layers (dynamic, {engine}) from {file_name}{pruned} — weights shown dequantized"
    if mode == "fp16":
        return f"fp16 weights from {file_name}{pruned}, upcast to float32 to run on the CPU"
    if pruned:
        return f"pruned model from {file_name}{pruned}"
    return f"fp32 copy from {file_name}"


def open_compressed(path: Path, ckpt: dict) -> zoo.LoadedModel:
    """A compressed checkpoint as the explorer opens models (called by ``zoo.load_model_file``)."""
    try:
        pre = zoo.Preprocess.from_dict(ckpt["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise zoo.ModelLoadError(
            f"Cannot open {path.name}: the checkpoint's preprocessing settings are damaged ({exc!r})"
        ) from None
    model = load_compressed(ckpt, name=path.name)
    names = [str(c) for c in ckpt["class_names"]]
    recipe = ckpt["compression"]
    notes = []
    if recipe.get("quantize") in ("int8-static", "int8-dynamic"):
        notes.append(
            "Quantized layers hold int8 weights; the layer views show them dequantized (scale × (q − zero "
            "point)), and activations between int8 layers are quantized tensors."
        )
    return zoo.LoadedModel(
        model,
        zoo.get_info(str(ckpt["arch"])),
        zoo.WeightsSource.FILE,
        describe(recipe, path.name),
        names,
        pre,
        notes,
        kind=zoo.ModelKind.FINE_TUNED,
    )
