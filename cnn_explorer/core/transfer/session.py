"""The fine-tune page's state, without Qt (the explorer's session is the model): the dataset, the
similarity estimate and its override, the guide's recommendation, the probe of every block and the cut
layer, the LR finder's curve, the watched image and the current run's progress.

The page turns clicks into calls here and session events into widget updates; its background work
(scans, estimates, probes, LR sweeps, training) reports back through the ``set_*`` methods. Plain
pytest drives it.
"""

from __future__ import annotations

from pathlib import Path

from cnn_explorer.core import zoo
from cnn_explorer.core.data import DatasetScan
from cnn_explorer.core.explorer.events import Event
from cnn_explorer.core.transfer.guide import recommend_strategy
from cnn_explorer.core.transfer.layers import halfway, skeleton_probe_layers
from cnn_explorer.core.transfer.progress import TrainingProgress
from cnn_explorer.core.transfer.results import LRFindResult, ProbeReport, Recommendation, SimilarityEstimate


class FineTuneSession:
    """State and change events of the fine-tune page. Events carry nothing; listeners read the state."""

    def __init__(self) -> None:
        self.scan: DatasetScan | None = None
        self.model = zoo.DEFAULT_MODEL
        self.estimate: SimilarityEstimate | None = None
        self.override: bool | None = None  # the user's answer to "similar to ImageNet?" (None: estimated)
        self.probe: ProbeReport | None = None
        self.cut_layer: str | None = None
        self.lr_result: LRFindResult | None = None
        self.watch_image: Path | None = None
        self.progress = TrainingProgress()
        self.events = _Events()

    # -- facts derived from the state -------------------------------------------------------------
    @property
    def n_images(self) -> int | None:
        return len(self.scan.train) + len(self.scan.val) if self.scan is not None else None

    @property
    def similar(self) -> bool | None:
        """The answer the guide uses: the user's, else the estimate's, else unknown (None)."""
        if self.override is not None:
            return self.override
        return self.estimate.similar if self.estimate is not None else None

    def recommendation(self) -> Recommendation | None:
        """The guide's advice for this dataset (None until its size and similarity are known). Case 3's
        cut layer is the chosen one, else the probe's best, else halfway up the network."""
        if self.n_images is None or self.similar is None:
            return None
        rec = recommend_strategy(self.n_images, self.similar)
        if rec.strategy != "linear-probe":
            return rec
        return recommend_strategy(self.n_images, self.similar, cut_layer=self.default_cut_layer())

    def default_cut_layer(self) -> str:
        if self.cut_layer:
            return self.cut_layer
        best = self.probe.best if self.probe is not None and self.probe.model == self.model else None
        if best is not None:
            return best.layer
        return halfway(self.cut_layers())

    def cut_layers(self) -> list[str]:
        """The layers the model can be cut at, input → output."""
        return skeleton_probe_layers(self.model)

    # -- changes ----------------------------------------------------------------------------------
    def set_scan(self, scan: DatasetScan | None) -> None:
        """A new dataset (or none): the probe and LR curve of the old one no longer hold, nor do the
        similarity estimate and the user's answer, unless it is the same folder split anew."""
        same_folder = scan is not None and self.scan is not None and scan.root == self.scan.root
        self.scan = scan
        if not same_folder:
            self.estimate = None
            self.override = None
        self.probe = None
        self.lr_result = None
        self.events.dataset.emit()
        self.events.similarity.emit()
        self.events.probe.emit()
        self.events.lr.emit()
        self.events.recommendation.emit()

    def set_model(self, name: str) -> None:
        if name == self.model:
            return
        self.model = name
        if self.cut_layer not in self.cut_layers():
            self.cut_layer = None
            self.events.cut_layer.emit()
        self.lr_result = None
        self.events.lr.emit()
        self.events.probe.emit()  # a probe of another model stays visible but is not this model's
        self.events.recommendation.emit()

    def set_estimate(self, estimate: SimilarityEstimate | None) -> None:
        self.estimate = estimate
        self.events.similarity.emit()
        self.events.recommendation.emit()

    def set_override(self, similar: bool | None) -> None:
        if similar == self.override:
            return
        self.override = similar
        self.events.similarity.emit()
        self.events.recommendation.emit()

    def set_probe(self, report: ProbeReport | None) -> None:
        self.probe = report
        self.events.probe.emit()
        self.events.recommendation.emit()

    def choose_cut_layer(self, layer: str | None) -> None:
        """The user picked a cut layer (a probe point clicked, or the combo); ValueError if the model
        has no such layer."""
        if layer is not None and layer not in self.cut_layers():
            raise ValueError(f"{self.model} has no layer {layer!r} to cut at")
        if layer == self.cut_layer:
            return
        self.cut_layer = layer
        self.events.cut_layer.emit()
        self.events.recommendation.emit()

    def set_lr_result(self, result: LRFindResult | None) -> None:
        self.lr_result = result
        self.events.lr.emit()

    def set_watch_image(self, path: str | Path | None) -> None:
        self.watch_image = Path(path) if path else None
        self.events.watch.emit()

    # -- a run ------------------------------------------------------------------------------------
    def begin_run(self) -> None:
        self.progress = TrainingProgress()
        self.events.progress.emit()

    def add_run_events(self, events: list) -> None:
        """A batch of training events: one progress update, then one notification."""
        frames = len(self.progress.watch)
        for ev in events:
            self.progress.update(ev)
        self.events.progress.emit()
        if len(self.progress.watch) != frames:
            self.events.watch_frames.emit()


class _Events:
    def __init__(self) -> None:
        self.dataset = Event("dataset")
        self.similarity = Event("similarity")
        self.recommendation = Event("recommendation")
        self.probe = Event("probe")
        self.cut_layer = Event("cut_layer")
        self.lr = Event("lr")
        self.watch = Event("watch")
        self.watch_frames = Event("watch_frames")
        self.progress = Event("progress")
