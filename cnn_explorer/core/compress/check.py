"""The cheap checks of a compression request, before anything is loaded: what the command line answers with
exit code 2 and the page shows beside its form. Only a per-layer sparsity or a histogram layer needs the
model's layer names; a zoo model gives them from its weightless skeleton, a file or a run by loading it."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.spec import QUANTIZE_MODES, CompressError, CompressSource, CompressSpec
from cnn_explorer.core.images import is_image_file
from cnn_explorer.core.runs import RunDir

__all__ = [
    "check_inputs",
    "check_layer_names",
    "check_request",
    "check_source",
    "check_spec",
    "class_folders",
    "has_images",
    "image_files",
    "layers_of",
    "load_source_model",
    "run_checkpoint",
]


def _walk_images(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        yield from (Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_file(f))


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (by extension; hidden names skipped), sorted."""
    return sorted(_walk_images(folder))


def has_images(folder: Path) -> bool:
    """Whether ``folder`` holds at least one image file (stops at the first)."""
    return next(_walk_images(folder), None) is not None


def class_folders(folder: Path) -> list[str]:
    """The sub-folders of ``folder`` that hold images (a labelled, ImageFolder-style dataset has two or
    more; its train/ and val/ parts count through their own class folders)."""
    try:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    except OSError:
        return []
    names = {p.name.lower() for p in subdirs}
    if {"train", "val"} <= names or {"train", "valid"} <= names or {"train", "validation"} <= names:
        train = next(p for p in subdirs if p.name.lower() in ("train", "training"))
        return class_folders(train)
    return [p.name for p in subdirs if has_images(p)]


def run_checkpoint(run_dir: Path) -> Path:
    """The run's best.pt (or last.pt if it has no best one); CompressError naming what is missing."""
    run = RunDir(run_dir)
    if not run.path.exists():
        raise CompressError(f"The run folder {run.path} does not exist.")
    if not run.path.is_dir():
        raise CompressError(f"{run.path} is a file, not a run folder.")
    if not run.exists():
        raise CompressError(f"{run.path} is not a run folder: it has no config.json.")
    for path in (run.best_checkpoint, run.last_checkpoint):
        if path.is_file():
            return path
    raise CompressError(f"The run in {run.path} has no checkpoint (best.pt or last.pt) yet.")


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        raise CompressError(f"The image folder {folder} does not exist.")
    if not folder.is_dir():
        raise CompressError(f"{folder} is a file; give a folder of images.")
    if not has_images(folder):
        raise CompressError(
            f"The folder {folder} holds no images (looked for PNG, JPEG, BMP, GIF, TIFF, WebP)."
        )


def check_source(source: CompressSource) -> None:
    if (source.run_dir is None) == (source.model is None):
        which = "both" if source.run_dir is not None else "neither"
        raise CompressError(f"Give either a run folder or a model name to compress, not {which}.")
    if source.run_dir is not None:
        if source.weights is not None:
            raise CompressError("A weights file goes with a model name; a run folder brings its own weights.")
        run_checkpoint(Path(source.run_dir))
    else:
        try:
            zoo.get_info(str(source.model))
        except zoo.ModelLoadError as exc:
            raise CompressError(str(exc)) from None
        if source.weights is not None:
            weights = Path(source.weights)
            if not weights.is_file():
                why = "is a folder" if weights.is_dir() else "does not exist"
                raise CompressError(f"The weights file {weights} {why}.")
    if source.data is not None:
        _check_folder(Path(source.data))


def _sparsity_ok(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0.0 < float(value) < 1.0


def check_spec(spec: CompressSpec) -> None:
    if spec.prune is not None and not _sparsity_ok(spec.prune):
        raise CompressError(f"The sparsity must be between 0 and 1 (both excluded), not {spec.prune}.")
    for name, value in spec.per_layer:
        if not _sparsity_ok(value):
            raise CompressError(
                f"The sparsity of layer '{name}' must be between 0 and 1 (excluded), not {value}."
            )
    if spec.per_layer and spec.prune is not None:
        raise CompressError("Give either one global sparsity or per-layer sparsities, not both.")
    if spec.structured and spec.prune is None and not spec.per_layer:
        raise CompressError("Structured pruning needs a sparsity (the share of channels to remove).")
    if spec.finetune_epochs < 0:
        raise CompressError(f"The fine-tune epochs must not be negative, not {spec.finetune_epochs}.")
    if spec.finetune_epochs and spec.prune is None and not spec.per_layer:
        raise CompressError("A fine-tune follows pruning: give a sparsity as well.")
    if spec.quantize is not None and spec.quantize not in QUANTIZE_MODES:
        raise CompressError(
            f"Unknown quantization '{spec.quantize}'; choose one of {', '.join(QUANTIZE_MODES)}."
        )
    for what, value in (
        ("calibration batches", spec.calibration_batches),
        ("latency runs", spec.latency_runs),
        ("batch size", spec.batch_size),
    ):
        if value < 1:
            raise CompressError(f"The number of {what} must be at least 1, not {value}.")


def load_source_model(source: CompressSource) -> zoo.LoadedModel:
    """The model to compress (a run's best checkpoint, or a zoo model with its own or the given weights,
    never downloaded); CompressError for one that cannot be loaded or is not a module tree."""
    from cnn_explorer.core.training import load_run_model

    try:
        if source.run_dir is not None:
            loaded = load_run_model(source.run_dir)
        else:
            loaded = zoo.load_model(str(source.model), weights_file=source.weights, allow_download=False)
    except (zoo.ModelLoadError, OSError) as exc:
        raise CompressError(str(exc)) from None
    if loaded.kind is zoo.ModelKind.TORCHSCRIPT:
        raise CompressError(
            f"{loaded.info.title} is a TorchScript program; only PyTorch modules can be compressed."
        )
    return loaded


def layers_of(source: CompressSource) -> tuple[str, dict[str, nn.Module]]:
    """(what the model is called, {layer name: conv or linear module}) without loading weights when a
    zoo skeleton will do."""
    from cnn_explorer.core.compress.prune import prunable_layers

    if source.model is not None and source.weights is None:
        model = zoo.skeleton(str(source.model))
        return str(source.model), dict(prunable_layers(model))
    loaded = load_source_model(source)
    return loaded.info.name, dict(prunable_layers(loaded.model))


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:6])
    return shown + (f", … ({len(names) - 6} more)" if len(names) > 6 else "")


def check_layer_names(title: str, layers: dict[str, nn.Module], spec: CompressSpec) -> None:
    """Every per-layer name and the histogram layer are convolution or linear layers of ``layers``."""
    names = list(layers)
    wanted = [name for name, _ in spec.per_layer] + ([spec.histogram_layer] if spec.histogram_layer else [])
    for name in wanted:
        if name not in layers:
            raise CompressError(
                f"{title} has no convolution or linear layer '{name}'; its layers are {_listing(names)}."
            )
    if spec.structured:
        for name, _ in spec.per_layer:
            if not isinstance(layers[name], nn.Conv2d):
                raise CompressError(
                    f"Structured pruning removes convolution channels, but '{name}' of {title} is not a "
                    "convolution."
                )


def check_inputs(source: CompressSource, spec: CompressSpec) -> None:
    """The checks that need no model: the source, the settings, labelled data for a fine-tune."""
    check_source(source)
    check_spec(spec)
    if spec.finetune_epochs and source.run_dir is None:
        if source.data is None:
            raise CompressError(
                "A fine-tune needs labelled training images (a folder with one sub-folder per class); the "
                "bundled photos have no labels."
            )
        if len(class_folders(Path(source.data))) < 2:
            raise CompressError(
                f"A fine-tune needs labelled training images, but {source.data} has no class sub-folders "
                "(one folder of images per class)."
            )


def check_request(source: CompressSource, spec: CompressSpec) -> None:
    """CompressError for a request that cannot run; None when it can (as far as cheap checks tell). Layer
    names are checked against the zoo skeleton, or the loaded model for a run or a weights file."""
    check_inputs(source, spec)
    if spec.per_layer or spec.histogram_layer:
        check_layer_names(*layers_of(source), spec)
