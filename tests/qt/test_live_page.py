"""Live input in the explorer: a generated video through LeNet-5, latest frame wins. Frames are painted in
order into the grid, the channel view and the top-5; stepping layers and picking channels act on the next
frame; Pause gives a still that the explorer explores; a missing camera or a bad file is one inline
message and the still stays; Snapshot writes a PNG; Stop, the end of the video, another model and
leaving the page stop every job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QWidget

from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.live import write_demo_video
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.network import NetworkPage

pytest.importorskip("cv2")  # the live extra (opencv-python-headless)

IDLE_MS = 60_000


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    """Two seconds at 15 fps: long enough for several frames, short enough to reach its end."""
    return write_demo_video(tmp_path_factory.mktemp("live") / "demo.avi", frames=30, fps=15.0)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """Twenty seconds: it is still playing when a test stops it."""
    return write_demo_video(tmp_path_factory.mktemp("live") / "long.avi", frames=300, fps=15.0)


def idle(qtbot, page: NetworkPage) -> None:
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=IDLE_MS)


@pytest.fixture
def lenet(lenet_page):
    return lenet_page


def painted(page: NetworkPage) -> list:
    results: list = []
    page.live_painted.connect(results.append)
    return results


def wait_frames(qtbot, results: list, n: int) -> None:
    qtbot.waitUntil(lambda: len(results) >= n, timeout=IDLE_MS)


def stop(qtbot, page: NetworkPage) -> None:
    page.stop_live()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_a_video_is_painted_frame_after_frame_in_order(lenet, qtbot, short_video):
    results = painted(lenet)
    with qtbot.waitSignal(lenet.live_stopped, timeout=IDLE_MS) as stopped:
        lenet.start_live(short_video)
        qtbot.waitUntil(lambda: "fps" in lenet.live_bar.stats_label.text(), timeout=IDLE_MS)
        assert lenet.live_on
    assert stopped.args == ["ended"]
    indices = [r.frame.index for r in results]
    assert len(indices) >= 3
    assert indices == sorted(set(indices)), "results painted out of order or twice"
    last = results[-1]
    assert last.frame.pixels.shape == (240, 320, 3)
    # What is on screen is the last result: its grid, its channel, its top-5.
    assert lenet.grid.layer_view is last.view
    assert [p.index for p in lenet.predictions.predictions] == [p.index for p in last.top]
    assert len(last.top) == 5
    assert lenet.channel_view.data is not None
    # The end of the file froze its last frame into a still.
    idle(qtbot, lenet)
    assert lenet.image.path.name == f"demo.avi, frame {last.frame.index}"
    assert "ended" in lenet.live_bar.message
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_stepping_layers_and_picking_channels_act_on_the_next_frames(lenet, qtbot, long_video):
    results = painted(lenet)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 1)
    names = lenet.layer_names()
    target = next(
        n for n in names if n != results[-1].layer and lenet.session.activation(Side.A, n) is not None
    )
    target_row = next(r for r in lenet.rows if r.name == target)
    lenet.set_layer_by_name(target)
    qtbot.waitUntil(lambda: results[-1].layer == target, timeout=IDLE_MS)
    assert lenet.grid.layer_view.name == target
    assert target in lenet.layer_header.text() and "live" in lenet.layer_header.text()
    assert results[-1].shape == tuple(target_row.out_shape)
    if target_row.spatial and target_row.out_shape[0] > 2:
        lenet.select_channel(2)
        qtbot.waitUntil(lambda: results[-1].channel == 2, timeout=IDLE_MS)
        assert "Channel 2 of" in lenet.channel_view.title_label.text()
        np.testing.assert_allclose(lenet.channel_view.data, results[-1].channel_map, rtol=1e-6)
    lenet.next_layer()
    following = lenet.current_row.name
    qtbot.waitUntil(lambda: results[-1].layer == following, timeout=IDLE_MS)
    stop(qtbot, lenet)
    assert not lenet.live_on
    idle(qtbot, lenet)
    # Back to the still: the cat, at the layer the cursor is on.
    assert lenet.image.path.name == "chelsea.png"
    qtbot.waitUntil(lambda: lenet.view is not None and lenet.view.name == following, timeout=IDLE_MS)
    assert "live" not in lenet.layer_header.text()


def test_pause_freezes_the_frame_into_a_still_the_explorer_explores(lenet, qtbot, long_video, cat):
    results = painted(lenet)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 3)
    with qtbot.waitSignal(lenet.live_stopped, timeout=IDLE_MS) as stopped:
        lenet.pause_live()
    assert stopped.args == ["paused"]
    frozen = results[-1]
    idle(qtbot, lenet)
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)
    assert not lenet.live_on
    assert lenet.image.path.name == f"long.avi, frame {frozen.frame.index}"
    np.testing.assert_array_equal(lenet.image.pixels, frozen.frame.pixels)
    # An ordinary still: every layer captured, its own top-5, steppable.
    ex = lenet.exploration
    assert ex is not None and len(ex.predictions) == 5
    assert [p.index for p in ex.predictions] == [p.index for p in frozen.top]
    assert [p.name for p in lenet.predictions.predictions] == [p.name for p in ex.predictions]
    lenet.set_layer(0)
    idle(qtbot, lenet)
    assert lenet.view is not None and lenet.view.name == lenet.layer_names()[0]
    assert "Paused at long.avi, frame" in lenet.live_bar.message
    assert lenet.current_frame() is lenet.image and lenet.live_bar.snapshot_button.isEnabled()
    lenet.set_image(cat)  # another picture: the frozen frame is gone, Snapshot and the lab have none
    idle(qtbot, lenet)
    assert lenet.current_frame() is None and not lenet.live_bar.snapshot_button.isEnabled()


def test_a_missing_camera_or_a_bad_file_is_one_message_and_the_still_stays(lenet, qtbot, cat, tmp_path):
    shown = lenet.view
    lenet.start_live(9)  # the highest index offered: no machine running these tests has ten cameras
    qtbot.waitUntil(lambda: "keeps its still picture" in lenet.live_bar.message, timeout=IDLE_MS)
    assert "camera 9" in lenet.live_bar.message.lower()
    assert not lenet.live_on
    assert lenet.live_bar.live_button.isEnabled() and not lenet.live_bar.pause_button.isEnabled()
    assert lenet.image is cat and lenet.view is shown
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    lenet.start_live(bad)
    qtbot.waitUntil(lambda: "cannot decode" in lenet.live_bar.message, timeout=IDLE_MS)
    assert "broken.mp4" in lenet.live_bar.message
    assert lenet.image is cat and lenet.view is shown
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_snapshot_writes_the_frame_as_a_png(lenet, qtbot, long_video, tmp_path):
    results = painted(lenet)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 2)
    target = tmp_path / "shots" / "frame.png"
    frame = lenet.current_frame()
    assert lenet.snapshot(target) == target
    qtbot.waitUntil(target.exists, timeout=IDLE_MS)
    stop(qtbot, lenet)
    saved = np.asarray(Image.open(target).convert("RGB"))
    np.testing.assert_array_equal(saved, frame.pixels)
    assert not list(target.parent.glob("*.part"))


def test_stop_another_model_and_leaving_the_page_stop_every_job(lenet, qtbot, long_video):
    results = painted(lenet)
    combo = lenet.cam_class_combo  # Grad-CAM's class: each frame's top-1 while live
    combo.setCurrentIndex(2)
    chosen = combo.currentData()
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 1)
    assert combo.currentText() == f"the live top-1: {results[-1].top[0].name}" and not combo.isEnabled()
    stop(qtbot, lenet)
    assert not lenet.live_on and not lenet.live_bar.pause_button.isEnabled()
    assert combo.isEnabled() and [combo.itemData(i) for i in range(combo.count())] == [
        p.index for p in lenet.exploration.predictions
    ]
    assert combo.currentData() == chosen  # the class chosen before live, as the heatmap still has it
    count = len(results)
    qtbot.wait(200)
    assert len(results) == count, "a frame was painted after Stop"
    # Another model stops live.
    lenet.start_live(long_video)
    wait_frames(qtbot, results, count + 1)
    lenet.model_combo.setCurrentIndex(lenet.model_combo.findData("zoo:resnet18"))
    assert not lenet.live_on
    assert "another model" in lenet.live_bar.message
    idle(qtbot, lenet)
    lenet.model_combo.setCurrentIndex(lenet.model_combo.findData("zoo:lenet5"))
    idle(qtbot, lenet)
    # Hiding the page (another page chosen) stops live.
    count = len(results)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, count + 1)
    lenet.hide()
    assert not lenet.live_on
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_use_in_lab_freezes_the_frame_and_opens_it_in_the_lab(qtbot, tmp_path, long_video):
    from cnn_explorer.qt.app import make_app
    from cnn_explorer.qt.main_window import MainWindow
    from cnn_explorer.qt.pages.ops_lab import OpsLabPage

    def pages(parent: QWidget) -> list:
        return [OpsLabPage(parent), NetworkPage(parent)]

    make_app()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, page_factory=pages)
    window._dialogs_enabled = False
    qtbot.addWidget(window)
    window.show()
    window.show_page(1)
    lab, net = window.pages
    qtbot.waitUntil(lambda: window.current_image is not None and not window.is_busy(), timeout=IDLE_MS)
    net.model_combo.setCurrentIndex(net.model_combo.findData("zoo:lenet5"))
    qtbot.waitUntil(lambda: not window.is_busy() and net.loaded.info.name == "lenet5", timeout=IDLE_MS)
    results = painted(net)
    net.start_live(long_video)
    wait_frames(qtbot, results, 1)
    net.live_bar.lab_button.click()
    assert window.stack.currentWidget() is lab
    assert not net.live_on
    assert lab.input_panel.source_key() == "gray"
    info = lab.input_panel.image_info
    qtbot.waitUntil(lambda: info.text().startswith("long.avi, frame "), timeout=IDLE_MS)
    assert "320×240, shrunk to" in info.text()  # grayscale at the lab's working size
    window.close()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_compare_mode_stops_live_and_hides_its_row(lenet, qtbot, long_video):
    results = painted(lenet)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 1)
    lenet.compare_with_default()  # B: the same LeNet-5, on the still
    assert not lenet.live_on and not lenet.live_bar.isVisible()
    idle(qtbot, lenet)
    lenet.session.close_compare()
    assert lenet.live_bar.isVisible()
    qtbot.waitUntil(lambda: not workers.active_jobs(), timeout=IDLE_MS)


def test_while_live_the_details_and_filters_follow_the_layer(lenet, qtbot, long_video):
    results = painted(lenet)
    lenet.side_panel.tabs.setCurrentWidget(lenet.filter_view)
    lenet.start_live(long_video)
    wait_frames(qtbot, results, 1)
    convs = [r.name for r in lenet.rows if r.type == "Conv2d"]
    target = convs[-1] if convs[-1] != results[-1].layer else convs[0]
    lenet.set_layer_by_name(target)

    def filters_of_target() -> bool:
        shown = lenet.sides[Side.A].shown
        drawn = lenet.filter_view.shown
        return (
            shown is not None
            and shown.facts.name == target
            and drawn is not None
            and (drawn[0] == shown.facts.weight_version)
        )

    qtbot.waitUntil(filters_of_target, timeout=IDLE_MS)
    qtbot.waitUntil(lambda: results[-1].layer == target, timeout=IDLE_MS)
    assert lenet.live_on
    assert lenet.grid.layer_view is results[-1].view  # the frames still paint the maps
    lenet.select_channel(1)
    qtbot.waitUntil(lambda: lenet.filter_view.shown[1] == 1, timeout=IDLE_MS)
    stop(qtbot, lenet)
