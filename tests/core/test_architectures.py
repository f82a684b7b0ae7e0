"""The architecture gallery's facts: measured from the zoo's builds, accuracy from torchvision's metadata."""

from __future__ import annotations

import pytest
import torchvision
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.architectures import all_architecture_facts, architecture_facts, signature_block
from cnn_explorer.core.zoo import ModelLoadError


def _zoo_names() -> list[str]:
    return [info.name for info in zoo.available_models()]


def test_every_zoo_model_has_facts():
    facts = all_architecture_facts()
    assert sorted(f.name for f in facts) == sorted(_zoo_names())
    for f in facts:
        assert f.title == zoo.get_info(f.name).title
        assert f.authors and f.paper and f.key_ideas
        assert f.depth == f.conv_layers + f.fc_layers > 0
        assert 0 < f.conv_params + f.fc_params <= f.params
        assert f.accuracy_source


def test_chronological_order():
    facts = all_architecture_facts()
    assert [f.published for f in facts] == sorted(f.published for f in facts)
    assert facts[0].name == "lenet5"
    assert facts[-1].name == "efficientnet_lite0"
    years = [f.year for f in facts]
    assert years == sorted(years)


def test_vgg16_has_138m_parameters_mostly_in_fc():
    f = architecture_facts("vgg16")
    assert f.params == 138_357_544  # the well-known 138 M (torchvision's own count)
    assert f.fc_share > 0.85
    assert f.conv_params + f.fc_params == f.params  # no batch norm in VGG-16
    assert (f.depth, f.paper_depth) == (16, 16)


def test_resnet18_macs_at_224():
    f = architecture_facts("resnet18")
    assert f.input_size == 224
    assert f.macs == pytest.approx(1.8e9, rel=0.02)
    assert (f.depth, f.paper_depth) == (21, 18)  # + 3 projection shortcuts, explained in depth_note
    assert "projection" in f.depth_note


@pytest.mark.parametrize("name", [n for n in _zoo_names() if zoo.get_info(n).source == "torchvision"])
def test_imagenet_numbers_equal_torchvision_metadata(name):
    f = architecture_facts(name)
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    assert f.top1 == metrics["acc@1"]
    assert f.top5 == metrics["acc@5"]
    assert f.accuracy_source == "torchvision IMAGENET1K_V1 metadata"
    assert f.accuracy_weights.endswith(".IMAGENET1K_V1")
    ops = weights.meta.get("_ops")  # torchvision's GFLOPS are multiply-adds: the layer table agrees
    if ops:
        assert f.macs == pytest.approx(ops * 1e9, rel=0.01)


def test_alexnet_facts():
    f = architecture_facts("alexnet")
    assert f.top1 == pytest.approx(56.522)
    assert f.authors == "Krizhevsky, Sutskever, Hinton"
    assert (f.depth, f.paper_depth) == (8, 8)
    ideas = " ".join(f.key_ideas)
    for word in ("ReLU", "dropout", "augmentation", "LRN", "momentum", "two GPUs"):
        assert word in ideas
    assert any("no LRN" in d for d in f.differs)


def test_models_without_imagenet_numbers_say_why():
    lenet = architecture_facts("lenet5")
    assert lenet.top1 is None and lenet.top5 is None
    assert "not an ImageNet model" in lenet.accuracy_source
    assert lenet.params == sum(p.numel() for p in zoo.skeleton("lenet5").parameters())  # 10 outputs
    lite = architecture_facts("efficientnet_lite0")
    assert lite.top1 is None and "none published" in lite.accuracy_source
    assert any("no squeeze-and-excitation" in i for i in lite.key_ideas)


def test_aux_heads_are_left_out_and_said_so():
    g = architecture_facts("googlenet")
    assert g.paper_depth == 22
    assert any("auxiliary" in d for d in g.differs)
    assert any("auxiliary" in i for i in g.key_ideas)
    assert any("auxiliary" in d for d in architecture_facts("inception_v3").differs)


def test_newer_default_weights_are_noted():
    f = architecture_facts("resnet50")
    assert "IMAGENET1K_V2" in f.accuracy_note
    assert architecture_facts("resnet18").accuracy_note == ""


_EXPECTED_BLOCK = {
    "googlenet": "Inception",
    "inception_v3": "InceptionA",
    "resnet18": "BasicBlock",
    "resnet50": "Bottleneck",
    "densenet121": "_DenseBlock",
    "squeezenet1_1": "Fire",
    "mobilenet_v2": "InvertedResidual",
    "mobilenet_v3_large": "InvertedResidual",
    "mobilenet_v3_small": "InvertedResidual",
    "shufflenet_v2_x1_0": "InvertedResidual",
    "efficientnet_b0": "MBConv",
    "efficientnet_lite0": "MBConvBlock",
}


@pytest.mark.parametrize("name", _zoo_names())
def test_signature_block_is_of_the_expected_type(name):
    block = signature_block(name)
    expected = _EXPECTED_BLOCK.get(name)
    if expected is None:
        assert block is None  # LeNet-5, AlexNet, VGG: plain stacks
        return
    model = zoo.skeleton(name)
    module = dict(model.named_modules())[block]
    assert type(module).__name__ == expected
    assert architecture_facts(name).signature_type == expected


def test_signature_blocks_show_the_idea():
    modules = {n: dict(zoo.skeleton(n).named_modules()) for n in ("mobilenet_v2", "mobilenet_v3_large")}
    assert modules["mobilenet_v2"][signature_block("mobilenet_v2")].use_res_connect
    v3 = modules["mobilenet_v3_large"][signature_block("mobilenet_v3_large")]
    assert v3.use_res_connect
    assert any(type(m).__name__ == "SqueezeExcitation" for m in v3.modules())
    shuffle = dict(zoo.skeleton("shufflenet_v2_x1_0").named_modules())[signature_block("shufflenet_v2_x1_0")]
    assert shuffle.stride == 1
    assert signature_block("googlenet") == "inception3a"
    assert signature_block("inception_v3") == "Mixed_5b"
    assert signature_block("resnet18") == "layer1.0"


def test_signature_block_is_a_row_of_the_layer_table():
    from cnn_explorer.core.layers import layer_table

    table = layer_table(zoo.skeleton("resnet18"), 224)
    assert signature_block("resnet18") in {r.name for r in table.rows}


def test_depth_counts_conv_and_linear_modules():
    for name in ("googlenet", "densenet121", "squeezenet1_1"):
        model = zoo.skeleton(name)
        n = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
        assert architecture_facts(name).depth == n
    assert architecture_facts("densenet121").depth == 121
    assert architecture_facts("squeezenet1_1").fc_params == 0


def test_facts_are_cached_and_frozen():
    f = architecture_facts("vgg11")
    assert architecture_facts("vgg11") is f
    with pytest.raises(AttributeError):
        f.params = 0  # type: ignore[misc]


def test_to_dict_is_plain_json():
    import json

    d = architecture_facts("vgg16").to_dict()
    assert json.loads(json.dumps(d))["params"] == 138_357_544
    assert isinstance(d["key_ideas"], list) and d["fc_share"] > 0.85


def test_unknown_model():
    with pytest.raises(ModelLoadError):
        architecture_facts("no_such_net")


def test_extra_blocks_are_what_they_say():
    """MobileNet V2's features.1 is the depthwise-separable pair (no expansion, no shortcut); ResNet-18's
    layer2.0 has the projection shortcut. Both are rows the explorer can jump to."""
    from cnn_explorer.core.layers import layer_table

    ((block, shows),) = architecture_facts("mobilenet_v2").extra_blocks
    module = dict(zoo.skeleton("mobilenet_v2").named_modules())[block]
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and not module.use_res_connect
    assert convs[0].groups == convs[0].in_channels and convs[0].kernel_size == (3, 3)
    assert convs[1].kernel_size == (1, 1) and convs[1].groups == 1
    assert "depthwise-separable" in shows
    ((block, _),) = architecture_facts("resnet18").extra_blocks
    resnet = zoo.skeleton("resnet18")
    assert dict(resnet.named_modules())[block].downsample is not None
    assert block in layer_table(resnet, 224).names()
    assert architecture_facts("vgg16").extra_blocks == ()
