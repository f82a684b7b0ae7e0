"""Network explorer: a real CNN on the loaded image, walked layer by layer; in compare mode two models
side by side (A | B), one cursor driving both.

The page builds the panels and binds them to an :class:`ExplorerSession`: clicks and keys become session
calls, session events become widget updates. Each side's work runs through its :class:`SideView`'s
"latest request wins" runners. Nothing here calls torch.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QVBoxLayout, QWidget

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult
from cnn_explorer.core.explorer import text
from cnn_explorer.core.explorer.session import ExplorerSession, Side
from cnn_explorer.core.explorer.tasks import ModelSource
from cnn_explorer.core.trust import CodeTrust
from cnn_explorer.qt import style
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.pages.network.centre import CentrePanel
from cnn_explorer.qt.pages.network.code import ExplorerCode
from cnn_explorer.qt.pages.network.compare_panel import ComparePanel
from cnn_explorer.qt.pages.network.digit_input import DigitInput
from cnn_explorer.qt.pages.network.drawing import Drawing
from cnn_explorer.qt.pages.network.layer_panel import LayerPanel
from cnn_explorer.qt.pages.network.live import LiveInput
from cnn_explorer.qt.pages.network.model_bar import ModelBar
from cnn_explorer.qt.pages.network.models import ModelBinding, run_start_model
from cnn_explorer.qt.pages.network.side import Caches, SideView
from cnn_explorer.qt.pages.network.side_panel import SidePanel
from cnn_explorer.qt.widgets.layer_table_view import LayerTableView
from cnn_explorer.qt.workers import LatestRunner

MODEL_FILE_FILTER = "Model files (*.pt *.pth *.safetensors *.ckpt);;All files (*)"
_STEP_KEYS = {Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1, Qt.Key.Key_PageUp: -10, Qt.Key.Key_PageDown: 10}
_CHANNEL_KEYS = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}


class NetworkPage(ModelBinding, LiveInput, Drawing, DigitInput, ExplorerCode, Page):
    title = "Network explorer"
    view_ready = Signal(str)  # the current layer's view (grid, statistics, channel) is on screen; its name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = ExplorerSession()
        self.caches = Caches()
        self.code_trust = CodeTrust()  # remembered answers about running TorchScript files' code
        self._stale = False  # a picture or model arrived while hidden: run when shown
        self._shut_down = False
        self._cams: dict[Side, CamResult | None] = {}  # each side's Grad-CAM on screen (None: failed / none)
        self._telling_wanted = False  # a screenshot asked for a telling channel once the view is in
        # The layer's statistics follow its maps in a turn of the event loop of their own (a timer, not a
        # queued call: the loop paints the maps and serves its timers, the user's keys included, first),
        # so one step does not hold the window for the maps and the histogram together.
        self._statistics_timer = QTimer(self)
        self._statistics_timer.setSingleShot(True)
        self._statistics_timer.setInterval(0)
        self._statistics_timer.timeout.connect(self._draw_statistics)
        self._build()
        s = self.sides
        for side_view in s.values():
            side_view.model_ready.connect(lambda run, sv=side_view: self._on_model_ready(sv.side, run))
            side_view.model_failed.connect(
                lambda src, exc, sv=side_view: self._on_model_failed(sv.side, src, exc)
            )
            side_view.model_cancelled.connect(
                lambda src, dl, sv=side_view: self._on_model_cancelled(sv.side, src, dl)
            )
            side_view.layer_ready.connect(lambda _p, sv=side_view: self._on_layer_ready(sv.side))
            side_view.cam_ready.connect(lambda res, sv=side_view: self._on_cam_ready(sv.side, res))
        self.weights_runner = LatestRunner(self)
        ev = self.session.events
        ev.source.connect(self._on_source)
        ev.model.connect(self._on_model_event)
        ev.compare.connect(self._on_compare)
        ev.layer.connect(self._on_layer)
        ev.channel.connect(self._draw_channels)
        ev.unit.connect(self._draw_channels)
        ev.cam.connect(self._request_cams)
        ev.options.connect(self._on_options)
        ev.model.connect(self._update_digit_pad)
        self._fill_pickers()
        self.session.choose_source(Side.A, ModelSource.zoo(zoo.DEFAULT_MODEL))
        self._show_nothing("Open an image to run the network on it.")

    # -- building ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        content = ScrollContent()
        outer = QVBoxLayout(content)
        outer.setContentsMargins(10, 8, 10, 6)
        outer.setSpacing(6)
        self.bar_a = ModelBar("Model")
        self.bar_b = ModelBar("B", side_b=True)
        self.bar_b.setVisible(False)
        self.notice_label = QLabel()
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet(style.NOTICE_STYLE)
        self.notice_label.setVisible(False)
        self.layer_panel = LayerPanel()
        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        left_column.addWidget(self.layer_panel, 1)
        left_column.addWidget(self._build_digit_pad())
        left_column.addWidget(self._build_live_bar())
        self.centre_a = CentrePanel()
        self.centre_b = CentrePanel(with_options=False, title=f"<span style='color:{style.SIDE_B}'>B</span>")
        self.centre_b.setVisible(False)
        self.side_panel = SidePanel()
        self.compare_panel = ComparePanel()
        self.compare_panel.setVisible(False)
        self.side_panel.extra.addWidget(self.compare_panel)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        for i, w in enumerate((left, self.centre_a, self.centre_b, self.side_panel)):
            self.splitter.addWidget(w)
            self.splitter.setStretchFactor(i, 1 if w in (self.centre_a, self.centre_b) else 0)
        self.splitter.setSizes([265, 615, 0, 360])
        outer.addWidget(self.bar_a)
        outer.addWidget(self.bar_b)
        outer.addWidget(self.notice_label)
        outer.addWidget(self.splitter, 1)
        self.scroll = self.scroll_page(content)
        self.sides = {
            Side.A: SideView(Side.A, self.session, self.centre_a, self.bar_a, self.caches),
            Side.B: SideView(Side.B, self.session, self.centre_b, self.bar_b, self.caches),
        }
        # Names the tests, benchmarks and screenshots use.
        self.model_combo, self.badge = self.bar_a.model_combo, self.bar_a.badge
        self.weights_label, self.stage_label = self.bar_a.weights_label, self.bar_a.stage_label
        self.cancel_button, self.open_button = self.bar_a.cancel_button, self.bar_a.open_button
        self.progress = self.bar_a.progress
        self.layer_tree, self.layer_summary = self.layer_panel.tree, self.layer_panel.summary
        self.prev_button, self.next_button = self.layer_panel.prev_button, self.layer_panel.next_button
        self.grid, self.input_view, self.channel_view = (
            self.centre_a.grid,
            self.centre_a.input_view,
            self.centre_a.channel_view,
        )
        self.sort_combo, self.scale_combo = self.centre_a.sort_combo, self.centre_a.scale_combo
        sp = self.side_panel
        self.details, self.stats_view, self.filter_view, self.tabs = (
            sp.details,
            sp.stats_view,
            sp.filter_view,
            sp.tabs,
        )
        self.predictions, self.untrained_note = sp.predictions, sp.untrained_note
        self.cam_check, self.cam_info = sp.cam_check, sp.cam_info
        self.cam_class_combo, self.cam_layer_combo = sp.cam_class_combo, sp.cam_layer_combo
        self.cmap_combo, self.grid_caption = self.centre_a.cmap_combo, self.centre_a.grid_caption
        self.layer_header, self.position_label = self.centre_a.header, self.layer_panel.position_label
        self.weight_chart = self.compare_panel.chart
        # ↑/↓ step layers wherever the focus is (the tree and the scroll areas would use them otherwise).
        for widget in (
            self.scroll,
            self.side_panel,
            self.layer_tree,
            self.grid.graphics,
            self.centre_b.grid.graphics,
            self.input_view.graphics,
            self.channel_view.graphics,
            self.prev_button,
            self.next_button,
        ):
            widget.installEventFilter(self)

        for side, bar in ((Side.A, self.bar_a), (Side.B, self.bar_b)):
            bar.source_chosen.connect(lambda key, side=side: self._choose(side, key))
            bar.open_file_clicked.connect(lambda side=side: self.choose_model_file(side))
            bar.cancel_clicked.connect(self.sides[side].cancel)
        self.bar_a.compare_clicked.connect(self.compare_with_default)
        self.bar_a.export_clicked.connect(self.export_model)
        self.bar_b.close_clicked.connect(self.session.close_compare)
        self.layer_panel.layer_chosen.connect(self.set_layer)
        self.layer_panel.step_clicked.connect(self.step_layer)
        self.layer_panel.table_clicked.connect(self.show_layer_table)
        for side, centre in ((Side.A, self.centre_a), (Side.B, self.centre_b)):
            centre.channel_clicked.connect(lambda c, y, x: self.select_channel(c, (y, x)))
            centre.unit_clicked.connect(lambda y, x: self.select_channel(self.session.cursor.channel, (y, x)))
            centre.input_clicked.connect(lambda py, px, side=side: self._on_input_clicked(side, py, px))
        self.centre_a.options_changed.connect(self._on_grid_options)
        self.centre_b.options_changed.connect(self._on_options)  # a resize re-tiles B's grid
        sp.cam_changed.connect(lambda: self.session.set_cam(**sp.cam_request()))
        sp.tab_changed.connect(self._draw_filters)
        self.compare_panel.b_predictions.class_clicked.connect(self._on_b_class)
        self.weight_chart.layer_clicked.connect(self._on_chart_layer)

    def _fill_pickers(self) -> None:
        for info in zoo.available_models():
            kind, detail = zoo.weights_status(info.name)
            tip = f"{info.summary}\n{detail}" if info.summary else detail
            for bar in (self.bar_a, self.bar_b):
                bar.add_zoo_entry(
                    f"zoo:{info.name}",
                    info.title,
                    text.picker_status(kind, zoo.imagenet_classes(info.name)),
                    tip,
                )
        self.bar_a.select(f"zoo:{zoo.DEFAULT_MODEL}")

    # -- page API ---------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return (
            any(sv.busy for sv in self.sides.values())
            or self.weights_runner.busy
            or self._statistics_timer.isActive()
            or self._live_busy()
        )

    def shutdown(self) -> None:
        self._shut_down = True
        self._statistics_timer.stop()
        self._shutdown_live()
        for sv in self.sides.values():
            sv.shutdown()
        self.weights_runner.shutdown()

    def open_model_file(self, path: str | Path, image: str | Path | None = None, side: Side = Side.A) -> None:
        """Load a model file (checkpoint, TorchScript, state_dict) and run it on the picture.

        A fine-tuning run's checkpoint opens in compare mode: its pretrained starting model as A, the run
        as B.
        """
        path = Path(path).expanduser().absolute()
        hint = self.session.a.source.name if self.session.a.source is not None else None
        source = ModelSource.file(path, hint)
        self.caches.forget_model(source.key)  # the file may have changed since it was last opened
        start = run_start_model(path)
        image_path = Path(image) if image is not None else None
        if side is Side.A and start is not None:
            if image_path is not None:
                self.sides[Side.A].run(ModelSource.zoo(start), image_path=image_path)
            self.session.choose_source(Side.A, ModelSource.zoo(start))
            self.session.open_compare(source, reload=True)
            return
        if image_path is not None:  # the job opens the image, then the session takes it
            self.sides[side].run(source, image_path=image_path)
        if side is Side.B:
            self.session.open_compare(source, reload=True)
        else:
            self.session.choose_source(side, source, reload=True)

    def open_zoo_model(self, name: str, layer: str | None = None) -> None:
        """Show zoo model ``name`` as side A, at ``layer`` (a row name) once it is in: the gallery's jump."""
        self.notice_label.setVisible(False)
        self.session.choose_source(Side.A, ModelSource.zoo(name), layer=layer or None)

    def compare_with(self, source: ModelSource) -> None:
        self.session.open_compare(source)

    @Slot()
    def compare_with_default(self) -> None:
        """ "Compare with…": B starts as A's model, to be switched in B's picker or opened from a file."""
        a = self.session.a.source
        self.session.open_compare(a if a is not None else ModelSource.zoo(zoo.DEFAULT_MODEL))

    def choose_model_file(self, side: Side = Side.A) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", "", MODEL_FILE_FILTER)
        if path:
            self.open_model_file(path, side=side)

    def show_layer_table(self) -> LayerTableView | None:
        ex = self.session.a.exploration
        if ex is None:
            return None
        table = LayerTableView()
        table.setWindowFlag(Qt.WindowType.Window)
        table.setParent(self, Qt.WindowType.Window)
        table.setWindowTitle(f"Layers of {self.session.a.loaded.info.title}")
        table.set_table(ex.table)
        table.layer_activated.connect(self.set_layer_by_name)
        table.resize(900, 600)
        table.show()
        return table

    def _on_grid_options(self) -> None:
        """Sort, scale or colours changed, or the grid's shape calls for other columns."""
        before = self.session.options
        self.session.set_options(**self.centre_a.options())
        if self.session.options == before:
            self._on_options()  # only the tiling changed: draw the same layer again

    @property
    def max_layer_bytes(self) -> int:
        return self.sides[Side.A].max_layer_bytes

    @max_layer_bytes.setter
    def max_layer_bytes(self, value: int) -> None:  # per captured layer; larger ones keep only their shape
        for sv in self.sides.values():
            sv.max_layer_bytes = value

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self._stale = False
            for side in self.session.active_sides():
                self._run(side)

    # -- keys -------------------------------------------------------------------------------------
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and self._handle_key(event):  # type: ignore[arg-type]
            return True
        return super().eventFilter(obj, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        key = Qt.Key(event.key())
        if key in _STEP_KEYS:
            self.step_layer(_STEP_KEYS[key])
        elif key in _CHANNEL_KEYS:
            self.step_channel(_CHANNEL_KEYS[key])
        elif key == Qt.Key.Key_Home:
            self.set_layer(0)
        elif key == Qt.Key.Key_End:
            self.set_layer(len(self.rows) - 1)
        else:
            return False
        return True

    # -- the cursor -------------------------------------------------------------------------------
    @Slot()
    def next_layer(self) -> None:
        self.step_layer(1)

    @Slot()
    def previous_layer(self) -> None:
        self.step_layer(-1)

    def step_layer(self, delta: int) -> None:
        self.session.step(delta)

    def set_layer(self, index: int) -> None:
        self.session.select_layer_index(index)

    def set_layer_by_name(self, name: str) -> None:
        self.session.select_layer(name)

    def layer_names(self) -> list[str]:
        return self.session.layer_names()

    def select_channel(self, channel: int | None, unit: tuple[int, int] | None = None) -> None:
        self.session.select_channel(channel, unit)

    def step_channel(self, delta: int) -> None:
        """Next / previous channel in the grid's order."""
        order = self.grid.order
        channel = self.session.cursor.channel
        if channel is None or order.size == 0:
            return
        where = (order == channel).nonzero()[0]
        pos = int(where[0]) if where.size else 0
        self.select_channel(int(order[max(0, min(order.size - 1, pos + delta))]))

    def _on_chart_layer(self, layer: str) -> None:
        if layer in self.layer_names():
            self.set_layer_by_name(layer)
