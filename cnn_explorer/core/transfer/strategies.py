"""The transfer-learning strategies as small objects (Lightning's ``BaseFinetuning`` is the pattern): each
decides which weights start pretrained, which are frozen, which stay in eval mode while training, and the
optimizer's parameter groups with their learning-rate factors. The trainer calls them; it has no string
branches of its own.

- ``feature-extractor``: a new linear head on the frozen network's top features (the guide's case 1);
- ``linear-probe``: a linear head on the global-average-pooled output of an earlier ``cut_layer``
  (case 3: earlier features are more generic);
- ``fine-tune-top``: the top N backbone blocks and the head train, the rest is frozen;
- ``fine-tune-all``: everything trains, from the pretrained weights (cases 2 and 4);
- ``scratch``: everything trains, from random weights.

Discriminative learning rates (fine-tune-top and fine-tune-all): the head learns at the base rate, the
earliest trained block at ``lr_mult`` × it, the blocks between spaced geometrically (fastai's
``slice(lr * lr_mult, lr)``). Dropout before the new head (``dropout``) is a forward pre-hook on the
head that acts only in training mode, so checkpoints keep the architecture's own parameter names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.transfer.layers import LinearProbeModel, default_cut_layer, probe_layer_names

STRATEGY_TITLES = {
    "feature-extractor": "Linear classifier on the top features (frozen backbone)",
    "linear-probe": "Linear classifier on an earlier layer's features",
    "fine-tune-top": "Fine-tune the top blocks",
    "fine-tune-all": "Fine-tune everything (from pretrained)",
    "scratch": "Train from scratch",
}
STRATEGIES = tuple(STRATEGY_TITLES)


@dataclass(frozen=True)
class Prepared:
    """What a strategy made of a model: the module to train and how to train it."""

    model: nn.Module
    param_groups: list[dict]  # torch optimizer groups, each with an "lr_scale" (× the scheduled lr)
    set_train_mode: Callable[[], None]
    note: str = ""  # something the user should know (shown as a notice)

    @property
    def trainable(self) -> list[nn.Parameter]:
        return [p for g in self.param_groups for p in g["params"]]


class Strategy:
    key: ClassVar[str]
    pretrained: ClassVar[bool] = True  # start from pretrained weights
    cacheable: ClassVar[bool] = False  # the frozen part's output can be cached (embedding cache)
    discriminative: ClassVar[bool] = False  # lr_mult applies

    def __init__(
        self, *, top_blocks: int = 2, cut_layer: str = "", lr_mult: float = 1.0, dropout: float = 0.0
    ):
        self.top_blocks = top_blocks
        self.cut_layer = cut_layer
        self.lr_mult = lr_mult
        self.dropout = dropout

    @property
    def title(self) -> str:
        return STRATEGY_TITLES[self.key]

    def prepare(self, model: nn.Module, num_classes: int) -> Prepared:
        """Freeze, unfreeze and group ``model``'s parameters (it may be wrapped, as by linear-probe)."""
        model = self.build(model, num_classes)
        for p in model.parameters():
            p.requires_grad_(False)
        head = zoo.classifier_head(model)
        trained, note = self.trained_blocks(model)
        for m in (*trained, head):
            for p in m.parameters():
                p.requires_grad_(True)
        if self.dropout > 0:
            _dropout_before(head, self.dropout)
        groups = self._groups(model, trained, head)
        return Prepared(model, groups, self._train_mode(model, trained, head), note)

    # -- what subclasses decide -------------------------------------------------------------------
    def build(self, model: nn.Module, num_classes: int) -> nn.Module:
        return model

    def trained_blocks(self, model: nn.Module) -> tuple[list[nn.Module], str]:
        """The backbone blocks trained with the head, input → output (and a note)."""
        return [], ""

    def _train_mode(self, model: nn.Module, trained: list[nn.Module], head: nn.Module) -> Callable[[], None]:
        # Frozen parts stay in eval mode: their BatchNorm statistics and dropout do not change, so a frozen
        # layer computes exactly what it computed before.
        def set_mode() -> None:
            model.eval()
            for m in (*trained, head):
                m.train()

        return set_mode

    def _groups(self, model: nn.Module, trained: list[nn.Module], head: nn.Module) -> list[dict]:
        scales = self._block_scales(len(trained))
        if all(scale == 1.0 for scale in scales):
            # One rate for all: one group, in the model's parameter order (as runs of earlier versions
            # saved their optimizer state, so they resume with their momentum)
            return [
                {"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0, "name": "all"}
            ]
        head_params = [p for p in head.parameters() if p.requires_grad]
        groups = [{"params": head_params, "lr_scale": 1.0, "name": "head"}]
        seen = {id(p) for p in head_params}
        names = {id(m): n for n, m in model.named_modules()}
        for block, scale in zip(reversed(trained), reversed(scales), strict=True):
            params = [p for p in block.parameters() if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                groups.append({"params": params, "lr_scale": scale, "name": names.get(id(block), "")})
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
        if rest:  # trainable weights outside every block (a stem's own parameters): the earliest factor
            groups.append({"params": rest, "lr_scale": scales[0] if scales else 1.0, "name": "other"})
        return groups

    def _block_scales(self, n: int) -> list[float]:
        """Learning-rate factors of n trained blocks, input → output: lr_mult for the earliest, rising
        geometrically towards 1 (the head's) at the top."""
        if not self.discriminative or n == 0 or self.lr_mult == 1.0:
            return [1.0] * n
        return [self.lr_mult ** ((n - i) / n) for i in range(n)]


class FeatureExtractor(Strategy):
    key = "feature-extractor"
    cacheable = True


class LinearProbe(Strategy):
    key = "linear-probe"
    cacheable = True

    def build(self, model: nn.Module, num_classes: int) -> nn.Module:
        layer = self.cut_layer or default_cut_layer(model)
        if layer not in probe_layer_names(model):
            valid = ", ".join(probe_layer_names(model))
            raise ValueError(
                f"{type(model).__name__} has no layer {layer!r} to cut at; choose one of: {valid}"
            )
        return LinearProbeModel(model, layer, num_classes)


class FineTuneTop(Strategy):
    key = "fine-tune-top"
    discriminative = True

    def trained_blocks(self, model: nn.Module) -> tuple[list[nn.Module], str]:
        blocks = zoo.backbone_blocks(model)
        n = min(self.top_blocks, len(blocks))
        note = ""
        if n < self.top_blocks:
            note = f"The model has only {len(blocks)} backbone blocks; all of them are fine-tuned."
        return blocks[len(blocks) - n :], note


class FineTuneAll(Strategy):
    key = "fine-tune-all"
    discriminative = True

    def trained_blocks(self, model: nn.Module) -> tuple[list[nn.Module], str]:
        return zoo.backbone_blocks(model), ""

    def _train_mode(self, model: nn.Module, trained: list[nn.Module], head: nn.Module) -> Callable[[], None]:
        return lambda: model.train()


class Scratch(FineTuneAll):
    key = "scratch"
    pretrained = False
    discriminative = False  # random weights: no layer knows more than another


_BY_KEY: dict[str, type[Strategy]] = {
    cls.key: cls for cls in (FeatureExtractor, LinearProbe, FineTuneTop, FineTuneAll, Scratch)
}


def make_strategy(
    key: str, *, top_blocks: int = 2, cut_layer: str = "", lr_mult: float = 1.0, dropout: float = 0.0
) -> Strategy:
    """The strategy object for ``key`` (one of :data:`STRATEGIES`); KeyError for an unknown key."""
    return _BY_KEY[key](top_blocks=top_blocks, cut_layer=cut_layer, lr_mult=lr_mult, dropout=dropout)


def strategy_class(key: str) -> type[Strategy]:
    return _BY_KEY[key]


def _dropout_before(head: nn.Module, rate: float) -> None:
    def drop(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return (F.dropout(args[0], rate, training=module.training), *args[1:])

    head.register_forward_pre_hook(drop)
