"""The "3 · Hyper-parameters" box of the fine-tune form: every setting the course names, defaults from
:class:`~cnn_explorer.core.train_config.TrainConfig`.

Epochs, batch size, learning rate (empty: the strategy's default, shown as the placeholder; the LR finder
fills it in), the LR factor of the earliest block (discriminative rates, fine-tune-top/-all only),
optimizer with momentum (SGD) and weight decay, schedule, label smoothing, dropout before the new head,
input size, augmentation, the embedding cache, validation share, seed, and how the machine runs it: the
device, the precision (automatic: bf16 or fp16 mixed precision on CUDA, fp32 elsewhere), the DataLoader's
worker processes (automatic: chosen from the data size and the CPUs) and the channels-last layout (CUDA).
What "automatic" picks here, and why a choice is greyed out, follows the chosen device.

The embedding cache and augmentation cannot both act: the cache holds the frozen layers' output for the
plain images. While the cache is on for a strategy that uses it, the augmentation controls are greyed
out and a line says why (``augment_note``); the run then trains without augmentation, as shown.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
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
from cnn_explorer.core.accel import resolve_precision
from cnn_explorer.core.data import WORKERS_FROM_IMAGES, Augmentation, resolve_num_workers
from cnn_explorer.core.train_config import ConfigError, TrainConfig, resolve_device
from cnn_explorer.core.transfer.strategies import strategy_class
from cnn_explorer.qt.style import SMALL_MUTED_STYLE

SMALLER_SIZES = (192, 160, 128, 96, 64, 48, 32)
AUGMENT_OFF_WITH_CACHE = (
    "Augmentation is off while the embedding cache is on: the cache holds the frozen layers' output for "
    "the plain images. Untick the cache to augment (every epoch then runs the whole network)."
)
AUTO_WORKERS = -1  # the workers spin box's "automatic" (None in TrainConfig)
PRECISION_TIPS = {
    "auto": "Automatic: bf16 mixed precision on a CUDA GPU that has it (Ampere and later), else fp16; fp32 "
    "on a CPU or an Apple GPU.",
    "fp32": "fp32: full 32-bit arithmetic, exact as the course computes; the slowest on a GPU.",
    "bf16": "bf16: the forward pass in bfloat16 (fp32's range, fewer digits): about half the activation "
    "memory and tensor-core speed on recent GPUs; on a CPU fast only with bf16 units.",
    "fp16": "fp16: the forward pass in float16 with loss scaling (its small range would lose tiny "
    "gradients), for CUDA GPUs without bf16.",
}


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
        form.addRow("Head dropout", self.dropout_spin)  # short: the column has no room for more
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
        self.device_combo.setToolTip("Where the network computes: a CUDA or Apple GPU is many times faster")
        self.device_combo.currentIndexChanged.connect(self._update_hardware)
        form.addRow("Device", self.device_combo)
        self._build_hardware(d)
        self._update()
        self._update_hardware()

    def _build_hardware(self, d: TrainConfig) -> None:
        form = self.form
        self.precision_combo = QComboBox()
        for text, key in (
            ("automatic", "auto"),
            ("fp32", "fp32"),
            ("bf16 mixed", "bf16"),
            ("fp16 mixed", "fp16"),
        ):
            self.precision_combo.addItem(text, key)
        self.precision_combo.setCurrentIndex(self.precision_combo.findData(d.precision))
        form.addRow("Precision", self.precision_combo)
        self.workers_spin = _spin(AUTO_WORKERS, 32, AUTO_WORKERS if d.num_workers is None else d.num_workers)
        self.workers_spin.setSpecialValueText("automatic")
        large = resolve_num_workers(None, WORKERS_FROM_IMAGES)
        self.workers_spin.setToolTip(
            "Processes that read and decode the images while the network trains, so that a fast GPU does "
            "not wait for them; they help on large datasets, with augmentation. 0: the training process "
            f"reads them itself. Automatic: none below {WORKERS_FROM_IMAGES} images, else {large} here "
            "(one per CPU core but one, at most 8)."
        )
        form.addRow("Data workers", self.workers_spin)
        self.channels_last_check = QCheckBox("channels-last layout (CUDA)")
        self.channels_last_check.setChecked(d.channels_last)
        form.addRow(self.channels_last_check)

    def _device_type(self) -> str | None:
        """The kind of device the chosen setting runs on ("cuda", "cpu", "mps"), None if unavailable."""
        try:
            return resolve_device(str(self.device_combo.currentData())).type
        except ConfigError:
            return None

    def _update_hardware(self) -> None:
        """What "automatic" means on the chosen device; greyed out, with the reason, what it cannot run."""
        kind = self._device_type() or "cpu"
        device = resolve_device(kind)
        where = {"cuda": "CUDA", "mps": "this Apple GPU"}.get(kind, "this CPU")
        combo = self.precision_combo
        combo.setItemText(0, f"automatic ({resolve_precision('auto', device)} on {where})")
        for index in range(combo.count()):
            key = str(combo.itemData(index))
            try:
                resolve_precision(key, device)
                reason = ""
            except ConfigError as exc:
                reason = str(exc).removeprefix("Invalid setting: ")
            combo.model().item(index).setEnabled(not reason)
            tip = PRECISION_TIPS[key] + (f" Not available: {reason}" if reason else "")
            combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
            if reason and index == combo.currentIndex():
                combo.setCurrentIndex(0)  # what was chosen cannot run on this device
        combo.setToolTip(
            "The arithmetic of the forward pass. Mixed precision (bf16, fp16) roughly halves the memory of "
            "the activations and runs convolutions on a GPU's tensor cores; fp32 is exact. "
            + PRECISION_TIPS[str(combo.currentData())]
        )
        cuda = kind == "cuda"
        self.channels_last_check.setEnabled(cuda)
        self.channels_last_check.setToolTip(
            "Keep images and feature maps in NHWC order (the channels of a pixel side by side), the layout "
            "a GPU's tensor cores convolve fastest, often 10–30% with mixed precision."
            + ("" if cuda else " Used on CUDA only: there is no CUDA GPU for the chosen device.")
        )

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

    def num_workers(self) -> int | None:
        value = self.workers_spin.value()
        return None if value == AUTO_WORKERS else value

    def set_hardware(self, config: TrainConfig) -> None:
        """Show ``config``'s device, precision, workers and layout (what this machine lacks: automatic)."""
        for combo, key in ((self.device_combo, config.device), (self.precision_combo, config.precision)):
            index = combo.findData(key)
            usable = index >= 0 and combo.model().item(index).isEnabled()
            combo.setCurrentIndex(index if usable else 0)
        self._update_hardware()
        self.workers_spin.setValue(AUTO_WORKERS if config.num_workers is None else config.num_workers)
        self.channels_last_check.setChecked(config.channels_last)

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
