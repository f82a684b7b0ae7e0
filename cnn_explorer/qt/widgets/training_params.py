"""The "3 · Hyper-parameters" box of the fine-tune form: every setting the course names, defaults from
:class:`~cnn_explorer.core.train_config.TrainConfig`.

Epochs, batch size, learning rate (empty: the strategy's default, shown as the placeholder; the LR finder
fills it in), the LR factor of the earliest block (discriminative rates, fine-tune-top/-all only),
optimizer with momentum (SGD) and weight decay, schedule, label smoothing, dropout before the new head,
input size, augmentation, the embedding cache, validation share, seed and device.

The embedding cache and augmentation cannot both act: the cache holds the frozen layers' output for the
plain images. While the cache is on for a strategy that uses it, the augmentation controls are greyed
out and a line says why (``augment_note``); the run then trains without augmentation, as shown.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core import zoo
from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.train_config import ConfigError, TrainConfig, resolve_device
from cnn_explorer.core.transfer.strategies import strategy_class
from cnn_explorer.qt.style import SMALL_MUTED_STYLE

SMALLER_SIZES = (192, 160, 128, 96, 64, 48, 32)
AUGMENT_OFF_WITH_CACHE = (
    "Augmentation is off while the embedding cache is on: the cache holds the frozen layers' output for "
    "the plain images. Untick the cache to augment (every epoch then runs the whole network)."
)


def form_layout(group: QGroupBox) -> QFormLayout:
    form = QFormLayout(group)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setContentsMargins(8, 6, 8, 6)
    form.setVerticalSpacing(4)
    return form


class HyperParamsBox(QGroupBox):
    split_changed = Signal()  # the validation share or the seed changed: the dataset is split anew

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("3 · Hyper-parameters", parent)
        d = TrainConfig()
        self._strategy = d.strategy
        form = self.form = form_layout(self)
        self.epochs_spin = _spin(1, 1000, d.epochs)
        form.addRow("Epochs", self.epochs_spin)
        self.batch_spin = _spin(1, 1024, d.batch_size)
        form.addRow("Batch size", self.batch_spin)
        self.lr_edit = QLineEdit()
        self.lr_edit.setToolTip(
            "Empty: a learning rate that suits the strategy and optimizer. Or type e.g. 3e-4, or click a "
            "point of the LR finder's curve."
        )
        form.addRow("Learning rate", self.lr_edit)
        self.lr_mult_spin = _dspin(0.001, 1.0, d.lr_mult, step=0.1, decimals=3)
        self.lr_mult_spin.setToolTip(
            "Discriminative learning rates: the earliest trained block learns at this factor of the head's "
            "rate, the blocks between on a geometric scale. 1 = one rate for all; 0.1 is common."
        )
        self.lr_mult_label = QLabel("Earliest block's LR ×")
        form.addRow(self.lr_mult_label, self.lr_mult_spin)
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItem("SGD with momentum", "sgd")
        self.optimizer_combo.addItem("AdamW", "adamw")
        self.optimizer_combo.currentIndexChanged.connect(self._update)
        form.addRow("Optimizer", self.optimizer_combo)
        self.momentum_spin = _dspin(0.0, 0.999, d.momentum, step=0.05, decimals=3)
        self.momentum_spin.setToolTip("v ← μ·v − λ·w − α·∂L/∂w; the course uses μ = 0.9")
        self.momentum_label = QLabel("Momentum")
        form.addRow(self.momentum_label, self.momentum_spin)
        self.weight_decay_spin = _dspin(0.0, 0.5, d.weight_decay, step=1e-4, decimals=5)
        self.weight_decay_spin.setToolTip("L2 penalty λ on the weights; the course uses 0.0005")
        form.addRow("Weight decay", self.weight_decay_spin)
        self.schedule_combo = QComboBox()
        for text, key in (
            ("cosine decay", "cosine"),
            ("step (×0.1 every third)", "step"),
            ("constant", "constant"),
        ):
            self.schedule_combo.addItem(text, key)
        form.addRow("Schedule", self.schedule_combo)
        self.smoothing_spin = _dspin(0.0, 0.5, d.label_smoothing, step=0.05)
        form.addRow("Label smoothing", self.smoothing_spin)
        self.dropout_spin = _dspin(0.0, 0.9, d.dropout, step=0.1)
        self.dropout_spin.setToolTip("Dropout on the new head's input while training (0: none)")
        form.addRow("Dropout before head", self.dropout_spin)
        self.size_combo = QComboBox()
        self.size_combo.setToolTip("Smaller inputs train much faster on a CPU, at some cost in accuracy")
        form.addRow("Input size", self.size_combo)
        form.addRow("Augment", self._build_augmentation(d.augmentation))
        self.augment_note = QLabel(AUGMENT_OFF_WITH_CACHE)
        self.augment_note.setWordWrap(True)
        self.augment_note.setStyleSheet(SMALL_MUTED_STYLE)
        form.addRow(self.augment_note)
        self.cache_check = QCheckBox("cache the frozen layers' output (embeddings)")
        self.cache_check.setChecked(d.cache_embeddings)
        self.cache_check.setToolTip(
            "Linear classifiers only: the frozen layers run once per image; later epochs train only the head."
        )
        self.cache_check.toggled.connect(self._update)
        form.addRow(self.cache_check)
        self.val_spin = _dspin(0.05, 0.5, d.val_fraction, step=0.05)
        self.val_spin.setToolTip("Share of each class kept for validation (data/<class>/ layout only)")
        self.val_spin.valueChanged.connect(self.split_changed)
        form.addRow("Validation share", self.val_spin)
        self.seed_spin = _spin(0, 2**31 - 1, d.seed)
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
        self._update()

    def _build_augmentation(self, a: Augmentation) -> QWidget:
        box = QWidget()
        grid = QVBoxLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        row1 = QHBoxLayout()
        self.crop_check = QCheckBox("random crop")
        self.crop_check.setChecked(a.random_resized_crop)
        self.flip_check = QCheckBox("flip")
        self.flip_check.setChecked(a.flip)
        row1.addWidget(self.crop_check)
        row1.addWidget(self.flip_check)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        self.rotation_spin = _spin(0, 180, int(a.rotation))
        self.rotation_spin.setSuffix("°")
        self.rotation_spin.setPrefix("rotate ±")
        self.jitter_spin = _dspin(0.0, 1.0, a.color_jitter, step=0.1)
        self.jitter_spin.setPrefix("colour ")
        row2.addWidget(self.rotation_spin)
        row2.addWidget(self.jitter_spin)
        grid.addLayout(row1)
        grid.addLayout(row2)
        self.augment_box = box
        return box

    # -- state ------------------------------------------------------------------------------------
    def set_strategy(self, strategy: str) -> None:
        self._strategy = strategy
        self._update()

    def cache_applies(self) -> bool:
        """The embedding cache will be used: it is ticked and the strategy can use it."""
        return self.cache_check.isChecked() and strategy_class(self._strategy).cacheable

    def _update(self) -> None:
        cls = strategy_class(self._strategy)
        optimizer = str(self.optimizer_combo.currentData())
        lr = TrainConfig(strategy=self._strategy, optimizer=optimizer).effective_lr()
        self.lr_edit.setPlaceholderText(f"auto: {lr:g}")
        for w in (self.lr_mult_label, self.lr_mult_spin):
            w.setVisible(cls.discriminative)
        for w in (self.momentum_label, self.momentum_spin):
            w.setVisible(optimizer == "sgd")
        self.cache_check.setEnabled(cls.cacheable)
        conflict = self.cache_applies()
        self.augment_box.setEnabled(not conflict)
        self.augment_box.setToolTip(AUGMENT_OFF_WITH_CACHE if conflict else "")
        self.augment_note.setVisible(conflict)

    def set_model(self, info: zoo.ModelInfo) -> None:
        """Input sizes the model accepts (its own first)."""
        previous = self.size_combo.currentData()
        self.size_combo.clear()
        self.size_combo.addItem(f"the model's own ({info.input_size} px)", None)
        for size in SMALLER_SIZES:
            if max(16, info.min_size) <= size < info.input_size:
                self.size_combo.addItem(f"{size} px", size)
        if previous is not None:
            self.choose_size(int(previous))

    def choose_size(self, size: int) -> None:
        """Input size in pixels (the model's own when it does not offer ``size``)."""
        index = self.size_combo.findData(size)
        self.size_combo.setCurrentIndex(index if index >= 0 else 0)

    def set_lr(self, lr: float) -> None:
        self.lr_edit.setText(f"{lr:.3g}")

    def lr(self) -> float | None:
        text = self.lr_edit.text().strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"Invalid setting: the learning rate '{text}' is not a number.") from None

    def augmentation(self) -> Augmentation:
        if self.cache_applies():
            return Augmentation.none()  # greyed out with the reason: what is shown is what trains
        return Augmentation(
            random_resized_crop=self.crop_check.isChecked(),
            flip=self.flip_check.isChecked(),
            rotation=float(self.rotation_spin.value()),
            color_jitter=round(self.jitter_spin.value(), 4),
        )


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    return spin


def _dspin(lo: float, hi: float, value: float, *, step: float, decimals: int = 2) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setValue(value)
    return spin
