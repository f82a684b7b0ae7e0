"""The caption: one line in words worked out from the merged, laid-out boxes (a residual, inverted
residual or bottleneck block, a dense block, an Inception or Fire module, a channel split and shuffle,
a depthwise-separable pair, or a plain chain)."""

from __future__ import annotations

from collections.abc import Iterable

from cnn_explorer.core.block_graph.boxes import Box, users_of
from cnn_explorer.core.block_graph.kinds import size_text

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


class _Wiring:
    """The boxes with their users, for walking single links forwards and back."""

    def __init__(self, boxes: list[Box], shortcut: set[tuple[str, str]]) -> None:
        self.boxes = boxes
        self.by_id = {b.id: b for b in boxes}
        self.users = users_of(boxes)
        self.shortcut = shortcut

    def chain(self, start: str, stop: str) -> list[Box]:
        """Boxes from ``start`` (included) along single links up to ``stop`` (excluded)."""
        out: list[Box] = []
        current = start
        while current != stop and current in self.by_id:
            box = self.by_id[current]
            if len(box.inputs) > 1 or box in out:
                break
            out.append(box)
            nxt = self.users[current]
            if len(nxt) != 1:
                break
            current = nxt[0]
        return out

    def origin(self, box_id: str) -> tuple[str, list[Box]]:
        """Walk back along single links from ``box_id``: (the fan-out box it started from, the chain)."""
        path: list[Box] = []
        current = box_id
        while current in self.by_id:
            box = self.by_id[current]
            if box.kind == "input" or len(self.users[current]) > 1 or len(box.inputs) != 1:
                break
            path.insert(0, box)
            current = box.inputs[0]
        return current, path


def _path_text(boxes: Iterable[Box]) -> str:
    return " → ".join(b.short for b in boxes if b.kind not in ("act", "norm")) or "identity"


def _channels(box: Box) -> int | None:
    return box.out_shape[0] if box.out_shape else box.out_channels


def caption_for(graph_type: str, boxes: list[Box], shortcut: set[tuple[str, str]]) -> str:
    """The block in words, from its merged boxes and its ``shortcut`` edges; ``graph_type`` names a block
    whose wiring has no name of its own."""
    w = _Wiring(boxes, shortcut)
    inp, out = w.by_id["input"], next(b for b in boxes if b.kind == "output")
    merges = [b for b in boxes if b.kind in ("add", "cat", "mul") and len(b.inputs) >= 2]
    body = [b for b in boxes if b.kind not in ("input", "output")]
    cin, cout = _channels(inp), _channels(out)
    dense = [m for m in merges if m.kind == "cat" and ("input", m.id) in shortcut]
    if len(dense) >= 2:
        layer = w.chain(w.users["input"][0], dense[0].id) if w.users["input"] else []
        layer = [b for b in layer if b.kind != "cat"]
        growth = _channels(layer[-1]) if layer else None
        return (
            f"dense block: {len(dense)} layers ({_path_text(layer)}, {growth} new channels each), each "
            f"fed the concatenation of the block input and all earlier layers' outputs; "
            f"{cin} → {cout} channels"
        )
    if not merges:
        convs = [b for b in body if b.kind == "conv"]
        if len(convs) == 2 and convs[0].depthwise and convs[1].kernel == (1, 1):
            gate = ", squeeze-excitation between them" if any(b.kind == "gate" for b in body) else ""
            return (
                f"depthwise-separable convolution: {size_text(convs[0].kernel or (1, 1))} depthwise on "
                f"{convs[0].out_channels} channels, then 1×1 pointwise {convs[1].in_channels} → "
                f"{convs[1].out_channels}{gate}; no shortcut"
            )
        return f"{graph_type}: a chain — {_path_text(body)}"
    split = next((b for b in body if b.kind == "split"), None)
    shuffle = next((b for b in body if b.kind == "shuffle"), None)
    last = merges[-1]
    if split is not None and shuffle is not None and last.kind == "cat":
        kept = [i for i in last.inputs if i == split.id]
        worked = [w.origin(i)[1] for i in last.inputs if i != split.id]
        passes = f"{split.out_channels} channels pass unchanged, " if kept else ""
        paths = " | ".join(_path_text(p) for p in worked)
        return (
            f"channel split and shuffle: {passes}{split.out_channels} go through {paths}; "
            f"concatenated to {_channels(last)} channels and shuffled (groups {shuffle.groups})"
        )
    if last.kind == "add":
        return _residual_caption(w, last)
    if last.kind == "cat":
        return _branches_caption(w, last, cin)
    return f"{graph_type}: {_path_text(body)}"


def _residual_caption(w: _Wiring, add: Box) -> str:
    paths = sorted((w.origin(i) for i in add.inputs), key=lambda op: -len(op[1]))
    main = paths[0][1]
    skip_from, skip = paths[-1] if len(paths) > 1 else ("input", [])
    convs = [b for b in main if b.kind == "conv"]
    words = _path_text(main)
    kind = "residual block"
    sizes = {b.kernel for b in convs}
    widths = {b.out_channels for b in convs} | {b.in_channels for b in convs}
    gate = any(b.kind == "gate" for b in main)
    if convs and len(sizes) == 1 and len(widths) == 1 and not gate:
        k = size_text(convs[0].kernel or (1, 1))
        count = _NUMBER_WORDS.get(len(convs), str(len(convs)))
        words = f"{count} {k} convs, {convs[0].out_channels} channels"
    elif len(convs) >= 2 and convs[0].kernel == convs[-1].kernel == (1, 1):
        first, lastc = convs[0], convs[-1]
        if any(b.depthwise for b in convs) and (first.out_channels or 0) > (first.in_channels or 0):
            kind = "inverted residual block"
            middle = ", ".join(
                f"{size_text(b.kernel or (1, 1))} depthwise" + (f" stride {b.stride}" if b.stride > 1 else "")
                if b.kind == "conv"
                else b.short
                for b in main[1:-1]
                if b.kind in ("conv", "gate")
            )
            words = (
                f"expand 1×1 {first.in_channels} → {first.out_channels}, {middle}, "
                f"project 1×1 {lastc.in_channels} → {lastc.out_channels}"
            )
        elif len(convs) == 3 and (convs[1].out_channels or 0) < (lastc.out_channels or 0):
            kind = "bottleneck residual block"
    if not skip and skip_from == "input":
        shortcut = "identity shortcut added"
    else:
        shortcut = f"projection shortcut ({_path_text(skip)}) added"
    after = [b.short for b in w.chain(w.users[add.id][0], "output")] if w.users[add.id] else []
    tail = f", then {' · '.join(after)}" if after else ""
    return f"{kind}: {words}, {shortcut}{tail}"


def _branches_caption(w: _Wiring, cat: Box, cin: int | None) -> str:
    origins = [w.origin(i) for i in cat.inputs]
    fan = origins[0][0]
    branches = [path for _, path in origins]
    text = " | ".join(_path_text(p) for p in branches)
    n = len(branches)
    total = f"concatenated to {_channels(cat)} channels"
    lead = [*w.chain(w.users["input"][0], fan), w.by_id[fan]] if fan != "input" and w.users["input"] else []
    if fan == "input" or not lead:
        name = "Inception module" if n >= 3 else "multi-branch block"
        return f"{name}: {n} branches — {text}, {total}"
    squeeze = lead[-1] if lead[-1].kind == "conv" else None
    if len(lead) == 1 and squeeze is not None and (squeeze.out_channels or 0) < (cin or 0):
        return f"Fire module: squeeze {squeeze.short}, then {n} expand branches — {text}, {total}"
    return f"{_path_text(lead)}, then {n} branches — {text}, {total}"
