"""Where a network can be cut: the blocks whose output is a feature map a linear probe can read.

A probe point is a backbone block (``zoo.backbone_blocks``) that contains a convolution, so its output is
a (N, C, h, w) map; normalisation-only blocks (a BatchNorm after the stem) and linear layers are not
probe points. Names are the modules' qualified names (``"_blocks.7"``, ``"layer3.1"``), as in the layer
table. :func:`run_until` runs a model up to one of them and stops there, so a probe on an early layer
costs only the layers before it.
"""

from __future__ import annotations

import functools

from torch import Tensor, nn

from cnn_explorer.core import zoo


class _Reached(Exception):  # control flow, not an error: the wanted output was computed
    def __init__(self, value: Tensor) -> None:
        self.value = value


def probe_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every probe point, input → output."""
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for block in zoo.backbone_blocks(model):
        if isinstance(block, nn.Conv2d) or any(isinstance(m, nn.Conv2d) for m in block.modules()):
            out.append((names[id(block)], block))
    return out


def probe_layer_names(model: nn.Module) -> list[str]:
    return [name for name, _ in probe_layers(model)]


@functools.cache
def _skeleton_names(model_name: str) -> tuple[str, ...]:
    return tuple(probe_layer_names(zoo.skeleton(model_name)))


def skeleton_probe_layers(model_name: str) -> list[str]:
    """The probe points of a zoo architecture by name, without building its weights (fast enough for a
    combo box on the GUI thread)."""
    return list(_skeleton_names(model_name))


def find_probe_layer(model: nn.Module, name: str) -> nn.Module:
    """The probe point called ``name``; ValueError listing the valid names otherwise."""
    for layer_name, module in probe_layers(model):
        if layer_name == name:
            return module
    valid = ", ".join(probe_layer_names(model))
    raise ValueError(f"{type(model).__name__} has no layer {name!r} to cut at; choose one of: {valid}")


def default_cut_layer(model: nn.Module) -> str:
    """The course's "earlier layer" for a small dataset unlike ImageNet: the probe point halfway up the
    network (its features are more generic than the top's, and still more than edges). Probing every block
    (``core.transfer.probe``) finds the best one for a dataset."""
    names = probe_layer_names(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no convolutional block to cut at")
    return halfway(names)


def halfway(names: list[str]) -> str:
    """The layer halfway up a list of probe points (input → output); "" for none."""
    return names[(len(names) - 1) // 2] if names else ""


def run_until(model: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
    """``layer``'s output for input ``x``; the layers after it do not run."""

    def stop(_module: nn.Module, _args: tuple, output: object) -> None:
        raise _Reached(output)  # type: ignore[arg-type]

    handle = layer.register_forward_hook(stop)
    try:
        model(x)
    except _Reached as reached:
        return reached.value
    finally:
        handle.remove()
    raise RuntimeError(f"{type(model).__name__}: the layer to cut at was never reached")


class LinearProbeModel(nn.Module):
    """A linear classifier on one layer's global-average-pooled features (the "linear-probe" strategy).

    ``backbone`` runs up to ``layer`` and stops (:func:`run_until`); the blocks after it and the backbone's
    own classifier never run, so they are replaced by ``nn.Identity`` and their weights are not kept. The
    state dict is ``backbone.*`` (the kept layers) and ``fc.*``; a checkpoint records ``probe_layer`` so
    ``zoo.load_model_file`` rebuilds this module.
    """

    def __init__(self, backbone: nn.Module, layer: str, num_classes: int, in_features: int | None = None):
        super().__init__()
        cut = find_probe_layer(backbone, layer)
        if in_features is None:
            in_features = _channels_at(backbone, cut)
        _prune_after(backbone, cut)
        self.backbone = backbone
        self.layer = layer
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(in_features, num_classes)
        self.__dict__["_cut"] = cut  # a reference, not a second registration of the block (state dict)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(run_until(self.backbone, self._cut, x))))


def _channels_at(model: nn.Module, layer: nn.Module) -> int:
    import torch

    from cnn_explorer.core.layers import eval_mode

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    c = first.in_channels if first is not None else 3
    error: RuntimeError | None = None
    for side in _TRIAL_SIDES:  # late layers of some networks (Inception's Mixed_7c) need a large input
        try:
            with torch.no_grad(), eval_mode(model):
                out = run_until(model, layer, torch.zeros(1, c, side, side, device=_device(model)))
            return int(out.shape[1])
        except RuntimeError as exc:
            error = exc
    raise ValueError(f"no input up to {_TRIAL_SIDES[-1]} px reaches this layer ({error})")


_TRIAL_SIDES = (64, 128, 224, 299)


def _device(model: nn.Module):
    import torch

    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _prune_after(model: nn.Module, cut: nn.Module) -> None:
    """Replace the blocks after ``cut`` and the classifier head with ``nn.Identity``."""
    blocks = zoo.backbone_blocks(model)
    index = next(i for i, b in enumerate(blocks) if b is cut)
    doomed = {id(b) for b in blocks[index + 1 :]} | {id(zoo.classifier_head(model))}
    for parent in list(model.modules()):
        for attr, child in list(parent.named_children()):
            if id(child) in doomed:
                zoo.set_child(parent, attr, nn.Identity())
