"""How far can we prune: the quality at each level of global magnitude pruning, without a fine-tune."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from cnn_explorer.core.compress.batchnorm import recalibrate_batch_norm
from cnn_explorer.core.compress.evalset import EvalImages
from cnn_explorer.core.compress.measure import Predictions, predict, quality
from cnn_explorer.core.compress.prune import param_counts, prune_global
from cnn_explorer.core.compress.spec import SWEEP_SPARSITIES, SweepPoint
from cnn_explorer.core.control import Control

__all__ = ["sparsity_sweep"]


def sparsity_sweep(
    model: nn.Module,
    images: EvalImages,
    reference: Predictions,
    labels: Tensor | None,
    *,
    levels: Sequence[float] = SWEEP_SPARSITIES,
    on_level: Callable[[float], None] | None = None,
    recalibrate: Sequence[Tensor] = (),
    control: Control | None = None,
) -> list[SweepPoint]:
    """One point per level: accuracy with ``labels``, else agreement with ``reference`` (the original's).
    ``recalibrate``: training batches the pruned model's batch norms measure their statistics on again,
    as the pruned variant's do."""
    points: list[SweepPoint] = []
    for level in levels:
        if on_level is not None:
            on_level(level)
        pruned = copy.deepcopy(model)
        if level > 0:
            prune_global(pruned, level)
            if recalibrate:
                recalibrate_batch_norm(pruned, recalibrate, control=control)
        q = quality(predict(pruned, images, control=control), reference, labels)
        value = q.accuracy if q.accuracy is not None else q.agreement_top1
        points.append(
            SweepPoint(sparsity=float(level), quality=value, nonzero_params=param_counts(pruned)[1])
        )
    return points
