"""Probe every block: one pass of pooled features, a linear probe per layer, the CSV and the chart."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_explorer.core import zoo
from cnn_explorer.core.charts import line_chart_png, nice_ticks
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import DatasetError, DatasetScan, ImageSamples, scan_dataset
from cnn_explorer.core.images import open_image
from cnn_explorer.core.training_setup import run_preprocess
from cnn_explorer.core.transfer import probe
from cnn_explorer.core.transfer.layers import probe_layers, run_until
from cnn_explorer.core.transfer.probe import (
    ProbeError,
    ProbeProgress,
    pooled_block_features,
    probe_every_block,
    train_linear_probe,
    write_probe_csv,
    write_probe_png,
)
from cnn_explorer.core.transfer.results import ProbeReport, ProbeRow

MODEL = "efficientnet_lite0"
SIZE = 48  # the silhouettes are 28×28: a small crop keeps the tests fast and the shapes intact
CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def shapes_scan(tmp_path_factory) -> DatasetScan:
    from cnn_explorer.core.data import write_animal_dataset

    root = write_animal_dataset(tmp_path_factory.mktemp("probe") / "shapes", per_class=20, classes=CLASSES)
    return scan_dataset(root)


@pytest.fixture(scope="module")
def lite0() -> zoo.LoadedModel:
    return zoo.build_model(MODEL, allow_download=False)


def _samples(loaded: zoo.LoadedModel, items) -> ImageSamples:
    return ImageSamples(items, run_preprocess(loaded.preprocess, SIZE))


# -- the one pass ----------------------------------------------------------------------------------------


def test_features_come_from_one_pass_per_batch_and_the_head_never_runs(lite0, shapes_scan):
    model = lite0.model
    layers = probe_layers(model)
    samples = _samples(lite0, shapes_scan.train[:20])
    calls = {"model": 0, "head": 0}
    hooks = [
        model.register_forward_pre_hook(lambda *_: calls.__setitem__("model", calls["model"] + 1)),
        zoo.classifier_head(model).register_forward_hook(
            lambda *_: calls.__setitem__("head", calls["head"] + 1)
        ),
    ]
    try:
        feats, readable = pooled_block_features(model, layers, samples, batch_size=8)
    finally:
        for h in hooks:
            h.remove()
    assert calls == {"model": 3, "head": 0}  # 20 images in batches of 8: three forward calls, no head
    assert readable.all() and readable.dtype == bool
    assert list(feats) == [name for name, _ in layers] and len(feats) == 18
    for (_, module), f in zip(layers, feats.values(), strict=True):
        assert f.dtype == np.float16 and f.shape == (20, probe._out_channels(module))
    assert all(not m._forward_hooks for _, m in layers)  # the probe's hooks are gone
    assert not model.training


def test_pooled_features_equal_the_layers_own_output(lite0, shapes_scan):
    items = shapes_scan.train[:6]
    feats, _ = pooled_block_features(
        lite0.model, probe_layers(lite0.model), _samples(lite0, items), batch_size=4
    )
    pre = run_preprocess(lite0.preprocess, SIZE)
    x = torch.stack([pre(open_image(p).pixels) for p, _ in items])
    with torch.no_grad():
        for name, module in probe_layers(lite0.model)[::4]:
            want = run_until(lite0.model, module, x).mean((-2, -1)).numpy()
            got = feats[name].astype(np.float32)
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * float(np.abs(want).max()))


def test_unreadable_images_are_skipped_and_counted(lite0, shapes_scan, tmp_path, make_truncated_jpeg):
    bad = make_truncated_jpeg(tmp_path / "broken.jpg")  # passes a quick scan, fails to decode
    items = [*shapes_scan.train[:3], (str(bad), 0), shapes_scan.train[3]]
    feats, readable = pooled_block_features(lite0.model, probe_layers(lite0.model), _samples(lite0, items))
    assert readable.tolist() == [True, True, True, False, True]
    assert all(not f[3].any() and f[4].any() for f in feats.values())

    scan = DatasetScan(
        root=shapes_scan.root,
        layout="class-folders",
        class_names=shapes_scan.class_names,
        train=[*shapes_scan.train[:12], (str(bad), 1)],
        val=[(str(bad), 2), *shapes_scan.val[:6]],
    )
    report = probe_every_block(scan, MODEL, image_size=SIZE, allow_download=False)
    assert (report.skipped, report.n_train, report.n_val) == (2, 12, 6)


# -- the probes ------------------------------------------------------------------------------------------


def test_probe_every_block_on_the_silhouettes(shapes_scan):
    events: list[ProbeProgress] = []
    report = probe_every_block(
        shapes_scan, MODEL, image_size=SIZE, allow_download=False, control=Control(report=events.append)
    )
    assert isinstance(report, ProbeReport) and report.model == MODEL and report.image_size == SIZE
    assert [r.depth for r in report.rows] == list(range(1, 19))
    assert report.rows[0].layer == "_conv_stem" and report.rows[-1].layer == "_conv_head"
    assert report.rows[-1].channels == 1280
    assert (report.n_train, report.n_val) == (len(shapes_scan.train), len(shapes_scan.val))
    assert report.feature_bytes == 2 * (report.n_train + report.n_val) * sum(r.channels for r in report.rows)
    chance = 1 / len(CLASSES)
    top = report.rows[-4:]
    assert np.mean([r.val_accuracy for r in top]) > chance + 0.35  # the top knows these shapes
    assert report.best is not None and report.best.val_accuracy >= 0.8
    assert all(0 <= r.train_accuracy <= 1 for r in report.rows)
    # progress: the feature pass to its total, then one event per probe
    phases = [e.phase for e in events]
    assert (
        phases.index("probes") > phases.index("features")
        and "features" not in phases[phases.index("probes") :]
    )
    assert events[phases.index("probes") - 1] == ProbeProgress("features", 60, 60)
    assert events[-1] == ProbeProgress("probes", 18, 18)


def test_linear_probe_is_deterministic_scale_free_and_accurate():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    centres = rng.normal(size=(4, 30)) * 3
    x = (centres[y] + rng.normal(size=(200, 30))).astype(np.float16)
    vy = rng.integers(0, 4, 80)
    vx = (centres[vy] + rng.normal(size=(80, 30))).astype(np.float16)
    first = train_linear_probe(x, y, vx, vy, 4)
    assert first == train_linear_probe(x, y, vx, vy, 4)
    assert first[0] > 0.97 and first[1] > 0.95
    scaled = train_linear_probe(x.astype(np.float32) * 1000 + 7, y, vx.astype(np.float32) * 1000 + 7, vy, 4)
    assert scaled == pytest.approx(first, abs=0.02)  # standardised: the units of a layer do not matter
    train_acc, val_acc = train_linear_probe(x, y, np.zeros((0, 30)), np.zeros(0), 4)
    assert train_acc == first[0] and math.isnan(val_acc)
    with pytest.raises(ProbeError, match="labels"):
        train_linear_probe(x, y + 4, vx, vy, 4)


# -- stopping and refusing -------------------------------------------------------------------------------


def test_cancel_stops_the_feature_pass_and_the_probes(shapes_scan, monkeypatch):
    calls = {"probes": 0}
    real = probe.train_linear_probe

    def counted(*a, **k):
        calls["probes"] += 1
        return real(*a, **k)

    monkeypatch.setattr(probe, "train_linear_probe", counted)
    for phase, at in (("features", 32), ("probes", 2)):
        seen: list[ProbeProgress] = []
        box: dict[str, Control] = {}

        def on_event(event, seen=seen, box=box, phase=phase, at=at):
            seen.append(event)
            if event.phase == phase and event.done >= at:
                box["control"].cancel()

        control = box["control"] = Control(report=on_event)
        calls["probes"] = 0
        with pytest.raises(Cancelled):
            probe_every_block(
                shapes_scan, MODEL, image_size=SIZE, batch_size=16, allow_download=False, control=control
            )
        if phase == "features":
            assert seen[-1] == ProbeProgress("features", 32, 60) and calls["probes"] == 0
        else:
            assert calls["probes"] == 2


def test_bad_input_is_refused_with_a_clear_message(shapes_scan, tmp_path, monkeypatch):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    unreadable = DatasetScan(tmp_path, "class-folders", ["a", "b"], [(str(bad), 0), (str(bad), 1)], [])
    with pytest.raises(DatasetError, match=r"None of the 2 training images .* could be read"):
        probe_every_block(unreadable, MODEL, image_size=SIZE, allow_download=False)
    empty = DatasetScan(tmp_path, "class-folders", ["a", "b"], [], [])
    with pytest.raises(DatasetError, match="no training images"):
        probe_every_block(empty, MODEL, allow_download=False)
    with pytest.raises(zoo.ModelLoadError, match="Unknown model 'no_such_net'"):
        probe_every_block(shapes_scan, "no_such_net", allow_download=False)
    with pytest.raises(ProbeError, match="image size must be at least 16"):
        probe_every_block(shapes_scan, MODEL, image_size=8, allow_download=False)
    monkeypatch.setattr(probe, "probe_layers", lambda model: [])
    with pytest.raises(ProbeError, match="no convolutional block"):
        probe_every_block(shapes_scan, MODEL, image_size=SIZE, allow_download=False)


# -- files -----------------------------------------------------------------------------------------------


def _report(val: list[float]) -> ProbeReport:
    rows = [ProbeRow(f"_blocks.{i}", i + 1, 16 * (i + 1), 1.0, v) for i, v in enumerate(val)]
    return ProbeReport(MODEL, rows, ["a", "b", "c"], 30, 9, 64, 1.0, 0.1, 1234, 0)


def test_csv_and_chart_are_written(tmp_path: Path):
    report = _report([0.4, 0.7, 0.9, 0.9, float("nan"), 0.8])
    csv_path = write_probe_csv(report, tmp_path / "probes.csv")
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("layer,depth,val_accuracy")
    rows = list(csv.DictReader(lines))
    assert [r["layer"] for r in rows] == [r.layer for r in report.rows]
    assert float(rows[2]["val_accuracy"]) == pytest.approx(0.9) and rows[4]["val_accuracy"] == "nan"
    assert report.best.layer == "_blocks.2"  # the earliest of equals: more generic

    png = write_probe_png(report, tmp_path / "probes.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (800, 500)
        pixels = np.asarray(im.convert("RGB"))
    assert _has_colour(pixels, "#D62728")  # the best layer is marked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probes.csv", "probes.png"]  # no temp files left


def _has_colour(pixels: np.ndarray, hex_colour: str, region: tuple[slice, slice] | None = None) -> bool:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    area = pixels[region] if region else pixels
    return bool((np.abs(area.astype(int) - rgb).sum(-1) < 30).any())


def test_line_chart_draws_a_legend_for_several_series_and_the_marker(tmp_path: Path):
    lrs = np.logspace(-6, 0, 60)
    loss = 2 - np.tanh(np.log10(lrs) + 4)
    one = line_chart_png(
        tmp_path / "one.png", [(lrs, loss, "loss")], title="LR finder", x_label="learning rate",
        y_label="loss", log_x=True,
    )  # fmt: skip
    two = line_chart_png(
        tmp_path / "two.png", [(lrs, loss, "loss"), (lrs, loss + 0.3, "raw")], title="LR finder",
        x_label="learning rate", y_label="loss", log_x=True, marker=(1e-3, 1.0, "suggested 1e-3"),
        size=(640, 400),
    )  # fmt: skip
    a, b = np.asarray(Image.open(one).convert("RGB")), np.asarray(Image.open(two).convert("RGB"))
    assert b.shape == (400, 640, 3)
    legend_band = (slice(40, 52), slice(None))  # below the title, above the plot
    assert not _has_colour(a, "#0072B2", legend_band) and _has_colour(b, "#0072B2", legend_band)
    assert _has_colour(b, "#D62728") and not _has_colour(a, "#D62728")
    with pytest.raises(ValueError, match="nothing to plot"):
        line_chart_png(tmp_path / "x.png", [([1, 2], [math.nan, math.inf], "none")], title="t", x_label="x",
                       y_label="y")  # fmt: skip
    with pytest.raises(ValueError, match="2 x values but 3 y values"):
        line_chart_png(tmp_path / "x.png", [([1, 2], [1, 2, 3], "bad")], title="t", x_label="x", y_label="y")
    assert not (tmp_path / "x.png").exists()


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0.03, 0.97) == [0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
