"""``cnn-explorer export``: exit codes 0 / 1 / 2 / 130 and the verification line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cnn_explorer import cli_export
from cnn_explorer.core.control import Cancelled
from cnn_explorer.core.export import pipeline


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_export.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_export_prints_the_verification_line_and_exits_0(tmp_path: Path, capsys):
    out = tmp_path / "lenet.onnx"
    assert run_cli("export", "--model", "lenet5", "--format", "onnx", "--out", out, "--quiet") == 0
    text = capsys.readouterr().out
    assert "verified on 4 images with onnxruntime" in text and "top-1 identical (4/4)" in text
    assert json.loads((tmp_path / "lenet.json").read_text())["verification"]["passed"] is True


def test_weights_file_exports(tmp_path: Path, capsys):
    first = tmp_path / "w.safetensors"
    assert run_cli("export", "--model", "lenet5", "--format", "safetensors", "--out", first, "--quiet") == 0
    out = tmp_path / "again.pt"
    rc = run_cli("export", "--model", "lenet5", "--weights", first, "--format", "torchscript", "--out", out)
    assert rc == 0 and out.is_file()
    assert "file " in json.loads((tmp_path / "again.json").read_text())["weights"]["origin"]


def test_a_failed_verification_exits_1(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "TOLERANCE", 0.0)  # onnxruntime's logits differ from torch's by ~1e-6
    out = tmp_path / "lenet.onnx"
    assert run_cli("export", "--model", "lenet5", "--format", "onnx", "--out", out, "--quiet") == 1
    assert "VERIFICATION FAILED" in capsys.readouterr().out
    assert out.is_file()  # kept, and its model.json says it failed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "no_such_model"], "no_such_model"),
        (["RUN"], "does not exist"),
        (["--model", "lenet5", "--weights", "missing.pt"], "missing.pt"),
        ([], "say what to export"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys, argv, message):
    argv = [str(tmp_path / "no-run") if a == "RUN" else a for a in argv]
    assert run_cli("export", *argv, "--format", "onnx", "--out", tmp_path / "m.onnx", "--quiet") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_missing_target_folder_exits_2_naming_it(tmp_path: Path, capsys):
    target = tmp_path / "absent" / "m.onnx"
    assert run_cli("export", "--model", "lenet5", "--format", "onnx", "--out", target, "--quiet") == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(tmp_path / "absent") in err


def test_ctrl_c_exits_130(tmp_path: Path, capsys, monkeypatch):
    def cancelled(*a, **k):
        raise Cancelled("cancelled")

    monkeypatch.setattr(cli_export, "export_model", cancelled)
    assert run_cli("export", "--model", "lenet5", "--format", "onnx", "--out", tmp_path / "m.onnx") == 130
    assert "Stopped" in capsys.readouterr().err
