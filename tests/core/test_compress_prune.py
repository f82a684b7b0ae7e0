"""Pruning the bundled LeNet-5: the sparsity asked for is the sparsity got (global, per layer, whole
channels), the pruning is permanent (plain parameter names, zeros in the weights), and the counts the
report shows are the model's own."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress import (
    layer_sparsity,
    param_counts,
    prune_global,
    prune_layers,
    prune_structured,
)


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    return zoo.load_model("lenet5", allow_download=False).model


def _conv_linear_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_global_pruning_reaches_the_requested_sparsity(lenet, sparsity):
    model = copy.deepcopy(lenet)
    masks = prune_global(model, sparsity)
    weights = _conv_linear_weights(model)
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert abs(zeros - sparsity * total) <= 1  # within one weight of the request
    # permanent: no weight_orig / weight_mask left, the zeros are in the weights themselves
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert set(model.state_dict()) == set(lenet.state_dict())
    assert set(masks) == {"c1", "c3", "c5", "f6", "output"}
    for name, mask in masks.items():
        assert torch.equal(getattr(model, name).weight != 0, mask)
    # the smallest magnitudes went: every pruned weight was no larger than every kept one
    before = torch.cat([w.flatten().abs() for w in _conv_linear_weights(lenet)])
    kept = torch.cat([m.flatten() for m in masks.values()])
    assert before[~kept].max() <= before[kept].min()


def test_counts_match_the_model(lenet):
    model = copy.deepcopy(lenet)
    prune_global(model, 0.5)
    params, nonzero = param_counts(model)
    assert params == sum(p.numel() for p in lenet.parameters()) == 61706
    assert nonzero == sum(int(torch.count_nonzero(p)) for p in model.parameters())
    shares = dict(layer_sparsity(model))
    assert shares["c5"] == pytest.approx(float((model.c5.weight == 0).float().mean()))
    assert dict(layer_sparsity(lenet)) == {"c1": 0.0, "c3": 0.0, "c5": 0.0, "f6": 0.0, "output": 0.0}


def test_per_layer_pruning_prunes_each_layer_on_its_own(lenet):
    model = copy.deepcopy(lenet)
    prune_layers(model, [("c3", 0.25), ("f6", 0.75)])
    shares = dict(layer_sparsity(model))
    assert abs(shares["c3"] * model.c3.weight.numel() - 0.25 * model.c3.weight.numel()) <= 1
    assert abs(shares["f6"] * model.f6.weight.numel() - 0.75 * model.f6.weight.numel()) <= 1
    assert shares["c1"] == shares["c5"] == shares["output"] == 0.0


def test_structured_pruning_zeroes_whole_output_channels(lenet):
    model = copy.deepcopy(lenet)
    prune_structured(model, 0.5)
    for name in ("c1", "c3", "c5"):
        w = getattr(model, name).weight
        dead = (w.flatten(1) == 0).all(1)
        assert int(dead.sum()) == round(0.5 * w.shape[0])  # whole channels, as many as asked for
        alive = w.flatten(1)[~dead]
        assert bool((alive != 0).any(1).all())
        # the channels with the smallest L1 norm went
        norms = getattr(lenet, name).weight.flatten(1).abs().sum(1)
        assert norms[dead].max() <= norms[~dead].min()
    assert dict(layer_sparsity(model))["f6"] == 0.0  # linear layers have no channels to remove


def test_structured_per_layer(lenet):
    model = copy.deepcopy(lenet)
    prune_layers(model, [("c5", 0.25)], structured=True)
    dead = (model.c5.weight.flatten(1) == 0).all(1)
    assert int(dead.sum()) == 30  # 25% of 120 channels
    assert dict(layer_sparsity(model))["c3"] == 0.0
