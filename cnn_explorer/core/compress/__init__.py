"""The compression lab: pruning and quantization of the user's own model, each variant saved, measured the
same way (file size, non-zero parameters, CPU latency interleaved with the original, accuracy or
agreement) and reported as one table with plots. No Qt: the Compress page and ``cnn-explorer compress``
call :func:`run_compression` and read the same :class:`CompressReport`.

Modules, one job each: ``spec`` (the request and report values), ``check`` (cheap checks), ``base`` (the
model and images), ``prune``, ``finetune``, ``padding`` and ``quantize``, ``variants`` (making them),
``store`` (saving and reopening), ``measure``, ``sweep``, ``histograms``, ``plots``, ``pipeline``.
"""

from cnn_explorer.core.compress.base import Base, load_base
from cnn_explorer.core.compress.check import check_request
from cnn_explorer.core.compress.finetune import finetune_pruned, keep_pruned_zeros
from cnn_explorer.core.compress.histograms import default_layer, weight_histogram
from cnn_explorer.core.compress.measure import latency, predict, quality
from cnn_explorer.core.compress.padding import standardise_same_padding
from cnn_explorer.core.compress.pipeline import COMPRESSED_DIR, REPORT_FILE, run_compression
from cnn_explorer.core.compress.prune import (
    layer_sparsity,
    param_counts,
    prune_global,
    prune_layers,
    prune_structured,
)
from cnn_explorer.core.compress.quantize import (
    choose_engine,
    quantize_dynamic_int8,
    quantize_static_int8,
    to_fp16,
)
from cnn_explorer.core.compress.spec import (
    QUANTIZE_MODES,
    SWEEP_SPARSITIES,
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    CompressStage,
    SweepPoint,
    VariantReport,
    WeightHistogram,
)
from cnn_explorer.core.compress.store import describe, load_compressed, open_compressed, save_variant
from cnn_explorer.core.compress.sweep import sparsity_sweep

__all__ = [
    "COMPRESSED_DIR",
    "QUANTIZE_MODES",
    "REPORT_FILE",
    "SWEEP_SPARSITIES",
    "Base",
    "CompressError",
    "CompressReport",
    "CompressSource",
    "CompressSpec",
    "CompressStage",
    "SweepPoint",
    "VariantReport",
    "WeightHistogram",
    "check_request",
    "choose_engine",
    "default_layer",
    "describe",
    "finetune_pruned",
    "keep_pruned_zeros",
    "latency",
    "layer_sparsity",
    "load_base",
    "load_compressed",
    "open_compressed",
    "param_counts",
    "predict",
    "prune_global",
    "prune_layers",
    "prune_structured",
    "quality",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "run_compression",
    "save_variant",
    "sparsity_sweep",
    "standardise_same_padding",
    "to_fp16",
    "weight_histogram",
]
