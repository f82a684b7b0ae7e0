"""The typed values the transfer-learning tools hand to the page and the CLI (and the training process
to the page): probe results, the guide's recommendation, the similarity estimate, the LR finder's curve
and the "watch it learn" frames. Plain dataclasses of numbers, strings and numpy arrays, so they cross
process boundaries (pickle) and never carry a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


@dataclass(frozen=True)
class ProbeRow:
    """A linear probe trained on one layer's global-average-pooled features."""

    layer: str  # qualified module name, a probe point (core.transfer.layers)
    depth: int  # 1-based position among the model's probe points, input → output
    channels: int  # feature size (the layer's output channels)
    train_accuracy: float
    val_accuracy: float  # NaN when the dataset has no readable validation image


@dataclass(frozen=True)
class ProbeReport:
    """ "Probe every block": one pass over the data, one linear probe per probe point."""

    model: str
    rows: list[ProbeRow]
    class_names: list[str]
    n_train: int
    n_val: int
    image_size: int  # the crop the features were computed at
    feature_seconds: float  # the one pass over the data
    probe_seconds: float  # training every probe
    feature_bytes: int  # memory the cached pooled features took (float16)
    skipped: int = 0  # unreadable images left out

    @property
    def best(self) -> ProbeRow | None:
        """The row with the highest validation accuracy (the earliest of equals: more generic)."""
        scored = [r for r in self.rows if math.isfinite(r.val_accuracy)]
        return max(scored, key=lambda r: (r.val_accuracy, -r.depth)) if scored else None


class GuideCase(IntEnum):
    """The four cells of the course's transfer-learning guide (seed 000 §2.4)."""

    SMALL_SIMILAR = 1
    LARGE_SIMILAR = 2
    SMALL_DIFFERENT = 3
    LARGE_DIFFERENT = 4

    @property
    def small(self) -> bool:
        return self in (GuideCase.SMALL_SIMILAR, GuideCase.SMALL_DIFFERENT)

    @property
    def similar(self) -> bool:
        return self in (GuideCase.SMALL_SIMILAR, GuideCase.LARGE_SIMILAR)


@dataclass(frozen=True)
class Recommendation:
    case: GuideCase
    strategy: str  # a strategy key of core.training (STRATEGIES)
    reason: str  # the notes' reasoning, for this dataset
    n_images: int
    cut_layer: str | None = None  # case 3: the earlier layer whose features the linear classifier reads
    alternative: str | None = None  # case 4: "scratch", possible but rarely better


@dataclass(frozen=True)
class SimilarityEstimate:
    """How much the dataset's images look like ImageNet photos, from the pretrained head's confidence."""

    similar: bool
    score: float  # the dataset's mean top-class probability relative to the reference photos' (≈1: alike)
    dataset_confidence: float  # mean top-class probability of the pretrained head on the dataset's images
    dataset_entropy: float  # mean entropy of its predictions, in nats
    reference_confidence: float  # the same on the bundled photos
    reference_entropy: float
    n_images: int  # dataset images looked at
    model: str
    reason: str  # one or two sentences: the numbers and the verdict


@dataclass(frozen=True)
class LRFindResult:
    """An exponential learning-rate sweep (Smith 2015; fastai's lr_find)."""

    lrs: np.ndarray  # the learning rate of each step taken
    losses: np.ndarray  # the training loss at each step
    smoothed: np.ndarray  # exponentially smoothed, bias-corrected losses (what is plotted)
    suggestion: float  # the learning rate to use
    stopped_early: bool  # the loss diverged before the last planned step
    reason: str  # how the suggestion was chosen and why the sweep stopped
    strategy: str = ""
    model: str = ""


@dataclass(frozen=True)
class WatchFrame:
    """After an epoch: one image's Grad-CAM and top prediction under the current weights."""

    epoch: int  # 1-based
    image: str  # path of the watched image
    heatmap: np.ndarray  # float32 (h, w) in 0..1, small (the page draws it over the image)
    predicted: str
    probability: float
    true_class: str | None = None  # when the image belongs to the dataset
    layer: str = ""  # the layer the map was taken at
    top: list[tuple[str, float]] = field(default_factory=list)  # a few classes with their probabilities
