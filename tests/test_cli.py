"""The command line: quick commands stay quick, every documented command exists."""

import subprocess
import sys

import pytest

from cnn_explorer.cli import build_parser


def _commands(argv):
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_version_and_gui_start_do_not_import_torch():
    code = (
        "import sys\n"
        "from cnn_explorer.cli import build_parser\n"
        "build_parser(['--version']); build_parser([]); build_parser(['--image', 'models'])\n"
        "build_parser(['screenshot', 'out'])\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("argv", [["models"], ["inspect", "x.png", "--out", "o"], ["finetune", "d"], ["-h"]])
def test_all_commands_are_there_when_asked_for(argv):
    assert _commands(argv) == {
        "screenshot",
        "models",
        "inspect",
        "finetune",
        "predict",
        "compare",
        "lab",
        "recommend",
        "probe",
        "lr-find",
        "architectures",
        "compress",
        "export",
        "code",
        "live",
    }


def test_screenshot_rejects_a_bad_size(capsys):
    from cnn_explorer.cli import main

    assert main(["screenshot", "out", "--size", "big"]) == 2
    assert "--size" in capsys.readouterr().err
