"""The ``compare`` command end to end, through ``cnn-explorer``'s own entry point, on a real tiny run."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnn_explorer import cli_compare
from cnn_explorer.cli import main
from cnn_explorer.cli_explore import default_layers
from cnn_explorer.core import zoo
from cnn_explorer.core.layers import layer_table

RUN_NAME = "20260101-120000_efficientnet_lite0_feature-extractor"
CLASSES = {"bird", "elephant", "giraffe"}  # tiny_folder's


@pytest.fixture(scope="module")
def feature_run(make_feature_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch feature-extractor run of the offline EfficientNet-Lite0 at 64×64 (a few seconds)."""
    return make_feature_run(tmp_path_factory.mktemp("cli-compare") / RUN_NAME)


def compare(image: Path, a: str | Path, b: str | Path, out: Path, *more: str) -> int:
    return main(["compare", str(image), "--a", str(a), "--b", str(b), "--out", str(out), "--offline", *more])


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
        fh.seek(0)
        return header, list(csv.DictReader(fh))


def test_a_run_against_its_pretrained_start(feature_run: Path, sample_cat: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    assert compare(sample_cat, "pretrained", feature_run, out) == 0
    stdout = capsys.readouterr().out

    report = json.loads((out / "top5.json").read_text(encoding="utf-8"))
    assert report["pairing"] == "by-name" and report["pairing_label"] == "layers paired by name"
    assert report["a"]["label"] == "A: EfficientNet-Lite0 (pretrained)"
    assert report["b"]["label"] == f"B: run {RUN_NAME}"
    a_names = [p["name"] for p in report["a"]["predictions"]]
    assert len(a_names) == 5 and set(a_names) <= set(zoo.imagenet_categories())
    b_names = [p["name"] for p in report["b"]["predictions"]]
    assert sorted(b_names) == sorted(CLASSES)  # B speaks its own classes: only three of them
    assert report["a"]["input_shape"] == [3, 224, 224] and report["b"]["input_shape"] == [3, 64, 64]

    pretrained = zoo.load_model("efficientnet_lite0", allow_download=False)
    expected = default_layers(layer_table(pretrained.model, 224))
    assert [g["a"] for g in report["grids"]] == expected
    assert all(g["a"] == g["b"] for g in report["grids"])
    for grid in report["grids"]:
        picture = np.asarray(Image.open(out / grid["file"]))
        assert picture.ndim == 3 and picture.shape[1] >= 2 * cli_compare.SIDE_MIN_WIDTH + cli_compare.GAP
        white_columns = np.flatnonzero((picture == 255).all(axis=(0, 2)))
        assert white_columns.size >= cli_compare.GAP  # the gap between A's grid and B's

    header, rows = read_csv(out / "weight_change.csv")
    assert header == ["layer", "params", "relative_change"]
    head = [r for r in rows if r["layer"] == "_fc"]
    assert head == [{"layer": "_fc", "params": "1281000", "relative_change": ""}]
    backbone = [r for r in rows if r["layer"] != "_fc"]
    assert backbone and all(float(r["relative_change"]) == 0.0 for r in backbone)
    assert sum(int(r["params"]) for r in rows) == sum(p.numel() for p in pretrained.model.parameters())

    frozen = re.search(r"^(\d+) of (\d+) layers with weights are unchanged \(frozen\)$", stdout, re.M)
    assert frozen and int(frozen[1]) == len(backbone) and int(frozen[2]) == len(rows)
    assert "_fc: new head: 1000→3 outputs" in stdout
    assert "A: EfficientNet-Lite0 (pretrained): " in stdout and f"B: run {RUN_NAME}: " in stdout


def test_different_architectures_pair_by_depth(feature_run: Path, sample_cat: Path, tmp_path: Path, capsys):
    out = tmp_path / "all"
    assert compare(sample_cat, "lenet5", feature_run, out, "--layer", "all") == 0
    stdout = capsys.readouterr().out
    report = json.loads((out / "top5.json").read_text(encoding="utf-8"))
    assert report["pairing"] == "by-depth"
    lenet_layers = layer_table(zoo.LeNet5(), 32, in_channels=1).names()
    assert [g["a"] for g in report["grids"]] == lenet_layers
    assert report["grids"][0]["b"] == "_conv_stem" and report["grids"][-1]["b"] == "_fc"
    assert all((out / g["file"]).is_file() for g in report["grids"])
    _, rows = read_csv(out / "weight_change.csv")
    assert [r["layer"] for r in rows] == ["c1", "c3", "c5", "f6", "output"]
    assert all(r["relative_change"] == "" for r in rows)
    assert "different architectures: layers paired by relative depth" in stdout
    assert "weights not compared" in stdout

    # a layer named from B's side is drawn beside its partner in A
    assert compare(sample_cat, "lenet5", feature_run, tmp_path / "one", "--layer", "_conv_stem") == 0
    report = json.loads((tmp_path / "one" / "top5.json").read_text(encoding="utf-8"))
    assert [(g["a"], g["b"]) for g in report["grids"]] == [("c1", "_conv_stem")]


def test_unusable_input_exits_2_with_a_clear_message(
    feature_run: Path, sample_cat: Path, tmp_path: Path, capsys
):
    out = tmp_path / "out"

    def fails(a: str | Path, b: str | Path, *more: str, image: Path = sample_cat) -> str:
        assert compare(image, a, b, out, *more) == 2
        return capsys.readouterr().err

    assert "--a pretrained" in (err := fails("pretrained", "lenet5")) and "not a run folder" in err
    assert "not a run folder" in fails("pretrained", "pretrained")
    assert "'no_such_net' is neither a model name" in fails("no_such_net", feature_run)
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights\n")
    assert "notes.pt: it is a text file" in fails(feature_run, notes)
    assert re.search(r"no layer named 'c9' \(did you mean .*c1", fails("lenet5", "lenet5", "--layer", "c9"))
    assert not (out / "weight_change.csv").exists()  # nothing written for a comparison that cannot run

    script = tmp_path / "net.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript; people still have it
        torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))).save(
            str(script)
        )
    assert "--trust-code" in fails(script, "lenet5")
    err = fails(script, script, "--trust-code")
    assert "cannot compare these two models: Neither model shows its layers" in err

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert "photo.png" in fails("lenet5", "lenet5", image=photo)


def test_ctrl_c_stops_with_130(sample_cat: Path, tmp_path: Path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_compare, "explore", interrupted)  # Ctrl+C during the forward passes
    assert compare(sample_cat, "lenet5", "lenet5", tmp_path / "out") == 130
    assert "stopped" in capsys.readouterr().err
