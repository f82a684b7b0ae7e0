"""The main window: a side bar of pages, menus, status bar, drag-and-drop. No torch calls here."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QSize, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer import __version__
from cnn_explorer.core.images import (
    SUPPORTED_SUFFIXES,
    ImageLoadError,
    LoadedImage,
    default_sample,
    is_image_file,
    open_image,
    sample_images,
)
from cnn_explorer.qt import workers
from cnn_explorer.qt.pages.base import Page
from cnn_explorer.qt.widgets.code_panel import CodePanel

IMAGE_FILTER = "Images ({})".format(" ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)) + ";;All files (*)"
STATUS_TIMEOUT_MS = 8000


def _build_pages(parent: QWidget) -> list[Page]:
    from cnn_explorer.qt.pages.compress import CompressPage
    from cnn_explorer.qt.pages.finetune import FineTunePage
    from cnn_explorer.qt.pages.gallery import GalleryPage
    from cnn_explorer.qt.pages.network import NetworkPage
    from cnn_explorer.qt.pages.ops_lab import OpsLabPage

    return [
        OpsLabPage(parent),
        NetworkPage(parent),
        GalleryPage(parent),
        FineTunePage(parent),
        CompressPage(parent),
    ]


class MainWindow(QMainWindow):
    image_loaded = Signal(object)  # LoadedImage, after every page was given it
    image_failed = Signal(str)  # the user-facing message

    def __init__(
        self,
        *,
        load_sample: bool = True,
        settings: QSettings | None = None,
        page_factory: Callable[[QWidget], list[Page]] = _build_pages,
    ) -> None:
        super().__init__()
        self.setWindowTitle("CNN Explorer")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings("CNN Explorer", "cnn-explorer")
        self.current_image: LoadedImage | None = None
        self._image_job = workers.JobSlot()
        self._dialogs_enabled = True  # tests and the screenshot command turn modal dialogs off

        self.pages = page_factory(self)
        self.stack = QStackedWidget()
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setIconSize(QSize(20, 20))
        for page in self.pages:
            self.stack.addWidget(page)
            QListWidgetItem(page.title, self.sidebar)
            page.status_message.connect(self.show_status)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.sidebar.setStyleSheet(
            "QListWidget#sidebar { font-size: 14px; padding-top: 8px; }"
            "QListWidget#sidebar::item { padding: 10px 8px; }"
        )

        self.code_button = QPushButton("</>  Show the code")
        self.code_button.setToolTip(
            "The plain PyTorch behind what this page shows, with its settings (Ctrl+Shift+C)"
        )
        self.code_button.clicked.connect(self.show_code)
        self.code_panel: CodePanel | None = None
        side = QWidget()
        side.setFixedWidth(170)
        side_column = QVBoxLayout(side)
        side_column.setContentsMargins(0, 0, 0, 6)
        side_column.setSpacing(6)
        side_column.addWidget(self.sidebar, 1)
        side_column.addWidget(self.code_button)
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(side)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self._connect_pages()
        self.image_label = QLabel()
        self.statusBar().addPermanentWidget(self.image_label)
        self._build_menus()

        self.sidebar.setCurrentRow(int(self.settings.value("page", 0) or 0) % len(self.pages))
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if load_sample:
            self.open_image(default_sample())

    # -- menus ------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.action_open = self._action(
            file_menu, "&Open image…", self.choose_image, QKeySequence.StandardKey.Open
        )
        samples = file_menu.addMenu("Open &sample")
        for path in sample_images():
            act = samples.addAction(path.stem.capitalize())
            act.triggered.connect(lambda _=False, p=path: self.open_image(p))
        self.action_open_dataset = self._action(
            file_menu, "Open &dataset folder…", self.choose_dataset, QKeySequence("Ctrl+Shift+O")
        )
        self.action_sample_dataset = self._action(
            file_menu, "Try the bundled animal si&lhouettes (dataset)", self.open_sample_dataset
        )
        file_menu.addSeparator()
        self.action_quit = self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.action_quit.setShortcut(QKeySequence("Ctrl+Q"))  # Quit has no standard key on every platform

        view_menu = self.menuBar().addMenu("&View")
        for i, page in enumerate(self.pages):
            self._action(
                view_menu, page.title, lambda _=False, i=i: self.show_page(i), QKeySequence(f"Ctrl+{i + 1}")
            )

        view_menu.addSeparator()
        self.action_code = self._action(
            view_menu, "Show the &code…", self.show_code, QKeySequence("Ctrl+Shift+C")
        )

        help_menu = self.menuBar().addMenu("&Help")
        self.action_about = self._action(help_menu, "&About CNN Explorer", self.show_about)

    def _action(self, menu, text: str, slot: Callable, shortcut: QKeySequence | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # -- pages ------------------------------------------------------------------------------------
    def show_page(self, index: int) -> None:
        self.sidebar.setCurrentRow(index)

    def page(self, cls_name: str) -> Page:
        return next(p for p in self.pages if type(p).__name__ == cls_name)

    def _connect_pages(self) -> None:
        """Fine-tune's and Compress's "Open in explorer" open a checkpoint in the Network explorer; the
        gallery's opens a zoo model there, at a block's layer; the explorer's "Use in lab" hands a live frame
        to the Operations lab."""
        by_name = {type(p).__name__: p for p in self.pages}
        explorer = by_name.get("NetworkPage")
        if explorer is None:
            return

        def open_checkpoint(checkpoint: str, image: str) -> None:
            self.show_page(self.pages.index(explorer))
            explorer.open_model_file(checkpoint, image or None)

        def open_zoo_model(name: str, layer: str) -> None:
            self.show_page(self.pages.index(explorer))
            explorer.open_zoo_model(name, layer or None)

        for name in ("FineTunePage", "CompressPage"):
            if name in by_name:
                by_name[name].open_in_explorer.connect(open_checkpoint)
        if "GalleryPage" in by_name:
            by_name["GalleryPage"].open_in_explorer.connect(open_zoo_model)
        lab = by_name.get("OpsLabPage")
        if lab is not None and hasattr(explorer, "use_in_lab"):

            def use_in_lab(frame: LoadedImage) -> None:  # a live frame, as the lab's grayscale input
                lab.set_image(frame)
                lab.input_panel.set_source("gray")
                self.show_page(self.pages.index(lab))

            explorer.use_in_lab.connect(use_in_lab)

    # -- code -------------------------------------------------------------------------------------
    @Slot()
    def show_code(self) -> CodePanel | None:
        """The current page's PyTorch in a read-only panel (one panel, reused), or why there is none."""
        page = self.pages[self.stack.currentIndex()]
        try:
            code = page.code()
        except Exception as exc:  # generating must never take the window down
            code = f"Cannot write the code for this page: {type(exc).__name__}: {exc}"
        if isinstance(code, str):
            self.show_status(code)
            return None
        if self.code_panel is None:
            self.code_panel = CodePanel(self)
        self.code_panel.set_files(code.title, code.files)
        self.code_panel.show()
        self.code_panel.raise_()
        return self.code_panel

    # -- images -----------------------------------------------------------------------------------
    @Slot()
    def choose_image(self) -> None:
        start = str(self.settings.value("last_folder", "") or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start, IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> None:
        """Load in a worker (a 40-megapixel photo takes a while to decode), then hand it to every page."""
        path = Path(path)
        self.show_status(f"Opening {path.name}…", 0)
        job = self._image_job.start(open_image, path, name=f"open {path.name}")
        job.result.connect(lambda loaded, job=job: self._image_ready(job, loaded))
        job.failed.connect(lambda exc, job=job: self._image_error(job, exc))

    def _image_ready(self, job: workers.Job, loaded: LoadedImage) -> None:
        if not self._image_job.is_current(job):
            return
        self.current_image = loaded
        self.settings.setValue("last_folder", str(loaded.path.parent))
        self.image_label.setText(loaded.describe())
        self.setWindowTitle(loaded.path.name)  # Qt appends the application's display name
        for page in self.pages:
            page.set_image(loaded)
        self.show_status(f"Opened {loaded.describe()}")
        self.image_loaded.emit(loaded)

    def _image_error(self, job: workers.Job, exc: BaseException) -> None:
        if not self._image_job.is_current(job):
            return
        message = str(exc) if isinstance(exc, ImageLoadError) else f"Cannot open the image: {exc}"
        self.show_status(message)
        self.image_failed.emit(message)
        if self._dialogs_enabled:
            QMessageBox.warning(self, "Cannot open image", message)

    @Slot()
    def choose_dataset(self) -> None:
        start = str(
            self.settings.value("last_dataset_folder", "") or self.settings.value("last_folder", "") or ""
        )
        folder = QFileDialog.getExistingDirectory(
            self, "Open dataset folder (one sub-folder per class)", start
        )
        if folder:
            self.open_dataset(folder)

    def open_dataset(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.settings.setValue("last_dataset_folder", str(folder))
        target = next((p for p in self.pages if hasattr(p, "set_dataset_folder")), None)
        if target is None:
            self.show_status("The Fine-tune page is not available yet.")
            return
        self.show_page(self.pages.index(target))
        target.set_dataset_folder(folder)

    @Slot()
    def open_sample_dataset(self) -> None:
        """The Fine-tune page with the bundled animal silhouettes as its dataset."""
        target = next((p for p in self.pages if hasattr(p, "open_sample_dataset")), None)
        if target is None:
            self.show_status("The Fine-tune page is not available yet.")
            return
        self.show_page(self.pages.index(target))
        target.open_sample_dataset()

    # -- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_path(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_path(event)
        if path is None:
            event.ignore()
            return
        event.acceptProposedAction()
        if path.is_dir():
            self.open_dataset(path)
        else:
            self.open_image(path)

    @staticmethod
    def _dropped_path(event: QDragEnterEvent | QDropEvent) -> Path | None:
        mime = event.mimeData()
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                path = Path(url.toLocalFile())
                if path.is_dir() or is_image_file(path):
                    return path
        return None

    # -- status, about, closing ---------------------------------------------------------------------
    @Slot(str)
    def show_status(self, message: str, timeout_ms: int = STATUS_TIMEOUT_MS) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    def about_text(self) -> str:
        import numpy
        import pyqtgraph
        import PySide6
        import torch
        import torchvision
        from PySide6.QtCore import qVersion

        rows = [
            ("CNN Explorer", __version__),
            ("Python", platform.python_version()),
            ("PySide6 / Qt", f"{PySide6.__version__} / {qVersion()}"),
            ("PyTorch", torch.__version__),
            ("torchvision", torchvision.__version__),
            ("pyqtgraph", pyqtgraph.__version__),
            ("NumPy", numpy.__version__),
            ("Compute", "CUDA GPU" if torch.cuda.is_available() else "CPU"),
        ]
        table = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;{v}</td></tr>" for k, v in rows)
        return (
            "<h3>CNN Explorer</h3><p>See inside convolutional neural networks: step through convolution, "
            "walk a pretrained CNN layer by layer, fine-tune on your own images.</p>"
            f"<table>{table}</table><p>Sample photos: see assets/LICENSES.md.</p>"
        )

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(self, "About CNN Explorer", self.about_text())

    def closeEvent(self, event: QCloseEvent) -> None:
        if not all(page.confirm_close() for page in self.pages):
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("page", self.sidebar.currentRow())
        self.settings.sync()
        self._image_job.cancel()
        for page in self.pages:
            page.shutdown()
        stuck = workers.shutdown()
        if stuck:
            self.show_status("Still stopping: " + ", ".join(stuck))
        event.accept()

    def is_busy(self) -> bool:
        return self._image_job.busy or any(page.is_busy() for page in self.pages)
