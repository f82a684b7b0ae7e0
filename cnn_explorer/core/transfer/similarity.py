"""Is a dataset "similar to ImageNet"? An estimate from the pretrained ImageNet classifier's confidence.

On photos like ImageNet's the pretrained head tends to be sure of one class (a high top-class probability,
a low entropy); on pictures unlike them (silhouettes, drawings, noise) it spreads its guesses over many
classes. :func:`estimate_similarity` runs the head on a deterministic sample of the dataset's images and on
the bundled photos (the reference, with fixed crops and flips to steady it) and compares the two mean
top-class probabilities. The threshold on their ratio was measured on real data (see ``SIMILAR_SCORE``).

A rough estimate, not a proof: ImageNet has no "person" class, so a portrait gets a low confidence although
it is a photo; a screenshot can get a high one ("web site"). The guide's page lets the user overrule it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.data import DatasetScan
from cnn_explorer.core.images import ImageLoadError, open_image, sample_images
from cnn_explorer.core.transfer.results import SimilarityEstimate

# The dataset counts as similar when its mean top-class probability is at least this fraction of the
# reference photos'. Measured with EfficientNet-Lite0 (ImageNet weights); reference = the 4 bundled photos
# x 12 fixed views (mean top-class probability 0.489, entropy 2.55 nats); dataset photos are 12 random
# crops (40-100 % of the area, some mirrored) saved as JPEG:
#   different: the animal silhouettes, all 500: score 0.27; 64-image samples, seeds 0-39: 0.20-0.31;
#              the most confident class alone (giraffe, 100 images): 0.45; uniform noise: 0.25
#   similar, photos held out of the reference (reference = the other 3 bundled photos): rocket 0.65,
#              chelsea 1.03, coffee 2.50; a circuit-board photo not bundled (reference = all 4): 1.89
#   misses: astronaut held out, 0.25 (a portrait: ImageNet has no person class); screenshots of diagrams
#              count as similar (1.30, 0.72: the head is sure they are a "web site")
# 0.5 lies between the silhouettes' worst sample (0.31; their most confident class alone, 0.45) and the
# least confident held-out photo (0.65). Fashion-MNIST and scikit-image were not on the calibration machine.
SIMILAR_SCORE = 0.5
BATCH_SIZE = 16

_REFERENCE_CACHE: dict[tuple, tuple[float, float]] = {}
_REFERENCE_LOCK = threading.Lock()


class SimilarityError(ValueError):
    """The estimate cannot be made (no readable image, no pretrained model); ``str(err)`` says why."""


def _views(pixels: np.ndarray) -> list[np.ndarray]:
    """12 fixed views of a reference photo: whole, centre 75 %, four corners 70 %, each also mirrored."""
    h, w = pixels.shape[:2]
    crops = [pixels]
    ch, cw = int(h * 0.75), int(w * 0.75)
    crops.append(pixels[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw])
    ch, cw = int(h * 0.7), int(w * 0.7)
    for top, left in ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)):
        crops.append(pixels[top : top + ch, left : left + cw])
    return [np.ascontiguousarray(v) for c in crops for v in (c, c[:, ::-1])]


def _head_stats(loaded: zoo.LoadedModel, images: list[np.ndarray], control: Control | None) -> np.ndarray:
    """(n, 2): each image's top-class probability and prediction entropy (nats) under the ImageNet head."""
    out = []
    for start in range(0, len(images), BATCH_SIZE):
        checkpoint(control)
        x = torch.stack([loaded.preprocess(px) for px in images[start : start + BATCH_SIZE]])
        with torch.inference_mode():
            p = torch.softmax(loaded.model(x).float(), dim=1)
        top = p.max(dim=1).values
        entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
        out.append(torch.stack([top, entropy], dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 2))


def _reference_stats(
    loaded: zoo.LoadedModel, reference: list[Path], control: Control | None
) -> tuple[float, float]:
    key = (loaded.info.name, str(loaded.weights), tuple(str(p) for p in reference))
    with _REFERENCE_LOCK:
        cached = _REFERENCE_CACHE.get(key)
    if cached is not None:
        return cached
    images = []
    for path in reference:
        checkpoint(control)
        images += _views(open_image(path, gray=loaded.preprocess.grayscale).pixels)
    stats = _head_stats(loaded, images, control)
    result = (float(stats[:, 0].mean()), float(stats[:, 1].mean()))
    with _REFERENCE_LOCK:
        _REFERENCE_CACHE[key] = result
    return result


def _pretrained(
    model_name: str, allow_download: bool, control: Control | None
) -> tuple[zoo.LoadedModel, str]:
    """A model with genuine ImageNet weights, and a note when it is not the one asked for."""
    loaded = zoo.build_model(model_name, pretrained=True, allow_download=allow_download, control=control)
    if loaded.trained and len(loaded.categories) == 1000:
        return loaded, ""
    fallback = zoo.DEFAULT_MODEL
    asked = loaded.info.title
    if model_name != fallback:
        loaded = zoo.build_model(fallback, pretrained=True, allow_download=allow_download, control=control)
    if not loaded.trained or len(loaded.categories) != 1000:
        raise SimilarityError(
            f"Cannot estimate the similarity to ImageNet: {loaded.info.title} has no ImageNet weights "
            f"here ({loaded.weights_detail}), and the estimate needs a pretrained ImageNet classifier."
        )
    return loaded, f"{asked} has no ImageNet weights here, so {loaded.info.title} judged instead. "


def _dataset_paths(samples: DatasetScan | Sequence[str | Path]) -> list[str]:
    if isinstance(samples, DatasetScan):
        paths = [p for p, _ in samples.train] + [p for p, _ in samples.val]
    else:
        paths = [str(p) for p in samples]
    return sorted(set(paths))  # independent of the order (and the split) the images came in


def estimate_similarity(
    samples: DatasetScan | Sequence[str | Path],
    *,
    model_name: str = zoo.DEFAULT_MODEL,
    max_images: int = 64,
    seed: int = 0,
    allow_download: bool = True,
    control: Control | None = None,
    reference: Sequence[str | Path] | None = None,
) -> SimilarityEstimate:
    """Whether ``samples`` (a scanned dataset or image paths) look like ImageNet's photos.

    At most ``max_images`` images, drawn with ``seed`` (the same images every time), are read; unreadable
    ones are skipped and replaced by the next of the draw. ``reference`` defaults to the bundled photos.
    A ``model_name`` without ImageNet weights here is replaced by EfficientNet-Lite0 (the reason says so).
    Raises :class:`SimilarityError` when no image can be read or no pretrained model is available, and
    ``zoo.ModelLoadError`` for an unknown model.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be at least 1, not {max_images}")
    paths = _dataset_paths(samples)
    if not paths:
        raise SimilarityError("Cannot estimate the similarity to ImageNet: the dataset has no images.")
    loaded, note = _pretrained(model_name, allow_download, control)
    ref_paths = [Path(p) for p in (reference if reference is not None else sample_images())]
    if not ref_paths:
        raise SimilarityError("Cannot estimate the similarity to ImageNet: the reference photos are missing.")

    order = np.random.default_rng(seed).permutation(len(paths))
    images: list[np.ndarray] = []
    skipped = 0
    for i in order:
        if len(images) >= max_images:
            break
        checkpoint(control)
        try:
            images.append(open_image(paths[i], gray=loaded.preprocess.grayscale).pixels)
        except ImageLoadError:
            skipped += 1
    if not images:
        raise SimilarityError(
            f"Cannot estimate the similarity to ImageNet: none of the {skipped} images could be read."
        )
    stats = _head_stats(loaded, images, control)
    confidence, entropy = float(stats[:, 0].mean()), float(stats[:, 1].mean())
    ref_confidence, ref_entropy = _reference_stats(loaded, ref_paths, control)
    score = confidence / ref_confidence
    similar = score >= SIMILAR_SCORE

    n = len(images)
    bad = f" ({skipped} unreadable skipped)" if skipped else ""
    verdict = "similar to ImageNet's photos" if similar else "different from ImageNet's photos"
    ref_name = "the bundled photos" if reference is None else "the reference photos"
    reason = (
        f"{note}On {n} image{'' if n == 1 else 's'}{bad} the ImageNet classifier ({loaded.info.title}) "
        f"gives its top class {confidence:.0%} on average (entropy {entropy:.1f} nats), against "
        f"{ref_confidence:.0%} ({ref_entropy:.1f} nats) on {ref_name}. Score {score:.2f} "
        f"({'at or above' if similar else 'below'} {SIMILAR_SCORE}): the images look {verdict}."
    )
    return SimilarityEstimate(
        similar=similar,
        score=score,
        dataset_confidence=confidence,
        dataset_entropy=entropy,
        reference_confidence=ref_confidence,
        reference_entropy=ref_entropy,
        n_images=n,
        model=loaded.info.name,
        reason=reason,
    )
