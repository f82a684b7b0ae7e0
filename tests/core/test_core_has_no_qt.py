"""core/ must import without Qt: checked in a fresh interpreter so other tests cannot mask it."""

import pkgutil
import subprocess
import sys

import cnn_explorer.core


def test_core_modules_import_no_qt():
    names = [f"cnn_explorer.core.{m.name}" for m in pkgutil.iter_modules(cnn_explorer.core.__path__)]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}: importlib.import_module(n)\n"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'superqt') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
