"""The "Show the code" panel: read-only, highlighted, Copy and Save; the window asks the current page."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from cnn_explorer.qt.main_window import MainWindow
from cnn_explorer.qt.pages.base import Page, PageCode
from cnn_explorer.qt.widgets.code_panel import KEYWORD_COLOUR, CodePanel

CODE = 'import torch\n\n# a comment\nx = torch.ones(2, 3)  # inline\nprint("shape", x.shape)\n'


def test_the_panel_shows_files_read_only_copies_and_saves(qtbot, tmp_path):
    panel = CodePanel()
    qtbot.addWidget(panel)
    panel.set_files("Training", {"train.py": CODE, "predict.py": "print('hi')\n"})
    assert panel.editor.isReadOnly() and panel.code() == CODE and panel.file_combo.isVisibleTo(panel)
    panel.file_combo.setCurrentText("predict.py")
    assert panel.code() == "print('hi')\n" and panel.file_name() == "predict.py"
    panel.copy()
    assert QGuiApplication.clipboard().text() == "print('hi')\n"
    assert panel.save(tmp_path / "p.py") and (tmp_path / "p.py").read_text() == "print('hi')\n"
    assert not panel.save(tmp_path / "missing" / "p.py")  # an unwritable place: said, nothing written
    assert "Cannot write" in panel.status.text() and not (tmp_path / "missing").exists()


def test_keywords_strings_and_comments_are_coloured(qtbot):
    panel = CodePanel()
    qtbot.addWidget(panel)
    panel.set_files("x", {"code.py": CODE})
    block = panel.editor.document().firstBlock()  # "import torch"
    formats = block.layout().formats()
    assert any(f.format.foreground().color().name() == KEYWORD_COLOUR and f.start == 0 for f in formats)
    comment = panel.editor.document().findBlockByNumber(2)
    assert any(f.format.fontItalic() for f in comment.layout().formats())


class _CodePage(Page):
    title = "With code"

    def code(self):
        return PageCode("What it shows", {"code.py": CODE})


class _SilentPage(Page):
    title = "Without"


def test_the_window_asks_the_current_page(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        load_sample=False,
        settings=settings,
        page_factory=lambda parent: [_SilentPage(parent), _CodePage(parent)],
    )
    qtbot.addWidget(window)
    window.show_page(0)
    assert window.show_code() is None and "no code" in window.statusBar().currentMessage()
    window.show_page(1)
    panel = window.show_code()
    assert isinstance(panel, CodePanel) and panel.code() == CODE and panel.isVisible()
    assert window.action_code.shortcut().toString() == "Ctrl+Shift+C"
    assert isinstance(window.code_button, QWidget) and window.code_button.isVisibleTo(window)
