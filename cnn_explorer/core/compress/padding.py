"""TensorFlow-style "same" padding convolutions rewritten as standard modules, so torch.ao's FX flow sees
ordinary ``nn.Conv2d`` leaves it can fuse with the BatchNorm that follows.

EfficientNet-Lite0's port (``efficientnet_lite_pytorch``) builds its convolutions as
``Conv2dStaticSamePadding``: an ``nn.Conv2d`` subclass whose ``forward`` runs a child ``ZeroPad2d`` and then
``F.conv2d``. FX does not treat the subclass as a leaf, so it traces it into a functional convolution that
is never fused with its BatchNorm: the int8 model then ran 8–10× slower than fp32 (x86 engine), was only
3.4× smaller and its state_dict did not load with ``weights_only=True``. Rewritten, the same weights give
the same numbers: a symmetric pad becomes the convolution's own ``padding``; an asymmetric one (strided
convolutions on even sizes pad one pixel more at the bottom and right) stays a ``ZeroPad2d`` in front of a
plain convolution, as ``nn.Sequential(pad=..., conv=...)``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

__all__ = ["CONV_CHILD", "PAD_CHILD", "display_name", "same_padding_convs", "standardise_same_padding"]

PAD_CHILD = "pad"
CONV_CHILD = "conv"


def same_padding_convs(model: nn.Module) -> list[str]:
    """Names of the convolutions that pad in their own ``forward`` (a child ``static_padding``)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and type(m) is not nn.Conv2d and hasattr(m, "static_padding")
    ]


def _standard(conv: nn.Conv2d) -> nn.Module:
    plain = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=0,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    plain.weight = conv.weight  # the same Parameter: weights and any pruning zeros carry over exactly
    if conv.bias is not None:
        plain.bias = conv.bias
    pad = conv.static_padding
    new: nn.Module = plain
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            plain.padding = (top, left)
        else:
            new = nn.Sequential(OrderedDict([(PAD_CHILD, nn.ZeroPad2d(pad.padding)), (CONV_CHILD, plain)]))
    elif any(True for _ in pad.parameters()) or type(pad).__name__ != "Identity":
        raise ValueError(f"unexpected padding module {type(pad).__name__} in {type(conv).__name__}")
    new.train(conv.training)  # FX fuses a conv with its BatchNorm only when both are in the same mode
    return new


def standardise_same_padding(model: nn.Module) -> int:
    """Replace every same-padding convolution of ``model`` in place; returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for attr, child in list(parent.named_children()):
            if (
                isinstance(child, nn.Conv2d)
                and type(child) is not nn.Conv2d
                and hasattr(child, "static_padding")
            ):
                new = _standard(child)
                if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
                    parent[int(attr)] = new
                else:
                    setattr(parent, attr, new)
                replaced += 1
    return replaced


def display_name(name: str, modules: dict[str, nn.Module]) -> str:
    """The original layer name of a standardised padded convolution ("_conv_stem.conv" -> "_conv_stem")."""
    parent, _, last = name.rpartition(".")
    if last == CONV_CHILD and parent and isinstance(modules.get(f"{parent}.{PAD_CHILD}"), nn.ZeroPad2d):
        return parent
    return name
