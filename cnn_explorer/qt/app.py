"""QApplication set-up, the GUI entry point and the screenshot command."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QWidget

from cnn_explorer.core.images import assets_dir

GIL_SWITCH_INTERVAL_S = 0.00025


def make_app(argv: list[str] | None = None) -> QApplication:
    """The one QApplication, with pyqtgraph configured the same way for every view."""
    import pyqtgraph as pg

    # A worker thread running Python (tracing a model, unpickling a checkpoint) holds the GIL for up to
    # the switch interval each time the window's thread asks for it, and a paint asks dozens of times:
    # at the default 5 ms that added up to stalls of tens of ms (bench_gui_stall.py); 0.25 ms bounds
    # each wait.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Qt's raster painter hands the spans of any fill taller than ~100 lines to a pool of threads and
    # waits for them. While a training run or a model keeps the cores busy, those threads wait for a
    # core and the window with them: 13-42 hand-overs inside one long stall, a progress bar's paint up
    # to 5.4 ms (1.2 ms painted here; bench_gui_stall.py runs with and without). The widgets are small:
    # the window's own thread paints them as fast on its own. (Set before Qt first paints.)
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    QCoreApplication.setOrganizationName("CNN Explorer")
    QCoreApplication.setApplicationName("cnn-explorer")
    app.setApplicationDisplayName("CNN Explorer")
    icon = assets_dir() / "icon.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    # Arrays are (row, column) everywhere in this app, as NumPy and torch index them.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k")
    return app


def wait_until(predicate: Callable[[], bool], timeout_s: float = 120.0, poll_ms: int = 25) -> bool:
    """Run the event loop until ``predicate()`` holds (workers report through it) or time runs out."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QTimer.singleShot(poll_ms, loop.quit)
        loop.exec()
    return True


def freeze_startup_objects() -> int:
    """Move every object alive now (torch, Qt, pyqtgraph, the window: some 400,000) out of the
    garbage collector's sight. A full collection otherwise walks them all, holding the GIL, and every
    thread with it: 190 ms stalls of the window in the middle of its work (bench_gui_stall.py). They
    live as long as the window anyway. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run_gui(image: str | None = None) -> int:
    from cnn_explorer.qt.main_window import MainWindow

    app = make_app()
    window = MainWindow(load_sample=image is None)
    if image is not None:
        window.open_image(image)
    window.show()
    freeze_startup_objects()
    return app.exec()


def screenshot(
    outdir: str | Path, image: str | None = None, size: tuple[int, int] = (1400, 900)
) -> list[Path]:
    """Render each page to OUTDIR/<page>.png after it has finished its work; returns the files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from cnn_explorer.qt.main_window import MainWindow

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    app = make_app()
    # A throw-away settings file: pictures must not depend on (or change) the user's saved layout.
    settings = QSettings(str(outdir / ".screenshot-settings.ini"), QSettings.Format.IniFormat)
    settings.clear()
    window = MainWindow(load_sample=image is None, settings=settings)
    window._dialogs_enabled = False
    if image is not None:
        window.open_image(image)
    window.resize(*size)
    window.show()
    errors: list[str] = []
    window.image_failed.connect(errors.append)
    wait_until(lambda: window.current_image is not None or bool(errors), 60)
    if errors:
        window.close()
        raise RuntimeError(errors[0])
    names = {
        "OpsLabPage": "ops",
        "NetworkPage": "network",
        "GalleryPage": "gallery",
        "FineTunePage": "finetune",
        "CompressPage": "compress",
    }
    written = []
    for index, page in enumerate(window.pages):
        window.show_page(index)
        wait_until(lambda: not window.is_busy(), 300)
        page.prepare_screenshot()
        wait_until(lambda: not window.is_busy(), 300)
        # Two more turns of the event loop so the last results are painted.
        wait_until(lambda: False, 0.2)
        path = outdir / f"{names.get(type(page).__name__, type(page).__name__.lower())}.png"
        if not window.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
        written.append(path)
    written += _code_screenshots(window, outdir)
    lab = next((p for p in window.pages if type(p).__name__ == "OpsLabPage"), None)
    if lab is not None:
        written += _lab_screenshots(window, lab, outdir, size)
    network = next((p for p in window.pages if type(p).__name__ == "NetworkPage"), None)
    if network is not None:
        written.append(_draw_screenshot(window, network, outdir / "lenet-draw.png"))
        live = _live_screenshot(window, network, outdir / "live.png")
        if live is not None:
            written.append(live)
        written.append(_compare_screenshot(window, network, outdir / "compare.png"))
    window.close()
    app.processEvents()
    (outdir / ".screenshot-settings.ini").unlink(missing_ok=True)
    return written


CODE_SHOTS = {"OpsLabPage": "code-lab", "NetworkPage": "code-explorer", "FineTunePage": "code-finetune"}


def _code_screenshots(window: QWidget, outdir: Path) -> list[Path]:
    """The "Show the code" panel of the lab, the explorer and the fine-tune page, as each page is now."""
    written = []
    for index, page in enumerate(window.pages):
        name = CODE_SHOTS.get(type(page).__name__)
        if name is None:
            continue
        window.show_page(index)
        wait_until(lambda: not window.is_busy(), 300)
        panel = window.show_code()
        if panel is None:  # the page has nothing to show code for (said in the status bar)
            continue
        wait_until(lambda: False, 0.2)
        path = outdir / f"{name}.png"
        if not panel.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
        panel.close()
        written.append(path)
    return written


LAB_SHOT_HEIGHT = 1150  # the backward view's second row of maps and the depth tab's filters need it


def _lab_screenshots(window: QWidget, lab: QWidget, outdir: Path, size: tuple[int, int]) -> list[Path]:
    """The Operations lab twice more, in a taller window: the course's max-pooling example with its
    gradient routed back (``lab-backward.png``) and an RGB input with four filters (``lab-depth.png``)."""
    written = []
    window.show_page(window.pages.index(lab))
    window.resize(size[0], max(size[1], LAB_SHOT_HEIGHT))
    for name, prepare in (
        ("lab-backward", lab.prepare_backward_screenshot),
        ("lab-depth", lab.prepare_depth_screenshot),
    ):
        prepare()
        wait_until(lambda: not window.is_busy(), 300)
        wait_until(lambda: False, 0.2)
        path = outdir / f"{name}.png"
        if not window.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
        written.append(path)
    window.resize(*size)
    wait_until(lambda: not window.is_busy(), 300)
    return written


def _draw_screenshot(window: QWidget, network: QWidget, path: Path) -> Path:
    """The explorer with LeNet-5 reading a digit drawn (in code) on its canvas."""
    window.show_page(window.pages.index(network))
    step = 0
    while network.prepare_draw_screenshot(step):
        wait_until(lambda: not window.is_busy(), 300)
        wait_until(lambda: False, 0.1)  # the canvas's emit and the model event's follow-ups
        wait_until(lambda: not window.is_busy(), 300)
        step += 1
    wait_until(lambda: False, 0.2)
    if not window.grab().save(str(path)):
        raise RuntimeError(f"could not write {path}")
    return path


LIVE_SHOT_FRAME = 24  # the demo video's frame to grab at: the cat drifting, the disc on its way across


def _live_screenshot(window: QWidget, network: QWidget, path: Path) -> Path | None:
    """The explorer live on the generated demo video (the cat panned, a disc crossing): EfficientNet-Lite0's
    maps, top-5 and Grad-CAM following the frames. None (nothing written) without OpenCV."""
    import tempfile

    from cnn_explorer.core.live import LiveSourceError, write_demo_video

    with tempfile.TemporaryDirectory(prefix="cnn-explorer-live-") as tmp:
        try:
            video = write_demo_video(Path(tmp) / "demo.avi")
        except LiveSourceError as exc:  # OpenCV (the live extra) is not installed
            print(f"live.png skipped: {exc}", file=sys.stderr)
            return None
        window.show_page(window.pages.index(network))
        step = 0
        while network.prepare_live_screenshot(step, video):
            wait_until(lambda: not window.is_busy(), 300)
            step += 1
        wait_until(lambda: network.live_frame_index() >= LIVE_SHOT_FRAME or not network.live_on, 120)
        wait_until(lambda: False, 0.3)  # the stats line's next update
        saved = window.grab().save(str(path))
        network.stop_live()
        wait_until(lambda: not window.is_busy(), 300)
    if not saved:
        raise RuntimeError(f"could not write {path}")
    return path


def _compare_screenshot(window: QWidget, network: QWidget, path: Path) -> Path:
    """The explorer comparing a real fine-tuned run (trained here, in seconds) with its pretrained start."""
    import tempfile

    from cnn_explorer.core.training import demo_compare_run

    with tempfile.TemporaryDirectory(prefix="cnn-explorer-compare-") as tmp:
        run = demo_compare_run(Path(tmp))  # (before the page is shown: nothing to repaint meanwhile)
        window.show_page(window.pages.index(network))
        network.open_model_file(run / "best.pt")
        wait_until(lambda: not window.is_busy(), 300)
        network.prepare_compare_screenshot()
        wait_until(lambda: not window.is_busy(), 300)
        wait_until(lambda: False, 0.2)
        if not window.grab().save(str(path)):
            raise RuntimeError(f"could not write {path}")
    return path
