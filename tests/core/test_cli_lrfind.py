"""The lr-find subcommand, driven through a real argparse parser."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explorer import cli_lrfind
from cnn_explorer.core.transfer.results import LRFindResult

FAST = ["--image-size", "32", "--batch-size", "8", "--steps", "40", "--offline", "--quiet"]


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_lrfind.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lr-find", *(str(a) for a in argv)])
    return args.func(args)


def test_prints_the_suggestion_and_writes_the_curve(tiny_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "sweep"
    rc = run_cli(tiny_folder, "--model", "efficientnet_lite0", "--strategy", "feature-extractor",
                 "--out", out, *FAST)  # fmt: skip
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "18 training and 6 validation images in 3 classes" in text.out  # the scan report comes first
    found = re.search(r"^suggested learning rate: (\S+)$", text.out, flags=re.M)
    assert found and 0 < float(found.group(1)) < 10
    assert "decade" in text.out  # the reason follows
    rows = (out / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "lr,loss,smoothed" and 2 < len(rows) <= 41
    assert float(rows[1].split(",")[0]) == pytest.approx(1e-7)
    with Image.open(out / "lr_find.png") as im:
        assert im.size == (800, 500)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{data}", "--model", "no_such_net"], "Unknown model 'no_such_net'"),
        (["{data}", "--steps", "1"], "2 to 1000 steps"),
        (["{data}", "--start-lr", "1", "--end-lr", "0.1"], "must be larger than the start"),
        (["{data}", "--batch-size", "0"], "batch size"),
        (["{data}", "--out", "{file}"], "is a file, not a folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, tiny_folder: Path, tmp_path: Path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    values = {"missing": tmp_path / "missing", "data": tiny_folder, "file": a_file}
    assert run_cli(*(a.format(**values) for a in argv), "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_ctrl_c_exits_130(monkeypatch, tiny_folder: Path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_lrfind, "lr_find", interrupted)
    assert run_cli(tiny_folder, *FAST) == 130
    assert "Stopped" in capsys.readouterr().err


def test_a_sweep_without_a_finite_loss_fails(monkeypatch, tiny_folder: Path, tmp_path: Path, capsys):
    nan = np.full(3, np.nan)
    broken = LRFindResult(
        np.geomspace(1e-7, 1e-6, 3), nan, nan, float("nan"), True, "no step gave a finite loss"
    )
    monkeypatch.setattr(cli_lrfind, "lr_find", lambda *a, **k: broken)
    assert run_cli(tiny_folder, *FAST, "--out", tmp_path / "o") == 1
    assert "error: no learning rate could be suggested" in capsys.readouterr().err
    assert (tmp_path / "o" / "lr_find.csv").is_file() and not (tmp_path / "o" / "lr_find.png").exists()


def test_lr_find_sweeps_the_settings_a_run_would_use(tmp_path, monkeypatch, capsys):
    """--layer, --lr-mult, --momentum, --weight-decay, --dropout and --label-smoothing reach the sweep."""
    import argparse

    from cnn_explorer import cli_lrfind
    from cnn_explorer.core.data import write_animal_dataset

    seen = []

    def fake_lr_find(config, scan, **kwargs):
        seen.append(config)
        raise KeyboardInterrupt  # stop here: the settings are what is tested

    monkeypatch.setattr(cli_lrfind, "lr_find", fake_lr_find)
    data = write_animal_dataset(tmp_path / "d", per_class=6, classes=["cat", "bird"])
    parser = argparse.ArgumentParser()
    cli_lrfind.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["lr-find", str(data), "--strategy", "linear-probe", "--layer", "_blocks.3", "--momentum", "0.8",
         "--weight-decay", "0.002", "--dropout", "0.2", "--label-smoothing", "0.1", "--offline", "--quiet"]
    )  # fmt: skip
    assert args.func(args) == 130
    [config] = seen
    assert (config.strategy, config.cut_layer, config.momentum) == ("linear-probe", "_blocks.3", 0.8)
    assert (config.weight_decay, config.dropout, config.label_smoothing) == (0.002, 0.2, 0.1)
