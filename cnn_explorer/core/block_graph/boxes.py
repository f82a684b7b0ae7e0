"""Working boxes: the mutable stand-ins for a graph's nodes while chains are merged, and the builders that
make one from a module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnn_explorer.core.block_graph.graph import Shape
from cnn_explorer.core.block_graph.kinds import (
    CONV,
    PASS_THROUGH,
    POOLS,
    activation_name,
    hw_pair,
    is_gate,
    norm_names,
    size_text,
)


@dataclass
class Box:
    id: str
    kind: str
    label: str
    module: str | None
    out_shape: Shape | None
    inputs: list[str] = field(default_factory=list)
    short: str = ""  # for captions: "3×3 64", "3×3 depthwise 144", "3×3 max pool"
    before: list[str] = field(default_factory=list)  # norms / activations merged in front of a conv
    after: list[str] = field(default_factory=list)  # ... and behind it
    kernel: tuple[int, int] | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    depthwise: bool = False
    stride: int = 1
    groups: int = 1  # channel shuffle groups too

    def detail(self) -> str:
        if self.kind == "split" and self.out_channels:
            return f"{self.groups} × {self.out_channels} channels"
        if self.before:
            text = f"{' · '.join(self.before)} before"
            return f"{text}, {' · '.join(self.after)} after" if self.after else text
        return " · ".join(self.after)


def users_of(boxes: list[Box]) -> dict[str, list[str]]:
    """Each box's id: the ids of the boxes it feeds."""
    users: dict[str, list[str]] = {b.id: [] for b in boxes}
    for b in boxes:
        for i in b.inputs:
            users[i].append(b.id)
    return users


def box_id_of(name: str) -> str:
    """Box ids come from node or module names; "input" and "output" are the block's own ends."""
    return f"{name}_" if name in ("input", "output") else name


def conv_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> Box:
    kh, kw = hw_pair(module.kernel_size)  # type: ignore[arg-type]
    cin, cout, groups = int(module.in_channels), int(module.out_channels), int(module.groups)
    stride = max(hw_pair(module.stride))  # type: ignore[arg-type]
    dilation = max(hw_pair(module.dilation))  # type: ignore[arg-type]
    depthwise = groups > 1 and groups == cin
    label = f"{kh}×{kw} conv, {cin} → {cout}"
    short = f"{kh}×{kw} depthwise {cout}" if depthwise else f"{kh}×{kw} {cout}"
    if stride > 1:
        label += f", stride {stride}"
        short += f" stride {stride}"
    if depthwise:
        label += ", depthwise"
    elif groups > 1:
        label += f", groups {groups}"
        short += f" (groups {groups})"
    if dilation > 1:
        label += f", dilation {dilation}"
    return Box(
        box_id,
        "conv",
        label,
        name,
        shape,
        short=short,
        kernel=(kh, kw),
        in_channels=cin,
        out_channels=cout,
        depthwise=depthwise,
        stride=stride,
        groups=groups,
    )


def pool_box(
    box_id: str, kind: str, kernel: Any, stride: Any, adaptive_to: Any, name: str | None, shape: Shape | None
) -> Box:
    """kind "max" or "avg"; ``adaptive_to`` the output size of an adaptive pool, else None."""
    if adaptive_to is not None:
        out = hw_pair(adaptive_to)
        label = f"global {kind} pool" if out == (1, 1) else f"adaptive {kind} pool to {size_text(out)}"
        return Box(box_id, "pool", label, name, shape, short=label)
    k = hw_pair(kernel)
    s = max(hw_pair(stride if stride is not None and stride != [] else kernel))
    short = f"{size_text(k)} {kind} pool"
    return Box(box_id, "pool", f"{short}, stride {s}", name, shape, short=short, kernel=k, stride=s)


def module_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> Box | None:
    """The box of a leaf module's call; None for a pass-through (dropped, its connection kept)."""
    if isinstance(module, PASS_THROUGH):
        return None
    if isinstance(module, CONV):
        return conv_box(box_id, module, name, shape)
    if isinstance(module, nn.Linear):
        label = f"FC {module.in_features} → {module.out_features}"
        return Box(
            box_id,
            "linear",
            label,
            name,
            shape,
            short=f"FC {module.out_features}",
            in_channels=module.in_features,
            out_channels=module.out_features,
        )
    if isinstance(module, POOLS):
        kind = "max" if "Max" in type(module).__name__ else "avg"
        adaptive = getattr(module, "output_size", None)
        return pool_box(
            box_id,
            kind,
            getattr(module, "kernel_size", 1),
            getattr(module, "stride", None),
            adaptive,
            name,
            shape,
        )
    if is_gate(module):
        return _gate_box(box_id, module, name, shape)
    norm = norm_names(module)
    if norm is not None:
        return Box(box_id, "norm", norm[1], name, shape, short=norm[0])
    act = activation_name(type(module).__name__)
    if act is not None:
        return Box(box_id, "act", act, name, shape, short=act)
    label = type(module).__name__
    return Box(box_id, "other", label, name, shape, short=label)


def _gate_box(box_id: str, module: nn.Module, name: str, shape: Shape | None) -> Box:
    layers = [m for m in module.modules() if isinstance(m, (CONV, nn.Linear))]
    box = Box(box_id, "gate", "squeeze-excitation", name, shape, short="squeeze-excitation")
    if len(layers) >= 2:
        first = layers[0]
        cin = getattr(first, "in_channels", getattr(first, "in_features", 0))
        mid = getattr(first, "out_channels", getattr(first, "out_features", 0))
        box.after = [f"global pool · {cin} → {mid} → {cin} · scale channels"]
        box.in_channels = box.out_channels = int(cin)
    return box
