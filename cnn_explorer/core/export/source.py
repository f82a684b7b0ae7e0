"""What to export: a run folder (best checkpoint, validation images), a zoo model or a weights file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control
from cnn_explorer.core.data import DatasetScan
from cnn_explorer.core.export.result import ExportError
from cnn_explorer.core.images import sample_images
from cnn_explorer.core.runs import RunDir, RunDirError


@dataclass
class ExportSource:
    loaded: zoo.LoadedModel
    images: list[Path]
    images_source: str  # what the images are, for the verification line and model.json
    origin: str  # where the model came from: "run <folder> (best.pt)", "zoo resnet18", "file x.pt"
    notes: list[str] = field(default_factory=list)

    def __iter__(self):  # (loaded, images, origin), as a tuple would unpack
        return iter((self.loaded, self.images, self.origin))


def resolve_export_source(
    run_dir: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    weights: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
    trust_code: bool = False,
    control: Control | None = None,
) -> ExportSource:
    """The model to export and the images that verify it; ExportError (naming the problem) for bad input.

    A run folder gives its fine-tuned model (best.pt, else last.pt) and its validation images (the bundled
    photos when the dataset has moved). ``model`` gives a zoo model (offline unless ``allow_download``);
    ``weights`` a file (a checkpoint, a compressed variant, a state_dict on ``model``'s architecture).
    """
    if (run_dir is None) == (model is None and weights is None):
        raise ExportError("give either a run folder or --model NAME [--weights FILE], not both or neither")
    try:
        if run_dir is not None:
            return _from_run(Path(run_dir).expanduser())
        if weights is not None:
            wpath = Path(weights).expanduser()
            if not wpath.is_file():
                raise ExportError(f"The weights file {wpath} does not exist")
            loaded = zoo.load_model_file(wpath, arch=model, control=control, trust_code=trust_code)
            return ExportSource(loaded, sample_images(), "the bundled sample photos", f"file {wpath}")
        assert model is not None
        loaded = zoo.load_model(model, allow_download=allow_download, control=control)
        return ExportSource(
            loaded, sample_images(), "the bundled sample photos", f"zoo model {loaded.info.name}"
        )
    except (zoo.ModelLoadError, RunDirError) as exc:
        raise ExportError(str(exc)) from None


def _from_run(path: Path) -> ExportSource:
    from cnn_explorer.core.training import load_run_model  # training imports a lot; only runs need it

    run = RunDir(path)
    if not run.path.is_dir():
        raise ExportError(f"The run folder {run.path} does not exist")
    loaded = load_run_model(run.path)
    which = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    notes: list[str] = []
    try:
        val = [Path(p) for p, _ in DatasetScan.from_dict(run.read_dataset()).val]
    except (RunDirError, KeyError, TypeError, ValueError):
        val = []
    present = [p for p in val if p.is_file()]
    if present:
        images, what = present, "the run's validation images"
    else:
        images, what = sample_images(), "the bundled sample photos"
        notes.append("the run's validation images were not found; verified on the bundled sample photos")
    return ExportSource(loaded, images, what, f"run {run.path} ({which.name})", notes)
