"""``cnn-explorer code``: the same code as core.codegen, written to --out; exit 2 for bad input."""

from __future__ import annotations

import argparse
import subprocess
import sys

from cnn_explorer import cli_code
from cnn_explorer.core.codegen import lab_code
from cnn_explorer.core.lab import course_example


def main(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_code.register(parser.add_subparsers())
    args = parser.parse_args(["code", *argv])
    return args.func(args)


def test_lab_example_writes_the_same_code(tmp_path):
    out = tmp_path / "lab.py"
    assert main("lab", "--example", "conv-4x4", "--out", str(out)) == 0
    example = course_example("conv-4x4")
    assert out.read_text(encoding="utf-8") == lab_code(example.settings, example.input)
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "conv (3, 3)\n  7 9 11" in done.stdout


def test_lab_options_as_cnn_explorer_lab_takes_them(tmp_path):
    out = tmp_path / "lab.py"
    code = main(
        "lab",
        "--matrix",
        "1 2 3; 4 5 6; 7 8 9",
        "--conv",
        "0 1; 1 0",
        "--pool",
        "none",
        "--backward",
        "ones",
        "--out",
        str(out),
    )
    assert code == 0
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "activation (2, 2)\n  6 8\n  12 14" in done.stdout
    assert "gradient at the input" in done.stdout


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    assert main("lab", "--matrix", "1 2; 3", "--out", str(tmp_path / "x.py")) == 2
    assert "--matrix" in capsys.readouterr().err
    assert main("explore", "--model", "resnet18", "--layer", "nope", "--out", str(tmp_path / "e.py")) == 2
    assert "nope" in capsys.readouterr().err
    assert main(str(tmp_path), "--out", str(tmp_path / "code")) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main("lab", "--example", "conv-4x4", "--out", str(tmp_path)) == 2
    assert "is a folder" in capsys.readouterr().err


def test_explore_writes_runnable_code(tmp_path):
    out = tmp_path / "explore.py"
    assert main("explore", "--model", "lenet5", "--layer", "c3", "--gradcam", "--out", str(out)) == 0
    done = subprocess.run([sys.executable, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "feature map c3: (16, 10, 10)" in done.stdout
    assert "Grad-CAM of " in done.stdout
