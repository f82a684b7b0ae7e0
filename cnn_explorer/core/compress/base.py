"""The model a compression run starts from, and the images that judge it.

- A fine-tuned run: its best checkpoint (``training.load_run_model``); its own split from dataset.json (or,
  when that is missing, the same ``scan_dataset`` call with the settings in config.json that made it):
  accuracy on the validation images, and the training images for a fine-tune after pruning.
- A zoo model (its own weights, or a weights file): a labelled ImageFolder-style folder gives accuracy on
  its validation split (``scan_dataset``'s stratified split, so a fine-tune never sees those images) when
  its class names are the model's outputs; any other folder of images, or the bundled photos by default,
  gives agreement with the original model.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.check import check_inputs, check_layer_names, image_files, load_source_model
from cnn_explorer.core.compress.evalset import EvalImages
from cnn_explorer.core.compress.prune import prunable_layers
from cnn_explorer.core.compress.spec import CompressError, CompressSource, CompressSpec
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.data import DatasetError, DatasetScan, scan_dataset
from cnn_explorer.core.images import sample_images
from cnn_explorer.core.runs import RunDir, RunDirError
from cnn_explorer.core.train_config import TrainConfig
from cnn_explorer.core.transfer.layers import LinearProbeModel

__all__ = ["Base", "load_base"]


@dataclass
class Base:
    """The original model, what it is, and the images every variant is judged on."""

    model: nn.Module  # eval mode, CPU, float32
    arch: str
    class_names: list[str]
    preprocess: zoo.Preprocess
    description: str  # "run runs/first", "zoo efficientnet_lite0"
    weights_detail: str
    images: EvalImages
    train_scan: DatasetScan | None = None  # labels are indices of class_names; None: no fine-tune possible
    run_config: TrainConfig | None = None  # the run's settings (None for a zoo model)
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return "accuracy" if self.images.labelled else "agreement"

    @property
    def probe_layer(self) -> str | None:
        return self.model.layer if isinstance(self.model, LinearProbeModel) else None


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _onto(scan: DatasetScan, class_names: list[str]) -> DatasetScan | None:
    """``scan`` with its labels renumbered as indices of ``class_names`` (the model's outputs); None if
    one of its classes is not among them."""
    index = {_key(c): i for i, c in enumerate(class_names)}
    index.update({c: i for i, c in enumerate(class_names)})
    mapping = [index.get(c, index.get(_key(c))) for c in scan.class_names]
    if any(m is None for m in mapping):
        return None
    return dataclasses.replace(
        scan,
        class_names=list(class_names),
        train=[(p, mapping[y]) for p, y in scan.train],
        val=[(p, mapping[y]) for p, y in scan.val],
    )


def _run_scan(run: RunDir, config: TrainConfig, control: Control | None) -> DatasetScan:
    try:
        return DatasetScan.from_dict(run.read_dataset())
    except (RunDirError, KeyError, TypeError, ValueError):
        pass  # no usable dataset.json: the same split again, from the run's own settings
    try:
        return scan_dataset(config.data, val_fraction=config.val_fraction, seed=config.seed, control=control)
    except DatasetError as exc:
        raise CompressError(f"The images of the run in {run.path} cannot be used: {exc}") from None


def _labelled(folder: Path, seed: int, control: Control | None) -> DatasetScan | None:
    try:
        return scan_dataset(folder, seed=seed, min_per_class=1, control=control)
    except DatasetError:
        return None  # no class folders (or only one): a folder of plain images


Samples = list[tuple[str, int]]


def _judged_on(
    source: CompressSource,
    names: list[str],
    run_config: TrainConfig | None,
    spec: CompressSpec,
    notes: list[str],
    control: Control | None,
) -> tuple[Samples, bool, str, DatasetScan | None]:
    """(samples, labelled, where, training scan): which images judge the variants, and which train them."""
    if source.data is None and run_config is not None:
        scan = _onto(_run_scan(RunDir(source.run_dir), run_config, control), names)
        if scan is None:
            raise CompressError(f"The classes of the run in {source.run_dir} do not match its checkpoint's.")
        if not scan.val:
            raise CompressError(
                f"The run in {source.run_dir} has no validation images to measure accuracy on."
            )
        return (
            scan.val,
            True,
            f"the {len(scan.val)} validation images of the run's dataset ({scan.root})",
            scan,
        )
    if source.data is None:
        photos = sample_images()
        return [(str(p), -1) for p in photos], False, f"the {len(photos)} bundled photos", None
    folder = Path(source.data)
    scan = _labelled(folder, spec.seed, control)
    mapped = _onto(scan, names) if scan is not None else None
    if mapped is not None and mapped.val:
        return mapped.val, True, f"the {len(mapped.val)} validation images of {folder}", mapped
    if scan is not None:
        notes.append(
            f"The class folders of {folder} are not all outputs of the model "
            f"({', '.join(scan.class_names[:5])}…), so the variants are compared by agreement."
            if mapped is None
            else f"{folder} has too few images per class to hold some out; measuring agreement."
        )
    files = image_files(folder)
    return [(str(p), -1) for p in files], False, f"the {len(files)} images in {folder}", None


def load_base(source: CompressSource, spec: CompressSpec, *, control: Control | None = None) -> Base:
    """The model and its images; CompressError for anything that cannot be used."""
    check_inputs(source, spec)
    checkpoint(control)
    loaded = load_source_model(source)
    check_layer_names(loaded.info.name, dict(prunable_layers(loaded.model)), spec)
    model = loaded.model.eval().float().cpu()
    notes: list[str] = list(loaded.notes)
    names = list(loaded.categories)
    run_config: TrainConfig | None = None
    if source.run_dir is not None:
        run = RunDir(source.run_dir)
        description = f"run {run.path}"
        try:
            run_config = TrainConfig.from_dict(run.read_config())
        except (RunDirError, TypeError, ValueError) as exc:
            raise CompressError(f"The settings of the run in {run.path} cannot be read: {exc}") from None
    else:
        description = f"zoo {source.model}" + (
            f" with weights {Path(source.weights).name}" if source.weights else ""
        )
        if not loaded.trained:
            notes.append(f"{loaded.info.title} has no trained weights here: it is compressed as UNTRAINED.")

    samples, labelled, where, train_scan = _judged_on(source, names, run_config, spec, notes, control)
    if spec.finetune_epochs and train_scan is None:
        raise CompressError(
            "A fine-tune needs labelled training images whose classes are the model's outputs; "
            f"{source.data or 'the bundled photos'} gives none."
        )
    images = EvalImages(
        samples,
        loaded.preprocess,
        labelled=labelled,
        where=where,
        batch_size=spec.batch_size,
        control=control,
    )
    notes += [f"Skipped {p.name}: {why}" for p, why in images.skipped]
    return Base(
        model=model,
        arch=loaded.info.name,
        class_names=names,
        preprocess=loaded.preprocess,
        description=description,
        weights_detail=loaded.weights_detail,
        images=images,
        train_scan=train_scan,
        run_config=run_config,
        notes=notes,
    )
