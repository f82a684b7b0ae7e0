"""One compression run: load the base, make every variant asked for, save and measure each the same way,
sweep the sparsity, draw the plots and write report.json.

Output folders are treated as the other commands treat ``--out`` (``core.outdir``): created if needed,
checked for writing before any work, and an existing folder is used as it is — this run's files replace
files of the same name. Everything is first written into a staging folder inside it
(``.compress-<pid>-<random>.tmp``, each file itself through a temporary name and a rename) and moved into
place only when the run has finished, so a cancelled or failed run leaves the folder exactly as it was,
with no temporary files; a staging folder left by a killed process is removed by the next run. Files of
an earlier run that this one does not make again stay where they are; report.json lists this run's.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import shutil
from pathlib import Path

import torch

from cnn_explorer.core.compress import quantize as q
from cnn_explorer.core.compress.base import Base, load_base
from cnn_explorer.core.compress.check import check_inputs
from cnn_explorer.core.compress.finetune import finetune_config, finetune_pruned
from cnn_explorer.core.compress.histograms import default_layer, layer_weights, weight_histogram
from cnn_explorer.core.compress.measure import latency, predict, quality
from cnn_explorer.core.compress.plots import histogram_file_name, quality_vs_size_png, sweep_png, weights_png
from cnn_explorer.core.compress.prune import Masks, layer_sparsity, param_counts
from cnn_explorer.core.compress.spec import (
    SWEEP_SPARSITIES,
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    CompressStage,
    VariantReport,
)
from cnn_explorer.core.compress.store import save_variant
from cnn_explorer.core.compress.sweep import sparsity_sweep
from cnn_explorer.core.compress.variants import (
    Made,
    calibration_images,
    make_pruned,
    make_quantized,
    recalibrate,
    recalibration_batches,
    recipe,
)
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir
from cnn_explorer.core.runs import pid_alive, write_json_atomic

__all__ = ["COMPRESSED_DIR", "REPORT_FILE", "run_compression"]

COMPRESSED_DIR = "compressed"
REPORT_FILE = "report.json"
_STAGING = re.compile(r"^\.compress-(\d+)-[0-9a-f]+\.tmp$")


def _steps(spec: CompressSpec) -> int:
    pruning = spec.prune is not None or bool(spec.per_layer)
    quantized = spec.quantize is not None
    return (
        2  # the base, the fp32 copy
        + pruning
        + (pruning and spec.finetune_epochs > 0)
        + quantized * (1 + pruning)
        + (len(SWEEP_SPARSITIES) if spec.sweep else 0)
        + 1  # plots and report
    )


class _Run:
    def __init__(self, base: Base, spec: CompressSpec, stage: Path, control: Control | None, total: int):
        self.base, self.spec, self.stage, self.control, self.total = base, spec, stage, control, total
        self.done = 1
        self.reference = predict(base.model, base.images, control=control)
        self.x = base.images.first()
        layer = spec.histogram_layer or default_layer(base.model)
        self.before = layer_weights(base.model, layer)
        self.threads = torch.get_num_threads()
        self.report = CompressReport(
            base=base.description,
            metric=base.metric,
            images=len(base.images),
            threads=self.threads,
            quantization_flow="",
            notes=[
                f"Quality measured on {base.images.where}.",
                f"Latency: median of {spec.latency_runs} runs at batch 1 on the CPU ({self.threads} "
                "threads), interleaved with the original's runs after a warm-up.",
                *base.notes,
            ],
        )
        self.layer = layer

    def stage_event(self, text: str) -> None:
        checkpoint(self.control)
        report(self.control, CompressStage(text, self.done, self.total))
        self.done += 1

    def add(self, made: Made) -> VariantReport:
        """Save, measure and record one variant."""
        base, spec = self.base, self.spec
        relative = f"{COMPRESSED_DIR}/{made.name}.pt"
        path = self.stage / relative
        size = save_variant(
            path,
            made.stored if made.stored is not None else made.model,
            arch=base.arch,
            class_names=base.class_names,
            preprocess=base.preprocess,
            recipe=made.recipe,
            probe_layer=base.probe_layer,
        )
        checkpoint(self.control)
        found = predict(made.model, base.images, engine=made.engine, control=self.control)
        qual = quality(found, self.reference, base.images.labels)
        lat = latency(
            base.model, made.model, self.x, spec.latency_runs, engine=made.engine, control=self.control
        )
        params, nonzero = param_counts(made.model)
        variant = VariantReport(
            name=made.name,
            file=relative,
            size_bytes=size,
            params=params,
            nonzero_params=nonzero,
            latency_ms_median=lat.median_ms,
            latency_ratio=lat.ratio,
            accuracy=qual.accuracy,
            agreement_top1=qual.agreement_top1,
            agreement_top5=qual.agreement_top5,
            layer_sparsity=tuple(layer_sparsity(made.model)),
            notes=tuple(made.notes),
        )
        self.report.variants.append(variant)
        after = layer_weights(made.model, self.layer)
        if made.name != "fp32" and self.before is not None and after is not None:
            self.report.histograms.append(weight_histogram(self.layer, made.name, self.before, after))
        sidecar = {
            "checkpoint": f"{made.name}.pt",
            "arch": base.arch,
            "classes": len(base.class_names),
            "compression": made.recipe,
            "measured": variant.to_dict(),
        }
        write_json_atomic(path.with_suffix(".json"), sidecar)
        return variant


def _stale_staging(out: Path) -> None:
    for entry in out.iterdir():
        m = _STAGING.match(entry.name)
        if m and entry.is_dir() and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _publish(stage: Path, out: Path) -> None:
    """Move the finished files into ``out``: the models first, report.json last. An earlier run's plots
    that this one does not draw again are removed, so the folder's pictures are this report's."""
    for old in (*out.glob("weights_*.png"), out / "sweep.png", out / "quality_vs_size.png"):
        if old.is_file() and not (stage / old.name).exists():
            old.unlink()
    (out / COMPRESSED_DIR).mkdir(exist_ok=True)
    for f in sorted((stage / COMPRESSED_DIR).iterdir()):
        os.replace(f, out / COMPRESSED_DIR / f.name)
    for f in sorted(stage.iterdir()):
        if f.is_file() and f.name != REPORT_FILE:
            os.replace(f, out / f.name)
    os.replace(stage / REPORT_FILE, out / REPORT_FILE)


def _finetuned(pruned: Made, masks: Masks, base: Base, spec: CompressSpec, control: Control | None) -> Made:
    tuned, problem = finetune_pruned(copy.deepcopy(pruned.model), masks, base, spec, control=control)
    epochs = spec.finetune_epochs
    name = f"{pruned.name}+ft{epochs}"
    strategy = finetune_config(base, spec, base.train_scan.root).strategy
    note = (
        f"Fine-tuned for {epochs} epoch(s) ({strategy}) on {len(base.train_scan.train)} training images with "
        "the pruned weights held at zero; the last epoch's weights."
    )
    notes = [*pruned.notes, note] + ([f"The fine-tune stopped early: {problem}"] if problem else [])
    return Made(
        name,
        tuned,
        {**pruned.recipe, "variant": name, "finetune_epochs": epochs},
        notes=notes,
    )


def _make_all(run: _Run) -> None:
    base, spec, control = run.base, run.spec, run.control
    run.stage_event("Saving and measuring the original (fp32)")
    fp32 = Made(
        "fp32", base.model, recipe(base, "fp32"), notes=["The original model, saved as a checkpoint."]
    )
    run.add(fp32)
    final = None
    if spec.prune is not None or spec.per_layer:
        run.stage_event("Pruning")
        final, masks = make_pruned(base, spec)
        recalibrate(final, base, spec, control)
        run.add(final)
        if spec.finetune_epochs:
            run.stage_event(f"Fine-tuning the pruned model for {spec.finetune_epochs} epoch(s)")
            final = _finetuned(final, masks, base, spec, control)
            run.add(final)
    if spec.quantize is not None:
        calibration = calibration_images(base, spec, control) if spec.quantize == "int8-static" else None
        for source in (None, final) if final is not None else (None,):
            what = "the original" if source is None else source.name
            run.stage_event(f"Quantizing {what} ({spec.quantize})")
            made = make_quantized(source, base, spec, spec.quantize, calibration, control)
            run.report.quantization_flow = made.recipe["quantization_flow"]
            run.add(made)
    if spec.sweep:
        batches = recalibration_batches(base, spec, control)
        run.report.sweep = sparsity_sweep(
            base.model,
            base.images,
            run.reference,
            base.images.labels,
            on_level=lambda level: run.stage_event(f"Sparsity sweep: {level:.0%}"),
            recalibrate=batches,
            control=control,
        )


def _early_checks(base: Base, spec: CompressSpec) -> None:
    """What would fail late is asked first: an engine for int8, a model FX can trace for static int8."""
    if spec.quantize in ("int8-static", "int8-dynamic"):
        q.choose_engine()
    if spec.quantize == "int8-static":
        q.check_static(base.model)


def run_compression(
    source: CompressSource, spec: CompressSpec, out_dir: Path, *, control: Control | None = None
) -> CompressReport:
    """Make, save and measure the variants into ``out_dir``; CompressError for bad input, Cancelled when
    cancelled (the folder is then as it was)."""
    check_inputs(source, spec)  # the layer names are checked once the model is loaded
    if source.run_dir is not None and Path(out_dir).expanduser().resolve() == source.run_dir.resolve():
        raise CompressError(
            f"The output folder is the run folder {source.run_dir} itself: choose another (e.g. "
            f"{source.run_dir / 'compressed'}) so the run's own files stay as they are."
        )
    try:
        out = prepare_output_dir(out_dir)
    except OutputDirError as exc:
        raise CompressError(str(exc)) from None
    _stale_staging(out)
    total = _steps(spec)
    report(control, CompressStage("Loading the model and its images", 0, total))
    torch.manual_seed(spec.seed)
    base = load_base(source, spec, control=control)
    _early_checks(base, spec)
    stage = out / f".compress-{os.getpid()}-{secrets.token_hex(4)}.tmp"
    (stage / COMPRESSED_DIR).mkdir(parents=True)
    try:
        run = _Run(base, spec, stage, control, total)
        _make_all(run)
        run.stage_event("Drawing the plots and writing the report")
        quality_vs_size_png(stage / "quality_vs_size.png", run.report)
        sweep_png(stage / "sweep.png", run.report)
        weights_png(stage / histogram_file_name(run.layer), run.report.histograms)
        fp32 = run.report.variant("fp32")
        if not 0.8 <= fp32.latency_ratio <= 1.25:  # the original timed against itself
            run.report.notes.append(
                f"Timing was noisy: the original timed against itself came out at {fp32.latency_ratio:.2f}×, "
                "so the latency ratios are uncertain; run again on a quieter machine or with more runs."
            )
        write_json_atomic(stage / REPORT_FILE, run.report.to_dict())
        _publish(stage, out)
        report(control, CompressStage("Done", total, total))
        return run.report
    finally:
        shutil.rmtree(stage, ignore_errors=True)
