"""Making the variants: names, the pruned and quantized models, and the recipe each one's file records."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cnn_explorer.core.compress import quantize as q
from cnn_explorer.core.compress.base import Base
from cnn_explorer.core.compress.batchnorm import has_batch_norm, recalibrate_batch_norm
from cnn_explorer.core.compress.evalset import EvalImages
from cnn_explorer.core.compress.padding import same_padding_convs
from cnn_explorer.core.compress.prune import (
    Masks,
    layer_sparsity,
    prune_global,
    prune_layers,
    prune_structured,
    weight_tensors,
)
from cnn_explorer.core.compress.spec import CompressSpec
from cnn_explorer.core.control import Control, checkpoint

__all__ = ["Made", "achieved_sparsity", "calibration_images", "make_pruned", "make_quantized", "pruned_name"]


@dataclass
class Made:
    """A variant before it is saved and measured. ``model`` runs (fp16: upcast); ``stored`` is saved."""

    name: str
    model: nn.Module
    recipe: dict
    stored: nn.Module | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def engine(self) -> str | None:
        return self.recipe.get("engine")


def _pct(p: float) -> str:
    return f"{round(100 * p, 1):g}"


def pruned_name(spec: CompressSpec) -> str:
    kind = "structured" if spec.structured else "pruned"
    return f"{kind}-per-layer" if spec.per_layer else f"{kind}-{_pct(float(spec.prune or 0))}"


def achieved_sparsity(model: nn.Module) -> float:
    """Share of all conv and linear weights that are exactly zero."""
    weights = [w for _, w in weight_tensors(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(1, total)


def recipe(base: Base, name: str, **values: object) -> dict:
    """What a variant's file records (see store): enough to rebuild its structure and say what it is."""
    pre = base.preprocess
    out: dict = {
        "variant": name,
        "quantize": None,
        "engine": None,
        "standardised_same_padding": False,
        "sparsity": 0.0,
        "pruning": None,
        "finetune_epochs": 0,
        "base": base.description,
        "input_shape": [1, pre.channels, pre.crop, pre.crop],
        "torch": str(torch.__version__),
    }
    if base.probe_layer:
        out["probe_in_features"] = int(base.model.fc.in_features)
    out.update(values)
    return out


def make_pruned(base: Base, spec: CompressSpec) -> tuple[Made, Masks]:
    model = copy.deepcopy(base.model)
    if spec.per_layer:
        masks = prune_layers(model, spec.per_layer, structured=spec.structured)
        how = "per-layer " + ("channel (structured L1)" if spec.structured else "magnitude")
    elif spec.structured:
        masks = prune_structured(model, float(spec.prune or 0))
        how = "structured L1 channel"
    else:
        masks = prune_global(model, float(spec.prune or 0))
        how = "global magnitude"
    name = pruned_name(spec)
    achieved = achieved_sparsity(model)
    notes = [f"{how} pruning: {achieved:.1%} of the conv and linear weights are zero."]
    emptied = [f"{n} {s:.0%}" for n, s in layer_sparsity(model) if s >= 0.9]
    if emptied and not spec.structured:
        notes.append(f"Layers left almost empty: {', '.join(emptied[:5])} (small weights lose most).")
    if spec.structured:
        notes.append("Whole output channels are zeroed, not cut out: the tensors keep their shapes.")
    notes.append(
        "Zeros are stored like any other weight, so the file keeps the fp32 size; dense CPU kernels "
        "take as long on them."
    )
    pruning = "per-layer" if spec.per_layer else ("structured" if spec.structured else "global")
    r = recipe(
        base,
        name,
        sparsity=achieved,
        pruning=pruning,
        requested_sparsity=spec.prune,
        per_layer=[[n, s] for n, s in spec.per_layer],
    )
    return Made(name, model, r, notes=notes), masks


def recalibration_batches(base: Base, spec: CompressSpec, control: Control | None) -> list[Tensor]:
    """Batches of training images for batch-norm statistics; [] without training images or batch norms."""
    if base.train_scan is None or not base.train_scan.train or not has_batch_norm(base.model):
        return []
    images, _ = calibration_images(base, spec, control)
    return images.calibration(spec.calibration_batches)


def recalibrate(made: Made, base: Base, spec: CompressSpec, control: Control | None) -> None:
    """A pruned variant's batch norms measure their statistics again (see ``batchnorm``); its notes say so."""
    if not has_batch_norm(made.model):
        return
    batches = recalibration_batches(base, spec, control)
    seen = recalibrate_batch_norm(made.model, batches, control=control) if batches else 0
    if seen:
        made.notes.append(
            f"Batch-norm statistics measured again on {seen} training images after pruning (no labels, "
            "no weight changes): the pruned layers' outputs have other means and variances."
        )
        made.recipe["batch_norm_recalibrated_on"] = seen
    else:
        made.notes.append(
            "Batch-norm statistics not measured again: there are no training images (judging images must "
            "not tune the model)."
        )


def calibration_images(base: Base, spec: CompressSpec, control: Control | None) -> tuple[EvalImages, str]:
    """The images static int8 calibrates on: training images when there are (a seeded sample), else the
    images the variants are judged on."""
    n = spec.calibration_batches * spec.batch_size
    if base.train_scan is not None and base.train_scan.train:
        pool = list(base.train_scan.train)
        random.Random(spec.seed).shuffle(pool)
        images = EvalImages(
            pool[:n],
            base.preprocess,
            labelled=False,
            where="the training images",
            batch_size=spec.batch_size,
            control=control,
        )
        return images, f"{len(images)} training images"
    return base.images, f"{min(n, len(base.images))} of {base.images.where}"


def make_quantized(
    source: Made | None,
    base: Base,
    spec: CompressSpec,
    mode: str,
    calibration: tuple[EvalImages, str],
    control: Control | None = None,
) -> Made:
    """``mode`` applied to ``source`` (a pruned variant; None: the original)."""
    model = source.model if source is not None else base.model
    name = f"{source.name}+{mode}" if source is not None else mode
    carried = {k: source.recipe[k] for k in ("sparsity", "pruning", "finetune_epochs")} if source else {}
    flow_engine = None if mode == "fp16" else q.choose_engine()
    r = recipe(
        base,
        name,
        quantize=mode,
        engine=flow_engine,
        quantization_flow=q.flow_text(mode, flow_engine),
        **carried,
    )
    if mode == "fp16":
        stored, computed = q.to_fp16(model)
        return Made(
            name,
            computed,
            r,
            stored=stored,
            notes=[
                "Weights stored as float16 and computed in float32 on the CPU: a smaller file, no speed-up."
            ],
        )
    if mode == "int8-dynamic":
        quantized = q.quantize_dynamic_int8(model, flow_engine)
        n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
        return Made(
            name,
            quantized,
            r,
            notes=[
                f"{n_linear} Linear layer(s) hold int8 weights, activations are quantized per batch "
                "as they run; convolutions stay float32."
            ],
        )
    images, what = calibration
    batches = images.calibration(spec.calibration_batches)
    padded = len(same_padding_convs(model))
    stem = q.first_conv(model)
    float_layers = [stem] if stem is not None else []
    quantized = q.quantize_static_int8(
        model, flow_engine, batches, on_batch=lambda: checkpoint(control), float_layers=float_layers
    )
    r["standardised_same_padding"] = padded > 0
    r["float_layers"] = float_layers
    notes = [
        f"Calibrated on {what} ({len(batches)} batch(es)); convolutions fused with their BatchNorm, "
        "so the int8 weights include its scale."
    ]
    if stem is not None:
        notes.append(f"The first convolution ({stem}) stays float32: it sees the raw pixels.")
    if padded:
        notes.append(
            f"{padded} same-padding convolutions were rewritten as standard ones first (same outputs)."
        )
    return Made(name, quantized, r, notes=notes)
