"""Compare mode, driven through the page: a pretrained model (A) beside its fine-tuned run (B)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.images import open_image
from cnn_explorer.core.training import TrainConfig, fit, run_to_end
from cnn_explorer.qt.pages.network import NetworkPage

IDLE_MS = 90_000
ASSETS = Path(__file__).resolve().parents[2] / "assets"
CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch feature-extractor run of the offline EfficientNet-Lite0 (its backbone frozen)."""
    root = tmp_path_factory.mktemp("compare-gui")
    data = write_animal_dataset(root / "animals", per_class=8, classes=CLASSES)
    config = TrainConfig(
        data=str(data),
        model="efficientnet_lite0",
        strategy="feature-extractor",
        epochs=1,
        batch_size=8,
        allow_download=False,
    )
    run = root / "runs" / "animals_feature-extractor"
    run_to_end(fit(config, run))
    return run


def idle(qtbot, page: NetworkPage) -> None:
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


@pytest.fixture
def compared(open_page, qtbot, feature_run):
    """The page after "Open in explorer" on the run: A = its pretrained start, B = the run."""
    page = open_page(NetworkPage(), IDLE_MS)
    page.set_image(open_image(ASSETS / "chelsea.png"))
    idle(qtbot, page)
    page.open_model_file(feature_run / "best.pt")
    idle(qtbot, page)
    return page


def test_a_run_opens_beside_its_pretrained_model(compared):
    page, s = compared, compared.session
    assert s.comparing and page.bar_b.isVisible() and page.centre_b.isVisible()
    assert s.a.source.key == "zoo:efficientnet_lite0" and s.b.loaded.categories == CLASSES
    assert page.bar_b.model_combo.currentText().startswith("Fine-tuned: animals_feature-extractor")
    assert s.pairing.by_name and "by name" in page.layer_panel.pairing_label.text()
    # Both top-5 lists, each with its own class names.
    assert {name for name, _ in page.compare_panel.b_predictions.rows()} == set(CLASSES)
    assert len(page.predictions.rows()) == 5 and not set(n for n, _ in page.predictions.rows()) & set(CLASSES)


def test_the_side_panel_gives_each_box_its_room(compared, qtbot):
    """In compare mode the side panel holds the weight chart, the difference and B's top-5: no box gets
    less than its own minimum, so the chart's caption sits under its axis instead of over it."""
    page = compared
    page.set_layer_by_name("_blocks.8._swish")
    idle(qtbot, page)
    chart = page.weight_chart
    # As a run that changed half its layers says it (the screenshot's run): more lines than the caption's
    # minimum keeps room for.
    chart.caption.setText(
        "50 of 99 layers changed, 48 exactly unchanged (frozen). most: _blocks.15._depthwise_conv "
        "(0.000709). _fc: new head: 1000→5 outputs. The rest of the backbone did not move at all."
    )
    qtbot.wait(50)
    box = chart.parentWidget()
    assert box.height() >= box.minimumSizeHint().height()
    assert chart.caption.y() >= chart.plot_widget.geometry().bottom()


def test_frozen_layers_show_exactly_zero_change(compared):
    changes = compared.weight_chart.changes
    assert len(changes) > 50
    head = [c for c in changes if not math.isfinite(c.relative_change)]
    assert [c.layer for c in head] == ["_fc"] and "1000→3" in head[0].note
    assert all(c.relative_change == 0.0 for c in changes if c.layer != "_fc")
    assert np.all(compared.weight_chart.heights == 0.0)
    assert "exactly unchanged" in compared.weight_chart.caption.text()


def test_one_cursor_steps_both_sides_and_picks_the_same_channel(compared, qtbot):
    page, s = compared, compared.session
    page.set_layer_by_name("_blocks.3._swish")
    idle(qtbot, page)
    qtbot.keyClick(page, Qt.Key.Key_Down)
    idle(qtbot, page)
    name = s.cursor.layer
    assert name == "_blocks.3._depthwise_conv" and s.current_row(Side.B).name == name
    assert page.grid.layer_view.name == name and page.centre_b.grid.layer_view.name == name
    page.select_channel(5)
    assert page.grid.selected == 5 and page.centre_b.grid.selected == 5
    # The backbone is frozen: B computes exactly what A computes, so the difference is zero everywhere.
    diff = page.compare_panel.difference.data
    assert diff is not None and diff.shape == (28, 28) and np.all(diff == 0)
    assert "exactly what A computes" in page.compare_panel.difference.caption_label.text()


def test_a_step_draws_each_side_once_and_the_difference_once_both_are_in(compared, qtbot, monkeypatch):
    """While one side's view is still on its way the difference keeps what it shows (it used to flash
    "pick a channel"), and a side's arrival redraws only its own maps."""
    page = compared
    page.set_layer_by_name("_blocks.3._swish")
    idle(qtbot, page)
    calls: list[str] = []
    diff = page.compare_panel.difference
    monkeypatch.setattr(diff, "clear_map", lambda message="": calls.append(f"clear: {message}"))
    monkeypatch.setattr(diff, "set_map", lambda data, **kw: calls.append(f"map {data.shape}"))
    for side, centre in (("A", page.centre_a), ("B", page.centre_b)):
        original = centre.show_channel

        def counted(*args, side=side, original=original, **kwargs):
            calls.append(f"channel {side}")
            return original(*args, **kwargs)

        monkeypatch.setattr(centre, "show_channel", counted)
    page.set_layer_by_name("_blocks.3._bn1")  # prepared in a worker on each side
    idle(qtbot, page)
    assert sorted(calls) == ["channel A", "channel B", "map (28, 28)"]


def test_switching_one_side_keeps_the_layer_and_channel(compared, qtbot):
    page, s = compared, compared.session
    page.set_layer_by_name("_blocks.5")
    idle(qtbot, page)
    page.select_channel(9)
    combo = page.bar_b.model_combo
    combo.setCurrentIndex(combo.findData("zoo:efficientnet_lite0"))  # B: the pretrained model too
    idle(qtbot, page)
    assert s.b.loaded.categories != CLASSES and s.cursor.layer == "_blocks.5" and s.cursor.channel == 9
    assert page.centre_b.grid.layer_view.name == "_blocks.5" and page.centre_b.grid.selected == 9
    assert all(c.relative_change == 0.0 for c in page.weight_chart.changes)  # the same weights
    # A switches to another architecture: it starts at its first layer; B follows by relative depth.
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:resnet18"))
    idle(qtbot, page)
    assert s.cursor.layer == "conv1" and not s.pairing.by_name
    assert "relative depth" in page.layer_panel.pairing_label.text()
    assert "Different architectures" in page.weight_chart.caption.text()
    assert not page.weight_chart.plot_widget.isVisible()
    assert "Different architectures" in page.compare_panel.difference.message_label.text()


def test_both_grad_cams_and_closing_compare(compared, qtbot):
    page, s = compared, compared.session
    page.cam_check.setChecked(True)
    idle(qtbot, page)
    a_cam, b_cam = page.cam_for(Side.A), page.cam_for(Side.B)
    assert a_cam is not None and b_cam is not None
    assert b_cam.class_index == s.b.exploration.predictions[0].index  # B's own top class
    assert page.centre_b.input_view.data.shape == (224, 224, 3)
    page.bar_b.compare_button.click()  # "Close B"
    assert not s.comparing and not page.centre_b.isVisible() and not page.bar_b.isVisible()
    page.next_layer()
    idle(qtbot, page)


def test_open_in_explorer_with_a_validation_image_shows_it_on_both_sides(open_page, qtbot, feature_run):
    """What the Fine-tune page's "Open in explorer" asks for: the run and one of its images."""
    page = open_page(NetworkPage(), IDLE_MS)
    page.set_image(open_image(ASSETS / "chelsea.png"))
    idle(qtbot, page)
    page.open_model_file(feature_run / "best.pt", image=ASSETS / "coffee.jpg")
    idle(qtbot, page)
    s = page.session
    assert s.comparing and s.image.path.name == "coffee.jpg"
    assert s.a.exploration is not None and s.b.exploration is not None
    assert page.centre_a.input_view.data.shape == page.centre_b.input_view.data.shape == (224, 224, 3)
    coffee = open_image(ASSETS / "coffee.jpg").pixels
    for state in (s.a, s.b):
        np.testing.assert_array_equal(state.exploration.pixels, state.loaded.preprocess.crop_pixels(coffee))
