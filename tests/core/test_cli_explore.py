"""The ``models`` and ``inspect`` commands, driven through a parser built the way cli.py builds it."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_explorer import cli_explore
from cnn_explorer.core import zoo

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    sub = parser.add_subparsers(dest="command")
    cli_explore.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_models_lists_the_zoo_with_weights_status(capsys):
    assert run(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "MODEL", "INPUT", "WEIGHTS", "DETAIL"]
    for info in zoo.available_models():
        assert any(line.startswith(info.name) for line in lines), info.name
    lite = next(line for line in lines if line.startswith("efficientnet_lite0"))
    assert lite.startswith("efficientnet_lite0*") and " package " in lite
    lenet = next(line for line in lines if line.startswith("lenet5"))
    assert " package " in lenet and " 32 " in lenet  # trained on the UCI digits, shipped


def test_inspect_writes_grids_table_and_top5(sample_cat, tmp_path, capsys):
    out = tmp_path / "slides"
    assert run(["inspect", str(sample_cat), "--out", str(out), "--gradcam"]) == 0
    stdout = capsys.readouterr().out
    report = json.loads((out / "top5.json").read_text())
    assert report["model"] == "efficientnet_lite0" and report["weights"] == "package"
    names = [p["name"] for p in report["predictions"]]
    assert len(names) == 5 and CAT_CLASSES & set(names)
    assert report["predictions"][0]["rank"] == 1 and names[0] in stdout
    probs = [p["probability"] for p in report["predictions"]]
    assert probs == sorted(probs, reverse=True)
    with open(out / "layers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "_conv_stem" and rows[0]["output_shape"] == "32x112x112"
    assert len(rows) > 100
    grids = report["grids"]
    assert grids and all((out / g).is_file() for g in grids)
    first = np.asarray(Image.open(out / grids[0]))
    assert first.ndim == 3 and first.shape[2] == 3 and first.shape[1] >= 800
    assert np.asarray(Image.open(out / "input.png")).shape == (224, 224, 3)
    assert np.asarray(Image.open(out / "gradcam.png")).shape == (224, 224, 3)
    assert report["gradcam"]["class"] == names[0]


def test_inspect_chosen_layers_with_a_weights_file(sample_cat, tmp_path, capsys):
    model = zoo.LeNet5()
    zoo.save_checkpoint(
        tmp_path / "lenet.pt",
        model,
        arch="lenet5",
        class_names=[f"digit {d}" for d in range(10)],
        preprocess=zoo.load_model("lenet5").preprocess,
    )
    out = tmp_path / "out"
    argv = ["inspect", str(sample_cat), "--model", "lenet5", "--weights", str(tmp_path / "lenet.pt")]
    assert run([*argv, "--out", str(out), "--layer", "c1", "--layer", "s4", "--min-width", "0"]) == 0
    report = json.loads((out / "top5.json").read_text())
    assert report["weights"] == "file" and report["predictions"][0]["name"].startswith("digit ")
    assert report["grids"] == ["000_c1.png", "005_s4.png"]
    c1 = np.asarray(Image.open(out / "000_c1.png"))
    assert c1.shape == (2 * 29 - 1, 3 * 29 - 1, 3)  # 6 channels of 28×28 in 3 columns, 1-pixel gaps
    assert run([*argv, "--out", str(tmp_path / "all"), "--layer", "all"]) == 0
    report = json.loads((tmp_path / "all" / "top5.json").read_text())
    assert len(report["grids"]) == 12


def test_untrained_models_are_flagged(sample_cat, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(zoo.OFFLINE_ENV, "1")  # no weights cached here, none downloaded: random weights
    assert run(["inspect", str(sample_cat), "--model", "squeezenet1_1", "--out", str(tmp_path)]) == 0
    assert "UNTRAINED" in capsys.readouterr().err
    assert json.loads((tmp_path / "top5.json").read_text())["weights"] == "untrained"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet19"], "Unknown model 'resnet19'"),
        (["--model", "lenet5", "--layer", "c5_tan"], "no layer named 'c5_tan' (did you mean c5_tanh"),
    ],
)
def test_bad_model_or_layer_exit_2(sample_cat, tmp_path, capsys, args, message):
    assert run(["inspect", str(sample_cat), "--out", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "top5.json").exists()


def test_bad_image_exits_2_and_names_the_file(tmp_path, capsys):
    bad = tmp_path / "holiday.jpg"
    bad.write_text("not a picture")
    assert run(["inspect", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holiday.jpg" in err and "text" in err


def test_pickled_weights_are_refused_with_exit_2(sample_cat, tmp_path, capsys):
    torch.save(zoo.LeNet5(), tmp_path / "whole.pt")
    argv = ["inspect", str(sample_cat), "--model", "lenet5", "--weights", str(tmp_path / "whole.pt")]
    assert run([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "could run code" in capsys.readouterr().err
