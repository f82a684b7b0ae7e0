"""The graph a block becomes: the public, frozen dataclasses the gallery and the block diagram read."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockEdge", "BlockGraph", "BlockNode", "Shape"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BlockNode:
    id: str
    kind: str  # "input"|"conv"|"pool"|"linear"|"add"|"cat"|"mul"|"shuffle"|"split"|"gate"|"act"|"norm"|...
    label: str  # "3×3 conv, 64 → 64, stride 2"
    detail: str  # what the box also holds, "BN · ReLU"; "" when nothing
    module: str | None  # the explorer row this box stands for (the whole model's naming), None for functions
    out_shape: Shape | None  # (C, H, W) without the batch dimension
    rank: int  # longest path from the input
    column: int  # 0 for the main path; parallel branches to the right


@dataclass(frozen=True)
class BlockEdge:
    src: str
    dst: str
    shortcut: bool  # jumps over computation that runs parallel to it (an identity skip)


@dataclass(frozen=True)
class BlockGraph:
    block: str  # qualified module name in the model, "layer1.0"
    type: str  # the block's class name, "BasicBlock"
    nodes: tuple[BlockNode, ...]  # ordered by (rank, column)
    edges: tuple[BlockEdge, ...]
    branches: int  # parallel paths leaving the input (a residual block's identity skip counts)
    caption: str  # one line in words

    def node(self, node_id: str) -> BlockNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def inputs_of(self, node_id: str) -> list[str]:
        return [e.src for e in self.edges if e.dst == node_id]

    def outputs_of(self, node_id: str) -> list[str]:
        return [e.dst for e in self.edges if e.src == node_id]
