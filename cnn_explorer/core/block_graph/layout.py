"""Where the boxes go: reachability from the input, ranks (longest path from the input), columns for
parallel branches, and which edges are shortcuts."""

from __future__ import annotations

from cnn_explorer.core.block_graph.boxes import Box, users_of


def drop_unreachable(boxes: list[Box]) -> list[Box]:
    """The boxes the input reaches (and the output), their inputs cut to those boxes."""
    reached = {"input"}
    for b in boxes:
        if any(i in reached for i in b.inputs):
            reached.add(b.id)
    kept = [b for b in boxes if b.id in reached or b.kind == "output"]
    ids = {b.id for b in kept}
    for b in kept:
        b.inputs = [i for i in b.inputs if i in ids]
    return kept


def ranks(boxes: list[Box]) -> dict[str, int]:
    """Each box's longest path from the input; the output below everything else."""
    rank: dict[str, int] = {}
    for b in boxes:
        rank[b.id] = max((rank[i] + 1 for i in b.inputs), default=0)
    last = max((r for k, r in rank.items() if k != "output"), default=0) + 1
    for b in boxes:
        if b.kind == "output":
            rank[b.id] = max(rank[b.id], last)
    return rank


def columns(boxes: list[Box], rank: dict[str, int], shortcut: set[tuple[str, str]]) -> dict[str, int]:
    """The first branch keeps its parent's column, each further one takes a new column to the right, a
    merge takes the leftmost column of its inputs."""
    column: dict[str, int] = {}
    claimed: set[str] = set()
    next_free = 1
    for b in boxes:
        preds = [i for i in b.inputs if (i, b.id) not in shortcut]
        if not b.inputs:
            column[b.id] = 0
        elif len(b.inputs) >= 2:
            column[b.id] = min(column[i] for i in b.inputs)
        elif (preds or b.inputs)[0] not in claimed:
            column[b.id] = column[b.inputs[0]]
            claimed.add(b.inputs[0])
        else:
            column[b.id] = next_free
            next_free += 1
    taken: set[tuple[int, int]] = set()
    for b in boxes:  # never two boxes in one place
        if (rank[b.id], column[b.id]) in taken:
            column[b.id] = max(c for _, c in taken) + 1
        taken.add((rank[b.id], column[b.id]))
    return column


def shortcuts(boxes: list[Box]) -> set[tuple[str, str]]:
    """Edges u → v where another path also leads from u to v: they skip computation."""
    reach: dict[str, set[str]] = {}
    users = users_of(boxes)
    for b in reversed(boxes):
        r: set[str] = set()
        for u in users[b.id]:
            r |= {u} | reach[u]
        reach[b.id] = r
    found = set()
    for b in boxes:
        for i in b.inputs:
            if any(w != b.id and b.id in reach[w] for w in users[i]):
                found.add((i, b.id))
    return found
