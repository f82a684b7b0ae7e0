"""The layer table against hand counts (LeNet-5), torch's own counts and published receptive fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cnn_explorer.core import layers, zoo
from cnn_explorer.core.layers import layer_table

TORCHVISION_ZOO = [i.name for i in zoo.available_models() if i.source == "torchvision"]


@pytest.fixture(scope="module")
def lenet_table() -> layers.LayerTable:
    return layer_table(zoo.LeNet5(), 32)


def test_lenet5_rows_match_hand_counts(lenet_table):
    rows = {r.name: r for r in lenet_table}
    assert lenet_table.names() == [
        "c1", "c1_tanh", "s2", "c3", "c3_tanh", "s4", "c5", "c5_tanh", "flatten", "f6", "f6_tanh", "output",
    ]  # fmt: skip
    expected = {
        # name: (output shape, params, multiply-adds)
        "c1": ((6, 28, 28), 6 * (5 * 5 * 1 + 1), 6 * 28 * 28 * 25),
        "s2": ((6, 14, 14), 0, 0),
        "c3": ((16, 10, 10), 16 * (5 * 5 * 6 + 1), 16 * 10 * 10 * 150),
        "s4": ((16, 5, 5), 0, 0),
        "c5": ((120, 1, 1), 120 * (5 * 5 * 16 + 1), 120 * 400),
        "f6": ((84,), 84 * (120 + 1), 84 * 120),
        "output": ((10,), 10 * (84 + 1), 10 * 84),
    }
    for name, (shape, params, macs) in expected.items():
        assert (rows[name].out_shape, rows[name].params, rows[name].macs) == (shape, params, macs), name
    assert lenet_table.total_params == 61706 == sum(p.numel() for p in zoo.LeNet5().parameters())
    assert lenet_table.total_macs == 117600 + 240000 + 48000 + 10080 + 840
    assert rows["c1"].in_shape == (1, 32, 32) and lenet_table.input_shape == (1, 32, 32)
    assert (rows["c3"].kernel, rows["c3"].stride, rows["c3"].padding) == ((5, 5), (1, 1), (0, 0, 0, 0))
    assert (rows["s2"].kernel, rows["s2"].stride) == ((2, 2), (2, 2))


def test_lenet5_receptive_fields_match_hand_counts(lenet_table):
    rows = {r.name: r for r in lenet_table}
    # size, jump, centre of unit (0, 0): C1 5/1/2; S2 5+1=6, 2, 2+0.5; C3 6+4·2=14, 2, 2.5+2·2;
    # S4 14+1·2=16, 4, 6.5+0.5·2; C5 16+4·4=32, 4, 7.5+2·4 (the whole 32×32 input).
    expected = {
        "c1": (5, 1, 2.0),
        "c1_tanh": (5, 1, 2.0),
        "s2": (6, 2, 2.5),
        "c3": (14, 2, 6.5),
        "s4": (16, 4, 7.5),
        "c5": (32, 4, 15.5),
    }
    for name, (size, jump, start) in expected.items():
        r = rows[name]
        assert (r.rf_size, r.rf_jump, r.rf_start) == ((size, size), (jump, jump), (start, start)), name
    assert rows["f6"].rf_size is None and rows["f6"].rf_text() == "whole input"


def test_shape_arithmetic_is_written_out_with_the_numbers(lenet_table):
    assert lenet_table.row("c1").shape_arithmetic() == "⌊(32 + 2·0 − 5)/1⌋ + 1 = 28"
    assert lenet_table.row("s2").shape_arithmetic() == "⌊(28 + 2·0 − 2)/2⌋ + 1 = 14"
    assert lenet_table.row("c1_tanh").shape_arithmetic() == ""
    r18 = layer_table(zoo._construct("resnet18", 1000, meta=True), 224)
    assert r18.row("conv1").shape_arithmetic() == "⌊(224 + 2·3 − 7)/2⌋ + 1 = 112"
    assert r18.row("conv1").geometry_text() == "7×7 stride 2 pad 3"


def test_tensorflow_same_padding_is_shown_as_it_is():
    table = layer_table(zoo._construct("efficientnet_lite0", 1000, meta=True), 224)
    stem = table.row("_conv_stem")
    assert stem.padding == (0, 1, 0, 1) and stem.out_shape == (32, 112, 112)
    assert stem.shape_arithmetic() == "⌊(224 + 0 + 1 − 3)/2⌋ + 1 = 112"
    assert "_conv_stem.static_padding" not in table.names()  # part of the conv, not a row of its own
    assert stem.rf_start == (1.0, 1.0)  # no padding before: the first 3×3 window is centred on pixel 1


def test_a_module_called_twice_gets_one_row_per_call_and_blocks_have_parents():
    table = layer_table(zoo._construct("resnet18", 1000, meta=True), 224)
    names = table.names()
    assert "layer1.0.relu" in names and "layer1.0.relu#2" in names
    assert table.row("layer1.0.relu#2").call == 2 and table.row("layer1.0.relu#2").counted_params == 0
    assert table.row("layer1.0.conv1").parent == "layer1.0"
    block = table.row("layer1.0")
    assert block.kind == "block" and block.type == "BasicBlock" and block.parent == ""
    assert names.index("layer1.0") > names.index("layer1.0.relu#2")  # a block's row is its output
    assert block.macs == sum(r.macs for r in table if r.parent == "layer1.0")
    assert block.params == sum(p.numel() for p in torchvision.models.resnet18().layer1[0].parameters())


def test_rows_that_only_transform_the_previous_one_are_marked():
    table = layer_table(zoo._construct("resnet18", 1000, meta=True), 224)
    derived = {r.name: r.derived_from for r in table}
    assert derived["conv1"] is None and derived["bn1"] == "conv1" and derived["relu"] == "bn1"
    assert derived["layer1.0.relu"] == "layer1.0.bn1"
    assert derived["layer1.0.relu#2"] is None  # "out += identity" changed bn2's output in between
    assert derived["layer1.0"] == "layer1.0.relu#2"  # the block returns that very tensor
    inception = layer_table(zoo._construct("inception_v3", 1000, meta=True), 299)
    # BasicConv2d ends in a functional in-place ReLU: its output is not the bn output any more.
    assert inception.row("Conv2d_1a_3x3").derived_from is None
    assert inception.row("Conv2d_1a_3x3.bn").derived_from == "Conv2d_1a_3x3.conv"


@pytest.mark.parametrize("name", TORCHVISION_ZOO)
def test_parameter_and_multiply_add_totals_agree_with_torch(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    model = zoo._construct(name, 1000, meta=True)
    info = zoo.get_info(name)
    table = layer_table(model, info.input_size)
    published = weights.meta["num_params"]
    if name == "inception_v3":  # torchvision's count includes the auxiliary classifier, which we leave out
        with torch.device("meta"):
            aux = torchvision.models.inception_v3(aux_logits=True, init_weights=False).AuxLogits
        published -= sum(p.numel() for p in aux.parameters())
    assert table.total_params == sum(p.numel() for p in model.parameters()) == published
    # torchvision publishes each model's cost in GMACs (its "_ops" field, rounded to 3 decimals).
    assert round(table.total_macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=0.0015)
    assert not table.notes


@pytest.mark.parametrize(
    ("name", "row", "size", "expected"),
    [
        # Published receptive fields (Araujo, Norris & Sim, "Computing Receptive Fields of CNNs", 2019).
        ("alexnet", "features.12", 224, 195),
        ("vgg16", "features.30", 224, 212),
        ("inception_v3", "Mixed_7c", 299, 1311),
        ("resnet18", "layer4.1", 224, 435),
        # torchvision's ResNet-50 is "v1.5" (stride in the 3×3, not the first 1×1): 483 − (8 + 16 + 32).
        ("resnet50", "layer4.2", 224, 427),
    ],
)
def test_receptive_fields_match_published_values(name, row, size, expected):
    table = layer_table(zoo._construct(name, 1000, meta=True), size)
    assert table.row(row).rf_size == (expected, expected)
    assert table.row(row).rf_jump == (32, 32)


def test_receptive_field_matches_the_gradient_support():
    """The input pixels that can change a unit (non-zero gradient) are exactly the computed field."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 5, stride=2, padding=2, dilation=1),
        nn.Tanh(),
        nn.Conv2d(4, 2, 3, dilation=2),
    )
    table = layer_table(model, 40)
    last = table.row("5")
    x = torch.rand(1, 1, 40, 40, requires_grad=True)
    y, xpos = 3, 4
    model(x)[0, 0, y, xpos].backward()
    rows, cols = torch.nonzero(x.grad[0, 0].abs() > 0, as_tuple=True)
    centre_y = last.rf_start[0] + y * last.rf_jump[0]
    centre_x = last.rf_start[1] + xpos * last.rf_jump[1]
    half = (last.rf_size[0] - 1) / 2
    assert (int(rows.min()), int(rows.max())) == (centre_y - half, centre_y + half)
    assert (int(cols.min()), int(cols.max())) == (centre_x - half, centre_x + half)


def test_fallback_to_a_real_forward_pass_gives_the_same_table(monkeypatch, lenet_table):
    def refuse(*args, **kwargs):
        raise NotImplementedError("no meta kernel")

    monkeypatch.setattr(layers, "_forward_on_meta", refuse)
    real = layer_table(zoo.LeNet5(), 32)
    assert real.rows == lenet_table.rows
    assert any("real forward pass" in n for n in real.notes)


def test_csv_has_a_row_per_step(tmp_path, lenet_table):
    text = lenet_table.to_csv(tmp_path / "t.csv")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0].startswith("name,type,kind,kernel,stride,padding")
    assert len(lines) == 1 + len(lenet_table) and text.splitlines() == lines
    assert lines[1].split(",")[:4] == ["c1", "Conv2d", "layer", "5"]
    assert lines[1].endswith(",156,117600,5,1")


def test_dropout_layers_are_rows_marked_inactive_at_inference():
    """The course teaches dropout (AlexNet's, VGG's): its layers stay visible, said to do nothing now."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Dropout2d(0.25), nn.Flatten(), nn.Dropout(0.5), nn.Linear(144, 2)
    ).eval()
    table = layer_table(model, 8)
    rows = {r.name: r for r in table}
    assert table.names() == ["0", "1", "2", "3", "4", "5"]
    assert (
        rows["2"].inactive
        == "in training it zeroes each of its channels with probability 0.25, scaling the rest by 1.33"
    )
    assert rows["4"].inactive.startswith("in training it zeroes each of its values with probability 0.5")
    assert not any(rows[n].inactive for n in ("0", "1", "3", "5"))
    assert rows["2"].derived_from == "1"  # the identity of the ReLU's output: stored as a recipe
    from cnn_explorer.core.features import capture_activations

    x = torch.rand(3, 8, 8)
    capture = capture_activations(model, x, table=table)
    assert np.array_equal(capture["2"].data, capture["1"].data)
    assert np.array_equal(capture["4"].data, capture["3"].data)


def test_zoo_dropouts_are_listed():
    names = layer_table(zoo.skeleton("alexnet"), 224).names()
    assert [n for n in names if n.startswith("classifier.")] == [f"classifier.{i}" for i in range(7)]
