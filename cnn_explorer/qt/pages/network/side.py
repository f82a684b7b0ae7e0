"""One side of the explorer (A, or B in compare mode): its model runs and layer views, through two
"latest request wins" runners, drawn into its :class:`CentrePanel`.

The model runner loads and runs the model and computes Grad-CAM: one job at a time, because both use the
model's hooks. The view runner prepares the current layer's picture (grid, statistics, channel maps) and
the layer's facts (parameters, filters) as numpy, so the GUI thread never touches torch. Results are kept
in bounded caches shared by both sides and keyed by the model, the picture and the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult
from cnn_explorer.core.control import Control
from cnn_explorer.core.explorer.cache import BoundedCache
from cnn_explorer.core.explorer.layer_facts import LayerFacts, layer_facts
from cnn_explorer.core.explorer.session import ExplorerSession, Side
from cnn_explorer.core.explorer.tasks import (
    ModelRun,
    ModelSource,
    Stage,
    ViewRequest,
    compute_cam,
    image_key,
    prepare_view,
    run_model,
)
from cnn_explorer.core.features import MAX_LAYER_BYTES, Exploration, LayerStats, LayerView
from cnn_explorer.core.layers import LayerTable
from cnn_explorer.qt.pages.network.centre import CentrePanel
from cnn_explorer.qt.pages.network.model_bar import ModelBar
from cnn_explorer.qt.workers import LatestRunner

QUICK_RUN_MS = 300  # a kept model on a new picture: the progress row shows only after this long
MODELS_KEPT = 3  # loaded models kept in memory (VGG-16 alone is half a gigabyte)
RESULTS_BYTES = 768 << 20  # captured activations kept across (model, image) pairs
CAMS_KEPT = 48
VIEWS_KEPT = 24  # prepared layer views (grid pictures) kept per side, so stepping back is instant...
VIEWS_BYTES = 96 << 20  # ...within this much memory


@dataclass
class Caches:
    """The explorer's memory, bounded in items and bytes; both sides share it."""

    models: BoundedCache[str, zoo.LoadedModel] = field(default_factory=lambda: BoundedCache(MODELS_KEPT))
    results: BoundedCache[tuple, Exploration] = field(
        default_factory=lambda: BoundedCache(16, RESULTS_BYTES, sizeof=lambda e: e.capture.nbytes)
    )
    cams: BoundedCache[tuple, CamResult] = field(default_factory=lambda: BoundedCache(CAMS_KEPT))

    def forget_model(self, key: str) -> None:
        self.models.pop(key)
        self.results.discard(lambda k: k[0] == key)
        self.cams.discard(lambda k: k[0] == key)


@dataclass(frozen=True)
class PreparedLayer:
    view: LayerView | None  # None when the step was not captured (too large) or has no picture
    facts: LayerFacts


def prepare_layer(
    exploration: Exploration,
    model: object,
    request: ViewRequest | None,
    layer: str,
    stats: LayerStats | None,
    control: Control | None = None,
) -> PreparedLayer:
    """Worker body: a layer's view (if it can be drawn) and facts, all numpy and plain values."""
    row = exploration.table.row(layer)
    view = prepare_view(exploration, request, stats, control) if request is not None else None
    return PreparedLayer(view, layer_facts(model, row))  # type: ignore[arg-type]


class SideView(QObject):
    model_ready = Signal(object)  # ModelRun
    model_failed = Signal(object, object)  # ModelSource, exception
    model_cancelled = Signal(object, bool)  # ModelSource, whether a download was stopped
    layer_ready = Signal(object)  # PreparedLayer of the cursor's layer, on screen now
    cam_ready = Signal(object)  # CamResult for the current request
    busy_changed = Signal()

    def __init__(
        self, side: Side, session: ExplorerSession, centre: CentrePanel, bar: ModelBar, caches: Caches
    ) -> None:
        super().__init__(centre)
        self.side = side
        self.session = session
        self.centre = centre
        self.bar = bar
        self.caches = caches
        self.max_layer_bytes = MAX_LAYER_BYTES
        self.models = LatestRunner(self)
        self.views = LatestRunner(self)
        self.prepared: BoundedCache[tuple, PreparedLayer] = BoundedCache(
            VIEWS_KEPT, VIEWS_BYTES, sizeof=lambda p: p.view.nbytes if p.view is not None else 0
        )
        self._stats: dict[tuple, LayerStats] = {}
        self.shown: PreparedLayer | None = None  # the cursor's layer, once on screen
        self._downloading = False
        # The layer table of the last run (source key, the loaded model it was measured on, table): a new
        # picture for the same model (the next reading of a drawn digit) does not measure it again.
        self._last_table: tuple[str, zoo.LoadedModel, LayerTable] | None = None
        self.models.busy_changed.connect(self._on_busy)
        self.views.busy_changed.connect(lambda _busy: self.busy_changed.emit())

    @property
    def state(self):
        return self.session.side(self.side)

    @property
    def busy(self) -> bool:
        return self.models.busy or self.views.busy

    def shutdown(self) -> None:
        self.models.shutdown()
        self.views.shutdown()

    def cancel(self) -> None:
        self.models.cancel()

    def shutdown_work(self) -> None:
        """Compare mode closed: stop whatever this side was doing (it can start again later)."""
        self.models.cancel()
        self.forget_views()

    # -- models -----------------------------------------------------------------------------------
    def cached_result(self, source: ModelSource) -> tuple[zoo.LoadedModel, Exploration] | None:
        loaded = self.caches.models.get(source.key)
        result = self.caches.results.get((source.key, self.session.image_key))
        return (loaded, result) if loaded is not None and result is not None else None

    def run(
        self, source: ModelSource, *, image_path: Path | None = None, allow_download: bool = True
    ) -> None:
        """Load ``source`` (unless kept) and run it on the session's picture (or ``image_path``)."""
        image = self.session.image
        pixels = None if image_path is not None or image is None else image.pixels
        key = ("model", source.key, None if pixels is None else self.session.image_key, source.trusted_sha256)
        self._downloading = False
        loaded = self.caches.models.get(source.key) if image_path is None else None
        if loaded is None:
            self.bar.set_busy(True, f"Loading {source.label}…")
        else:  # only runs it: quick, say so only if it is not
            self.bar.set_busy(True, f"Running {source.label}…", delay_ms=QUICK_RUN_MS)
        kept = self._last_table
        table = kept[2] if kept is not None and kept[0] == source.key and kept[1] is loaded else None
        self.models.request(
            key,
            run_model,
            source,
            loaded,
            pixels,
            image_path,
            allow_download=allow_download,
            max_layer_bytes=self.max_layer_bytes,
            table=table,
            on_result=self._on_model,
            on_failed=lambda exc: self.model_failed.emit(source, exc),
            on_events=self._on_events,
            on_cancelled=lambda: self.model_cancelled.emit(source, self._downloading),
            name=f"explore {source.label}",
        )

    def _on_model(self, run: ModelRun) -> None:
        self.caches.models.put(run.source.key, run.loaded)
        if run.exploration is not None:
            self._last_table = (run.source.key, run.loaded, run.exploration.table)
            picture = self.session.image_key if run.image is None else image_key(run.image)
            self.caches.results.put((run.source.key, picture), run.exploration)
        self.model_ready.emit(run)

    def _on_events(self, events: list) -> None:
        for event in events:
            if isinstance(event, Stage):
                self.bar.show_stage(event.text)
            elif isinstance(event, zoo.DownloadProgress):
                self._downloading = True
                self.bar.show_download(event.done_bytes, event.total_bytes)

    def _on_busy(self, busy: bool) -> None:
        self.bar.set_busy(busy, delay_ms=QUICK_RUN_MS)  # (what run() showed at once stays shown)
        self.busy_changed.emit()

    # -- the layer view ---------------------------------------------------------------------------
    def request_layer(self) -> None:
        """Show the cursor's layer on this side: from the kept views, or prepared in a worker."""
        state = self.state
        row = self.session.current_row(self.side)
        self.shown = None
        if state is None or state.exploration is None or row is None:
            self.views.cancel()
            return
        act = self.session.activation(self.side, row.name)
        drawable = act is not None and not act.too_large and len(act.shape) in (1, 3)
        request = None
        if drawable:
            o = self.session.options
            request = ViewRequest(
                row.name, o.sort_by, o.normalize, o.cmap, self.centre.grid.columns_for(act.shape)
            )
        ident = id(state.exploration)
        key = (ident, row.name, request)
        kept = self.prepared.get(key)
        if kept is not None:
            self.views.cancel()  # whatever was being prepared is stale now
            self._show_prepared(kept)
            return
        self.views.request(
            key,
            prepare_layer,
            state.exploration,
            state.loaded.model if state.loaded is not None else None,
            request,
            row.name,
            self._stats.get((ident, row.name)),
            on_result=lambda prepared: self._on_prepared(key, prepared),
            on_failed=lambda exc: self.centre.clear(f"Cannot draw {row.name}: {exc}"),
            name=f"view {row.name}",
        )

    def _on_prepared(self, key: tuple, prepared: PreparedLayer) -> None:
        if prepared.view is not None:
            self._stats[(key[0], prepared.view.name)] = prepared.view.stats
        self.prepared.put(key, prepared)
        self._show_prepared(prepared)

    def _show_prepared(self, prepared: PreparedLayer) -> None:
        self.shown = prepared
        self.layer_ready.emit(prepared)

    def forget_views(self) -> None:
        self.views.cancel()
        self.prepared.clear()
        self._stats.clear()
        self.shown = None

    # -- Grad-CAM ---------------------------------------------------------------------------------
    def request_cam(self, layer: str, class_index: int) -> CamResult | None:
        """The kept Grad-CAM, or None after asking for it (``cam_ready`` brings it)."""
        state = self.state
        if state is None or state.loaded is None or state.source is None or self.session.image is None:
            return None
        key = (state.source.key, self.session.image_key, layer, int(class_index))
        kept = self.caches.cams.get(key)
        if kept is not None:
            return kept
        if self.models.busy and self.models.latest_key is not None and self.models.latest_key[0] == "model":
            return None  # a model is on its way; its result asks again
        self.models.request(
            ("cam", *key),
            compute_cam,
            state.loaded,
            self.session.image.pixels,
            layer,
            int(class_index),
            on_result=lambda cam: self._on_cam(key, cam),
            on_failed=lambda exc: self.cam_ready.emit(exc),
            name="grad-cam",
        )
        return None

    def _on_cam(self, key: tuple, cam: CamResult) -> None:
        self.caches.cams.put(key, cam)
        self.cam_ready.emit(cam)
