"""The fine-tune page's Qt-free session: what the guide recommends as the dataset, the estimate, the
user's override, the probe and the chosen cut layer change, and which events say so."""

from __future__ import annotations

import math

import pytest

from cnn_explorer.core.data import scan_dataset
from cnn_explorer.core.transfer.results import GuideCase, ProbeReport, ProbeRow, SimilarityEstimate
from cnn_explorer.core.transfer.session import FineTuneSession


def estimate(similar: bool) -> SimilarityEstimate:
    return SimilarityEstimate(
        similar, 1.0 if similar else 0.3, 0.5, 2.0, 0.5, 2.5, 40, "efficientnet_lite0", ""
    )


def report(best: str, model: str = "efficientnet_lite0") -> ProbeReport:
    rows = [
        ProbeRow(name, i, 16, 1.0, 0.9 if name == best else 0.5)
        for i, name in enumerate(["_blocks.2", "_blocks.9"], 1)
    ]
    return ProbeReport(model, rows, ["a", "b"], 20, 5, 64, 1.0, 0.1, 100)


def recorder(session: FineTuneSession) -> list[str]:
    seen: list[str] = []
    for name in vars(session.events):
        getattr(session.events, name).connect(lambda name=name: seen.append(name))
    return seen


def test_no_recommendation_until_size_and_similarity_are_known(tiny_folder):
    session = FineTuneSession()
    assert session.recommendation() is None
    session.set_scan(scan_dataset(tiny_folder))
    assert session.n_images == 24 and session.similar is None and session.recommendation() is None
    session.set_estimate(estimate(False))
    rec = session.recommendation()
    assert rec.case is GuideCase.SMALL_DIFFERENT and rec.strategy == "linear-probe"
    assert rec.cut_layer == "_blocks.7"  # halfway up Lite0's 18 probe points, before any probe


def test_override_wins_over_the_estimate_and_auto_returns_to_it(tiny_folder):
    session = FineTuneSession()
    session.set_scan(scan_dataset(tiny_folder))
    session.set_estimate(estimate(False))
    seen = recorder(session)
    session.set_override(True)
    assert session.recommendation().case is GuideCase.SMALL_SIMILAR
    assert seen == ["similarity", "recommendation"]
    session.set_override(None)
    assert session.recommendation().case is GuideCase.SMALL_DIFFERENT


def test_case_three_cut_layer_follows_the_probe_then_the_users_choice(tiny_folder):
    session = FineTuneSession()
    session.set_scan(scan_dataset(tiny_folder))
    session.set_estimate(estimate(False))
    session.set_probe(report(best="_blocks.2"))
    assert session.recommendation().cut_layer == "_blocks.2"
    session.choose_cut_layer("_blocks.9")
    assert session.recommendation().cut_layer == "_blocks.9"
    with pytest.raises(ValueError, match="no layer"):
        session.choose_cut_layer("layer3.1")
    session.set_model("resnet18")  # Lite0's layer names mean nothing to ResNet
    assert session.cut_layer is None
    assert session.recommendation().cut_layer == "layer2.1"  # the other model's probe is not used


def test_a_new_dataset_forgets_what_was_measured_on_the_old_one(tiny_folder, tmp_path):
    from cnn_explorer.core.data import write_animal_dataset

    other = write_animal_dataset(tmp_path / "other", per_class=8, classes=["cat", "horse"])
    session = FineTuneSession()
    session.set_scan(scan_dataset(tiny_folder))
    session.set_estimate(estimate(True))
    session.set_override(False)
    session.set_probe(report("_blocks.2"))
    seen = recorder(session)
    session.set_scan(scan_dataset(other))
    assert (session.estimate, session.override, session.probe, session.lr_result) == (None, None, None, None)
    assert {"dataset", "similarity", "probe", "lr", "recommendation"} <= set(seen)


def test_run_events_update_one_progress_and_notify_watch_frames_once(tiny_folder, tmp_path):
    from cnn_explorer.core.training import Notice, TrainConfig, fit, run_to_end

    image = sorted((tiny_folder / "bird").glob("*.png"))[0]
    config = TrainConfig(data=str(tiny_folder), epochs=2, batch_size=8, image_size=32, watch_image=str(image))
    events, _ = run_to_end(fit(config, tmp_path / "run"))
    session = FineTuneSession()
    session.begin_run()
    seen = recorder(session)
    session.add_run_events(events)
    assert seen == ["progress", "watch_frames"]
    p = session.progress
    assert [f.epoch for f in p.watch] == [1, 2] and len(p.epochs) == 2
    assert p.notices == [e.message for e in events if isinstance(e, Notice)]
    assert p.finished is not None and p.steps_done == p.total_steps
    assert math.isfinite(p.best[0]) and p.best[1] in (1, 2)


def test_the_same_folder_split_anew_keeps_the_similarity(tiny_folder):
    session = FineTuneSession()
    session.set_scan(scan_dataset(tiny_folder))
    session.set_estimate(estimate(False))
    session.set_override(True)
    session.set_probe(report("_blocks.2"))
    session.set_scan(scan_dataset(tiny_folder, seed=3))
    assert session.estimate is not None and session.override is True and session.probe is None
