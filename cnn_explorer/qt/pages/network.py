"""Network explorer: a real CNN on the loaded image, walked layer by layer.

Top: the model picker (each entry says where its weights would come from), the loaded model's weights
badge ("ImageNet weights", "UNTRAINED", "your weights"), "Open model file…", and progress with Cancel.
Left: the layers as a tree (blocks hold their layers), Prev/Next and the ↑/↓ keys step through them in
the order the network runs them. Centre: every channel of the current layer as a grid (sortable, scaled
per channel or per layer, four colour maps); below it the picture as the network sees it and the chosen
channel large; clicking a unit draws its receptive field on the picture. Right: the layer's details
(shape arithmetic, parameters, multiply-adds), its statistics and filters, the top-5 predictions and the
Grad-CAM overlay.

All the facts come from core (zoo, layers, features, cam). Loading a model, the forward pass and Grad-CAM
run in workers, one job at a time because they share the model's hooks: a new request cancels the
running job and starts when it has stopped. Results are cached per (model, image).

Stepping to a layer updates the cheap things at once (tree, header, details) and prepares the rest (the
layer's values, recomputed if derived; the coloured grid; statistics) with core's ``prepare_layer_view``
in a worker of its own, one at a time: a new step cancels a stale one and waits for it to stop, so
holding ↓ never queues work. The GUI slot only pushes the arrays into the widgets (``view_ready`` then
fires). Recent views are kept, so stepping back is instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPainter, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult, default_cam_layer, grad_cam, overlay
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.features import (
    COLORMAPS,
    MAX_LAYER_BYTES,
    Activation,
    Exploration,
    LayerStats,
    LayerView,
    explore,
    prepare_layer_view,
    receptive_region,
)
from cnn_explorer.core.images import LoadedImage, open_image
from cnn_explorer.core.layers import LayerRow
from cnn_explorer.core.trust import CodeTrust, TrustDecision
from cnn_explorer.qt.pages.base import Page, ScrollContent
from cnn_explorer.qt.widgets.code_consent import CodeConsentDialog
from cnn_explorer.qt.widgets.feature_grid import (
    NORMALIZE_CHOICES,
    SELECTED_COLOUR,
    SORT_CHOICES,
    FeatureGrid,
    colormap,
)
from cnn_explorer.qt.widgets.filter_view import FilterView
from cnn_explorer.qt.widgets.layer_details import LayerDetails, shape_text, short_number
from cnn_explorer.qt.widgets.map_view import MapView
from cnn_explorer.qt.widgets.prediction_bars import PredictionBars, percent_text
from cnn_explorer.qt.widgets.stats_view import StatsView
from cnn_explorer.qt.workers import Job, JobSlot

MODEL_FILE_FILTER = "Model files (*.pt *.pth *.safetensors *.ckpt);;All files (*)"
MODELS_KEPT = 3  # loaded models kept in memory (VGG-16 alone is half a gigabyte)
RESULTS_BYTES = 768 << 20  # captured activations kept across (model, image) pairs
CAMS_KEPT = 48
VIEWS_KEPT = 24  # prepared layer views (grid pictures) kept, so stepping back is instant...
VIEWS_BYTES = 96 << 20  # ...within this much memory
RF_COLOUR = SELECTED_COLOUR
# A layer worth a picture, per model: mid-network, where the sample cat's eyes, stripes and whiskers
# light up separate channels. Other models use the first activation at a quarter of the input size.
SCREENSHOT_LAYERS = {"efficientnet_lite0": "_blocks.3._swish", "resnet18": "layer1.1", "lenet5": "c1_tanh"}
_STEP_KEYS = {
    Qt.Key.Key_Up: -1,
    Qt.Key.Key_Down: 1,
    Qt.Key.Key_PageUp: -10,
    Qt.Key.Key_PageDown: 10,
}
_CHANNEL_KEYS = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}

_BADGES = {  # weights kind -> (text, foreground, background)
    "untrained": ("UNTRAINED", "#a61b14", "#fde0de"),
    "file": ("your weights", "#1f4f99", "#e2ebfa"),
}
_PRETRAINED_BADGE = ("ImageNet weights", "#1d6b2c", "#e0f2e4")
_STATUS_SHORT = {  # zoo.weights_status kind -> (picker text, dot colour)
    "cache": ("ImageNet weights", "#2e9a48"),
    "package": ("ImageNet weights", "#2e9a48"),
    "download": ("downloads weights", "#e0a020"),
    "untrained": ("untrained", "#c8372d"),
}


# =====================================================================================================
# Worker bodies (no Qt): what runs off the GUI thread
# =====================================================================================================
@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a zoo entry or a file."""

    key: str  # "zoo:resnet18" or "file:/abs/path/best.pt"
    label: str  # as the picker shows it
    name: str | None = None
    path: Path | None = None
    arch_hint: str | None = None  # for a plain state_dict: try this architecture first
    trust_code: bool = False  # the user agreed to run this (TorchScript) file's code

    def load(self, *, allow_download: bool, control: Control | None) -> zoo.LoadedModel:
        if self.path is not None:
            return zoo.load_model_file(
                self.path, arch=self.arch_hint, control=control, trust_code=self.trust_code
            )
        assert self.name is not None
        return zoo.load_model(self.name, allow_download=allow_download, control=control)


@dataclass(frozen=True)
class Stage:
    """Progress event: what the worker is doing now."""

    text: str


@dataclass
class ModelRun:
    source: ModelSource
    loaded: zoo.LoadedModel
    exploration: Exploration | None
    image: LoadedImage | None  # an image this job opened itself (open_model_file with an image)


def run_model(
    source: ModelSource,
    loaded: zoo.LoadedModel | None,
    pixels: np.ndarray | None,
    image_path: Path | None = None,
    *,
    allow_download: bool = True,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    control: Control | None = None,
) -> ModelRun:
    """Worker body: (open the image,) load the model unless given, run it capturing every layer."""
    image = None
    if image_path is not None:
        report(control, Stage(f"Opening {image_path.name}…"))
        image = open_image(image_path)
        pixels = image.pixels
    if loaded is None:
        report(control, Stage(f"Loading {source.label}…"))
        loaded = source.load(allow_download=allow_download, control=control)
    exploration = None
    if pixels is not None:
        checkpoint(control)
        report(control, Stage(f"Running {loaded.info.title} on the image…"))
        exploration = explore(loaded, pixels, max_layer_bytes=max_layer_bytes, control=control)
    return ModelRun(source, loaded, exploration, image)


def compute_cam(
    loaded: zoo.LoadedModel,
    pixels: np.ndarray,
    layer: str,
    class_index: int,
    control: Control | None = None,
) -> CamResult:
    """Worker body: Grad-CAM of one class at one layer for the picture."""
    report(control, Stage(f"Grad-CAM at {layer}…"))
    return grad_cam(loaded.model, loaded.preprocess(pixels), layer, class_index, control=control)


def image_key(image: LoadedImage) -> tuple:
    """Identifies a picture for the cache: its file and a fingerprint of its pixels."""
    sample = np.ascontiguousarray(image.pixels[::7, ::7])
    return (str(image.path), image.pixels.shape, hashlib.blake2b(sample.tobytes(), digest_size=8).hexdigest())


def file_label(path: Path, loaded: zoo.LoadedModel | None = None) -> str:
    """How the picker names a model file: a fine-tuning run by its folder, anything else by its name."""
    run_dir = path.parent
    if path.name in ("best.pt", "last.pt") or (run_dir / "config.json").is_file():
        which = "" if path.name == "best.pt" else f" ({path.stem})"
        return f"Fine-tuned: {run_dir.name}{which}"
    if loaded is not None and loaded.weights_detail.startswith("fine-tuned"):
        return f"Fine-tuned: {path.stem}"
    return f"File: {path.name}"


def _dot_icon(colour: str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pix)


# =====================================================================================================
# The page
# =====================================================================================================
class NetworkPage(Page):
    title = "Network explorer"
    view_ready = Signal(str)  # a layer's view (grid, statistics, channel) is on screen; its name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.max_layer_bytes = MAX_LAYER_BYTES  # per captured layer; larger ones keep only their shape
        self.code_trust = CodeTrust()  # remembered answers about running TorchScript files' code
        self.image: LoadedImage | None = None
        self._image_key: tuple | None = None
        self._sources: dict[str, ModelSource] = {}
        self._source: ModelSource | None = None  # chosen in the picker
        self._models: OrderedDict[str, zoo.LoadedModel] = OrderedDict()
        self._results: OrderedDict[tuple, Exploration] = OrderedDict()
        self._cams: OrderedDict[tuple, CamResult] = OrderedDict()
        self._stats: dict[str, LayerStats] = {}  # per layer of the shown exploration
        # Prepared layer views (key: layer, sort, scale, colours, columns) of the shown exploration.
        self._views: OrderedDict[tuple, LayerView] = OrderedDict()
        self.view: LayerView | None = None  # the current layer's view, once it is on screen
        self._view_slot = JobSlot()  # at most one view being prepared...
        self._view_pending: tuple | None = None  # ...and the latest one asked for meanwhile
        self._view_running: tuple | None = None  # what the latest job prepares
        self._view_wanted: tuple | None = None  # the view the current layer and options call for
        self._unit_wanted: tuple[int, int] | None = None  # a unit asked for before the view arrived
        self._telling_wanted = False  # prepare_screenshot: pick a telling channel once the view is in
        self._filters_stale = False  # the Filters tab is hidden: drawn when it is shown
        self._shut_down = False
        # What is on screen now.
        self.shown_source: ModelSource | None = None
        self.loaded: zoo.LoadedModel | None = None
        self.exploration: Exploration | None = None
        self.rows: list[LayerRow] = []
        self.layer_index = 0
        self.channel: int | None = None
        self.unit: tuple[int, int] | None = None
        self.cam: CamResult | None = None
        self._items: dict[str, QTreeWidgetItem] = {}
        self._input_drawn: tuple[np.ndarray, CamResult | None] | None = None  # what the input view shows
        self._stale = False  # an image or model arrived while hidden: run when shown
        # One job at a time (model load + forward pass, or Grad-CAM): they share the model's hooks.
        self._slot = JobSlot()
        self._job_kind = ""
        self._pending: tuple[str, Callable[[], None]] | None = None
        self._downloading = False
        self._user_cancelled = False
        self._model_target: tuple | None = None  # (model, picture) of the latest model job
        self._cam_target: tuple | None = None  # (model, picture, layer, class) of the latest Grad-CAM job

        self._build()
        self._fill_model_picker()
        self._show_nothing("Open an image to run the network on it.")
        self._update_busy()

    # =================================================================================================
    # Building the widgets
    # =================================================================================================
    def _build(self) -> None:
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        content = ScrollContent()
        outer = QVBoxLayout(content)
        outer.setContentsMargins(10, 8, 10, 6)
        outer.setSpacing(6)
        outer.addLayout(self._build_model_bar())
        self.notice_label = QLabel()
        self.notice_label.setWordWrap(True)
        self.notice_label.setStyleSheet(
            "color: #8a1c14; background: #fdecea; border: 1px solid #f3c1bc; border-radius: 4px; "
            "padding: 4px;"
        )
        self.notice_label.setVisible(False)
        outer.addWidget(self.notice_label)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self._build_layer_panel())
        self.splitter.addWidget(self._build_centre())
        self.splitter.addWidget(self._build_side_panel())
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([265, 615, 360])
        outer.addWidget(self.splitter, 1)

        self.scroll = self.scroll_page(content)

        # ↑/↓ step layers wherever the focus is (the tree and the scroll areas would use them otherwise).
        for widget in (
            self.scroll,
            self.side_scroll,
            self.layer_tree,
            self.grid.graphics,
            self.input_view.graphics,
            self.channel_view.graphics,
            self.prev_button,
            self.next_button,
        ):
            widget.installEventFilter(self)

    def _build_model_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        bar.setSpacing(8)
        label = QLabel("Model")
        label.setStyleSheet("font-weight: 600; font-size: 14px;")
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(290)
        self.model_combo.setMaxVisibleItems(20)
        self.model_combo.setIconSize(QSize(12, 12))
        self.model_combo.setToolTip("The network to explore; each entry says where its weights come from")
        self.badge = QLabel()
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setStyleSheet("color: #555; font-size: 11px;")
        self.weights_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.open_button = QPushButton("Open model file…")
        self.open_button.setToolTip(
            "A fine-tuned checkpoint, a TorchScript file or a state_dict (.pt, .pth, .safetensors)"
        )
        # While work runs, its progress takes the place of the weights text (which is about to change).
        self.stage_label = QLabel()
        self.stage_label.setStyleSheet("color: #333;")
        self.stage_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar()
        self.progress.setFixedWidth(160)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop loading or computing")
        busy = QWidget()
        busy_row = QHBoxLayout(busy)
        busy_row.setContentsMargins(0, 0, 0, 0)
        busy_row.setSpacing(8)
        busy_row.addWidget(self.stage_label, 1)
        busy_row.addWidget(self.progress)
        busy_row.addWidget(self.cancel_button)
        self.status_stack = QStackedWidget()
        self.status_stack.addWidget(self.weights_label)
        self.status_stack.addWidget(busy)
        self.status_stack.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        bar.addWidget(label)
        bar.addWidget(self.model_combo)
        bar.addWidget(self.badge)
        bar.addWidget(self.status_stack, 1)
        bar.addWidget(self.open_button)

        self.model_combo.currentIndexChanged.connect(self._on_model_chosen)
        self.open_button.clicked.connect(self.choose_model_file)
        self.cancel_button.clicked.connect(self.cancel)
        return bar

    def _build_layer_panel(self) -> QWidget:
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.setSpacing(4)
        title = QLabel("Layers")
        title.setStyleSheet("font-weight: 600; font-size: 14px;")
        self.layer_summary = QLabel()
        self.layer_summary.setWordWrap(True)
        self.layer_summary.setStyleSheet("color: #555; font-size: 11px;")
        self.layer_tree = QTreeWidget()
        self.layer_tree.setColumnCount(2)
        self.layer_tree.setHeaderLabels(["Layer", "Output"])
        self.layer_tree.setUniformRowHeights(True)
        self.layer_tree.setIndentation(14)
        self.layer_tree.setAlternatingRowColors(True)
        header = self.layer_tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, header.ResizeMode.Stretch)
        header.setSectionResizeMode(1, header.ResizeMode.ResizeToContents)
        self.prev_button = QPushButton("▲ Prev")
        self.next_button = QPushButton("Next ▼")
        self.prev_button.setToolTip("Previous layer (↑)")
        self.next_button.setToolTip("Next layer (↓)")
        self.position_label = QLabel()
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        nav = QHBoxLayout()
        nav.setSpacing(4)
        nav.addWidget(self.prev_button)
        nav.addWidget(self.position_label, 1)
        nav.addWidget(self.next_button)
        hint = QLabel("↑/↓ step through the layers in the order the network runs them; ←/→ pick a channel.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #777; font-size: 11px;")
        layout.addWidget(title)
        layout.addWidget(self.layer_summary)
        layout.addWidget(self.layer_tree, 1)
        layout.addLayout(nav)
        layout.addWidget(hint)
        panel.setMinimumWidth(220)

        self.layer_tree.currentItemChanged.connect(self._on_tree_item)
        self.prev_button.clicked.connect(self.previous_layer)
        self.next_button.clicked.connect(self.next_layer)
        return panel

    def _build_centre(self) -> QWidget:
        centre = QWidget()
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.setSpacing(4)
        self.layer_header = QLabel()
        self.layer_header.setTextFormat(Qt.TextFormat.RichText)
        self.layer_header.setStyleSheet("font-size: 15px;")
        self.layer_header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.sort_combo = QComboBox()
        for text, key in SORT_CHOICES:
            self.sort_combo.addItem(text, key)
        self.sort_combo.setToolTip("Order of the channels in the grid (largest first)")
        self.scale_combo = QComboBox()
        for text, key in NORMALIZE_CHOICES:
            self.scale_combo.addItem(text, key)
        self.scale_combo.setToolTip(
            "Each channel: every map stretched to its own range (shows every pattern).\n"
            "Whole layer: one range for all (shows which channels are strong)."
        )
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.setCurrentText("viridis")
        options = QHBoxLayout()
        options.setSpacing(6)
        choices = (("Sort", self.sort_combo), ("Scale", self.scale_combo), ("Colours", self.cmap_combo))
        for text, combo in choices:
            lab = QLabel(text)
            lab.setStyleSheet("color: #555;")
            options.addWidget(lab)
            options.addWidget(combo)
            options.addSpacing(6)
        options.addStretch(1)
        self.grid_caption = QLabel()
        self.grid_caption.setStyleSheet("color: #555;")
        self.grid_caption.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.grid_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        options.addWidget(self.grid_caption)

        self.grid = FeatureGrid()
        self.input_view = MapView("Input", max_numbers_side=0)
        self.channel_view = MapView("Channel", max_numbers_side=10)
        for view in (self.input_view, self.channel_view):
            view.graphics.setMinimumSize(150, 150)
            # Long titles and captions wrap or clip; they must not push the other view aside.
            view.title_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            view.caption_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            # Room for the usual three lines of caption, so a caption one line longer or shorter at the
            # next layer does not resize the maps (each resize re-lays out and repaints the plots).
            view.caption_label.setMinimumHeight(3 * view.caption_label.fontMetrics().lineSpacing() + 2)
        below = QHBoxLayout()
        below.setSpacing(10)
        below.addWidget(self.input_view, 1)
        below.addWidget(self.channel_view, 1)

        layout.addWidget(self.layer_header)
        layout.addLayout(options)
        layout.addWidget(self.grid, 5)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setStyleSheet("color: #ddd;")
        layout.addWidget(line)
        layout.addLayout(below, 4)

        self.sort_combo.currentIndexChanged.connect(self._on_grid_options)
        self.scale_combo.currentIndexChanged.connect(self._on_grid_options)
        self.cmap_combo.currentIndexChanged.connect(self._on_grid_options)
        self.grid.channel_clicked.connect(self._on_channel_clicked)
        self.grid.retile_wanted.connect(self._on_grid_options)
        self.channel_view.cell_clicked.connect(self._on_unit_clicked)
        self.input_view.cell_clicked.connect(self._on_input_clicked)
        return centre

    def _build_side_panel(self) -> QWidget:
        content = ScrollContent()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 0, 6, 0)
        layout.setSpacing(6)

        pred_box = QGroupBox("Top-5 predictions")
        self.untrained_note = QLabel("⚠ This model is untrained (random weights): its guesses mean nothing.")
        self.untrained_note.setWordWrap(True)
        self.untrained_note.setStyleSheet("color: #a61b14; font-size: 11px;")
        self.untrained_note.setVisible(False)
        self.predictions = PredictionBars()
        pl = QVBoxLayout(pred_box)
        pl.setSpacing(2)
        pl.addWidget(self.untrained_note)
        pl.addWidget(self.predictions)

        cam_box = QGroupBox("Where does it look? (Grad-CAM)")
        self.cam_check = QCheckBox("Show Grad-CAM on the input")
        self.cam_check.setToolTip(
            "Colour the picture by how much each region raised the chosen class's score"
        )
        self.cam_class_combo = QComboBox()
        self.cam_class_combo.setToolTip("The class whose evidence is shown (one of the top 5)")
        self.cam_layer_combo = QComboBox()
        self.cam_layer_combo.addItem("Last spatial layer", "last")
        self.cam_layer_combo.addItem("Current layer", "current")
        self.cam_layer_combo.setToolTip(
            "Grad-CAM reads one layer's maps: the last one with a spatial layout is the usual choice"
        )
        self.cam_info = QLabel()
        self.cam_info.setWordWrap(True)
        self.cam_info.setStyleSheet("color: #555; font-size: 11px;")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(3)
        form.addRow("Class", self.cam_class_combo)
        form.addRow("Layer", self.cam_layer_combo)
        cl = QVBoxLayout(cam_box)
        cl.setSpacing(3)
        cl.addWidget(self.cam_check)
        cl.addLayout(form)
        cl.addWidget(self.cam_info)

        details_box = QGroupBox("This layer")
        self.details = LayerDetails()
        dl = QVBoxLayout(details_box)
        dl.addWidget(self.details)

        self.tabs = QTabWidget()
        self.stats_view = StatsView()
        self.filter_view = FilterView()
        self.tabs.addTab(self.stats_view, "Statistics")
        self.tabs.addTab(self.filter_view, "Filters")
        self.tabs.setMinimumHeight(200)
        self.tabs.currentChanged.connect(self._on_tab_changed)

        layout.addWidget(details_box)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(pred_box)
        layout.addWidget(cam_box)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        scroll.setMinimumWidth(290)
        self.side_scroll = scroll

        self.cam_check.toggled.connect(self._request_cam)
        self.cam_class_combo.currentIndexChanged.connect(self._on_cam_class_changed)
        self.cam_layer_combo.currentIndexChanged.connect(self._request_cam)
        self.predictions.class_clicked.connect(self._on_prediction_clicked)
        return scroll

    # -- the model picker -------------------------------------------------------------------------
    def _fill_model_picker(self) -> None:
        self.model_combo.blockSignals(True)
        for info in zoo.available_models():
            kind, detail = zoo.weights_status(info.name)
            short, colour = _STATUS_SHORT.get(kind, (kind, "#888"))
            source = ModelSource(f"zoo:{info.name}", info.title, name=info.name)
            self._sources[source.key] = source
            self.model_combo.addItem(_dot_icon(colour), f"{info.title}  ·  {short}", source.key)
            tip = f"{info.summary}\n{detail}" if info.summary else detail
            self.model_combo.setItemData(self.model_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        index = self.model_combo.findData(f"zoo:{zoo.DEFAULT_MODEL}")
        self.model_combo.setCurrentIndex(max(0, index))
        self.model_combo.blockSignals(False)
        self._source = self._sources[str(self.model_combo.currentData())]

    def _select_in_picker(self, source: ModelSource | None) -> None:
        if source is None:
            return
        index = self.model_combo.findData(source.key)
        if index >= 0:
            self.model_combo.blockSignals(True)
            self.model_combo.setCurrentIndex(index)
            self.model_combo.blockSignals(False)
        self._source = source

    def _refresh_picker_item(self, source: ModelSource, loaded: zoo.LoadedModel) -> None:
        """After a load the picker says what really happened (e.g. the download failed: untrained)."""
        index = self.model_combo.findData(source.key)
        if index < 0:
            return
        if loaded.weights == "untrained":
            short, colour = "untrained", _STATUS_SHORT["untrained"][1]
        else:
            short, colour = "ImageNet weights", _STATUS_SHORT["cache"][1]
        self.model_combo.setItemText(index, f"{source.label}  ·  {short}")
        self.model_combo.setItemIcon(index, _dot_icon(colour))
        self.model_combo.setItemData(index, loaded.weights_detail, Qt.ItemDataRole.ToolTipRole)

    def _add_file_source(self, source: ModelSource) -> None:
        self._sources[source.key] = source
        text = f"{source.label}  ·  your weights"
        index = self.model_combo.findData(source.key)
        if index < 0:
            self.model_combo.blockSignals(True)
            self.model_combo.insertSeparator(self.model_combo.count())
            self.model_combo.addItem(_dot_icon("#2f6fd0"), text, source.key)
            self.model_combo.blockSignals(False)
            index = self.model_combo.count() - 1
        else:
            self.model_combo.setItemText(index, text)
        self.model_combo.setItemData(index, str(source.path), Qt.ItemDataRole.ToolTipRole)

    # =================================================================================================
    # Page API
    # =================================================================================================
    def set_image(self, loaded: LoadedImage) -> None:
        key = image_key(loaded)
        if key == self._image_key and self.exploration is not None:
            return
        self.image = loaded
        self._image_key = key
        self._run()

    def is_busy(self) -> bool:
        """A model, Grad-CAM or layer view is being computed (or waits to be)."""
        return self._model_busy() or self._view_slot.busy or self._view_pending is not None

    def _model_busy(self) -> bool:
        return self._slot.busy or self._pending is not None

    def prepare_screenshot(self) -> None:
        """Step into a mid-network layer, pick a channel that found part of the cat, show its field."""
        if self.exploration is None or not self.rows:
            return
        names = [r.name for r in self.rows]
        name = self.loaded.info.name if self.loaded is not None else ""
        wanted = SCREENSHOT_LAYERS.get(name)
        index = names.index(wanted) if wanted in names else self._quarter_size_layer()
        self.sort_combo.setCurrentIndex([k for _, k in SORT_CHOICES].index("mean"))
        self.set_layer(index)
        if self.view is not None and self.view.name == self.rows[index].name:
            self._pick_telling_channel(self.view)
        else:
            self._telling_wanted = True  # when the view is in

    def _pick_telling_channel(self, view: LayerView) -> None:
        self._telling_wanted = False
        if view.spatial:
            self.select_channel(self._telling_channel(view.values))

    def shutdown(self) -> None:
        self._shut_down = True  # final: e.g. a resize as the window closes must not start a new view
        self._pending = None
        self._slot.cancel()
        self._cancel_view_job()

    def open_model_file(self, path: str | Path, image: str | Path | None = None) -> None:
        """Load a model file (checkpoint, TorchScript, state_dict) in a worker and run it on the picture."""
        path = Path(path).expanduser().absolute()
        hint = self._source.name if self._source is not None and self._source.name else None
        source = ModelSource(f"file:{path}", file_label(path), path=path, arch_hint=hint)
        self._forget_model(source.key)  # the file may have changed since it was last opened
        self._start_model_job(source, None, image_path=Path(image) if image is not None else None)

    @Slot()
    def choose_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model file", "", MODEL_FILE_FILTER)
        if path:
            self.open_model_file(path)

    @Slot()
    def cancel(self) -> None:
        """The Cancel button: stop the running job (a download falls back to untrained weights)."""
        if self._model_busy():
            self._user_cancelled = True
            self._pending = None
            self._slot.cancel()
            self._update_busy()

    # =================================================================================================
    # Running models (one job at a time)
    # =================================================================================================
    def _submit(self, kind: str, start: Callable[[], Job]) -> None:
        """Start a job now, or (if one is running) cancel that one and start this when it has stopped."""

        def begin() -> None:
            self._pending = None
            self._job_kind = kind
            self._downloading = False
            self._user_cancelled = False
            job = start()
            job.events.connect(lambda events, job=job: self._on_events(job, events))
            job.finished.connect(self._on_job_finished)
            self._update_busy()

        if self._slot.busy:
            self._slot.cancel()
            self._pending = (kind, begin)
        else:
            begin()
        self._update_busy()

    @Slot()
    def _on_job_finished(self) -> None:
        if self._pending is not None and not self._slot.busy:
            self._pending[1]()
        self._update_busy()

    def _run(self) -> None:
        """Show the chosen model on the current picture: from the cache, or by starting a job."""
        source = self._source
        if source is None:
            return
        if self.image is None:
            self._show_nothing("Open an image to run the network on it.")
            return
        cached = self._cached(source.key)
        if cached is not None:
            self._pending = None
            self._slot.cancel()  # whatever was running is stale now
            self._show(source, *cached)
            self._update_busy()
            return
        if not self.isVisible():
            self._stale = True  # nobody is looking: run when the page is shown
            return
        if self._model_busy() and self._model_target == (source.key, self._image_key):
            return  # already on its way
        self._start_model_job(source, self._models.get(source.key))

    def _cached(self, source_key: str) -> tuple[zoo.LoadedModel, Exploration] | None:
        key = (source_key, self._image_key)
        if key in self._results and source_key in self._models:
            self._results.move_to_end(key)
            self._models.move_to_end(source_key)
            return self._models[source_key], self._results[key]
        return None

    def _start_model_job(
        self,
        source: ModelSource,
        loaded: zoo.LoadedModel | None,
        *,
        image_path: Path | None = None,
        allow_download: bool = True,
    ) -> None:
        self._stale = False
        pixels = None if image_path is not None or self.image is None else self.image.pixels
        key = None if pixels is None else self._image_key  # the picture this job runs on
        self._model_target = (source.key, key)
        self.notice_label.setVisible(False)

        def start() -> Job:
            job = self._slot.start(
                run_model,
                source,
                loaded,
                pixels,
                image_path,
                allow_download=allow_download,
                max_layer_bytes=self.max_layer_bytes,
                name=f"explore {source.label}",
            )
            job.result.connect(lambda run, job=job: self._on_model_result(job, run, key))
            job.failed.connect(lambda exc, job=job: self._on_model_failed(job, source, exc))
            job.cancelled.connect(lambda job=job: self._on_model_cancelled(job, source))
            return job

        self.stage_label.setText(f"Loading {source.label}…")
        self._submit("model", start)

    def _on_events(self, job: Job, events: list) -> None:
        if not self._slot.is_current(job):
            return
        for event in events:
            if isinstance(event, Stage):
                self.stage_label.setText(event.text)
                self.progress.setRange(0, 0)
            elif isinstance(event, zoo.DownloadProgress):
                self._downloading = True
                done = event.done_bytes / 2**20
                if event.total_bytes:
                    total = event.total_bytes / 2**20
                    self.progress.setRange(0, 1000)
                    self.progress.setValue(int(1000 * event.done_bytes / event.total_bytes))
                    self.stage_label.setText(f"Downloading weights: {done:.1f} of {total:.1f} MB")
                else:
                    self.progress.setRange(0, 0)
                    self.stage_label.setText(f"Downloading weights: {done:.1f} MB")

    def _on_model_result(self, job: Job, run: ModelRun, key: tuple | None) -> None:
        if not self._slot.is_current(job):
            return
        source = run.source
        if source.path is not None:
            source = ModelSource(
                source.key, file_label(source.path, run.loaded), path=source.path, arch_hint=source.arch_hint
            )
            self._add_file_source(source)
        else:
            self._refresh_picker_item(source, run.loaded)
        self._remember_model(source.key, run.loaded)
        if run.image is not None:
            self.image = run.image
            self._image_key = key = image_key(run.image)
        self._select_in_picker(source)
        if run.exploration is None:
            self._show_nothing(f"{source.label} is loaded. Open an image to run it.")
            self._show_weights(run.loaded)
            return
        self._remember_result((source.key, key), run.exploration)
        if key != self._image_key:  # the picture changed while the page was hidden: run on the new one
            self._run()
            return
        self._show(source, run.loaded, run.exploration)
        self.status_message.emit(self._loaded_message(run.loaded, run.exploration))

    def _on_model_failed(self, job: Job, source: ModelSource, exc: BaseException) -> None:
        if not self._slot.is_current(job):
            return
        if isinstance(exc, zoo.UntrustedCodeError):
            self._ask_to_run_code(source, exc)
            return
        if isinstance(exc, zoo.ModelLoadError) or (source.path is not None and str(exc).startswith("Cannot")):
            message = str(exc)
        elif source.path is not None:
            message = f"Cannot open {source.path.name}: {type(exc).__name__}: {exc}"
        else:
            message = f"{source.label} could not run: {type(exc).__name__}: {exc}"
        self._show_notice(message)
        self.status_message.emit(message)
        self._select_in_picker(self.shown_source)  # the picker goes back to what is on screen

    def _ask_to_run_code(self, source: ModelSource, exc: zoo.UntrustedCodeError) -> None:
        """TorchScript runs code: open it only with the user's (possibly remembered) consent."""
        decision = self.code_trust.decision(exc.sha256)
        if decision is TrustDecision.UNKNOWN:
            dialog = CodeConsentDialog(exc.path, exc.sha256, self)
            dialog.finished.connect(lambda _result: self._on_code_consent(dialog, source))
            dialog.open()
            return
        self._act_on_consent(source, exc.path, decision)

    def _on_code_consent(self, dialog: CodeConsentDialog, source: ModelSource) -> None:
        dialog.store(self.code_trust)
        dialog.deleteLater()
        self._act_on_consent(source, dialog.path, dialog.decided)

    def _act_on_consent(self, source: ModelSource, path: Path, decision: TrustDecision) -> None:
        if decision is TrustDecision.TRUSTED:
            self._start_model_job(dataclasses.replace(source, trust_code=True), None)
            return
        message = f"Did not open {path.name}: its code was not allowed to run."
        self._show_notice(message)
        self.status_message.emit(message)
        self._select_in_picker(self.shown_source)

    def _on_model_cancelled(self, job: Job, source: ModelSource) -> None:
        if not self._slot.is_current(job) or self._pending is not None:
            return  # replaced by newer work: nothing to say
        if self._downloading and source.name is not None:
            # The user stopped a weights download: the architecture can still be explored, untrained.
            self._start_model_job(source, None, allow_download=False)
            self._show_notice(
                f"Download of the {source.label} weights cancelled: showing it UNTRAINED (random weights)."
            )
            return
        if self._user_cancelled:
            self.status_message.emit(f"Stopped {source.label}.")
            self._select_in_picker(self.shown_source)
            if self.shown_source is None:
                self._show_nothing("Stopped. Choose a model to run it on the picture.")

    # -- caches -----------------------------------------------------------------------------------
    def _remember_model(self, key: str, loaded: zoo.LoadedModel) -> None:
        self._models[key] = loaded
        self._models.move_to_end(key)
        while len(self._models) > MODELS_KEPT:
            old, _ = self._models.popitem(last=False)
            self._forget_results(old)

    def _remember_result(self, key: tuple, exploration: Exploration) -> None:
        self._results[key] = exploration
        self._results.move_to_end(key)

        def kept() -> int:
            return sum(e.capture.nbytes for e in self._results.values())

        while len(self._results) > 1 and kept() > RESULTS_BYTES:
            self._results.popitem(last=False)

    def _forget_results(self, source_key: str) -> None:
        for key in [k for k in self._results if k[0] == source_key]:
            del self._results[key]
        for key in [k for k in self._cams if k[0] == source_key]:
            del self._cams[key]

    def _forget_model(self, source_key: str) -> None:
        self._models.pop(source_key, None)
        self._forget_results(source_key)

    # =================================================================================================
    # Showing a model's results
    # =================================================================================================
    def _show_nothing(self, message: str) -> None:
        self.exploration = None
        self._forget_views()
        self.rows = []
        self._items = {}
        self.layer_tree.clear()
        self.layer_summary.setText("")
        self.layer_header.setText("")
        self.position_label.setText("")
        self.grid.clear(message)
        self.grid_caption.setText("")
        self._input_drawn = None
        self.input_view.clear_map("")
        self.channel_view.clear_map("")
        self.details.clear("")
        self.stats_view.clear("")
        self.filter_view.clear("")
        self.predictions.clear(message)
        self.cam_class_combo.clear()
        self.cam_info.setText("")
        self._update_nav()

    def _show_notice(self, text: str) -> None:
        self.notice_label.setText(text)
        self.notice_label.setVisible(bool(text))

    def _show_weights(self, loaded: zoo.LoadedModel) -> None:
        text, fg, bg = _BADGES.get(loaded.weights, _PRETRAINED_BADGE)
        self.badge.setText(text)
        self.badge.setStyleSheet(
            f"color: {fg}; background: {bg}; border: 1px solid {fg}; border-radius: 9px; "
            "padding: 2px 9px; font-weight: 700;"
        )
        self.badge.setToolTip(loaded.weights_detail)
        detail = loaded.weights_detail
        if loaded.weights == "untrained" and any(n.startswith("download failed") for n in loaded.notes):
            detail = (
                f"Offline or unreachable: the ImageNet weights could not be downloaded, so this is {detail}"
            )
        self.weights_label.setText(detail)
        self.weights_label.setToolTip(detail)
        self.untrained_note.setVisible(loaded.weights == "untrained")

    def _loaded_message(self, loaded: zoo.LoadedModel, exploration: Exploration) -> str:
        top = exploration.predictions[0] if exploration.predictions else None
        guess = f" Top prediction: {top.name} ({percent_text(top.probability)})." if top else ""
        if loaded.weights == "untrained":
            why = "; ".join(loaded.notes) if loaded.notes else "no pretrained weights"
            return f"{loaded.info.title} is UNTRAINED (random weights: {why}).{guess}"
        return f"{loaded.info.title} ready ({loaded.weights_detail}).{guess}"

    def _show(self, source: ModelSource, loaded: zoo.LoadedModel, exploration: Exploration) -> None:
        previous_layer = self.rows[self.layer_index].name if self.rows else None
        same_model = self.shown_source is not None and self.shown_source.key == source.key
        self.shown_source = source
        self.loaded = loaded
        if exploration is not self.exploration:
            self._forget_views()
        self.exploration = exploration
        self.rows = list(exploration.table.rows)
        self.layer_index = 0
        self.cam = None
        self._select_in_picker(source)
        self._show_weights(loaded)
        self._fill_tree()
        table = exploration.table
        summary = (
            f"{len(self.rows)} steps · {table.total_params:,}\u00a0parameters · "
            f"{short_number(table.total_macs)}\u00a0multiply-adds per image · input "
            f"{shape_text(table.input_shape)}"
        )
        too_large = self._too_large()
        if too_large:
            summary += f" · {len(too_large)} large layers not kept"
        self.layer_summary.setText(summary)
        self._show_predictions()
        try:
            default_layer = f"Last spatial layer ({default_cam_layer(table)})"
        except ValueError:
            default_layer = "Last spatial layer (none)"
        self.cam_layer_combo.setItemText(0, default_layer)
        if not self.rows:
            self.grid.clear(
                "This model is compiled TorchScript: its layers cannot be opened, so only its predictions "
                "are shown."
            )
            self._show_input()
            self._update_nav()
            return
        names = [r.name for r in self.rows]
        index = names.index(previous_layer) if same_model and previous_layer in names else 0
        self.set_layer(index, keep_channel=same_model)
        if self.cam_layer_combo.currentData() != "current":  # (set_layer asked already otherwise)
            self._request_cam()

    def _fill_tree(self) -> None:
        self.layer_tree.blockSignals(True)
        self.layer_tree.clear()
        self._items = {}
        skipped = self._too_large()
        for i, row in enumerate(self.rows):
            short = row.name[len(row.parent) + 1 :] if row.parent else row.name
            item = QTreeWidgetItem([short + (" ⚠" if row.name in skipped else ""), shape_text(row.out_shape)])
            item.setData(0, Qt.ItemDataRole.UserRole, i)
            tip = f"{row.name} — {row.type}"
            if row.name in skipped:
                tip += "\nToo large to keep in memory: shape only"
            item.setToolTip(0, tip)
            item.setToolTip(1, f"output {shape_text(row.out_shape)}")
            if row.kind == "block":
                font = item.font(0)
                font.setBold(True)
                item.setFont(0, font)
            self._items[row.name] = item
        for row in self.rows:
            parent = self._items.get(row.parent) if row.parent else None
            if parent is not None:
                parent.addChild(self._items[row.name])
            else:
                self.layer_tree.addTopLevelItem(self._items[row.name])
        self.layer_tree.blockSignals(False)

    def _too_large(self) -> set[str]:
        """Steps whose values were too large to keep (only their shape is known)."""
        if self.exploration is None:
            return set()
        return {a.name for a in self.exploration.capture if a.too_large}

    def _show_predictions(self) -> None:
        assert self.exploration is not None
        preds = self.exploration.predictions
        self.cam_class_combo.blockSignals(True)
        previous = self.cam_class_combo.currentData()
        self.cam_class_combo.clear()
        for p in preds:
            self.cam_class_combo.addItem(f"{p.name} — {percent_text(p.probability)}", p.index)
        i = self.cam_class_combo.findData(previous) if previous is not None else -1
        self.cam_class_combo.setCurrentIndex(max(0, i))
        self.cam_class_combo.blockSignals(False)
        self.predictions.set_predictions(preds, selected=self.cam_class_combo.currentData())

    # -- layers ---------------------------------------------------------------------------------
    @property
    def current_row(self) -> LayerRow | None:
        return self.rows[self.layer_index] if self.rows else None

    def _activation(self, row: LayerRow) -> Activation | None:
        if self.exploration is None:
            return None
        try:
            return self.exploration.capture[row.name]
        except KeyError:
            return None

    def _module(self, row: LayerRow) -> nn.Module | None:
        if self.loaded is None or isinstance(self.loaded.model, torch.jit.ScriptModule):
            return None
        try:
            return self.loaded.model.get_submodule(row.module_name)
        except AttributeError:
            return None

    @Slot()
    def next_layer(self) -> None:
        self.step_layer(1)

    @Slot()
    def previous_layer(self) -> None:
        self.step_layer(-1)

    def step_layer(self, delta: int) -> None:
        if self.rows:
            self.set_layer(max(0, min(len(self.rows) - 1, self.layer_index + delta)))

    def set_layer(self, index: int, *, keep_channel: bool = True) -> None:
        """Step to layer ``index``: the tree, header and details at once; the grid, statistics and
        chosen channel when the layer's view is ready (``view_ready``; at once if it was seen lately)."""
        if not self.rows:
            return
        old = self.current_row
        old_act = self._activation(old) if old is not None else None
        self.layer_index = max(0, min(len(self.rows) - 1, index))
        row = self.rows[self.layer_index]
        act = self._activation(row)
        # Same number of channels (conv → norm → activation): keep the channel to follow it through.
        same_channels = (
            keep_channel
            and old_act is not None
            and act is not None
            and old_act.shape[:1] == act.shape[:1]
            and self.channel is not None
        )
        if not same_channels:
            self.channel = None
        self.unit = None
        self._unit_wanted = None
        self._sync_tree()
        self._update_nav()
        self._show_layer_header(row, act)
        self._show_details(row, act)
        self._request_view()
        if self.cam_layer_combo.currentData() == "current":
            self._request_cam()

    def layer_names(self) -> list[str]:
        return [r.name for r in self.rows]

    def set_layer_by_name(self, name: str) -> None:
        self.set_layer(self.layer_names().index(name))

    def _sync_tree(self) -> None:
        row = self.current_row
        item = self._items.get(row.name) if row is not None else None
        if item is None:
            return
        parent = item.parent()
        while parent is not None:
            parent.setExpanded(True)
            parent = parent.parent()
        self.layer_tree.blockSignals(True)
        self.layer_tree.setCurrentItem(item)
        self.layer_tree.blockSignals(False)
        self.layer_tree.scrollToItem(item)

    @Slot(object, object)
    def _on_tree_item(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        if item is None:
            return
        index = item.data(0, Qt.ItemDataRole.UserRole)
        if index is not None and index != self.layer_index:
            self.set_layer(int(index))

    def _update_nav(self) -> None:
        n = len(self.rows)
        self.prev_button.setEnabled(n > 0 and self.layer_index > 0)
        self.next_button.setEnabled(n > 0 and self.layer_index < n - 1)
        self.position_label.setText(f"{self.layer_index + 1} / {n}" if n else "")

    def _show_layer_header(self, row: LayerRow, act: Activation | None) -> None:
        where = f" <span style='color:#888'>in {row.parent}</span>" if row.parent else ""
        kind = "block output" if row.kind == "block" else row.type
        self.layer_header.setText(
            f"<b>{row.name}</b> &nbsp;<span style='color:#555'>{kind}</span>{where} &nbsp;→&nbsp; "
            f"<span style='color:#06c; font-weight:600'>{shape_text(row.out_shape)}</span>"
        )

    # -- the grid and the chosen channel ------------------------------------------------------------
    def _grid_options(self) -> dict[str, str]:
        return {
            "sort_by": str(self.sort_combo.currentData()),
            "normalize": str(self.scale_combo.currentData()),
            "cmap": self.cmap_combo.currentText(),
        }

    def _request_view(self) -> None:
        """Show the current layer with the current options: from the kept views, or prepared in a worker."""
        row = self.current_row
        if row is None or self.exploration is None or self._shut_down:
            return
        act = self._activation(row)
        self.view = None
        if act is None or act.too_large:
            self._view_wanted = None
            self._cancel_view_job()
            self._show_not_captured(row, act)
            return
        if len(act.shape) not in (1, 3):  # (no zoo model has one; a user's model might)
            self._cancel_view_job()
            self._show_not_captured(row, act, f"A {shape_text(act.shape)} output has no grid picture.")
            return
        options = self._grid_options()
        key = (
            row.name,
            options["sort_by"],
            options["normalize"],
            options["cmap"],
            self.grid.columns_for(act.shape),
        )
        self._view_wanted = key
        kept = self._views.get(key)
        if kept is not None:
            self._views.move_to_end(key)
            self._cancel_view_job()  # whatever was being prepared is stale now
            self._show_view(kept)
            return
        running = self._view_slot.current
        if running is not None and running.is_running:
            if self._view_running == key and not running.is_cancelled:
                self._view_pending = None  # the view under way is the one wanted
                return
            # One at a time: stop the stale one, start this one when it has stopped (a held ↓ replaces
            # the waiting request each time, so nothing piles up).
            running.cancel()
            self._view_pending = key
        else:
            self._start_view_job(key)

    def _start_view_job(self, key: tuple) -> None:
        assert self.exploration is not None
        self._view_pending = None
        self._view_running = key
        name, sort_by, normalize, cmap, columns = key
        capture = self.exploration.capture
        job = self._view_slot.start(
            prepare_layer_view,
            capture,
            name,
            sort_by=sort_by,
            normalize=normalize,
            cmap=cmap,
            columns=columns,
            stats=self._stats.get(name),
            name=f"view {name}",
        )
        job.result.connect(lambda view, job=job: self._on_view_result(job, key, capture, view))
        job.failed.connect(lambda exc, job=job: self._on_view_failed(job, key, exc))
        job.finished.connect(self._on_view_job_finished)

    @Slot()
    def _on_view_job_finished(self) -> None:
        if self._view_pending is not None and not self._view_slot.busy:
            if self.exploration is not None and self._view_pending == self._view_wanted:
                self._start_view_job(self._view_pending)
            else:
                self._view_pending = None

    def _cancel_view_job(self) -> None:
        self._view_pending = None
        self._view_slot.cancel()

    def _on_view_result(self, job: Job, key: tuple, capture: object, view: LayerView) -> None:
        if self.exploration is None or capture is not self.exploration.capture:
            return  # prepared for a model or picture no longer shown
        self._stats[view.name] = view.stats
        self._views[key] = view
        self._views.move_to_end(key)
        while len(self._views) > 1 and (
            len(self._views) > VIEWS_KEPT or sum(v.nbytes for v in self._views.values()) > VIEWS_BYTES
        ):
            self._views.popitem(last=False)
        if key == self._view_wanted:
            self._show_view(view)

    def _on_view_failed(self, job: Job, key: tuple, exc: BaseException) -> None:
        if self._view_slot.is_current(job) and key == self._view_wanted:
            self._view_wanted = None
            self.grid.clear(f"Cannot draw {key[0]}: {exc}")
            self.grid_caption.setText("")
            self.stats_view.clear("")
            self.channel_view.clear_map("")

    def _forget_views(self) -> None:
        """A new exploration: views and statistics of the old one are of no use."""
        self._cancel_view_job()
        self._views.clear()
        self._stats = {}
        self.view = None
        self._view_wanted = None

    def _show_not_captured(self, row: LayerRow, act: Activation | None, message: str = "") -> None:
        """No grid for this step: say why, and clear what belonged to the previous one."""
        if not message and act is not None:
            mb = 2 * int(np.prod(row.out_shape)) / 2**20
            limit = self.max_layer_bytes / 2**20
            message = (
                f"This layer's output ({shape_text(row.out_shape)}, {mb:.0f} MB as float16) is larger than "
                f"the {limit:.0f} MB kept per layer, so it was not captured. Its shape, parameters and "
                "cost are on the right."
            )
        self.grid.clear(message or "Nothing was captured for this step.")
        self.grid_caption.setText("")
        self.channel = None
        self.channel_view.clear_map("")
        self.channel_view.set_title("Channel")
        self.channel_view.set_caption("")
        self.stats_view.clear(
            "Not captured (too large to keep)." if act is not None and act.too_large else ""
        )
        self._show_filters(row)
        self._show_input()

    def _show_view(self, view: LayerView) -> None:
        """The slot's whole job once a view is ready: push its arrays into the widgets."""
        self.view = view
        self._view_wanted = None
        self.grid.show_view(view)
        n = view.channels
        if view.spatial:
            self.grid_caption.setText(f"{n} channels of {view.values.shape[1]}×{view.values.shape[2]}")
        else:
            self.grid_caption.setText(f"a vector of {n} values (one cell each)")
        if self.stats_view.stats is not view.stats:
            self.stats_view.set_stats(view.stats)
        if self._telling_wanted:
            self._telling_wanted = False
            if view.spatial:
                self.channel = self._telling_channel(view.values)
        if self.channel is None or not 0 <= self.channel < n:
            self.channel = int(view.grid.order[0])  # the first in the grid's order
        unit, self._unit_wanted = self._unit_wanted, None
        self.select_channel(self.channel, unit)
        self.view_ready.emit(view.name)

    def select_channel(self, channel: int, unit: tuple[int, int] | None = None) -> None:
        """Enlarge one channel of the current layer; ``unit`` (y, x) is the position whose field is drawn.

        Before the layer's view is ready the choice is remembered and shown with it."""
        row, view = self.current_row, self.view
        if row is None:
            return
        if view is None or view.name != row.name:
            act = self._activation(row)
            if act is not None and not act.too_large:
                self.channel = max(0, min(act.shape[0] - 1, int(channel)))
                self._unit_wanted = unit
            return
        n = view.channels
        self.channel = max(0, min(n - 1, int(channel)))
        self.grid.set_selected(self.channel)
        if view.spatial:
            fmap = view.channel_map(self.channel)
            if unit is None:
                unit = tuple(int(v) for v in np.unravel_index(int(np.argmax(fmap)), fmap.shape))
            self.unit = (max(0, min(fmap.shape[0] - 1, unit[0])), max(0, min(fmap.shape[1] - 1, unit[1])))
            levels = view.grid.value_range if view.scaling == "layer" else None
            self.channel_view.set_map(fmap, colormap=colormap(view.cmap), levels=levels)
            size = f"{fmap.shape[0]}×{fmap.shape[1]}"
            self.channel_view.set_title(
                f"Channel {self.channel} of {n} &nbsp;<span style='color:#06c'>{size}</span>"
            )
            y, x = self.unit
            self.channel_view.set_highlight("unit", [(y, x, 1, 1)], RF_COLOUR)
            self.channel_view.set_caption(
                f"mean {fmap.mean():.3g}, max {fmap.max():.3g}. The outlined unit ({y}, {x}) = "
                f"{fmap[y, x]:.3g}; click another to see what it sees."
            )
        else:
            self.unit = None
            value = float(view.values[self.channel, 0, 0])
            self.channel_view.clear_map(
                f"{row.type} gives a vector of {n} numbers: no spatial layout left.\n"
                f"Unit {self.channel} = {value:.4g}"
            )
            self.channel_view.set_title(f"Unit {self.channel} of {n}")
            self.channel_view.set_caption("")
        self._show_input()
        self._show_filters(row)

    def step_channel(self, delta: int) -> None:
        """Next / previous channel in the grid's order."""
        order = self.grid.order
        if self.channel is None or order.size == 0:
            return
        where = np.flatnonzero(order == self.channel)
        pos = int(where[0]) if where.size else 0
        self.select_channel(int(order[max(0, min(order.size - 1, pos + delta))]))

    @Slot(int, int, int)
    def _on_channel_clicked(self, channel: int, y: int, x: int) -> None:
        self.select_channel(channel, (y, x))

    @Slot(int, int)
    def _on_unit_clicked(self, y: int, x: int) -> None:
        if self.channel is not None:
            self.select_channel(self.channel, (y, x))

    @Slot(int, int)
    def _on_input_clicked(self, py: int, px: int) -> None:
        """A click on the picture picks the unit whose field is centred nearest to it."""
        row = self.current_row
        if row is None or self.channel is None or not row.spatial or row.rf_jump is None:
            return
        if row.rf_start is None:
            return
        y = round((py - row.rf_start[0]) / row.rf_jump[0])
        x = round((px - row.rf_start[1]) / row.rf_jump[1])
        self.select_channel(self.channel, (y, x))

    @Slot()
    def _on_grid_options(self) -> None:
        if self.grid.fmap is None:
            return
        self._unit_wanted = self.unit  # the same channel and unit, drawn the new way
        self._request_view()

    # -- the picture, receptive field and Grad-CAM --------------------------------------------------
    def receptive_field(self) -> tuple[int, int, int, int] | None:
        """(top, left, height, width) of the selected unit's field on the picture, as drawn."""
        rects = self.input_view.highlight_rects("rf")
        return rects[0] if rects else None

    def _show_input(self) -> None:
        ex = self.exploration
        if ex is None:
            self._input_drawn = None
            self.input_view.clear_map("")
            return
        pixels = ex.pixels
        h, w = pixels.shape[:2]
        cam = self.cam if self.cam_check.isChecked() else None
        if cam is not None and cam.heatmap.shape != (h, w):
            cam = None
        drawn = self._input_drawn
        if drawn is None or drawn[0] is not pixels or drawn[1] is not cam:
            # (Stepping layers only moves the field: the picture is drawn again only when it changes.)
            self._input_drawn = (pixels, cam)
            if cam is not None:
                self.input_view.set_map(overlay(pixels, cam.heatmap) / 255.0, values=cam.heatmap)
            elif pixels.ndim == 3:
                self.input_view.set_map(pixels / 255.0, values=pixels)
            else:
                self.input_view.set_map(pixels.astype(np.float32), colormap=colormap("gray"), levels=(0, 255))
        pre = self.loaded.preprocess if self.loaded is not None else None
        how = ""
        if pre is not None:
            grey = ", grey" if pre.grayscale else ""
            how = f" (short side {pre.resize}, centre {pre.crop}×{pre.crop}{grey})"
        self.input_view.set_title(f"What the network sees &nbsp;<span style='color:#06c'>{w}×{h}</span>")
        self.input_view.title_label.setToolTip(f"The picture after preprocessing{how}")
        row = self.current_row
        caption = ""
        if row is not None and self.unit is not None and row.spatial:
            region = receptive_region(row, self.unit[0], self.unit[1], (h, w))
            self.input_view.set_highlight(
                "rf", [(region.top, region.left, region.height, region.width)], RF_COLOUR, width=2.5
            )
            caption = (
                f"<span style='color:{RF_COLOUR}'>■</span> Receptive field of unit {self.unit}: "
                f"rows {region.top}–{region.bottom}, cols {region.left}–{region.right} "
                f"({region.height}×{region.width} px)"
            )
            if region.clipped:
                full = f"{region.full_height}×{region.full_width}"
                caption += f"; its full {full} field reaches into the padding"
        else:
            self.input_view.set_highlight("rf", None)
            if row is not None and not row.spatial:
                caption = "Every unit of this layer sees the whole picture."
        if cam is not None:
            caption += (
                f"<br>Grad-CAM: bright = regions that raised “{self._class_name(cam.class_index)}” "
                f"at {cam.layer}"
            )
        self.input_view.set_caption(caption)

    def _class_name(self, index: int) -> str:
        cats = self.loaded.categories if self.loaded is not None else []
        return cats[index] if 0 <= index < len(cats) else f"class {index}"

    def _cam_layer(self) -> str | None:
        if self.exploration is None or not self.rows:
            return None
        if self.cam_layer_combo.currentData() == "current":
            row = self.current_row
            return row.name if row is not None else None
        try:
            return default_cam_layer(self.exploration.table)
        except ValueError:
            return None

    @Slot()
    def _on_cam_class_changed(self) -> None:
        self.predictions.set_selected(self.cam_class_combo.currentData())
        self._request_cam()

    @Slot(int)
    def _on_prediction_clicked(self, class_index: int) -> None:
        i = self.cam_class_combo.findData(class_index)
        if i >= 0:
            self.cam_class_combo.setCurrentIndex(i)
        self.cam_check.setChecked(True)  # clicking a class asks "where did you see it?"

    @Slot()
    def _request_cam(self) -> None:
        """Show the Grad-CAM overlay for the chosen class and layer (cached, else computed in a worker)."""
        if not self.cam_check.isChecked() or self.exploration is None or self.loaded is None:
            self.cam_info.setText("")
            self._show_input()
            return
        if not self.rows:
            self.cam_info.setText("Grad-CAM needs the model's layers; a TorchScript model hides them.")
            return
        layer = self._cam_layer()
        class_index = self.cam_class_combo.currentData()
        row = self.rows[self.layer_names().index(layer)] if layer in self.layer_names() else None
        if layer is None or row is None or class_index is None:
            return
        if not (row.spatial and row.out_shape[1] * row.out_shape[2] > 1):
            self.cam = None
            self.cam_info.setText(
                f"{layer} has no spatial map ({shape_text(row.out_shape)}): Grad-CAM needs one. Step to an "
                "earlier layer or choose “Last spatial layer”."
            )
            self._show_input()
            return
        key = (self.shown_source.key, self._image_key, layer, int(class_index))
        if key in self._cams:
            self._cams.move_to_end(key)
            self._show_cam(self._cams[key])
            return
        if self._pending is not None and self._pending[0] == "model":
            return  # a new model / picture is on its way; its result asks again
        if self._slot.busy and self._job_kind == "model":
            return
        if self._model_busy() and self._cam_target == key:
            return  # already being computed
        loaded, pixels = self.loaded, self.image.pixels if self.image is not None else None
        if pixels is None:
            return
        self.cam_info.setText(f"Computing Grad-CAM for “{self._class_name(int(class_index))}” at {layer}…")

        def start() -> Job:
            job = self._slot.start(compute_cam, loaded, pixels, layer, int(class_index), name="grad-cam")
            job.result.connect(lambda res, job=job: self._on_cam_result(job, key, res))
            job.failed.connect(lambda exc, job=job: self._on_cam_failed(job, exc))
            return job

        self.stage_label.setText("Grad-CAM…")
        self._cam_target = key
        self._submit("cam", start)

    def _on_cam_result(self, job: Job, key: tuple, result: CamResult) -> None:
        self._cams[key] = result
        while len(self._cams) > CAMS_KEPT:
            self._cams.popitem(last=False)
        if not self._slot.is_current(job) or self.shown_source is None:
            return
        layer, class_index = self._cam_layer(), self.cam_class_combo.currentData()
        if (self.shown_source.key, self._image_key, layer, class_index) == key:
            self._show_cam(result)

    def _on_cam_failed(self, job: Job, exc: BaseException) -> None:
        if self._slot.is_current(job):
            self.cam = None
            self.cam_info.setText(f"Grad-CAM failed: {exc}")
            self._show_input()

    def _show_cam(self, result: CamResult) -> None:
        self.cam = result
        row_shape = result.raw.shape
        note = " (no evidence for this class at this layer)" if result.empty else ""
        self.cam_info.setText(
            f"Evidence for “{self._class_name(result.class_index)}” (score {result.score:.2f}) from "
            f"{result.layer}, a {row_shape[0]}×{row_shape[1]} map scaled up to the picture{note}."
        )
        self._show_input()

    # -- side panel -------------------------------------------------------------------------------
    def _show_details(self, row: LayerRow, act: Activation | None) -> None:
        children = sum(1 for r in self.rows if r.parent == row.name)
        self.details.set_layer(row, self._module(row), act, children)

    def _show_filters(self, row: LayerRow) -> None:
        """The layer's filters, drawn only while the Filters tab is shown (else when it is)."""
        if self.tabs.currentWidget() is not self.filter_view:
            self._filters_stale = True
            return
        self._filters_stale = False
        self.filter_view.set_module(self._module(row), selected=self.channel, type_name=row.type)

    @Slot(int)
    def _on_tab_changed(self, _index: int) -> None:
        row = self.current_row
        if self._filters_stale and row is not None:
            self._show_filters(row)

    # =================================================================================================
    # Busy state, keys, showing
    # =================================================================================================
    def _update_busy(self) -> None:
        busy = self._model_busy()  # (preparing a layer view is too quick to be worth a progress bar)
        self.status_stack.setCurrentIndex(1 if busy else 0)
        if busy and self.progress.maximum() != 0 and not self._downloading:
            self.progress.setRange(0, 0)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self._run()

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
            return True
        if key in _CHANNEL_KEYS:
            self.step_channel(_CHANNEL_KEYS[key])
            return True
        if key == Qt.Key.Key_Home:
            self.set_layer(0)
            return True
        if key == Qt.Key.Key_End:
            self.set_layer(len(self.rows) - 1)
            return True
        return False

    # -- choosing a model ------------------------------------------------------------------------
    @Slot(int)
    def _on_model_chosen(self, index: int) -> None:
        key = self.model_combo.itemData(index)
        if key is None or key not in self._sources:
            return
        self._source = self._sources[key]
        self.notice_label.setVisible(False)
        self._run()

    # -- choosing a telling channel for the screenshot ----------------------------------------------
    def _quarter_size_layer(self) -> int:
        size = self.rows[0].in_shape[-1] if self.rows and self.rows[0].in_shape else 224
        for i, row in enumerate(self.rows):
            if row.spatial and row.out_shape[-1] <= size // 4 and "ReLU" in row.type:
                return i
        return min(len(self.rows) - 1, len(self.rows) // 4)

    @staticmethod
    def _telling_channel(fmap: np.ndarray) -> int:
        """A channel that fires on a small part of the picture (an eye, a stripe), not everywhere."""
        flat = fmap.reshape(fmap.shape[0], -1).astype(np.float32)
        peak = flat.max(axis=1)
        mean = np.abs(flat).mean(axis=1) + 1e-6
        score = peak / mean * (peak >= np.quantile(peak, 0.5))
        return int(np.argmax(score))
