"""The course's transfer-learning guide (seed 000 §2.4), case by case, in the notes' words."""

from __future__ import annotations

import pytest

from cnn_explorer.core import zoo
from cnn_explorer.core.transfer.guide import (
    GUIDE_GRID,
    SMALL_DATASET_IMAGES,
    recommend_for_model,
    recommend_strategy,
)
from cnn_explorer.core.transfer.layers import default_cut_layer, probe_layer_names
from cnn_explorer.core.transfer.results import GuideCase


def test_case_1_small_and_similar_trains_a_linear_classifier_on_the_features():
    rec = recommend_strategy(312, True)
    assert rec.case is GuideCase.SMALL_SIMILAR and rec.strategy == "feature-extractor"
    assert rec.reason.startswith("312 images is a small dataset")
    assert "linear classifier on the CNN's features" in rec.reason and "overfit" in rec.reason
    assert rec.cut_layer is None and rec.alternative is None and rec.n_images == 312


def test_case_2_large_and_similar_fine_tunes_the_whole_network():
    rec = recommend_strategy(20_000, True)
    assert rec.case is GuideCase.LARGE_SIMILAR and rec.strategy == "fine-tune-all"
    assert rec.reason.startswith("20,000 images is a large dataset")
    assert "whole network" in rec.reason and rec.alternative is None


def test_case_3_small_and_different_probes_an_earlier_more_generic_layer():
    rec = recommend_strategy(312, False, cut_layer="_blocks.7")
    assert rec.case is GuideCase.SMALL_DIFFERENT and rec.strategy == "linear-probe"
    assert "linear classifier" in rec.reason and "earlier layer (_blocks.7)" in rec.reason
    assert "more generic" in rec.reason and rec.cut_layer == "_blocks.7"
    assert recommend_strategy(312, False).cut_layer is None  # no model given: no layer named


def test_case_4_large_and_different_fine_tunes_all_with_scratch_as_the_alternative():
    rec = recommend_strategy(50_000, False)
    assert rec.case is GuideCase.LARGE_DIFFERENT and rec.strategy == "fine-tune-all"
    assert rec.alternative == "scratch"
    assert "from scratch is possible" in rec.reason and "in practice" in rec.reason
    assert "pretrained weights" in rec.reason


def test_the_size_boundary():
    assert recommend_strategy(SMALL_DATASET_IMAGES - 1, True).case is GuideCase.SMALL_SIMILAR
    assert recommend_strategy(SMALL_DATASET_IMAGES, True).case is GuideCase.LARGE_SIMILAR
    assert recommend_strategy(SMALL_DATASET_IMAGES, False).case is GuideCase.LARGE_DIFFERENT
    assert recommend_strategy(1, False).reason.startswith("1 image is a small dataset")
    with pytest.raises(ValueError):
        recommend_strategy(-1, True)


def test_the_grid_has_one_cell_per_case_with_the_cases_strategy():
    assert set(GUIDE_GRID) == set(GuideCase)
    for case, cell in GUIDE_GRID.items():
        size = "Small" if case.small else "Large"
        assert cell.title == f"{size} · {'similar' if case.similar else 'different'}"
        n = 100 if case.small else 100_000
        assert recommend_strategy(n, case.similar).strategy == cell.strategy
    assert "earlier layer" in GUIDE_GRID[GuideCase.SMALL_DIFFERENT].text


def test_recommend_for_model_fills_in_the_cut_layer_of_case_3():
    rec = recommend_for_model(312, False, zoo.DEFAULT_MODEL)
    model = zoo.build_model(zoo.DEFAULT_MODEL, pretrained=False).model
    assert rec.cut_layer == default_cut_layer(model)
    names = probe_layer_names(model)
    assert 0 < names.index(rec.cut_layer) < len(names) - 1  # earlier than the top, later than the stem
    assert rec.cut_layer in rec.reason
    assert recommend_for_model(312, True, zoo.DEFAULT_MODEL).cut_layer is None
    with pytest.raises(zoo.ModelLoadError, match="Unknown model"):
        recommend_for_model(20_000, True, "no-such-net")
