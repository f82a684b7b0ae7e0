"""Batch-norm statistics measured again after pruning: exact batch statistics, weights untouched."""

from __future__ import annotations

import torch
from torch import nn

from cnn_explorer.core.compress import prune_global
from cnn_explorer.core.compress.batchnorm import has_batch_norm, recalibrate_batch_norm


def test_recalibration_measures_the_pruned_models_own_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8, momentum=0.1), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).eval()
    batches = [torch.randn(6, 3, 10, 10) * 2 + 1 for _ in range(3)]
    prune_global(model, 0.5)
    weights = {
        k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k
    }
    assert recalibrate_batch_norm(model, batches) == 18
    with torch.no_grad():  # what the BN sees: the pruned conv's outputs over all 18 images
        seen = torch.cat([model[0](b) for b in batches])
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, seen.mean(dim=(0, 2, 3)), atol=1e-4, rtol=1e-4)
    per_batch_var = torch.stack([model[0](b).detach().var(dim=(0, 2, 3), unbiased=True) for b in batches])
    torch.testing.assert_close(bn.running_var, per_batch_var.mean(0), atol=1e-4, rtol=1e-4)  # averaged
    assert bn.momentum == 0.1 and not model.training and not bn.training
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k  # the weights, pruned zeros included, are as they were
    assert has_batch_norm(model) and not has_batch_norm(nn.Sequential(nn.Linear(2, 2)))
    assert recalibrate_batch_norm(nn.Sequential(nn.Linear(2, 2)), [torch.randn(4, 2)]) == 0
