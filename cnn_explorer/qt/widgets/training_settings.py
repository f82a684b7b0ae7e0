"""The settings of a fine-tuning run: model, strategy (with the recommendation), hyper-parameters.

``TrainingSettingsForm`` is two group boxes, "Model and strategy" and "Hyper-parameters", whose controls map
one to one onto :class:`~cnn_explorer.core.training.TrainConfig` (defaults from it):

- ``config(data) -> TrainConfig`` reads them (``ConfigError`` names a bad setting, e.g. a learning rate
  that is not a number; an empty learning rate means the strategy's default, shown as the placeholder);
- ``set_dataset_size(n)`` feeds the course's rule of thumb (core ``recommend_strategy``): the
  recommendation and its reason are shown, with a button that applies it; ``imagenet_check`` is the
  "similar to ImageNet" half of the rule;
- ``choose_size(px)`` picks an input size; ``split_changed`` is emitted when the validation share or the
  seed changes (the page re-splits the dataset).

The model's weights status (core ``zoo.weights_status``) is shown under the model and turns red when a
pretrained strategy would in fact start from random weights.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.training import (
    STRATEGIES,
    STRATEGY_TITLES,
    ConfigError,
    TrainConfig,
    resolve_device,
)
from cnn_explorer.core.transfer.guide import recommend_strategy

SMALLER_SIZES = (192, 160, 128, 96, 64, 48, 32)


class TrainingSettingsForm(QWidget):
    split_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._n_images: int | None = None
        self._recommended = "feature-extractor"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_model_group())
        layout.addWidget(self._build_params_group())
        # Combo boxes would otherwise ask for the width of their longest entry and push the form wider
        # than its column; they elide instead and show the whole text when opened.
        for combo in self.findChildren(QComboBox):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self._on_model_changed()
        self._on_strategy_changed()

    @staticmethod
    def _form(group: QGroupBox) -> QFormLayout:
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(8, 6, 8, 6)
        form.setVerticalSpacing(4)
        return form

    def _build_model_group(self) -> QGroupBox:
        group = QGroupBox("2 · Model and strategy")
        form = self._form(group)
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
        self.weights_label.setStyleSheet("color: #555; font-size: 11px;")
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

        self.imagenet_check = QCheckBox("My pictures look like ImageNet photos")
        self.imagenet_check.setToolTip(
            "ImageNet holds photos of everyday objects, animals and scenes. X-rays, drawings, satellite "
            "images or silhouettes are not like them."
        )
        self.imagenet_check.setChecked(True)
        self.imagenet_check.toggled.connect(self._update_recommendation)
        form.addRow(self.imagenet_check)
        self.recommend_label = QLabel()
        self.recommend_label.setWordWrap(True)
        self.recommend_label.setTextFormat(Qt.TextFormat.RichText)
        self.recommend_label.setStyleSheet("background: #f4f6f8; border: 1px solid #dde2e7; padding: 5px;")
        form.addRow(self.recommend_label)
        self.use_recommended_button = QPushButton("Use the recommended strategy")
        self.use_recommended_button.clicked.connect(self.use_recommendation)
        form.addRow(self.use_recommended_button)
        return group

    def _build_params_group(self) -> QGroupBox:
        d = TrainConfig()
        group = QGroupBox("3 · Hyper-parameters")
        form = self._form(group)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(d.epochs)
        form.addRow("Epochs", self.epochs_spin)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(d.batch_size)
        form.addRow("Batch size", self.batch_spin)
        self.lr_edit = QLineEdit()
        self.lr_edit.setToolTip(
            "Empty: a learning rate that suits the strategy and optimizer. Or type e.g. 3e-4."
        )
        form.addRow("Learning rate", self.lr_edit)
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItem(f"SGD, momentum {d.momentum}, weight decay {d.weight_decay:g}", "sgd")
        self.optimizer_combo.addItem("AdamW", "adamw")
        self.optimizer_combo.currentIndexChanged.connect(self._on_strategy_changed)
        form.addRow("Optimizer", self.optimizer_combo)
        self.schedule_combo = QComboBox()
        for text, key in (
            ("cosine decay", "cosine"),
            ("step (×0.1 every third)", "step"),
            ("constant", "constant"),
        ):
            self.schedule_combo.addItem(text, key)
        form.addRow("Schedule", self.schedule_combo)
        self.smoothing_spin = QDoubleSpinBox()
        self.smoothing_spin.setRange(0.0, 0.5)
        self.smoothing_spin.setSingleStep(0.05)
        self.smoothing_spin.setValue(d.label_smoothing)
        form.addRow("Label smoothing", self.smoothing_spin)
        self.size_combo = QComboBox()
        self.size_combo.setToolTip("Smaller inputs train much faster on a CPU, at some cost in accuracy")
        form.addRow("Input size", self.size_combo)

        aug = QWidget()
        grid = QVBoxLayout(aug)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        row1 = QHBoxLayout()
        self.crop_check = QCheckBox("random crop")
        self.crop_check.setChecked(d.augmentation.random_resized_crop)
        self.flip_check = QCheckBox("flip")
        self.flip_check.setChecked(d.augmentation.flip)
        row1.addWidget(self.crop_check)
        row1.addWidget(self.flip_check)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        self.rotation_spin = QSpinBox()
        self.rotation_spin.setRange(0, 180)
        self.rotation_spin.setSuffix("°")
        self.rotation_spin.setPrefix("rotate ±")
        self.rotation_spin.setValue(int(d.augmentation.rotation))
        self.jitter_spin = QDoubleSpinBox()
        self.jitter_spin.setRange(0.0, 1.0)
        self.jitter_spin.setSingleStep(0.1)
        self.jitter_spin.setPrefix("colour ")
        self.jitter_spin.setValue(d.augmentation.color_jitter)
        row2.addWidget(self.rotation_spin)
        row2.addWidget(self.jitter_spin)
        grid.addLayout(row1)
        grid.addLayout(row2)
        form.addRow("Augment", aug)
        self.cache_check = QCheckBox("cache the frozen backbone's embeddings")
        self.cache_check.setChecked(d.cache_embeddings)
        self.cache_check.setToolTip(
            "Feature extractor only: the backbone runs once per image; later epochs train only the head "
            "(and augmentation is off, since the cached embeddings are of the plain images)."
        )
        form.addRow(self.cache_check)

        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(0.05, 0.5)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setValue(d.val_fraction)
        self.val_spin.setToolTip("Share of each class kept for validation (data/<class>/ layout only)")
        self.val_spin.valueChanged.connect(self.split_changed)
        form.addRow("Validation share", self.val_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(d.seed)
        self.seed_spin.valueChanged.connect(self.split_changed)
        form.addRow("Seed", self.seed_spin)
        self.device_combo = QComboBox()
        for key in ("auto", "cpu", "cuda", "mps"):
            try:
                resolved = resolve_device(key)
            except ConfigError:
                self.device_combo.addItem(f"{key} (not available)", key)
                self.device_combo.model().item(self.device_combo.count() - 1).setEnabled(False)
                continue
            self.device_combo.addItem(f"automatic ({resolved.type})" if key == "auto" else key, key)
        form.addRow("Device", self.device_combo)
        return group

    def _on_model_changed(self) -> None:
        info = zoo.get_info(str(self.model_combo.currentData()))
        previous = self.size_combo.currentData()
        self.size_combo.clear()
        self.size_combo.addItem(f"the model's own ({info.input_size} px)", None)
        for size in SMALLER_SIZES:
            if max(16, info.min_size) <= size < info.input_size:
                self.size_combo.addItem(f"{size} px", size)
        if previous is not None:
            self.choose_size(int(previous))
        self._update_weights_label()

    def _update_weights_label(self) -> None:
        """Where the starting weights come from; red when a pretrained strategy would start untrained."""
        name = str(self.model_combo.currentData())
        kind, detail = zoo.weights_status(name)
        warn = kind == "untrained" and self.strategy_combo.currentData() != "scratch"
        colour = "#a31515" if warn else "#555"
        extra = " — this run would in effect train from scratch" if warn else ""
        self.weights_label.setText(
            f"{html.escape(zoo.get_info(name).summary)}<br>"
            f"<span style='color:{colour}'>Weights: {html.escape(detail)}{extra}</span>"
        )

    def choose_size(self, size: int) -> None:
        """Input size in pixels (the model's own when it does not offer ``size``)."""
        index = self.size_combo.findData(size)
        self.size_combo.setCurrentIndex(index if index >= 0 else 0)

    def _on_strategy_changed(self) -> None:
        strategy = str(self.strategy_combo.currentData())
        optimizer = str(self.optimizer_combo.currentData())
        lr = TrainConfig(strategy=strategy, optimizer=optimizer).effective_lr()
        self.lr_edit.setPlaceholderText(f"auto: {lr:g}")
        top = strategy == "fine-tune-top"
        self.top_blocks_spin.setVisible(top)
        self.top_blocks_label.setVisible(top)
        self.cache_check.setEnabled(strategy == "feature-extractor")
        self._update_weights_label()
        self._update_recommendation()

    def set_dataset_size(self, n_images: int | None) -> None:
        """The number of usable images (None: no dataset), for the recommendation."""
        self._n_images = n_images
        self._update_recommendation()

    def _update_recommendation(self) -> None:
        if self._n_images is None:
            self.recommend_label.setText("<i>Choose a dataset to get a recommended strategy.</i>")
            self.use_recommended_button.setEnabled(False)
            return
        rec = recommend_strategy(self._n_images, self.imagenet_check.isChecked())
        self.recommend_label.setText(
            f"<b>Recommended: {html.escape(STRATEGY_TITLES[rec.strategy])}.</b> {html.escape(rec.reason)}"
        )
        self.use_recommended_button.setEnabled(rec.strategy != self.strategy_combo.currentData())
        self._recommended = rec.strategy

    @Slot()
    def use_recommendation(self) -> None:
        if self._n_images is not None:
            self.strategy_combo.setCurrentIndex(STRATEGIES.index(self._recommended))

    def config(self, data: str = "") -> TrainConfig:
        """The settings as a TrainConfig for the dataset folder ``data``; ConfigError for a bad one."""
        text = self.lr_edit.text().strip()
        lr: float | None = None
        if text:
            try:
                lr = float(text)
            except ValueError:
                raise ConfigError(f"Invalid setting: the learning rate '{text}' is not a number.") from None
        config = TrainConfig(
            data=data,
            model=str(self.model_combo.currentData()),
            strategy=str(self.strategy_combo.currentData()),
            top_blocks=self.top_blocks_spin.value(),
            epochs=self.epochs_spin.value(),
            batch_size=self.batch_spin.value(),
            lr=lr,
            optimizer=str(self.optimizer_combo.currentData()),
            schedule=str(self.schedule_combo.currentData()),
            label_smoothing=round(self.smoothing_spin.value(), 4),
            augmentation=Augmentation(
                random_resized_crop=self.crop_check.isChecked(),
                flip=self.flip_check.isChecked(),
                rotation=float(self.rotation_spin.value()),
                color_jitter=round(self.jitter_spin.value(), 4),
            ),
            cache_embeddings=self.cache_check.isChecked(),
            image_size=self.size_combo.currentData(),
            val_fraction=round(self.val_spin.value(), 4),
            seed=self.seed_spin.value(),
            device=str(self.device_combo.currentData()),
        )
        config.validate()
        return config
