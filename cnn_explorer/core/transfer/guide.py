"""The course's transfer-learning guide (seed 000 §2.4): dataset size × similarity to ImageNet → strategy.

1. small and similar   → a linear classifier on the CNN's features (``"feature-extractor"``);
2. large and similar   → fine-tune the whole network (``"fine-tune-all"``);
3. small and different → a linear classifier on the features of an *earlier* layer, which are more generic
   than the top's (``"linear-probe"`` at a cut layer);
4. large and different → training from scratch is possible, but in practice one initialises from the
   pretrained weights and fine-tunes the whole network (``"fine-tune-all"``, alternative ``"scratch"``).

Whether a dataset is similar can be estimated from the pretrained head (``core.transfer.similarity``).
This module must not import ``core.training``: training imports it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cnn_explorer.core import zoo
from cnn_explorer.core.transfer.layers import halfway, skeleton_probe_layers
from cnn_explorer.core.transfer.results import GuideCase, Recommendation

# Below this many images a dataset counts as "small" in the guide (a few thousand is where fine-tuning
# whole networks stops overfitting quickly).
SMALL_DATASET_IMAGES = 5000


@dataclass(frozen=True)
class GuideCell:
    """One cell of the guide's 2×2 grid: rows are the size (small, large), columns the similarity."""

    title: str  # "Small · similar"
    strategy: str  # the strategy key (core.training.STRATEGIES)
    text: str  # the strategy in the notes' words, short enough for a cell


GUIDE_GRID: dict[GuideCase, GuideCell] = {
    GuideCase.SMALL_SIMILAR: GuideCell(
        "Small · similar",
        "feature-extractor",
        "Train a linear classifier on the CNN's features; fine-tuning would overfit.",
    ),
    GuideCase.LARGE_SIMILAR: GuideCell(
        "Large · similar",
        "fine-tune-all",
        "Fine-tune the whole network: enough data not to overfit.",
    ),
    GuideCase.SMALL_DIFFERENT: GuideCell(
        "Small · different",
        "linear-probe",
        "Train a linear classifier on an earlier layer's features, which are more generic than the top's.",
    ),
    GuideCase.LARGE_DIFFERENT: GuideCell(
        "Large · different",
        "fine-tune-all",
        "Training from scratch is possible; in practice, start from the pretrained weights and "
        "fine-tune the whole network.",
    ),
}


def is_small(n_images: int) -> bool:
    return n_images < SMALL_DATASET_IMAGES


def guide_case(n_images: int, similar_to_imagenet: bool) -> GuideCase:
    """The cell of the guide a dataset of ``n_images`` images falls in."""
    if n_images < 0:
        raise ValueError(f"a dataset cannot have {n_images} images")
    if is_small(n_images):
        return GuideCase.SMALL_SIMILAR if similar_to_imagenet else GuideCase.SMALL_DIFFERENT
    return GuideCase.LARGE_SIMILAR if similar_to_imagenet else GuideCase.LARGE_DIFFERENT


def _size_text(n_images: int) -> str:
    images = f"{n_images:,} image{'' if n_images == 1 else 's'}"
    if is_small(n_images):
        return f"{images} is a small dataset (fewer than {SMALL_DATASET_IMAGES:,})"
    return f"{images} is a large dataset ({SMALL_DATASET_IMAGES:,} or more)"


def recommend_strategy(
    n_images: int, similar_to_imagenet: bool, *, cut_layer: str | None = None
) -> Recommendation:
    """The guide's answer for a dataset of ``n_images`` images, similar to ImageNet's or not.

    ``cut_layer`` is the earlier layer of case 3 (small and different); it is ignored in the other cases.
    :func:`recommend_for_model` fills it in for a model.
    """
    case = guide_case(n_images, similar_to_imagenet)
    size = _size_text(n_images)
    strategy = GUIDE_GRID[case].strategy
    if case is GuideCase.SMALL_SIMILAR:
        reason = (
            f"{size} and its pictures are similar to ImageNet's. With so little data, fine-tuning the "
            "network would overfit; and because the pictures are similar, the CNN's higher-level features "
            "are relevant to them too. Train a linear classifier on the CNN's features (the backbone stays "
            "frozen)."
        )
        return Recommendation(case, strategy, reason, n_images)
    if case is GuideCase.LARGE_SIMILAR:
        reason = (
            f"{size} and its pictures are similar to ImageNet's. With this much data we can be confident "
            "that fine-tuning through the whole network will not overfit: fine-tune every layer, starting "
            "from the pretrained weights with a small learning rate."
        )
        return Recommendation(case, strategy, reason, n_images)
    if case is GuideCase.SMALL_DIFFERENT:
        where = f"an earlier layer ({cut_layer})" if cut_layer else "an earlier layer"
        reason = (
            f"{size} and its pictures are very different from ImageNet's. With so little data it is best "
            "to train only a linear classifier; but the top of the network holds features specific to "
            f"ImageNet, so train it on the features of {where}: earlier layers are more generic "
            "(edges, textures, simple shapes)."
        )
        return Recommendation(case, strategy, reason, n_images, cut_layer=cut_layer)
    reason = (
        f"{size} and its pictures are very different from ImageNet's. With this much data, training the "
        "network from scratch is possible; in practice it is still usually better to initialise from the "
        "pretrained weights, and there is enough data to fine-tune the whole network."
    )
    return Recommendation(case, strategy, reason, n_images, alternative="scratch")


@functools.lru_cache(maxsize=32)
def _cut_layer_of(model_name: str) -> str:
    # The cut layer depends on the architecture only: its layers without weights suffice.
    return halfway(skeleton_probe_layers(model_name))


def recommend_for_model(n_images: int, similar_to_imagenet: bool, model_name: str) -> Recommendation:
    """:func:`recommend_strategy`, with case 3's cut layer chosen for ``model_name``
    (``default_cut_layer``, the probe point halfway up). ``zoo.ModelLoadError`` for an unknown model."""
    zoo.get_info(model_name)  # an unknown name is an error in every case, not only in case 3
    if guide_case(n_images, similar_to_imagenet) is GuideCase.SMALL_DIFFERENT:
        return recommend_strategy(n_images, similar_to_imagenet, cut_layer=_cut_layer_of(model_name))
    return recommend_strategy(n_images, similar_to_imagenet)
