"""Merging chains into readable boxes: a convolution takes the batch norm and activation around it, a lone
norm the activation after it."""

from __future__ import annotations

from cnn_explorer.core.block_graph.boxes import Box, users_of


def _chain_start(by_id: dict[str, Box], box: Box) -> Box:
    """The box feeding the run of norms / activations that ``box`` is part of."""
    while box.kind in ("norm", "act") and len(box.inputs) == 1:
        box = by_id[box.inputs[0]]
    return box


def merge_chains(boxes: list[Box]) -> list[Box]:
    """conv → norm → activation (single users) become the conv's box; norms and activations right before
    a conv (pre-activation) join it too; a lone norm takes the activation after it."""
    by_id = {b.id: b for b in boxes}
    removed: set[str] = set()

    def absorb_after(head: Box, kinds: tuple[str, ...]) -> None:
        while True:
            users = [u for u in users_of([b for b in boxes if b.id not in removed])[head.id]]
            if len(users) != 1:
                return
            nxt = by_id[users[0]]
            if nxt.kind not in kinds or nxt.inputs != [head.id]:
                return
            head.after.append(nxt.short)
            head.out_shape = nxt.out_shape
            removed.add(nxt.id)
            for b in boxes:
                b.inputs = [head.id if i == nxt.id else i for i in b.inputs]
            if nxt.kind == "act":
                kinds = ("act",)

    def absorb_before(first_only: bool) -> None:
        """Norms / activations whose only user is a conv fed only by them; ``first_only``: only chains that
        do not start right after a conv (where they belong to that conv, post-activation style)."""
        changed = True
        while changed:
            changed = False
            live = [b for b in boxes if b.id not in removed]
            users = users_of(live)
            for box in live:
                if box.kind not in ("norm", "act") or len(users[box.id]) != 1 or len(box.inputs) != 1:
                    continue
                conv = by_id[users[box.id][0]]
                if conv.kind != "conv" or conv.inputs != [box.id]:
                    continue
                if first_only and _chain_start(by_id, box).kind in ("conv", "linear"):
                    continue
                conv.before.insert(0, box.short)
                conv.inputs = list(box.inputs)
                removed.add(box.id)
                changed = True
                break

    absorb_before(first_only=True)  # pre-activation blocks (DenseNet): BN · ReLU → conv
    for box in boxes:
        if box.id not in removed and box.kind in ("conv", "linear") and not box.before:
            absorb_after(box, ("norm", "act"))
    absorb_before(first_only=False)
    for box in boxes:
        if box.id not in removed and box.kind == "norm":
            absorb_after(box, ("act",))
    return [b for b in boxes if b.id not in removed]
