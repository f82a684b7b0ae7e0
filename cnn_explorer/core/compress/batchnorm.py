"""Batch-norm statistics measured again after pruning.

Zeroing weights shifts every later layer's activations, but a batch norm still normalises with the
statistics it learned before: the network then sees inputs it was never trained on. Re-estimating the
running mean and variance on a few batches of training images (no gradients, no labels) repairs much of it
for free: EfficientNet-Lite0 pruned to 50 % on the bundled silhouettes went from 30 % to 58 % validation
accuracy this way (fp32: 93 %). It needs images from the training side: measuring the statistics on the
images a variant is judged on would let the judge's images tune the model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from cnn_explorer.core.control import Control, checkpoint

__all__ = ["has_batch_norm", "recalibrate_batch_norm"]


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def has_batch_norm(model: nn.Module) -> bool:
    return bool(_norms(model))


def recalibrate_batch_norm(
    model: nn.Module, batches: Iterable[Tensor], *, control: Control | None = None
) -> int:
    """Measure every batch norm's running mean and variance again over ``batches`` (a cumulative average,
    not a moving one); the weights do not change. Returns the number of images seen (0: nothing done).
    The model is left in eval mode."""
    norms = _norms(model)
    if not norms:
        return 0
    saved = [(m, m.momentum) for m in norms]
    seen = 0
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # the plain average of every batch seen
        model.train()
        with torch.no_grad():
            for batch in batches:
                checkpoint(control)
                if batch.shape[0] < 2:
                    continue  # one image has no batch statistics
                model(batch)
                seen += int(batch.shape[0])
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.eval()
    return seen
