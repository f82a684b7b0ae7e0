"""The signature-block graphs, checked against the real modules: wiring, kernels, channels, shapes, and that
every box names a row the explorer can select."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from cnn_explorer.core.architectures import _imagenet_skeleton, all_architecture_facts
from cnn_explorer.core.block_graph import BlockGraph, BlockNode, block_graph, signature_graph
from cnn_explorer.core.layers import LayerTable, layer_table


@functools.cache
def _model_and_table(name: str) -> tuple[nn.Module, LayerTable]:
    from cnn_explorer.core import zoo

    model = _imagenet_skeleton(name)
    return model, layer_table(model, zoo.get_info(name).input_size)


def _graph(name: str, block: str | None = None) -> BlockGraph:
    graph = signature_graph(name, block)
    assert graph is not None
    return graph


def _kind(graph: BlockGraph, kind: str) -> list[BlockNode]:
    return [n for n in graph.nodes if n.kind == kind]


def _only(graph: BlockGraph, kind: str) -> BlockNode:
    (node,) = _kind(graph, kind)
    return node


def _module(name: str, node: BlockNode) -> nn.Module:
    assert node.module is not None
    return _model_and_table(name)[0].get_submodule(node.module.split("#")[0])


def _path(graph: BlockGraph, start: str, stop: str) -> list[BlockNode]:
    """Nodes along the single non-shortcut links from ``start`` to ``stop`` (both excluded)."""
    out: list[BlockNode] = []
    current = start
    while True:
        (nxt,) = [e.dst for e in graph.edges if e.src == current and not e.shortcut]
        if nxt == stop:
            return out
        out.append(graph.node(nxt))
        current = nxt


SIGNATURES = [(f.name, f.signature_block) for f in all_architecture_facts() if f.signature_block]


def test_googlenet_inception_has_four_branches_concatenated_to_their_channel_sum() -> None:
    graph = _graph("googlenet")
    cat = _only(graph, "cat")
    assert graph.branches == 4
    branch_ends = graph.inputs_of(cat.id)
    assert len(branch_ends) == 4
    assert cat.out_shape is not None and cat.out_shape[0] == 256
    assert sum(graph.node(i).out_shape[0] for i in branch_ends) == 256  # type: ignore[index]
    assert graph.outputs_of(cat.id) == ["output"]
    assert sorted(n.column for n in graph.nodes if n.rank == 1) == [0, 1, 2, 3]
    # the kernels drawn are the module's own (torchvision's "5×5" branch really is a 3×3)
    kernels = set()
    for conv in _kind(graph, "conv"):
        k = _module("googlenet", conv).kernel_size
        assert conv.label.startswith(f"{k[0]}×{k[1]} conv")
        kernels.add(k[0])
    assert kernels == {1, 3}
    pool = _only(graph, "pool")
    assert pool.label == "3×3 max pool, stride 1"
    assert graph.caption.startswith("Inception module: 4 branches")
    assert graph.caption.endswith("concatenated to 256 channels")


def test_inception_v3_module_shows_its_five_by_five_branch() -> None:
    graph = _graph("inception_v3")
    labels = [n.label for n in _kind(graph, "conv")]
    assert "5×5 conv, 48 → 64" in labels
    assert {label.split(" ")[0] for label in labels} == {"1×1", "3×3", "5×5"}
    assert _only(graph, "pool").label == "3×3 avg pool, stride 1"


def test_resnet18_first_block_adds_an_identity_shortcut_to_two_3x3_convs() -> None:
    graph = _graph("resnet18")
    add = _only(graph, "add")
    shortcuts = [e for e in graph.edges if e.shortcut]
    assert [(e.src, e.dst) for e in shortcuts] == [("input", add.id)]
    convs = _kind(graph, "conv")
    assert [c.label for c in convs] == ["3×3 conv, 64 → 64", "3×3 conv, 64 → 64"]
    assert [c.module for c in convs] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert [c.detail for c in convs] == ["BN · ReLU", "BN"]  # no ReLU before the sum
    assert _path(graph, "input", add.id) == convs
    after = graph.outputs_of(add.id)
    assert [graph.node(a).label for a in after] == ["ReLU"]
    assert graph.caption == "residual block: two 3×3 convs, 64 channels, identity shortcut added, then ReLU"


def test_resnet18_downsampling_block_has_a_projection_on_its_own_column() -> None:
    graph = _graph("resnet18", "layer2.0")
    add = _only(graph, "add")
    assert not any(e.shortcut for e in graph.edges)
    projection = next(n for n in graph.nodes if n.module == "layer2.0.downsample.0")
    assert projection.label == "1×1 conv, 64 → 128, stride 2"
    assert projection.out_shape == (128, 28, 28)
    main = [n for n in _kind(graph, "conv") if n is not projection]
    assert projection.column not in {n.column for n in main}
    assert graph.outputs_of(projection.id) == [add.id]
    assert graph.inputs_of(projection.id) == ["input"]
    assert "projection shortcut (1×1 128 stride 2)" in graph.caption


def test_squeezenet_fire_squeezes_then_expands_in_two_branches() -> None:
    graph = _graph("squeezenet1_1")
    (squeeze_id,) = graph.outputs_of("input")
    squeeze = graph.node(squeeze_id)
    assert squeeze.label == "1×1 conv, 64 → 16"
    expands = [graph.node(i) for i in graph.outputs_of(squeeze_id)]
    assert [e.label for e in expands] == ["1×1 conv, 16 → 64", "3×3 conv, 16 → 64"]
    cat = _only(graph, "cat")
    assert all(graph.outputs_of(e.id) == [cat.id] for e in expands)
    assert cat.out_shape == (128, 55, 55)
    assert graph.caption.startswith("Fire module: squeeze 1×1 16, then 2 expand branches")


def test_mobilenet_v2_first_block_is_a_depthwise_separable_pair_without_shortcut() -> None:
    graph = _graph("mobilenet_v2", "features.1")
    convs = _kind(graph, "conv")
    assert [c.label for c in convs] == ["3×3 conv, 32 → 32, depthwise", "1×1 conv, 32 → 16"]
    assert _module("mobilenet_v2", convs[0]).groups == 32
    assert not _kind(graph, "add") and not any(e.shortcut for e in graph.edges)
    assert graph.caption.startswith("depthwise-separable convolution")


def test_mobilenet_v2_inverted_residual_expands_filters_projects_and_adds() -> None:
    graph = _graph("mobilenet_v2")
    add = _only(graph, "add")
    convs = _path(graph, "input", add.id)
    assert [c.label for c in convs] == [
        "1×1 conv, 24 → 144",
        "3×3 conv, 144 → 144, depthwise",
        "1×1 conv, 144 → 24",
    ]
    assert [c.detail for c in convs] == ["BN · ReLU6", "BN · ReLU6", "BN"]  # the linear bottleneck
    assert ("input", add.id) in {(e.src, e.dst) for e in graph.edges if e.shortcut}
    assert graph.caption.startswith("inverted residual block: expand 1×1 24 → 144")


def test_shufflenet_unit_splits_channels_and_shuffles_after_the_concat() -> None:
    graph = _graph("shufflenet_v2_x1_0")
    split, cat, shuffle = _only(graph, "split"), _only(graph, "cat"), _only(graph, "shuffle")
    assert split.detail == "2 × 58 channels"
    assert (split.id, cat.id) in {(e.src, e.dst) for e in graph.edges if e.shortcut}  # half passes as is
    assert [graph.node(i).label for i in graph.outputs_of(cat.id)] == [shuffle.label]
    assert shuffle.label == "channel shuffle (groups 2)"
    assert [n.kind for n in _path(graph, split.id, cat.id)] == ["conv", "conv", "conv"]
    assert cat.out_shape == (116, 28, 28)


def test_squeeze_excitation_is_one_box_standing_for_its_block_row() -> None:
    graph = _graph("mobilenet_v3_large")
    gate = _only(graph, "gate")
    assert gate.label == "squeeze-excitation"
    assert type(_module("mobilenet_v3_large", gate)).__name__ == "SqueezeExcitation"
    assert "squeeze-excitation" in graph.caption


def test_densenet_block_concatenates_every_earlier_output() -> None:
    graph = _graph("densenet121")
    cats = _kind(graph, "cat")
    assert len(cats) == 6
    assert [len(graph.inputs_of(c.id)) for c in cats] == [2, 3, 4, 5, 6, 7]
    assert cats[-1].out_shape == (256, 56, 56)
    first_layer = _path(graph, "input", cats[0].id)
    assert [c.label for c in first_layer] == ["1×1 conv, 64 → 128", "3×3 conv, 128 → 32"]
    assert [c.detail for c in first_layer] == ["BN · ReLU before"] * 2  # pre-activation: BN, ReLU, conv
    assert graph.caption.startswith("dense block: 6 layers")


@pytest.mark.parametrize(("name", "block"), SIGNATURES)
def test_every_signature_block_traces_into_boxes_the_explorer_can_select(name: str, block: str) -> None:
    graph = _graph(name)
    model, table = _model_and_table(name)
    rows = set(table.names())
    assert graph.block == block and graph.type == type(model.get_submodule(block)).__name__
    assert "shown as a chain" not in graph.caption  # traced for real
    for node in graph.nodes:
        if node.module is not None:
            assert node.module in rows, node
            assert node.out_shape == table.row(node.module).out_shape, node
    assert graph.node("output").module == block
    ids = [n.id for n in graph.nodes]
    assert len(set(ids)) == len(ids)
    assert len({(n.rank, n.column) for n in graph.nodes}) == len(ids)  # no two boxes in one place
    rank = {n.id: n.rank for n in graph.nodes}
    assert rank["input"] == 0 and rank["output"] == max(rank.values())
    assert all(rank[e.src] < rank[e.dst] for e in graph.edges)
    assert all(rank[e.dst] - rank[e.src] > 1 for e in graph.edges if e.shortcut)
    assert graph.caption and "None" not in graph.caption


def test_plain_stacks_have_no_signature_graph() -> None:
    assert signature_graph("vgg16") is None


def test_unknown_block_name_is_a_key_error() -> None:
    model, _ = _model_and_table("resnet18")
    with pytest.raises(KeyError):
        block_graph(model, "layer9.0", 224)


class _ShapeDependent(nn.Module):
    """Control flow on a size: runs, but torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.project = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > 2:
            x = self.relu(self.conv(x))
        return self.project(x)


def test_untraceable_block_is_shown_as_a_chain_with_real_shapes() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), _ShapeDependent(), nn.Flatten())
    graph = block_graph(net, "1", 16)
    assert "shown as a chain" in graph.caption
    assert [(n.kind, n.module, n.out_shape) for n in graph.nodes] == [
        ("input", None, (8, 14, 14)),
        ("conv", "1.conv", (8, 14, 14)),
        ("conv", "1.project", (4, 14, 14)),
        ("output", "1", (4, 14, 14)),
    ]
    assert graph.node("1.conv").detail == "ReLU"


def test_a_model_with_real_weights_keeps_them() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    before = [p.detach().clone() for p in net.parameters()]
    net.train()
    graph = block_graph(net, "", 12)
    assert [n.label for n in graph.nodes] == ["input", "3×3 conv, 3 → 8", "output"]
    assert graph.nodes[1].detail == "BN · ReLU"
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert net.training  # its mode is given back
