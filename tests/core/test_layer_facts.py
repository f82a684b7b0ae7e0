"""A layer's facts for the panels (parameters, filters as numpy) and the layer table's cells, on real nets."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.layer_facts import (
    MAX_LINEAR_WEIGHTS,
    FilterKind,
    layer_facts,
    output_bytes,
    params_text,
    table_records,
)
from cnn_explorer.core.layers import layer_table


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = zoo.LeNet5().eval()
    return model, layer_table(model, 32)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    model = zoo._construct("resnet18", 10).eval()
    return model, layer_table(model, 64)


def test_lenet_conv_facts_are_a_float32_copy_of_its_weights(lenet):
    model, table = lenet
    facts = layer_facts(model, table.row("c1"))
    assert facts.name == "c1" and facts.filter_kind is FilterKind.CONV
    assert facts.params == (("weight", (6, 1, 5, 5), 150), ("bias", (6,), 6))
    assert facts.params_text == "weight 6·1·5·5 = 150 + bias 6 = 156"
    assert (facts.in_channels, facts.groups, facts.colour_input) == (1, 1, False)
    assert facts.weights.dtype == np.float32 and facts.weight_shape == (6, 1, 5, 5)
    np.testing.assert_array_equal(facts.weights, model.c1.weight.detach().numpy())
    assert not np.shares_memory(facts.weights, model.c1.weight.detach().numpy())
    assert not facts.weights.flags.writeable  # the widgets draw it; nobody writes into it
    c3 = layer_facts(model, table.row("c3"))
    assert c3.params_text == "weight 16·6·5·5 = 2,400 + bias 16 = 2,416"


def test_lenet_linear_and_weightless_layers(lenet):
    model, table = lenet
    f6 = layer_facts(model, table.row("f6"))
    assert f6.filter_kind is FilterKind.LINEAR and f6.weights.shape == (84, 120)
    assert f6.params_text == "weight 84·120 = 10,080 + bias 84 = 10,164"
    np.testing.assert_array_equal(f6.weights, model.f6.weight.detach().numpy())
    for name in ("c1_tanh", "s2", "flatten"):
        facts = layer_facts(model, table.row(name))
        assert facts.filter_kind is FilterKind.NONE and facts.weights is None and facts.weight_version == 0
        assert facts.params == () and facts.params_text == "none" and facts.note == ""


def test_weight_version_is_stable_until_the_weights_change(lenet):
    _, table = lenet
    model = zoo.LeNet5()
    first = layer_facts(model, table.row("c3"))
    again = layer_facts(model, table.row("c3"))
    assert again is not first and again.weight_version == first.weight_version  # unchanged: no redraw
    assert layer_facts(model, table.row("c1")).weight_version != first.weight_version
    with torch.no_grad():
        model.c3.weight.mul_(2.0)  # an optimiser step or load_state_dict writes in place
    changed = layer_facts(model, table.row("c3"))
    assert changed.weight_version != first.weight_version
    np.testing.assert_allclose(changed.weights, 2.0 * first.weights)
    # Fresh models one after another: a freed tensor's id comes back, its version number does not.
    versions = {first.weight_version, changed.weight_version}
    for _ in range(4):
        versions.add(layer_facts(zoo.LeNet5(), table.row("c3")).weight_version)
    assert len(versions) == 6 and 0 not in versions


def test_resnet18_first_conv_is_on_colour_and_repeated_calls_share_weights(resnet18):
    model, table = resnet18
    conv1 = layer_facts(model, table.row("conv1"))
    assert conv1.filter_kind is FilterKind.CONV and conv1.colour_input
    assert conv1.weights.shape == (64, 3, 7, 7) and conv1.params_text == "weight 64·3·7·7 = 9,408"
    relu, again = table.row("layer1.0.relu"), table.row("layer1.0.relu#2")
    assert again.call == 2
    facts = layer_facts(model, again)
    assert facts.shared_with == "layer1.0.relu" and facts.name == "layer1.0.relu#2"
    shared = "0, shared with layer1.0.relu (the same module, called again)"
    assert facts.params_text == params_text(again) == shared
    assert layer_facts(model, relu).shared_with is None
    block = layer_facts(model, table.row("layer1.0"))
    assert block.params_text == "73,984 in its layers" and block.filter_kind is FilterKind.NONE
    assert sum(count for _, _, count in block.params) == table.row("layer1.0").params == 73_984
    bn = layer_facts(model, table.row("bn1"))
    assert bn.filter_kind is FilterKind.NONE and bn.params_text == "weight 64 + bias 64 = 128"
    fc = layer_facts(model, table.row("fc"))
    assert fc.filter_kind is FilterKind.LINEAR and fc.weights.shape == (10, 512)
    inner = layer_facts(model, table.row("layer2.0.conv2"))  # 128 inputs: one filter at a time
    assert (inner.in_channels, inner.groups, inner.colour_input) == (128, 1, False)


def test_a_repeated_conv_shares_its_modules_weights_and_version():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = Twice().eval()
    table = layer_table(model, 8)
    assert table.names() == ["conv", "conv#2"]
    first, second = (layer_facts(model, r) for r in table)
    assert second.shared_with == "conv" and "shared with conv" in second.params_text
    assert second.weight_version == first.weight_version
    np.testing.assert_array_equal(second.weights, first.weights)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # (torch deprecates TorchScript)
def test_torchscript_model_says_it_has_no_module_tree(lenet):
    _, table = lenet
    scripted = torch.jit.trace(zoo.LeNet5().eval(), torch.zeros(1, 1, 32, 32))
    facts = layer_facts(scripted, table.row("c1"))
    assert facts.filter_kind is FilterKind.NONE and facts.weights is None and facts.params == ()
    assert "TorchScript" in facts.note and facts.params_text == "156"
    assert layer_table(scripted, 32).rows == []  # (the page has no rows to ask about, either)


def test_a_missing_module_and_a_too_large_matrix_are_described(lenet):
    _, table = lenet
    facts = layer_facts(nn.Sequential(), table.row("c3"))
    assert "no module c3" in facts.note and facts.weights is None
    big = nn.Sequential(nn.Flatten(), nn.Linear(MAX_LINEAR_WEIGHTS // 1000 + 1, 1000))
    row = layer_table(big, (1, MAX_LINEAR_WEIGHTS // 1000 + 1), in_channels=1).row("1")
    facts = layer_facts(big, row)
    assert facts.filter_kind is FilterKind.LINEAR and facts.weights is None
    assert "too many to draw" in facts.note
    assert facts.weight_shape == (1000, MAX_LINEAR_WEIGHTS // 1000 + 1)


def test_output_bytes_and_table_records_agree_with_the_csv(lenet):
    _, table = lenet
    assert output_bytes(table.row("c1")) == 4 * 6 * 28 * 28
    assert output_bytes(table.row("f6")) == 4 * 84
    records = table_records(table)
    written = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert [{k: v for k, v in r.items() if k != "output_bytes"} for r in records] == written
    c1 = records[0]
    assert (c1["name"], c1["output_shape"], c1["params"], c1["rf_size"]) == ("c1", "6x28x28", "156", "5")
    assert c1["output_bytes"] == str(4 * 6 * 28 * 28)
    assert records[table.names().index("f6")]["rf_size"] == "whole"
