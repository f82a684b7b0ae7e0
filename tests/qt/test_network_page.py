"""The network explorer page, driven through its widgets: models, layers, channels, Grad-CAM, files."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QFileDialog
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer
from cnn_explorer.core.features import apply_colormap
from cnn_explorer.core.images import open_image
from cnn_explorer.core.trust import CodeTrust, TrustDecision
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.network import NetworkPage, image_key
from cnn_explorer.qt.widgets.code_consent import CodeConsentDialog
from cnn_explorer.qt.widgets.layer_table_view import LayerTableView
from cnn_explorer.qt.widgets.map_view import MapView

IDLE_MS = 60_000
ASSETS = Path(__file__).resolve().parents[2] / "assets"
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}


@pytest.fixture(scope="module")
def cat():
    return open_image(ASSETS / "chelsea.png")


@pytest.fixture(scope="module")
def coffee():
    return open_image(ASSETS / "coffee.jpg")


@pytest.fixture
def page(open_page):
    return open_page(NetworkPage(), IDLE_MS)


def idle(qtbot, net: NetworkPage) -> None:
    """Wait until the page has nothing left to compute: models, Grad-CAM and the layer's view."""
    qtbot.waitUntil(lambda: not net.is_busy(), timeout=IDLE_MS)


def step_to(qtbot, net: NetworkPage, name: str) -> None:
    """Step to a layer and wait until its view (grid, statistics, channel) is on screen."""
    net.set_layer_by_name(name)
    idle(qtbot, net)
    assert net.view is not None and net.view.name == name


def choose_model(qtbot, net: NetworkPage, name: str) -> None:
    index = net.model_combo.findData(f"zoo:{name}")
    assert index >= 0, f"{name} not offered"
    net.model_combo.setCurrentIndex(index)
    idle(qtbot, net)
    assert net.loaded is not None and net.loaded.info.name == name


@pytest.fixture
def lenet(page, qtbot, cat):
    """The page showing (untrained) LeNet-5 on the cat."""
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:lenet5"))
    assert not page.is_busy()  # no picture yet: nothing to run
    page.set_image(cat)
    idle(qtbot, page)
    assert page.loaded.info.name == "lenet5"
    return page


def click_view(qtbot, view: MapView, row: int, col: int) -> None:
    scene = view.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(
        view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=view.graphics.mapFromScene(scene)
    )


def header(net: NetworkPage) -> str:
    return net.layer_header.text()


# --- the default model on the cat ----------------------------------------------------------------------


@pytest.mark.slow
def test_lite0_loads_first_finds_the_cat_and_shows_grad_cam(page, qtbot, cat):
    assert page.model_combo.currentData() == "zoo:efficientnet_lite0"
    assert "ImageNet weights" in page.model_combo.currentText()
    page.set_image(cat)
    assert page.is_busy()  # returned at once: loading and the forward pass run in a worker
    idle(qtbot, page)
    assert page.loaded.info.name == "efficientnet_lite0" and page.badge.text() == "ImageNet weights"
    assert not page.untrained_note.isVisible()
    names = [name for name, _ in page.predictions.rows()]
    assert len(names) == 5 and CAT_CLASSES & set(names[:5])
    assert page.input_view.data.shape == (224, 224, 3)
    assert page.layer_tree.topLevelItemCount() > 10 and "150 steps" in page.layer_summary.text()

    # Grad-CAM for the top class at the last spatial layer, drawn over the picture.
    plain = page.input_view.data.copy()
    with qtbot.waitSignal(page.cam_check.toggled):
        qtbot.mouseClick(page.cam_check, Qt.MouseButton.LeftButton)
    idle(qtbot, page)
    cam = page.cam
    assert cam is not None and cam.heatmap.shape == (224, 224) and cam.heatmap.max() == pytest.approx(1.0)
    assert cam.layer == default_cam_layer(page.exploration.table)
    assert cam.class_index == page.exploration.predictions[0].index
    assert page.input_view.data.shape == (224, 224, 3) and not np.allclose(page.input_view.data, plain)
    assert "Grad-CAM" in page.input_view.caption_label.text()

    # Clicking another prediction shows where that class's evidence is.
    second = page.exploration.predictions[1]
    qtbot.mouseClick(page.predictions, Qt.MouseButton.LeftButton, pos=QPoint(60, 2 + 24 + 12))  # 2nd row
    idle(qtbot, page)
    assert page.cam_class_combo.currentData() == second.index and page.cam.class_index == second.index

    page.cam_check.setChecked(False)
    np.testing.assert_allclose(page.input_view.data, plain)

    # The first layer's filters as colour patches: 32 filters of 3×3×3.
    page.set_layer(0)
    page.tabs.setCurrentWidget(page.filter_view)
    assert page.filter_view.mode == "rgb" and page.filter_view.weights.shape == (32, 3, 3, 3)
    assert (
        page.filter_view.map.data.shape[2] == 3
        and "colour patches" in page.filter_view.map.title_label.text()
    )

    # The screenshot state: a mid-network layer, a channel chosen, its unit's receptive field drawn.
    page.prepare_screenshot()
    idle(qtbot, page)
    assert page.current_row.name == "_blocks.3._swish" and page.channel is not None
    top, left, h, w = page.receptive_field()
    assert (h, w) == page.current_row.rf_size and 0 <= top < 224 and 0 <= left < 224


# --- stepping through layers -----------------------------------------------------------------------------


def test_lenet_steps_through_layers_with_buttons_and_keys(lenet, qtbot):
    page = lenet
    assert page.badge.text() == "trained weights" and not page.untrained_note.isVisible()  # UCI digits
    assert page.layer_names() == [
        "c1", "c1_tanh", "s2", "c3", "c3_tanh", "s4", "c5", "c5_tanh", "flatten", "f6", "f6_tanh", "output"
    ]  # fmt: skip
    assert "<b>c1</b>" in header(page) and "6×28×28" in header(page)
    assert not page.prev_button.isEnabled() and page.position_label.text() == "1 / 12"
    assert len(page.grid.order) == 6 and page.grid.grid.cell == (28, 28)

    qtbot.mouseClick(page.next_button, Qt.MouseButton.LeftButton)
    assert page.current_row.name == "c1_tanh" and page.layer_tree.currentItem().text(0) == "c1_tanh"
    qtbot.keyClick(page.layer_tree, Qt.Key.Key_Down)
    assert page.current_row.name == "s2" and "6×14×14" in header(page)
    idle(qtbot, page)
    assert page.grid.grid.cell == (14, 14)
    qtbot.keyClick(page, Qt.Key.Key_Down)
    assert page.current_row.name == "c3"
    qtbot.keyClick(page.layer_tree, Qt.Key.Key_Up)
    assert page.current_row.name == "s2"
    qtbot.mouseClick(page.prev_button, Qt.MouseButton.LeftButton)
    assert page.current_row.name == "c1_tanh"
    qtbot.keyClick(page, Qt.Key.Key_End)
    assert page.current_row.name == "output" and not page.next_button.isEnabled()
    qtbot.keyClick(page, Qt.Key.Key_Down)  # stays at the last layer
    assert page.position_label.text() == "12 / 12"
    idle(qtbot, page)
    # A vector: one cell per class, and every unit sees the whole picture.
    assert page.grid.grid.cell == (1, 1) and len(page.grid.order) == 10
    assert page.receptive_field() is None and "whole picture" in page.input_view.caption_label.text()
    # Choosing a row in the tree jumps there.
    page.layer_tree.setCurrentItem(page.layer_tree.findItems("c3", Qt.MatchFlag.MatchExactly)[0])
    assert page.current_row.name == "c3"


def test_layer_details_write_out_the_arithmetic(lenet, qtbot):
    page = lenet
    text = page.details.plain_text()
    assert "Window: 5×5" in text
    assert "1×32×32 → 6×28×28" in text
    assert "⌊(32 + 2·0 − 5)/1⌋ + 1 = 28" in text
    assert "weight 6·1·5·5 = 150 + bias 6 = 156" in text
    assert "28·28 positions · 6 filters · 1·5·5 = 117,600" in text
    step_to(qtbot, page, "c3")  # the parameters' breakdown comes with the layer's view
    text = page.details.plain_text()
    assert "weight 16·6·5·5 = 2,400 + bias 16 = 2,416" in text
    assert "⌊(14 + 2·0 − 5)/1⌋ + 1 = 10" in text
    assert "Receptive field: 14×14 px" in text
    step_to(qtbot, page, "f6")
    assert "84 outputs · 120 inputs = 10,080" in page.details.plain_text()
    # Statistics of the captured activations, as numpy computes them.
    step_to(qtbot, page, "c1_tanh")
    data = page.exploration.capture["c1_tanh"].data.astype(np.float32)
    stats = page.stats_view.stats
    assert stats.count == data.size and stats.maximum == pytest.approx(float(data.max()))
    assert stats.mean == pytest.approx(float(data.mean()), abs=1e-4)
    assert "min" in page.stats_view.summary_text() and "zeros" in page.stats_view.summary_text()


# --- channels and receptive fields ------------------------------------------------------------------------


def test_click_a_channel_shows_it_large_with_its_receptive_field(lenet, qtbot):
    page = lenet
    step_to(qtbot, page, "c3")  # 16 maps of 10×10
    point = page.grid.view.mapViewToScene(page.grid.view_point(5, 2, 3))
    qtbot.mouseClick(
        page.grid.graphics.viewport(), Qt.MouseButton.LeftButton, pos=page.grid.graphics.mapFromScene(point)
    )
    assert page.channel == 5 and page.unit == (2, 3)
    np.testing.assert_array_equal(
        page.channel_view.data, page.exploration.capture["c3"].data[5].astype(np.float32)
    )
    assert "Channel 5 of 16" in page.channel_view.title_label.text()
    assert page.channel_view.highlight_rects("unit") == [(2, 3, 1, 1)]
    # By hand: c1 (5×5) → field 5, jump 1, centre 2; s2 (2×2, stride 2) → 6, jump 2, centre 2.5;
    # c3 (5×5) → 6 + 4·2 = 14, jump 2, centre 6.5. Unit (2, 3): centres 10.5 and 12.5, ± 6.5.
    assert page.receptive_field() == (4, 6, 14, 14)
    assert "rows 4–17, cols 6–19 (14×14 px)" in page.input_view.caption_label.text()
    assert page.grid.outline.isVisible()

    # Clicking a unit of the large map moves the field; a click on the picture picks the nearest unit.
    click_view(qtbot, page.channel_view, 0, 0)
    assert page.unit == (0, 0) and page.receptive_field() == (0, 0, 14, 14)  # clipped at the border
    assert "reaches into the padding" not in page.input_view.caption_label.text()
    click_view(qtbot, page.input_view, 31, 31)
    assert page.unit == (9, 9) and page.channel_view.highlight_rects("unit") == [(9, 9, 1, 1)]
    # ←/→ step through the channels in the grid's order.
    qtbot.keyClick(page, Qt.Key.Key_Right)
    assert page.channel == 6


def test_grid_order_scaling_and_colours(lenet, qtbot):
    page = lenet
    step_to(qtbot, page, "c3_tanh")
    page.select_channel(7, (1, 2))
    data = page.exploration.capture["c3_tanh"].data.astype(np.float32)
    page.sort_combo.setCurrentIndex(page.sort_combo.findData("mean"))
    idle(qtbot, page)
    assert page.channel == 7 and page.unit == (1, 2)  # redrawn the new way, the same choice
    expected = np.argsort(-data.reshape(16, -1).mean(axis=1), kind="stable")
    np.testing.assert_array_equal(page.grid.order, expected)
    assert page.grid.cell_rect(int(expected[0]))[:2] == (0, 0)  # the strongest channel comes first

    page.scale_combo.setCurrentIndex(page.scale_combo.findData("layer"))
    idle(qtbot, page)
    lo, hi = page.grid.grid.value_range
    assert (lo, hi) == pytest.approx((float(data.min()), float(data.max())))
    assert page.channel_view.levels == pytest.approx((lo, hi))  # the large map uses the same scale

    page.cmap_combo.setCurrentText("gray")
    idle(qtbot, page)
    assert (
        page.channel == 7
        and page.unit == (1, 2)
        and page.channel_view.highlight_rects("unit") == [(1, 2, 1, 1)]
    )
    rgb = page.grid.image.image
    assert rgb.shape[:2] == page.grid.grid.image.shape and np.all(rgb[..., 0] == rgb[..., 2])
    np.testing.assert_array_equal(rgb, apply_colormap(page.grid.grid.image, "gray"))


def test_a_step_is_drawn_from_a_worker_and_a_step_back_at_once(lenet, qtbot):
    page = lenet
    shown: list[str] = []
    page.view_ready.connect(shown.append)
    with qtbot.waitSignal(page.view_ready, timeout=IDLE_MS) as ready:
        page.set_layer_by_name("c3")
        # Returned at once: tree, header and details are updated, the grid is being prepared.
        assert "<b>c3</b>" in header(page) and "Window: 5×5" in page.details.plain_text()
        assert page.is_busy() and page.view is None and page.grid.grid.cell == (28, 28)  # still c1's
    assert ready.args == ["c3"] and page.grid.grid.cell == (10, 10) and len(page.grid.order) == 16
    np.testing.assert_array_equal(page.grid.fmap, page.exploration.capture["c3"].data)
    assert page.stats_view.stats.count == 16 * 10 * 10 and page.channel_view.data.shape == (10, 10)
    step_to(qtbot, page, "s4")
    # Back to a layer seen a moment ago: drawn within the call, no worker; its statistics follow in the
    # event loop's next turn, once the maps are painted.
    page.set_layer_by_name("c3")
    assert not any(sv.busy for sv in page.sides.values())
    assert page.view.name == "c3" and page.grid.grid.cell == (10, 10)
    assert page.channel_view.data.shape == (10, 10)
    assert page.is_busy() and page.stats_view.stats.count != 16 * 10 * 10  # still s4's
    idle(qtbot, page)
    assert page.stats_view.stats.count == 16 * 10 * 10
    # The kept view's parameter breakdown stays (the table's short form used to overwrite it).
    assert "weight 16·6·5·5 = 2,400 + bias 16 = 2,416" in page.details.plain_text()
    assert shown == ["c3", "s4", "c3"]


def test_holding_down_draws_only_the_layer_it_stops_at(lenet, qtbot):
    page = lenet
    shown: list[str] = []
    page.view_ready.connect(shown.append)
    first = None
    for _ in range(5):  # five ↓ in a row, faster than any view is prepared
        qtbot.keyClick(page, Qt.Key.Key_Down)
        views = [j for j in workers.active_jobs() if j.name.startswith("view")]
        first = first or views[0]
        # One job at a time: the stale one is told to stop and nothing queues up behind it.
        assert views == [first]
    assert page.current_row.name == "s4" and first.is_cancelled
    idle(qtbot, page)
    assert shown == ["s4"] and page.grid.layer_view.name == "s4"  # the layers passed were never drawn
    assert page.grid.grid.cell == (5, 5) and len(page.grid.order) == 16


def test_a_wider_page_retiles_the_grid(lenet, qtbot):
    page = lenet
    step_to(qtbot, page, "c3")
    columns = page.grid.grid.columns
    page.resize(2200, 850)
    qtbot.waitUntil(lambda: page.grid.grid is not None and page.grid.grid.columns > columns, timeout=IDLE_MS)
    idle(qtbot, page)
    assert page.grid.grid.columns == page.grid.columns_for((16, 10, 10)) and page.channel is not None


def test_hidden_filters_are_drawn_when_their_tab_is_shown(lenet, qtbot):
    page = lenet
    assert page.tabs.currentWidget() is page.stats_view
    step_to(qtbot, page, "c3")
    assert page.filter_view.mode == "none" and page.filter_view.weights is None  # not drawn while hidden
    page.tabs.setCurrentWidget(page.filter_view)
    assert page.filter_view.mode == "channel"
    np.testing.assert_allclose(
        page.filter_view.weights, page.loaded.model.c3.weight.detach().numpy()[page.channel]
    )


def test_a_fresh_map_view_shows_rgb_bytes_as_they_are(qtbot):
    """The first map of a new MapView is a colour picture: its bytes must not be saturated."""
    view = MapView("fresh")
    qtbot.addWidget(view)
    rgb = np.array([[[0.2, 0.4, 0.6], [1.0, 0.5, 0.0]]])
    view.set_map(rgb)
    assert list(view.image.levels) == [0, 255]
    view.image.render()
    colour = view.image.qimage.pixelColor(0, 0)
    assert (colour.red(), colour.green(), colour.blue()) == (51, 102, 153)


def test_filters_tab_shows_the_layers_kernels(lenet, qtbot):
    page = lenet
    page.tabs.setCurrentWidget(page.filter_view)
    weight = page.loaded.model.c1.weight.detach().numpy()
    assert page.filter_view.mode == "all"  # one grey input: six 5×5 kernels
    np.testing.assert_allclose(page.filter_view.weights, weight[:, 0])
    page.set_layer_by_name("c3")
    page.select_channel(4)  # (before the layer's view is ready: kept for it)
    idle(qtbot, page)
    assert page.filter_view.mode == "channel" and page.channel == 4
    np.testing.assert_allclose(page.filter_view.weights, page.loaded.model.c3.weight.detach().numpy()[4])
    step_to(qtbot, page, "s2")
    assert page.filter_view.mode == "none" and "no filters" in page.filter_view.map.message_label.text()


def test_grad_cam_on_lenet_follows_layer_and_class(lenet, qtbot):
    page = lenet
    page.cam_check.setChecked(True)
    idle(qtbot, page)
    assert page.cam.layer == "s4" and page.cam.heatmap.shape == (32, 32)  # the last map larger than 1×1
    assert page.input_view.data.shape == (32, 32, 3)  # grey picture coloured by the heat map
    page.cam_layer_combo.setCurrentIndex(page.cam_layer_combo.findData("current"))
    page.set_layer_by_name("c3")
    idle(qtbot, page)
    assert page.cam.layer == "c3"
    page.set_layer_by_name("f6")  # a vector: Grad-CAM cannot use it, and says so
    idle(qtbot, page)
    assert page.cam is None and "no spatial map" in page.cam_info.text()
    page.cam_check.setChecked(False)
    assert page.input_view.data.shape == (32, 32)


def test_a_layer_too_large_to_keep_is_reported(page, qtbot, cat):
    page.max_layer_bytes = 4_000  # c1's output, 6×28×28 float16, is 9,408 bytes
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:lenet5"))
    page.set_image(cat)
    idle(qtbot, page)
    assert "c1" in page.exploration.capture.skipped and "s2" not in page.exploration.capture.skipped
    assert page.grid.fmap is None and "larger than" in page.grid.message_label.text()
    assert page.layer_tree.topLevelItem(0).text(0).endswith("⚠")
    assert "too large to keep" in page.details.plain_text()
    assert "large layers not kept" in page.layer_summary.text()
    page.next_layer()
    page.next_layer()
    idle(qtbot, page)
    assert page.current_row.name == "s2" and page.grid.fmap is not None


# --- work in the background, caching ---------------------------------------------------------------------


def model_jobs() -> list[workers.Job]:
    return [j for j in workers.active_jobs() if j.name.startswith("explore")]


def test_changing_image_while_busy_cancels_stale_work(lenet, qtbot, cat, coffee):
    page = lenet
    lenet_cat = page.exploration
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:resnet18"))
    [first] = model_jobs()
    assert first.is_running
    page.set_image(coffee)  # before ResNet-18 has finished on the cat
    assert first.is_cancelled
    idle(qtbot, page)
    assert first.outcome == "cancelled"
    assert page.loaded.info.name == "resnet18" and page.session.image_key == image_key(coffee)
    expected = page.loaded.preprocess.crop_pixels(coffee.pixels)
    np.testing.assert_array_equal(page.exploration.pixels, expected)
    assert ("zoo:resnet18", image_key(cat)) not in page.caches.results
    # The untrained badge and the reason (downloads are off in the tests) are shown.
    assert page.badge.text() == "UNTRAINED" and "downloads disabled" in page.weights_label.text()
    assert "untrained" in page.model_combo.currentText()

    # Results are cached per (model, image): going back is instant, no new job.
    resnet_coffee = page.exploration
    page.set_image(cat)
    [running] = model_jobs()
    assert running is not first and running.is_running  # ResNet-18 never finished on the cat
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:lenet5"))
    assert page.exploration is lenet_cat and page.loaded.info.name == "lenet5"  # shown at once
    assert running.is_cancelled and model_jobs() == [running]  # the stale job stopped, none started
    page.set_image(coffee)
    idle(qtbot, page)
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:resnet18"))
    assert model_jobs() == [] and page.exploration is resnet_coffee  # no model job: cached
    idle(qtbot, page)  # (the layer's view is drawn anew)


def test_cancel_button_stops_the_work(page, qtbot, cat):
    page.set_image(cat)
    choose_model(qtbot, page, "lenet5")
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:resnet18"))
    assert page.cancel_button.isVisible()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    idle(qtbot, page)
    assert page.loaded.info.name == "lenet5"  # still what was shown before
    assert page.model_combo.currentData() == "zoo:lenet5"


class _SlowWeights(http.server.BaseHTTPRequestHandler):
    """Serves 8 MB of "weights" slowly, so a download is still running when the test cancels it."""

    def do_GET(self) -> None:
        size = 8 << 20
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"\0" * (64 << 10)
        stop = threading.Event()
        for _ in range(size // len(chunk)):
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except OSError:
                return
            stop.wait(0.05)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowWeights)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_weight_download_shows_progress_and_cancel_falls_back_to_untrained(
    page, qtbot, cat, slow_server, monkeypatch, tmp_path
):
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "0")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache
    monkeypatch.setattr(zoo, "_download_url", lambda w: f"{slow_server}/squeezenet1_1-b8a52dc0.pth")
    page.set_image(cat)
    choose_model(qtbot, page, "lenet5")
    page.model_combo.setCurrentIndex(page.model_combo.findData("zoo:squeezenet1_1"))
    qtbot.waitUntil(lambda: "Downloading weights" in page.stage_label.text(), timeout=20_000)
    assert page.progress.maximum() == 1000 and "of 8.0 MB" in page.stage_label.text()
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    idle(qtbot, page)
    assert page.loaded.info.name == "squeezenet1_1" and page.badge.text() == "UNTRAINED"
    assert "cancelled" in page.notice_label.text() and page.notice_label.isVisible()
    assert not list((tmp_path / "hub" / "checkpoints").glob("*.pth"))  # no half-written file left


def test_offline_download_failure_says_so(page, qtbot, cat, monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "0")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(zoo, "_download_url", lambda w: "http://127.0.0.1:9/squeezenet1_1-b8a52dc0.pth")
    page.set_image(cat)
    choose_model(qtbot, page, "squeezenet1_1")
    assert page.badge.text() == "UNTRAINED"
    assert "could not be downloaded" in page.weights_label.text()
    assert "download failed" in page.weights_label.text()


# --- model files -----------------------------------------------------------------------------------------


def _lenet_checkpoint(path: Path, classes: list[str]) -> nn.Module:
    torch.manual_seed(3)
    model = zoo.LeNet5(len(classes)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    zoo.save_checkpoint(path, model, arch="lenet5", class_names=classes, preprocess=zoo.LENET5_PREPROCESS)
    return model


def test_open_model_file_runs_a_fine_tuned_checkpoint(lenet, qtbot, tmp_path, coffee):
    page = lenet
    classes = ["bird", "cat", "horse"]
    path = tmp_path / "runs" / "animals-01" / "best.pt"
    model = _lenet_checkpoint(path, classes)
    page.open_model_file(path, image=ASSETS / "coffee.jpg")
    idle(qtbot, page)
    assert page.model_combo.currentText().startswith("Fine-tuned: animals-01")
    assert page.badge.text() == "your weights" and not page.untrained_note.isVisible()
    assert page.image.path.name == "coffee.jpg"
    assert sorted(name for name, _ in page.predictions.rows()) == sorted(classes)
    with torch.inference_mode():
        probs = torch.softmax(model(zoo.LENET5_PREPROCESS(coffee.pixels)[None]), 1)[0].numpy()
    shown = {p.name: p.probability for p in page.exploration.predictions}
    for i, name in enumerate(classes):
        assert shown[name] == pytest.approx(float(probs[i]), abs=1e-5)
    # The layers are there to explore, as for any zoo model.
    step_to(qtbot, page, "c3")
    assert page.grid.grid is not None and len(page.grid.order) == 16


def test_open_model_file_button_uses_a_file_dialog(lenet, qtbot, tmp_path, monkeypatch):
    page = lenet
    path = tmp_path / "weights.pt"
    _lenet_checkpoint(path, ["a", "b"])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    idle(qtbot, page)
    assert page.model_combo.currentText().startswith("Fine-tuned: weights")
    assert [n for n, _ in page.predictions.rows()] in (["a", "b"], ["b", "a"])


def test_a_wrong_model_file_gives_a_clear_message_and_the_page_goes_on(lenet, qtbot, tmp_path):
    page = lenet
    bad = tmp_path / "notes.pt"
    bad.write_text("these are my notes, not weights")
    with qtbot.waitSignal(page.status_message, timeout=IDLE_MS) as said:
        page.open_model_file(bad)
    idle(qtbot, page)
    assert "notes.pt" in said.args[0] and "a text file, not a PyTorch file" in said.args[0]
    assert page.notice_label.isVisible() and "notes.pt" in page.notice_label.text()
    assert page.loaded.info.name == "lenet5" and page.model_combo.currentData() == "zoo:lenet5"

    pickled = tmp_path / "whole_model.pt"
    torch.save(zoo.LeNet5(), pickled)  # a pickled full model could run code: refused
    page.open_model_file(pickled)
    idle(qtbot, page)
    assert "whole_model.pt" in page.notice_label.text() and "pickled" in page.notice_label.text()
    page.next_layer()
    assert page.current_row.name == "c1_tanh"  # still working


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_model_shows_predictions_without_layers(lenet, qtbot, tmp_path):
    page = lenet
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(net.eval()), str(path))
    page.open_model_file(path)
    answer_code_consent(qtbot, page, run=True)
    idle(qtbot, page)
    assert page.model_combo.currentText().startswith("File: scripted.pt")
    assert [n for n, _ in page.predictions.rows()] and not page.rows
    assert "TorchScript" in page.grid.message_label.text()
    page.cam_check.setChecked(True)
    assert "TorchScript" in page.cam_info.text()


def answer_code_consent(qtbot, page: NetworkPage, *, run: bool, remember: bool = False) -> CodeConsentDialog:
    """Wait for the "run this file's code?" question and answer it as a user would, with a click."""
    qtbot.waitUntil(lambda: any(d.isVisible() for d in page.findChildren(CodeConsentDialog)), timeout=IDLE_MS)
    dialog = next(d for d in page.findChildren(CodeConsentDialog) if d.isVisible())
    assert "TorchScript" in dialog.text() and "delete your files" in dialog.informativeText()
    dialog.checkBox().setChecked(remember)
    qtbot.mouseClick(dialog.run_button if run else dialog.cancel_button, Qt.MouseButton.LeftButton)
    return dialog


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_needs_consent_and_a_remembered_answer_is_kept(lenet, qtbot, tmp_path):
    page = lenet
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    path = tmp_path / "program.pt"
    torch.jit.save(torch.jit.script(net.eval()), str(path))

    page.open_model_file(path)
    answer_code_consent(qtbot, page, run=False)
    idle(qtbot, page)
    assert "program.pt" in page.notice_label.text() and "not allowed to run" in page.notice_label.text()
    assert page.loaded.info.name == "lenet5" and page.model_combo.currentData() == "zoo:lenet5"

    page.open_model_file(path)  # not remembered: asked again; this time yes, and remember it
    answer_code_consent(qtbot, page, run=True, remember=True)
    idle(qtbot, page)
    assert page.model_combo.currentText().startswith("File: program.pt")
    assert CodeTrust().decision(zoo.file_sha256(path)) is TrustDecision.TRUSTED

    choose_model(qtbot, page, "lenet5")
    page.open_model_file(path)  # remembered: opens without a question
    idle(qtbot, page)
    assert not any(d.isVisible() for d in page.findChildren(CodeConsentDialog))
    assert page.model_combo.currentText().startswith("File: program.pt")

    with open(path, "ab") as fh:  # other bytes, same name: asked afresh
        fh.write(b"\0")
    page.open_model_file(path)
    answer_code_consent(qtbot, page, run=False)
    idle(qtbot, page)


def test_the_whole_layer_table_opens_sorted_and_steps_to_a_row(lenet, qtbot):
    page = lenet
    qtbot.mouseClick(page.layer_panel.table_button, Qt.MouseButton.LeftButton)
    [table] = [t for t in page.findChildren(LayerTableView) if t.isVisible()]
    assert table.rows() == len(page.rows) and table.cell_text(0, "name") == "c1"
    table.layer_activated.emit("f6")  # (a double-click on its row, as tests/qt/test_layer_widgets.py does)
    idle(qtbot, page)
    assert page.current_row.name == "f6" and page.view.name == "f6"
    table.close()


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_a_yes_without_remembering_is_not_reused_for_changed_bytes(lenet, qtbot, tmp_path, coffee):
    page = lenet
    path = tmp_path / "program.pt"
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    torch.jit.save(torch.jit.script(net.eval()), str(path))
    page.open_model_file(path)
    answer_code_consent(qtbot, page, run=True)  # yes, once, not remembered
    idle(qtbot, page)
    assert page.loaded.num_classes == 5
    other = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 7)
    )
    torch.jit.save(torch.jit.script(other.eval()), str(path))  # another program under the same name
    page.caches.forget_model(f"file:{path}")  # as when the model falls out of the memory budget
    page.set_image(coffee)  # a reload of the same file
    answer_code_consent(qtbot, page, run=False)  # asked again: the yes was for the old bytes
    idle(qtbot, page)
    kept = page.caches.models.keys()
    assert not any(page.caches.models.get(k).num_classes == 7 for k in kept)


def test_a_run_opened_on_the_picture_already_shown_replaces_the_model(lenet, qtbot, tmp_path):
    page = lenet
    run = tmp_path / "runs" / "scratch-01"
    _lenet_checkpoint(run / "best.pt", ["bird", "cat", "horse"])
    (run / "config.json").write_text('{"model": "lenet5", "strategy": "scratch"}')
    page.open_model_file(run / "best.pt", image=ASSETS / "chelsea.png")  # the cat is on screen already
    idle(qtbot, page)
    assert page.loaded.categories == ["bird", "cat", "horse"]
    assert page.model_combo.currentText().startswith("Fine-tuned: scratch-01")
