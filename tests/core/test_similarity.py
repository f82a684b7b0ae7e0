"""The "similar to ImageNet?" estimate, on pictures it must tell apart (see the calibration notes in
core.transfer.similarity): silhouettes are different, photos held out of the reference are similar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import scan_dataset
from cnn_explorer.core.images import open_image, sample_images
from cnn_explorer.core.transfer import similarity
from cnn_explorer.core.transfer.similarity import SimilarityError, estimate_similarity


def _photo(stem: str) -> Path:
    return next(p for p in sample_images() if p.stem == stem)


def _crops(photo: Path, folder: Path, n: int = 6) -> list[Path]:
    """``n`` fixed crops (half to all of the area, some mirrored) of a photo, saved as JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    px = open_image(photo).pixels
    h, w = px.shape[:2]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        side = np.sqrt(rng.uniform(0.5, 1.0))
        ch, cw = int(h * side), int(w * side)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = px[top : top + ch, left : left + cw]
        if i % 2:
            crop = crop[:, ::-1]
        paths.append(folder / f"{photo.stem}_{i}.jpg")
        Image.fromarray(np.ascontiguousarray(crop)).save(paths[-1], quality=90)
    return paths


def test_silhouettes_are_different(tiny_folder: Path):
    est = estimate_similarity(scan_dataset(tiny_folder), max_images=16, allow_download=False)
    assert not est.similar and est.score < similarity.SIMILAR_SCORE
    assert est.n_images == 16 and est.model == zoo.DEFAULT_MODEL
    assert est.dataset_confidence < est.reference_confidence and est.dataset_entropy > est.reference_entropy
    assert "different" in est.reason and f"{est.score:.2f}" in est.reason


def test_photos_held_out_of_the_reference_are_similar(tmp_path: Path):
    dataset = _crops(_photo("chelsea"), tmp_path / "cat") + _crops(_photo("rocket"), tmp_path / "rocket")
    reference = [_photo("coffee"), _photo("astronaut")]  # neither the cat nor the rocket
    est = estimate_similarity(dataset, reference=reference, allow_download=False)
    assert est.similar and est.score >= similarity.SIMILAR_SCORE and est.n_images == 12
    assert "similar" in est.reason and "reference photos" in est.reason


def test_unreadable_files_are_skipped_and_counted(tiny_folder: Path, tmp_path: Path):
    good = sorted(str(p) for p in tiny_folder.rglob("*.png"))[:4]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a picture")
    est = estimate_similarity([*good, bad, tmp_path / "missing.jpg"], allow_download=False)
    assert est.n_images == 4 and "(2 unreadable skipped)" in est.reason
    with pytest.raises(SimilarityError, match="none of the 2 images could be read"):
        estimate_similarity([bad, tmp_path / "missing.jpg"], allow_download=False)


def test_the_same_images_give_the_same_estimate(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    first = estimate_similarity(scan, max_images=6, seed=3, allow_download=False)
    again = estimate_similarity(list(reversed([p for p, _ in scan.train + scan.val])), max_images=6, seed=3,
                                allow_download=False)  # fmt: skip
    assert first == again


def test_a_model_without_imagenet_weights_is_replaced_by_lite0(tiny_folder: Path):
    paths = sorted(tiny_folder.rglob("*.png"))[:4]
    est = estimate_similarity(paths, model_name="lenet5", allow_download=False)
    assert est.model == zoo.DEFAULT_MODEL
    assert est.reason.startswith("LeNet") and "no ImageNet weights" in est.reason


def test_no_pretrained_model_at_all_is_a_clear_error(tiny_folder: Path, monkeypatch):
    build = zoo.build_model
    monkeypatch.setattr(zoo, "build_model", lambda name, **kw: build(name, pretrained=False))
    with pytest.raises(SimilarityError, match="no ImageNet weights"):
        estimate_similarity(sorted(tiny_folder.rglob("*.png"))[:2], allow_download=False)


def test_cancel_stops_it(tiny_folder: Path):
    control = Control()
    control.cancel()
    with pytest.raises(Cancelled):
        estimate_similarity(sorted(tiny_folder.rglob("*.png")), allow_download=False, control=control)
