"""Digit images as LeNet-5 reads them: one function, shared by the training script, the app and the CLI.

The bundled LeNet-5 was trained on the UCI optical digits (8×8, light strokes on a dark ground). A user's
digit can be any size, drawn dark on light (pen on paper) or light on dark (a screen). :func:`digit_to_input`
brings both to the training data's form: light strokes on black, the digit's bounding box scaled to
``DIGIT_BOX`` pixels on its longer side (aspect ratio kept), its centre of mass at the centre of a
``INPUT_SIZE``×``INPUT_SIZE`` plane, MNIST-style.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from cnn_explorer.core.images import to_gray

__all__ = [
    "DIGIT_BOX",
    "INPUT_SIZE",
    "SPLIT_SEED",
    "TEST_FRACTION",
    "digit_to_input",
    "held_out_digits",
    "is_dark_on_light",
    "stratified_split",
    "write_digit_folder",
]

SPLIT_SEED = 20240513  # the bundled LeNet-5's train / held-out split of the UCI digits
TEST_FRACTION = 0.2

INPUT_SIZE = 32  # LeNet-5's input side
DIGIT_BOX = 20  # longer side of the digit's bounding box on that plane (MNIST's 20 in 28, a margin for C1)
_INK = 0.3  # a pixel is ink when at least this bright (0..1, after the ground is removed)
_NOISE = 0.1  # fainter than this is paper texture or JPEG noise: set to the ground


def _gray01(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 4:  # RGBA: ignore alpha (drawings come with opaque grounds)
        arr = arr[:, :, :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = to_gray(arr.astype(np.uint8)) if arr.dtype == np.uint8 else arr.astype(np.float64).mean(axis=2)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
    g = arr.astype(np.float32)
    lo, hi = float(g.min()), float(g.max())
    return (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)


def _border(g: np.ndarray) -> np.ndarray:
    return np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])


def is_dark_on_light(pixels: np.ndarray) -> bool:
    """Whether the ground (judged by the image's border) is lighter than the middle of the grey range."""
    return bool(np.median(_border(_gray01(pixels))) > 0.5)


def digit_to_input(pixels: np.ndarray) -> np.ndarray:
    """Any-size digit image (uint8 or float, HxW or HxWx3, either polarity) -> float32 32×32 in 0..1,
    light strokes on black, centred by bounding box and centre of mass. A blank image gives all zeros."""
    g = _gray01(pixels)
    ground = float(np.median(_border(g)))
    if ground > 0.5:  # dark on light: make the strokes the bright part, as in the training data
        g, ground = 1.0 - g, 1.0 - ground
    peak = float(g.max())
    if peak - ground <= 1e-6:
        return np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32)
    ink = np.clip((g - ground) / (peak - ground), 0.0, 1.0)
    ink[ink < _NOISE] = 0.0
    rows, cols = np.nonzero(ink >= _INK)
    box = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = box.shape
    scale = DIGIT_BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(box, dtype=np.float32))[None, None]
    # antialias only matters when shrinking; bilinear either way, so an 8×8 digit upscales smoothly
    small = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h or nw < w)
    small = small[0, 0].clamp_(0.0, 1.0).numpy()
    mass = float(small.sum())
    if mass > 0:
        ys, xs = np.indices(small.shape)
        cy, cx = float((ys * small).sum()) / mass, float((xs * small).sum()) / mass
    else:
        cy, cx = (nh - 1) / 2, (nw - 1) / 2
    centre = (INPUT_SIZE - 1) / 2
    top = int(np.clip(round(centre - cy), 0, INPUT_SIZE - nh))
    left = int(np.clip(round(centre - cx), 0, INPUT_SIZE - nw))
    out = np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32)
    out[top : top + nh, left : left + nw] = small
    return out


def stratified_split(
    labels: np.ndarray, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): ``test_fraction`` of every class held out, chosen by ``seed``. The
    split scripts/train_lenet5.py trains the bundled LeNet-5 with."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits the bundled LeNet-5 never saw in training: (images uint8 N×8×8 in 0..16, labels)."""
    from cnn_explorer.core.images import assets_dir

    with np.load(assets_dir() / "uci_digits.npz") as data:
        images, labels = data["images"], data["labels"]
    _, test = stratified_split(labels)
    return images[test], labels[test]


def write_digit_folder(root: Path, *, per_class: int = 20) -> Path:
    """``root/<digit>/<n>.png``: up to ``per_class`` held-out UCI digits per class as 32×32 grey images
    (light strokes on dark, as the data comes), a labelled folder for LeNet-5. Returns ``root``."""
    from PIL import Image

    images, labels = held_out_digits()
    root = Path(root)
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for n, i in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            pixels = (images[i].astype(np.float32) * (255 / 16)).round().astype(np.uint8)
            Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST).save(folder / f"{n}.png")
    return root
