"""Show the code and Export on the pages: the lab's and the explorer's code, executed, print what the
page shows; the explorer's model bar exports its model, verified."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from cnn_explorer.core.images import open_image
from cnn_explorer.qt.pages.base import PageCode
from cnn_explorer.qt.pages.network import NetworkPage
from cnn_explorer.qt.pages.ops_lab import OpsLabPage
from cnn_explorer.qt.widgets.export_dialog import ExportDialog

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def run_code(tmp_path: Path, text: str, name: str = "code.py") -> str:
    script = tmp_path / name
    script.write_text(text)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)])


def _all_printed(values: np.ndarray, printed: np.ndarray) -> bool:
    return all(np.isclose(printed, v, atol=1e-3).any() for v in np.asarray(values, dtype=float).ravel())


def test_the_lab_code_prints_the_labs_numbers(open_page, qtbot, tmp_path):
    page = open_page(OpsLabPage(), 30_000)
    page.apply_example("max-pool-4x4")
    qtbot.waitUntil(lambda: not page.is_busy() and page._lab_result() is not None, timeout=30_000)
    code = page.code()
    assert isinstance(code, PageCode) and list(code.files) == ["lab.py"]
    printed = _numbers(run_code(tmp_path, code.files["lab.py"]))
    result = page._lab_result()
    assert result.pooled.tolist() == [[6, 8], [14, 16]]  # the course's example, as the page shows it
    assert _all_printed(result.pooled, printed)

    page.backward_check.setChecked(True)  # the backward view: the autograd version
    qtbot.waitUntil(lambda: not page.is_busy() and page.gradients() is not None, timeout=30_000)
    code = page.code()
    assert "backward" in code.title and ".backward(" in code.files["lab.py"]
    out = run_code(tmp_path, code.files["lab.py"], "lab_backward.py")
    grads = page.gradients().d_input  # max pooling routes each window's 1 to its winner
    assert sorted(grads.ravel().tolist()) == [0.0] * 12 + [1.0] * 4
    printed = _numbers(out.split("gradient at the input", 1)[1])
    np.testing.assert_allclose(printed[-grads.size :], grads.ravel())


def test_the_explorer_code_prints_the_apps_shape_and_top1(open_page, qtbot, tmp_path):
    page = open_page(NetworkPage(), 60_000)
    page.open_zoo_model("lenet5", "c3")
    page.set_image(open_image(ASSETS / "chelsea.png"))
    qtbot.waitUntil(lambda: not page.is_busy() and page.exploration is not None, timeout=60_000)
    qtbot.waitUntil(lambda: page.current_row is not None and page.current_row.name == "c3", timeout=60_000)
    code = page.code()
    assert isinstance(code, PageCode)
    out = run_code(tmp_path, code.files["explore.py"])
    assert "(16, 10, 10)" in out.replace("torch.Size([1, 16, 10, 10])", "(16, 10, 10)") or "16, 10, 10" in out
    top1 = page.exploration.predictions[0].name
    assert re.search(rf"\b{re.escape(top1)}\b", out)


def test_without_a_picture_the_explorer_says_why(open_page):
    page = open_page(NetworkPage(), 60_000)
    assert isinstance(page.code(), str)


def test_export_from_the_explorers_model_bar(open_page, qtbot, tmp_path):
    page = open_page(NetworkPage(), 60_000)
    page.open_zoo_model("lenet5")
    qtbot.waitUntil(lambda: page.session.a.source is not None, timeout=60_000)
    qtbot.mouseClick(page.bar_a.export_button, Qt.MouseButton.LeftButton)
    dialog = page.findChild(ExportDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.set_format("safetensors")
    dialog.set_output(tmp_path / "lenet5.safetensors")
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=60_000)
    assert dialog.result() is not None and dialog.result().passed
    assert "top-1 identical" in dialog.message() and (tmp_path / "lenet5.json").is_file()
    dialog.shutdown()
