"""The main window: opens with the sample, menus, drag-and-drop, bad files, settings, quitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from cnn_explorer.qt.app import make_app
from cnn_explorer.qt.main_window import MainWindow


@pytest.fixture
def settings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings):
    make_app()
    win = MainWindow(settings=settings)
    win._dialogs_enabled = False
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.current_image is not None, timeout=20_000)
    yield win
    win.close()


def _png(path: Path, color=(10, 200, 30), size=(24, 16)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def test_opens_with_the_sample_cat_on_every_page(window):
    assert window.current_image.path.name == "chelsea.png"
    assert "chelsea.png" in window.image_label.text()
    assert window.windowTitle() == "chelsea.png"  # Qt adds " — CNN Explorer" itself
    titles = [window.sidebar.item(i).text() for i in range(window.sidebar.count())]
    assert titles == ["Operations lab", "Network explorer", "Architectures", "Fine-tune", "Compress"]


def test_sidebar_and_shortcut_switch_pages(window, qtbot):
    window.sidebar.setCurrentRow(2)
    assert window.stack.currentIndex() == 2
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentIndex() == 1


def test_file_open_menu_action_loads_the_chosen_image(window, qtbot, tmp_path, monkeypatch):
    target = _png(tmp_path / "green.png")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(target), ""))
    assert window.action_open.shortcut().toString() == "Ctrl+O"
    with qtbot.waitSignal(window.image_loaded, timeout=10_000):
        window.action_open.trigger()
    assert window.current_image.path == target
    assert tuple(window.current_image.pixels[0, 0]) == (10, 200, 30)
    assert window.settings.value("last_folder") == str(tmp_path)


def test_a_bad_file_is_reported_and_the_previous_image_kept(window, qtbot, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not really a photo")
    with qtbot.waitSignal(window.image_failed, timeout=10_000) as failed:
        window.open_image(bad)
    assert "holiday.jpg" in failed.args[0] and "text" in failed.args[0]
    assert "holiday.jpg" in window.statusBar().currentMessage()
    assert window.current_image.path.name == "chelsea.png"


def test_bad_file_shows_a_dialog_when_dialogs_are_on(window, qtbot, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    window._dialogs_enabled = True
    with qtbot.waitSignal(window.image_failed, timeout=10_000):
        window.open_image(tmp_path / "missing.png")
    assert shown and "missing.png" in shown[0] and "does not exist" in shown[0]


def _drop(window, path: Path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPointF(200, 200)
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(window, drop)
    return True


def test_drag_and_drop_an_image_file(window, qtbot, tmp_path):
    target = _png(tmp_path / "dropped.png", color=(255, 0, 0))
    with qtbot.waitSignal(window.image_loaded, timeout=10_000):
        assert _drop(window, target)
    assert window.current_image.path == target


def test_drop_of_a_non_image_is_refused(window, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("hello")
    assert not _drop(window, doc)


def test_about_names_the_versions(window):
    import torch

    text = window.about_text()
    assert torch.__version__ in text and "PySide6" in text and "0.1.0" in text


def test_geometry_and_page_are_remembered(qtbot, settings):
    make_app()
    first = MainWindow(settings=settings, load_sample=False)
    qtbot.addWidget(first)
    first.resize(700, 500)  # the offscreen screen is 800×800
    first.show_page(2)
    first.show()
    first.close()
    second = MainWindow(settings=settings, load_sample=False)
    qtbot.addWidget(second)
    assert second.stack.currentIndex() == 2
    assert (second.width(), second.height()) == (700, 500)
    second.close()


def test_quit_action_closes_the_window(window, qtbot):
    assert window.action_quit.shortcut().toString() == "Ctrl+Q"
    window.action_quit.trigger()
    qtbot.waitUntil(lambda: not window.isVisible())


def test_open_image_keeps_gui_responsive_for_large_files(window, qtbot, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (2000, 3000, 3), dtype=np.uint8)).save(big)
    with qtbot.waitSignal(window.image_loaded, timeout=30_000):
        window.open_image(big)
        assert window.is_busy()  # returned at once; the decode runs in a worker
    assert window.current_image.pixels.shape == (2000, 3000, 3)


def test_the_app_paints_on_its_own_thread_and_switches_the_gil_often(monkeypatch):
    """Qt's painter would hand large fills to a pool of threads and wait for them, which on busy cores
    stalls the window (bench_gui_stall.py); a worker's Python holds the window off for at most 0.25 ms."""
    import os
    import sys

    monkeypatch.delenv("QT_NO_GUI_THREADPOOL", raising=False)
    make_app()
    assert os.environ["QT_NO_GUI_THREADPOOL"] == "1"
    assert sys.getswitchinterval() == pytest.approx(0.00025)
