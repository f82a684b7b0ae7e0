"""The settings of a fine-tuning run (:class:`TrainConfig`, stored as a run's config.json), their checks,
the learning-rate defaults and schedule, and the device choice. The page's form, the CLI and the trainer
read the same defaults from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.transfer.strategies import STRATEGIES, STRATEGY_TITLES

__all__ = [
    "DEVICES",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "STRATEGIES",
    "STRATEGY_TITLES",
    "ConfigError",
    "TrainConfig",
    "lr_factor",
    "resolve_device",
]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Learning rates that work for each strategy: a new head can learn fast; pretrained layers need small
# steps or they forget what they know.
_DEFAULT_LR = {
    "sgd": {
        "feature-extractor": 0.01,
        "linear-probe": 0.01,
        "fine-tune-top": 0.005,
        "fine-tune-all": 0.002,
        "scratch": 0.05,
    },
    "adamw": {
        "feature-extractor": 1e-3,
        "linear-probe": 1e-3,
        "fine-tune-top": 3e-4,
        "fine-tune-all": 1e-4,
        "scratch": 1e-3,
    },
}


class ConfigError(ValueError):
    """A setting is out of range; ``str(err)`` names it."""


@dataclass
class TrainConfig:
    """Every setting of a run; stored as the run's config.json."""

    data: str = ""  # dataset folder (see core.data)
    model: str = zoo.DEFAULT_MODEL
    strategy: str = "feature-extractor"
    top_blocks: int = 2  # for "fine-tune-top"
    cut_layer: str = ""  # for "linear-probe": the layer whose pooled features the head reads ("": halfway)
    epochs: int = 5
    batch_size: int = 32
    lr: float | None = None  # None: a default for the strategy and optimizer (see effective_lr)
    lr_mult: float = 1.0  # fine-tune-top/-all: the earliest trained block's lr is lr_mult × the head's
    optimizer: str = "sgd"  # "sgd" (momentum, as in the course) or "adamw"
    momentum: float = 0.9  # the course's v ← 0.9·v − 0.0005·w − α·∂L/∂w
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "constant", "step" or "cosine" (per step)
    step_epochs: int = 0  # "step": multiply the lr by gamma every this many epochs (0: a third of the run)
    gamma: float = 0.1
    label_smoothing: float = 0.0
    dropout: float = 0.0  # dropout on the new head's input while training (0: none)
    augmentation: Augmentation = field(default_factory=Augmentation)
    cache_embeddings: bool = True  # feature extractor / linear probe: compute the frozen part once
    image_size: int | None = None  # input crop in pixels; None: the model's own (smaller trains faster)
    val_fraction: float = 0.2  # for root/<class>/ datasets
    seed: int = 0
    device: str = "auto"
    num_workers: int | None = None  # DataLoader worker processes; None: chosen from the CPUs and data size
    precision: str = "auto"  # "auto" (CUDA: bf16 where the GPU has it, else fp16; elsewhere fp32), or fixed
    channels_last: bool = True  # CUDA: NHWC memory layout, faster convolutions on tensor cores
    cache_dir: str = ""  # where embedding caches live ("": the user's cache folder, core.appdirs)
    allow_download: bool = True  # pretrained weights may be downloaded if not cached
    watch_image: str = ""  # "watch it learn": this image's Grad-CAM after every epoch ("": none)

    def effective_lr(self) -> float:
        return float(self.lr) if self.lr is not None else _DEFAULT_LR[self.optimizer][self.strategy]

    def validate(self) -> None:
        """ConfigError naming the first bad setting."""
        checks = [
            (self.strategy in STRATEGIES, f"strategy must be one of {', '.join(STRATEGIES)}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.top_blocks >= 1, "top blocks must be at least 1"),
            (self.lr is None or (math.isfinite(self.lr) and self.lr > 0), "learning rate must be positive"),
            (math.isfinite(self.lr_mult) and 0 < self.lr_mult <= 1, "the LR factor must be in (0, 1]"),
            (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.weight_decay >= 0, "weight decay must not be negative"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.image_size is None or self.image_size >= 16, "image size must be at least 16 pixels"),
            (0 < self.val_fraction < 1, "validation fraction must be between 0 and 1"),
            (self.num_workers is None or self.num_workers >= 0, "data workers must not be negative"),
            (
                not self.cut_layer or self.strategy == "linear-probe",
                "a cut layer is only used by the linear-probe strategy",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid setting: {message}.")
        if self.cut_layer:
            from cnn_explorer.core.transfer.layers import skeleton_probe_layers

            try:
                layers = skeleton_probe_layers(self.model)
            except zoo.ModelLoadError:
                return  # an unknown model is reported by whoever loads it, with its own message
            if self.cut_layer not in layers:
                raise ConfigError(
                    f"Invalid setting: {self.model} has no layer {self.cut_layer!r} to cut at; choose one "
                    f"of: {', '.join(layers)}."
                )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["augmentation"] = self.augmentation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if isinstance(kw.get("augmentation"), dict):
            kw["augmentation"] = Augmentation.from_dict(kw["augmentation"])
        return cls(**kw)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; an unavailable explicit choice is an error."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ConfigError("CUDA was chosen but PyTorch sees no CUDA GPU here; choose 'auto' or 'cpu'.")
    if name == "mps" and not mps:
        raise ConfigError("MPS was chosen but this PyTorch has no Apple GPU support here; choose 'cpu'.")
    return torch.device(name)


def lr_factor(
    schedule: str, global_step: int, total_steps: int, steps_per_epoch: int, step_epochs: int, gamma: float
) -> float:
    """Multiplier of the base learning rate at a (0-based) step."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(global_step, total_steps) / max(total_steps, 1)))
    if schedule == "step":
        return gamma ** ((global_step // max(steps_per_epoch, 1)) // max(step_epochs, 1))
    return 1.0
