"""The settings of a fine-tuning run: model, strategy (with the guide's recommendation), hyper-parameters.

``TrainingSettingsForm`` is two group boxes, "Model and strategy" and "Hyper-parameters"
(:class:`~cnn_explorer.qt.widgets.training_params.HyperParamsBox`), whose controls map one to one onto
:class:`~cnn_explorer.core.train_config.TrainConfig`:

- ``config(data) -> TrainConfig`` reads them (``ConfigError`` names a bad setting, e.g. a learning rate
  that is not a number); ``changed()`` is emitted whenever any of them changes;
- ``set_recommendation(rec, similarity_text)`` shows the course's guide for this dataset (computed by the
  page's session from the dataset size and the similarity to ImageNet), with a button that applies it;
- the strategy "linear classifier on an earlier layer" shows a cut-layer combo (``cut_layer_combo``,
  the model's probe points); ``model_changed(str)`` and ``cut_layer_changed(str)`` tell the page.

The model's weights status (core ``zoo.weights_status``) is shown under the model and turns red when a
pretrained strategy would in fact start from random weights.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.text import BadgeKind
from cnn_explorer.core.train_config import STRATEGIES, STRATEGY_TITLES, TrainConfig
from cnn_explorer.core.transfer.layers import halfway, skeleton_probe_layers
from cnn_explorer.core.transfer.results import Recommendation
from cnn_explorer.core.transfer.strategies import strategy_class
from cnn_explorer.qt.style import BADGE_COLOURS, MUTED, SMALL_MUTED_STYLE
from cnn_explorer.qt.widgets.training_params import HyperParamsBox, form_layout

CASE_NAMES = {1: "small · similar", 2: "large · similar", 3: "small · different", 4: "large · different"}


class TrainingSettingsForm(QWidget):
    split_changed = Signal()
    model_changed = Signal(str)
    strategy_changed = Signal(str)
    cut_layer_changed = Signal(str)
    changed = Signal()  # any setting changed (the page's command lines follow the form)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._recommendation: Recommendation | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_model_group())
        self.params = HyperParamsBox()
        self.params.split_changed.connect(self.split_changed)
        layout.addWidget(self.params)
        p = self.params  # the form's names for the box's controls (the page and its tests use them)
        self.epochs_spin, self.batch_spin, self.lr_edit = p.epochs_spin, p.batch_spin, p.lr_edit
        self.optimizer_combo, self.schedule_combo, self.size_combo = (
            p.optimizer_combo,
            p.schedule_combo,
            p.size_combo,
        )
        self.val_spin, self.seed_spin, self.cache_check = p.val_spin, p.seed_spin, p.cache_check
        # Combo boxes would otherwise ask for the width of their longest entry and push the form wider
        # than its column; they elide instead and show the whole text when opened.
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
            combo.currentIndexChanged.connect(self.changed)
        for check in self.findChildren(QCheckBox):
            check.toggled.connect(self.changed)
        for edit in self.findChildren(QLineEdit):
            if not isinstance(edit.parent(), QAbstractSpinBox):  # a spin box's own line edit
                edit.textChanged.connect(self.changed)
        for spin in (*self.findChildren(QSpinBox), *self.findChildren(QDoubleSpinBox)):
            spin.valueChanged.connect(self.changed)
        self._on_model_changed()
        self._on_strategy_changed()
        self.set_recommendation(None, "")

    def _build_model_group(self) -> QGroupBox:
        group = QGroupBox("2 · Model and strategy")
        form = form_layout(group)
        self.model_combo = QComboBox()
        for info in zoo.available_models():
            self.model_combo.addItem(info.title, info.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, info.summary, Qt.ItemDataRole.ToolTipRole
            )
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(zoo.DEFAULT_MODEL)))
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        form.addRow("Model", self.model_combo)
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setTextFormat(Qt.TextFormat.RichText)
        self.weights_label.setStyleSheet(SMALL_MUTED_STYLE)
        form.addRow(self.weights_label)

        self.strategy_combo = QComboBox()
        for key in STRATEGIES:
            self.strategy_combo.addItem(STRATEGY_TITLES[key], key)
            self.strategy_combo.setItemData(
                self.strategy_combo.count() - 1, STRATEGY_TITLES[key], Qt.ItemDataRole.ToolTipRole
            )
        self.strategy_combo.currentIndexChanged.connect(self._on_strategy_changed)
        form.addRow("Strategy", self.strategy_combo)
        self.top_blocks_spin = QSpinBox()
        self.top_blocks_spin.setRange(1, 50)
        self.top_blocks_spin.setValue(TrainConfig().top_blocks)
        self.top_blocks_spin.setToolTip("How many of the backbone's last blocks are trained with the head")
        self.top_blocks_label = QLabel("Top blocks")
        form.addRow(self.top_blocks_label, self.top_blocks_spin)
        self.cut_layer_combo = QComboBox()
        self.cut_layer_combo.setToolTip(
            "The layer whose global-average-pooled output the linear classifier reads. Earlier layers are "
            "more generic; the Guide tab's probe of every block shows which works best for your data."
        )
        self.cut_layer_combo.currentIndexChanged.connect(self._on_cut_layer_changed)
        self.cut_layer_label = QLabel("Cut at layer")
        form.addRow(self.cut_layer_label, self.cut_layer_combo)

        self.similar_label = QLabel()
        self.similar_label.setWordWrap(True)
        self.similar_label.setTextFormat(Qt.TextFormat.RichText)
        self.similar_label.setStyleSheet(SMALL_MUTED_STYLE)
        form.addRow(self.similar_label)
        self.recommend_label = QLabel()
        self.recommend_label.setWordWrap(True)
        self.recommend_label.setTextFormat(Qt.TextFormat.RichText)
        self.recommend_label.setStyleSheet("background: #f4f6f8; border: 1px solid #dde2e7; padding: 5px;")
        form.addRow(self.recommend_label)
        self.use_recommended_button = QPushButton("Use the recommended strategy")
        self.use_recommended_button.clicked.connect(self.use_recommendation)
        form.addRow(self.use_recommended_button)
        return group

    # -- reactions --------------------------------------------------------------------------------
    def _on_model_changed(self) -> None:
        name = str(self.model_combo.currentData())
        self.params.set_model(zoo.get_info(name))
        previous = self.cut_layer_combo.currentData()
        self.cut_layer_combo.blockSignals(True)
        self.cut_layer_combo.clear()
        layers = skeleton_probe_layers(name)
        for depth, layer in enumerate(layers, start=1):
            self.cut_layer_combo.addItem(f"{layer}  (depth {depth}/{len(layers)})", layer)
        index = self.cut_layer_combo.findData(previous)
        self.cut_layer_combo.setCurrentIndex(
            index if index >= 0 else self.cut_layer_combo.findData(halfway(layers))
        )
        self.cut_layer_combo.blockSignals(False)
        self._update_weights_label()
        self.model_changed.emit(name)

    def _on_strategy_changed(self) -> None:
        strategy = str(self.strategy_combo.currentData())
        self.params.set_strategy(strategy)
        for w in (self.top_blocks_spin, self.top_blocks_label):
            w.setVisible(strategy == "fine-tune-top")
        for w in (self.cut_layer_combo, self.cut_layer_label):
            w.setVisible(strategy == "linear-probe")
        self._update_weights_label()
        self._update_use_button()
        self.strategy_changed.emit(strategy)

    def _on_cut_layer_changed(self) -> None:
        layer = self.cut_layer_combo.currentData()
        if layer:
            self._update_use_button()
            self.cut_layer_changed.emit(str(layer))

    def _update_weights_label(self) -> None:
        """Where the starting weights come from; red when a pretrained strategy would start untrained."""
        name = str(self.model_combo.currentData())
        kind, detail = zoo.weights_status(name)
        warn = kind == "untrained" and strategy_class(str(self.strategy_combo.currentData())).pretrained
        colour = BADGE_COLOURS[BadgeKind.UNTRAINED][0] if warn else MUTED
        extra = " — this run would in effect train from scratch" if warn else ""
        self.weights_label.setText(
            f"{html.escape(zoo.get_info(name).summary)}<br>"
            f"<span style='color:{colour}'>Weights: {html.escape(detail)}{extra}</span>"
        )

    # -- the page's side --------------------------------------------------------------------------
    def set_recommendation(self, rec: Recommendation | None, similarity_text: str) -> None:
        """The guide's advice (None: no dataset yet, or its similarity not known yet) and one line on
        how "similar to ImageNet" was decided."""
        self._recommendation = rec
        self.similar_label.setText(similarity_text)
        self.similar_label.setVisible(bool(similarity_text))
        if rec is None:
            self.recommend_label.setText(
                "<i>Choose a dataset to get a recommended strategy.</i>"
                if not similarity_text
                else "<i>The recommendation follows once it is known whether the pictures look like "
                "ImageNet's.</i>"
            )
        else:
            where = f", at layer <b>{html.escape(rec.cut_layer)}</b>" if rec.cut_layer else ""
            also = (
                f" (also possible: {html.escape(STRATEGY_TITLES[rec.alternative])})"
                if rec.alternative
                else ""
            )
            self.recommend_label.setText(
                f"<b>Recommended (case {int(rec.case)}, {CASE_NAMES[int(rec.case)]}): "
                f"{html.escape(STRATEGY_TITLES[rec.strategy])}</b>{where}{also}. {html.escape(rec.reason)}"
            )
        self._update_use_button()

    def _update_use_button(self) -> None:
        rec = self._recommendation
        differs = rec is not None and (
            rec.strategy != self.strategy_combo.currentData()
            or (rec.cut_layer is not None and rec.cut_layer != self.cut_layer_combo.currentData())
        )
        self.use_recommended_button.setEnabled(differs)

    @Slot()
    def use_recommendation(self) -> None:
        rec = self._recommendation
        if rec is None:
            return
        self.strategy_combo.setCurrentIndex(STRATEGIES.index(rec.strategy))
        if rec.cut_layer:
            self.set_cut_layer(rec.cut_layer)

    def set_cut_layer(self, layer: str) -> None:
        index = self.cut_layer_combo.findData(layer)
        if index >= 0:
            self.cut_layer_combo.setCurrentIndex(index)

    def choose_size(self, size: int) -> None:
        self.params.choose_size(size)

    def set_lr(self, lr: float) -> None:
        self.params.set_lr(lr)

    def config(self, data: str = "", *, watch_image: str = "") -> TrainConfig:
        """The settings as a TrainConfig for the dataset folder ``data``; ConfigError for a bad one."""
        p = self.params
        strategy = str(self.strategy_combo.currentData())
        config = TrainConfig(
            data=data,
            model=str(self.model_combo.currentData()),
            strategy=strategy,
            top_blocks=self.top_blocks_spin.value(),
            cut_layer=str(self.cut_layer_combo.currentData() or "") if strategy == "linear-probe" else "",
            epochs=p.epochs_spin.value(),
            batch_size=p.batch_spin.value(),
            lr=p.lr(),
            lr_mult=round(p.lr_mult_spin.value(), 4),
            optimizer=str(p.optimizer_combo.currentData()),
            momentum=round(p.momentum_spin.value(), 4),
            weight_decay=round(p.weight_decay_spin.value(), 6),
            schedule=str(p.schedule_combo.currentData()),
            label_smoothing=round(p.smoothing_spin.value(), 4),
            dropout=round(p.dropout_spin.value(), 4),
            augmentation=p.augmentation(),
            cache_embeddings=p.cache_check.isChecked(),
            image_size=p.size_combo.currentData(),
            val_fraction=round(p.val_spin.value(), 4),
            seed=p.seed_spin.value(),
            device=str(p.device_combo.currentData()),
            num_workers=p.num_workers(),
            precision=str(p.precision_combo.currentData()),
            channels_last=p.channels_last_check.isChecked(),
            watch_image=watch_image,
        )
        config.validate()
        return config
