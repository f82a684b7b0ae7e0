"""A model's signature block as a small graph drawn from the real module: boxes for its layers, edges for
its wiring, each box with its output shape and the explorer row it stands for.

The block is traced with torch.fx (its layers, squeeze-and-excitation gates and ShuffleNet's channel
shuffle stay single nodes) and its shapes are propagated on PyTorch's "meta" device, so no arithmetic
runs. For readability a convolution and the batch norm and activation that follow it (or, in a
pre-activation block such as DenseNet's, precede it) become one box, named after the convolution;
pass-throughs (dropout, identity, stochastic depth: the identity in eval mode) disappear, their
connections kept.

Layout: a box's ``rank`` is its longest path from the input (the input has rank 0, the output the largest
rank). Parallel branches get columns side by side (the first branch keeps its parent's column, each
further one takes a new column to the right) and a merge takes the leftmost column of its inputs. An edge
that jumps over computation it runs parallel to (a residual block's identity skip) is a ``shortcut``.

A block that torch.fx cannot trace is shown as the chain of its parts in registration order, and its
caption says so.

The work is split by step, in the order a block goes through them: ``trace`` runs it on the meta device
and traces it, ``fx_boxes`` turns the trace into boxes (``boxes``, made from the layer kinds in ``kinds``),
``merge`` joins chains, ``layout`` ranks and places the boxes, ``captions`` words the result and
``assemble`` does it all and freezes it into the dataclasses of ``graph``. Only the names below are
public.
"""

from cnn_explorer.core.block_graph.assemble import block_graph, signature_graph
from cnn_explorer.core.block_graph.graph import BlockEdge, BlockGraph, BlockNode

__all__ = ["BlockEdge", "BlockGraph", "BlockNode", "block_graph", "signature_graph"]
