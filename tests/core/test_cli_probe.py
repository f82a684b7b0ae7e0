"""The probe subcommand, driven through a real argparse parser."""

from __future__ import annotations

import argparse
import csv
import errno
import re
from pathlib import Path

import pytest
from PIL import Image

from cnn_explorer import cli_probe
from cnn_explorer.core.control import Cancelled


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_probe.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture
def shapes(tmp_path: Path, make_image_folder) -> Path:
    return make_image_folder(tmp_path / "shapes", per_class=12, classes=["bird", "elephant", "giraffe"])


def test_probe_writes_the_csv_and_chart_and_prints_the_table(shapes: Path, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert run_cli("probe", shapes, "--out", out, "--image-size", "32", "--offline", "--quiet") == 0
    text = capsys.readouterr().out
    assert "30 training and 6 validation images in 3 classes" in text  # the scan report first
    assert re.search(r"^\s+1\s+_conv_stem\s+32\s+[\d.]+%\s+[\d.]+%", text, flags=re.M)
    best = [line for line in text.splitlines() if line.endswith("<- best")]
    assert len(best) == 1
    assert re.search(
        r"^Best: \S+ \(depth \d+ of 18\), validation accuracy [\d.]+% \(chance 33\.3%\)", text, re.M
    )
    assert f"Wrote {out / 'probes.csv'}" in text and f"Wrote {out / 'probes.png'}" in text
    with (out / "probes.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["layer", "depth", "val_accuracy"] and len(rows) == 19
    assert best[0].split()[1] in {r[0] for r in rows[1:]}
    with Image.open(out / "probes.png") as im:
        assert im.size == (800, 500)


def test_bad_input_exits_2_with_one_line(shapes: Path, tmp_path: Path, capsys, make_image_folder):
    one = make_image_folder(tmp_path / "one", per_class=6, classes=["cat"])
    assert run_cli("probe", one, "--out", tmp_path / "o1", "--offline", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "single class ('cat')" in err

    assert run_cli("probe", tmp_path / "missing", "--out", tmp_path / "o2", "--quiet") == 2
    assert "does not exist" in capsys.readouterr().err

    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert run_cli("probe", shapes, "--out", a_file, "--quiet") == 2
    err = capsys.readouterr().err
    assert "taken" in err and "is a file" in err

    assert run_cli("probe", shapes, "--out", tmp_path / "o3", "--model", "nope", "--quiet") == 2
    assert "Unknown model 'nope'" in capsys.readouterr().err
    assert run_cli("probe", shapes, "--out", tmp_path / "o4", "--image-size", "4", "--quiet") == 2
    assert "--image-size must be at least 16" in capsys.readouterr().err


@pytest.mark.parametrize("stop", [KeyboardInterrupt, Cancelled])
def test_ctrl_c_exits_130_and_writes_nothing(shapes: Path, tmp_path: Path, capsys, monkeypatch, stop):
    def interrupted(*args, **kwargs):
        raise stop()

    monkeypatch.setattr(cli_probe, "probe_every_block", interrupted)
    out = tmp_path / "report"
    assert run_cli("probe", shapes, "--out", out, "--offline", "--quiet") == 130
    assert "Stopped" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_a_full_disk_exits_1(shapes: Path, tmp_path: Path, capsys, monkeypatch):
    def full(report, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli_probe, "write_probe_png", full)
    out = tmp_path / "report"
    assert run_cli("probe", shapes, "--out", out, "--image-size", "32", "--offline", "--quiet") == 1
    err = capsys.readouterr().err
    assert "probes.png" in err and "the disk is full" in err
