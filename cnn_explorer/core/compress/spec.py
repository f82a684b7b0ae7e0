"""What a compression run is asked to do and what it reports: plain values shared by the core, the page and
``cnn-explorer compress``.

A run starts from one model (a fine-tuned run, a zoo model, or a weights file), makes *variants* of it
(pruned, quantized, both) and measures each one the same way: its saved file's size on disk, its non-zero
parameters, its CPU latency at batch 1 (interleaved with the original) and its quality. Quality is
**accuracy** when labels exist (a run's validation split, or a labelled image folder) and **agreement**
with the original model's top-1 / top-5 otherwise (on the bundled photos by default); agreement is never
called accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "QUANTIZE_MODES",
    "SWEEP_SPARSITIES",
    "CompressError",
    "CompressReport",
    "CompressSource",
    "CompressSpec",
    "CompressStage",
    "SweepPoint",
    "VariantReport",
    "WeightHistogram",
]

QUANTIZE_MODES = ("int8-dynamic", "int8-static", "fp16")
SWEEP_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9)


class CompressError(ValueError):
    """Bad input or an unsupported combination; the message names the file or the part and says why."""


@dataclass(frozen=True)
class CompressSource:
    """The model to compress and the images to judge it on.

    Exactly one of ``run_dir`` (a fine-tuned run folder: its best checkpoint, its validation split for
    accuracy and its training split for a fine-tune after pruning) or ``model`` (a zoo name, optionally with
    ``weights``, a weights file). ``data``: a labelled image folder (accuracy, and training data for the
    fine-tune), or a folder of unlabelled images (agreement); None with ``model``: the bundled photos."""

    run_dir: Path | None = None
    model: str | None = None
    weights: Path | None = None
    data: Path | None = None


@dataclass(frozen=True)
class CompressSpec:
    """The variants to make. ``prune``: global unstructured magnitude sparsity of the conv and linear
    weights, 0 < p < 1 (None: no pruning); ``per_layer``: (layer, sparsity) pairs pruned each on its own
    (instead of the global one); ``structured``: L1 pruning of whole output channels of the convolutions
    at ``prune`` instead of single weights; ``finetune_epochs``: a short fine-tune after pruning (needs
    labelled training data); ``quantize``: one of QUANTIZE_MODES (applied to the pruned model when both are
    asked for, and to the original too); ``sweep``: also measure quality at every SWEEP_SPARSITIES level of
    global pruning (no fine-tune); ``histogram_layer``: the layer whose weights are histogrammed before and
    after (None: the largest convolution)."""

    prune: float | None = None
    per_layer: tuple[tuple[str, float], ...] = ()
    structured: bool = False
    finetune_epochs: int = 0
    quantize: str | None = None
    sweep: bool = False
    calibration_batches: int = 4
    latency_runs: int = 20
    histogram_layer: str | None = None
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class CompressStage:
    """Progress event: what is being done, ``done`` of ``total`` steps of the whole run."""

    text: str
    done: int
    total: int


@dataclass(frozen=True)
class WeightHistogram:
    """One layer's weights before and after: bin edges and counts (exact zeros counted apart, so the pruned
    zeros show); for an int8 variant, ``levels`` are the distinct dequantized values it can take."""

    layer: str
    variant: str
    edges: tuple[float, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    zeros_before: int
    zeros_after: int
    levels: int | None = None


@dataclass(frozen=True)
class VariantReport:
    """One variant, measured. ``file``: its path relative to the output folder ("compressed/int8.pt");
    ``size_bytes`` is that file's real size on disk. ``latency_ratio``: its median latency over the
    original's, measured interleaved in the same run with the same thread count."""

    name: str  # "fp32", "pruned-50", "pruned-50+ft1", "int8-static", "pruned-50+int8-static", "fp16"
    file: str
    size_bytes: int
    params: int
    nonzero_params: int
    latency_ms_median: float
    latency_ratio: float
    accuracy: float | None = None  # 0..1, with labels
    agreement_top1: float | None = None  # 0..1, share of images whose top-1 equals the original's
    agreement_top5: float | None = None  # 0..1, share whose original top-1 is in this variant's top-5
    layer_sparsity: tuple[tuple[str, float], ...] = ()  # (layer, share of zero weights), conv and linear
    notes: tuple[str, ...] = ()

    @property
    def quality(self) -> float | None:
        return self.accuracy if self.accuracy is not None else self.agreement_top1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layer_sparsity"] = [{"layer": n, "sparsity": s} for n, s in self.layer_sparsity]
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class SweepPoint:
    sparsity: float
    quality: float  # accuracy or agreement_top1, as the report's ``metric`` says
    nonzero_params: int


@dataclass
class CompressReport:
    """Everything one run measured; ``report.json`` is :meth:`to_dict`."""

    base: str  # what was compressed ("run runs/first", "zoo efficientnet_lite0")
    metric: str  # "accuracy" or "agreement"
    images: int  # how many images judged each variant
    threads: int
    quantization_flow: str  # e.g. "torch.ao FX graph mode, onednn backend", "" if nothing was quantized
    variants: list[VariantReport] = field(default_factory=list)
    sweep: list[SweepPoint] = field(default_factory=list)
    histograms: list[WeightHistogram] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def variant(self, name: str) -> VariantReport:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "base": self.base,
            "metric": self.metric,
            "images": self.images,
            "threads": self.threads,
            "quantization_flow": self.quantization_flow,
            "variants": [v.to_dict() for v in self.variants],
            "sweep": [asdict(p) for p in self.sweep],
            "histograms": [asdict(h) for h in self.histograms],
            "notes": list(self.notes),
        }
