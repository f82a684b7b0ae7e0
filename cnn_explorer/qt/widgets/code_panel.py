"""A read-only window of generated PyTorch code: syntax-highlighted, with Copy and Save.

``CodePanel(parent)``; ``set_files(title, files)`` shows one or more files (name -> code; a fine-tune run
has train.py and predict.py, chosen in a combo) in a monospace editor that cannot be edited. Copy puts the
shown file on the clipboard, "Save as…" writes it (atomically). ``PythonHighlighter`` colours keywords,
built-ins, strings, comments and numbers.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QSyntaxHighlighter, QTextCharFormat
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.runs import write_bytes_atomic
from cnn_explorer.qt import style

KEYWORD_COLOUR = "#7b30a8"
BUILTIN_COLOUR = "#1f5fa8"
STRING_COLOUR = "#2e7d32"
COMMENT_COLOUR = "#888888"
NUMBER_COLOUR = "#b35c00"
_BUILTINS = ("print", "range", "len", "float", "int", "str", "list", "dict", "tuple", "zip", "open")


def _format(colour: str, *, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(colour))
    if bold:
        fmt.setFontWeight(QFont.Weight.Bold)
    fmt.setFontItalic(italic)
    return fmt


class PythonHighlighter(QSyntaxHighlighter):
    """Enough of Python's colours to read generated code: one regular expression per kind, in order, so a
    comment or a string wins over the words inside it."""

    def __init__(self, document) -> None:
        super().__init__(document)
        words = "|".join(keyword.kwlist)
        self._rules = [
            (re.compile(rf"\b({words})\b"), _format(KEYWORD_COLOUR, bold=True)),
            (re.compile(rf"\b({'|'.join(_BUILTINS)})\b(?=\()"), _format(BUILTIN_COLOUR)),
            (re.compile(r"\b\d+(\.\d*)?([eE][-+]?\d+)?\b"), _format(NUMBER_COLOUR)),
            (re.compile(r"(?P<q>['\"])(?:\\.|(?!(?P=q)).)*(?P=q)"), _format(STRING_COLOUR)),
            (re.compile(r"#[^\n]*"), _format(COMMENT_COLOUR, italic=True)),
        ]
        self._triple = _format(STRING_COLOUR)

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self._rules:
            for m in pattern.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), fmt)
        # triple-quoted strings (docstrings) across lines: state 1 = inside one
        self.setCurrentBlockState(0)
        start = 0 if self.previousBlockState() == 1 else text.find('"""')
        while start >= 0:
            offset = 0 if self.previousBlockState() == 1 and start == 0 else 3
            end = text.find('"""', start + offset)
            if end < 0:
                self.setCurrentBlockState(1)
                self.setFormat(start, len(text) - start, self._triple)
                return
            self.setFormat(start, end + 3 - start, self._triple)
            start = text.find('"""', end + 3)


class CodePanel(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Code")
        self.resize(860, 700)
        self.title_label = QLabel()
        self.title_label.setStyleSheet(style.TITLE_STYLE)
        self.title_label.setWordWrap(True)
        self.hint = QLabel(
            "Plain PyTorch for what the page shows, with its current settings: copy it and run it."
        )
        self.hint.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.file_combo = QComboBox()
        self.file_combo.setToolTip("The files of this code")
        self.editor = QPlainTextEdit()
        self.editor.setReadOnly(True)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSize(max(9, font.pointSize()))
        self.editor.setFont(font)
        self.editor.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.highlighter = PythonHighlighter(self.editor.document())
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Put the whole code on the clipboard")
        self.save_button = QPushButton("Save as…")
        self.close_button = QPushButton("Close")
        self.status = QLabel()
        self.status.setStyleSheet(style.SMALL_MUTED_STYLE)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title_label)
        layout.addWidget(self.hint)
        layout.addWidget(self.file_combo)
        layout.addWidget(self.editor, 1)
        layout.addLayout(buttons)
        self.copy_button.clicked.connect(self.copy)
        self.save_button.clicked.connect(self.choose_file)
        self.close_button.clicked.connect(self.close)
        self.file_combo.currentTextChanged.connect(self._show_file)
        self._files: dict[str, str] = {}

    def set_files(self, title: str, files: dict[str, str]) -> None:
        self.title_label.setText(title)
        self._files = dict(files)
        self.file_combo.blockSignals(True)
        self.file_combo.clear()
        self.file_combo.addItems(list(self._files))
        self.file_combo.blockSignals(False)
        self.file_combo.setVisible(len(self._files) > 1)
        self._show_file(next(iter(self._files), ""))

    def file_name(self) -> str:
        return self.file_combo.currentText() or next(iter(self._files), "code.py")

    def _show_file(self, name: str) -> None:
        code = self._files.get(name, "")
        self.editor.setPlainText(code)
        self.status.setText(f"{name}: {code.count(chr(10)) + 1 if code else 0} lines")

    def code(self) -> str:
        return self.editor.toPlainText()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code())
        self.status.setText("Copied to the clipboard.")

    def choose_file(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the code", self.file_name(), "Python (*.py)")
        if path:
            self.save(Path(path))

    def save(self, path: Path) -> bool:
        try:
            write_bytes_atomic(path, self.code().encode("utf-8"))
        except OSError as exc:
            self.status.setText(f"Cannot write {path}: {exc.strerror or exc}")
            self.status.setStyleSheet(style.NOTICE_STYLE)
            return False
        self.status.setStyleSheet(style.SMALL_MUTED_STYLE)
        self.status.setText(f"Saved {path}")
        return True
